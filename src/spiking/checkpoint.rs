//! A culture's checkpoint: what `hebb spiking` writes after a run (`checkpoint.safetensors`),
//! and reads back with `--culture` to start from a given culture instead of building one from
//! the seed: a trained culture, or one exported from SpikingGrid's `Net`.
//!
//! Tensors (n neurons, w_in and w_inh the ELL widths; index rows ascending, padded with
//! `NONE` = u32::MAX, whose weight slots hold 0):
//! - `positions` F32 [n, 2]: (x, y) in units, 0 ≤ x ≤ 5/3, 0 ≤ y ≤ 1;
//! - `input.index` U32 [n, w_in], electrode indices < 60; `input.weight` F32 [n, w_in], ≥ 0;
//! - `inhibitory.index` U32 [n, w_inh], relay indices < n, never the row's own neuron;
//!   `inhibitory.weight` F32 [n, w_inh], ≤ 0;
//! - `excitatory.weight` F32 [n, n] by presynaptic neuron, ≥ 0, −1 where pruned and on the
//!   diagonal.
//!
//! Metadata `format` = `hebb-culture/1`. A file without a `format` key reads the same (the
//! checkpoints written before the key existed have none); any other value is refused.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{HebbError, Result};
use crate::spiking::culture::{
    Culture, CultureConfig, ELECTRODES, Ell, HEIGHT, MAX_NEURONS, NONE, WIDTH,
};
use crate::train::checkpoint::{open_safetensors, write_atomic};

pub const FORMAT: &str = "hebb-culture/1";

/// Writes `culture` as built, with its initial weights (`hebb spiking --export-culture`).
pub fn write_initial(path: &Path, culture: &Culture) -> Result<()> {
    write(
        path,
        culture,
        &culture.input.weight,
        &culture.inhibitory.weight,
        &culture.exc,
    )
}

