//! One Hebbian block on the GPU, in the order the papers run it:
//!
//! ```text
//! x (B, C_in, H, W) ─[input BN]→ im2col P (N x D) ─→ U = P·W̃ᵀ (N x C, rows) ─[BCM: U·Mᵀ]→
//!   activation (rows) → planes (B, C, Ho, Wo) ─[pool]→ ─[output BN]→ y (B, C, Hp, Wp)
//! ```
//!
//! N = B·Ho·Wo, D = C_in·kh·kw. A linear layer is a convolution whose kernel covers the whole
//! input, so its patch matrix is the input itself (N = B) and rows and planes coincide.
//! W̃ is the rule's `forward_weights`: W, except sign(W)|W|^{p−1} for Krotov's p ≠ 2 and
//! W/‖w_i‖ for Lagani's WTA rules (their forward is the vector projection) and hebbdemo's
//! `w_nrm`. With `output_current = "weights"` the block's output projects onto W itself
//! (Krotov & Hopfield's read-out) while the rule's step still projects onto W̃.
//! `HebbLayer::forward` runs the frozen block; `HebbLayer::train_step` is one training
//! step, read top to bottom: the rule's step runs on the same P after the forward output was
//! computed with the step's starting weights, as in the authors' code, and reads that output's
//! U instead of projecting again where it can (`GpuRule::takes_projection`).
//!
//! Implicit GEMM: a conv block whose patch matrix for its largest batch would exceed
//! `PATCH_BUDGET` elements, or whose recipe sets `implicit_gemm`, runs its frozen forward as
//! `conv::conv_forward_rows` (U = P·W̃ᵀ with P gathered from x inside the GEMM) and stores P
//! only for the learning batch. Learning passes still materialise P with im2col, because the
//! rule's step (`GpuRule::step`) reads it several times (U, the update product, norms); their
//! forward product reuses that P.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::data::source::ItemShape;
use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::conv;
use crate::kernels::gemm::{self, Gemm};
use crate::kernels::hebbian::ActivationGrad;
use crate::kernels::hebbian::{self, Competition, RowFactor};
use crate::kernels::im2col::{self, ConvGeometry};
use crate::kernels::layout::{self, Layout};
use crate::kernels::norm::{self, BatchNorm};
use crate::kernels::optim::{self, OptimStep};
use crate::kernels::pool::{self, Pool2d, PoolKind};
use crate::kernels::reduce::{self, ReduceOp};
use crate::nn::recipe::{
    Activation, Init, LayerKind, LayerSpec, NormKind, PaddingMode, PoolKindSpec,
};
use crate::rules::gpu::{FromForward, GpuRule, RuleInit};
use crate::rules::preset::ForwardWeights;

/// Shapes of one block, checked to chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockShape {
    pub input: ItemShape,
    /// Convolution geometry for one image (batch 1).
    pub conv: ConvGeometry,
    /// Conv output (C, Ho, Wo).
    pub conv_out: ItemShape,
    pub pool: Option<Pool2d>,
    pub output: ItemShape,
    /// The patch matrix is the input itself (linear layer, or a conv covering its input).
    pub identity_patches: bool,
}

impl BlockShape {
    /// Plans block `index` of `spec` on `input`; errors name the layer and what does not fit.
    pub fn plan(index: usize, spec: &LayerSpec, input: ItemShape) -> Result<Self> {
        let wrap = |e: HebbError| HebbError::Shape {
            tensor: format!("layer {index}"),
            message: match e {
                HebbError::Shape { message, .. } => message,
                other => other.to_string(),
            },
        };
        let (kernel, stride, padding) = match spec.kind {
            LayerKind::Conv => (
                spec.kernel.map(|k| k.get()).unwrap_or([1, 1]),
                spec.stride.get(),
                spec.padding.get(),
            ),
            LayerKind::Linear => ([input.height, input.width], [1, 1], [0, 0]),
        };
        let conv = ConvGeometry {
            batch: 1,
            in_channels: input.channels,
            h: input.height,
            w: input.width,
            kernel,
            stride,
            padding,
            reflect: spec.padding_mode == PaddingMode::Reflect,
        };
        let (ho, wo) = conv.output_hw().map_err(wrap)?;
        let conv_out = ItemShape {
            channels: spec.channels,
            height: ho,
            width: wo,
        };
        let pool = match spec.pool {
            None => None,
            Some(p) => {
                let g = Pool2d {
                    kind: match p.kind {
                        PoolKindSpec::Max => PoolKind::Max,
                        PoolKindSpec::Avg => PoolKind::Avg {
                            count_include_pad: p.count_include_pad,
                        },
                    },
                    planes: spec.channels,
                    h: ho,
                    w: wo,
                    kernel: p.kernel.get(),
                    stride: p.stride.get(),
                    padding: p.padding.get(),
                };
                g.output_hw().map_err(wrap)?;
                Some(g)
            }
        };
        let output = match pool {
            Some(g) => {
                let (hp, wp) = g.output_hw()?;
                ItemShape {
                    channels: spec.channels,
                    height: hp,
                    width: wp,
                }
            }
            None => conv_out,
        };
        let identity_patches = kernel == [input.height, input.width] && padding == [0, 0];
        Ok(Self {
            input,
            conv,
            conv_out,
            pool,
            output,
            identity_patches,
        })
    }

    /// Fan-in D = C_in·kh·kw.
    pub fn fan_in(&self) -> usize {
        self.conv.in_channels * self.conv.kernel[0] * self.conv.kernel[1]
    }

    /// Output positions per image Ho·Wo of the convolution.
    pub fn positions(&self) -> usize {
        self.conv_out.height * self.conv_out.width
    }
}

