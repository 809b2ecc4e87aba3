//! ZCA whitening in float64 (`nn::zca`): every whitening vector v of every image becomes
//! (v − μ)·Z, written straight from the image's indices, with no gather/scatter pass.

use crate::nn::zca::ZcaGeometry;

/// Whitens `batch` images (B x C x H x W, row-major) with μ (D) and Z (D x D, row-major).
pub fn whiten(g: &ZcaGeometry, mean: &[f64], z: &[f64], x: &[f64], batch: usize) -> Vec<f64> {
    let (h, w) = (g.image.height, g.image.width);
    let [bh, bw] = g.block;
    let d = g.dim();
    // Image offset of value i = (c·bh + y)·bw + x of the block at (by, bx).
    let at = |by: usize, bx: usize, i: usize| {
        let (c, y, xx) = (i / (bh * bw), (i / bw) % bh, i % bw);
        (c * h + by * bh + y) * w + bx * bw + xx
    };
    let mut out = vec![0.0; batch * g.image.len()];
    for b in 0..batch {
        let img = &x[b * g.image.len()..(b + 1) * g.image.len()];
        let dst = &mut out[b * g.image.len()..(b + 1) * g.image.len()];
        for by in 0..h / bh {
            for bx in 0..w / bw {
                for j in 0..d {
                    let mut s = 0.0;
                    for i in 0..d {
                        s += (img[at(by, bx, i)] - mean[i]) * z[i * d + j];
                    }
                    dst[at(by, bx, j)] = s;
                }
            }
        }
    }
    out
}

/// Covariance (1/n)·Σ (v − v̄)(v − v̄)ᵀ of n vectors (n x D, row-major), D x D row-major.
pub fn covariance(rows: &[f64], d: usize) -> Vec<f64> {
    let n = rows.len() / d;
    let mut mean = vec![0.0; d];
    for r in rows.chunks_exact(d) {
        for i in 0..d {
            mean[i] += r[i] / n as f64;
        }
    }
    let mut cov = vec![0.0; d * d];
    for r in rows.chunks_exact(d) {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += (r[i] - mean[i]) * (r[j] - mean[j]) / n as f64;
            }
        }
    }
    cov
}
