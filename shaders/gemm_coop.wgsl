// GEMM on cooperative matrices (tensor cores through VK_KHR_cooperative_matrix, Metal simdgroup
// matrices): needs SHADER_F16 and EXPERIMENTAL_COOPERATIVE_MATRIX with a 16x16x16 f16 x f16 ->
// f32 configuration. The same product and parameters as gemm.wgsl,
// C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], row-major, op in {N, T}, with A and B stored
// as f16 and products accumulated in f32 (C is f32).
//
// A workgroup is one subgroup (WG invocations, the adapter's subgroup size) and computes a
// (16·TILES_M) x (16·TILES_N) block of C: per step of 16 along k it loads TILES_M tiles of
// op(A) and TILES_N tiles of op(B) straight from storage (coopLoadT reads a row-major tile,
// coopLoad a column-major one, which is how a transposed operand looks) and does
// TILES_M·TILES_N multiply-adds into f32 accumulators. Each finished tile goes through
// workgroup memory (one 16 x 16 f32 tile, stored at the constant stride 16) to C, where the
// invocations apply alpha and beta element by element.
//
// Preconditions (checked by the launcher, which otherwise runs gemm_tiled): M, N and K are
// multiples of 16 and the block grid covers C exactly (M % (16·TILES_M) == 0,
// N % (16·TILES_N) == 0), so every tile load and store is in bounds without edge checks;
// A's and B's offsets, leading dimensions and batch strides are multiples of 8 (16-byte rows
// of halves).
// splits == 1. With beta == 0, C is not read.

enable f16;
enable wgpu_cooperative_matrix;

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
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> b: array<f16>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override WG: u32 = 32u;
var<workgroup> staging: array<f32, 256>;
// Tiles per workgroup along M and N (at most 2 x 2: four f32 accumulators per subgroup).
override TILES_M: u32 = 2u;
override TILES_N: u32 = 2u;
const T: u32 = 16u;

// Tile (row r0, col c0) of op(A): A stored M x K is row-major there; stored K x M it is the
// column-major view of the same memory.
fn load_a(base: u32, r0: u32, c0: u32) -> coop_mat16x16<f16, A> {
    if ((p.trans & 1u) != 0u) {
        return coopLoad<coop_mat16x16<f16, A>>(&a[base + c0 * p.lda + r0], p.lda);
    }
    return coopLoadT<coop_mat16x16<f16, A>>(&a[base + r0 * p.lda + c0], p.lda);
}

fn load_b(base: u32, r0: u32, c0: u32) -> coop_mat16x16<f16, B> {
    if ((p.trans & 2u) != 0u) {
        return coopLoad<coop_mat16x16<f16, B>>(&b[base + c0 * p.ldb + r0], p.ldb);
    }
    return coopLoadT<coop_mat16x16<f16, B>>(&b[base + r0 * p.ldb + c0], p.ldb);
}

// Grid: (N / (16·TILES_N), M / (16·TILES_M), batch).
@compute @workgroup_size(WG, 1, 1)
fn gemm_coop(@builtin(workgroup_id) wg: vec3<u32>,
             @builtin(local_invocation_index) lane: u32) {
    let m0 = wg.y * T * TILES_M;
    let n0 = wg.x * T * TILES_N;
    let base_a = p.offset_a + wg.z * p.stride_a;
    let base_b = p.offset_b + wg.z * p.stride_b;
    let base_c = p.offset_c + wg.z * p.stride_c;

    var acc00 = coop_mat16x16<f32, C>();
    var acc01 = coop_mat16x16<f32, C>();
    var acc10 = coop_mat16x16<f32, C>();
    var acc11 = coop_mat16x16<f32, C>();
    for (var k = 0u; k < p.k; k += T) {
        let a0 = load_a(base_a, m0, k);
        let b0 = load_b(base_b, k, n0);
        acc00 = coopMultiplyAdd(a0, b0, acc00);
        if (TILES_N > 1u) {
            let b1 = load_b(base_b, k, n0 + T);
            acc01 = coopMultiplyAdd(a0, b1, acc01);
            if (TILES_M > 1u) {
                let a1 = load_a(base_a, m0 + T, k);
                acc10 = coopMultiplyAdd(a1, b0, acc10);
                acc11 = coopMultiplyAdd(a1, b1, acc11);
            }
        } else if (TILES_M > 1u) {
            let a1 = load_a(base_a, m0 + T, k);
            acc10 = coopMultiplyAdd(a1, b0, acc10);
        }
    }
    store(acc00, base_c, m0, n0, lane);
    if (TILES_N > 1u) { store(acc01, base_c, m0, n0 + T, lane); }
    if (TILES_M > 1u) { store(acc10, base_c, m0 + T, n0, lane); }
    if (TILES_M > 1u && TILES_N > 1u) { store(acc11, base_c, m0 + T, n0 + T, lane); }
}

// C tile at (r0, c0) = alpha * acc + beta * C (C read only when beta != 0). The tile passes
// through workgroup memory: naga 30's SPIR-V writer cannot yet store a cooperative matrix with
// a stride that is not a constant (ldc is a uniform), and alpha / beta become scalar math.
fn store(acc: coop_mat16x16<f32, C>, base: u32, r0: u32, c0: u32, lane: u32) {
    coopStoreT(acc, &staging[0], T);
    workgroupBarrier();
    for (var e = lane; e < T * T; e += WG) {
        let idx = base + (r0 + e / T) * p.ldc + c0 + e % T;
        var v = p.alpha * staging[e];
        if (p.beta != 0.0) { v = fma(p.beta, c[idx], v); }
        c[idx] = v;
    }
    workgroupBarrier();
}
