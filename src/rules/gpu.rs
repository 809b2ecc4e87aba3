//! A Hebbian layer on the GPU: its weights, its rule's state, and one training step recorded
//! as a short composition of kernels (FastHebb: similarity → competition → update GEMM →
//! optional normaliser → optimizer). Nothing is read back. By default the update GEMM's
//! epilogue (`gemm::gemm_update`) does the rest of the update as it writes ΔW: it subtracts
//! the decay term and folds max|R| for SoftHebb and Krotov (whose optimizer then divides), it
//! subtracts the WTA decay, and for Sanger's and BCM's rules with SGD or Adam it applies the
//! optimizer step to W itself, so the finished ΔW is never stored (Sanger's decay product
//! still is, as the β·C the update GEMM adds). `set_fused_update(false)` runs the separate
//! kernels.
//!
//! The update shapes (PRESETS.md):
//! - Sanger (HPCA, hebbdemo HPCA):  ΔW = s·GᵀX − s·tril(GᵀG)·W
//! - WTA reduction (Lagani WTA, soft-WTA, final layer, hebbdemo soft-WTA):
//!   ΔW = diag(1/guard(colsum|G|))·[(G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W]
//! - Decay (SoftHebb, Krotov): R = YᵀX − diag(colsum(Y⊙U))·W, ΔW = R / max|R|
//! - ICA: ΔW = W − M·W with M = (1/N)·YᵀS (⊙ L for HICA); ICA-NRM: ΔW_i = (P_i·w_i)w_i − P_i
//! - BCM: ΔW = (1/B)·ΦᵀX

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Gemm, UpdateEpilogue};
use crate::kernels::hebbian::{
    self, Competition, MaxDivisor, NaiveTerms, Normalised, OptimStep, RowFactor,
};
use crate::kernels::projection_competition::{
    self as fused, ProjectionOutputs, ProjectionPlan, projection_competition,
};
use crate::kernels::reduce::{self, ReduceOp};
use crate::kernels::to_u32;
use crate::rules::preset::{BcmActivation, DemoActivation, Optimizer, Preset, RuleConfig};

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
            chunk: hebbian::naive_chunk_rows(rows, c, d, NAIVE_TERM_BUDGET),
            terms: match path {
                UpdatePath::Naive => t(
                    "naive terms",
                    hebbian::naive_chunk_rows(rows, c, d, NAIVE_TERM_BUDGET) * c * d,
                )?,
                UpdatePath::Fused => t("naive terms (unused)", 1)?,
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

    /// Records one training step on X (N x D, row-major) with an optional teacher T (N x C).
    pub fn step(
        &mut self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        teacher: Option<&Tensor>,
    ) -> Result<()> {
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
        if matches!(self.config.preset, Preset::LaganiFinalSupervised) && teacher.is_none() {
            return Err(HebbError::Launch {
                kernel: self.config.name.clone(),
                message: "the supervised final layer needs a teacher signal".into(),
            });
        }
        let teacher = if self.config.takes_teacher() {
            teacher
        } else {
            None
        };
        let b = &self.bufs;
        let w = &self.w;
        let naive = self.path == UpdatePath::Naive;
        // U = X·Wᵀ (N x C).
        let project = |rec: &mut Recorder<'_>, weights: &Tensor, out: &Tensor| {
            let g = Gemm::new(n, c, d).shaped().trans(false, true);
            if naive {
                gemm::gemm_naive(rec, &g, x, weights, out)
            } else {
                gemm::gemm(rec, &g, x, weights, out)
            }
        };
        // Cleared where a fused projection leaves U and Y out.
        let mut wrote_u_y = true;
        let mut left = UpdateLeft::Delta;
        match self.config.preset.clone() {
            Preset::LaganiHpca { adaptive_step } | Preset::LaganiHpcaTanh { adaptive_step, .. } => {
                match self.config.preset {
                    Preset::LaganiHpcaTanh {
                        var_adaptive: true,
                        bn_momentum,
                        bn_eps,
                        ..
                    } => {
                        project(rec, w, &b.u)?;
                        self.variance_adapt(rec, n, bn_momentum, bn_eps, &b.tmp_nc)?;
                        hebbian::competition(
                            rec,
                            Competition::Identity,
                            &b.tmp_nc,
                            teacher,
                            n,
                            c,
                            &b.y,
                            &b.g,
                        )?;
                    }
                    Preset::LaganiHpcaTanh { .. } => {
                        let tanh = Competition::Tanh;
                        wrote_u_y =
                            self.project_and_compete(rec, x, n, w, None, tanh, teacher, false)?;
                    }
                    _ => {
                        let relu = Competition::Relu;
                        wrote_u_y =
                            self.project_and_compete(rec, x, n, w, None, relu, teacher, false)?;
                    }
                }
                let mut s = 1.0 / n as f32;
                if adaptive_step {
                    s /= (d as f32).sqrt();
                }
                left = self.sanger(rec, x, n, s)?;
            }
            Preset::LaganiKwta { .. }
            | Preset::LaganiSoftWtaExp { .. }
            | Preset::LaganiSoftWtaPow { .. }
            | Preset::LaganiFinalSupervised => {
                reduce::row_reduce(rec, ReduceOp::SumSquares, x, n, d, &b.row_vec)?;
                reduce::row_reduce(rec, ReduceOp::SumSquares, w, c, d, &b.wss)?;
                project(rec, w, &b.tmp_nc)?;
                let final_layer = matches!(self.config.preset, Preset::LaganiFinalSupervised);
                hebbian::raised_cosine2(
                    rec,
                    &b.tmp_nc,
                    &b.row_vec,
                    &b.wss,
                    n,
                    c,
                    !final_layer,
                    &b.u,
                    &b.proj,
                )?;
                let kind = match self.config.preset {
                    Preset::LaganiKwta { k } => Competition::Kwta {
                        k: to_u32("k-WTA", "k", k)?,
                    },
                    Preset::LaganiSoftWtaExp { temperature } => Competition::SoftExp {
                        temperature: temperature as f32,
                    },
                    Preset::LaganiSoftWtaPow { power } => Competition::SoftPow {
                        power: power as f32,
                    },
                    _ => Competition::Teacher,
                };
                hebbian::competition(rec, kind, &b.u, teacher, n, c, &b.z, &b.g)?;
                self.wta_reduction(rec, x, n)?;
            }
            Preset::LaganiIca | Preset::LaganiHica | Preset::LaganiIcaNrm { .. } => {
                project(rec, w, &b.u)?;
                if let Preset::LaganiIcaNrm {
                    bn_momentum,
                    bn_eps,
                } = self.config.preset
                {
                    self.variance_adapt(rec, n, bn_momentum, bn_eps, &b.y)?;
                } else {
                    hebbian::competition(rec, Competition::Tanh, &b.u, None, n, c, &b.y, &b.g)?;
                }
                // M = (1/N)·YᵀS (C x C), HICA keeps its lower triangle; P = M·W.
                let hica = matches!(self.config.preset, Preset::LaganiHica);
                let inv_n = 1.0 / n as f32;
                if naive {
                    let kind = NaiveTerms::Mixing { lower: hica };
                    let (chunk, terms) = (b.chunk, &b.terms);
                    hebbian::naive_update(
                        rec, kind, x, w, &b.y, &b.u, n, c, d, inv_n, chunk, terms, &b.tmp_cd,
                    )?;
                } else {
                    let mixing = Gemm::new(c, c, n)
                        .shaped()
                        .trans(true, false)
                        .scale(inv_n, 0.0);
                    gemm::gemm(rec, &mixing, &b.y, &b.u, &b.cc)?;
                    let m = if hica {
                        hebbian::tril_scale(rec, &b.cc, c, 1.0, &b.cc2)?;
                        &b.cc2
                    } else {
                        &b.cc
                    };
                    gemm::gemm(rec, &Gemm::new(c, d, c).shaped(), m, w, &b.tmp_cd)?;
                }
                if matches!(self.config.preset, Preset::LaganiIcaNrm { .. }) {
                    hebbian::ica_nrm_update(rec, &b.tmp_cd, w, c, d, &b.dw)?;
                } else {
                    elementwise::copy(rec, w, &b.dw)?;
                    elementwise::axpy(rec, -1.0, &b.tmp_cd, &b.dw)?;
                }
            }
            Preset::HebbdemoSoftWta {
                w_nrm, activation, ..
            }
            | Preset::HebbdemoHpca { w_nrm, activation } => {
                let weights = if w_nrm {
                    reduce::row_reduce(rec, ReduceOp::SumSquares, w, c, d, &b.wss)?;
                    hebbian::scale_rows(
                        rec,
                        RowFactor::InverseSqrtGuarded,
                        w,
                        &b.wss,
                        c,
                        d,
                        1.0,
                        &b.tmp_cd,
                    )?;
                    &b.tmp_cd
                } else {
                    w
                };
                let act = match activation {
                    DemoActivation::Identity => Competition::Identity,
                    DemoActivation::Relu => Competition::ReluOnly,
                };
                if let Preset::HebbdemoSoftWta { t_invert, .. } = self.config.preset {
                    // The softmax reads Y, so the activation runs on its own.
                    project(rec, weights, &b.u)?;
                    hebbian::competition(rec, act, &b.u, None, n, c, &b.y, &b.g)?;
                    hebbian::competition(
                        rec,
                        Competition::Softmax {
                            t_invert: t_invert as f32,
                        },
                        &b.y,
                        None,
                        n,
                        c,
                        &b.z,
                        &b.g,
                    )?;
                    self.wta_reduction(rec, x, n)?;
                } else {
                    wrote_u_y =
                        self.project_and_compete(rec, x, n, weights, None, act, None, false)?;
                    left = self.sanger(rec, x, n, 1.0 / n as f32)?;
                }
            }
            Preset::SofthebbSoftkrotov {
                t_invert,
                pre_triangle: true,
            } => {
                // U ← Triangle₁(P·Wᵀ) feeds the competition and c = Σ_n Y ⊙ U (no fused
                // projection: the triangle needs each row's mean first).
                let kind = Competition::SoftKrotov {
                    t_invert: t_invert as f32,
                };
                project(rec, w, &b.tmp_nc)?;
                let triangle = Competition::Triangle { power: 1.0 };
                hebbian::competition(rec, triangle, &b.tmp_nc, None, n, c, &b.u, &b.g)?;
                hebbian::competition(rec, kind, &b.u, None, n, c, &b.y, &b.g)?;
                reduce::col_dot(rec, &b.g, &b.u, n, c, &b.col_a)?;
                left = self.decay_normalised(rec, x, n, MaxDivisor::Plus(1e-30))?;
            }
            Preset::SofthebbSoftkrotov { t_invert, .. } | Preset::SofthebbSoft { t_invert, .. } => {
                let bias = matches!(self.config.preset, Preset::SofthebbSoft { bias: true, .. });
                let kind = if matches!(self.config.preset, Preset::SofthebbSoftkrotov { .. }) {
                    Competition::SoftKrotov {
                        t_invert: t_invert as f32,
                    }
                } else {
                    Competition::Softmax {
                        t_invert: t_invert as f32,
                    }
                };
                let b_in = bias.then_some(&self.bias);
                wrote_u_y = self.project_and_compete(rec, x, n, w, b_in, kind, None, !naive)?;
                left = self.decay_normalised(rec, x, n, MaxDivisor::Plus(1e-30))?;
                if bias {
                    // Σ_n Y (G = Y for softmax, and only G is written when fused).
                    reduce::col_reduce(rec, ReduceOp::Sum, &b.g, n, c, &b.col_a)?;
                    hebbian::softhebb_bias_raw(
                        rec,
                        &b.col_a,
                        &self.bias,
                        n,
                        c,
                        t_invert as f32,
                        &b.db_raw,
                    )?;
                    reduce::global_reduce(rec, ReduceOp::AbsMax, &b.db_raw, &b.max1)?;
                    hebbian::divide_by_max(
                        rec,
                        &b.db_raw,
                        &b.max1,
                        c,
                        MaxDivisor::Plus(1e-30),
                        &b.db,
                    )?;
                }
            }
            Preset::SofthebbHard => {
                let hard = Competition::Hard;
                wrote_u_y = self.project_and_compete(rec, x, n, w, None, hard, None, !naive)?;
                left = self.decay_normalised(rec, x, n, MaxDivisor::Plus(1e-30))?;
            }
            Preset::BcmCurti {
                activation,
                gamma,
                theta_eps,
                ..
            } => {
                let m = self.lateral.as_ref().expect("built with the layer");
                project(rec, w, &b.tmp_nc)?;
                let lateral = Gemm::new(n, c, c).shaped().trans(false, true);
                if naive {
                    gemm::gemm_naive(rec, &lateral, &b.tmp_nc, m, &b.u)?;
                } else {
                    gemm::gemm(rec, &lateral, &b.tmp_nc, m, &b.u)?;
                }
                let act = match activation {
                    BcmActivation::Logistic => Competition::Logistic,
                    BcmActivation::Relu => Competition::ReluOnly,
                    BcmActivation::Linear => Competition::Identity,
                };
                hebbian::competition(rec, act, &b.u, None, n, c, &b.y, &b.g)?;
                // θ_b = (1/B)·Σ_b y²; θ_ma ← γ·θ_ma + (1 − γ)·θ_b; Φ uses θ_b.
                reduce::col_reduce(rec, ReduceOp::SumSquares, &b.y, n, c, &b.col_a)?;
                elementwise::scale(rec, &self.theta, gamma as f32)?;
                elementwise::axpy(
                    rec,
                    ((1.0 - gamma) / n as f64) as f32,
                    &b.col_a,
                    &self.theta,
                )?;
                hebbian::bcm_phi(rec, &b.y, &b.col_a, n, c, theta_eps as f32, &b.q)?;
                let inv_b = 1.0 / n as f32;
                if naive {
                    let (chunk, terms) = (b.chunk, &b.terms);
                    hebbian::naive_update(
                        rec,
                        NaiveTerms::Hebb,
                        x,
                        w,
                        &b.q,
                        &b.q,
                        n,
                        c,
                        d,
                        inv_b,
                        chunk,
                        terms,
                        &b.dw,
                    )?;
                } else {
                    let hebb = Gemm::new(c, d, n)
                        .shaped()
                        .trans(true, false)
                        .scale(inv_b, 0.0);
                    left = self.update_gemm(rec, &hebb, &b.q, x)?;
                }
            }
            Preset::KrotovHopfield { p, k, delta, prec } => {
                hebbian::signed_pow(rec, w, c * d, (p - 1.0) as f32, &b.tmp_cd)?;
                let kind = Competition::Krotov {
                    k: to_u32("Krotov", "k", k)?,
                    delta: delta as f32,
                };
                let currents = &b.tmp_cd;
                wrote_u_y =
                    self.project_and_compete(rec, x, n, currents, None, kind, None, !naive)?;
                left = self.decay_normalised(rec, x, n, MaxDivisor::AtLeast(prec as f32))?;
            }
        }
        self.apply_optimizer(rec, left)?;
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
        self.steps_done += 1;
        self.wrote_u_y = wrote_u_y;
        self.wrote_dw = left == UpdateLeft::Delta || self.keep_intermediates;
        Ok(())
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
        if !self.fused_update || adaptive {
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

    /// U = X·Wᵀ (+ bias), then `kind` into Y and G: one fused kernel where this layer has a
    /// plan and the kernel computes `kind`, else the GEMM (naive on the naive path) and the
    /// competition kernel. With `col_sums`, also forms colsum(G ⊙ U) in `col_a` (the decay
    /// factor of `decay_normalised`). Returns whether U and Y were written.
    #[allow(clippy::too_many_arguments)]
    fn project_and_compete(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        weights: &Tensor,
        bias: Option<&Tensor>,
        kind: Competition,
        teacher: Option<&Tensor>,
        col_sums: bool,
    ) -> Result<bool> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        if let Some(plan) = self.projection.filter(|_| fused::supports(kind)) {
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
        let shape = Gemm::new(n, c, d).shaped().trans(false, true);
        let target = if bias.is_some() { &b.tmp_nc } else { &b.u };
        if self.path == UpdatePath::Naive {
            gemm::gemm_naive(rec, &shape, x, weights, target)?;
        } else {
            gemm::gemm(rec, &shape, x, weights, target)?;
        }
        if let Some(bias) = bias {
            hebbian::add_bias(rec, &b.tmp_nc, bias, n, c, &b.u)?;
        }
        hebbian::competition(rec, kind, &b.u, teacher, n, c, &b.y, &b.g)?;
        if col_sums {
            reduce::col_dot(rec, &b.g, &b.u, n, c, &b.col_a)?;
        }
        Ok(true)
    }

    /// Variance adaptation of S = `u` (§1.1): updates the running statistics, then writes
    /// tanh((S − rm)/sd + rm)·sd to `out`.
    fn variance_adapt(
        &self,
        rec: &mut Recorder<'_>,
        n: usize,
        momentum: f64,
        eps: f64,
        out: &Tensor,
    ) -> Result<()> {
        let (c, b) = (self.c, &self.bufs);
        let (mean, var) = (&self.bn_mean, &self.bn_var);
        hebbian::va_stats(rec, &b.u, n, c, momentum as f32, mean, var)?;
        hebbian::va_apply(rec, &b.u, mean, var, n, c, eps as f32, out)
    }

    /// ΔW = s·GᵀX − s·tril(GᵀG)·W with G in `g`. The fused update computes the decay product
    /// first, so the s·GᵀX GEMM adds it and steps W in its epilogue.
    fn sanger(&self, rec: &mut Recorder<'_>, x: &Tensor, n: usize, s: f32) -> Result<UpdateLeft> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        if self.path == UpdatePath::Naive {
            let (chunk, terms) = (b.chunk, &b.terms);
            hebbian::naive_update(
                rec,
                NaiveTerms::Sanger,
                x,
                &self.w,
                &b.g,
                &b.g,
                n,
                c,
                d,
                s,
                chunk,
                terms,
                &b.dw,
            )?;
            return Ok(UpdateLeft::Delta);
        }
        let gram = Gemm::new(c, c, n).shaped().trans(true, false);
        gemm::gemm(rec, &gram, &b.g, &b.g, &b.cc)?;
        hebbian::tril_scale(rec, &b.cc, c, -s, &b.cc2)?;
        if self.fused_update {
            let decay = Gemm::new(c, d, c).shaped();
            gemm::gemm(rec, &decay, &b.cc2, &self.w, &b.dw)?;
            let hebb = Gemm::new(c, d, n).shaped().trans(true, false).scale(s, 1.0);
            return self.update_gemm(rec, &hebb, &b.g, x);
        }
        let hebb = Gemm::new(c, d, n).shaped().trans(true, false).scale(s, 0.0);
        gemm::gemm(rec, &hebb, &b.g, x, &b.dw)?;
        let decay = Gemm::new(c, d, c).shaped().scale(1.0, 1.0);
        gemm::gemm(rec, &decay, &b.cc2, &self.w, &b.dw)?;
        Ok(UpdateLeft::Delta)
    }

    /// ΔW = diag(1/guard(colsum|G|))·[(G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W] with G in `g`.
    fn wta_reduction(&self, rec: &mut Recorder<'_>, x: &Tensor, n: usize) -> Result<()> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        hebbian::square_signed(rec, &b.g, n * c, &b.q)?;
        reduce::col_reduce(rec, ReduceOp::SumAbs, &b.g, n, c, &b.col_a)?;
        if self.path == UpdatePath::Naive {
            let (chunk, terms) = (b.chunk, &b.terms);
            hebbian::naive_update(
                rec,
                NaiveTerms::Outer,
                x,
                &self.w,
                &b.q,
                &b.q,
                n,
                c,
                d,
                1.0,
                chunk,
                terms,
                &b.tmp_cd,
            )?;
        } else if self.fused_update {
            // (G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W, the decay applied in the GEMM's epilogue.
            reduce::col_reduce(rec, ReduceOp::Sum, &b.q, n, c, &b.col_b)?;
            let hebb = Gemm::new(c, d, n).shaped().trans(true, false);
            let epilogue = UpdateEpilogue::Decay {
                row_decay: &b.col_b,
                w: &self.w,
                abs_max: None,
            };
            gemm::gemm_update(rec, &hebb, &b.q, x, &b.tmp_cd, &epilogue)?;
        } else {
            reduce::col_reduce(rec, ReduceOp::Sum, &b.q, n, c, &b.col_b)?;
            let (factor, decay) = (RowFactor::Value, &b.col_b);
            hebbian::scale_rows(rec, factor, &self.w, decay, c, d, -1.0, &b.tmp_cd)?;
            let hebb = Gemm::new(c, d, n)
                .shaped()
                .trans(true, false)
                .scale(1.0, 1.0);
            gemm::gemm(rec, &hebb, &b.q, x, &b.tmp_cd)?;
        }
        let factor = RowFactor::InverseGuarded;
        hebbian::scale_rows(rec, factor, &b.tmp_cd, &b.col_a, c, d, 1.0, &b.dw)
    }

    /// R = YᵀX − diag(colsum(Y⊙U))·W with Y in `g`, then ΔW = R / divisor(max|R|). On the
    /// fused path `col_a` already holds colsum(Y⊙U) (`project_and_compete`). The fused update
    /// forms R and max|R| in the GEMM's epilogue and leaves the division to the optimizer.
    fn decay_normalised(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        divisor: MaxDivisor,
    ) -> Result<UpdateLeft> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        if self.path == UpdatePath::Naive {
            let (chunk, terms) = (b.chunk, &b.terms);
            hebbian::naive_update(
                rec,
                NaiveTerms::Decay,
                x,
                &self.w,
                &b.g,
                &b.u,
                n,
                c,
                d,
                1.0,
                chunk,
                terms,
                &b.tmp_cd,
            )?;
        } else if self.fused_update {
            let hebb = Gemm::new(c, d, n).shaped().trans(true, false);
            let epilogue = UpdateEpilogue::Decay {
                row_decay: &b.col_a,
                w: &self.w,
                abs_max: Some(&b.r_max),
            };
            gemm::gemm_update(rec, &hebb, &b.g, x, &b.tmp_cd, &epilogue)?;
            return Ok(UpdateLeft::Normalise(divisor));
        } else {
            let factor = RowFactor::Value;
            hebbian::scale_rows(rec, factor, &self.w, &b.col_a, c, d, -1.0, &b.tmp_cd)?;
            let hebb = Gemm::new(c, d, n)
                .shaped()
                .trans(true, false)
                .scale(1.0, 1.0);
            gemm::gemm(rec, &hebb, &b.g, x, &b.tmp_cd)?;
        }
        reduce::global_reduce(rec, ReduceOp::AbsMax, &b.tmp_cd, &b.max1)?;
        hebbian::divide_by_max(rec, &b.tmp_cd, &b.max1, c * d, divisor, &b.dw)?;
        Ok(UpdateLeft::Delta)
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
        hebbian::optimizer_step(
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
