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
// Both run gemm_tile_engine.wgsl's engine, the one gemm.wgsl's `gemm_tiled` runs (the same
// tiles, register blocks, double buffering and store), on the GEMM view M x N_out x K =
// N x C x D (forward) or C x D x N (update); this file supplies the operand loads, which
// gather P. With beta == 0 the output is not read.
//
// Update epilogues: conv_update_decay and conv_update_optim run gemm_epilogue.wgsl on each
// element of an unsplit ΔW as it is written (a split update runs them in gemm.wgsl's
// reduction instead). The module's source starts with weight_update.wgsl, gemm_epilogue.wgsl
// and the engine.
//
// Split-K: the grid's z dimension is the split s, which sums k in
// [s * k_per_split, min((s + 1) * k_per_split, K)). With splits > 1 the launcher binds a
// workspace as the output (alpha = 1, beta = 0, stride_c = M * N_out), so slot s holds a
// partial product, and gemm.wgsl's `gemm_splitk_reduce` writes out = alpha * sum + beta * out.
// Every output element is written exactly once, by exactly one invocation.
//
// Bindings: 0 uniform ConvParams, 1 x, 2 mat (W for the forward, G for the update),
// 3 c (the output U or ΔW, or the workspace), 4 mat again, viewed as vec4.
//
// Bounds: x is read only at offset_x + ((b·C_in + c)·H + y)·W + z with b < B, c < C_in and the
// padded coordinate mapped to y < H, z < W (reflect needs ph < H and pw < W, which the launcher
// checks); W only at [c < C, d < D], G only at [n < N, c < C]; the output only at
// z·stride_c + [m < M, n < N_out]; the epilogues index W, r and the optimizer state at
// row·N_out + col and row only (gemm_epilogue.wgsl). The launcher checks every tensor holds its
// extent, so no access is out of bounds (the module is compiled without naga's runtime checks).

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
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> mat4: array<vec4<f32>>;

// The engine's tiles (gemm_tile_engine.wgsl). The launcher also requires the workgroup size
// to be a multiple of BM / 4 and of BN / 4, so each invocation gathers the same four rows
// (forward) or columns (update) of P at every K step and decodes their geometry once.
// Read `mat` as vec4 along its rows; the launcher sets it only when the row length (D for W,
// C for G) is a multiple of 4.
override VEC4: bool = false;

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
fn load_w_tile(n0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    if (VEC4) {
        let per = BK / 4u;
        for (var e = tid; e < BN * BK / 4u; e += threads) {
            let kk = (e % per) * 4u;
            let nn = e / per;
            let v = read_mat4(n0 + nn, k0 + kk, p.n, p.k, k_end);
            for (var q = 0u; q < 4u; q++) { store_b(row0 + kk + q, nn, v[q]); }
        }
    } else {
        for (var e = tid; e < BN * BK; e += threads) {
            let kk = e % BK;
            let nn = e / BK;
            store_b(row0 + kk, nn, read_mat(n0 + nn, k0 + kk, p.n, p.k, k_end));
        }
    }
}

// Update A tile: op(A)[m, k] = G[k, m], G stored N x C (rows along m), walking m.
fn load_g_tile(m0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    if (VEC4) {
        let per = BM / 4u;
        for (var e = tid; e < BM * BK / 4u; e += threads) {
            let mm = (e % per) * 4u;
            let kk = e / per;
            // Four consecutive m at one k: exactly one vec4 of a_tile.
            a_tile[(row0 + kk) * (BM / 4u) + mm / 4u] = read_mat4(k0 + kk, m0 + mm, k_end, p.m, p.m);
        }
    } else {
        for (var e = tid; e < BM * BK; e += threads) {
            let mm = e % BM;
            let kk = e / BM;
            store_a(row0 + kk, mm, read_mat(k0 + kk, m0 + mm, k_end, p.m, p.m));
        }
    }
}

// The gathers of P into the engine's tiles. Each entry point sets which product it computes
// and decodes the geometry of the four rows (forward: windows) or columns (update: taps) of P
// this invocation stages at every K step.
var<private> update: bool;
var<private> windows: array<Window, 4>;
var<private> taps: array<Tap, 4>;

