//! Batch normalisation in float64 (PyTorch's BatchNorm2d, with or without affine parameters,
//! plus Lagani's modified BN, which scales an ordinary BN's output): the forward, which returns
//! the output and updates the running statistics in place, and its backward pass.
//! `affine` is γ (C) then β (C): y = f·(γ·x̂ + β).

use crate::kernels::norm::BatchNorm;

pub fn batch_norm(
    g: &BatchNorm,
    x: &[f64],
    running_mean: &mut [f64],
    running_var: &mut [f64],
    affine: Option<&[f64]>,
) -> Vec<f64> {
    let (b, c, p) = (g.batch, g.channels, g.plane);
    let count = (b * p) as f64;
    let mut mean = running_mean.to_vec();
    let mut var = running_var.to_vec();
    if g.training {
        for ch in 0..c {
            let values = (0..b).flat_map(|n| x[(n * c + ch) * p..(n * c + ch + 1) * p].iter());
            let mu = values.clone().sum::<f64>() / count;
            let sq: f64 = values.map(|v| (v - mu) * (v - mu)).sum();
            mean[ch] = mu;
            var[ch] = sq / count;
            let m = g.momentum as f64;
            running_mean[ch] = (1.0 - m) * running_mean[ch] + m * mu;
            running_var[ch] = (1.0 - m) * running_var[ch] + m * sq / (count.max(2.0) - 1.0);
        }
    }
    let eps = g.eps as f64;
    let mean_rv = running_var.iter().sum::<f64>() / c as f64;
    (0..x.len())
        .map(|e| {
            let ch = (e / p) % c;
            let mut y = (x[e] - mean[ch]) / (var[ch] + eps).sqrt();
            if let Some(a) = affine {
                y = a[ch] * y + a[c + ch];
            }
            if g.modified {
                y *= ((running_var[ch] + eps) / (mean_rv + eps)).sqrt();
            }
            y
        })
        .collect()
}

/// ∂L/∂x of `batch_norm` from dy = ∂L/∂y, given the running statistics as the forward left
/// them. Per channel, with x̂ = (x − μ)/s, s = √(σ² + ε) and f the modified BN's factor (1
/// otherwise; a function of the running variance, a buffer that carries no gradient, as in
/// PyTorch):
/// - training (μ, σ² of the batch): dx = f·γ/s · (dy − mean(dy) − x̂ · mean(dy · x̂));
/// - eval (the running statistics, constants): dx = f·γ/s · dy;
///
/// with γ = 1 without `affine`. Returns dx and (∂L/∂γ, ∂L/∂β) = f·(Σ dy·x̂, Σ dy) per channel
/// (2·C, γ's first), which are also the gradients at γ = 1, β = 0 without `affine`.
pub fn batch_norm_backward(
    g: &BatchNorm,
    x: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
    affine: Option<&[f64]>,
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (b, c, p) = (g.batch, g.channels, g.plane);
    let eps = g.eps as f64;
    let count = (b * p) as f64;
    let mean_rv = running_var.iter().sum::<f64>() / c as f64;
    let mut dx = vec![0.0; x.len()];
    let mut d_affine = vec![0.0; 2 * c];
    for ch in 0..c {
        let idx: Vec<usize> = (0..b)
            .flat_map(|n| (n * c + ch) * p..(n * c + ch + 1) * p)
            .collect();
        let (mu, var) = if g.training {
            let mu = idx.iter().map(|&e| x[e]).sum::<f64>() / count;
            let var = idx.iter().map(|&e| (x[e] - mu) * (x[e] - mu)).sum::<f64>() / count;
            (mu, var)
        } else {
            (running_mean[ch], running_var[ch])
        };
        let s = (var + eps).sqrt();
        let f = if g.modified {
            ((running_var[ch] + eps) / (mean_rv + eps)).sqrt()
        } else {
            1.0
        };
        let sum_dy = idx.iter().map(|&e| dy[e]).sum::<f64>();
        let sum_dy_xhat = idx.iter().map(|&e| dy[e] * (x[e] - mu) / s).sum::<f64>();
        d_affine[ch] = f * sum_dy_xhat;
        d_affine[c + ch] = f * sum_dy;
        let (mean_dy, mean_dy_xhat) = if g.training {
            (sum_dy / count, sum_dy_xhat / count)
        } else {
            (0.0, 0.0)
        };
        let gamma = affine.map_or(1.0, |a| a[ch]);
        for &e in &idx {
            let xhat = (x[e] - mu) / s;
            dx[e] = f * gamma / s * (dy[e] - mean_dy - xhat * mean_dy_xhat);
        }
    }
    (dx, d_affine)
}
