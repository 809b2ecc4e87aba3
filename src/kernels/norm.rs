//! Launcher for `shaders/norm.wgsl`: batch normalisation (training and eval), with or without
//! affine parameters γ, β, and Lagani's variance-preserving modified BN.
//! Bindings: 0 uniform NormParams, 1 x (B, C, H, W), 2 running mean (C), 3 running variance
//! (C), 4 this pass's statistics (2·C), 5 out (B, C, H, W), 9 γ then β (2·C); the backward
//! pass: 6 dy (B, C, H, W), 7 its per-channel means (2·C), 8 dx (B, C, H, W), 10 ∂L/∂γ then
//! ∂L/∂β (2·C); 11 the chunked walks' partial results (C, chunks, 2), where a channel is walked
//! in chunks (`StatisticsChunks`).

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{
    NORM_WGSL, bind_group, check_grid, check_loop_budget, distinct_outputs, need, record_dispatch,
    to_u32,
};

/// Mirrors `NormParams` in norm.wgsl (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct NormParams {
    pub batch: u32,
    pub channels: u32,
    pub plane: u32,
    pub flags: u32,
    pub momentum: f32,
    pub eps: f32,
    /// Chunks per channel of a chunked walk (flags bit 4), and values per chunk.
    pub chunks: u32,
    pub chunk: u32,
}

/// A batch-norm pass over `batch` x `channels` planes of `plane` = H·W elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
    /// Batch statistics (and update the running ones) rather than the running statistics.
    pub training: bool,
    /// Lagani's modified BN: rescale by sqrt((rv_c + ε)/(mean(rv) + ε)).
    pub modified: bool,
    pub momentum: f32,
    pub eps: f32,
}

impl BatchNorm {
    /// The uniform of this pass; `kernel` names the launcher in errors.
    fn params(&self, kernel: &str) -> Result<NormParams> {
        let u = |what: &str, v: usize| to_u32(kernel, what, v);
        Ok(NormParams {
            batch: u("batch", self.batch)?,
            channels: u("channels", self.channels)?,
            plane: u("H·W", self.plane)?,
            flags: self.training as u32 | (self.modified as u32) << 1,
            momentum: self.momentum,
            eps: self.eps,
            ..Default::default()
        })
    }
}

/// `NormParams::flags` bit 3: the pass has affine parameters (binding 9).
const AFFINE: u32 = 8;

/// `NormParams::flags` bit 4: the per-channel statistics walk in chunks (binding 11).
const CHUNKED: u32 = 16;

/// How the per-channel statistics walk a channel's B·H·W values in chunks: `chunks` runs of
/// `chunk` values, one invocation each, whose partial results one invocation per channel then
/// combines. Chunks are taken where one invocation may not walk a whole channel (a driver's
/// loop budget, `GpuContext::loop_iteration_limit`) and where the device policy asks for them
/// (`DevicePolicy::statistics_chunk`: a GPU would otherwise run one invocation per channel).
/// Elsewhere one invocation walks the whole channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatisticsChunks {
    pub chunk: usize,
    pub chunks: usize,
}

impl StatisticsChunks {
    /// The chunks of `g`'s walks on this context, or None where one invocation walks a whole
    /// channel (`Self::choose` with this context's loop budget and policy).
    pub fn for_pass(ctx: &GpuContext, g: &BatchNorm) -> Option<Self> {
        Self::choose(
            g.batch * g.plane,
            g.channels,
            ctx.loop_iteration_limit(),
            ctx.policy.statistics_chunk,
        )
    }

