//! Checkpoints: one safetensors file (`checkpoint.safetensors`) holding every weight in
//! PyTorch's layout plus the rule and optimizer state, with the recipe and the training
//! progress in its string metadata. Written atomically: a temporary file in the same folder,
//! fsync, rename over the old one, fsync of the folder; a crash leaves the old or the new file,
//! never a torn one.
//!
//! Tensor names:
//! - `layers.{i}.weight` (C, C_in, kh, kw); `layers.{i}.{input,output}_bn.running_{mean,var}`;
//!   `layers.{i}.{input,output}_bn.affine` (2, C): γ then β, with `finetune.batch_norm_affine`
//! - `layers.{i}.forward_weight` (C, C_in, kh, kw): the weights the block's convolution uses
//!   (written for readers; a resume reads `weight`). CHECKPOINT.md documents every key.
//! - `layers.{i}.rule.{bias,theta,bn_mean,bn_var,eta,state0,state1}`: rule state
//! - `classifier.weight` (K, F), `classifier.bias` (K), `classifier.state{0..3}`
//! - `input.mean`, `input.std` when the recipe standardises its input
//! - `input.zca_mean` (D) and `input.zca` (D x D) when it whitens it (`nn::zca`)

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, Tensor};
use crate::nn::network::Network;

pub const FORMAT: &str = "hebb-checkpoint/1";
pub const FILE: &str = "checkpoint.safetensors";

/// A checkpoint read from disk: named f32 tensors and the metadata strings.
pub struct Loaded {
    pub path: PathBuf,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

fn io_err(path: &Path, e: std::io::Error) -> HebbError {
    HebbError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn bad(path: &Path, message: String) -> HebbError {
    HebbError::Format {
        path: path.to_path_buf(),
        message,
    }
}

/// Every tensor of the network's state as (name, shape, GPU tensor).
fn state_tensors(net: &Network) -> Vec<(String, Vec<usize>, &Tensor)> {
    let mut out = Vec::new();
    for l in &net.layers {
        let i = l.index;
        let s = l.shape;
        let (c, kh, kw) = (l.spec.channels, s.conv.kernel[0], s.conv.kernel[1]);
        out.push((
            format!("layers.{i}.weight"),
            vec![c, s.conv.in_channels, kh, kw],
            &l.rule.w,
        ));
        for (name, bn) in [("input_bn", &l.input_bn), ("output_bn", &l.output_bn)] {
            if let Some(bn) = bn {
                out.push((
                    format!("layers.{i}.{name}.running_mean"),
                    vec![bn.channels],
                    &bn.mean,
                ));
                out.push((
                    format!("layers.{i}.{name}.running_var"),
                    vec![bn.channels],
                    &bn.var,
                ));
                if let Some(a) = &bn.affine {
                    out.push((format!("layers.{i}.{name}.affine"), vec![2, bn.channels], a));
                }
            }
        }
        let (s0, s1, _) = l.rule.optimizer_state();
        let d = l.rule.d;
        for (name, t, shape) in [
            ("bias", &l.rule.bias, vec![c]),
            ("theta", &l.rule.theta, vec![c]),
            ("bn_mean", &l.rule.bn_mean, vec![c]),
            ("bn_var", &l.rule.bn_var, vec![c]),
            ("eta", &l.rule.eta, vec![c]),
            ("state0", s0, vec![c, d]),
            ("state1", s1, vec![c, d]),
        ] {
            out.push((format!("layers.{i}.rule.{name}"), shape, t));
        }
        if let Some([s0, s1]) = l.fine_tune_state() {
            out.push((format!("layers.{i}.finetune.state0"), vec![c, d], s0));
            out.push((format!("layers.{i}.finetune.state1"), vec![c, d], s1));
        }
        let bn_states = ["input_bn", "output_bn"]
            .into_iter()
            .zip(l.fine_tune_affine_state());
        for (name, state) in bn_states {
            if let Some([s0, s1]) = state {
                let channels = s0.len() / 2;
                out.push((
                    format!("layers.{i}.finetune.{name}.state0"),
                    vec![2, channels],
                    s0,
                ));
                out.push((
                    format!("layers.{i}.finetune.{name}.state1"),
                    vec![2, channels],
                    s1,
                ));
            }
        }
    }
    let k = &net.classifier;
    out.push((
        "classifier.weight".into(),
        vec![k.classes, k.features],
        &k.w,
    ));
    out.push(("classifier.bias".into(), vec![k.classes], &k.b));
    for (j, t) in k.state.iter().enumerate() {
        let shape = if j < 2 {
            vec![k.classes, k.features]
        } else {
            vec![k.classes]
        };
        out.push((format!("classifier.state{j}"), shape, t));
    }
    out
}

/// Writes the network's state and `metadata` to `dir/checkpoint.safetensors` atomically.
pub fn save(
    ctx: &GpuContext,
    net: &Network,
    dir: &Path,
    metadata: HashMap<String, String>,
) -> Result<PathBuf> {
    let path = dir.join(FILE);
    save_as(ctx, net, std::slice::from_ref(&path), metadata)?;
    Ok(path)
}

/// Writes the network's state and `metadata` atomically to each file of `paths`, in order,
/// from one readback. A state tensor holding NaN or Inf is an error naming it, and nothing is
/// written: the last good checkpoint is never replaced by one that could not be resumed.
pub fn save_as(
    ctx: &GpuContext,
    net: &Network,
    paths: &[PathBuf],
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let Some(first) = paths.first() else {
        return Ok(());
    };
    let path = first.as_path();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    metadata.insert("format".into(), FORMAT.into());
    let mut host: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape, t) in state_tensors(net) {
        let len: usize = shape.iter().product();
        let v = t.to_f32_vec(ctx)?;
        all_finite(path, &name, &v[..len])?;
        host.push((name, shape, bytemuck::cast_slice(&v[..len]).to_vec()));
    }
    // The effective forward weights (`HebbLayer::effective_weights`): what a standard
    // convolution needs, so no reader re-derives a rule's transform. Written, never read back.
    for l in &net.layers {
        let s = l.shape;
        let shape = vec![
            l.spec.channels,
            s.conv.in_channels,
            s.conv.kernel[0],
            s.conv.kernel[1],
        ];
        let v = l.effective_weights(ctx)?;
        let name = format!("layers.{}.forward_weight", l.index);
        all_finite(path, &name, &v)?;
        host.push((name, shape, bytemuck::cast_slice(&v).to_vec()));
    }
    if let Some(s) = &net.standardize {
        let c = s.mean.len();
        host.push((
            "input.mean".into(),
            vec![c],
            bytemuck::cast_slice(&s.mean).to_vec(),
        ));
        host.push((
            "input.std".into(),
            vec![c],
            bytemuck::cast_slice(&s.std).to_vec(),
        ));
    }
    if let Some(z) = &net.zca {
        let d = z.mean.len();
        host.push((
            "input.zca_mean".into(),
            vec![d],
            bytemuck::cast_slice(&z.mean).to_vec(),
        ));
        host.push((
            "input.zca".into(),
            vec![d, d],
            bytemuck::cast_slice(&z.matrix).to_vec(),
        ));
    }
    let views: Vec<(String, TensorView<'_>)> = host
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| bad(dir, format!("tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| bad(dir, format!("serialising the checkpoint: {e}")))?;
    for path in paths {
        write_atomic(path, &bytes)?;
    }
    Ok(())
}

/// An error naming tensor `name` when `v` holds NaN or Inf: nothing of such a state is written.
fn all_finite(path: &Path, name: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(bad(
            path,
            format!(
                "tensor {name} holds {} at element {i}; training stopped and the last good \
                 checkpoint is kept",
                v[i]
            ),
        )),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temporary sibling (`<stem>.tmp.<pid>`), fsync and
/// rename. A failed write (a full disk) removes its temporary; one left by a crash is removed
/// by [`remove_stale_temporaries`] when the next run starts in that folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    // The error names the file the user asked for: the temporary is ours, not theirs.
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    // The rename is durable once the folder's entry is on disk.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporaries (`*.tmp.<pid>`) that [`write_atomic`] left in `dir` when its
/// process died mid-write: those of processes no longer running (on Linux, where `/proc`
/// tells), else all but this process's own.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id().to_string();
    let proc_fs = Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((_, pid)) = name.rsplit_once(".tmp.") else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        if proc_fs && Path::new("/proc").join(pid).exists() {
            continue;
        }
        let _ = std::fs::remove_file(entry.path());
    }
}

/// Reads a checkpoint file (or the checkpoint in a folder).
pub fn load(path: &Path) -> Result<Loaded> {
    let path = if path.is_dir() {
        path.join(FILE)
    } else {
        path.to_path_buf()
    };
    let bytes = crate::data::limits::read_bounded(
        &path,
        crate::data::limits::host_memory_budget(),
        "the checkpoint",
    )
    .map_err(|e| bad(&e.path, e.message))?;
    parse(&bytes, &path)
}

/// A safetensors file's tensors and its string metadata (empty when it has none); `path` names
/// the file in errors.
pub fn open_safetensors<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<(SafeTensors<'a>, HashMap<String, String>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(path, format!("unreadable safetensors header: {e}")))?;
    Ok((st, meta.metadata().clone().unwrap_or_default()))
}

/// A checkpoint file's `bytes`, parsed and checked; `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Loaded> {
    let path = path.to_path_buf();
    let (st, metadata) = open_safetensors(bytes, &path)?;
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(
            &path,
            format!(
                "metadata `format` is {:?}, expected {FORMAT:?}",
                metadata.get("format")
            ),
        ));
    }
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(
                &path,
                format!("tensor {name} is {:?}, expected F32", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), data));
    }
    Ok(Loaded {
        path,
        tensors,
        metadata,
    })
}