/// A batch norm's running statistics, and its affine parameters where it has them.
pub struct BnState {
    pub kind: NormKind,
    pub channels: usize,
    pub mean: Tensor,
    pub var: Tensor,
    /// γ (C) then β (C), from 1 and 0 (`finetune.batch_norm_affine`).
    pub affine: Option<Tensor>,
    stats: Tensor,
}

impl BnState {
    fn new(
        ctx: &GpuContext,
        kind: NormKind,
        channels: usize,
        label: &str,
        affine: bool,
    ) -> Result<Option<Self>> {
        if kind == NormKind::None {
            return Ok(None);
        }
        let identity: Vec<f32> = (0..2 * channels)
            .map(|i| if i < channels { 1.0 } else { 0.0 })
            .collect();
        Ok(Some(Self {
            kind,
            channels,
            affine: if affine {
                Some(Tensor::from_f32(
                    ctx,
                    &format!("{label} γ, β"),
                    &[2 * channels],
                    &identity,
                )?)
            } else {
                None
            },
            mean: Tensor::from_f32(
                ctx,
                &format!("{label} running mean"),
                &[channels],
                &vec![0.0; channels],
            )?,
            var: Tensor::from_f32(
                ctx,
                &format!("{label} running var"),
                &[channels],
                &vec![1.0; channels],
            )?,
            stats: Tensor::empty(
                ctx,
                &format!("{label} batch stats"),
                &[2 * channels],
                DType::F32,
            )?,
        }))
    }

    /// dx of the last training-mode `apply` that read `x`, from dy (`grad_stats`: 2·C); with
    /// affine parameters also their gradient, into `grad_affine` (2·C).
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        rec: &mut Recorder<'_>,
        batch: usize,
        plane: usize,
        x: &Tensor,
        dy: &Tensor,
        grad_stats: &Tensor,
        grad_affine: Option<&Tensor>,
        dx: &Tensor,
    ) -> Result<()> {
        let g = BatchNorm {
            batch,
            channels: self.channels,
            plane,
            training: true,
            modified: self.kind == NormKind::Modified,
            momentum: 0.1,
            eps: 1e-5,
        };
        let affine = match (&self.affine, grad_affine) {
            (Some(params), Some(grad)) => Some(norm::AffineGrad { params, grad }),
            (None, None) => None,
            _ => {
                return Err(HebbError::Launch {
                    kernel: "batch_norm_backward".into(),
                    message: "the affine gradient buffer does not match the batch norm".into(),
                });
            }
        };
        norm::batch_norm_backward(
            rec,
            &g,
            x,
            &self.var,
            &self.stats,
            affine,
            dy,
            grad_stats,
            dx,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        rec: &mut Recorder<'_>,
        batch: usize,
        plane: usize,
        training: bool,
        x: &Tensor,
        out: &Tensor,
    ) -> Result<()> {
        let g = BatchNorm {
            batch,
            channels: self.channels,
            plane,
            training,
            modified: self.kind == NormKind::Modified,
            momentum: 0.1,
            eps: 1e-5,
        };
        let affine = self.affine.as_ref();
        norm::batch_norm(rec, &g, x, &self.mean, &self.var, &self.stats, affine, out)
    }
}

/// Patch matrices of more elements than this (for a block's largest batch) are not stored:
/// the frozen forward gathers patches inside the GEMM instead (64 Mi elements, 256 MiB).
pub const PATCH_BUDGET: usize = 64 << 20;

