// The tiled GEMM engine shared by gemm.wgsl (`gemm_tiled` and its epilogue entry points) and
// conv.wgsl (the implicit-GEMM convolutions): the tile shape, the workgroup tiles, the
// register-blocked inner loop with optional double buffering, and the store of a register
// block. A library file (no entry points), prepended to both modules (src/kernels/mod.rs,
// `SHADER_LIBRARIES`). The kernel file supplies what differs, how operands reach the tiles:
//   fn stage_a(m0, k0, k_end, tid, threads, row0)  op(A)[m0 + mm, k0 + kk] -> store_a(row0 + kk, mm, ·)
//   fn stage_b(n0, k0, k_end, tid, threads, row0)  op(B)[k0 + kk, n0 + nn] -> store_b(row0 + kk, nn, ·)
// each zero-filling past M, N or k_end, and the output `c: array<f32>` that `store_block`
// writes. Both modules also start with gemm_epilogue.wgsl, whose update epilogues the
// `store_block_decay` / `store_block_optim` below apply to a register block.
//
// Tile shape: a workgroup computes a BM x BN block of C in steps of BK along K; each
// invocation owns a TM x TN register block (TM, TN in {4, 8}) made of 4 x 4 sub-blocks.
// Sub-block (r, c) of invocation (lx, ly) covers rows 4 * (ly + r * BM / TM) + 0..3 and
// columns 4 * (lx + c * BN / TN) + 0..3, so neighbouring invocations read neighbouring vec4s
// of workgroup memory, and each step of the inner loop is two vec4 loads per 16 FMAs.
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
override TM: u32 = 8u;
override TN: u32 = 8u;
// Workgroup tile buffers: 1, or 2 for double buffering (the next BK step's tiles are loaded
// into the other buffer while this one is multiplied: one barrier per step instead of two).
override STAGES: u32 = 1u;
// Sub-blocks per invocation along M and N, at most 2 x 2 (an 8 x 8 register block).
const MAX_SUB: u32 = 2u;

// Buffer st holds rows kk = st * BK .. st * BK + BK - 1 of each tile:
// a_tile[kk * BM / 4 + mm / 4][mm % 4] = op(A)[m0 + mm, k0 + kk % BK]
// b_tile[kk * BN / 4 + nn / 4][nn % 4] = op(B)[k0 + kk % BK, n0 + nn]
// The tile lengths are named overrides, not expressions in the array types: naga 30 gives an
// expression-sized array an unnamed override, and its pipeline-constant pass fails when a named
// override (a kernel file's own, declared after this file) comes after an unnamed one.
override A_TILE_VEC4S: u32 = STAGES * BK * BM / 4u;
override B_TILE_VEC4S: u32 = STAGES * BK * BN / 4u;
var<workgroup> a_tile: array<vec4<f32>, A_TILE_VEC4S>;
var<workgroup> b_tile: array<vec4<f32>, B_TILE_VEC4S>;

fn store_a(kk: u32, mm: u32, v: f32) { a_tile[kk * (BM / 4u) + mm / 4u][mm % 4u] = v; }
fn store_b(kk: u32, nn: u32, v: f32) { b_tile[kk * (BN / 4u) + nn / 4u][nn % 4u] = v; }

// Invocations per workgroup, and this invocation's linear index.
fn tile_threads() -> u32 { return (BN / TN) * (BM / TM); }
fn tile_tid(lid: vec3<u32>) -> u32 { return lid.y * (BN / TN) + lid.x; }

