// im2col: the patch matrix of a 2-D convolution, FORMAT.md §2.1.
//   x: (B, C_in, H, W) NCHW, starting at element offset_x (a step of a larger tensor)
//   out: X (N x D), N = B·Ho·Wo rows n = (b·Ho + oh)·Wo + ow, D = C_in·kh·kw columns
//        d = (c·kh + i)·kw + j, X[n, d] = x_pad[b, c, oh·sh + i, ow·sw + j]
// Padding is zeros, or reflect (mirror without repeating the edge: -1 -> 1, H -> H - 2;
// the launcher requires ph < H and pw < W for reflect).
// Bounds: one invocation per element e < N·D; the source index is inside (B, C_in, H, W)
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

// The unpadded coordinate for padded coordinate q (= position - padding), or -1 for a zero.
fn source(q: i32, len: u32) -> i32 {
    let n = i32(len);
    if (q >= 0 && q < n) { return q; }
    if (p.reflect == 0u) { return -1; }
    return select(2 * (n - 1) - q, -q, q < 0);
}

// Grid: a 2-D grid of 256-wide workgroups covering N·D elements.
@compute @workgroup_size(256, 1, 1)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let e = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (e >= p.total) { return; }
    let d_cols = p.c_in * p.kh * p.kw;
    let n = e / d_cols;
    let d = e % d_cols;
    let j = d % p.kw;
    let i = (d / p.kw) % p.kh;
    let c = d / (p.kw * p.kh);
    let ow = n % p.wo;
    let oh = (n / p.wo) % p.ho;
    let b = n / (p.wo * p.ho);
    let y = source(i32(oh * p.sh + i) - i32(p.ph), p.h);
    let z = source(i32(ow * p.sw + j) - i32(p.pw), p.w);
    var v = 0.0;
    if (y >= 0 && z >= 0) {
        v = x[p.offset_x + ((b * p.c_in + c) * p.h + u32(y)) * p.w + u32(z)];
    }
    out[e] = v;
}
