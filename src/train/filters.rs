//! A PNG of the first layer's learned filters (the receptive fields the SoftHebb and Lagani
//! papers show): one tile per neuron on a near-square grid, each tile min–max scaled on its own,
//! RGB for 3 input channels and grey otherwise (the first channel), each weight drawn as a
//! `zoom` x `zoom` block with a 1-block border.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{HebbError, Result};

/// Renders weights of shape (C, C_in, kh, kw) to `path`.
pub fn write_png(path: &Path, shape: &[usize], w: &[f32]) -> Result<()> {
    let [c, cin, kh, kw] = match shape {
        [c, cin, kh, kw] => [*c, *cin, *kh, *kw],
        other => {
            return Err(HebbError::Shape {
                tensor: "layers.0.weight".into(),
                message: format!("shape {other:?}, expected (C, C_in, kh, kw)"),
            });
        }
    };
    if w.len() != c * cin * kh * kw || c == 0 {
        return Err(HebbError::Shape {
            tensor: "layers.0.weight".into(),
            message: format!("{} values for shape {shape:?}", w.len()),
        });
    }
    let zoom = (64 / kh.max(kw)).clamp(1, 8) as u32;
    let cols = (c as f64).sqrt().ceil() as usize;
    let rows = c.div_ceil(cols);
    let (tw, th) = (kw as u32 * zoom + zoom, kh as u32 * zoom + zoom);
    let mut img = RgbImage::from_pixel(
        cols as u32 * tw + zoom,
        rows as u32 * th + zoom,
        Rgb([32, 32, 32]),
    );
    let d = cin * kh * kw;
    for n in 0..c {
        let f = &w[n * d..(n + 1) * d];
        let lo = f.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = f.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
        let px = |ch: usize, i: usize, j: usize| -> u8 {
            let v = f[(ch * kh + i) * kw + j];
            if v.is_finite() {
                ((v - lo) * scale).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        };
        let (x0, y0) = ((n % cols) as u32 * tw + zoom, (n / cols) as u32 * th + zoom);
        for i in 0..kh {
            for j in 0..kw {
                let rgb = if cin == 3 {
                    [px(0, i, j), px(1, i, j), px(2, i, j)]
                } else {
                    let g = px(0, i, j);
                    [g, g, g]
                };
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        img.put_pixel(
                            x0 + j as u32 * zoom + dx,
                            y0 + i as u32 * zoom + dy,
                            Rgb(rgb),
                        );
                    }
                }
            }
        }
    }
    let tmp = path.with_extension("tmp.png");
    img.save(&tmp).map_err(|e| HebbError::Io {
        path: tmp.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| HebbError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}
