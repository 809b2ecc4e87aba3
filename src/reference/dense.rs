//! A plain row-major float64 matrix for the CPU references, and im2col (FORMAT.md §2.1).

use crate::kernels::im2col::ConvGeometry;
use crate::rules::case::Layer;

#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Mat {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn from_vec(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(data.len(), rows * cols, "Mat::from_vec: {rows} x {cols}");
        Self { rows, cols, data }
    }

    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    pub fn set(&mut self, r: usize, c: usize, v: f64) {
        self.data[r * self.cols + c] = v;
    }

    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> Mat {
        Mat::from_vec(
            self.rows,
            self.cols,
            self.data.iter().map(|&v| f(v)).collect(),
        )
    }

    pub fn zip(&self, other: &Mat, f: impl Fn(f64, f64) -> f64) -> Mat {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols));
        Mat::from_vec(
            self.rows,
            self.cols,
            self.data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        )
    }

    pub fn transpose(&self) -> Mat {
        let mut t = Mat::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                t.set(c, r, self.at(r, c));
            }
        }
        t
    }

    /// self · other.
    pub fn matmul(&self, other: &Mat) -> Mat {
        assert_eq!(self.cols, other.rows, "matmul inner dimensions");
        let mut out = Mat::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            for l in 0..self.cols {
                let a = self.at(i, l);
                if a == 0.0 {
                    continue;
                }
                let orow = other.row(l);
                let dst = &mut out.data[i * other.cols..(i + 1) * other.cols];
                for (d, &b) in dst.iter_mut().zip(orow) {
                    *d += a * b;
                }
            }
        }
        out
    }

    /// selfᵀ · other, without forming the transpose.
    pub fn t_matmul(&self, other: &Mat) -> Mat {
        self.transpose().matmul(other)
    }

    /// self · otherᵀ.
    pub fn matmul_t(&self, other: &Mat) -> Mat {
        self.matmul(&other.transpose())
    }

    pub fn scale(&self, s: f64) -> Mat {
        self.map(|v| v * s)
    }

    /// Column sums, a vector of length `cols`.
    pub fn colsum(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.cols];
        for r in 0..self.rows {
            for (o, v) in out.iter_mut().zip(self.row(r)) {
                *o += v;
            }
        }
        out
    }

    /// Row i scaled by v[i].
    pub fn scale_rows(&self, v: &[f64]) -> Mat {
        let mut out = self.clone();
        for r in 0..self.rows {
            for c in 0..self.cols {
                out.data[r * self.cols + c] *= v[r];
            }
        }
        out
    }

    /// Euclidean norm of each row.
    pub fn row_norms(&self) -> Vec<f64> {
        (0..self.rows)
            .map(|r| self.row(r).iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect()
    }

    pub fn max_abs(&self) -> f64 {
        self.data.iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    /// SoftHebb's triangle per row: relu(a − mean of the row)^power.
    pub fn triangle_rows(&self, power: f64) -> Mat {
        let mut out = self.clone();
        for r in 0..self.rows {
            let mean = self.row(r).iter().sum::<f64>() / self.cols as f64;
            for c in 0..self.cols {
                out.set(r, c, (self.at(r, c) - mean).max(0.0).powf(power));
            }
        }
        out
    }

    /// Keeps the lower triangle including the diagonal (⊙ L of PRESETS.md).
    pub fn lower_triangle(&self) -> Mat {
        let mut out = self.clone();
        for r in 0..self.rows {
            for c in r + 1..self.cols {
                out.set(r, c, 0.0);
            }
        }
        out
    }

    /// Inverse by Gauss–Jordan elimination with partial pivoting (None if singular).
    pub fn inverse(&self) -> Option<Mat> {
        let n = self.rows;
        assert_eq!(n, self.cols);
        let mut a = self.clone();
        let mut inv = Mat::zeros(n, n);
        for i in 0..n {
            inv.set(i, i, 1.0);
        }
        for col in 0..n {
            let pivot =
                (col..n).max_by(|&x, &y| a.at(x, col).abs().total_cmp(&a.at(y, col).abs()))?;
            if a.at(pivot, col).abs() < 1e-300 {
                return None;
            }
            for c in 0..n {
                a.data.swap(col * n + c, pivot * n + c);
                inv.data.swap(col * n + c, pivot * n + c);
            }
            let p = a.at(col, col);
            for c in 0..n {
                a.data[col * n + c] /= p;
                inv.data[col * n + c] /= p;
            }
            for r in 0..n {
                if r != col {
                    let f = a.at(r, col);
                    if f != 0.0 {
                        for c in 0..n {
                            a.data[r * n + c] -= f * a.data[col * n + c];
                            inv.data[r * n + c] -= f * inv.data[col * n + c];
                        }
                    }
                }
            }
        }
        Some(inv)
    }
}

/// guard(v) = v if v ≠ 0, else 1 (PRESETS.md §0).
pub fn guard(v: f64) -> f64 {
    if v != 0.0 { v } else { 1.0 }
}

/// The patch matrix X (N x D) of one step's input (B, C_in, H, W), FORMAT.md §2.1:
/// row n = (b·Ho + oh)·Wo + ow, column d = (c·kh + i)·kw + j. Linear layers: X = x (B x n_in).
pub fn im2col(layer: &Layer, x: &[f64], batch: usize, hw: (usize, usize)) -> Mat {
    match layer.conv_geometry(batch, hw) {
        Some(g) => im2col_conv(&g, x),
        None => Mat::from_vec(batch, layer.fan_in(), x.to_vec()),
    }
}

/// im2col of a convolution input (B, C_in, H, W); the geometry must be valid.
pub fn im2col_conv(g: &ConvGeometry, x: &[f64]) -> Mat {
    let (n, d) = g.patch_shape().expect("valid convolution geometry");
    let mut out = Mat::zeros(n, d);
    patch_sources(g, |row, col, src| {
        out.set(row, col, src.map_or(0.0, |i| x[i]));
    });
    out
}

/// col2im, the adjoint of `im2col_conv` (a convolution's backward-data): each patch element's
/// gradient dP[n, d] is added to the input element it was read from (padding zeros take none;
/// a reflected element takes the gradients of its mirror images too). Returns dx (B, C_in, H, W).
pub fn col2im_conv(g: &ConvGeometry, dp: &Mat) -> Vec<f64> {
    let mut dx = vec![0.0; g.input_len()];
    patch_sources(g, |row, col, src| {
        if let Some(i) = src {
            dx[i] += dp.at(row, col);
        }
    });
    dx
}

/// Visits every patch element (n, d) of a convolution with the index of the input element
/// (B, C_in, H, W) it reads, or None for a zero of the padding.
fn patch_sources(g: &ConvGeometry, mut visit: impl FnMut(usize, usize, Option<usize>)) {
    let (h, w) = (g.h, g.w);
    let (ho, wo) = g.output_hw().expect("valid convolution geometry");
    let [kh, kw] = g.kernel;
    // Index into the unpadded input, or None for a zero pad.
    let source = |p: isize, len: usize| -> Option<usize> {
        if p >= 0 && (p as usize) < len {
            return Some(p as usize);
        }
        if !g.reflect {
            return None;
        }
        // Mirror without repeating the edge: -1 -> 1, len -> len - 2.
        Some(if p < 0 {
            (-p) as usize
        } else {
            2 * (len - 1) - p as usize
        })
    };
    for b in 0..g.batch {
        for oh in 0..ho {
            for ow in 0..wo {
                let n = (b * ho + oh) * wo + ow;
                for c in 0..g.in_channels {
                    for i in 0..kh {
                        for j in 0..kw {
                            let ih = (oh * g.stride[0] + i) as isize - g.padding[0] as isize;
                            let iw = (ow * g.stride[1] + j) as isize - g.padding[1] as isize;
                            let src = match (source(ih, h), source(iw, w)) {
                                (Some(y), Some(z)) => {
                                    Some(((b * g.in_channels + c) * h + y) * w + z)
                                }
                                _ => None,
                            };
                            visit(n, (c * kh + i) * kw + j, src);
                        }
                    }
                }
            }
        }
    }
}

/// Rows (N x C, row n = (b·Ho + oh)·Wo + ow) to NCHW (B, C, Ho, Wo).
pub fn rows_to_nchw(rows: &Mat, batch: usize, hw: (usize, usize)) -> Vec<f64> {
    let (ho, wo) = hw;
    let c = rows.cols;
    let mut out = vec![0.0; batch * c * ho * wo];
    for b in 0..batch {
        for ch in 0..c {
            for p in 0..ho * wo {
                out[(b * c + ch) * ho * wo + p] = rows.at(b * ho * wo + p, ch);
            }
        }
    }
    out
}
