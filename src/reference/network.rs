//! A recipe block's frozen forward pass in float64: input BN (running statistics) → im2col →
//! U = P·W̃ᵀ [·Mᵀ] → activation → planes → pool → output BN, the order of `nn::layer`.

use crate::kernels::norm::BatchNorm;
use crate::nn::layer::BlockShape;
use crate::nn::recipe::{Activation, LayerSpec, OutputCurrent};
use crate::reference::dense::{Mat, im2col_conv, rows_to_nchw};
use crate::rules::preset::Preset;

/// Running statistics of a block's batch norms, (mean, var) per channel.
pub struct BlockStats {
    pub input: Option<(Vec<f64>, Vec<f64>)>,
    pub output: Option<(Vec<f64>, Vec<f64>)>,
}

fn bn_eval(
    x: &[f64],
    batch: usize,
    plane: usize,
    stats: &(Vec<f64>, Vec<f64>),
    modified: bool,
) -> Vec<f64> {
    let c = stats.0.len();
    let g = BatchNorm {
        batch,
        channels: c,
        plane,
        training: false,
        modified,
        momentum: 0.1,
        eps: 1e-5,
    };
    let (mut m, mut v) = stats.clone();
    crate::reference::norm::batch_norm(&g, x, &mut m, &mut v, None)
}

/// The weights a standard convolution of the block's (normalised) input uses to give U: M·W̃,
/// with W̃ the rule's forward transform of W (C x D; W itself with `output_current =
/// "weights"`) and M BCM's lateral matrix (none for the
/// other rules). U·Mᵀ = P·(M·W̃)ᵀ, so the lateral product folds into the weights.
pub fn effective_weights(spec: &LayerSpec, w: &Mat, lateral: Option<&Mat>) -> Mat {
    let wf = match spec.rule.preset {
        // `output_current = "weights"`: the block's output reads W itself.
        _ if spec.output_current == OutputCurrent::Weights => w.clone(),
        Preset::KrotovHopfield { p: power, .. } if power != 2.0 => {
            w.map(|v| v.signum() * v.abs().powf(power - 1.0))
        }
        // Lagani's vector projection; hebbdemo's forward with `w_nrm` (PRESETS.md §2).
        Preset::LaganiKwta { .. }
        | Preset::LaganiSoftWtaExp { .. }
        | Preset::LaganiSoftWtaPow { .. }
        | Preset::HebbdemoSoftWta { w_nrm: true, .. }
        | Preset::HebbdemoHpca { w_nrm: true, .. } => {
            let norms = w.row_norms();
            w.scale_rows(
                &norms
                    .iter()
                    .map(|n| 1.0 / crate::reference::dense::guard(*n))
                    .collect::<Vec<_>>(),
            )
        }
        _ => w.clone(),
    };
    match lateral {
        Some(m) => m.matmul(&wf),
        None => wf,
    }
}

/// The block's output (B, C, Hp, Wp) for input x (B, C_in, H, W), weights W (C x D) and, for
/// BCM, the lateral matrix M (C x C).
pub fn block_forward(
    spec: &LayerSpec,
    shape: &BlockShape,
    w: &Mat,
    lateral: Option<&Mat>,
    stats: &BlockStats,
    x: &[f64],
    batch: usize,
) -> Vec<f64> {
    let modified = |k| k == crate::nn::recipe::NormKind::Modified;
    let x = match &stats.input {
        Some(s) => bn_eval(
            x,
            batch,
            shape.input.height * shape.input.width,
            s,
            modified(spec.input_norm),
        ),
        None => x.to_vec(),
    };
    let g = crate::kernels::im2col::ConvGeometry {
        batch,
        ..shape.conv
    };
    let mut p = im2col_conv(&g, &x);
    if spec.unit_norm_input {
        let norms = p.row_norms();
        p = p.scale_rows(
            &norms
                .iter()
                .map(|n| 1.0 / crate::reference::dense::guard(*n))
                .collect::<Vec<_>>(),
        );
    }
    let mut u = p.matmul_t(&effective_weights(spec, w, lateral));
    if let Preset::SofthebbSoftkrotov {
        pre_triangle: true, ..
    } = spec.rule.preset
    {
        u = u.triangle_rows(1.0);
    }
    let a = match spec.activation {
        Activation::Identity => u,
        Activation::Relu => u.map(|v| v.max(0.0)),
        Activation::Tanh => u.map(f64::tanh),
        Activation::Logistic => u.map(|v| 1.0 / (1.0 + (-v).exp())),
        Activation::ReluPow { power } => u.map(|v| v.max(0.0).powf(power as f64)),
        Activation::Triangle { power } => u.triangle_rows(power as f64),
    };
    let planes = rows_to_nchw(&a, batch, (shape.conv_out.height, shape.conv_out.width));
    let pooled = match shape.pool {
        Some(pg) => crate::reference::pool::pool2d(
            &crate::kernels::pool::Pool2d {
                planes: batch * spec.channels,
                ..pg
            },
            &planes,
        ),
        None => planes,
    };
    match &stats.output {
        Some(s) => bn_eval(
            &pooled,
            batch,
            shape.output.height * shape.output.width,
            s,
            modified(spec.output_norm),
        ),
        None => pooled,
    }
}