/// Where the forward product reads its patches from.
#[derive(Clone, Copy)]
enum Patches<'t> {
    /// The stored patch matrix P (N x D), or the input itself when it is P.
    Stored(&'t Tensor),
    /// The block input x (B, C_in, H, W): P is gathered inside the GEMM (conv.wgsl).
    Gathered(&'t Tensor, ConvGeometry),
}

/// Work buffers sized for `images` images (`patches` for `learn_images` when the frozen
/// forward is implicit).
struct Work {
    images: usize,
    learn_images: usize,
    implicit: bool,
    bn_in: Tensor,
    patches: Tensor,
    w_fwd: Tensor,
    w_norms: Tensor,
    rows: Tensor,
    rows2: Tensor,
    scratch: Tensor,
    row_norms: Tensor,
    normed: Tensor,
    planes: Tensor,
    pooled: Tensor,
    out: Tensor,
}

/// Fine-tuning's buffers of a block (`HebbLayer::enable_fine_tuning`), for batches of up to
/// `images` images: the block's input as the forward saw it, max pooling's argmaxes, the
/// gradients G = −∂L/∂(·) of each intermediate (the optimizer's ascent direction, so that
/// dW = Gᵀ·P is what `optim` steps along), and the optimizer's state for W.
struct Tune {
    images: usize,
    input: Tensor,
    argmax: Tensor,
    grad_pooled: Tensor,
    grad_planes: Tensor,
    grad_rows: Tensor,
    grad_u: Tensor,
    grad_patches: Tensor,
    /// The gradient with respect to the unit-norm patches P̂ (N x D, `unit_norm_input`).
    grad_normed_patches: Tensor,
    /// SoftHebb's pre-triangle: U (N x C) as the forward computed it, which the block's
    /// activation overwrites (it reads T = Triangle₁(U) and takes `w.rows` as its spare).
    pre_triangle_u: Tensor,
    grad_x: Tensor,
    grad_in: Tensor,
    grad_stats_in: Tensor,
    grad_stats_out: Tensor,
    dw: Tensor,
    /// The gradient with respect to the forward weights W̃ where they are not W.
    dw_normed: Tensor,
    state: [Tensor; 2],
    /// The input and output batch norms' affine parameters where they have them.
    affine_in: Option<AffineTune>,
    affine_out: Option<AffineTune>,
    /// Placeholders for the adaptive rule's bindings, which SGD and Adam do not read.
    unused: [Tensor; 2],
    steps: u32,
}

/// Fine-tuning's buffers for a batch norm's γ, β: their gradient G = −∂L/∂(γ, β) and the
/// optimizer's state (2·C each).
struct AffineTune {
    grad: Tensor,
    state: [Tensor; 2],
}

pub struct HebbLayer {
    pub index: usize,
    pub spec: LayerSpec,
    pub shape: BlockShape,
    pub rule: GpuRule,
    pub input_bn: Option<BnState>,
    pub output_bn: Option<BnState>,
    work: Work,
    tune: Option<Tune>,
}

/// Draws the initial weights (C x D, row-major) of a block.
pub fn init_weights(init: Init, c: usize, d: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let normal = |mean: f64, std: f64, rng: &mut ChaCha8Rng| -> Vec<f32> {
        let dist = Normal::new(mean, std.max(0.0)).expect("std is finite and non-negative");
        (0..c * d).map(|_| dist.sample(rng) as f32).collect()
    };
    match init {
        Init::Normal { mean, std } => normal(mean, std, rng),
        Init::Radius { radius } => normal(0.0, radius / (d as f64).sqrt(), rng),
        Init::GlorotNormal => normal(0.0, (2.0 / (c + d) as f64).sqrt(), rng),
        Init::UniformFanIn => {
            let a = 1.0 / (d as f64).sqrt();
            (0..c * d).map(|_| rng.random_range(-a..a) as f32).collect()
        }
    }
}

impl HebbLayer {
    /// Builds block `index` for batches of up to `learn_images` images while learning and
    /// `images` in frozen forward passes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        index: usize,
        spec: &LayerSpec,
        input: ItemShape,
        learn_images: usize,
        images: usize,
        seed: u64,
        affine_bn: bool,
    ) -> Result<Self> {
        let shape = BlockShape::plan(index, spec, input)?;
        let (c, d, p) = (spec.channels, shape.fan_in(), shape.positions());
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x5EED_0000 + index as u64));
        let w = init_weights(spec.init, c, d, &mut rng);
        let rule = GpuRule::new(
            ctx,
            spec.rule.clone(),
            c,
            d,
            (learn_images * p).max(1),
            &RuleInit {
                w,
                ..Default::default()
            },
        )
        .map_err(|e| HebbError::Launch {
            kernel: format!("layer {index} ({})", spec.rule.name),
            message: e.to_string(),
        })?;
        let images = images.max(learn_images);
        let implicit = !shape.identity_patches
            && (spec.implicit_gemm || images * p * d > PATCH_BUDGET)
            && !spec.unit_norm_input;
        if spec.implicit_gemm && spec.unit_norm_input && !shape.identity_patches {
            return Err(HebbError::Shape {
                tensor: format!("layer {index}"),
                message: "implicit_gemm cannot be combined with unit_norm_input (the patch norms \
                          need the stored patch matrix)"
                    .into(),
            });
        }
        let t = |label: &str, len: usize| {
            Tensor::empty(
                ctx,
                &format!("layer {index} {label}"),
                &[len.max(1)],
                DType::F32,
            )
        };
        let n = images * p;
        let work = Work {
            images,
            learn_images,
            implicit,
            bn_in: t("normalised input", images * input.len())?,
            patches: if shape.identity_patches {
                t("patches (unused)", 1)?
            } else if implicit {
                t("patches (learning batch)", learn_images * p * d)?
            } else {
                t("patches", n * d)?
            },
            w_fwd: t("forward weights", c * d)?,
            w_norms: t("weight norms", c)?,
            rows: t("rows U", n * c)?,
            rows2: t("rows A", n * c)?,
            scratch: t("rows scratch", n * c)?,
            row_norms: t("patch norms", n)?,
            normed: if spec.unit_norm_input {
                t("unit-norm patches", n * d)?
            } else {
                t("unit-norm patches (unused)", 1)?
            },
            planes: t("planes", n * c)?,
            pooled: t("pooled", images * shape.output.len())?,
            out: t("output", images * shape.output.len())?,
        };
        Ok(Self {
            index,
            input_bn: BnState::new(
                ctx,
                spec.input_norm,
                input.channels,
                &format!("layer {index} input BN"),
                affine_bn,
            )?,
            output_bn: BnState::new(
                ctx,
                spec.output_norm,
                c,
                &format!("layer {index} output BN"),
                affine_bn,
            )?,
            spec: spec.clone(),
            shape,
            rule,
            work,
            tune: None,
        })
    }

    /// Most images one forward pass takes.
    pub fn capacity(&self) -> usize {
        self.work.images
    }

    /// Whether frozen forward passes gather patches inside the GEMM (implicit GEMM) instead
    /// of storing the patch matrix.
    pub fn implicit_forward(&self) -> bool {
        self.work.implicit
    }

    /// The weights a standard convolution (or linear layer) of the block's input needs to give
    /// the block's U: M·W̃ (C x D, row-major, rows in PyTorch's (C_in, kh, kw) order), with W̃
    /// the rule's forward weights and M BCM's lateral matrix (the identity for every other
    /// rule; the lateral product is linear, so it folds into the weights). What a checkpoint
    /// stores as `layers.{i}.forward_weight`. Reads the GPU (waits for it).
    pub fn effective_weights(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let (c, d) = (self.spec.channels, self.shape.fan_in());
        let norms = Tensor::empty(ctx, "forward-weight norms", &[c], DType::F32)?;
        let transformed = Tensor::empty(ctx, "forward weights", &[c, d], DType::F32)?;
        let folded = Tensor::empty(ctx, "forward weights ·M", &[c, d], DType::F32)?;
        let mut rec = Recorder::new(ctx);
        let w = self
            .rule
            .weights_as(&mut rec, self.spec.output_weights(), &norms, &transformed)?;
        let out = match self.rule.lateral() {
            Some(m) => {
                gemm::gemm(&mut rec, &Gemm::new(c, d, c), m, w, &folded)?;
                &folded
            }
            None => w,
        };
        rec.submit();
        let mut v = out.to_f32_vec(ctx)?;
        v.truncate(c * d);
        Ok(v)
    }

    /// Records the frozen block on `x` (B planes of the input shape): the batch norms use
    /// their running statistics. Returns the tensor holding the output (B planes of
    /// `shape.output`), valid until the next call.
    pub fn forward(&mut self, rec: &mut Recorder<'_>, x: &Tensor, batch: usize) -> Result<&Tensor> {
        let Self {
            index,
            spec,
            shape: s,
            rule,
            input_bn,
            output_bn,
            work,
            ..
        } = self;
        check_batch(*index, work, batch, false)?;
        let x = normalise_input(rec, input_bn.as_ref(), s, batch, false, x, &work.bn_in)?;
        let patches = if s.identity_patches {
            Patches::Stored(x)
        } else if work.implicit {
            Patches::Gathered(x, ConvGeometry { batch, ..s.conv })
        } else {
            im2col::im2col(rec, &ConvGeometry { batch, ..s.conv }, x, 0, &work.patches)?;
            Patches::Stored(&work.patches)
        };
        project(rec, *index, spec, s, rule, work, patches, batch)?;
        block_output(
            rec,
            spec,
            s,
            rule,
            work,
            output_bn.as_ref(),
            batch,
            false,
            None,
        )
    }

    /// Records one training step of the block on `x` (B planes of the input shape), in the
    /// authors' order:
    ///
    /// 1. normalise the input with this batch's statistics (updating the running ones);
    /// 2. form the patch matrix P (N x D), stored, since the rule reads it several times;
    /// 3. where `output` asks for it (a later block, or an output batch norm's statistics),
    ///    compute the block's output from the step's starting weights, U = P·W̃ᵀ on the way;
    /// 4. the rule's step on P: project (or read that U, where the rule takes it), compete,
    ///    update, optimise (`GpuRule::step`).
    ///
    /// Returns the output (as `forward`, with batch statistics) when `output` is set.
    pub fn train_step(
        &mut self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        batch: usize,
        output: bool,
    ) -> Result<Option<&Tensor>> {
        let Self {
            index,
            spec,
            shape: s,
            rule,
            input_bn,
            output_bn,
            work,
            ..
        } = self;
        let index = *index;
        check_batch(index, work, batch, true)?;
        // 1. Input batch norm with batch statistics.
        let x = normalise_input(rec, input_bn.as_ref(), s, batch, true, x, &work.bn_in)?;
        // 2. Patch matrix P (N x D).
        let patches = if s.identity_patches {
            x
        } else {
            im2col::im2col(rec, &ConvGeometry { batch, ..s.conv }, x, 0, &work.patches)?;
            &work.patches
        };
        // 3. The output from the starting weights; its U = P·W̃ᵀ (rows) is the rule's own
        // projection unless the output saw unit-norm patches or U went on through BCM's
        // lateral matrix or SoftHebb's pre-triangle.
        let (out, from_forward) = if output {
            project(
                rec,
                index,
                spec,
                s,
                rule,
                work,
                Patches::Stored(patches),
                batch,
            )?;
            let out = block_output(
                rec,
                spec,
                s,
                rule,
                work,
                output_bn.as_ref(),
                batch,
                true,
                None,
            )?;
            // The forward's W̃ and U serve the step only where the output projects onto the
            // rule's own forward weights (`output_current = "rule"`).
            let rule_weights = rule.config().preset.forward_weights();
            let shared = spec.output_weights() == rule_weights;
            let same_u = shared
                && rule.takes_projection()
                && !spec.unit_norm_input
                && rule.lateral().is_none()
                && !rule.pre_triangle();
            let raw = rule_weights == ForwardWeights::Raw;
            let from_forward = FromForward {
                weights: (shared && !raw).then_some(&work.w_fwd),
                projected: same_u.then_some(&work.rows),
            };
            (Some(out), from_forward)
        } else {
            (None, FromForward::default())
        };
        // 4. The rule's step.
        let rows = batch * s.positions();
        rule.step(rec, patches, rows, None, from_forward)
            .map_err(|e| HebbError::Launch {
                kernel: format!("layer {index} ({})", spec.rule.name),
                message: e.to_string(),
            })?;
        Ok(out)
    }
}

