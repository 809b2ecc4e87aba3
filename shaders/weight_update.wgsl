// Weight-update math, prepended (see src/kernels/mod.rs) to optim.wgsl and to the GEMM modules,
// whose update epilogues (gemm_epilogue.wgsl) apply the same step to W while the update GEMM
// writes its result, so the separate and the fused training step share one formula.
// Pure functions of values; no bindings. The rules (shared/golden/PRESETS.md §0.4):
// ΔW is an ascent direction, so SGD and Adam see the gradient g = −ΔW + λ·W.
//   sgd:  buf = g (first step) or μ·buf + g; d = g + μ·buf (Nesterov) or buf; μ = 0: d = g;
//         W ← W − lr·d
//   adam: m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²; W ← W − a_t·m / (√v + ε), with the
//         bias-corrected rate a_t = lr·√(1 − β2^t)/(1 − β1^t) in lr (computed by the launcher)
// Normalised rules (SoftHebb, Krotov) divide R by a divisor of m = max|R|:
//   divisor 1: m + a (SoftHebb, a = 1e-30);  divisor 2: max(m, a) (Krotov, a = prec).

struct OptimParams {
    c: u32, d: u32, first: u32, nesterov: u32,
    lr: f32, momentum: f32, weight_decay: f32, beta1: f32,
    beta2: f32, eps: f32, power: f32,
    // a of the divisor (optim.wgsl's DIVISOR modes)
    divisor_a: f32,
}

// SGD on one weight: (new w, new momentum buffer). The buffer is unchanged when μ = 0.
fn sgd_update(q: OptimParams, w: f32, dw: f32, buf: f32) -> vec2<f32> {
    let g = -dw + q.weight_decay * w;
    var step = g;
    var next = buf;
    if (q.momentum != 0.0) {
        next = select(q.momentum * buf + g, g, q.first != 0u);
        step = select(next, g + q.momentum * next, q.nesterov != 0u);
    }
    return vec2<f32>(w - q.lr * step, next);
}

// Adam on one weight: (new w, new m, new v).
fn adam_update(q: OptimParams, w: f32, dw: f32, m0: f32, v0: f32) -> vec3<f32> {
    let g = -dw + q.weight_decay * w;
    let m = select(q.beta1 * m0, 0.0, q.first != 0u) + (1.0 - q.beta1) * g;
    let v = select(q.beta2 * v0, 0.0, q.first != 0u) + (1.0 - q.beta2) * g * g;
    return vec3<f32>(w - q.lr * m / (sqrt(v) + q.eps), m, v);
}

// The divisor of a normalised rule from m = max|R| (mode 1: m + a, mode 2: max(m, a)).
fn max_divisor(mode: u32, m: f32, a: f32) -> f32 {
    return select(m + a, max(m, a), mode == 2u);
}
