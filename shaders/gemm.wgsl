// GEMM family: C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], row-major, op in {N, T}.
//
// Shapes (per batch b < batch; all offsets and strides in f32 elements):
//   op(A): M x K   A stored M x K (lda >= K)       or, transposed, K x M (lda >= M)
//   op(B): K x N   B stored K x N (ldb >= N)       or, transposed, N x K (ldb >= K)
//   C:     M x N   stored with ldc >= N
// With beta == 0, C is not read (so NaN in C does not propagate), as in BLAS.
//
// Split-K: the grid's z dimension is batch * splits. Split s sums k in
// [s * k_per_split, min((s + 1) * k_per_split, K)). With splits > 1 the launcher binds a
// workspace as C (alpha = 1, beta = 0, stride_c = M * N, ldc = N), so slot z = b * splits + s
// holds a partial product, and `gemm_splitk_reduce` writes C = alpha * sum_s W[b, s] + beta * C.
// Every element of C is written exactly once, by exactly one invocation (except by the optim
// epilogue without WRITE_DELTA, which writes W and its state instead; see gemm_epilogue.wgsl).
//
// The tiled kernel is gemm_tile_engine.wgsl's engine (tile shape, workgroup tiles, inner loop,
// double buffering) with this file's operand loads. Update epilogues: the entry points *_decay
// and *_optim (gemm_tiled, gemm_splitk_reduce here, gemm_subgroup in its file) run
// gemm_epilogue.wgsl on each element as it is written. The module's source starts with
// weight_update.wgsl, gemm_epilogue.wgsl and gemm_tile_engine.wgsl.
//
// Storage precision: A and B are f32, or IEEE halves packed two per 32-bit word (little-endian:
// element i is the low half of word i / 2 when i is even) when A_HALF / B_HALF are set; either
// way every product is accumulated in f32, and C is f32. The operands are declared as u32 words
// and bitcast, so the same bindings serve both precisions, and halves need no SHADER_F16:
// unpack2x16float is core WGSL: one half-to-float conversion per element, which a native f16
// load would need too.
//
// Bounds: A and B are read only at op(A)[m < M, k < K] and op(B)[k < K, n < N] of batch
// b < batch, C only at [m < M, n < N]; the launcher checks that each buffer holds
// offset + (batch - 1) * stride + (rows - 1) * ld + cols elements, so no access is out of
// bounds (the module is compiled without naga's runtime checks). The epilogues index W, r and
// the optimizer state at the element's row * N + col and row only (gemm_epilogue.wgsl).

