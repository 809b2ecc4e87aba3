//! A Hebbian layer on the GPU: its weights, its rule's state, and one training step recorded
//! as a short composition of kernels. `GpuRule::step` reads top to bottom (FastHebb):
//!
//! ```text
//! project U = X·W̃ᵀ → compete Y, G → update ΔW (a GEMM and its decay) → optimise W
//! ```
//!
//! The first three stages depend on the preset's update family, one file each (the update
//! shapes, PRESETS.md):
//! - `sanger.rs` (HPCA, hebbdemo HPCA):  ΔW = s·GᵀX − s·tril(GᵀG)·W
//! - `wta.rs` (Lagani WTA, soft-WTA, final layer, hebbdemo soft-WTA):
//!   ΔW = diag(1/guard(colsum|G|))·[(G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W]
//! - `decay.rs` (SoftHebb, Krotov): R = YᵀX − diag(colsum(Y⊙U))·W, ΔW = R / max|R|
//! - `ica.rs`: ΔW = W − M·W with M = (1/N)·YᵀU (⊙ L for HICA); ICA-NRM: ΔW_i = (P_i·w_i)w_i − P_i
//! - `bcm.rs`: ΔW = (1/B)·ΦᵀX
//!
//! Nothing is read back. By default the update GEMM's epilogue (`gemm::gemm_update`) does the
//! rest of the update as it writes ΔW: it subtracts the decay term and folds max|R| for SoftHebb
//! and Krotov (whose optimizer then divides), it subtracts the WTA decay, and for Sanger's and
//! BCM's rules with SGD or Adam it applies the optimizer step to W itself, so the finished ΔW is
//! never stored (Sanger's decay product still is, as the β·C the update GEMM adds).
//! `set_fused_update(false)` runs the separate kernels. The pre-FastHebb baseline
//! (`UpdatePath::Naive`) keeps its per-sample update terms apart, in `naive.rs`.

mod bcm;
mod decay;
mod ica;
mod naive;
mod sanger;
mod wta;

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Gemm, UpdateEpilogue};
use crate::kernels::hebbian::{self, Competition, MaxDivisor, RowFactor};
use crate::kernels::hebbian_naive;
use crate::kernels::optim::{self, Normalised, OptimStep};
use crate::kernels::projection_competition::{
    self as fused, ProjectionOutputs, ProjectionPlan, projection_competition,
};
use crate::kernels::reduce::{self, ReduceOp};
use crate::rules::preset::{ForwardWeights, Optimizer, Preset, RuleConfig, UpdateFamily};

/// Initial weights and state of a layer (f32, row-major; W is C x D).
#[derive(Clone, Debug, Default)]
pub struct RuleInit {
    pub w: Vec<f32>,
    pub bn_running_mean: Option<Vec<f32>>,
    pub bn_running_var: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
    pub theta: Option<Vec<f32>>,
}

/// How the matrix products of a step are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdatePath {
    /// FastHebb: tiled GEMMs over the whole batch, the decay folded in as β·C.
    Fused,
    /// Pre-FastHebb baseline: the naive GEMM for the forward pass, and per-sample, per-neuron
    /// update terms materialised in chunks and reduced in a separate pass.
    Naive,
}

/// Elements of naive update terms materialised at once (16 MiB of f32).
const NAIVE_TERM_BUDGET: usize = 1 << 22;

/// Per-step work buffers, sized for up to `rows` rows.
struct Buffers {
    rows: usize,
    u: Tensor,
    y: Tensor,
    z: Tensor,
    g: Tensor,
    q: Tensor,
    proj: Tensor,
    tmp_nc: Tensor,
    row_vec: Tensor,
    dw: Tensor,
    tmp_cd: Tensor,
    cc: Tensor,
    cc2: Tensor,
    col_a: Tensor,
    col_b: Tensor,
    max1: Tensor,
    /// max|R| from the update GEMM's epilogue, read by the optimizer (apart from `max1`, which
    /// the bias update of the same step reuses).
    r_max: Tensor,
    wss: Tensor,
    db_raw: Tensor,
    db: Tensor,
    /// Per-workgroup column sums of G ⊙ U from the fused projection (blocks x C).
    col_partials: Tensor,
    /// Naive path: rows per chunk and the chunk's materialised terms.
    chunk: usize,
    terms: Tensor,
    /// Sanger's running reconstruction R (rows x D), where the rule updates by
    /// `kernels::sanger_scan`.
    recon: Option<Tensor>,
}

