// Naive (pre-FastHebb) Hebbian updates: the per-sample, per-neuron update terms are
// materialised for a chunk of rows, then reduced over the rows in a separate pass. They
// compute the same ΔW as the fused GEMM compositions of src/rules/gpu.rs and exist so the
// benchmarks can show what the matrix formulation buys.
//   terms[r, i, d] for rows n = n0 + r, r < rows_in_chunk, neuron i < C, input d < D:
//     outer:  a_ni·x_nd − b_ni·w_id                          (WTA, SoftHebb, Krotov, BCM)
//     sanger: g_ni·(x_nd − Σ_{k≤i} g_nk·w_kd)                  (HPCA)
//     mixing: y_ni·Σ_{k∈K(i)} s_nk·w_kd, K(i) = all k, or k ≤ i (ICA: P = M·W per sample)
//     decay:  a_ni·(x_nd − b_ni·w_id)                        (SoftHebb, Krotov: b = U)
//     hebb:   a_ni·x_nd                                      (BCM)
//   accumulate: acc[i, d] (+)= s·Σ_r terms[r, i, d]   (flags bit 0: overwrite instead of add)
// Bounds: every index is guarded against rows·C·D or C·D; the launchers check extents.

struct NaiveParams {
    n0: u32, rows: u32, c: u32, d: u32,
    mode: u32, flags: u32, _pad0: u32, _pad1: u32,
    s: f32, _pad2: f32, _pad3: f32, _pad4: f32,
}

@group(0) @binding(0) var<uniform> p: NaiveParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> coef_a: array<f32>;
@group(0) @binding(4) var<storage, read> coef_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> terms: array<f32>;
@group(0) @binding(6) var<storage, read_write> acc: array<f32>;

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

// mode 0 outer (coef_a = a, coef_b = b), 1 sanger (coef_a = g), 2 mixing over all k,
// 3 mixing over k ≤ i (coef_a = y, coef_b = s), 4 decay, 5 hebb.
@compute @workgroup_size(256, 1, 1)
fn naive_terms(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.rows * p.c * p.d) { return; }
    let dd = e % p.d;
    let i = (e / p.d) % p.c;
    let n = p.n0 + e / (p.d * p.c);
    let ni = n * p.c + i;
    var t = 0.0;
    switch (p.mode) {
        case 0u: {
            t = coef_a[ni] * x[n * p.d + dd] - coef_b[ni] * w[i * p.d + dd];
        }
        case 1u: {
            var rec = 0.0;
            for (var k = 0u; k <= i; k++) { rec += coef_a[n * p.c + k] * w[k * p.d + dd]; }
            t = coef_a[ni] * (x[n * p.d + dd] - rec);
        }
        case 4u: {
            t = coef_a[ni] * (x[n * p.d + dd] - coef_b[ni] * w[i * p.d + dd]);
        }
        case 5u: {
            t = coef_a[ni] * x[n * p.d + dd];
        }
        default: {
            var mix = 0.0;
            let last = select(p.c - 1u, i, p.mode == 3u);
            for (var k = 0u; k <= last; k++) { mix += coef_b[n * p.c + k] * w[k * p.d + dd]; }
            t = coef_a[ni] * mix;
        }
    }
    terms[e] = t;
}

@compute @workgroup_size(256, 1, 1)
fn naive_accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    let cd = p.c * p.d;
    if (e >= cd) { return; }
    var sum = 0.0;
    for (var r = 0u; r < p.rows; r++) { sum += terms[r * cd + e]; }
    acc[e] = select(acc[e] + p.s * sum, p.s * sum, (p.flags & 1u) != 0u);
}