impl Loaded {
    /// Writes every state tensor into the network; a missing tensor or a shape mismatch is an
    /// error naming it (the checkpoint belongs to another recipe).
    pub fn restore(&self, ctx: &GpuContext, net: &Network) -> Result<()> {
        for (name, shape, t) in state_tensors(net) {
            let (got_shape, data) = self.tensors.get(&name).ok_or_else(|| {
                bad(
                    &self.path,
                    format!("tensor {name} is missing; was it written for another recipe?"),
                )
            })?;
            if *got_shape != shape {
                return Err(bad(
                    &self.path,
                    format!(
                        "tensor {name} has shape {got_shape:?}, the recipe's network expects {shape:?}"
                    ),
                ));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(bad(
                    &self.path,
                    format!(
                        "tensor {name} holds {} at element {i}; a checkpoint with NaN or Inf \
                         weights can be neither evaluated nor resumed",
                        data[i]
                    ),
                ));
            }
            t.write_f32(ctx, data)?;
        }
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| bad(&self.path, format!("metadata {key:?} is missing")))
    }

    /// The stored input standardisation (mean, std), if any.
    pub fn standardize(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let m = self.tensors.get("input.mean")?;
        let s = self.tensors.get("input.std")?;
        Some((m.1.clone(), s.1.clone()))
    }

    /// The stored ZCA whitening (μ, Z), if any.
    pub fn zca(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let m = self.tensors.get("input.zca_mean")?;
        let z = self.tensors.get("input.zca")?;
        Some((m.1.clone(), z.1.clone()))
    }
}