pub struct GpuRule {
    /// Fixed at construction: the buffers and the lateral matrix were built for it.
    config: RuleConfig,
    pub path: UpdatePath,
    /// Neurons C and fan-in D.
    pub c: usize,
    pub d: usize,
    pub w: Tensor,
    pub bn_mean: Tensor,
    pub bn_var: Tensor,
    pub bias: Tensor,
    pub theta: Tensor,
    /// BCM lateral matrix M = (I − L_s)⁻¹ (C x C), computed once on the host in float64.
    lateral: Option<Tensor>,
    state0: Tensor,
    state1: Tensor,
    /// Per-neuron learning rate of the last step (SoftHebb), else the scalar rate.
    pub eta: Tensor,
    /// Multiplies the optimizer's learning rate (an epoch schedule such as Krotov's annealing).
    pub lr_scale: f64,
    steps_done: u32,
    /// Tile plan of the fused projection + competition kernel, where the layer has one and
    /// it is switched on (the fused update path only).
    projection: Option<ProjectionPlan>,
    /// Whether steps also write U and Y (conformance, inspection); training leaves them out
    /// where the projection is fused.
    keep_intermediates: bool,
    /// Whether the last step wrote U and Y.
    wrote_u_y: bool,
    /// Whether the update GEMM applies the rest of the update in its epilogue
    /// (`gemm::gemm_update`): the decay term and max|R| of the normalised rules, the decay of
    /// the WTA rules, and the whole optimizer step of Sanger's and BCM's rules.
    fused_update: bool,
    /// Whether the adapter can run the epilogues (`gemm::update_epilogues_available`).
    epilogues_available: bool,
    /// Sanger's family: ΔW by the running reconstruction (`kernels::sanger_scan`) instead of
    /// the GEMMs, as `DevicePolicy::sanger_by_scan` chooses for the layer's largest batch.
    sanger_scan: bool,
    /// Whether the last step wrote ΔW (a fused update leaves it out unless asked).
    wrote_dw: bool,
    bufs: Buffers,
}

/// What the update stage of a step leaves for the optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum UpdateLeft {
    /// ΔW is in `dw`: run the optimizer on it.
    Delta,
    /// R is in `tmp_cd` and max|R| in `r_max`: the optimizer divides (fused update).
    Normalise(MaxDivisor),
    /// The update GEMM's epilogue already stepped W.
    Applied,
}

/// What the layer's forward output already computed from a step's starting weights, for the
/// step to read instead of recomputing (`HebbLayer::train_step`).
#[derive(Clone, Copy, Default)]
pub struct FromForward<'t> {
    /// W̃ (`forward_weights`), where it is not W itself.
    pub weights: Option<&'t Tensor>,
    /// U = X·W̃ᵀ (N x C), read where the rule `takes_projection`.
    pub projected: Option<&'t Tensor>,
}

/// What one step works on: X (N x D), the teacher where the preset takes one, and what the
/// caller's forward pass computed.
struct StepInput<'t> {
    x: &'t Tensor,
    n: usize,
    teacher: Option<&'t Tensor>,
    weights: Option<&'t Tensor>,
    projected: Option<&'t Tensor>,
}

/// What a family's project-compete-update stages leave: the rest of the update for the
/// optimizer, and whether U and Y were written to their buffers.
struct Stepped {
    left: UpdateLeft,
    wrote_u_y: bool,
}

/// Whether rules use the fused projection + competition kernel unless told otherwise
/// (`policy.fused_projection`): under the GPU policy, where it saves five N x C passes over
/// memory per step (U written and read twice, Y written; `hebb bench rules` counts them), and
/// not under the CPU policy. On lavapipe the separate
/// kernels won in every case `hebb bench rules` timed on lavapipe (the fused step ran at
/// 0.22–0.84x, BENCHMARKS.md). The likely reason, not measured apart: the fused kernel stages
/// tiles through workgroup memory behind barriers, which llvmpipe runs slowly, and the
/// subgroup GEMM it is compared with uses neither.
pub fn fused_projection_by_default(ctx: &GpuContext) -> bool {
    ctx.policy.fused_projection
}