    /// The chunks for channels of `count` = B·H·W values, `channels` of them, under a loop
    /// budget `limit` (None: no known budget) and a policy chunk. The loop budget asks for
    /// chunks where the forward's two passes (2·B·H·W iterations) or the backward's one do not
    /// fit it; its chunk is a quarter of the budget, so a chunk's two passes take half. The
    /// policy asks for them where a channel holds more than two of its chunks. Where both ask,
    /// the smaller chunk is taken; then, under a budget, the chunk grows until the combining
    /// walk (one iteration per chunk) takes at most a quarter of the budget too. A channel so
    /// large that a chunk's walk then passes the budget (beyond about budget²/8 values) is
    /// refused by the launcher, which names the budget.
    pub fn choose(
        count: usize,
        channels: usize,
        limit: Option<u64>,
        policy_chunk: Option<usize>,
    ) -> Option<Self> {
        let quarter = limit.map(|l| (l / 4).max(1) as usize);
        // The walks' iterations plus the modified BN's mean of the running variances (C/256
        // loads and 8 tree steps, in bn_backward_affine).
        let walk = 2 * count as u64 + channels.div_ceil(256) as u64 + 8;
        let by_budget = quarter.filter(|_| limit.is_some_and(|limit| walk > limit));
        let by_policy = policy_chunk.filter(|&chunk| count > 2 * chunk.max(1));
        let chunk = match (by_budget, by_policy) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        }
        .max(1);
        let chunk = quarter.map_or(chunk, |q| chunk.max(count.div_ceil(q)));
        Some(Self {
            chunk,
            chunks: count.div_ceil(chunk),
        })
    }

    /// Where `g`'s pass walks its channels (`walks`) and this context needs chunks: sets the
    /// uniform's chunk fields and flag and records `entry`, which writes each chunk's partial
    /// results from `inputs`. Returns the buffer the combining entries bind at 11: the
    /// context's workspace, which they read before any other launcher does, or a spare where
    /// there are no chunks (they declare the binding but never read it).
    fn record(
        rec: &mut Recorder<'_>,
        g: &BatchNorm,
        walks: bool,
        params: &mut NormParams,
        entry: &'static str,
        inputs: &[(u32, &Tensor)],
    ) -> Result<std::sync::Arc<Tensor>> {
        let ctx = rec.ctx;
        let Some(k) = Self::for_pass(ctx, g).filter(|_| walks) else {
            return ctx.spare();
        };
        let u = |what: &str, v: usize| to_u32(entry, what, v);
        params.flags |= CHUNKED;
        params.chunks = u("chunks per channel", k.chunks)?;
        params.chunk = u("values per chunk", k.chunk)?;
        // Combining walks the chunks once per channel (after the modified BN's mean).
        let combine = k.chunks as u64 + g.channels.div_ceil(256) as u64 + 8;
        let work = format!(
            "combining {} chunks of {} values per channel",
            k.chunks, k.chunk
        );
        check_loop_budget(ctx, entry, combine, &work)?;
        // Each chunk's invocation walks its values twice (forward) or once (backward).
        let walk = format!("walking chunks of {} values", k.chunk);
        check_loop_budget(ctx, entry, 2 * k.chunk as u64, &walk)?;
        let partials = ctx.workspace(2 * g.channels * k.chunks)?;
        let mut bindings = inputs.to_vec();
        bindings.push((11, &partials));
        let groups = grid_1d(ctx, u("chunks / 64", (g.channels * k.chunks).div_ceil(64))?);
        record_dispatch(rec, &NORM_WGSL, entry, params, &bindings, groups)?;
        Ok(partials)
    }
}

/// A batch norm's affine parameters in the backward pass: γ then β (2·C, read), and where
/// ∂L/∂γ then ∂L/∂β go (2·C, written).
#[derive(Clone, Copy)]
pub struct AffineGrad<'a> {
    pub params: &'a Tensor,
    pub grad: &'a Tensor,
}

/// Records out = BN(x), updating the running statistics when training; `affine` (γ then β,
/// 2·C) scales and shifts x̂ when given.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    rec: &mut Recorder<'_>,
    g: &BatchNorm,
    x: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    stats: &Tensor,
    affine: Option<&Tensor>,
    out: &Tensor,
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    let len = g.batch * g.channels * g.plane;
    let mut all = vec![
        (x, len, "x"),
        (running_mean, g.channels, "running mean"),
        (running_var, g.channels, "running variance"),
        (stats, 2 * g.channels, "batch statistics"),
        (out, len, "output"),
    ];
    all.extend(affine.map(|a| (a, 2 * g.channels, "affine parameters")));
    for (i, (t, n, role)) in all.iter().enumerate() {
        t.expect_dtype(DType::F32, role)?;
        t.expect_len(*n, role)?;
        if all[..i].iter().any(|(u, _, _)| u.buffer == t.buffer) {
            return Err(HebbError::Launch {
                kernel: "batch_norm".into(),
                message: format!(
                    "{role} ({}) is bound twice; tensors must be distinct",
                    t.label
                ),
            });
        }
    }
    if g.channels == 0 || len == 0 {
        return Err(HebbError::Launch {
            kernel: "batch_norm".into(),
            message: "empty input".into(),
        });
    }
    let u = |what: &str, v: usize| to_u32("batch_norm", what, v);
    let mut params = g.params("batch_norm")?;
    let grouped = g.training && rec.group().is_some();
    if grouped {
        params.flags |= LOCAL_STATISTICS;
    }
    if affine.is_some() {
        params.flags |= AFFINE;
    }
    // bn_stats: one invocation per channel walks its values twice, or combines the chunks
    // that bn_chunk_moments walked.
    let partials = StatisticsChunks::record(
        rec,
        g,
        g.training,
        &mut params,
        "bn_chunk_moments",
        &[(1, x)],
    )?;
    let uniform = rec.uniform(&params);
    let stats_pipeline = ctx
        .kernels
        .get(&ctx.device, ctx.features, &NORM_WGSL, "bn_stats", &[])?;
    let groups = grid_1d(ctx, u("channels / 64", g.channels.div_ceil(64))?);
    check_grid(ctx, "bn_stats", groups)?;
    let bg = bind_group(
        ctx,
        &stats_pipeline,
        &[
            (0, uniform.as_entire_binding()),
            (1, x.binding(ctx)?),
            (2, running_mean.binding(ctx)?),
            (3, running_var.binding(ctx)?),
            (4, stats.binding(ctx)?),
            (11, partials.binding(ctx)?),
        ],
    );
    rec.dispatch(&stats_pipeline, &bg, groups);
    if grouped {
        synchronise_statistics(rec, g, stats, running_mean, running_var)?;
    }
    let apply = ctx
        .kernels
        .get(&ctx.device, ctx.features, &NORM_WGSL, "bn_apply", &[])?;
    let groups = grid_1d(ctx, u("elements / 256", len.div_ceil(256))?);
    check_grid(ctx, "bn_apply", groups)?;
    let bg = bind_group(
        ctx,
        &apply,
        &[
            (0, uniform.as_entire_binding()),
            (1, x.binding(ctx)?),
            (3, running_var.binding(ctx)?),
            (4, stats.binding(ctx)?),
            (5, out.binding(ctx)?),
            // Without affine parameters the kernel never reads binding 9: x stands in.
            (9, affine.unwrap_or(x).binding(ctx)?),
        ],
    );
    rec.dispatch(&apply, &bg, groups);
    Ok(())
}