/// Writes `culture`'s positions and masks with the weights `w_in`, `w_inh` (ELL, the culture's
/// layout) and `w_exc` (dense), atomically.
pub fn write(
    path: &Path,
    culture: &Culture,
    w_in: &[f32],
    w_inh: &[f32],
    w_exc: &[f32],
) -> Result<()> {
    let n = culture.neurons();
    let positions: Vec<f32> = culture
        .positions
        .iter()
        .flat_map(|&(x, y)| [x as f32, y as f32])
        .collect();
    let bytes_f32 = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
    let bytes_u32 = |v: &[u32]| bytemuck::cast_slice::<u32, u8>(v).to_vec();
    let (w_in_width, w_inh_width) = (culture.input.width, culture.inhibitory.width);
    let entries = [
        ("positions", Dtype::F32, vec![n, 2], bytes_f32(&positions)),
        (
            "input.index",
            Dtype::U32,
            vec![n, w_in_width],
            bytes_u32(&culture.input.index),
        ),
        (
            "input.weight",
            Dtype::F32,
            vec![n, w_in_width],
            bytes_f32(w_in),
        ),
        (
            "inhibitory.index",
            Dtype::U32,
            vec![n, w_inh_width],
            bytes_u32(&culture.inhibitory.index),
        ),
        (
            "inhibitory.weight",
            Dtype::F32,
            vec![n, w_inh_width],
            bytes_f32(w_inh),
        ),
        (
            "excitatory.weight",
            Dtype::F32,
            vec![n, n],
            bytes_f32(w_exc),
        ),
    ];
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view =
                TensorView::new(*dtype, shape.clone(), data).map_err(|e| HebbError::Shape {
                    tensor: name.to_string(),
                    message: e.to_string(),
                })?;
            Ok((name.to_string(), view))
        })
        .collect::<Result<_>>()?;
    let metadata = HashMap::from([("format".to_string(), FORMAT.to_string())]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| HebbError::Format {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Reads the culture in `path` for a recipe whose culture is `config` (its neuron count must be
/// the file's; the dynamics come from `config`). Every tensor is checked: a bad file is an
/// error naming the file, the tensor or entry, and what was expected.
pub fn read(path: &Path, config: &CultureConfig) -> Result<Culture> {
    let n = config.neurons();
    let bad = |message: String| HebbError::Format {
        path: path.into(),
        message,
    };
    if n == 0 || n > MAX_NEURONS {
        return Err(bad(format!(
            "the recipe's culture has {n} neurons; a culture holds 1..={MAX_NEURONS}"
        )));
    }
    // The largest file a culture of n neurons can be: positions, both ELLs at their widest
    // (60 electrodes, n − 1 relays), W_E, and a header.
    let widest = 4 * (2 * n + 2 * n * ELECTRODES + 2 * n * n + n * n) + (1 << 20);
    let bytes = crate::data::limits::read_bounded(path, widest as u64, "the culture")?;
    let (st, metadata) = open_safetensors(&bytes, path)?;
    if let Some(format) = metadata.get("format")
        && format != FORMAT
    {
        return Err(bad(format!(
            "metadata `format` is {format:?}; a culture has {FORMAT:?} there, or no `format` key"
        )));
    }
    // A tensor's bytes after checking its dtype and its shape against `shape` (width 0: any
    // width ≥ 1), and its width.
    let tensor = |name: &str, dtype: Dtype, shape: [usize; 2]| -> Result<(usize, &[u8])> {
        let view = st
            .tensor(name)
            .map_err(|_| bad(format!("tensor {name} is missing")))?;
        if view.dtype() != dtype {
            return Err(bad(format!(
                "tensor {name} is {:?}, expected {dtype:?}",
                view.dtype()
            )));
        }
        let got = view.shape();
        let fits = got.len() == 2 && got[0] == shape[0] && (shape[1] == 0 || got[1] == shape[1]);
        if !fits || got[1] == 0 {
            let want = if shape[1] == 0 {
                format!("[{}, width ≥ 1]", shape[0])
            } else {
                format!("{shape:?}")
            };
            return Err(bad(format!(
                "tensor {name} has shape {got:?}, expected {want} for the recipe's {} x {} \
                 culture; use a recipe whose rows · cols is the file's neuron count",
                config.rows, config.cols
            )));
        }
        Ok((got[1], view.data()))
    };
    let floats = |data: &[u8]| -> Vec<f32> {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let words = |data: &[u8]| -> Vec<u32> {
        data.chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };

    let (_, data) = tensor("positions", Dtype::F32, [n, 2])?;
    let xy = floats(data);
    let mut positions = Vec::with_capacity(n);
    for (i, p) in xy.chunks_exact(2).enumerate() {
        let (x, y) = (p[0] as f64, p[1] as f64);
        if !((0.0..=WIDTH as f32 as f64).contains(&x) && (0.0..=HEIGHT).contains(&y)) {
            return Err(bad(format!(
                "positions[{i}] = ({x}, {y}) lies outside the 5/3 x 1 culture"
            )));
        }
        positions.push((x, y));
    }
    // An ELL connection: indices ascending below `limit` (never the row's own neuron when
    // `no_self`), then padding; weights of one sign at real slots, 0 at padding.
    let ell = |name: &str, limit: usize, no_self: bool, sign: f32| -> Result<Ell> {
        let (width, data) = tensor(&format!("{name}.index"), Dtype::U32, [n, 0])?;
        let index = words(data);
        let (_, data) = tensor(&format!("{name}.weight"), Dtype::F32, [n, width])?;
        let weight = floats(data);
        let at = |part: &str, row: usize, slot: usize| format!("{name}.{part}[{row}, {slot}]");
        for row in 0..n {
            let mut previous: Option<u32> = None;
            for slot in 0..width {
                let (pre, w) = (index[row * width + slot], weight[row * width + slot]);
                if pre == NONE {
                    if w != 0.0 {
                        return Err(bad(format!(
                            "{} = {w} at a padding slot, expected 0",
                            at("weight", row, slot)
                        )));
                    }
                    previous = Some(NONE);
                    continue;
                }
                if previous == Some(NONE) {
                    return Err(bad(format!(
                        "{} = {pre} follows padding; padding comes last in a row",
                        at("index", row, slot)
                    )));
                }
                if pre as usize >= limit || (no_self && pre as usize == row) {
                    return Err(bad(format!(
                        "{} = {pre}, expected below {limit}{}",
                        at("index", row, slot),
                        if no_self {
                            " and not the row's own neuron"
                        } else {
                            ""
                        }
                    )));
                }
                if previous.is_some_and(|p| pre <= p) {
                    return Err(bad(format!(
                        "{} = {pre}: indices must ascend within a row",
                        at("index", row, slot)
                    )));
                }
                if !(w.is_finite() && w * sign >= 0.0) {
                    return Err(bad(format!(
                        "{} = {w}, expected a finite number {}",
                        at("weight", row, slot),
                        if sign > 0.0 { "≥ 0" } else { "≤ 0" }
                    )));
                }
                previous = Some(pre);
            }
        }
        Ok(Ell {
            width,
            index,
            weight,
        })
    };
    let input = ell("input", ELECTRODES, false, 1.0)?;
    let inhibitory = ell("inhibitory", n, true, -1.0)?;
    let (_, data) = tensor("excitatory.weight", Dtype::F32, [n, n])?;
    let exc = floats(data);
    for (at, &w) in exc.iter().enumerate() {
        let (pre, post) = (at / n, at % n);
        let ok = if pre == post {
            w == -1.0
        } else {
            w == -1.0 || (w.is_finite() && w >= 0.0)
        };
        if !ok {
            return Err(bad(format!(
                "excitatory.weight[{pre}, {post}] = {w}, expected {}",
                if pre == post {
                    "−1 (no self-connection)"
                } else {
                    "a finite weight ≥ 0, or −1 where pruned"
                }
            )));
        }
    }
    Ok(Culture {
        config: config.clone(),
        positions,
        input,
        inhibitory,
        exc,
    })
}