/// The presets whose step can run the fused projection + competition kernel: a plain
/// projection followed by a competition the kernel computes, feeding the update directly
/// (`project_and_compete`). The others compute a similarity, a lateral product or a second
/// competition in between.
fn uses_fused_projection(preset: &Preset) -> bool {
    matches!(
        preset,
        Preset::LaganiHpca { .. }
            | Preset::LaganiHpcaTanh {
                var_adaptive: false,
                ..
            }
            | Preset::HebbdemoHpca { .. }
            | Preset::SofthebbSoftkrotov { .. }
            | Preset::SofthebbSoft { .. }
            | Preset::SofthebbHard
            | Preset::KrotovHopfield { .. }
    )
}

fn zeros(ctx: &GpuContext, label: &str, len: usize) -> Result<Tensor> {
    Tensor::from_f32(ctx, label, &[len], &vec![0.0; len])
}

fn vector(
    ctx: &GpuContext,
    label: &str,
    init: Option<&Vec<f32>>,
    c: usize,
    fill: f32,
) -> Result<Tensor> {
    let data = init.cloned().unwrap_or_else(|| vec![fill; c]);
    Tensor::from_f32(ctx, label, &[c], &data)
}

impl GpuRule {
    /// A layer of C neurons with fan-in D, for batches of up to `rows` patch rows.
    pub fn new(
        ctx: &GpuContext,
        config: RuleConfig,
        c: usize,
        d: usize,
        rows: usize,
        init: &RuleInit,
    ) -> Result<Self> {
        Self::with_path(ctx, config, c, d, rows, init, UpdatePath::Fused)
    }

