//! 2-D pooling in float64, following PyTorch's max_pool2d / avg_pool2d (ceil_mode off).

use crate::kernels::pool::{Pool2d, PoolKind};

pub fn pool2d(g: &Pool2d, x: &[f64]) -> Vec<f64> {
    let (ho, wo) = g.output_hw().expect("valid pooling geometry");
    let (h, w) = (g.h as isize, g.w as isize);
    let ([kh, kw], [sh, sw], [ph, pw]) = (g.kernel, g.stride, g.padding);
    let mut out = Vec::with_capacity(g.planes * ho * wo);
    for plane in 0..g.planes {
        let px = &x[plane * g.h * g.w..(plane + 1) * g.h * g.w];
        for oh in 0..ho {
            for ow in 0..wo {
                let h0 = (oh * sh) as isize - ph as isize;
                let w0 = (ow * sw) as isize - pw as isize;
                let (h1, w1) = (h0 + kh as isize, w0 + kw as isize);
                let padded = ((h1.min(h + ph as isize)) - h0) * ((w1.min(w + pw as isize)) - w0);
                let (y0, y1, z0, z1) = (h0.max(0), h1.min(h), w0.max(0), w1.min(w));
                let values = (y0..y1).flat_map(|y| (z0..z1).map(move |z| px[(y * w + z) as usize]));
                out.push(match g.kind {
                    PoolKind::Max => values.fold(f64::NEG_INFINITY, f64::max),
                    PoolKind::Avg { count_include_pad } => {
                        let sum: f64 = values.sum();
                        let inside = (y1 - y0) * (z1 - z0);
                        sum / (if count_include_pad { padded } else { inside }).max(1) as f64
                    }
                });
            }
        }
    }
    out
}

/// The backward pass of `pool2d` by scattering, as PyTorch's autograd: each window's output
/// gradient goes to the window's first maximum (max; ties to the first in row-major order),
/// or spreads over the window's input elements divided by the forward's divisor (average).
pub fn pool2d_backward(g: &Pool2d, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let (ho, wo) = g.output_hw().expect("valid pooling geometry");
    let (h, w) = (g.h as isize, g.w as isize);
    let ([kh, kw], [sh, sw], [ph, pw]) = (g.kernel, g.stride, g.padding);
    let mut dx = vec![0.0; g.planes * g.h * g.w];
    for plane in 0..g.planes {
        let base = plane * g.h * g.w;
        for oh in 0..ho {
            for ow in 0..wo {
                let grad = dy[(plane * ho + oh) * wo + ow];
                let h0 = (oh * sh) as isize - ph as isize;
                let w0 = (ow * sw) as isize - pw as isize;
                let (h1, w1) = (h0 + kh as isize, w0 + kw as isize);
                let (y0, y1, z0, z1) = (h0.max(0), h1.min(h), w0.max(0), w1.min(w));
                let cells: Vec<usize> = (y0..y1)
                    .flat_map(|y| (z0..z1).map(move |z| base + (y * w + z) as usize))
                    .collect();
                match g.kind {
                    PoolKind::Max => {
                        let mut best = cells[0];
                        for &i in &cells[1..] {
                            if x[i] > x[best] {
                                best = i;
                            }
                        }
                        dx[best] += grad;
                    }
                    PoolKind::Avg { count_include_pad } => {
                        let padded =
                            ((h1.min(h + ph as isize)) - h0) * ((w1.min(w + pw as isize)) - w0);
                        let divisor = if count_include_pad {
                            padded
                        } else {
                            cells.len() as isize
                        };
                        for &i in &cells {
                            dx[i] += grad / divisor.max(1) as f64;
                        }
                    }
                }
            }
        }
    }
    dx
}
