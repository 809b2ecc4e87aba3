// Weight updates of the Hebbian presets (shared/golden/PRESETS.md §0.4), in place on W (C x D).
// The launcher prepends weight_update.wgsl (OptimParams, sgd_update, adam_update, max_divisor).
//   sgd, adam: weight_update.wgsl
//   adaptive:  η_i = lr·(|‖w_i‖ − 1| + 1e-10)^power from Σ_d w_id² (row_sumsq, taken before the
//              update); W ← W + η_i·ΔW_i; η is also written to eta (length C)
// ΔW is `dw`, or with DIVISOR != 0 the normalised R / max_divisor(DIVISOR, max|R|, a), R = dw and
// max|R| = dw_max[0] (from the update GEMM's ABS_MAX epilogue); WRITE_DW then also stores that
// ΔW in dw_out (conformance and inspection).
// Bounds: ELEMENTS_PER_INVOCATION elements e < C·D per invocation; dw, dw_out and the state buffers hold C·D, eta
// holds C, dw_max holds 1.

override DIVISOR: u32 = 0u;
override WRITE_DW: bool = false;

@group(0) @binding(0) var<uniform> p: OptimParams;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> dw: array<f32>;
// sgd: momentum buffer; adam: first moment m.
@group(0) @binding(3) var<storage, read_write> state0: array<f32>;
// adam: second moment v.
@group(0) @binding(4) var<storage, read_write> state1: array<f32>;
// adaptive: Σ_d w_id² per neuron (read) and η per neuron (written).
@group(0) @binding(5) var<storage, read> row_sumsq: array<f32>;
@group(0) @binding(6) var<storage, read_write> eta: array<f32>;
// DIVISOR != 0: max|R| (read) and, with WRITE_DW, the normalised ΔW (written).
@group(0) @binding(7) var<storage, read> dw_max: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw_out: array<f32>;

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

// ΔW[e], normalised where DIVISOR says so.
fn delta(e: u32) -> f32 {
    if (DIVISOR == 0u) { return dw[e]; }
    let v = dw[e] / max_divisor(DIVISOR, dw_max[0], p.divisor_a);
    if (WRITE_DW) { dw_out[e] = v; }
    return v;
}

// The element e of each entry point below: ELEMENTS_PER_INVOCATION per invocation, 256 apart,
// so a workgroup covers one contiguous block (the launcher sets it, as in hebbian.wgsl).
override ELEMENTS_PER_INVOCATION: u32 = 1u;
fn element(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, k: u32) -> u32 {
    return linear_index(wg, nwg, 0u) * ELEMENTS_PER_INVOCATION + k * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn sgd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    for (var k = 0u; k < ELEMENTS_PER_INVOCATION; k++) {
        let e = element(wg, nwg, lid, k);
        if (e >= p.c * p.d) { return; }
        // The momentum buffer is read and written only when there is momentum.
        var buf = 0.0;
        if (p.momentum != 0.0) { buf = state0[e]; }
        let s = sgd_update(p, w[e], delta(e), buf);
        w[e] = s.x;
        if (p.momentum != 0.0) { state0[e] = s.y; }
    }
}

// p.lr holds the bias-corrected rate a_t.
@compute @workgroup_size(256, 1, 1)
fn adam(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    for (var k = 0u; k < ELEMENTS_PER_INVOCATION; k++) {
        let e = element(wg, nwg, lid, k);
        if (e >= p.c * p.d) { return; }
        let s = adam_update(p, w[e], delta(e), state0[e], state1[e]);
        w[e] = s.x;
        state0[e] = s.y;
        state1[e] = s.z;
    }
}

@compute @workgroup_size(256, 1, 1)
fn adaptive(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    for (var k = 0u; k < ELEMENTS_PER_INVOCATION; k++) {
        let e = element(wg, nwg, lid, k);
        if (e >= p.c * p.d) { return; }
        let i = e / p.d;
        let rate = p.lr * pow(abs(sqrt(row_sumsq[i]) - 1.0) + 1e-10, p.power);
        w[e] = w[e] + rate * delta(e);
        if (e % p.d == 0u) { eta[i] = rate; }
    }
}
