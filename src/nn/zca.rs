//! ZCA whitening of the input images (Lagani's WTA preprocessing, `[preprocess] zca`).
//!
//! Statistics, in float64 on the host, over n training vectors x (D each, after the input
//! standardisation): μ = (1/n)·Σ x, Σ = (1/n)·Σ (x − μ)(x − μ)ᵀ = U·diag(λ)·Uᵀ, and the
//! symmetric Z = U·diag(1/√(λ + ε))·Uᵀ (D x D). On the GPU a batch is whitened as
//! x_white = (x − μ)·Z: one broadcast subtraction and one GEMM. `Moments::AboutZero` is
//! Lagani's data manager instead: μ = 0 and Σ = (1/(n − 1))·Σ x·xᵀ, the second moment of the
//! standardised vectors, not their covariance.
//!
//! Geometry: an image of C x H x W with H, W ≤ 32 and C·H·W ≤ 4096 is one vector (D = C·H·W,
//! the NCHW flattening). A larger image is cut into non-overlapping 32 x 32 blocks, each a
//! vector of D = C·32·32 in (c, y, x) order, all blocks sharing one transform; H and W must
//! then be multiples of 32 (Lagani resizes instead; we do not). On the GPU the blocks are
//! gathered into rows (`layout::blocks`), whitened as above and scattered back.

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par, Side};

use crate::data::source::ItemShape;
use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm};
use crate::kernels::hebbian;
use crate::kernels::layout::{self, Blocks};

/// The side of the whitening window (Lagani's 32 x 32 filter).
pub const ZCA_WINDOW: usize = 32;
/// The largest whole-image vector whitened at once (its D x D matrix has 16.8M entries).
pub const ZCA_MAX_DIM: usize = 4096;

/// How an image is cut into whitening vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZcaGeometry {
    pub image: ItemShape,
    /// [bh, bw]: the block each vector covers ([H, W] for a whole image).
    pub block: [usize; 2],
}

fn shape_err(message: String) -> HebbError {
    HebbError::Shape {
        tensor: "preprocess.zca".into(),
        message,
    }
}

impl ZcaGeometry {
    /// The whole image when H, W ≤ 32 and C·H·W ≤ 4096, else 32 x 32 blocks (an error when
    /// H or W is not a multiple of 32, or C·32·32 exceeds 4096).
    pub fn new(image: ItemShape) -> Result<Self> {
        let ItemShape {
            channels: c,
            height: h,
            width: w,
        } = image;
        if image.is_empty() {
            return Err(shape_err(format!("{c}x{h}x{w} images have no pixels")));
        }
        if h <= ZCA_WINDOW && w <= ZCA_WINDOW && image.len() <= ZCA_MAX_DIM {
            return Ok(Self {
                image,
                block: [h, w],
            });
        }
        if !h.is_multiple_of(ZCA_WINDOW) || !w.is_multiple_of(ZCA_WINDOW) {
            return Err(shape_err(format!(
                "{c}x{h}x{w} images are larger than the {ZCA_WINDOW}x{ZCA_WINDOW} whitening \
                 window, so they are whitened in {ZCA_WINDOW}x{ZCA_WINDOW} blocks, which needs \
                 H and W to be multiples of {ZCA_WINDOW} (got H = {h}, W = {w}); resize or \
                 crop the images (e.g. [data] image_size) or remove preprocess.zca"
            )));
        }
        Self::blocked(image, [ZCA_WINDOW, ZCA_WINDOW])
    }

    /// Blocks of `block` = [bh, bw], which must tile the image, with C·bh·bw ≤ 4096.
    pub fn blocked(image: ItemShape, block: [usize; 2]) -> Result<Self> {
        let [bh, bw] = block;
        let (c, h, w) = (image.channels, image.height, image.width);
        if bh == 0 || bw == 0 || !h.is_multiple_of(bh) || !w.is_multiple_of(bw) {
            return Err(shape_err(format!(
                "{bh}x{bw} blocks do not tile {c}x{h}x{w} images"
            )));
        }
        if c * bh * bw > ZCA_MAX_DIM {
            return Err(shape_err(format!(
                "a {bh}x{bw} block of {c}-channel images has {} values; whitening supports at \
                 most {ZCA_MAX_DIM} (so at most {} channels for {ZCA_WINDOW}x{ZCA_WINDOW} blocks)",
                c * bh * bw,
                ZCA_MAX_DIM / (ZCA_WINDOW * ZCA_WINDOW)
            )));
        }
        Ok(Self { image, block })
    }