impl HebbLayer {
    /// The activation's backward pass, or an error naming what fine-tuning cannot yet
    /// differentiate in this block.
    fn differentiable(&self) -> Result<ActivationGrad> {
        let unsupported = |what: &str| {
            Err(HebbError::Config(format!(
                "layer {} ({}): fine-tuning does not differentiate {what} yet",
                self.index, self.spec.rule.name
            )))
        };
        if let ForwardWeights::SignedPower { exponent } = self.spec.output_weights()
            && exponent < 1.0
        {
            // a·|w|^(a − 1) is unbounded at w = 0 below a = 1.
            return unsupported(&format!(
                "Krotov's forward weights sign(w)|w|^(p−1) for p = {} < 2",
                exponent + 1.0
            ));
        }
        Ok(match self.spec.activation {
            Activation::Identity => ActivationGrad::Identity,
            Activation::Relu => ActivationGrad::ReluPow { power: 1.0 },
            Activation::ReluPow { power } => ActivationGrad::ReluPow { power },
            Activation::Tanh => ActivationGrad::Tanh,
            Activation::Logistic => ActivationGrad::Logistic,
            Activation::Triangle { power } => ActivationGrad::Triangle { power },
        })
    }

    /// Allocates the block's fine-tuning buffers for batches of up to `images` images, or
    /// explains what in the block fine-tuning cannot differentiate.
    pub fn enable_fine_tuning(&mut self, ctx: &GpuContext, images: usize) -> Result<()> {
        self.differentiable()?;
        let s = self.shape;
        let (c, d, p) = (self.spec.channels, s.fan_in(), s.positions());
        let most = if self.work.implicit {
            self.work.learn_images
        } else {
            self.work.images
        };
        if images == 0 || images > most {
            return Err(HebbError::Shape {
                tensor: format!("layer {} fine-tuning batch", self.index),
                message: format!("{images} images; the layer was built for 1..={most}"),
            });
        }
        let index = self.index;
        let t = |label: &str, len: usize| {
            Tensor::empty(
                ctx,
                &format!("layer {index} fine-tuning {label}"),
                &[len.max(1)],
                DType::F32,
            )
        };
        let zeros = |label: &str, len: usize| {
            Tensor::from_f32(
                ctx,
                &format!("layer {index} fine-tuning {label}"),
                &[len],
                &vec![0.0; len],
            )
        };
        let n = images * p;
        let pooled = images * c * s.output.height * s.output.width;
        let affine = |bn: &Option<BnState>, which: &str| -> Result<Option<AffineTune>> {
            match bn {
                Some(BnState {
                    affine: Some(_),
                    channels,
                    ..
                }) => Ok(Some(AffineTune {
                    grad: t(&format!("G {which} BN γ, β"), 2 * channels)?,
                    state: [
                        zeros(&format!("{which} BN γ, β state 0"), 2 * channels)?,
                        zeros(&format!("{which} BN γ, β state 1"), 2 * channels)?,
                    ],
                })),
                _ => Ok(None),
            }
        };
        let (affine_in, affine_out) = (
            affine(&self.input_bn, "input")?,
            affine(&self.output_bn, "output")?,
        );
        self.tune = Some(Tune {
            images,
            input: t("input", images * s.input.len())?,
            argmax: t("pooling argmax", pooled)?,
            grad_pooled: t("G pooled", pooled)?,
            grad_planes: t("G planes", n * c)?,
            grad_rows: t("G activation", n * c)?,
            grad_u: t("G U", n * c)?,
            grad_patches: t("G patches", if s.identity_patches { 1 } else { n * d })?,
            grad_normed_patches: t(
                "G unit-norm patches",
                if self.spec.unit_norm_input { n * d } else { 1 },
            )?,
            pre_triangle_u: t(
                "pre-triangle U",
                if self.rule.pre_triangle() { n * c } else { 1 },
            )?,
            grad_x: t("G input", images * s.input.len())?,
            grad_in: t("G block input", images * s.input.len())?,
            grad_stats_in: t("G input BN statistics", 2 * s.input.channels)?,
            grad_stats_out: t("G output BN statistics", 2 * c)?,
            dw: t("ΔW", c * d)?,
            dw_normed: t("ΔW̃", c * d)?,
            state: [zeros("W state 0", c * d)?, zeros("W state 1", c * d)?],
            affine_in,
            affine_out,
            unused: [t("unused", 1)?, t("unused", 1)?],
            steps: 0,
        });
        Ok(())
    }