/// `NormParams::flags` bit 2: `bn_stats` writes this rank's statistics only and leaves the
/// running ones to `synchronise_statistics`.
const LOCAL_STATISTICS: u32 = 4;

/// Synchronised batch norm: replaces this rank's per-channel mean and biased variance in
/// `stats` with those of the process group's whole batch, and takes the running statistics'
/// step with them (momentum m: r ← (1 − m)·r + m·batch value, the unbiased variance), as
/// `bn_stats` does for one process. The ranks' count n, Σx = n·μ and Σx² = n·(σ² + μ²) are
/// summed in float64, so the cancellation in σ² = Σx²/N − μ² costs nothing at f32 precision.
fn synchronise_statistics(
    rec: &mut Recorder<'_>,
    g: &BatchNorm,
    stats: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
) -> Result<()> {
    let (c, local) = (g.channels, (g.batch * g.plane) as f64);
    let m = g.momentum;
    rec.host_sync(&[stats, running_mean, running_var], |v, group| {
        let mut sums = vec![0.0f64; 2 * c + 1];
        for k in 0..c {
            let (mu, var) = (v[0][k] as f64, v[0][c + k] as f64);
            sums[k] = local * mu;
            sums[c + k] = local * (var + mu * mu);
        }
        sums[2 * c] = local;
        group.all_reduce_sum_f64(&mut sums);
        let count = sums[2 * c];
        for k in 0..c {
            let mu = sums[k] / count;
            let var = (sums[c + k] / count - mu * mu).max(0.0);
            let unbiased = var * count / (count.max(2.0) - 1.0);
            v[0][k] = mu as f32;
            v[0][c + k] = var as f32;
            v[1][k] = (1.0 - m) * v[1][k] + m * mu as f32;
            v[2][k] = (1.0 - m) * v[2][k] + m * unbiased as f32;
        }
        Ok(())
    })
}

