//! The chain of a recipe: input standardisation → ZCA whitening → Hebbian blocks → flatten →
//! linear head.
//! Planes flatten in NCHW order, as PyTorch's `flatten`, so the classifier's weights line up
//! with a PyTorch model of the same recipe.

use crate::data::source::ItemShape;
use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::norm::{self, BatchNorm};
use crate::nn::classifier::Linear;
use crate::nn::layer::HebbLayer;
use crate::nn::recipe::Recipe;
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
            let layer = HebbLayer::new(
                ctx,
                i,
                spec,
                shape,
                recipe.hebbian.batch,
                capacity,
                recipe.seed,
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
        self.images.write_f32(ctx, images)?;
        let mut x: &Tensor = &self.images;
        if let Some(s) = &self.standardize {
            let g = BatchNorm {
                batch,
                channels: self.input.channels,
                plane: self.input.height * self.input.width,
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
                &self.standardized,
            )?;
            x = &self.standardized;
        }
        if let Some(z) = &self.zca {
            x = z.apply(rec, x, batch)?;
        }
        let last = upto.min(self.layers.len().saturating_sub(1));
        for (i, layer) in self.layers.iter_mut().enumerate().take(upto + 1) {
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