// This invocation's TM x TN register block of op(A)·op(B) over k in [k_begin, k_end) for the
// block of C at (m0, n0): rows m0 + 4 * (lid.y + r * BM / TM) + i, columns
// n0 + 4 * (lid.x + cg * BN / TN) + 0..3 are acc[(r * 4 + i) * MAX_SUB + cg].
fn tile_product(lid: vec3<u32>, m0: u32, n0: u32, k_begin: u32, k_end: u32) -> array<vec4<f32>, 4u * MAX_SUB * MAX_SUB> {
    let wx = BN / TN;
    let wy = BM / TM;
    let threads = tile_threads();
    let tid = tile_tid(lid);
    let rm = TM / 4u;
    let cn = TN / 4u;
    var acc: array<vec4<f32>, 4u * MAX_SUB * MAX_SUB>;
    var a_reg: array<vec4<f32>, MAX_SUB>;
    var b_reg: array<vec4<f32>, MAX_SUB>;
    // Single buffer: load, barrier, multiply, barrier. Double: the prologue loads buffer 0; each
    // step's barrier completes the buffer about to be multiplied and ends every read of the
    // other one (multiplied the step before), which is then refilled with the next step's tiles.
    var st = 0u;
    if (STAGES == 2u && k_begin < k_end) {
        stage_a(m0, k_begin, k_end, tid, threads, 0u);
        stage_b(n0, k_begin, k_end, tid, threads, 0u);
    }
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        if (STAGES == 1u) {
            stage_a(m0, k0, k_end, tid, threads, 0u);
            stage_b(n0, k0, k_end, tid, threads, 0u);
        }
        workgroupBarrier();
        if (STAGES == 2u && k0 + BK < k_end) {
            stage_a(m0, k0 + BK, k_end, tid, threads, (1u - st) * BK);
            stage_b(n0, k0 + BK, k_end, tid, threads, (1u - st) * BK);
        }
        let row0 = st * BK;
        for (var kk = 0u; kk < BK; kk++) {
            let ka = (row0 + kk) * (BM / 4u);
            let kb = (row0 + kk) * (BN / 4u);
            for (var r = 0u; r < rm; r++) { a_reg[r] = a_tile[ka + lid.y + r * wy]; }
            for (var cg = 0u; cg < cn; cg++) { b_reg[cg] = b_tile[kb + lid.x + cg * wx]; }
            for (var r = 0u; r < rm; r++) {
                for (var i = 0u; i < 4u; i++) {
                    for (var cg = 0u; cg < cn; cg++) {
                        let slot = (r * 4u + i) * MAX_SUB + cg;
                        acc[slot] = fma(vec4<f32>(a_reg[r][i]), b_reg[cg], acc[slot]);
                    }
                }
            }
        }
        if (STAGES == 1u) { workgroupBarrier(); }
        st = (st + 1u) % STAGES;
    }
    return acc;
}

// c[base + row * ld + col] = alpha * acc + beta * c (c read only when beta != 0, as in BLAS)
// for the register block of tile (m0, n0), rows < m and columns < n.
fn store_block(lid: vec3<u32>, m0: u32, n0: u32, acc: ptr<function, array<vec4<f32>, 4u * MAX_SUB * MAX_SUB>>,
               base: u32, ld: u32, m: u32, n: u32, alpha: f32, beta: f32) {
    let wx = BN / TN;
    let wy = BM / TM;
    for (var r = 0u; r < TM / 4u; r++) {
        for (var i = 0u; i < 4u; i++) {
            let row = m0 + 4u * (lid.y + r * wy) + i;
            if (row >= m) { break; }
            for (var cg = 0u; cg < TN / 4u; cg++) {
                let v4 = alpha * (*acc)[(r * 4u + i) * MAX_SUB + cg];
                for (var j = 0u; j < 4u; j++) {
                    let col = n0 + 4u * (lid.x + cg * wx) + j;
                    if (col >= n) { break; }
                    let idx = base + row * ld + col;
                    var v = v4[j];
                    if (beta != 0.0) { v = fma(beta, c[idx], v); }
                    c[idx] = v;
                }
            }
        }
    }
}

// Element e < TM * TN of this invocation's register block: its row and column of C (which may
// lie past M or N on edge tiles) and its product (unscaled).
struct Element { row: u32, col: u32, v: f32 }

fn tile_element(lid: vec3<u32>, m0: u32, n0: u32, acc: ptr<function, array<vec4<f32>, 4u * MAX_SUB * MAX_SUB>>,
                e: u32) -> Element {
    let cn = TN / 4u;
    let j = e % 4u;
    let cg = (e / 4u) % cn;
    let i = (e / (4u * cn)) % 4u;
    let r = e / (16u * cn);
    let row = m0 + 4u * (lid.y + r * (BM / TM)) + i;
    let col = n0 + 4u * (lid.x + cg * (BN / TN)) + j;
    return Element(row, col, (*acc)[(r * 4u + i) * MAX_SUB + cg][j]);
}

// The update epilogues (gemm_epilogue.wgsl) on this invocation's register block of an unsplit
// product, C one dense m x n matrix (element (row, col) at row·n + col), v = alpha·product:
// decay stores R = v + beta·C − r[row]·W and folds max|R|; optim steps W by Δ = v + beta·C.
fn store_block_decay(lid: vec3<u32>, m0: u32, n0: u32, acc: ptr<function, array<vec4<f32>, 4u * MAX_SUB * MAX_SUB>>,
                     m: u32, n: u32, alpha: f32) {
    var bits = 0u;
    for (var e = 0u; e < TM * TN; e++) {
        let el = tile_element(lid, m0, n0, acc, e);
        if (el.row < m && el.col < n) {
            bits = max(bits, epilogue_decay(el.row * n + el.col, el.row, alpha * el.v));
        }
    }
    fold_abs_max(bits);
}

fn store_block_optim(lid: vec3<u32>, m0: u32, n0: u32, acc: ptr<function, array<vec4<f32>, 4u * MAX_SUB * MAX_SUB>>,
                     m: u32, n: u32, alpha: f32) {
    for (var e = 0u; e < TM * TN; e++) {
        let el = tile_element(lid, m0, n0, acc, e);
        if (el.row < m && el.col < n) { epilogue_optim(el.row * n + el.col, alpha * el.v); }
    }
}
