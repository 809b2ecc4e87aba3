//! The chain of a recipe: input standardisation → ZCA whitening → Hebbian blocks → flatten →
//! linear head.
//! Planes flatten in NCHW order, as PyTorch's `flatten`, so the classifier's weights line up
//! with a PyTorch model of the same recipe.

use crate::data::source::ItemShape;
use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::norm::{self, BatchNorm};
use crate::kernels::optim::OptimStep;
use crate::nn::classifier::Linear;
use crate::nn::layer::HebbLayer;
use crate::nn::recipe::{ClassifierOptimizer, Recipe};
use crate::nn::zca::{Zca, ZcaGeometry};

/// Per-channel (x − mean)/std as a batch norm in eval mode with fixed statistics.
pub struct Standardize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    mean_t: Tensor,
    var_t: Tensor,
    stats: Tensor,
}

pub struct Network {
    pub input: ItemShape,
    pub classes: usize,
    pub layers: Vec<HebbLayer>,
    pub classifier: Linear,
    pub standardize: Option<Standardize>,
    /// Whitening after the standardisation.
    pub zca: Option<Zca>,
    /// Images one forward pass takes.
    pub capacity: usize,
    images: Tensor,
    standardized: Tensor,
    tune: Option<NetworkTune>,
}

/// Fine-tuning's network-level buffers: the features the classifier reads (dropout applied in
/// place) and their gradient −∂L/∂features.
struct NetworkTune {
    batch: usize,
    /// The lowest block that learns; blocks below it run frozen.
    lowest: usize,
    features: Tensor,
    grad: Tensor,
}

/// One fine-tuning step's settings: the optimizer and scheduled rate (the classifier's and
/// the learning blocks'), and the classifier's input dropout with this step's mask seed.
#[derive(Clone, Copy, Debug)]
pub struct FineTuneStep {
    pub optimizer: ClassifierOptimizer,
    pub lr: f64,
    pub dropout: f32,
    pub dropout_seed: u32,
}

impl FineTuneStep {
    /// The optimizer step of a parameter that has taken `steps` steps before.
    pub fn optim(&self, steps: u32) -> OptimStep {
        crate::nn::classifier::optim_step(self.optimizer, self.lr, steps)
    }
}

/// BN's ε: the stored variance is std² − ε so that BN's √(var + ε) is exactly std.
const BN_EPS: f32 = 1e-5;

