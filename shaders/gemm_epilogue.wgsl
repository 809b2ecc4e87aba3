// Update epilogues of the GEMM kernels, prepended (with weight_update.wgsl) to gemm.wgsl and
// gemm_subgroup.wgsl, whose `*_decay` and `*_optim` entry points call them once per element of C
// as it leaves the accumulators (or the split-K reduction). They fold the rest of a Hebbian
// update into the update GEMM, so ΔW never makes a separate round trip through memory.
// C is one M x N matrix (batch 1, offset 0, ldc = N) and W (M x N) has its layout, so element
// (row, col) is C[idx] and W[idx] with idx = row * N + col. With v = alpha·op(A)op(B)[row, col]:
//   decay: C = v + beta·C − r[row]·W  (R of SoftHebb and Krotov, the bracket of the WTA rules).
//          With ABS_MAX, max|C| is folded into abs_max (the bits of a non-negative f32, which
//          order as u32; the launcher zeroes it first), so the normaliser needs no reduction
//          pass. The tiled kernel's invocations each fold their TM·TN elements with one atomic;
//          the split-K reduction and the subgroup kernel, whose workgroups hold no tiles in
//          workgroup memory, fold into a workgroup word first: one global atomic per workgroup.
//   optim: Δ = v + beta·C; W ← sgd or adam (ADAM) of (W, Δ) with state0 / state1
//          (weight_update.wgsl); C = Δ only when WRITE_DELTA (conformance and inspection).
// Bounds: idx < M·N; the launchers check that W, r (M), state0 and state1 (M·N) hold that.

override ABS_MAX: bool = false;
override ADAM: bool = false;
override WRITE_DELTA: bool = false;

@group(0) @binding(7) var<uniform> q: OptimParams;
@group(0) @binding(8) var<storage, read_write> w_upd: array<f32>;
@group(0) @binding(9) var<storage, read_write> state0: array<f32>;
@group(0) @binding(10) var<storage, read_write> state1: array<f32>;
@group(0) @binding(11) var<storage, read> row_decay: array<f32>;
@group(0) @binding(12) var<storage, read> w_cur: array<f32>;
@group(0) @binding(13) var<storage, read_write> abs_max: atomic<u32>;
// The workgroup's max|C| bits. Pipelines are built without zero-initialised workgroup memory
// (kernel_cache.rs), so the leader clears it first.
var<workgroup> wg_abs_max: atomic<u32>;

// v + beta·C[idx], reading C only when beta != 0 (as in BLAS).
fn with_beta(idx: u32, v: f32) -> f32 {
    if (p.beta != 0.0) { return fma(p.beta, c[idx], v); }
    return v;
}

// decay: stores R and returns the bits of |R|.
fn epilogue_decay(idx: u32, row: u32, v: f32) -> u32 {
    let r = with_beta(idx, v) - row_decay[row] * w_cur[idx];
    c[idx] = r;
    return bitcast<u32>(abs(r));
}

fn fold_abs_max(bits: u32) {
    if (ABS_MAX) { atomicMax(&abs_max, bits); }
}

// Through the workgroup word. Called once by every invocation of the workgroup, in uniform
// control flow; `leader` is true for exactly one of them.
fn fold_abs_max_workgroup(bits: u32, leader: bool) {
    if (!ABS_MAX) { return; }
    if (leader) { atomicStore(&wg_abs_max, 0u); }
    workgroupBarrier();
    atomicMax(&wg_abs_max, bits);
    workgroupBarrier();
    if (leader) { atomicMax(&abs_max, atomicLoad(&wg_abs_max)); }
}

// optim: one optimizer step of W[idx] by Δ = v + beta·C[idx].
fn epilogue_optim(idx: u32, v: f32) {
    let delta = with_beta(idx, v);
    if (WRITE_DELTA) { c[idx] = delta; }
    if (ADAM) {
        let s = adam_update(q, w_upd[idx], delta, state0[idx], state1[idx]);
        w_upd[idx] = s.x;
        state0[idx] = s.y;
        state1[idx] = s.z;
    } else {
        // The momentum buffer is read and written only when there is momentum.
        var buf = 0.0;
        if (q.momentum != 0.0) { buf = state0[idx]; }
        let s = sgd_update(q, w_upd[idx], delta, buf);
        w_upd[idx] = s.x;
        if (q.momentum != 0.0) { state0[idx] = s.y; }
    }
}