    /// Fine-tuning's forward on `x` (B planes of the input shape): as `train_step`'s output
    /// with batch statistics (the running ones update, as PyTorch's training mode), keeping
    /// what the backward pass reads: the input, P, U, the planes, the pooling's argmaxes and
    /// the output batch norm's input.
    pub fn fine_tune_forward(
        &mut self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        batch: usize,
    ) -> Result<&Tensor> {
        let Self {
            index,
            spec,
            shape: s,
            rule,
            input_bn,
            output_bn,
            work,
            tune,
        } = self;
        let tune = fine_tuning(*index, tune.as_ref(), batch)?;
        copy_prefix(rec, x, &tune.input, batch * s.input.len());
        let x = normalise_input(
            rec,
            input_bn.as_ref(),
            s,
            batch,
            true,
            &tune.input,
            &work.bn_in,
        )?;
        let patches = if s.identity_patches {
            x
        } else {
            im2col::im2col(rec, &ConvGeometry { batch, ..s.conv }, x, 0, &work.patches)?;
            &work.patches
        };
        project(
            rec,
            *index,
            spec,
            s,
            rule,
            work,
            Patches::Stored(patches),
            batch,
        )?;
        if rule.pre_triangle() {
            let n = batch * s.positions();
            copy_prefix(rec, &work.rows, &tune.pre_triangle_u, n * spec.channels);
        }
        block_output(
            rec,
            spec,
            s,
            rule,
            work,
            output_bn.as_ref(),
            batch,
            true,
            Some(&tune.argmax),
        )
    }

