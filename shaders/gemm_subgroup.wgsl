// GEMM, subgroup-broadcast variant (needs SUBGROUP): the same product and parameters as
// gemm.wgsl (C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], row-major, op in {N, T}, split-K
// through the grid's z), without workgroup memory or barriers. Built for SIMD CPU adapters
// (lavapipe), where every invocation is one SIMD lane and every buffer load is a loop over the
// lanes: it loads each operand element once per workgroup and shares A across lanes with
// subgroup broadcasts, which are register shuffles.
//
// A workgroup is 8 invocations (one team inside one subgroup: the launcher requires a minimum
// subgroup size of 8) and computes a ROWS x 32 block of C: rows m0 .. m0 + ROWS - 1, and
// columns n0 + 4 * lane .. + 3 for lane < 8. Per block of 4 steps along k, for each group g of
// 8 rows:
//   - lane l loads one vec4 of op(A): A stored M x K: row m0 + 8g + l, k .. k + 3;
//     A stored K x M: row k + l % 4, columns m0 + 8g + 4 * (l / 4) ..;
//   - the 8 A vec4s are broadcast to every lane, and each lane does 8 x 4 vec4 FMAs into its
//     accumulators;
// and each lane loads four vec4s of op(B) for its 4 columns at k .. k + 3, shared by all
// groups. Per lane: 128 FMAs per 5 vec4 loads at 8 rows, 256 per 6 at 16 (gemm_tiled: 16 per
// workgroup-memory vec4, plus the staging loads).
// The last K % 4 steps of a split use scalar loads.
//
// Preconditions (checked by the launcher, which otherwise runs gemm_tiled): lda, ldb, the
// offsets and (batch > 1) the batch strides are multiples of 4; M % 4 == 0 when A is stored
// K x M; N % 4 == 0 when B is stored K x N. Loads past the edge of M or N are clamped to the
// last valid row or column (their results are not stored), so no access is out of bounds.

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
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;

// Rows of C per workgroup: 8, 16 or 24, in groups of 8 (one A vec4 per lane per group).
override ROWS: u32 = 8u;
const GROUPS_MAX: u32 = 3u;
const LANES: u32 = 8u;

// The 8 lanes' A vec4s, broadcast to every lane (subgroupBroadcast takes a constant lane).
fn broadcast_a(v: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
        subgroupBroadcast(v, 3u), subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
        subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// This lane's products: acc[r][j] = op(A)·op(B)[m0 + r, n0 + 4 * lane + j] over split
// wg.z % splits of K (rows past M and columns past N hold clamped duplicates).
fn lane_product(wg: vec3<u32>, lane: u32) -> array<vec4<f32>, 8u * GROUPS_MAX> {
    let ta = (p.trans & 1u) != 0u;
    let tb = (p.trans & 2u) != 0u;
    let m0 = wg.y * ROWS;
    let n0 = wg.x * LANES * 4u;
    let batch = wg.z / p.splits;
    let split = wg.z % p.splits;
    let k_begin = split * p.k_per_split;
    let k_end = min(k_begin + p.k_per_split, p.k);
    let base_a = p.offset_a + batch * p.stride_a;
    let base_b = p.offset_b + batch * p.stride_b;

    // This lane's A vec4 of row group g at k: a_at[g] + (A stored K x M ? k * lda : k).
    let groups = ROWS / 8u;
    var a_at: array<u32, GROUPS_MAX>;
    for (var g = 0u; g < groups; g++) {
        let g0 = m0 + 8u * g;
        if (ta) {
            a_at[g] = base_a + (lane % 4u) * p.lda + min(g0 + 4u * (lane / 4u), p.m - 4u);
        } else {
            a_at[g] = base_a + min(g0 + lane, p.m - 1u) * p.lda;
        }
    }
    // This lane's four columns: B stored K x N reads one vec4 per k at b_at + k * ldb;
    // B stored N x K reads column j's vec4 of four k at b_col[j] + k.
    let first = n0 + 4u * lane;
    let b_at = base_b + min(first, p.n - 4u);
    var b_col: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) { b_col[j] = base_b + min(first + j, p.n - 1u) * p.ldb; }

    var acc: array<vec4<f32>, 8u * GROUPS_MAX>;
    var k = k_begin;
    for (; k + 4u <= k_end; k += 4u) {
        var bv: array<vec4<f32>, 4>;
        if (tb) {
            var t: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j++) { t[j] = b4[(b_col[j] + k) / 4u]; }
            for (var q = 0u; q < 4u; q++) {
                bv[q] = vec4<f32>(t[0][q], t[1][q], t[2][q], t[3][q]);
            }
        } else {
            for (var q = 0u; q < 4u; q++) { bv[q] = b4[(b_at + (k + q) * p.ldb) / 4u]; }
        }
        for (var g = 0u; g < groups; g++) {
            let bc = broadcast_a(a4[(a_at[g] + select(k, k * p.lda, ta)) / 4u]);
            for (var r = 0u; r < 8u; r++) {
                for (var q = 0u; q < 4u; q++) {
                    // op(A)[m0 + 8g + r, k + q]
                    let av = select(bc[r][q], bc[q + 4u * (r / 4u)][r % 4u], ta);
                    acc[8u * g + r] = fma(vec4<f32>(av), bv[q], acc[8u * g + r]);
                }
            }
        }
    }
    // K tail (fewer than 4 steps): lane l holds op(A)[m0 + 8g + l, k].
    for (; k < k_end; k++) {
        var bv: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            bv[j] = b[select(b_at + k * p.ldb + j, b_col[j] + k, tb)];
        }
        for (var g = 0u; g < groups; g++) {
            let row = min(m0 + 8u * g + lane, p.m - 1u);
            let own = a[base_a + select(row * p.lda + k, k * p.lda + row, ta)];
            let bc = broadcast_a(vec4<f32>(own));
            for (var r = 0u; r < 8u; r++) {
                acc[8u * g + r] = fma(vec4<f32>(bc[r].x), bv, acc[8u * g + r]);
            }
        }
    }

    return acc;
}