    /// As `new`, choosing the fused or the naive update path.
    pub fn with_path(
        ctx: &GpuContext,
        config: RuleConfig,
        c: usize,
        d: usize,
        rows: usize,
        init: &RuleInit,
        path: UpdatePath,
    ) -> Result<Self> {
        if init.w.len() != c * d {
            return Err(HebbError::Shape {
                tensor: "initial weights".into(),
                message: format!("{} values for a {c} x {d} layer", init.w.len()),
            });
        }
        if let Preset::SofthebbSoft { bias: true, .. } = config.preset
            && !matches!(config.optimizer, Optimizer::Sgd { .. })
        {
            return Err(HebbError::Launch {
                kernel: config.name.clone(),
                message: "a bias needs the sgd optimizer (the authors' code combines it with nothing else)".into(),
            });
        }
        let lateral = match config.preset {
            Preset::BcmCurti {
                lateral_strength, ..
            } => {
                let mut a = crate::reference::dense::Mat::zeros(c, c);
                for i in 0..c {
                    for j in 0..c {
                        a.set(i, j, if i == j { 1.0 } else { -lateral_strength });
                    }
                }
                let m = a.inverse().ok_or_else(|| HebbError::Launch {
                    kernel: config.name.clone(),
                    message: format!(
                        "lateral_strength {lateral_strength} makes I − L singular for C = {c}"
                    ),
                })?;
                let data: Vec<f32> = m.data.iter().map(|&v| v as f32).collect();
                Some(Tensor::from_f32(ctx, "lateral M", &[c, c], &data)?)
            }
            _ => None,
        };
        let nc = rows * c;
        // The partials buffer is sized for the plan even where the default leaves it off, so
        // `set_fused_projection` can switch it on.
        let plan_for_buffers = match path {
            UpdatePath::Fused if uses_fused_projection(&config.preset) => {
                ProjectionPlan::for_layer(ctx, c, d)
            }
            _ => None,
        };
        let projection = plan_for_buffers.filter(|_| fused_projection_by_default(ctx));
        let epilogues_available = gemm::update_epilogues_available(ctx);
        let t = |label: &str, len: usize| Tensor::empty(ctx, label, &[len.max(1)], DType::F32);
        let sanger_scan = path == UpdatePath::Fused
            && config.preset.update_family() == UpdateFamily::Sanger
            && ctx.policy.sanger_by_scan(rows, c, d);
        let bufs = Buffers {
            rows,
            u: t("U", nc)?,
            y: t("Y", nc)?,
            z: t("Z", nc)?,
            g: t("G", nc)?,
            q: t("G⊙|G|", nc)?,
            proj: t("projection", nc)?,
            tmp_nc: t("N x C scratch", nc)?,
            row_vec: t("per-row scratch", rows)?,
            dw: t("ΔW", c * d)?,
            tmp_cd: t("C x D scratch", c * d)?,
            cc: t("C x C", c * c)?,
            cc2: t("C x C scratch", c * c)?,
            col_a: t("per-neuron a", c)?,
            col_b: t("per-neuron b", c)?,
            max1: t("max", 1)?,
            r_max: t("max|R|", 1)?,
            wss: t("Σw²", c)?,
            db_raw: t("Δb raw", c)?,
            db: t("Δb", c)?,
            col_partials: t(
                "colsum(G⊙U) partials",
                plan_for_buffers.map_or(1, |p| p.blocks(rows) * c),
            )?,
            chunk: hebbian_naive::naive_chunk_rows(rows, c, d, NAIVE_TERM_BUDGET),
            terms: match path {
                UpdatePath::Naive => t(
                    "naive terms",
                    hebbian_naive::naive_chunk_rows(rows, c, d, NAIVE_TERM_BUDGET) * c * d,
                )?,
                UpdatePath::Fused => t("naive terms (unused)", 1)?,
            },
            recon: match sanger_scan {
                true => Some(t("Sanger reconstruction", rows * d)?),
                false => None,
            },
        };
        Ok(Self {
            w: Tensor::from_f32(ctx, "W", &[c, d], &init.w)?,
            bn_mean: vector(ctx, "running mean", init.bn_running_mean.as_ref(), c, 0.0)?,
            bn_var: vector(
                ctx,
                "running variance",
                init.bn_running_var.as_ref(),
                c,
                1.0,
            )?,
            bias: vector(ctx, "bias", init.bias.as_ref(), c, 0.0)?,
            theta: vector(ctx, "theta", init.theta.as_ref(), c, 0.0)?,
            lateral,
            state0: zeros(ctx, "optimizer state 0", c * d)?,
            state1: zeros(ctx, "optimizer state 1", c * d)?,
            eta: zeros(ctx, "eta", c)?,
            lr_scale: 1.0,
            steps_done: 0,
            projection,
            keep_intermediates: false,
            wrote_u_y: false,
            fused_update: path == UpdatePath::Fused && epilogues_available,
            epilogues_available,
            sanger_scan,
            wrote_dw: false,
            config,
            path,
            c,
            d,
            bufs,
        })
    }

    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Whether the layer's output is Triangle₁(U) rather than U (SoftHebb's `pre_triangle`).
    pub fn pre_triangle(&self) -> bool {
        matches!(
            self.config.preset,
            Preset::SofthebbSoftkrotov {
                pre_triangle: true,
                ..
            }
        )
    }

    /// BCM's fixed lateral matrix M = (I − L)⁻¹ (C x C), for the forward pass y = σ(M·W·x).
    pub fn lateral(&self) -> Option<&Tensor> {
        self.lateral.as_ref()
    }

    /// Optimizer state (momentum / Adam moments, C x D each) and steps taken, for checkpoints.
    pub fn optimizer_state(&self) -> (&Tensor, &Tensor, u32) {
        (&self.state0, &self.state1, self.steps_done)
    }

    /// Restores the step count saved with `optimizer_state` (the tensors are written directly).
    pub fn set_steps_done(&mut self, steps: u32) {
        self.steps_done = steps;
    }

    /// Whether steps run the projection and the competition as one kernel
    /// (`projection_competition.wgsl`). On by default on GPU adapters where the layer fits the
    /// kernel (see `ProjectionPlan::for_layer` and `fused_projection_by_default`) on the fused
    /// path; the rules whose competition it does not compute run the separate kernels either
    /// way.
    pub fn fused_projection(&self) -> bool {
        self.projection.is_some()
    }

    /// Switches the fused projection off (the separate GEMM and competition kernels), or on
    /// where the layer has a plan, whatever the adapter's default. Returns whether it is on.
    pub fn set_fused_projection(&mut self, ctx: &GpuContext, on: bool) -> bool {
        self.projection = match (on, self.path) {
            (true, UpdatePath::Fused) if uses_fused_projection(&self.config.preset) => {
                ProjectionPlan::for_layer(ctx, self.c, self.d)
            }
            _ => None,
        };
        if let Some(p) = self.projection
            && self.bufs.col_partials.len() < p.blocks(self.bufs.rows) * self.c
        {
            self.projection = None;
        }
        self.projection.is_some()
    }

    /// Whether Sanger's update runs as the running reconstruction (`kernels::sanger_scan`).
    pub fn sanger_scan(&self) -> bool {
        self.sanger_scan
    }

    /// Switches Sanger's running-reconstruction update on (the fused path of Sanger's family
    /// only, where one neuron's step fits the loop budget) or off, whatever the policy chose.
    /// Returns whether it is on.
    pub fn set_sanger_scan(&mut self, ctx: &GpuContext, on: bool) -> Result<bool> {
        let rows = self.bufs.rows;
        let fits = ctx
            .loop_iteration_limit()
            .is_none_or(|limit| crate::kernels::sanger_scan::scan_iterations(rows, 1) <= limit);
        self.sanger_scan = on
            && fits
            && self.path == UpdatePath::Fused
            && self.config.preset.update_family() == UpdateFamily::Sanger;
        if self.sanger_scan && self.bufs.recon.is_none() {
            let t = Tensor::empty(ctx, "Sanger reconstruction", &[rows * self.d], DType::F32)?;
            self.bufs.recon = Some(t);
        }
        Ok(self.sanger_scan)
    }

    /// Whether the update GEMM folds the rest of the update into its epilogue (on by default on
    /// the fused path; see `gemm::UpdateEpilogue`).
    pub fn fused_update(&self) -> bool {
        self.fused_update
    }

    /// Switches the update epilogues on (the fused path only, on adapters that can run them) or
    /// off (separate decay, normaliser and optimizer kernels). Returns whether they are on.
    pub fn set_fused_update(&mut self, on: bool) -> bool {
        self.fused_update = on && self.path == UpdatePath::Fused && self.epilogues_available;
        self.fused_update
    }

    /// Whether steps write U, Y and ΔW even where a fused kernel does not need them (the
    /// conformance runner sets this to compare them with the authors' values).
    pub fn set_keep_intermediates(&mut self, keep: bool) {
        self.keep_intermediates = keep;
    }

    /// The buffers holding the last step's intermediates, by hebb-case/1 name (rows N x C).
    /// U, Y and ΔW are there only if the last step wrote them (see `set_keep_intermediates`).
    pub fn intermediate(&self, key: &str) -> Option<&Tensor> {
        let b = &self.bufs;
        if matches!(key, "u" | "y" | "out") && !self.wrote_u_y {
            return None;
        }
        if key == "delta_w" && !self.wrote_dw {
            return None;
        }
        let wta_family = matches!(
            self.config.preset,
            Preset::LaganiKwta { .. }
                | Preset::LaganiSoftWtaExp { .. }
                | Preset::LaganiSoftWtaPow { .. }
                | Preset::LaganiFinalSupervised
        );
        Some(match key {
            "delta_w" => &b.dw,
            "u" => &b.u,
            "y" if wta_family => &b.u,
            "y" => &b.y,
            "z" => &b.z,
            "out" if wta_family => &b.proj,
            "out"
                if matches!(
                    self.config.preset,
                    Preset::SofthebbSoftkrotov { .. }
                        | Preset::SofthebbSoft { .. }
                        | Preset::SofthebbHard
                ) =>
            {
                &b.u
            }
            "out" => &b.y,
            "delta_b" => &b.db,
            _ => return None,
        })
    }

    /// The weights W̃ of this preset's projection U = X·W̃ᵀ (`Preset::forward_weights`): W
    /// itself, or W̃ recorded into `out` with `norms` (C) as scratch. The layer's forward
    /// output and this rule's step both take W̃ from here.
    pub fn forward_weights<'t>(
        &'t self,
        rec: &mut Recorder<'_>,
        norms: &Tensor,
        out: &'t Tensor,
    ) -> Result<&'t Tensor> {
        self.weights_as(rec, self.config.preset.forward_weights(), norms, out)
    }

    /// This rule's W transformed as `kind` says: W itself, or recorded into `out` with
    /// `norms` (C) as scratch. A block's output current may use other weights than the rule's
    /// step (`LayerSpec::output_weights`).
    pub fn weights_as<'t>(
        &'t self,
        rec: &mut Recorder<'_>,
        kind: ForwardWeights,
        norms: &Tensor,
        out: &'t Tensor,
    ) -> Result<&'t Tensor> {
        let (c, d) = (self.c, self.d);
        match kind {
            ForwardWeights::Raw => Ok(&self.w),
            ForwardWeights::SignedPower { exponent } => {
                hebbian::signed_pow(rec, &self.w, c * d, exponent, out)?;
                Ok(out)
            }
            ForwardWeights::UnitRows => {
                reduce::row_reduce(rec, ReduceOp::SumSquares, &self.w, c, d, norms)?;
                let factor = RowFactor::InverseSqrtGuarded;
                hebbian::scale_rows(rec, factor, &self.w, norms, c, d, 1.0, out)?;
                Ok(out)
            }
        }
    }

    /// Whether `step` can read a caller's U = X·W̃ᵀ instead of projecting itself: the rules
    /// whose step starts by projecting onto `forward_weights` and competing on the result, on
    /// the default path (the naive baseline computes everything itself).
    pub fn takes_projection(&self) -> bool {
        self.path == UpdatePath::Fused
            && matches!(
                self.config.preset,
                Preset::LaganiHpca { .. }
                    | Preset::LaganiHpcaTanh {
                        var_adaptive: false,
                        ..
                    }
                    | Preset::HebbdemoHpca { .. }
                    | Preset::SofthebbSoftkrotov {
                        pre_triangle: false,
                        ..
                    }
                    | Preset::SofthebbSoft { bias: false, .. }
                    | Preset::SofthebbHard
                    | Preset::KrotovHopfield { .. }
            )
    }

    /// Records one training step on X (N x D, row-major) with an optional teacher T (N x C):
    /// project, compete, form the update (each family's file), then optimise. `from_forward`
    /// holds W̃ and U = X·W̃ᵀ where the caller already computed them with this step's starting
    /// weights (`FromForward::default()` where it did not).
    pub fn step(
        &mut self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        teacher: Option<&Tensor>,
        from_forward: FromForward<'_>,
    ) -> Result<()> {
        let FromForward { weights, projected } = from_forward;
        let (c, d) = (self.c, self.d);
        if n > self.bufs.rows || n == 0 {
            return Err(HebbError::Shape {
                tensor: x.label.clone(),
                message: format!(
                    "{n} rows, but the layer was built for 1..={} rows",
                    self.bufs.rows
                ),
            });
        }
        x.expect_len(n * d, &format!("X ({n} x {d})"))?;
        if let Some(u) = projected {
            u.expect_len(n * c, &format!("U ({n} x {c})"))?;
        }
        if let Some(w) = weights {
            w.expect_len(c * d, &format!("W̃ ({c} x {d})"))?;
        }
        if rec.group().is_some() {
            self.check_groupable()?;
        }
        if matches!(self.config.preset, Preset::LaganiFinalSupervised) && teacher.is_none() {
            return Err(HebbError::Launch {
                kernel: self.config.name.clone(),
                message: "the supervised final layer needs a teacher signal".into(),
            });
        }
        let input = StepInput {
            x,
            n,
            teacher: teacher.filter(|_| self.config.takes_teacher()),
            weights: weights.filter(|_| self.path == UpdatePath::Fused),
            projected: projected.filter(|_| self.takes_projection()),
        };
        // Project, compete and form ΔW (or leave the rest of it to the optimizer).
        let stepped = match self.config.preset.update_family() {
            UpdateFamily::Sanger => self.sanger_step(rec, &input)?,
            UpdateFamily::Wta => self.wta_step(rec, &input)?,
            UpdateFamily::Ica => self.ica_step(rec, &input)?,
            UpdateFamily::DecayNormalised => self.decay_normalised_step(rec, &input)?,
            UpdateFamily::Bcm => self.bcm_step(rec, &input)?,
        };
        // Optimise: W ← W + step(ΔW), unless the update GEMM's epilogue already stepped W.
        self.apply_optimizer(rec, stepped.left)?;
        self.step_bias(rec)?;
        self.steps_done += 1;
        self.wrote_u_y = stepped.wrote_u_y;
        self.wrote_dw = stepped.left == UpdateLeft::Delta || self.keep_intermediates;
        Ok(())
    }

    /// U = X·W̃ᵀ (N x C) into `out` (the naive GEMM on the naive path), or the caller's U.
    fn project<'t>(
        &self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'t>,
        weights: &Tensor,
        out: &'t Tensor,
    ) -> Result<&'t Tensor> {
        if let Some(u) = input.projected {
            return Ok(u);
        }
        let g = Gemm::new(input.n, self.c, self.d)
            .shaped()
            .trans(false, true);
        if self.path == UpdatePath::Naive {
            gemm::gemm_naive(rec, &g, input.x, weights, out)?;
        } else {
            gemm::gemm(rec, &g, input.x, weights, out)?;
        }
        Ok(out)
    }

    /// U = X·W̃ᵀ (+ bias), then `kind` into Y and G: one fused kernel where this layer has a
    /// plan and the kernel computes `kind`, else the projection (or the caller's U) and the
    /// competition kernel. With `col_sums`, also forms colsum(G ⊙ U) in `col_a` (the decay
    /// factor of the decay-normalised rules). Returns whether U and Y were written to `u`, `y`.
    fn project_and_compete(
        &self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'_>,
        weights: &Tensor,
        bias: Option<&Tensor>,
        kind: Competition,
        col_sums: bool,
    ) -> Result<bool> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        let (x, n, teacher) = (input.x, input.n, input.teacher);
        let plan = self.projection.filter(|_| fused::supports(kind));
        if let Some(plan) = plan.filter(|_| input.projected.is_none()) {
            let keep = self.keep_intermediates;
            let out = ProjectionOutputs {
                g: &b.g,
                u: keep.then_some(&b.u),
                y: keep.then_some(&b.y),
                col_partials: col_sums.then_some(&b.col_partials),
            };
            projection_competition(rec, &plan, kind, x, weights, bias, teacher, (n, c, d), &out)?;
            if col_sums {
                let blocks = plan.blocks(n);
                reduce::col_reduce(rec, ReduceOp::Sum, &b.col_partials, blocks, c, &b.col_a)?;
            }
            return Ok(keep);
        }
        let u = match bias {
            Some(bias) => {
                let raw = self.project(rec, input, weights, &b.tmp_nc)?;
                hebbian::add_bias(rec, raw, bias, n, c, &b.u)?;
                &b.u
            }
            None => self.project(rec, input, weights, &b.u)?,
        };
        hebbian::competition(rec, kind, u, teacher, n, c, &b.y, &b.g)?;
        if col_sums {
            reduce::col_dot(rec, &b.g, u, n, c, &b.col_a)?;
        }
        Ok(input.projected.is_none())
    }

    /// ΔW = alpha·op(A)op(B) + beta·ΔW into `dw`: with the fused update and an optimizer the
    /// GEMM epilogue can run (SGD, Adam), W takes its step there and ΔW is written only when
    /// intermediates are kept; otherwise the plain GEMM writes ΔW for `apply_optimizer`.
    fn update_gemm(
        &self,
        rec: &mut Recorder<'_>,
        g: &Gemm,
        a: &Tensor,
        b_op: &Tensor,
    ) -> Result<UpdateLeft> {
        let b = &self.bufs;
        let adaptive = matches!(self.config.optimizer, Optimizer::SofthebbAdaptive { .. });
        if !self.fuses_update(rec) || adaptive {
            gemm::gemm(rec, g, a, b_op, &b.dw)?;
            return Ok(UpdateLeft::Delta);
        }
        let step = self.optim_step(rec)?;
        let epilogue = UpdateEpilogue::Optim {
            step,
            w: &self.w,
            state0: &self.state0,
            state1: &self.state1,
            write_delta: self.keep_intermediates,
        };
        gemm::gemm_update(rec, g, a, b_op, &b.dw, &epilogue)?;
        Ok(UpdateLeft::Applied)
    }

    /// Whether this step folds the rest of the update into the update GEMM's epilogue: not in
    /// a process group, where the GEMM's sum must be summed over the ranks first.
    fn fuses_update(&self, rec: &Recorder<'_>) -> bool {
        self.fused_update && rec.group().is_none()
    }

    /// Whether a step can run in a process group (`crate::dist`): everything but the naive
    /// baseline and the variance-adaptive presets, whose running batch statistics are not
    /// summed over the ranks.
    fn check_groupable(&self) -> Result<()> {
        let refuse = |why: &str| {
            Err(HebbError::Launch {
                kernel: self.config.name.clone(),
                message: format!("{why}: train this layer in one process (no mpirun)"),
            })
        };
        if self.path == UpdatePath::Naive {
            return refuse("the naive update path is a single-process baseline");
        }
        match self.config.preset {
            Preset::LaganiHpcaTanh {
                var_adaptive: true, ..
            }
            | Preset::LaganiIcaNrm { .. } => refuse(
                "the variance adaptation keeps running statistics of each batch that are not \
                 synchronised across ranks",
            ),
            _ => Ok(()),
        }
    }

    /// SoftHebb's bias with plain SGD: b ← b + lr·lr_bias·Δb (Δb formed by the step).
    fn step_bias(&self, rec: &mut Recorder<'_>) -> Result<()> {
        if let (
            Preset::SofthebbSoft {
                bias: true,
                lr_bias: Some(lrb),
                ..
            },
            Optimizer::Sgd { lr, .. },
        ) = (&self.config.preset, &self.config.optimizer)
        {
            elementwise::axpy(rec, (lr * lrb) as f32, &self.bufs.db, &self.bias)?;
        }
        Ok(())
    }

    /// W̃ for the step's own projection: the caller's, else `forward_weights` into `tmp_cd`
    /// (not formed at all where the caller gave U, which is all the step needed it for).
    fn step_weights<'t>(
        &'t self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'t>,
    ) -> Result<&'t Tensor> {
        if input.projected.is_some() {
            return Ok(&self.w);
        }
        if let Some(w) = input.weights {
            return Ok(w);
        }
        self.forward_weights(rec, &self.bufs.wss, &self.bufs.tmp_cd)
    }

    /// This step's optimizer, with the learning-rate scale and bias correction applied. Also
    /// records what it reads besides ΔW: Σw² per neuron (adaptive) or η = lr (SGD, Adam).
    fn optim_step(&self, rec: &mut Recorder<'_>) -> Result<OptimStep> {
        let (c, d) = (self.c, self.d);
        let first = self.steps_done == 0;
        let optimizer = self.config.optimizer.scaled(self.lr_scale);
        let step = match optimizer {
            Optimizer::Sgd {
                lr,
                momentum,
                nesterov,
                weight_decay,
            } => OptimStep::Sgd {
                lr: lr as f32,
                momentum: momentum as f32,
                nesterov,
                weight_decay: weight_decay as f32,
                first,
            },
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let t = (self.steps_done + 1) as i32;
                OptimStep::Adam {
                    rate: (lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t))) as f32,
                    beta1: beta1 as f32,
                    beta2: beta2 as f32,
                    eps: eps as f32,
                    weight_decay: weight_decay as f32,
                    first,
                }
            }
            Optimizer::SofthebbAdaptive { lr, power } => {
                reduce::row_reduce(rec, ReduceOp::SumSquares, &self.w, c, d, &self.bufs.wss)?;
                OptimStep::Adaptive {
                    lr: lr as f32,
                    power: power as f32,
                }
            }
        };
        if let Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } = optimizer {
            elementwise::fill(rec, &self.eta, lr as f32)?;
        }
        Ok(step)
    }

    fn apply_optimizer(&self, rec: &mut Recorder<'_>, left: UpdateLeft) -> Result<()> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        let (dw, normalised) = match left {
            UpdateLeft::Applied => return Ok(()),
            UpdateLeft::Delta => (&b.dw, None),
            UpdateLeft::Normalise(divisor) => (
                &b.tmp_cd,
                Some(Normalised {
                    max: &b.r_max,
                    divisor,
                    write: self.keep_intermediates.then_some(&b.dw),
                }),
            ),
        };
        let step = self.optim_step(rec)?;
        optim::optimizer_step(
            rec,
            step,
            &self.w,
            dw,
            c,
            d,
            &self.state0,
            &self.state1,
            &b.wss,
            &self.eta,
            normalised,
        )
    }
}
