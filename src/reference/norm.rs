//! Batch normalisation without affine parameters in float64 (PyTorch's BatchNorm2d, plus
//! Lagani's modified BN). Returns the output and updates the running statistics in place.

use crate::kernels::norm::BatchNorm;

pub fn batch_norm(
    g: &BatchNorm,
    x: &[f64],
    running_mean: &mut [f64],
    running_var: &mut [f64],
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
            if g.modified {
                y *= ((running_var[ch] + eps) / (mean_rv + eps)).sqrt();
            }
            y
        })
        .collect()
}
