//! Launcher for `shaders/projection_competition.wgsl`: U = X·Wᵀ (+ b), the row-wise
//! competition and the partial column sums of G ⊙ U in one pass, so a training step writes G
//! instead of U, Y and G, and never reads U back (shapes and modes in the shader).
//!
//! A workgroup holds whole rows of U in registers, so the kernel applies to layers up to
//! 2048 neurons, and to the competitions that read one row at a time and no teacher-weighted
//! ranking: relu, tanh, logistic, identity, relu only, softmax, SoftKrotov, hard WTA, Krotov
//! and triangle. `ProjectionPlan::for_layer` says whether a layer fits; the rules fall back to
//! the separate GEMM and competition kernels where it does not.

use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::hebbian::{Competition, HebbParams, modes};
use crate::kernels::need;
use crate::kernels::{
    PROJECTION_COMPETITION_WGSL, check_loop_budget, record_dispatch_with, to_u32,
};

/// Invocations per workgroup.
const THREADS: u32 = 256;

/// Tile shape of one launch (override constants of the shader): a TX x TY workgroup, RM rows
/// and NQ four-column groups per invocation, BK steps of K per workgroup tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectionPlan {
    pub tx: u32,
    pub ty: u32,
    pub rm: u32,
    pub nq: u32,
    pub bk: u32,
}

impl ProjectionPlan {
    /// The plan for a layer of C neurons with fan-in D on this adapter, or None where the
    /// kernel does not apply: C over 2048 (more than 64 registers of U per invocation), a
    /// workgroup tile over the adapter's workgroup memory, or (llvmpipe) more loop iterations
    /// than the driver runs. The narrowest workgroup row that holds C in at most four
    /// four-column groups per invocation, then as many rows per invocation as 16 vec4
    /// registers allow (at most 4), then the deepest K step (at most 16) that fits.
    pub fn for_layer(ctx: &GpuContext, c: usize, d: usize) -> Option<Self> {
        if c == 0 || c > 2048 {
            return None;
        }
        let (tx, nq) = [8u32, 16, 32, 64]
            .iter()
            .map(|&tx| (tx, c.div_ceil(4 * tx as usize) as u32))
            .find(|&(_, nq)| nq <= 4)
            .unwrap_or((64, c.div_ceil(256) as u32));
        let rm = (16 / nq).min(4);
        let limit = ctx.limits.max_compute_workgroup_storage_size as usize;
        let plan = [16u32, 8, 4, 2, 1]
            .iter()
            .map(|&bk| ProjectionPlan {
                tx,
                ty: THREADS / tx,
                rm,
                nq,
                bk,
            })
            .find(|p| p.workgroup_bytes() <= limit)?;
        let within_loop_limit = ctx
            .loop_iteration_limit()
            .is_none_or(|limit| plan.loop_iterations(d, 0) <= limit / 2);
        within_loop_limit.then_some(plan)
    }

    /// Rows of X (and of U) per workgroup.
    pub fn rows(&self) -> usize {
        (self.ty * self.rm) as usize
    }

    /// Columns held per workgroup row (C rounded up).
    pub fn columns(&self) -> usize {
        (4 * self.tx * self.nq) as usize
    }

    /// Workgroups for N rows: the rows of the partial column sums.
    pub fn blocks(&self, n: usize) -> usize {
        n.div_ceil(self.rows())
    }

    /// Workgroup memory of one launch, in bytes: the X and W tiles, the row reductions
    /// (value and index per row and tx) and the column partials (a vec4 per invocation).
    pub fn workgroup_bytes(&self) -> usize {
        let (bk, rows, cols) = (self.bk as usize, self.rows(), self.columns());
        4 * (bk * rows + bk * cols + 2 * rows * self.tx as usize + 4 * THREADS as usize)
    }

    /// Loop iterations one invocation runs, counting every loop as if none were unrolled
    /// except the innermost four-column one: K steps of tile loads and BK inner steps, then
    /// the epilogue's reductions (`ranks` Krotov passes) and column sums.
    pub fn loop_iterations(&self, d: usize, ranks: u32) -> u64 {
        let (bk, rows, cols) = (self.bk as u64, self.rows() as u64, self.columns() as u64);
        let (rm, nq, tx, ty) = (
            self.rm as u64,
            self.nq as u64,
            self.tx as u64,
            self.ty as u64,
        );
        let threads = THREADS as u64;
        let per_step = 1
            + (rows * bk).div_ceil(threads)
            + (cols * bk).div_ceil(threads)
            + bk * (1 + nq + rm * (1 + nq));
        let steps = (d as u64).div_ceil(bk);
        let epilogue = (4 + ranks as u64) * rm * (nq + tx + 1) + nq * (ty + 1);
        steps * per_step + epilogue
    }