/// Records dx = ∂L/∂x of the `batch_norm` pass `g` that read x and wrote `stats`, from
/// dy = ∂L/∂out; `running_var` as that pass left it (the modified BN's factor reads it).
/// `grad_stats` (2·C) receives the per-channel means of dy and dy·x̂ the formula needs. With
/// `affine` (the pass's γ, β) dx carries γ, and ∂L/∂γ, ∂L/∂β go to `affine.grad`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    rec: &mut Recorder<'_>,
    g: &BatchNorm,
    x: &Tensor,
    running_var: &Tensor,
    stats: &Tensor,
    affine: Option<AffineGrad<'_>>,
    dy: &Tensor,
    grad_stats: &Tensor,
    dx: &Tensor,
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    let len = g.batch * g.channels * g.plane;
    if g.channels == 0 || len == 0 {
        return Err(HebbError::Launch {
            kernel: "batch_norm_backward".into(),
            message: "empty input".into(),
        });
    }
    for (t, n, role) in [
        (x, len, "x"),
        (running_var, g.channels, "running variance"),
        (stats, 2 * g.channels, "batch statistics"),
        (dy, len, "output gradient"),
        (grad_stats, 2 * g.channels, "gradient statistics"),
        (dx, len, "input gradient"),
    ] {
        need(t, n, role)?;
    }
    if let Some(a) = affine {
        need(a.params, 2 * g.channels, "affine parameters")?;
        need(a.grad, 2 * g.channels, "affine gradient")?;
        distinct_outputs(
            "batch_norm_backward",
            &[x, running_var, stats, dy, a.params],
            &[grad_stats, dx, a.grad],
        )?;
    } else {
        distinct_outputs(
            "batch_norm_backward",
            &[x, running_var, stats, dy],
            &[grad_stats, dx],
        )?;
    }
    let u = |what: &str, v: usize| to_u32("batch_norm_backward", what, v);
    let mut params = g.params("batch_norm_backward")?;
    if affine.is_some() {
        params.flags |= AFFINE;
    }
    // bn_backward_stats and bn_backward_affine: one invocation per channel walks its values
    // once, or sums the chunks that bn_chunk_dy_sums walked.
    let partials = StatisticsChunks::record(
        rec,
        g,
        g.training || affine.is_some(),
        &mut params,
        "bn_chunk_dy_sums",
        &[(1, x), (4, stats), (6, dy)],
    )?;
    let groups = grid_1d(ctx, u("channels / 64", g.channels.div_ceil(64))?);
    record_dispatch(
        rec,
        &NORM_WGSL,
        "bn_backward_stats",
        &params,
        &[
            (1, x),
            (4, stats),
            (6, dy),
            (7, grad_stats),
            (11, &partials),
        ],
        groups,
    )?;
    if let Some(a) = affine {
        let groups = grid_1d(ctx, u("channels / 256", g.channels.div_ceil(256))?);
        record_dispatch(
            rec,
            &NORM_WGSL,
            "bn_backward_affine",
            &params,
            &[
                (1, x),
                (3, running_var),
                (4, stats),
                (6, dy),
                (10, a.grad),
                (11, &partials),
            ],
            groups,
        )?;
    }
    let groups = grid_1d(ctx, u("elements / 256", len.div_ceil(256))?);
    record_dispatch(
        rec,
        &NORM_WGSL,
        "bn_backward_apply",
        &params,
        &[
            (1, x),
            (3, running_var),
            (4, stats),
            (6, dy),
            (7, grad_stats),
            (8, dx),
            // Without affine parameters the kernel never reads binding 9: x stands in.
            (9, affine.map_or(x, |a| a.params)),
        ],
        groups,
    )
}

#[cfg(test)]
mod tests {
    use super::StatisticsChunks;

    #[test]
    fn chunks_follow_the_policy_and_fit_a_loop_budget() {
        // No budget, no policy: one walk per channel.
        assert_eq!(StatisticsChunks::choose(1 << 20, 3, None, None), None);
        // The GPU policy alone: chunks of 256 from three chunks' worth on.
        assert_eq!(StatisticsChunks::choose(512, 3, None, Some(256)), None);
        let k = StatisticsChunks::choose(7840, 1, None, Some(256)).unwrap();
        assert_eq!((k.chunk, k.chunks), (256, 31));
        // llvmpipe's budget alone: a quarter of it per chunk once 2·count passes it.
        let limit = 65_535u64;
        assert_eq!(StatisticsChunks::choose(30_000, 1, Some(limit), None), None);
        let k = StatisticsChunks::choose(100_000, 1, Some(limit), None).unwrap();
        assert_eq!((k.chunk, k.chunks), (16_383, 7));
        // Both: the policy's smaller chunk, while the combining walk fits the budget.
        let k = StatisticsChunks::choose(100_000, 1, Some(limit), Some(256)).unwrap();
        assert_eq!((k.chunk, k.chunks), (256, 391));
        // A channel of 20 M values: 256-value chunks would give 78,125 partials, more than the
        // budget lets one invocation combine; the chunk grows so both walks fit.
        let count = 20_000_000;
        let k = StatisticsChunks::choose(count, 1, Some(limit), Some(256)).unwrap();
        assert!(
            k.chunks as u64 <= limit / 4 && k.chunk as u64 <= limit / 4,
            "{k:?}"
        );
        assert!(k.chunk * k.chunks >= count && k.chunk * (k.chunks - 1) < count);
        // 600 M values: the combining walk still fits, but a chunk's two passes would not; the
        // launcher's walk check (in `record`) refuses such a pass rather than truncate it.
        let k = StatisticsChunks::choose(600_000_000, 1, Some(limit), Some(256)).unwrap();
        assert!(
            k.chunks as u64 <= limit / 4 && 2 * k.chunk as u64 > limit,
            "{k:?}"
        );
    }
}