    /// Fine-tuning's backward pass after `fine_tune_forward`, from `grad_out` = −∂L/∂output
    /// (B planes of the output shape), reading the block in reverse:
    ///
    /// ```text
    /// G_out ─[output BN]→ ─[pool]→ planes → rows G_A ─[activation at U]→ G_U (N x C)
    ///   (with SoftHebb's pre-triangle: ─[activation at T]→ G_T ─[Triangle₁ at U]→ G_U;
    ///    with BCM's fixed lateral M: ─[activation at U·Mᵀ]→ G_T, G_U = G_T·M)
    ///   ΔW̃ = G_Uᵀ·P (C x D) [→ ΔW through w/‖w‖], stepped by `step` (when the block learns)
    ///   G_P = G_U·W̃ (N x D) ─[col2im]→ G_x ─[input BN]→ −∂L/∂x (when `input_grad`)
    /// ```
    ///
    /// The input gradient uses the weights of the forward: it is recorded before the step.
    /// Returns −∂L/∂x when `input_grad`.
    pub fn fine_tune_backward(
        &mut self,
        rec: &mut Recorder<'_>,
        grad_out: &Tensor,
        batch: usize,
        step: Option<OptimStep>,
        input_grad: bool,
    ) -> Result<Option<&Tensor>> {
        let kind = self.differentiable()?;
        let Self {
            index,
            spec,
            shape: s,
            rule,
            input_bn,
            output_bn,
            work,
            tune,
        } = self;
        let tune = fine_tuning(*index, tune.as_mut(), batch)?;
        let (c, d, p) = (spec.channels, s.fan_in(), s.positions());
        let n = batch * p;
        // Output batch norm: its input is w.pooled with pooling, w.planes without.
        let g_pooled = match output_bn.as_ref() {
            Some(bn) => {
                let bn_in = if s.pool.is_some() {
                    &work.pooled
                } else {
                    &work.planes
                };
                let plane = s.output.height * s.output.width;
                bn.backward(
                    rec,
                    batch,
                    plane,
                    bn_in,
                    grad_out,
                    &tune.grad_stats_out,
                    tune.affine_out.as_ref().map(|a| &a.grad),
                    &tune.grad_pooled,
                )?;
                &tune.grad_pooled
            }
            None => grad_out,
        };
        let g_planes = match s.pool {
            Some(g) => {
                let g = Pool2d {
                    planes: batch * c,
                    ..g
                };
                let argmax = (g.kind == PoolKind::Max).then_some(&tune.argmax);
                pool::pool2d_backward(rec, &g, argmax, g_pooled, &tune.grad_planes)?;
                &tune.grad_planes
            }
            None => g_pooled,
        };
        let g_a = if p == 1 {
            g_planes
        } else {
            layout::convert(
                rec,
                Layout::PlanesToRows,
                batch,
                c,
                p,
                g_planes,
                &tune.grad_rows,
            )?;
            &tune.grad_rows
        };
        if rule.pre_triangle() || rule.lateral().is_some() {
            // The activation read T = Triangle₁(U) or T = U·Mᵀ, still in w.rows2 (`activate`
            // leaves it there). G_T goes to a gradient buffer this pass has finished with:
            // grad_planes once the planes went to rows, grad_rows where they are the same.
            let g_t = if p == 1 {
                &tune.grad_rows
            } else {
                &tune.grad_planes
            };
            hebbian::activation_backward(rec, kind, &work.rows2, g_a, n, c, g_t)?;
            match rule.lateral() {
                // M is fixed (the rule builds it from lateral_strength): only W learns.
                Some(m) => gemm::gemm(rec, &Gemm::new(n, c, c).shaped(), g_t, m, &tune.grad_u)?,
                None => {
                    // U was saved by the forward; `activate` overwrote w.rows.
                    let triangle = ActivationGrad::Triangle { power: 1.0 };
                    let u = &tune.pre_triangle_u;
                    hebbian::activation_backward(rec, triangle, u, g_t, n, c, &tune.grad_u)?;
                }
            }
        } else {
            hebbian::activation_backward(rec, kind, &work.rows, g_a, n, c, &tune.grad_u)?;
        }
        // The patch matrix of the forward: the (normalised) input itself for identity patches;
        // the GEMM read its rows over their norms (in w.normed) with `unit_norm_input`.
        let patches = match (s.identity_patches, input_bn.is_some()) {
            (false, _) => &work.patches,
            (true, true) => &work.bn_in,
            (true, false) => &tune.input,
        };
        let unit_norm = spec.unit_norm_input;
        let projected = if unit_norm { &work.normed } else { patches };
        // The forward weights W̃: W, or W/‖w‖ or sign(w)·|w|^a (in w_fwd since the forward),
        // whose gradient goes on to W through unit_rows_backward or signed_pow_backward.
        let weights = spec.output_weights();
        let raw = weights == ForwardWeights::Raw;
        let forward_weights = if raw { &rule.w } else { &work.w_fwd };
        if step.is_some() {
            let dw_tilde = if raw { &tune.dw } else { &tune.dw_normed };
            gemm::gemm(
                rec,
                &Gemm::new(c, d, n).shaped().trans(true, false),
                &tune.grad_u,
                projected,
                dw_tilde,
            )?;
            match weights {
                ForwardWeights::Raw => {}
                ForwardWeights::UnitRows => {
                    hebbian::unit_rows_backward(rec, &rule.w, dw_tilde, c, d, &tune.dw)?;
                }
                ForwardWeights::SignedPower { exponent } => {
                    hebbian::signed_pow_backward(
                        rec,
                        &rule.w,
                        dw_tilde,
                        c * d,
                        exponent,
                        &tune.dw,
                    )?;
                }
            }
        }
        // The input batch norm's γ, β learn from the gradient at its output: the input side
        // runs for them too.
        let result = if input_grad || tune.affine_in.is_some() {
            // G_P = G_U·W̃, or with unit-norm patches G_P̂ = G_U·W̃ and G_P through p/‖p‖ per row
            // (the map of unit_rows_backward, on the N x D patch matrix).
            let g_p = if s.identity_patches {
                &tune.grad_x
            } else {
                &tune.grad_patches
            };
            let g_projected = if unit_norm {
                &tune.grad_normed_patches
            } else {
                g_p
            };
            gemm::gemm(
                rec,
                &Gemm::new(n, d, c).shaped(),
                &tune.grad_u,
                forward_weights,
                g_projected,
            )?;
            if unit_norm {
                hebbian::unit_rows_backward(rec, patches, g_projected, n, d, g_p)?;
            }
            if !s.identity_patches {
                im2col::col2im(rec, &ConvGeometry { batch, ..s.conv }, g_p, &tune.grad_x)?;
            }
            match input_bn.as_ref() {
                Some(bn) => {
                    let plane = s.input.height * s.input.width;
                    bn.backward(
                        rec,
                        batch,
                        plane,
                        &tune.input,
                        &tune.grad_x,
                        &tune.grad_stats_in,
                        tune.affine_in.as_ref().map(|a| &a.grad),
                        &tune.grad_in,
                    )?;
                    Some(&tune.grad_in)
                }
                None => Some(&tune.grad_x),
            }
        } else {
            None
        };
        if let Some(step) = step {
            let ([s0, s1], [u0, u1]) = (&tune.state, &tune.unused);
            optim::optimizer_step(rec, step, &rule.w, &tune.dw, c, d, s0, s1, u0, u1, None)?;
            // γ, β step with W (the same optimizer, rate, decay and step count).
            for (bn, affine) in [
                (&*input_bn, &tune.affine_in),
                (&*output_bn, &tune.affine_out),
            ] {
                if let (Some(bn), Some(a)) = (bn, affine)
                    && let Some(params) = &bn.affine
                {
                    let [s0, s1] = &a.state;
                    let two_c = 2 * bn.channels;
                    optim::optimizer_step(
                        rec, step, params, &a.grad, 1, two_c, s0, s1, u0, u1, None,
                    )?;
                }
            }
            tune.steps += 1;
        }
        Ok(result.filter(|_| input_grad))
    }