    fn overrides(&self) -> [(&'static str, f64); 5] {
        [
            ("TX", self.tx as f64),
            ("TY", self.ty as f64),
            ("RM", self.rm as f64),
            ("NQ", self.nq as f64),
            ("BK", self.bk as f64),
        ]
    }
}

/// Whether the fused kernel computes this competition (the others rank u ⊙ T or take the
/// raised-cosine similarity as input, and run in hebbian.wgsl).
pub fn supports(kind: Competition) -> bool {
    matches!(
        kind,
        Competition::Relu
            | Competition::Tanh
            | Competition::Softmax { .. }
            | Competition::SoftKrotov { .. }
            | Competition::Hard
            | Competition::Krotov { .. }
            | Competition::Logistic
            | Competition::Identity
            | Competition::ReluOnly
            | Competition::Triangle { .. }
    )
}

/// Where the fused kernel writes. G is always written; U and Y only when given (conformance
/// and inspection; a training step leaves them out), and the partial column sums of G ⊙ U
/// (`plan.blocks(N)` x C, to be summed over rows) only when given.
pub struct ProjectionOutputs<'a> {
    pub g: &'a Tensor,
    pub u: Option<&'a Tensor>,
    pub y: Option<&'a Tensor>,
    pub col_partials: Option<&'a Tensor>,
}

/// U = X·Wᵀ (+ b) over X (N x D) and W (C x D), then `kind` row by row with an optional
/// teacher T (N x C), in one kernel (see `ProjectionOutputs` for what is written).
#[allow(clippy::too_many_arguments)]
pub fn projection_competition(
    rec: &mut Recorder<'_>,
    plan: &ProjectionPlan,
    kind: Competition,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    teacher: Option<&Tensor>,
    (n, c, d): (usize, usize, usize),
    out: &ProjectionOutputs<'_>,
) -> Result<()> {
    const KERNEL: &str = "projection_competition";
    let refuse = |message: String| HebbError::Launch {
        kernel: KERNEL.into(),
        message,
    };
    if !supports(kind) {
        return Err(refuse(format!(
            "{kind:?} is not a competition of the fused kernel (use hebbian::competition)"
        )));
    }
    if n == 0 || c == 0 || d == 0 {
        return Err(refuse(format!("empty shape N x C x D = {n} x {c} x {d}")));
    }
    if plan.columns() < c {
        return Err(refuse(format!(
            "the plan holds {} columns per row, fewer than C = {c}",
            plan.columns()
        )));
    }
    let (mode, k, a) = kind.mode();
    if mode == modes::KROTOV && (k == 0 || k as usize > c) {
        return Err(refuse(format!(
            "k = {k} must be in 1..={c} (the number of neurons)"
        )));
    }
    need(x, n * d, "X")?;
    need(w, c * d, "W")?;
    if let Some(b) = bias {
        need(b, c, "bias")?;
    }
    if let Some(t) = teacher {
        need(t, n * c, "teacher")?;
    }
    need(out.g, n * c, "G")?;
    for t in [out.u, out.y].into_iter().flatten() {
        need(t, n * c, "U / Y")?;
    }
    let blocks = plan.blocks(n);
    if let Some(s) = out.col_partials {
        need(s, blocks * c, "column partials")?;
    }
    let outputs: Vec<&Tensor> = [Some(out.g), out.u, out.y, out.col_partials]
        .into_iter()
        .flatten()
        .collect();
    for (i, o) in outputs.iter().enumerate() {
        let inputs = [Some(x), Some(w), bias, teacher];
        if inputs.into_iter().flatten().any(|t| t.buffer == o.buffer)
            || outputs[..i].iter().any(|t| t.buffer == o.buffer)
        {
            return Err(refuse(format!(
                "output {} must be a tensor of its own (not an input or another output)",
                o.label
            )));
        }
    }
    let ctx = rec.ctx;
    if plan.workgroup_bytes() > ctx.limits.max_compute_workgroup_storage_size as usize {
        return Err(refuse(format!(
            "the plan needs {} B of workgroup memory; this adapter has {} B",
            plan.workgroup_bytes(),
            ctx.limits.max_compute_workgroup_storage_size
        )));
    }
    let ranks = if mode == modes::KROTOV { k } else { 0 };
    check_loop_budget(
        ctx,
        KERNEL,
        plan.loop_iterations(d, ranks),
        &format!("a {c} x {d} layer ({kind:?})"),
    )?;
    let p = HebbParams {
        n: to_u32(KERNEL, "N", n)?,
        c: to_u32(KERNEL, "C", c)?,
        d: to_u32(KERNEL, "D", d)?,
        mode,
        k,
        flags: teacher.is_some() as u32
            | (bias.is_some() as u32) << 1
            | (out.u.is_some() as u32) << 2
            | (out.y.is_some() as u32) << 3
            | (out.col_partials.is_some() as u32) << 4,
        a,
        ..Default::default()
    };
    // Absent inputs bind X (read-only, never read); absent outputs bind G (never written
    // through that binding: the flags skip every store to it).
    let tensors = [
        (1, x),
        (2, w),
        (3, bias.unwrap_or(x)),
        (4, teacher.unwrap_or(x)),
        (5, out.u.unwrap_or(out.g)),
        (6, out.y.unwrap_or(out.g)),
        (7, out.g),
        (8, out.col_partials.unwrap_or(out.g)),
    ];
    let groups = grid_1d(ctx, to_u32(KERNEL, "workgroups", blocks)?);
    record_dispatch_with(
        rec,
        &PROJECTION_COMPETITION_WGSL,
        KERNEL,
        &plan.overrides(),
        &p,
        &tensors,
        groups,
    )
}
