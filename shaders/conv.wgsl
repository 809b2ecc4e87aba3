// Convolution as an implicit GEMM: the products of a conv layer on the patch matrix P, with P's
// elements gathered from the input inside the tile loads, so P is never stored.
//
//   x: (B, C_in, H, W) NCHW, starting at element offset_x (a step of a larger tensor)
//   P: N x D as in im2col.wgsl, N = B·Ho·Wo rows n = (b·Ho + oh)·Wo + ow, D = C_in·kh·kw
//      columns d = (c·kh + i)·kw + j, P[n, d] = x_pad[b, c, oh·sh + i, ow·sw + j], with zero
//      or reflect padding (mirror without repeating the edge: -1 -> 1, H -> H - 2).
//
//   conv_forward_rows: U (N x C)  = alpha · P·Wᵀ + beta · U     W: C x D row-major
//   conv_update:       ΔW (C x D) = alpha · Gᵀ·P + beta · ΔW    G: N x C row-major
//
// Both are gemm.wgsl's `gemm_tiled` (same BM/BN/BK/TM/TN tiles, TM x TN register blocks of
// 4 x 4 sub-blocks, ragged edges zero-filled in the loads) on the GEMM view M x N_out x K =
// N x C x D (forward) or C x D x N (update). With beta == 0 the output is not read.
//
// Split-K: the grid's z dimension is the split s, which sums k in
// [s * k_per_split, min((s + 1) * k_per_split, K)). With splits > 1 the launcher binds a
// workspace as the output (alpha = 1, beta = 0, stride_c = M * N_out), so slot s holds a
// partial product, and gemm.wgsl's `gemm_splitk_reduce` writes out = alpha * sum + beta * out.
// Every output element is written exactly once, by exactly one invocation.
//
// Bindings: 0 uniform ConvParams, 1 x, 2 mat (W for the forward, G for the update),
// 3 out (U or ΔW, or the workspace), 4 mat again, viewed as vec4.
//
// Bounds: x is read only at offset_x + ((b·C_in + c)·H + y)·W + z with b < B, c < C_in and the
// padded coordinate mapped to y < H, z < W (reflect needs ph < H and pw < W, which the launcher
// checks); W only at [c < C, d < D], G only at [n < N, c < C]; the output only at
// z·stride_c + [m < M, n < N_out]. The launcher checks every tensor holds its extent, so no
// access is out of bounds (the module is compiled without naga's runtime checks).

