//! Reductions of a row-major [rows, cols] matrix in float64.

use crate::kernels::reduce::ReduceOp;

fn fold(op: ReduceOp, values: impl Iterator<Item = f64>) -> f64 {
    match op {
        ReduceOp::Sum => values.sum(),
        ReduceOp::Max => values.fold(f64::NEG_INFINITY, f64::max),
        ReduceOp::AbsMax => values.map(f64::abs).fold(0.0, f64::max),
        ReduceOp::SumSquares => values.map(|v| v * v).sum(),
        ReduceOp::SumAbs => values.map(f64::abs).sum(),
    }
}

pub fn row_reduce(op: ReduceOp, x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| fold(op, x[r * cols..(r + 1) * cols].iter().copied()))
        .collect()
}

pub fn col_reduce(op: ReduceOp, x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols)
        .map(|c| fold(op, (0..rows).map(|r| x[r * cols + c])))
        .collect()
}

pub fn global_reduce(op: ReduceOp, x: &[f64]) -> f64 {
    fold(op, x.iter().copied())
}

/// out[c] = Σ_r x[r, c] · y[r, c].
pub fn col_dot(x: &[f64], y: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols)
        .map(|c| (0..rows).map(|r| x[r * cols + c] * y[r * cols + c]).sum())
        .collect()
}
