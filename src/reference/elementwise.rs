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
