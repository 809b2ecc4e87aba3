//! Launchers for `shaders/classifier.wgsl`: softmax cross-entropy (loss and gradient) and
//! per-row correctness of the supervised classifier.
//! Bindings: 0 uniform ClassifierParams, 1 logits (N x K), 2 labels (N, f32 class indices),
//! 3 loss or correct (N), 4 gradient (N x K, softmax_xent and tanh_power).

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{CLASSIFIER_WGSL, record_dispatch, to_u32};

/// Mirrors `ClassifierParams` in classifier.wgsl (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ClassifierParams {
    pub n: u32,
    pub k: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub s: f32,
    pub beta: f32,
    pub power: f32,
    pub _pad4: f32,
}

/// The scalars of a launch: the gradient's scale, and the tanh head's β and power m.
#[derive(Clone, Copy, Debug, Default)]
struct Scalars {
    scale: f32,
    beta: f32,
    power: f32,
}

/// Labels as the f32 values the kernels read, refusing labels outside 0..classes.
fn label_values(labels: &[u32], classes: usize) -> Result<Vec<f32>> {
    if classes > 1 << 24 {
        return Err(HebbError::Shape {
            tensor: "labels".into(),
            message: format!("{classes} classes: labels are stored as f32, exact up to 2^24"),
        });
    }
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= classes)
    {
        return Err(HebbError::Shape {
            tensor: "labels".into(),
            message: format!("label {l} at position {i} is outside 0..{classes}"),
        });
    }
    Ok(labels.iter().map(|&l| l as f32).collect())
}

/// Labels as the f32 tensor the kernels read, refusing labels outside 0..classes.
pub fn labels_tensor(ctx: &GpuContext, labels: &[u32], classes: usize) -> Result<Tensor> {
    let data = label_values(labels, classes)?;
    Tensor::from_f32(ctx, "labels", &[labels.len()], &data)
}

/// Writes labels into the start of an existing labels tensor (a buffer reused per batch).
pub fn write_labels(ctx: &GpuContext, t: &Tensor, labels: &[u32], classes: usize) -> Result<()> {
    t.write_f32(ctx, &label_values(labels, classes)?)
}

fn launch(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    n: usize,
    k: usize,
    scalars: Scalars,
    bindings: &[(u32, &Tensor)],
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    for (i, (_, t)) in bindings.iter().enumerate() {
        t.expect_dtype(DType::F32, entry)?;
        if bindings[..i].iter().any(|(_, u)| u.buffer == t.buffer) {
            return Err(HebbError::Launch {
                kernel: entry.into(),
                message: format!("{} is bound twice; every tensor must be distinct", t.label),
            });
        }
    }
    let params = ClassifierParams {
        n: to_u32(entry, "N", n)?,
        k: to_u32(entry, "K", k)?,
        s: scalars.scale,
        beta: scalars.beta,
        power: scalars.power,
        ..Default::default()
    };
    let groups = grid_1d(ctx, to_u32(entry, "N / 64", n.div_ceil(64))?);
    record_dispatch(rec, &CLASSIFIER_WGSL, entry, &params, bindings, groups)
}

/// The classifier's loss over logits z (one shader entry point each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// loss[n] = −log softmax(z_n)[label_n]; ∂loss/∂z = softmax(z) − onehot(labels).
    SoftmaxXent,
    /// Krotov & Hopfield's head: c = tanh(β·z), t = ±1 (one-hot to ±1),
    /// loss[n] = Σ_k |c − t|^m, ∂loss/∂z = m·|c − t|^(m−1)·sign(c − t)·β·(1 − c²).
    TanhPower { beta: f32, power: f32 },
}

/// loss[n] of `kind` over the `n` x `k` logits, and grad = scale·∂loss/∂z (N x K).
#[allow(clippy::too_many_arguments)]
pub fn loss(
    rec: &mut Recorder<'_>,
    kind: Loss,
    logits: &Tensor,
    labels: &Tensor,
    n: usize,
    k: usize,
    scale: f32,
    loss: &Tensor,
    grad: &Tensor,
) -> Result<()> {
    logits.expect_len(n * k, "logits")?;
    labels.expect_len(n, "labels")?;
    loss.expect_len(n, "loss")?;
    grad.expect_len(n * k, "gradient")?;
    let (entry, scalars) = match kind {
        Loss::SoftmaxXent => (
            "softmax_xent",
            Scalars {
                scale,
                ..Default::default()
            },
        ),
        Loss::TanhPower { beta, power } => ("tanh_power", Scalars { scale, beta, power }),
    };
    // pow(|c − t|, m − 1) is defined for m > 1 (WGSL leaves pow(0, 0) undefined).
    let bad_head = match kind {
        Loss::SoftmaxXent => false,
        Loss::TanhPower { beta, power } => {
            !(beta.is_finite() && beta > 0.0 && power.is_finite() && power > 1.0)
        }
    };
    if k == 0 || bad_head {
        return Err(HebbError::Launch {
            kernel: entry.into(),
            message: format!(
                "needs K ≥ 1 classes, and for tanh_power β > 0 and m > 1: {kind:?}, K = {k}"
            ),
        });
    }
    launch(
        rec,
        entry,
        n,
        k,
        scalars,
        &[(1, logits), (2, labels), (3, loss), (4, grad)],
    )
}

/// correct[n] = 1 if the first argmax of z_n equals label_n, else 0.
pub fn correct(
    rec: &mut Recorder<'_>,
    logits: &Tensor,
    labels: &Tensor,
    n: usize,
    k: usize,
    out: &Tensor,
) -> Result<()> {
    logits.expect_len(n * k, "logits")?;
    labels.expect_len(n, "labels")?;
    out.expect_len(n, "correct")?;
    launch(
        rec,
        "correct",
        n,
        k,
        Scalars::default(),
        &[(1, logits), (2, labels), (3, out)],
    )
}
