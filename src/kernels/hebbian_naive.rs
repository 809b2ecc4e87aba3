//! Launcher for `shaders/hebbian_naive.wgsl`: the naive (pre-FastHebb) update that
//! materialises every per-sample term, kept so the benchmarks can show what the matrix
//! formulation buys (`rules::gpu::naive` composes it into the presets' twins).

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{HEBBIAN_NAIVE_WGSL, bind_group, check_grid, distinct_outputs, need, to_u32};

/// Mirrors `NaiveParams` in hebbian_naive.wgsl (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct NaiveParams {
    pub n0: u32,
    pub rows: u32,
    pub c: u32,
    pub d: u32,
    pub mode: u32,
    pub flags: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub s: f32,
    pub _pad2: f32,
    pub _pad3: f32,
    pub _pad4: f32,
}

/// The per-sample update terms of the naive (pre-FastHebb) path, hebbian_naive.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NaiveTerms {
    /// a_ni·x_nd − b_ni·w_id
    Outer,
    /// g_ni·(x_nd − Σ_{k≤i} g_nk·w_kd), g = a
    Sanger,
    /// y_ni·Σ_k s_nk·w_kd (y = a, s = b); `lower`: k ≤ i only
    Mixing { lower: bool },
    /// a_ni·(x_nd − b_ni·w_id)
    Decay,
    /// a_ni·x_nd
    Hebb,
}

/// Rows per chunk so that a chunk's terms stay near `budget` elements.
pub fn naive_chunk_rows(n: usize, c: usize, d: usize, budget: usize) -> usize {
    (budget / (c * d).max(1)).clamp(1, n.max(1))
}

/// out = s·Σ_n terms(n) for X (N x D), W (C x D), coefficients a, b (N x C), materialising the
/// terms of `chunk` rows at a time in `scratch` (chunk·C·D elements).
#[allow(clippy::too_many_arguments)]
pub fn naive_update(
    rec: &mut Recorder<'_>,
    kind: NaiveTerms,
    x: &Tensor,
    w: &Tensor,
    a: &Tensor,
    b: &Tensor,
    n: usize,
    c: usize,
    d: usize,
    s: f32,
    chunk: usize,
    scratch: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    need(x, n * d, "X")?;
    need(w, c * d, "W")?;
    need(a, n * c, "coefficients a")?;
    need(b, n * c, "coefficients b")?;
    need(scratch, chunk * c * d, "naive terms")?;
    need(out, c * d, "ΔW")?;
    distinct_outputs("naive_update", &[x, w, a, b], &[scratch, out])?;
    let mode = match kind {
        NaiveTerms::Outer => 0,
        NaiveTerms::Sanger => 1,
        NaiveTerms::Mixing { lower: false } => 2,
        NaiveTerms::Mixing { lower: true } => 3,
        NaiveTerms::Decay => 4,
        NaiveTerms::Hebb => 5,
    };
    let terms = ctx.kernels.get(
        &ctx.device,
        ctx.features,
        &HEBBIAN_NAIVE_WGSL,
        "naive_terms",
        &[],
    )?;
    let accumulate = ctx.kernels.get(
        &ctx.device,
        ctx.features,
        &HEBBIAN_NAIVE_WGSL,
        "naive_accumulate",
        &[],
    )?;
    let mut n0 = 0;
    while n0 < n {
        let rows = chunk.min(n - n0);
        let params = NaiveParams {
            n0: to_u32("naive_update", "n0", n0)?,
            rows: to_u32("naive_update", "rows", rows)?,
            c: to_u32("naive_update", "C", c)?,
            d: to_u32("naive_update", "D", d)?,
            mode,
            flags: (n0 == 0) as u32,
            s,
            ..Default::default()
        };
        let uniform = rec.uniform(&params);
        let groups = grid_1d(
            ctx,
            to_u32("naive_terms", "workgroups", (rows * c * d).div_ceil(256))?,
        );
        check_grid(ctx, "naive_terms", groups)?;
        let bg = bind_group(
            ctx,
            &terms,
            &[
                (0, uniform.as_entire_binding()),
                (1, x.binding(ctx)?),
                (2, w.binding(ctx)?),
                (3, a.binding(ctx)?),
                (4, b.binding(ctx)?),
                (5, scratch.binding(ctx)?),
            ],
        );
        rec.dispatch(&terms, &bg, groups);
        let groups = grid_1d(
            ctx,
            to_u32("naive_accumulate", "workgroups", (c * d).div_ceil(256))?,
        );
        let bg = bind_group(
            ctx,
            &accumulate,
            &[
                (0, uniform.as_entire_binding()),
                (5, scratch.binding(ctx)?),
                (6, out.binding(ctx)?),
            ],
        );
        rec.dispatch(&accumulate, &bg, groups);
        n0 += rows;
    }
    Ok(())
}