    /// Values per whitening vector: C·bh·bw.
    pub fn dim(&self) -> usize {
        self.image.channels * self.block[0] * self.block[1]
    }

    /// Vectors per image.
    pub fn blocks(&self) -> usize {
        (self.image.height / self.block[0]) * (self.image.width / self.block[1])
    }

    /// Whether each image is one vector (no gather/scatter needed).
    pub fn whole(&self) -> bool {
        self.blocks() == 1
    }

    /// Appends the whitening vectors of one image (C x H x W) to `rows`, in the GPU's
    /// blocks order: blocks row-major over the image, values in (c, y, x) order.
    pub fn push_vectors(&self, image: &[f32], rows: &mut Vec<f32>) {
        let ItemShape {
            channels,
            height,
            width,
        } = self.image;
        let [bh, bw] = self.block;
        for by in 0..height / bh {
            for bx in 0..width / bw {
                for c in 0..channels {
                    for y in 0..bh {
                        let start = (c * height + by * bh + y) * width + bx * bw;
                        rows.extend_from_slice(&image[start..start + bw]);
                    }
                }
            }
        }
    }
}

/// A fitted transform in float64: μ (D), Z (D x D, row-major and symmetric), the eigenvalues
/// λ of the covariance (ascending), and how long the eigendecomposition took.
pub struct ZcaFit {
    pub mean: Vec<f64>,
    pub matrix: Vec<f64>,
    pub eigenvalues: Vec<f64>,
    pub eigen_seconds: f64,
}

/// The moments Z whitens: about the sample mean (the covariance), or about zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moments {
    /// μ = (1/n)·Σ x and Σ = (1/n)·Σ (x − μ)(x − μ)ᵀ.
    Centred,
    /// μ = 0 and Σ = (1/(n − 1))·Σ x·xᵀ (Lagani's data manager).
    AboutZero,
}

/// Fits μ and Z to `rows` (n x D, row-major) with ε = `epsilon` (see the module header).
pub fn fit(rows: &[f32], d: usize, epsilon: f64, moments: Moments) -> Result<ZcaFit> {
    if d == 0 || rows.is_empty() || !rows.len().is_multiple_of(d) {
        return Err(shape_err(format!(
            "{} values are not a whole number of {d}-value vectors",
            rows.len()
        )));
    }
    let n = rows.len() / d;
    let mut mean = vec![0f64; d];
    let divisor = match moments {
        Moments::Centred => {
            for row in rows.chunks_exact(d) {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v as f64;
                }
            }
            for m in &mut mean {
                *m /= n as f64;
            }
            n as f64
        }
        Moments::AboutZero if n < 2 => {
            return Err(shape_err(format!(
                "the second moment about zero needs at least 2 vectors, not {n}"
            )));
        }
        Moments::AboutZero => (n - 1) as f64,
    };
    // Σ = (1/divisor)·Σ_chunks Xcᵀ·Xc over chunks of rows less μ.
    let par = Par::rayon(0);
    let mut cov = Mat::<f64>::zeros(d, d);
    const CHUNK: usize = 512;
    for start in (0..n).step_by(CHUNK) {
        let m = CHUNK.min(n - start);
        let block = &rows[start * d..(start + m) * d];
        let xc = Mat::<f64>::from_fn(m, d, |i, j| block[i * d + j] as f64 - mean[j]);
        matmul(
            cov.as_mut(),
            Accum::Add,
            xc.transpose(),
            xc.as_ref(),
            1.0 / divisor,
            par,
        );
    }
    let started = Instant::now();
    let evd = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| shape_err(format!("the covariance eigendecomposition failed: {e:?}")))?;
    let eigen_seconds = started.elapsed().as_secs_f64();
    let u = evd.U();
    let eigenvalues: Vec<f64> = (0..d).map(|i| evd.S().column_vector()[i]).collect();
    // Z = (U·diag(1/√(λ + ε)))·Uᵀ; rounding may leave λ slightly negative.
    let scaled = Mat::<f64>::from_fn(d, d, |i, j| {
        u[(i, j)] / (eigenvalues[j].max(0.0) + epsilon).sqrt()
    });
    let mut z = Mat::<f64>::zeros(d, d);
    matmul(
        z.as_mut(),
        Accum::Replace,
        scaled.as_ref(),
        u.transpose(),
        1.0,
        par,
    );
    let mut matrix = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..d {
            matrix[i * d + j] = 0.5 * (z[(i, j)] + z[(j, i)]);
        }
    }
    Ok(ZcaFit {
        mean,
        matrix,
        eigenvalues,
        eigen_seconds,
    })
}

