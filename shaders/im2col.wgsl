// im2col: the patch matrix of a 2-D convolution, FORMAT.md §2.1.
//   x: (B, C_in, H, W) NCHW, starting at element offset_x (a step of a larger tensor)
//   out: X (N x D), N = B·Ho·Wo rows n = (b·Ho + oh)·Wo + ow, D = C_in·kh·kw columns
//        d = (c·kh + i)·kw + j, X[n, d] = x_pad[b, c, oh·sh + i, ow·sw + j]
// Padding is zeros, or reflect (mirror without repeating the edge: -1 -> 1, H -> H - 2;
// the launcher requires ph < H and pw < W for reflect).
// `im2col` writes f32 patches; `im2col_f16` writes them as IEEE halves packed two per word
// (element e in word e / 2, the low half when e is even; rounded to nearest), which the GEMM
// reads with A_HALF / B_HALF: half the bytes for the update's largest operand.
// `col2im` is the adjoint (a convolution's backward-data, for fine-tuning): it gathers, for
// each input element x[b, c, y, z], dx = Σ dP[n, d] over the patch elements that read it. With
// reflect padding an element is also read through its mirror images, so the padded rows that
// read row y are y itself, −y (1 ≤ y ≤ ph) and 2(H − 1) − y (H − 2 − ph < y ≤ H − 2), and the
// same for columns; each pairs with the kernel offsets i whose output row
// oh = (row + ph − i)/sh is whole and below Ho.
// Bounds: one invocation per kernel row r < N·C_in·kh = N·D / kw, writing elements r·kw + j < N·D
// for j < kw (per word w < ceil(N·D / 2) for f16); col2im: one per input element
// e < B·C_in·H·W, reading dP at n < N, d < D by the ranges above; the source index is inside (B, C_in, H, W)
// by the padding rules; the launcher checks both tensors hold their extents.

struct Im2colParams {
    batch: u32, c_in: u32, h: u32, w: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    ph: u32, pw: u32, ho: u32, wo: u32,
    reflect: u32, offset_x: u32, total: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Im2colParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_f16: array<u32>;
@group(0) @binding(4) var<storage, read> patch_grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> input_grad: array<f32>;

// The unpadded coordinate for padded coordinate q (= position - padding), or -1 for a zero.
fn source(q: i32, len: u32) -> i32 {
    let n = i32(len);
    if (q >= 0 && q < n) { return q; }
    if (p.reflect == 0u) { return -1; }
    return select(2 * (n - 1) - q, -q, q < 0);
}

// One kernel row of X: the kw consecutive elements X[n, (c·kh + i)·kw + j], j < kw, for
// r = (n·C_in + c)·kh + i < N·C_in·kh. Decomposing r costs integer divisions, which CPU
// adapters run one lane at a time, so the f32 kernel does it once per kernel row.
struct KernelRow {
    src_row: i32,   // unpadded input row, or -1 where the whole kernel row is padding zeros
    src_base: u32,  // element index of (b, c, src_row, 0) in x
    col0: i32,      // padded column of j = 0 minus the padding: ow·sw − pw
}

fn kernel_row(r: u32) -> KernelRow {
    let i = r % p.kh;
    let c = (r / p.kh) % p.c_in;
    let n = r / (p.kh * p.c_in);
    let ow = n % p.wo;
    let oh = (n / p.wo) % p.ho;
    let b = n / (p.wo * p.ho);
    let y = source(i32(oh * p.sh + i) - i32(p.ph), p.h);
    let base = p.offset_x + ((b * p.c_in + c) * p.h + u32(max(y, 0))) * p.w;
    return KernelRow(y, base, i32(ow * p.sw) - i32(p.pw));
}

// Element j of kernel row `k`.
fn row_value(k: KernelRow, j: u32) -> f32 {
    let z = source(k.col0 + i32(j), p.w);
    if (k.src_row < 0 || z < 0) { return 0.0; }
    return x[k.src_base + u32(z)];
}

// X[n, d] for the flat index e = n·D + d < N·D (kernel row e / kw, element e % kw).
fn patch_value(e: u32) -> f32 {
    return row_value(kernel_row(e / p.kw), e % p.kw);
}

// Grid: a 2-D grid of 256-wide workgroups covering N·C_in·kh kernel rows; each invocation
// writes its row's kw elements.
@compute @workgroup_size(256, 1, 1)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let r = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (r >= p.total / p.kw) { return; }
    let k = kernel_row(r);
    let e0 = r * p.kw;
    for (var j = 0u; j < p.kw; j++) {
        out[e0 + j] = row_value(k, j);
    }
}

// Grid: 256-wide workgroups covering ceil(N·D / 2) words; an odd total's last word gets a zero
// high half.
@compute @workgroup_size(256, 1, 1)
fn im2col_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let w = (wg.y * nwg.x + wg.x) * 256u + lid;
    let e = 2u * w;
    if (e >= p.total) { return; }
    var hi = 0.0;
    if (e + 1u < p.total) { hi = patch_value(e + 1u); }
    out_f16[w] = pack2x16float(vec2<f32>(patch_value(e), hi));
}

// The padded coordinates (position − padding) that read unpadded coordinate y of a dimension
// of length `len` with padding `pad`: y, and with reflect padding its mirror images; unused
// slots are −len − pad − 1 (no kernel offset reaches them).
fn readers(y: u32, len: u32, pad: u32) -> array<i32, 3> {
    let none = -i32(len + pad) - 1;
    var r = array<i32, 3>(i32(y), none, none);
    if (p.reflect != 0u) {
        if (y >= 1u && y <= pad) { r[1] = -i32(y); }
        if (y + 2u <= len && y + 2u + pad > len) { r[2] = 2 * (i32(len) - 1) - i32(y); }
    }
    return r;
}

// Grid: 256-wide workgroups covering the B·C_in·H·W input elements.
@compute @workgroup_size(256, 1, 1)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let e = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (e >= p.total) { return; }
    let z = e % p.w;
    let y = (e / p.w) % p.h;
    let c = (e / (p.w * p.h)) % p.c_in;
    let b = e / (p.w * p.h * p.c_in);
    let d_len = p.c_in * p.kh * p.kw;
    let rows = readers(y, p.h, p.ph);
    let cols = readers(z, p.w, p.pw);
    var sum = 0.0;
    for (var a = 0u; a < 3u; a++) {
        for (var i = 0u; i < p.kh; i++) {
            // Output row oh with oh·sh + i − ph = rows[a].
            let t = rows[a] + i32(p.ph) - i32(i);
            if (t < 0 || t % i32(p.sh) != 0 || u32(t) / p.sh >= p.ho) { continue; }
            let oh = u32(t) / p.sh;
            for (var q = 0u; q < 3u; q++) {
                for (var j = 0u; j < p.kw; j++) {
                    let v = cols[q] + i32(p.pw) - i32(j);
                    if (v < 0 || v % i32(p.sw) != 0 || u32(v) / p.sw >= p.wo) { continue; }
                    let ow = u32(v) / p.sw;
                    let n = (b * p.ho + oh) * p.wo + ow;
                    sum += patch_grad[n * d_len + (c * p.kh + i) * p.kw + j];
                }
            }
        }
    }
    input_grad[e] = sum;
}