struct GemmParams {
    m: u32, n: u32, k: u32, batch: u32,
    lda: u32, ldb: u32, ldc: u32, splits: u32,
    stride_a: u32, stride_b: u32, stride_c: u32, k_per_split: u32,
    offset_a: u32, offset_b: u32, offset_c: u32,
    // bit 0: A transposed, bit 1: B transposed
    trans: u32,
    alpha: f32, beta: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// The same buffers as a and b, read 16 bytes at a time (bound by the tiled entry points; tensors
// are padded to 16 bytes, so the block holding an in-bounds element is in the buffer).
@group(0) @binding(4) var<storage, read> a4: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<u32>>;
// Split-K partial products, [batch * splits, M, N] (bound by the gemm_splitk_reduce entry points).
@group(0) @binding(6) var<storage, read> partials: array<f32>;

// Read A / B as vec4 along their contiguous dimension. The launcher sets these only when the
// leading dimension, batch stride and offset of that operand are multiples of 4.
override VEC4_A: bool = false;
override VEC4_B: bool = false;
// Operands stored as packed halves (the launcher sets these from the tensors' dtypes).
override A_HALF: bool = false;
override B_HALF: bool = false;
// Element i of a (or b), widened to f32.
fn a_at(i: u32) -> f32 {
    if (A_HALF) { return unpack2x16float(a[i >> 1u])[i & 1u]; }
    return bitcast<f32>(a[i]);
}
fn b_at(i: u32) -> f32 {
    if (B_HALF) { return unpack2x16float(b[i >> 1u])[i & 1u]; }
    return bitcast<f32>(b[i]);
}

// Elements i..i+3 of a four-word block (i a multiple of 4): one 16-byte load of f32s, or half
// of one 16-byte load of eight halves.
fn widen4(block: vec4<u32>, i: u32, half: bool) -> vec4<f32> {
    if (half) {
        let pair = select(block.xy, block.zw, (i & 4u) != 0u);
        return vec4<f32>(unpack2x16float(pair.x), unpack2x16float(pair.y));
    }
    return bitcast<vec4<f32>>(block);
}
fn a_at4(i: u32) -> vec4<f32> { return widen4(a4[i >> select(2u, 3u, A_HALF)], i, A_HALF); }
fn b_at4(i: u32) -> vec4<f32> { return widen4(b4[i >> select(2u, 3u, B_HALF)], i, B_HALF); }

fn trans_a() -> bool { return (p.trans & 1u) != 0u; }
fn trans_b() -> bool { return (p.trans & 2u) != 0u; }

// op(A)[m, k] of the batch at `base`, zero outside [0, M) x [0, k_end).
fn read_a(base: u32, m: u32, k: u32, k_end: u32) -> f32 {
    if (m >= p.m || k >= k_end) { return 0.0; }
    return a_at(base + select(m * p.lda + k, k * p.lda + m, trans_a()));
}

// op(B)[k, n] of the batch at `base`, zero outside [0, k_end) x [0, N).
fn read_b(base: u32, k: u32, n: u32, k_end: u32) -> f32 {
    if (k >= k_end || n >= p.n) { return 0.0; }
    return b_at(base + select(k * p.ldb + n, n * p.ldb + k, trans_b()));
}

// Four elements of op(A) starting at [m, k], along A's contiguous dimension
// (k when A is stored M x K, m when it is stored K x M).
fn read_a4(base: u32, m: u32, k: u32, k_end: u32) -> vec4<f32> {
    let t = trans_a();
    let full = select(m < p.m && k + 3u < k_end, k < k_end && m + 3u < p.m, t);
    if (full) {
        return a_at4(base + select(m * p.lda + k, k * p.lda + m, t));
    }
    let dm = select(0u, 1u, t);
    let dk = 1u - dm;
    return vec4<f32>(read_a(base, m, k, k_end), read_a(base, m + dm, k + dk, k_end),
                     read_a(base, m + 2u * dm, k + 2u * dk, k_end),
                     read_a(base, m + 3u * dm, k + 3u * dk, k_end));
}

// Four elements of op(B) starting at [k, n], along B's contiguous dimension
// (n when B is stored K x N, k when it is stored N x K).
fn read_b4(base: u32, k: u32, n: u32, k_end: u32) -> vec4<f32> {
    let t = trans_b();
    let full = select(k < k_end && n + 3u < p.n, n < p.n && k + 3u < k_end, t);
    if (full) {
        return b_at4(base + select(k * p.ldb + n, n * p.ldb + k, t));
    }
    let dk = select(0u, 1u, t);
    let dn = 1u - dk;
    return vec4<f32>(read_b(base, k, n, k_end), read_b(base, k + dk, n + dn, k_end),
                     read_b(base, k + 2u * dk, n + 2u * dn, k_end),
                     read_b(base, k + 3u * dk, n + 3u * dn, k_end));
}

// Stage op(A)[m0.., k0..] into a_tile. Consecutive invocations walk A's contiguous dimension,
// so global reads coalesce.
// Into buffer rows row0 .. row0 + BK - 1 (row0 = st * BK).
fn load_a_tile(base: u32, m0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    let t = trans_a();
    let cont = select(BK, BM, t);
    if (VEC4_A) {
        let per = cont / 4u;
        for (var e = tid; e < BM * BK / 4u; e += threads) {
            let c4 = (e % per) * 4u;
            let o = e / per;
            let mm = select(o, c4, t);
            let kk = select(c4, o, t);
            let v = read_a4(base, m0 + mm, k0 + kk, k_end);
            if (t) {
                // Four consecutive m at one k: exactly one vec4 of a_tile.
                a_tile[(row0 + kk) * (BM / 4u) + mm / 4u] = v;
            } else {
                for (var q = 0u; q < 4u; q++) { store_a(row0 + kk + q, mm, v[q]); }
            }
        }
    } else {
        for (var e = tid; e < BM * BK; e += threads) {
            let cc = e % cont;
            let o = e / cont;
            let mm = select(o, cc, t);
            let kk = select(cc, o, t);
            store_a(row0 + kk, mm, read_a(base, m0 + mm, k0 + kk, k_end));
        }
    }
}

// Stage op(B)[k0.., n0..] into b_tile, walking B's contiguous dimension.
fn load_b_tile(base: u32, n0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    let t = trans_b();
    let cont = select(BN, BK, t);
    if (VEC4_B) {
        let per = cont / 4u;
        for (var e = tid; e < BN * BK / 4u; e += threads) {
            let c4 = (e % per) * 4u;
            let o = e / per;
            let kk = select(o, c4, t);
            let nn = select(c4, o, t);
            let v = read_b4(base, k0 + kk, n0 + nn, k_end);
            if (t) {
                for (var q = 0u; q < 4u; q++) { store_b(row0 + kk + q, nn, v[q]); }
            } else {
                // Four consecutive n at one k: exactly one vec4 of b_tile.
                b_tile[(row0 + kk) * (BN / 4u) + nn / 4u] = v;
            }
        }
    } else {
        for (var e = tid; e < BN * BK; e += threads) {
            let cc = e % cont;
            let o = e / cont;
            let kk = select(o, cc, t);
            let nn = select(cc, o, t);
            store_b(row0 + kk, nn, read_b(base, k0 + kk, n0 + nn, k_end));
        }
    }
}

// The engine's operand hooks (gemm_tile_engine.wgsl): op(A) and op(B) of the batch whose
// elements start at base_a and base_b, which each entry point sets from its workgroup.
var<private> base_a: u32;
var<private> base_b: u32;

fn stage_a(m0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    load_a_tile(base_a, m0, k0, k_end, tid, threads, row0);
}
fn stage_b(n0: u32, k0: u32, k_end: u32, tid: u32, threads: u32, row0: u32) {
    load_b_tile(base_b, n0, k0, k_end, tid, threads, row0);
}

// The engine's register block for workgroup wg: batch wg.z / splits, K split wg.z % splits.
fn batch_tile_product(wg: vec3<u32>, lid: vec3<u32>) -> array<vec4<f32>, 4u * MAX_SUB * MAX_SUB> {
    let batch = wg.z / p.splits;
    let split = wg.z % p.splits;
    let k_begin = split * p.k_per_split;
    let k_end = min(k_begin + p.k_per_split, p.k);
    base_a = p.offset_a + batch * p.stride_a;
    base_b = p.offset_b + batch * p.stride_b;
    return tile_product(lid, wg.y * BM, wg.x * BN, k_begin, k_end);
}

// Grid: (ceil(N / BN), ceil(M / BM), batch * splits).
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn gemm_tiled(@builtin(workgroup_id) wg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = batch_tile_product(wg, lid);
    // Slot z of C: batch b when splits == 1, workspace slot b * splits + s otherwise.
    store_block(lid, wg.y * BM, wg.x * BN, &acc, p.offset_c + wg.z * p.stride_c, p.ldc, p.m, p.n,
                p.alpha, p.beta);
}

// The decay epilogue (gemm_epilogue.wgsl) on a single, unsplit product.
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn gemm_tiled_decay(@builtin(workgroup_id) wg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = batch_tile_product(wg, lid);
    store_block_decay(lid, wg.y * BM, wg.x * BN, &acc, p.m, p.n, p.alpha);
}

// The optimizer epilogue (gemm_epilogue.wgsl) on a single, unsplit product.
@compute @workgroup_size(BN / TN, BM / TM, 1)
fn gemm_tiled_optim(@builtin(workgroup_id) wg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = batch_tile_product(wg, lid);
    store_block_optim(lid, wg.y * BM, wg.x * BN, &acc, p.m, p.n, p.alpha);
}

// Baseline: one invocation per element of C, reading A and B straight from global memory.
// Grid: (ceil(N / 16), ceil(M / 16), batch).
@compute @workgroup_size(16, 16, 1)
fn gemm_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if (row >= p.m || col >= p.n) { return; }
    let base_a = p.offset_a + gid.z * p.stride_a;
    let base_b = p.offset_b + gid.z * p.stride_b;
    var acc = 0.0;
    for (var k = 0u; k < p.k; k++) {
        acc = fma(read_a(base_a, row, k, p.k), read_b(base_b, k, col, p.k), acc);
    }
    let idx = p.offset_c + gid.z * p.stride_c + row * p.ldc + col;
    var v = p.alpha * acc;
    if (p.beta != 0.0) { v = fma(p.beta, c[idx], v); }
    c[idx] = v;
}