/// A transform on the GPU: −μ (D), Z (D x D) and the work buffers for `capacity` images.
pub struct Zca {
    pub geometry: ZcaGeometry,
    pub mean: Vec<f32>,
    pub matrix: Vec<f32>,
    neg_mean: Tensor,
    matrix_t: Tensor,
    rows_a: Tensor,
    rows_b: Tensor,
}

impl Zca {
    pub fn new(
        ctx: &GpuContext,
        geometry: ZcaGeometry,
        mean: Vec<f32>,
        matrix: Vec<f32>,
        capacity: usize,
    ) -> Result<Self> {
        let d = geometry.dim();
        if mean.len() != d || matrix.len() != d * d {
            return Err(shape_err(format!(
                "a mean of {} and a matrix of {} values for {d}-value vectors ({}x{}x{} images \
                 in {}x{} blocks): expected {d} and {}",
                mean.len(),
                matrix.len(),
                geometry.image.channels,
                geometry.image.height,
                geometry.image.width,
                geometry.block[0],
                geometry.block[1],
                d * d
            )));
        }
        if let Some(v) = mean.iter().chain(&matrix).find(|v| !v.is_finite()) {
            return Err(shape_err(format!(
                "the transform holds a non-finite value {v}"
            )));
        }
        let neg: Vec<f32> = mean.iter().map(|m| -m).collect();
        let len = capacity * geometry.image.len();
        Ok(Self {
            neg_mean: Tensor::from_f32(ctx, "ZCA −mean", &[d], &neg)?,
            matrix_t: Tensor::from_f32(ctx, "ZCA matrix", &[d, d], &matrix)?,
            rows_a: Tensor::empty(ctx, "ZCA work a", &[len], DType::F32)?,
            rows_b: Tensor::empty(ctx, "ZCA work b", &[len], DType::F32)?,
            geometry,
            mean,
            matrix,
        })
    }

    /// Records the whitening of `batch` images of x (B x C x H x W) and returns the tensor
    /// that will hold them (one of the work buffers, same layout).
    pub fn apply(&self, rec: &mut Recorder<'_>, x: &Tensor, batch: usize) -> Result<&Tensor> {
        let g = &self.geometry;
        let d = g.dim();
        let rows = batch * g.blocks();
        if batch * g.image.len() > self.rows_a.len() {
            return Err(shape_err(format!(
                "{batch} images exceed the {} the buffers hold",
                self.rows_a.len() / g.image.len()
            )));
        }
        let (c, hw) = (g.image.channels, [g.image.height, g.image.width]);
        let gemm = Gemm::new(rows, d, d).shaped();
        let (a, b) = (&self.rows_a, &self.rows_b);
        if g.whole() {
            hebbian::add_bias(rec, x, &self.neg_mean, rows, d, b)?;
            gemm::gemm(rec, &gemm, b, &self.matrix_t, a)?;
            Ok(a)
        } else {
            layout::blocks(rec, Blocks::PlanesToBlocks, batch, c, hw, g.block, x, a)?;
            hebbian::add_bias(rec, a, &self.neg_mean, rows, d, b)?;
            gemm::gemm(rec, &gemm, b, &self.matrix_t, a)?;
            layout::blocks(rec, Blocks::BlocksToPlanes, batch, c, hw, g.block, a, b)?;
            Ok(b)
        }
    }
}
