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

/// Inverted dropout with the kernel's mask: x_i·keep_{first+i}/(1 − rate).
pub fn dropout(x: &[f64], first: usize, rate: f64, seed: u32) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let index = (first + i) as u32;
            if crate::kernels::elementwise::dropout_keeps(seed, index, rate as f32) {
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

/// Index of element (b, c, y, x) of (B, C, H, W) planes in the blocks layout
/// ((B·H/bh·W/bw) x C·bh·bw, rows in (b, by, bx) order, columns in (c, ky, kx) order).
fn block_index(
    [_, c_n, h, w]: [usize; 4],
    [bh, bw]: [usize; 2],
    [b, c, y, x]: [usize; 4],
) -> usize {
    let row = (b * (h / bh) + y / bh) * (w / bw) + x / bw;
    row * c_n * bh * bw + (c * bh + y % bh) * bw + x % bw
}

/// (B, C, H, W) planes to the rows of their non-overlapping bh x bw blocks.
pub fn planes_to_blocks(planes: &[f64], dims: [usize; 4], block: [usize; 2]) -> Vec<f64> {
    let [batch, channels, h, w] = dims;
    let mut out = vec![0.0; planes.len()];
    for b in 0..batch {
        for c in 0..channels {
            for y in 0..h {
                for x in 0..w {
                    out[block_index(dims, block, [b, c, y, x])] =
                        planes[((b * channels + c) * h + y) * w + x];
                }
            }
        }
    }
    out
}

/// The inverse of `planes_to_blocks`.
pub fn blocks_to_planes(blocks: &[f64], dims: [usize; 4], block: [usize; 2]) -> Vec<f64> {
    let [batch, channels, h, w] = dims;
    let mut out = vec![0.0; blocks.len()];
    for b in 0..batch {
        for c in 0..channels {
            for y in 0..h {
                for x in 0..w {
                    out[((b * channels + c) * h + y) * w + x] =
                        blocks[block_index(dims, block, [b, c, y, x])];
                }
            }
        }
    }
    out
}