    /// Optimizer steps this block has taken in fine-tuning (0: the next step is the first).
    pub fn fine_tune_steps(&self) -> u32 {
        self.tune.as_ref().map_or(0, |t| t.steps)
    }

    /// Fine-tuning's optimizer state for W (momentum or Adam's m, Adam's v; C x D each), when
    /// fine-tuning is enabled: what a checkpoint keeps so a resumed run steps on identically.
    pub fn fine_tune_state(&self) -> Option<[&Tensor; 2]> {
        self.tune.as_ref().map(|t| [&t.state[0], &t.state[1]])
    }

    /// Fine-tuning's optimizer state for the (input, output) batch norms' γ, β (2·C each),
    /// where they have affine parameters.
    pub fn fine_tune_affine_state(&self) -> [Option<[&Tensor; 2]>; 2] {
        fn of(a: &Option<AffineTune>) -> Option<[&Tensor; 2]> {
            a.as_ref().map(|a| [&a.state[0], &a.state[1]])
        }
        match &self.tune {
            Some(t) => [of(&t.affine_in), of(&t.affine_out)],
            None => [None, None],
        }
    }

    /// Sets the step count after a resume (Adam's bias correction and the first SGD step read
    /// it).
    pub fn set_fine_tune_steps(&mut self, steps: u32) {
        if let Some(t) = self.tune.as_mut() {
            t.steps = steps;
        }
    }
}

/// The block's fine-tuning buffers, or an error when they are missing or too small.
fn fine_tuning<T: std::ops::Deref<Target = Tune>>(
    index: usize,
    tune: Option<T>,
    batch: usize,
) -> Result<T> {
    let tune = tune.ok_or_else(|| HebbError::Launch {
        kernel: format!("layer {index} fine-tuning"),
        message: "enable_fine_tuning was not called".into(),
    })?;
    if batch == 0 || batch > tune.images {
        return Err(HebbError::Shape {
            tensor: format!("layer {index} fine-tuning input"),
            message: format!(
                "{batch} images; fine-tuning was enabled for 1..={}",
                tune.images
            ),
        });
    }
    Ok(tune)
}

/// Checks that a pass of `batch` images fits the block's buffers.
fn check_batch(index: usize, work: &Work, batch: usize, learning: bool) -> Result<()> {
    let most = if learning && work.implicit {
        work.learn_images
    } else {
        work.images
    };
    if batch == 0 || batch > most {
        let pass = if learning { "learning" } else { "forward" };
        return Err(HebbError::Shape {
            tensor: format!("layer {index} input"),
            message: format!("{batch} images in a {pass} pass; the layer was built for 1..={most}"),
        });
    }
    Ok(())
}

/// The input batch norm, if the block has one, of `x` into `out` (batch statistics when
/// `training`); returns the normalised input, or `x`.
fn normalise_input<'t>(
    rec: &mut Recorder<'_>,
    bn: Option<&BnState>,
    s: &BlockShape,
    batch: usize,
    training: bool,
    x: &'t Tensor,
    out: &'t Tensor,
) -> Result<&'t Tensor> {
    match bn {
        Some(bn) => {
            let plane = s.input.height * s.input.width;
            bn.apply(rec, batch, plane, training, x, out)?;
            Ok(out)
        }
        None => Ok(x),
    }
}

