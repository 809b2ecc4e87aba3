//! The activations of a block (rows of N x C pre-activations u) and their backward pass in
//! float64. The backward is written from the Jacobian, dU_i = Σ_j dY_j · ∂Y_j/∂u_i, not from the
//! kernel's simplified form.

use crate::kernels::hebbian::ActivationGrad;
use crate::reference::dense::{Mat, guard};

/// Y(u) per row.
pub fn activation(kind: ActivationGrad, u: &Mat) -> Mat {
    let relu_pow = |v: f64, a: f64| if v > 0.0 { v.powf(a) } else { 0.0 };
    match kind {
        ActivationGrad::Identity => u.clone(),
        ActivationGrad::ReluPow { power } => u.map(|v| relu_pow(v, power as f64)),
        ActivationGrad::Tanh => u.map(f64::tanh),
        ActivationGrad::Logistic => u.map(|v| 1.0 / (1.0 + (-v).exp())),
        ActivationGrad::Triangle { power } => u.triangle_rows(power as f64),
    }
}

/// dU from dY for the activation at u.
pub fn activation_backward(kind: ActivationGrad, u: &Mat, dy: &Mat) -> Mat {
    // d/dv relu(v)^a: a·v^(a−1) for v > 0, else 0 (no gradient through the flat side).
    let relu_pow_dy = |v: f64, a: f64| if v > 0.0 { a * v.powf(a - 1.0) } else { 0.0 };
    let c = u.cols;
    let mut du = Mat::zeros(u.rows, c);
    for n in 0..u.rows {
        let row = u.row(n);
        let mean = row.iter().sum::<f64>() / c as f64;
        for i in 0..c {
            let mut sum = 0.0;
            for j in 0..c {
                // ∂Y_j/∂u_i.
                let jac = match kind {
                    ActivationGrad::Triangle { power } => {
                        let delta = if i == j { 1.0 } else { 0.0 };
                        relu_pow_dy(row[j] - mean, power as f64) * (delta - 1.0 / c as f64)
                    }
                    _ if i != j => 0.0,
                    ActivationGrad::Identity => 1.0,
                    ActivationGrad::ReluPow { power } => relu_pow_dy(row[i], power as f64),
                    ActivationGrad::Tanh => 1.0 - row[i].tanh().powi(2),
                    ActivationGrad::Logistic => {
                        let s = 1.0 / (1.0 + (-row[i]).exp());
                        s * (1.0 - s)
                    }
                };
                sum += dy.at(n, j) * jac;
            }
            du.set(n, i, sum);
        }
    }
    du
}

/// The gradient with respect to W of the unit-norm rows W̃_i = w_i / ‖w_i‖ (1 for a zero row),
/// from G̃ with respect to W̃, through the Jacobian of each row:
/// ∂W̃_ij/∂w_ik = (δ_jk − W̃_ij·W̃_ik)/‖w_i‖.
pub fn unit_rows_backward(w: &Mat, g: &Mat) -> Mat {
    let norms = w.row_norms();
    let mut out = Mat::zeros(w.rows, w.cols);
    for i in 0..w.rows {
        let (row, norm) = (w.row(i), guard(norms[i]));
        for k in 0..w.cols {
            let mut sum = 0.0;
            for j in 0..w.cols {
                let delta = if j == k { 1.0 } else { 0.0 };
                sum += g.at(i, j) * (delta - row[j] / norm * row[k] / norm) / norm;
            }
            out.set(i, k, sum);
        }
    }
    out
}

/// Krotov's currents weights sign(w)·|w|^a.
pub fn signed_pow(w: &Mat, a: f64) -> Mat {
    w.map(|v| v.signum() * (v != 0.0) as u8 as f64 * v.abs().powf(a))
}

/// The gradient with respect to W of `signed_pow(w, a)` from G̃, its gradient: G̃·a·|w|^(a − 1)
/// (a ≥ 1).
pub fn signed_pow_backward(w: &Mat, g: &Mat, a: f64) -> Mat {
    w.zip(g, |v, gv| gv * a * v.abs().powf(a - 1.0))
}

/// Rows scaled to unit norm (a zero row stays zero).
pub fn unit_rows(w: &Mat) -> Mat {
    let inverse: Vec<f64> = w.row_norms().iter().map(|&n| 1.0 / guard(n)).collect();
    w.scale_rows(&inverse)
}