struct ConvParams {
    batch: u32, c_in: u32, h: u32, w: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    ph: u32, pw: u32, ho: u32, wo: u32,
    reflect: u32, offset_x: u32,
    // The GEMM view: output M x N_out (dense, ld = N_out), inner dimension K.
    m: u32, n: u32,
    k: u32, splits: u32, k_per_split: u32, stride_c: u32,
    alpha: f32, beta: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mat: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> mat4: array<vec4<f32>>;

// Tiles as in gemm.wgsl. The launcher also requires the workgroup size to be a multiple of
// BM / 4 and of BN / 4, so each invocation gathers the same four rows (forward) or columns
// (update) of P at every K step and decodes their geometry once.
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
override TM: u32 = 8u;
override TN: u32 = 8u;
// Read `mat` as vec4 along its rows; the launcher sets it only when the row length (D for W,
// C for G) is a multiple of 4.
override VEC4: bool = false;
const MAX_SUB: u32 = 2u;

// a_tile[kk * BM / 4 + mm / 4][mm % 4] = op(A)[m0 + mm, k0 + kk]
// b_tile[kk * BN / 4 + nn / 4][nn % 4] = op(B)[k0 + kk, n0 + nn]
var<workgroup> a_tile: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> b_tile: array<vec4<f32>, BK * BN / 4u>;

// acc[(r * 4 + i) * MAX_SUB + cg] = row i of register sub-block (r, cg): four output columns.
var<private> acc: array<vec4<f32>, 4u * MAX_SUB * MAX_SUB>;

fn store_a(kk: u32, mm: u32, v: f32) { a_tile[kk * (BM / 4u) + mm / 4u][mm % 4u] = v; }
fn store_b(kk: u32, nn: u32, v: f32) { b_tile[kk * (BN / 4u) + nn / 4u][nn % 4u] = v; }

// The unpadded coordinate for padded coordinate q (= position - padding), or -1 for a zero.
fn source(q: i32, len: u32) -> i32 {
    let n = i32(len);
    if (q >= 0 && q < n) { return q; }
    if (p.reflect == 0u) { return -1; }
    return select(2 * (n - 1) - q, -q, q < 0);
}

// x_pad at padded coordinates (y, z) of the plane starting at `plane` (offset_x included).
fn gather(plane: u32, y: i32, z: i32) -> f32 {
    let sy = source(y, p.h);
    let sz = source(z, p.w);
    if (sy < 0 || sz < 0) { return 0.0; }
    return x[plane + u32(sy) * p.w + u32(sz)];
}

// Patch row n (< N) as its image's first element and its window's top-left padded coordinate.
struct Window { image: u32, top: i32, left: i32 }

fn window(n: u32) -> Window {
    let ow = n % p.wo;
    let t = n / p.wo;
    let oh = t % p.ho;
    let b = t / p.ho;
    return Window(p.offset_x + b * p.c_in * p.h * p.w,
                  i32(oh * p.sh) - i32(p.ph), i32(ow * p.sw) - i32(p.pw));
}

// Patch column d (< D) as its channel's plane offset and its kernel tap (i, j).
struct Tap { plane: u32, i: i32, j: i32 }

fn tap(d: u32) -> Tap {
    let j = d % p.kw;
    let t = d / p.kw;
    let i = t % p.kh;
    let c = t / p.kh;
    return Tap(c * p.h * p.w, i32(i), i32(j));
}

fn zero_acc() {
    for (var s = 0u; s < 4u * MAX_SUB * MAX_SUB; s++) { acc[s] = vec4<f32>(0.0); }
}

// acc += a_tile · b_tile for one staged BK step (gemm_tiled's inner loop).
fn multiply_tiles(lid: vec3<u32>) {
    let wx = BN / TN;
    let wy = BM / TM;
    var a_reg: array<vec4<f32>, MAX_SUB>;
    var b_reg: array<vec4<f32>, MAX_SUB>;
    for (var kk = 0u; kk < BK; kk++) {
        for (var r = 0u; r < TM / 4u; r++) { a_reg[r] = a_tile[kk * (BM / 4u) + lid.y + r * wy]; }
        for (var cg = 0u; cg < TN / 4u; cg++) { b_reg[cg] = b_tile[kk * (BN / 4u) + lid.x + cg * wx]; }
        for (var r = 0u; r < TM / 4u; r++) {
            for (var i = 0u; i < 4u; i++) {
                for (var cg = 0u; cg < TN / 4u; cg++) {
                    let slot = (r * 4u + i) * MAX_SUB + cg;
                    acc[slot] = fma(vec4<f32>(a_reg[r][i]), b_reg[cg], acc[slot]);
                }
            }
        }
    }
}

// out[z * stride_c + row * N_out + col] = alpha * acc + beta * out for the invocation's block.
fn store_block(lid: vec3<u32>, m0: u32, n0: u32, z: u32) {
    let wx = BN / TN;
    let wy = BM / TM;
    let base_c = z * p.stride_c;
    for (var r = 0u; r < TM / 4u; r++) {
        for (var i = 0u; i < 4u; i++) {
            let row = m0 + 4u * (lid.y + r * wy) + i;
            if (row >= p.m) { break; }
            for (var cg = 0u; cg < TN / 4u; cg++) {
                let v4 = p.alpha * acc[(r * 4u + i) * MAX_SUB + cg];
                for (var j = 0u; j < 4u; j++) {
                    let col = n0 + 4u * (lid.x + cg * wx) + j;
                    if (col >= p.n) { break; }
                    let idx = base_c + row * p.n + col;
                    var v = v4[j];
                    if (p.beta != 0.0) { v = fma(p.beta, out[idx], v); }
                    out[idx] = v;
                }
            }
        }
    }
}

// mat[r, c] of a row-major matrix with `cols` columns, zero outside [0, rows) x [0, c_end).
fn read_mat(r: u32, c: u32, rows: u32, cols: u32, c_end: u32) -> f32 {
    if (r >= rows || c >= c_end) { return 0.0; }
    return mat[r * cols + c];
}

// mat[r, c..c + 3], zero-filled past row `rows` or column c_end.
fn read_mat4(r: u32, c: u32, rows: u32, cols: u32, c_end: u32) -> vec4<f32> {
    if (r < rows && c + 3u < c_end) { return mat4[(r * cols + c) / 4u]; }
    return vec4<f32>(read_mat(r, c, rows, cols, c_end), read_mat(r, c + 1u, rows, cols, c_end),
                     read_mat(r, c + 2u, rows, cols, c_end), read_mat(r, c + 3u, rows, cols, c_end));
}

// Forward B tile: op(B)[k, n] = W[n, k], W stored C x D (rows along k), walking k.
fn load_w_tile(n0: u32, k0: u32, k_end: u32, tid: u32, threads: u32) {
    if (VEC4) {
        let per = BK / 4u;
        for (var e = tid; e < BN * BK / 4u; e += threads) {
            let kk = (e % per) * 4u;
            let nn = e / per;
            let v = read_mat4(n0 + nn, k0 + kk, p.n, p.k, k_end);
            for (var q = 0u; q < 4u; q++) { store_b(kk + q, nn, v[q]); }
        }
    } else {
        for (var e = tid; e < BN * BK; e += threads) {
            let kk = e % BK;
            let nn = e / BK;
            store_b(kk, nn, read_mat(n0 + nn, k0 + kk, p.n, p.k, k_end));
        }
    }
}

// Update A tile: op(A)[m, k] = G[k, m], G stored N x C (rows along m), walking m.
fn load_g_tile(m0: u32, k0: u32, k_end: u32, tid: u32, threads: u32) {
    if (VEC4) {
        let per = BM / 4u;
        for (var e = tid; e < BM * BK / 4u; e += threads) {
            let mm = (e % per) * 4u;
            let kk = e / per;
            // Four consecutive m at one k: exactly one vec4 of a_tile.
            a_tile[kk * (BM / 4u) + mm / 4u] = read_mat4(k0 + kk, m0 + mm, k_end, p.m, p.m);
        }
    } else {
        for (var e = tid; e < BM * BK; e += threads) {
            let mm = e % BM;
            let kk = e / BM;
            store_a(kk, mm, read_mat(k0 + kk, m0 + mm, k_end, p.m, p.m));
        }
    }
}

// U (N x C) = alpha · P·Wᵀ + beta · U: M = N, N_out = C, K = D; P gathered in the A tile.
// Grid: (ceil(C / BN), ceil(N / BM), splits).
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn conv_forward_rows(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let threads = (BN / TN) * (BM / TM);
    let tid = lid.y * (BN / TN) + lid.x;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let k_begin = wg.z * p.k_per_split;
    let k_end = min(k_begin + p.k_per_split, p.k);

    // This invocation stages rows m0 + r4 + 0..3 of P at every K step (threads is a multiple
    // of BM / 4), so their windows are decoded once. Rows past N are clamped to N - 1: tile row
    // mm feeds only output row m0 + mm, which is not stored then.
    let per = BM / 4u;
    let r4 = (tid % per) * 4u;
    var windows: array<Window, 4>;
    for (var q = 0u; q < 4u; q++) { windows[q] = window(min(m0 + r4 + q, p.m - 1u)); }

    zero_acc();
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        for (var e = tid; e < BM * BK / 4u; e += threads) {
            let kk = e / per;
            let k = k0 + kk;
            var v = vec4<f32>(0.0);
            if (k < k_end) {
                let t = tap(k);
                for (var q = 0u; q < 4u; q++) {
                    let w = windows[q];
                    v[q] = gather(w.image + t.plane, w.top + t.i, w.left + t.j);
                }
            }
            a_tile[kk * (BM / 4u) + r4 / 4u] = v;
        }
        load_w_tile(n0, k0, k_end, tid, threads);
        workgroupBarrier();
        multiply_tiles(lid);
        workgroupBarrier();
    }
    store_block(lid, m0, n0, wg.z);
}

