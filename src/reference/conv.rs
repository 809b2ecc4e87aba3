//! Convolution as GEMM (conv.wgsl) in float64: the patch matrix from `im2col_conv`, then plain
//! products. With beta == 0 the previous output is not read.

use crate::kernels::im2col::ConvGeometry;
use crate::reference::dense::{Mat, im2col_conv};

/// U (N x C) = alpha · P·Wᵀ + beta · U0 for x (B, C_in, H, W) and W (C x D).
pub fn conv_forward_rows(
    g: &ConvGeometry,
    x: &[f64],
    w: &Mat,
    alpha: f64,
    beta: f64,
    u0: &Mat,
) -> Mat {
    let p = im2col_conv(g, x);
    let product = p.matmul(&w.transpose());
    scaled(&product, alpha, beta, u0)
}

/// ΔW (C x D) = alpha · Gᵀ·P + beta · ΔW0 for G (N x C).
pub fn conv_update(g: &ConvGeometry, gm: &Mat, x: &[f64], alpha: f64, beta: f64, dw0: &Mat) -> Mat {
    let p = im2col_conv(g, x);
    let product = gm.transpose().matmul(&p);
    scaled(&product, alpha, beta, dw0)
}

/// alpha · product + beta · c (c not read when beta == 0).
fn scaled(product: &Mat, alpha: f64, beta: f64, c: &Mat) -> Mat {
    if beta == 0.0 {
        return product.map(|v| alpha * v);
    }
    product.zip(c, |a, b| alpha * a + beta * b)
}
