//! Elementwise kernels and casts in float64 (casts round through `half`, round-to-nearest-even).

use half::f16;

pub fn scale(alpha: f64, x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| alpha * v).collect()
}

pub fn axpy(alpha: f64, x: &[f64], y: &[f64]) -> Vec<f64> {
    x.iter().zip(y).map(|(a, b)| alpha * a + b).collect()
}

/// The value an f32 -> f16 cast should produce (the correctly rounded half).
pub fn to_f16(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| f16::from_f64(v).to_f64()).collect()
}

/// Inverted dropout with the kernel's mask: x_i·keep_i/(1 − rate).
pub fn dropout(x: &[f64], rate: f64, seed: u32) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if crate::kernels::elementwise::dropout_keeps(seed, i as u32, rate as f32) {
                v / (1.0 - rate)
            } else {
                0.0
            }
        })
        .collect()
}

/// (B·P) x C rows to (B, C, P) planes.
pub fn rows_to_planes(rows: &[f64], batch: usize, channels: usize, positions: usize) -> Vec<f64> {
    let mut out = vec![0.0; batch * channels * positions];
    for b in 0..batch {
        for c in 0..channels {
            for q in 0..positions {
                out[(b * channels + c) * positions + q] = rows[(b * positions + q) * channels + c];
            }
        }
    }
    out
}

/// (B, C, P) planes to (B·P) x C rows.
pub fn planes_to_rows(planes: &[f64], batch: usize, channels: usize, positions: usize) -> Vec<f64> {
    let mut out = vec![0.0; batch * channels * positions];
    for b in 0..batch {
        for c in 0..channels {
            for q in 0..positions {
                out[(b * positions + q) * channels + c] =
                    planes[(b * channels + c) * positions + q];
            }
        }
    }
    out
}