// Forward A tile: op(A)[m, k] = P[m, k] for this invocation's rows r4 + 0..3 (threads is a
// multiple of BM / 4, so e % (BM / 4) is the same at every step).
fn gather_rows(k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    let per = BM / 4u;
    let r4 = (tid % per) * 4u;
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
        a_tile[(row0 + kk) * (BM / 4u) + r4 / 4u] = v;
    }
}

// Update B tile: op(B)[k, n] = P[k, n] for this invocation's columns c4 + 0..3.
fn gather_columns(k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    let per = BN / 4u;
    let c4 = (tid % per) * 4u;
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
        b_tile[(row0 + kk) * (BN / 4u) + c4 / 4u] = v;
    }
}

fn stage_a(m0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    if (update) {
        load_g_tile(m0, k0, k_end, tid, threads, row0);
    } else {
        gather_rows(k0, k_end, tid, threads, row0);
    }
}
fn stage_b(n0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    if (update) {
        gather_columns(k0, k_end, tid, threads, row0);
    } else {
        load_w_tile(n0, k0, k_end, tid, threads, row0);
    }
}

// The engine's register block of split wg.z, stored (alpha, beta) at workspace slot wg.z.
fn conv_tile(wg: vec3<u32>, lid: vec3<u32>) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let k_begin = wg.z * p.k_per_split;
    let k_end = min(k_begin + p.k_per_split, p.k);
    var acc = tile_product(lid, m0, n0, k_begin, k_end);
    store_block(lid, m0, n0, &acc, wg.z * p.stride_c, p.n, p.m, p.n, p.alpha, p.beta);
}

// U (N x C) = alpha · P·Wᵀ + beta · U: M = N, N_out = C, K = D; P gathered in the A tile.
// Grid: (ceil(C / BN), ceil(N / BM), splits).
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn conv_forward_rows(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    // Rows past N are clamped to N - 1: tile row mm feeds only output row m0 + mm, which is
    // not stored then.
    update = false;
    let r4 = (tile_tid(lid) % (BM / 4u)) * 4u;
    for (var q = 0u; q < 4u; q++) { windows[q] = window(min(wg.y * BM + r4 + q, p.m - 1u)); }
    conv_tile(wg, lid);
}

// The update's setup: this invocation's kernel taps. Columns past D are clamped to D - 1:
// tile column nn feeds only output column n0 + nn, which is not stored then.
fn begin_update(wg: vec3<u32>, lid: vec3<u32>) {
    update = true;
    let c4 = (tile_tid(lid) % (BN / 4u)) * 4u;
    for (var q = 0u; q < 4u; q++) { taps[q] = tap(min(wg.x * BN + c4 + q, p.n - 1u)); }
}

// ΔW (C x D) = alpha · Gᵀ·P + beta · ΔW: M = C, N_out = D, K = N; P gathered in the B tile.
// Grid: (ceil(D / BN), ceil(C / BM), splits).
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn conv_update(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    begin_update(wg, lid);
    conv_tile(wg, lid);
}

// The update epilogues (gemm_epilogue.wgsl, as gemm.wgsl's gemm_tiled_decay / _optim) on an
// unsplit update: ΔW is one dense C x D matrix, element (row, col) at row · D + col.
// Grid: (ceil(D / BN), ceil(C / BM), 1).
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn conv_update_decay(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    begin_update(wg, lid);
    var acc = tile_product(lid, wg.y * BM, wg.x * BN, 0u, p.k);
    store_block_decay(lid, wg.y * BM, wg.x * BN, &acc, p.m, p.n, p.alpha);
}

@compute @workgroup_size(BN / TN, BM / TM, 1)
fn conv_update_optim(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    begin_update(wg, lid);
    var acc = tile_product(lid, wg.y * BM, wg.x * BN, 0u, p.k);
    store_block_optim(lid, wg.y * BM, wg.x * BN, &acc, p.m, p.n, p.alpha);
}