/// The block's output from U in `w.rows`: activation [after BCM's lateral product or SoftHebb's
/// pre-triangle] → rows to planes → pool → output batch norm. Leaves `w.rows` as it was.
///
/// Fine-tuning's forward passes `argmax` (a max-pooling block's window argmaxes, for the
/// backward pass): the planes then always land in `w.planes`, so that the backward pass knows
/// where the output batch norm's input is (`w.pooled` with pooling, `w.planes` without).
#[allow(clippy::too_many_arguments)]
fn block_output<'w>(
    rec: &mut Recorder<'_>,
    spec: &LayerSpec,
    s: &BlockShape,
    rule: &GpuRule,
    w: &'w Work,
    output_bn: Option<&BnState>,
    batch: usize,
    training: bool,
    argmax: Option<&Tensor>,
) -> Result<&'w Tensor> {
    let (c, p) = (spec.channels, s.positions());
    let a = activate(rec, spec, rule, w, batch * p)?;
    // Rows → planes (the same layout when Ho·Wo = 1), pool, output BN.
    let planes = if p == 1 && argmax.is_none() {
        a
    } else {
        layout::convert(rec, Layout::RowsToPlanes, batch, c, p, a, &w.planes)?;
        &w.planes
    };
    let pooled = match s.pool {
        Some(g) => {
            let g = Pool2d {
                planes: batch * c,
                ..g
            };
            match argmax {
                Some(argmax) if g.kind == PoolKind::Max => {
                    pool::max_pool_indexed(rec, &g, planes, &w.pooled, argmax)?
                }
                _ => pool::pool2d(rec, &g, planes, &w.pooled)?,
            }
            &w.pooled
        }
        None => planes,
    };
    match output_bn {
        Some(bn) => {
            let plane = s.output.height * s.output.width;
            bn.apply(rec, batch, plane, training, pooled, &w.out)?;
            Ok(&w.out)
        }
        None => Ok(pooled),
    }
}

/// U = P·W̃ᵀ (N x C rows) into `w.rows`, with the rule's forward weights W̃ and the patches
/// scaled to unit norm where the recipe says so.
#[allow(clippy::too_many_arguments)]
fn project(
    rec: &mut Recorder<'_>,
    index: usize,
    spec: &LayerSpec,
    s: &BlockShape,
    rule: &GpuRule,
    w: &Work,
    patches: Patches<'_>,
    batch: usize,
) -> Result<()> {
    let (c, d, p) = (spec.channels, s.fan_in(), s.positions());
    let n = batch * p;
    let weights = rule.weights_as(rec, spec.output_weights(), &w.w_norms, &w.w_fwd)?;
    // Unit-norm patches in every forward output, so an output batch norm's running statistics
    // describe what the classifier will see; the rule's step still reads the raw patches.
    let normed_input = spec.unit_norm_input;
    let patches = match patches {
        Patches::Stored(p) => p,
        Patches::Gathered(x, g) => {
            // `HebbLayer::new` never gathers for unit-norm inputs.
            debug_assert!(!normed_input);
            return conv::conv_forward_rows(rec, &g, x, 0, weights, c, &w.rows);
        }
    };
    if normed_input {
        reduce::row_reduce(rec, ReduceOp::SumSquares, patches, n, d, &w.row_norms)?;
        hebbian::scale_rows(
            rec,
            RowFactor::InverseSqrtGuarded,
            patches,
            &w.row_norms,
            n,
            d,
            1.0,
            &w.normed,
        )
        .map_err(|e| HebbError::Launch {
            kernel: format!("layer {index} unit_norm_input"),
            message: e.to_string(),
        })?;
    }
    let x = if normed_input { &w.normed } else { patches };
    gemm::gemm(
        rec,
        &Gemm::new(n, c, d).shaped().trans(false, true),
        x,
        weights,
        &w.rows,
    )
}

/// A = activation(U [·Mᵀ]) for U in `w.rows` (N x C); returns the work tensor holding it.
fn activate<'w>(
    rec: &mut Recorder<'_>,
    spec: &LayerSpec,
    rule: &GpuRule,
    w: &'w Work,
    n: usize,
) -> Result<&'w Tensor> {
    let c = spec.channels;
    let u = match rule.lateral() {
        Some(m) => {
            // BCM: y = σ(M·W·x) per sample, i.e. the rows U·Mᵀ.
            gemm::gemm(
                rec,
                &Gemm::new(n, c, c).shaped().trans(false, true),
                &w.rows,
                m,
                &w.rows2,
            )?;
            &w.rows2
        }
        None if rule.pre_triangle() => {
            // SoftHebb's pre_triangle: the layer's output is Triangle₁(U) = relu(U − row mean),
            // and the block's activation applies on top of it.
            let triangle = Competition::Triangle { power: 1.0 };
            hebbian::competition(rec, triangle, &w.rows, None, n, c, &w.rows2, &w.scratch)?;
            &w.rows2
        }
        None => &w.rows,
    };
    let (a, spare) = if u.buffer == w.rows.buffer {
        (&w.rows2, &w.scratch)
    } else {
        (&w.scratch, &w.rows)
    };
    let competition = match spec.activation {
        Activation::Identity => return Ok(u),
        Activation::Relu | Activation::ReluPow { .. } => Competition::ReluOnly,
        Activation::Tanh => Competition::Tanh,
        Activation::Logistic => Competition::Logistic,
        Activation::Triangle { power } => Competition::Triangle { power },
    };
    hebbian::competition(rec, competition, u, None, n, c, a, spare)?;
    if let Activation::ReluPow { power } = spec.activation {
        // relu(u)^n = sign·|·|^n of a non-negative value.
        hebbian::signed_pow(rec, a, n * c, power, spare)?;
        return Ok(spare);
    }
    Ok(a)
}

/// Copies the first `len` f32 elements of src into dst.
pub fn copy_prefix(rec: &mut Recorder<'_>, src: &Tensor, dst: &Tensor, len: usize) {
    rec.encoder()
        .copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, (len * 4) as u64);
}