// Grid: (ceil(N / 32), ceil(M / ROWS), batch * splits).
@compute @workgroup_size(8, 1, 1)
fn gemm_subgroup(@builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(local_invocation_index) lane: u32) {
    var acc = lane_product(wg, lane);
    let m0 = wg.y * ROWS;
    let first = wg.x * LANES * 4u + 4u * lane;
    // Slot z of C: batch b when splits == 1, workspace slot b * splits + s otherwise.
    let base_c = p.offset_c + wg.z * p.stride_c;
    for (var r = 0u; r < ROWS; r++) {
        let out_row = m0 + r;
        if (out_row >= p.m) { break; }
        for (var j = 0u; j < 4u; j++) {
            let col = first + j;
            if (col >= p.n) { break; }
            let idx = base_c + out_row * p.ldc + col;
            var v = p.alpha * acc[r][j];
            if (p.beta != 0.0) { v = fma(p.beta, c[idx], v); }
            c[idx] = v;
        }
    }
}

// The decay epilogue (gemm_epilogue.wgsl) on a single, unsplit product.
@compute @workgroup_size(8, 1, 1)
fn gemm_subgroup_decay(@builtin(workgroup_id) wg: vec3<u32>,
                       @builtin(local_invocation_index) lane: u32) {
    var acc = lane_product(wg, lane);
    let m0 = wg.y * ROWS;
    let first = wg.x * LANES * 4u + 4u * lane;
    var bits = 0u;
    for (var r = 0u; r < ROWS; r++) {
        let row = m0 + r;
        for (var j = 0u; j < 4u; j++) {
            let col = first + j;
            if (row < p.m && col < p.n) {
                bits = max(bits, epilogue_decay(row * p.n + col, row, p.alpha * acc[r][j]));
            }
        }
    }
    fold_abs_max_workgroup(bits, lane == 0u);
}

// The optimizer epilogue (gemm_epilogue.wgsl) on a single, unsplit product.
@compute @workgroup_size(8, 1, 1)
fn gemm_subgroup_optim(@builtin(workgroup_id) wg: vec3<u32>,
                       @builtin(local_invocation_index) lane: u32) {
    var acc = lane_product(wg, lane);
    let m0 = wg.y * ROWS;
    let first = wg.x * LANES * 4u + 4u * lane;
    for (var r = 0u; r < ROWS; r++) {
        let row = m0 + r;
        for (var j = 0u; j < 4u; j++) {
            let col = first + j;
            if (row < p.m && col < p.n) { epilogue_optim(row * p.n + col, p.alpha * acc[r][j]); }
        }
    }
}