impl Network {
    /// Builds the recipe's network for `input` items and `classes` classes; shapes are checked
    /// to chain, and errors name the layer. `standardize` is (mean, std) per channel, `zca`
    /// (μ, Z) of `nn::zca` for the geometry `ZcaGeometry::new(input)`.
    pub fn new(
        ctx: &GpuContext,
        recipe: &Recipe,
        input: ItemShape,
        classes: usize,
        standardize: Option<(Vec<f32>, Vec<f32>)>,
        zca: Option<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Self> {
        let capacity = recipe.hebbian.batch.max(recipe.classifier.batch);
        let mut shape = input;
        let mut layers = Vec::new();
        for (i, spec) in recipe.layers.iter().enumerate() {
            let affine_bn = recipe.finetune.as_ref().is_some_and(|f| {
                f.batch_norm_affine && f.learning(recipe.layers.len()).contains(&i)
            });
            let layer = HebbLayer::new(
                ctx,
                i,
                spec,
                shape,
                recipe.hebbian.batch,
                capacity,
                recipe.seed,
                affine_bn,
            )?;
            shape = layer.shape.output;
            layers.push(layer);
        }
        let features = shape.len();
        let classifier = Linear::new(
            ctx,
            features,
            classes,
            capacity,
            recipe.seed,
            recipe.classifier.head,
        )?;
        let standardize = match standardize {
            None => None,
            Some((mean, std)) => {
                if mean.len() != input.channels || std.len() != input.channels {
                    return Err(HebbError::Shape {
                        tensor: "preprocess.normalize".into(),
                        message: format!(
                            "{} means and {} stds for {}-channel images",
                            mean.len(),
                            std.len(),
                            input.channels
                        ),
                    });
                }
                if let Some(s) = std.iter().find(|s| s.is_nan() || **s <= 0.0) {
                    return Err(HebbError::Shape {
                        tensor: "preprocess.normalize".into(),
                        message: format!("std {s} must be positive"),
                    });
                }
                let var: Vec<f32> = std.iter().map(|s| (s * s - BN_EPS).max(0.0)).collect();
                let c = input.channels;
                Some(Standardize {
                    mean_t: Tensor::from_f32(ctx, "input mean", &[c], &mean)?,
                    var_t: Tensor::from_f32(ctx, "input variance", &[c], &var)?,
                    stats: Tensor::empty(ctx, "input stats (unused)", &[2 * c], DType::F32)?,
                    mean,
                    std,
                })
            }
        };
        let zca = match zca {
            None => None,
            Some((mean, matrix)) => Some(Zca::new(
                ctx,
                ZcaGeometry::new(input)?,
                mean,
                matrix,
                capacity,
            )?),
        };
        Ok(Self {
            input,
            classes,
            layers,
            classifier,
            standardize,
            zca,
            capacity,
            images: Tensor::empty(ctx, "input images", &[capacity * input.len()], DType::F32)?,
            standardized: Tensor::empty(
                ctx,
                "standardised images",
                &[capacity * input.len()],
                DType::F32,
            )?,
            tune: None,
        })
    }

    /// Features per image fed to the classifier.
    pub fn feature_len(&self) -> usize {
        self.classifier.features
    }

    /// Uploads `batch` images (B x C x H x W, host) and records the frozen blocks up to and
    /// including `upto`. Returns the last block's output tensor. The upload lands before the
    /// recorder's commands when the recorder is submitted after this call and before any
    /// other upload.
    pub fn forward(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder<'_>,
        images: &[f32],
        batch: usize,
        upto: usize,
    ) -> Result<&Tensor> {
        let out = self.record(ctx, rec, images, batch, upto, &[])?;
        Ok(out.expect("frozen blocks always produce their output"))
    }

    /// One Hebbian training step on `batch` images (uploaded as `forward` does): the blocks up
    /// to `upto` run, those in `learning` take their training step (`HebbLayer::train_step`)
    /// and the others are frozen. The last block skips its output unless an output batch norm
    /// must update its running statistics from it.
    pub fn train_step(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder<'_>,
        images: &[f32],
        batch: usize,
        upto: usize,
        learning: &[usize],
    ) -> Result<()> {
        self.record(ctx, rec, images, batch, upto, learning)?;
        Ok(())
    }

    /// Readies fine-tuning for batches of up to `batch` images with the blocks in `learning`
    /// learning (with the classifier): those blocks and every block above the lowest of them
    /// keep their forward intermediates and gradients. Errors name a block fine-tuning cannot
    /// differentiate.
    pub fn enable_fine_tuning(
        &mut self,
        ctx: &GpuContext,
        batch: usize,
        learning: &[usize],
    ) -> Result<()> {
        let lowest = learning.iter().copied().min().unwrap_or(self.layers.len());
        if let Some(&bad) = learning.iter().find(|&&i| i >= self.layers.len()) {
            return Err(HebbError::Config(format!(
                "fine-tuning names layer {bad}, but the network has {} blocks",
                self.layers.len()
            )));
        }
        if batch == 0 || batch > self.capacity || batch > self.classifier.capacity() {
            return Err(HebbError::Shape {
                tensor: "fine-tuning batch".into(),
                message: format!(
                    "{batch} images; the network was built for 1..={}",
                    self.capacity.min(self.classifier.capacity())
                ),
            });
        }
        for layer in &mut self.layers[lowest..] {
            layer.enable_fine_tuning(ctx, batch)?;
        }
        let f = self.feature_len();
        self.tune = Some(NetworkTune {
            batch,
            lowest,
            features: Tensor::empty(ctx, "fine-tuning features", &[batch * f], DType::F32)?,
            grad: Tensor::empty(
                ctx,
                "fine-tuning feature gradient",
                &[batch * f],
                DType::F32,
            )?,
        });
        Ok(())
    }

    /// One fine-tuning step on `batch` images with the classifier's labels set
    /// (`classifier.set_labels`): `fine_tune_forward`, then `fine_tune_backward`.
    /// `classifier.read_report` then gives the batch's loss and hits.
    pub fn fine_tune_step(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder<'_>,
        images: &[f32],
        batch: usize,
        learning: &[usize],
        step: &FineTuneStep,
    ) -> Result<()> {
        self.fine_tune_forward(ctx, rec, images, batch, step)?;
        self.fine_tune_backward(rec, batch, learning, step)
    }

    /// Fine-tuning's forward, read top to bottom: the blocks below the lowest learning one
    /// run frozen (running statistics), the others their training-mode forward, keeping what
    /// the backward reads; then the features and dropout on them (`step`'s mask).
    pub fn fine_tune_forward(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder<'_>,
        images: &[f32],
        batch: usize,
        step: &FineTuneStep,
    ) -> Result<()> {
        self.check_input(images, batch)?;
        let Self {
            input,
            images: images_t,
            standardize,
            standardized,
            zca,
            layers,
            classifier,
            tune,
            ..
        } = self;
        let tune = fine_tuning(tune.as_ref(), batch)?;
        let mut x = prepare_input(
            ctx,
            rec,
            *input,
            (images_t, standardized),
            standardize.as_ref(),
            zca.as_ref(),
            images,
            batch,
        )?;
        for (i, layer) in layers.iter_mut().enumerate() {
            x = if i < tune.lowest {
                layer.forward(rec, x, batch)?
            } else {
                layer.fine_tune_forward(rec, x, batch)?
            };
        }
        // The features, NCHW flattened (the same memory), with the classifier's dropout.
        let f = classifier.features;
        crate::nn::layer::copy_prefix(rec, x, &tune.features, batch * f);
        Linear::dropout(
            rec,
            &tune.features,
            batch * f,
            0,
            step.dropout,
            step.dropout_seed,
        )
    }

    /// Fine-tuning's backward after `fine_tune_forward`: the classifier's loss, its step and
    /// −∂L/∂features; dropout's backward (the same mask); then each block's backward from the
    /// top, the blocks in `learning` stepping their W with `step`'s optimizer.
    pub fn fine_tune_backward(
        &mut self,
        rec: &mut Recorder<'_>,
        batch: usize,
        learning: &[usize],
        step: &FineTuneStep,
    ) -> Result<()> {
        let Self {
            layers,
            classifier,
            tune,
            ..
        } = self;
        let tune = fine_tuning(tune.as_ref(), batch)?;
        let f = classifier.features;
        classifier.train_step(
            rec,
            &tune.features,
            batch,
            step.optimizer,
            step.lr,
            Some(&tune.grad),
        )?;
        Linear::dropout(
            rec,
            &tune.grad,
            batch * f,
            0,
            step.dropout,
            step.dropout_seed,
        )?;
        let mut grad = tune.grad.share();
        for i in (tune.lowest..layers.len()).rev() {
            let layer = &mut layers[i];
            let optim = learning
                .contains(&i)
                .then(|| step.optim(layer.fine_tune_steps()));
            let input_grad = i > tune.lowest;
            if let Some(g) = layer.fine_tune_backward(rec, &grad, batch, optim, input_grad)? {
                grad = g.share();
            }
        }
        Ok(())
    }

    /// Checks a host batch against the input shape and the capacity.
    fn check_input(&self, images: &[f32], batch: usize) -> Result<()> {
        if batch == 0 || batch > self.capacity || images.len() != batch * self.input.len() {
            return Err(HebbError::Shape {
                tensor: "input batch".into(),
                message: format!(
                    "{} values for {batch} images of {:?} (at most {} images)",
                    images.len(),
                    self.input,
                    self.capacity
                ),
            });
        }
        Ok(())
    }

    /// Uploads the images and records the chain up to block `upto` (see `train_step`);
    /// returns the last block's output where it was computed.
    fn record(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder<'_>,
        images: &[f32],
        batch: usize,
        upto: usize,
        learning: &[usize],
    ) -> Result<Option<&Tensor>> {
        self.check_input(images, batch)?;
        let Self {
            input,
            images: images_t,
            standardize,
            standardized,
            zca,
            layers,
            ..
        } = self;
        let mut x = prepare_input(
            ctx,
            rec,
            *input,
            (images_t, standardized),
            standardize.as_ref(),
            zca.as_ref(),
            images,
            batch,
        )?;
        let last = upto.min(layers.len().saturating_sub(1));
        for (i, layer) in layers.iter_mut().enumerate().take(upto + 1) {
            if !learning.contains(&i) {
                x = layer.forward(rec, x, batch)?;
                continue;
            }
            let output = i != last || layer.output_bn.is_some();
            match layer.train_step(rec, x, batch, output)? {
                Some(out) => x = out,
                None => return Ok(None),
            }
        }
        Ok(Some(x))
    }
}

/// The network's fine-tuning buffers, or an error when fine-tuning is not enabled for
/// `batch` images.
fn fine_tuning(tune: Option<&NetworkTune>, batch: usize) -> Result<&NetworkTune> {
    let tune =
        tune.ok_or_else(|| HebbError::Config("fine-tuning before enable_fine_tuning".into()))?;
    if batch == 0 || batch > tune.batch {
        return Err(HebbError::Shape {
            tensor: "fine-tuning batch".into(),
            message: format!(
                "{batch} images; fine-tuning was enabled for 1..={}",
                tune.batch
            ),
        });
    }
    Ok(tune)
}

/// Uploads `images` (B x C x H x W, host) and records the input standardisation and whitening;
/// returns the tensor the first block reads.
#[allow(clippy::too_many_arguments)]
fn prepare_input<'t>(
    ctx: &GpuContext,
    rec: &mut Recorder<'_>,
    input: ItemShape,
    (images_t, standardized): (&'t Tensor, &'t Tensor),
    standardize: Option<&'t Standardize>,
    zca: Option<&'t Zca>,
    images: &[f32],
    batch: usize,
) -> Result<&'t Tensor> {
    {
        images_t.write_f32(ctx, images)?;
        let mut x: &Tensor = images_t;
        if let Some(s) = standardize {
            let g = BatchNorm {
                batch,
                channels: input.channels,
                plane: input.height * input.width,
                training: false,
                modified: false,
                momentum: 0.0,
                eps: BN_EPS,
            };
            norm::batch_norm(
                rec,
                &g,
                x,
                &s.mean_t,
                &s.var_t,
                &s.stats,
                None,
                standardized,
            )?;
            x = standardized;
        }
        if let Some(z) = zca {
            x = z.apply(rec, x, batch)?;
        }
        Ok(x)
    }
}