// ΔW (C x D) = alpha · Gᵀ·P + beta · ΔW: M = C, N_out = D, K = N; P gathered in the B tile.
// Grid: (ceil(D / BN), ceil(C / BM), splits).
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn conv_update(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let threads = (BN / TN) * (BM / TM);
    let tid = lid.y * (BN / TN) + lid.x;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let k_begin = wg.z * p.k_per_split;
    let k_end = min(k_begin + p.k_per_split, p.k);

    // This invocation stages columns n0 + c4 + 0..3 of P at every K step (threads is a
    // multiple of BN / 4), so their kernel taps are decoded once. Columns past D are clamped to
    // D - 1: tile column nn feeds only output column n0 + nn, which is not stored then.
    let per = BN / 4u;
    let c4 = (tid % per) * 4u;
    var taps: array<Tap, 4>;
    for (var q = 0u; q < 4u; q++) { taps[q] = tap(min(n0 + c4 + q, p.n - 1u)); }

    zero_acc();
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        load_g_tile(m0, k0, k_end, tid, threads);
        for (var e = tid; e < BN * BK / 4u; e += threads) {
            let kk = e / per;
            let k = k0 + kk;
            var v = vec4<f32>(0.0);
            if (k < k_end) {
                let w = window(k);
                for (var q = 0u; q < 4u; q++) {
                    let t = taps[q];
                    v[q] = gather(w.image + t.plane, w.top + t.i, w.left + t.j);
                }
            }
            // Four consecutive columns at one k: exactly one vec4 of b_tile.
            b_tile[kk * (BN / 4u) + c4 / 4u] = v;
        }
        workgroupBarrier();
        multiply_tiles(lid);
        workgroupBarrier();
    }
    store_block(lid, m0, n0, wg.z);
}