// C[b, m, n] = alpha * sum_s partials[b * splits + s, m, n] + beta * C[b, m, n].
// Grid: (ceil(N / 64), M, batch); one invocation per element of C.
@compute @workgroup_size(64, 1, 1)
fn gemm_splitk_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if (col >= p.n || row >= p.m) { return; }
    let idx = p.offset_c + gid.z * p.stride_c + row * p.ldc + col;
    var v = split_sum(gid.z, row, col);
    if (p.beta != 0.0) { v = fma(p.beta, c[idx], v); }
    c[idx] = v;
}

// The split-K sum of one element of C: alpha * sum_s partials[b * splits + s, row, col].
fn split_sum(b: u32, row: u32, col: u32) -> f32 {
    let plane = p.m * p.n;
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum += partials[(b * p.splits + s) * plane + row * p.n + col];
    }
    return p.alpha * sum;
}

// gemm_splitk_reduce followed by the decay epilogue (one batch). Grid: (ceil(N / 64), M, 1).
@compute @workgroup_size(64, 1, 1)
fn gemm_splitk_reduce_decay(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(local_invocation_index) li: u32) {
    let col = gid.x;
    let row = gid.y;
    var bits = 0u;
    if (col < p.n && row < p.m) {
        bits = epilogue_decay(row * p.n + col, row, split_sum(0u, row, col));
    }
    fold_abs_max_workgroup(bits, li == 0u);
}

// gemm_splitk_reduce followed by the optimizer epilogue (one batch). Grid: (ceil(N / 64), M, 1).
@compute @workgroup_size(64, 1, 1)
fn gemm_splitk_reduce_optim(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if (col >= p.n || row >= p.m) { return; }
    epilogue_optim(row * p.n + col, split_sum(0u, row, col));
}
