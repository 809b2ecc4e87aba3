// Weight updates of the Hebbian presets (shared/golden/PRESETS.md §0.4), in place on W (C x D).
// ΔW is an ascent direction; SGD and Adam see the gradient g = −ΔW + λ·W.
//   sgd:      buf = g (first step) or μ·buf + g; d = g + μ·buf (Nesterov) or buf; μ = 0: d = g;
//             W ← W − lr·d
//   adam:     m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²; W ← W − a_t·m / (√v + ε), with the
//             bias-corrected rate a_t = lr·√(1 − β2^t)/(1 − β1^t) computed by the launcher
//   adaptive: η_i = lr·(|‖w_i‖ − 1| + 1e-10)^power from Σ_d w_id² (in1, taken before the
//             update); W ← W + η_i·ΔW_i; η is also written to eta (length C)
// Bounds: one invocation per element e < C·D; state buffers hold C·D, eta holds C.

struct OptimParams {
    c: u32, d: u32, first: u32, nesterov: u32,
    lr: f32, momentum: f32, weight_decay: f32, beta1: f32,
    beta2: f32, eps: f32, power: f32, _pad0: f32,
}

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

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn sgd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.c * p.d) { return; }
    let g = -dw[e] + p.weight_decay * w[e];
    var step = g;
    if (p.momentum != 0.0) {
        let buf = select(p.momentum * state0[e] + g, g, p.first != 0u);
        state0[e] = buf;
        step = select(buf, g + p.momentum * buf, p.nesterov != 0u);
    }
    w[e] = w[e] - p.lr * step;
}

// p.lr holds the bias-corrected rate a_t.
@compute @workgroup_size(256, 1, 1)
fn adam(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.c * p.d) { return; }
    let g = -dw[e] + p.weight_decay * w[e];
    let m = select(p.beta1 * state0[e], 0.0, p.first != 0u) + (1.0 - p.beta1) * g;
    let v = select(p.beta2 * state1[e], 0.0, p.first != 0u) + (1.0 - p.beta2) * g * g;
    state0[e] = m;
    state1[e] = v;
    w[e] = w[e] - p.lr * m / (sqrt(v) + p.eps);
}

@compute @workgroup_size(256, 1, 1)
fn adaptive(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.c * p.d) { return; }
    let i = e / p.d;
    let rate = p.lr * pow(abs(sqrt(row_sumsq[i]) - 1.0) + 1e-10, p.power);
    w[e] = w[e] + rate * dw[e];
    if (e % p.d == 0u) { eta[i] = rate; }
}
