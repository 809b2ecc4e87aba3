//! The optimizers of weight_update.wgsl on single weights, in float64: what the GEMM update
//! epilogue and optim.wgsl apply to each element. ΔW is an ascent direction; the gradient is
//! g = −ΔW + λ·W.

use crate::kernels::optim::OptimStep;

/// One step of `step` on a weight w by ΔW = dw with state (s0, s1) (momentum buffer, or Adam's
/// m and v): the new (w, s0, s1). None for the adaptive rate, which needs the whole row.
pub fn apply(step: &OptimStep, w: f64, dw: f64, s0: f64, s1: f64) -> Option<(f64, f64, f64)> {
    Some(match *step {
        OptimStep::Sgd {
            lr,
            momentum,
            nesterov,
            weight_decay,
            first,
        } => {
            let (w, b) = sgd(
                w,
                dw,
                s0,
                lr as f64,
                momentum as f64,
                nesterov,
                weight_decay as f64,
                first,
            );
            (w, b, s1)
        }
        OptimStep::Adam {
            rate,
            beta1,
            beta2,
            eps,
            weight_decay,
            first,
        } => adam(
            w,
            dw,
            s0,
            s1,
            rate as f64,
            beta1 as f64,
            beta2 as f64,
            eps as f64,
            weight_decay as f64,
            first,
        ),
        OptimStep::Adaptive { .. } => return None,
    })
}

/// SGD: returns (new w, new momentum buffer). `buf` is the previous buffer (ignored on the
/// first step, kept as it is when μ = 0).
#[allow(clippy::too_many_arguments)]
pub fn sgd(
    w: f64,
    dw: f64,
    buf: f64,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    first: bool,
) -> (f64, f64) {
    let g = -dw + weight_decay * w;
    if momentum == 0.0 {
        return (w - lr * g, buf);
    }
    let next = if first { g } else { momentum * buf + g };
    let step = if nesterov { g + momentum * next } else { next };
    (w - lr * step, next)
}

/// Adam with the bias-corrected rate `rate` = lr·√(1 − β2^t)/(1 − β1^t): returns (new w, m, v).
#[allow(clippy::too_many_arguments)]
pub fn adam(
    w: f64,
    dw: f64,
    m: f64,
    v: f64,
    rate: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    first: bool,
) -> (f64, f64, f64) {
    let g = -dw + weight_decay * w;
    let (m0, v0) = if first { (0.0, 0.0) } else { (m, v) };
    let m = beta1 * m0 + (1.0 - beta1) * g;
    let v = beta2 * v0 + (1.0 - beta2) * g * g;
    (w - rate * m / (v.sqrt() + eps), m, v)
}
