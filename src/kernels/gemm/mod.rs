//! Launchers for the GEMM kernels: `shaders/gemm.wgsl` (the tiled GEMM with split-K, its
//! reduction, and the naive baseline), `shaders/gemm_subgroup.wgsl` and `shaders/gemm_coop.wgsl`.
//! The three compute the same product with the same bindings, so one launcher records them:
//!   - this file: the parameters, the call descriptor `Gemm` and the launches;
//!   - `tiles.rs`: the kernels' configurations (`GemmKind`, `GemmTiles`) and their limits;
//!   - `select.rs`: the selection policy, which kernel and tiles run a call and how K splits;
//!   - `epilogue.rs`: what an update GEMM applies as it writes C (`shaders/gemm_epilogue.wgsl`).
//!
//! C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] for b < batch, row-major. C is f32; A and
//! B are f32 or f16 (storage only: the tiled and naive kernels widen halves on load and
//! accumulate in f32; the subgroup kernel takes f32 only, so f16 operands run tiled).
//! Bindings (the "function signature" of the kernels):
//!   0 uniform GemmParams
//!   1 a: array<u32>      op(A) is M x K: A stored M x K, or K x M when transposed
//!   2 b: array<u32>      op(B) is K x N: B stored K x N, or N x K when transposed
//!   3 c: array<f32>      M x N with leading dimension ldc (read only when beta != 0)
//!   4 a4, 5 b4           the same buffers as 1 and 2, viewed as vec4 (tiled kernel only)
//!   6 partials           split-K workspace [batch * splits, M, N] (reduce kernel only)

mod epilogue;
mod select;
mod tiles;

pub use epilogue::{UPDATE_STORAGE_BUFFERS, UpdateEpilogue, update_epilogues_available};
pub use tiles::{GemmKind, GemmTiles};

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::error::{HebbError, Result};
use crate::gpu::tuning::{ShapeClass, TunedKernel};
use crate::gpu::{DType, LoggedShape, Recorder, Tensor};
use crate::kernels::{
    GEMM_COOP_WGSL, GEMM_SUBGROUP_WGSL, GEMM_WGSL, bind_group, check_grid, check_loop_budget,
    to_u32,
};

/// Mirrors `GemmParams` in gemm.wgsl field for field (80 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub splits: u32,
    pub stride_a: u32,
    pub stride_b: u32,
    pub stride_c: u32,
    pub k_per_split: u32,
    pub offset_a: u32,
    pub offset_b: u32,
    pub offset_c: u32,
    pub trans: u32,
    pub alpha: f32,
    pub beta: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// How to split K across workgroups for tall-skinny products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitK {
    /// Split when C has too few tiles to fill the device.
    Auto,
    /// Exactly this many splits (1 = no split), capped so no split is empty.
    Fixed(u32),
}

/// One GEMM call. Leading dimensions and batch strides default to the dense layout.
#[derive(Clone, Debug)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub lda: Option<usize>,
    pub ldb: Option<usize>,
    pub ldc: Option<usize>,
    pub stride_a: Option<usize>,
    pub stride_b: Option<usize>,
    pub stride_c: Option<usize>,
    pub offset_a: usize,
    pub offset_b: usize,
    pub offset_c: usize,
    pub split_k: SplitK,
    pub tiles: Option<GemmTiles>,
    /// Without explicit tiles: choose them for this output shape (`GemmTiles::for_shape`)
    /// rather than use the adapter's single default.
    pub shape_chosen: bool,
}

impl Gemm {
    /// C = A * B with A: M x K, B: K x N, alpha = 1, beta = 0.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            batch: 1,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            lda: None,
            ldb: None,
            ldc: None,
            stride_a: None,
            stride_b: None,
            stride_c: None,
            offset_a: 0,
            offset_b: 0,
            offset_c: 0,
            split_k: SplitK::Auto,
            tiles: None,
            shape_chosen: false,
        }
    }

    pub fn trans(mut self, trans_a: bool, trans_b: bool) -> Self {
        self.trans_a = trans_a;
        self.trans_b = trans_b;
        self
    }

    pub fn scale(mut self, alpha: f32, beta: f32) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }

    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    pub fn split_k(mut self, split_k: SplitK) -> Self {
        self.split_k = split_k;
        self
    }

    pub fn tiles(mut self, tiles: GemmTiles) -> Self {
        self.tiles = Some(tiles);
        self
    }

    /// Picks the tiles for this output shape (`GemmTiles::for_shape`) instead of the
    /// adapter's single default, unless `hebb tune` measured a winner for its class.
    pub fn shaped(mut self) -> Self {
        self.shape_chosen = true;
        self
    }

    /// The tuning cache's class of this call.
    pub fn shape_class(&self) -> ShapeClass {
        ShapeClass::new(
            TunedKernel::Gemm,
            (self.trans_a, self.trans_b),
            self.m,
            self.n,
            self.k,
        )
    }

    /// Stored (rows, cols) of A and B.
    pub fn a_dims(&self) -> (usize, usize) {
        if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        }
    }
    pub fn b_dims(&self) -> (usize, usize) {
        if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        }
    }
    pub fn lda(&self) -> usize {
        self.lda.unwrap_or(self.a_dims().1)
    }
    pub fn ldb(&self) -> usize {
        self.ldb.unwrap_or(self.b_dims().1)
    }
    pub fn ldc(&self) -> usize {
        self.ldc.unwrap_or(self.n)
    }
    pub fn stride_a(&self) -> usize {
        self.stride_a.unwrap_or(self.a_dims().0 * self.lda())
    }
    pub fn stride_b(&self) -> usize {
        self.stride_b.unwrap_or(self.b_dims().0 * self.ldb())
    }
    pub fn stride_c(&self) -> usize {
        self.stride_c.unwrap_or(self.m * self.ldc())
    }

    /// Floating-point operations: 2·M·N·K per batch.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }

    /// Minimum bytes moved with f32 operands: read A and B once, write C once (and read it
    /// when beta != 0).
    pub fn bytes(&self) -> f64 {
        self.bytes_stored(DType::F32, DType::F32)
    }

    /// As `bytes`, with A and B stored as `a` and `b`.
    pub fn bytes_stored(&self, a: DType, b: DType) -> f64 {
        let c_passes = if self.beta != 0.0 { 2.0 } else { 1.0 };
        self.batch as f64
            * ((self.m * self.k) as f64 * a.size() as f64
                + (self.k * self.n) as f64 * b.size() as f64
                + 4.0 * c_passes * (self.m * self.n) as f64)
    }

    /// The element count an operand must hold, given its stored rows and cols
    /// (None on overflow).
    fn extent(
        offset: usize,
        batch: usize,
        stride: usize,
        rows: usize,
        ld: usize,
        cols: usize,
    ) -> Option<usize> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Some(offset);
        }
        offset
            .checked_add((batch - 1).checked_mul(stride)?)?
            .checked_add((rows - 1).checked_mul(ld)?)?
            .checked_add(cols)
    }

    fn need(kernel: &str, role: &str, extent: Option<usize>) -> Result<usize> {
        extent.ok_or_else(|| HebbError::Launch {
            kernel: kernel.into(),
            message: format!("the extent of {role} overflows (offset, stride or ld too large)"),
        })
    }

    fn check(&self, kernel: &str, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
        if self.m == 0 || self.n == 0 || self.batch == 0 {
            return Err(HebbError::Launch {
                kernel: kernel.into(),
                message: format!(
                    "M, N and batch must be at least 1 (got M={}, N={}, batch={})",
                    self.m, self.n, self.batch
                ),
            });
        }
        c.expect_dtype(DType::F32, "C")?;
        for (t, role) in [(a, "A"), (b, "B")] {
            if t.dtype != DType::F16 {
                t.expect_dtype(DType::F32, role)?;
            }
        }
        let (ar, ac) = self.a_dims();
        let (br, bc) = self.b_dims();
        for (name, ld, cols) in [
            ("lda", self.lda(), ac),
            ("ldb", self.ldb(), bc),
            ("ldc", self.ldc(), self.n),
        ] {
            if ld < cols {
                return Err(HebbError::Launch {
                    kernel: kernel.into(),
                    message: format!("{name} = {ld} is smaller than the {cols} columns it spans"),
                });
            }
        }
        let (sa, sb, sc) = (self.stride_a(), self.stride_b(), self.stride_c());
        let a_need = Self::extent(self.offset_a, self.batch, sa, ar, self.lda(), ac);
        a.expect_len(
            Self::need(kernel, "A", a_need)?,
            &format!("A ({ar} x {ac}, batch {})", self.batch),
        )?;
        let b_need = Self::extent(self.offset_b, self.batch, sb, br, self.ldb(), bc);
        b.expect_len(
            Self::need(kernel, "B", b_need)?,
            &format!("B ({br} x {bc}, batch {})", self.batch),
        )?;
        let c_view = Self::need(
            kernel,
            "C",
            Self::extent(0, 1, 0, self.m, self.ldc(), self.n),
        )?;
        if self.batch > 1 && sc < c_view {
            return Err(HebbError::Launch {
                kernel: kernel.into(),
                message: format!(
                    "stride_c = {sc} makes the {} batches of C overlap (each needs {c_view})",
                    self.batch
                ),
            });
        }
        let c_need = Self::extent(self.offset_c, self.batch, sc, self.m, self.ldc(), self.n);
        c.expect_len(
            Self::need(kernel, "C", c_need)?,
            &format!("C ({} x {}, batch {})", self.m, self.n, self.batch),
        )?;
        for (input, role) in [(a, "A"), (b, "B")] {
            if input.buffer == c.buffer {
                return Err(HebbError::Launch {
                    kernel: kernel.into(),
                    message: format!("C ({}) must not be the same tensor as {role}", c.label),
                });
            }
        }
        Ok(())
    }

    fn params(&self, kernel: &str) -> Result<GemmParams> {
        let u = |what: &str, v: usize| to_u32(kernel, what, v);
        Ok(GemmParams {
            m: u("M", self.m)?,
            n: u("N", self.n)?,
            k: u("K", self.k)?,
            batch: u("batch", self.batch)?,
            lda: u("lda", self.lda())?,
            ldb: u("ldb", self.ldb())?,
            ldc: u("ldc", self.ldc())?,
            splits: 1,
            stride_a: u("stride_a", self.stride_a())?,
            stride_b: u("stride_b", self.stride_b())?,
            stride_c: u("stride_c", self.stride_c())?,
            k_per_split: u("K", self.k.max(1))?,
            offset_a: u("offset_a", self.offset_a)?,
            offset_b: u("offset_b", self.offset_b)?,
            offset_c: u("offset_c", self.offset_c)?,
            trans: self.trans_a as u32 | (self.trans_b as u32) << 1,
            alpha: self.alpha,
            beta: self.beta,
            _pad0: 0,
            _pad1: 0,
        })
    }
}

/// Records the tiled GEMM (and, when K is split, its reduction) into `rec`.
pub fn gemm(rec: &mut Recorder<'_>, g: &Gemm, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
    gemm_with(rec, g, a, b, c, None)
}

/// Records an update GEMM: the product as `gemm` computes it (the tiled or subgroup kernel;
/// tensor cores have no epilogue, so f16 operands run the tiled kernel), with `epilogue`
/// applied to each element of C as it is written, in the GEMM itself or, when K is split, in
/// the split-K reduction.
pub fn gemm_update(
    rec: &mut Recorder<'_>,
    g: &Gemm,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epilogue: &UpdateEpilogue<'_>,
) -> Result<()> {
    gemm_with(rec, g, a, b, c, Some(epilogue))
}

fn gemm_with(
    rec: &mut Recorder<'_>,
    g: &Gemm,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epilogue: Option<&UpdateEpilogue<'_>>,
) -> Result<()> {
    let ctx = rec.ctx;
    g.check("gemm_tiled", a, b, c)?;
    if let Some(epi) = epilogue {
        epi.prepare(rec, "gemm_update", g, a, b, c)?;
    }
    ctx.note_shape(|| LoggedShape::Gemm {
        m: g.m,
        n: g.n,
        k: g.k,
        trans_a: g.trans_a,
        trans_b: g.trans_b,
    });
    let (a_half, b_half) = (a.dtype == DType::F16, b.dtype == DType::F16);
    let mut tiles = g.kernel_tiles(ctx, a.dtype, b.dtype)?;
    if epilogue.is_some() && tiles.kind == GemmKind::Coop {
        tiles = g.tiled_default(ctx);
    }
    let (splits, k_per_split) = g.plan_split(ctx, &tiles);
    // The epilogue runs in the product kernel when K is not split, else in the reduction.
    let direct = epilogue.filter(|_| splits == 1);
    let epilogue_overrides = direct.map_or(vec![], |e| e.overrides().to_vec());
    let entry = |base: &'static str| UpdateEpilogue::entry(direct, base);
    let pipeline = match tiles.kind {
        GemmKind::Tiled => {
            let vec4_a = Gemm::vec4_ok(g.lda(), g.stride_a(), g.offset_a, g.batch);
            let vec4_b = Gemm::vec4_ok(g.ldb(), g.stride_b(), g.offset_b, g.batch);
            let mut overrides = tiles.engine_overrides().to_vec();
            overrides.extend([
                ("VEC4_A", vec4_a as u32 as f64),
                ("VEC4_B", vec4_b as u32 as f64),
                ("A_HALF", a_half as u32 as f64),
                ("B_HALF", b_half as u32 as f64),
            ]);
            overrides.extend(epilogue_overrides);
            ctx.kernels.get(
                &ctx.device,
                ctx.features,
                &GEMM_WGSL,
                entry("gemm_tiled"),
                &overrides,
            )?
        }
        GemmKind::Subgroup => {
            let mut overrides = vec![("ROWS", tiles.bm as f64)];
            overrides.extend(epilogue_overrides);
            ctx.kernels.get(
                &ctx.device,
                ctx.features,
                &GEMM_SUBGROUP_WGSL,
                entry("gemm_subgroup"),
                &overrides,
            )?
        }
        GemmKind::Coop => {
            let width = GemmTiles::coop_width(ctx).unwrap_or(32);
            ctx.kernels.get(
                &ctx.device,
                ctx.features,
                &GEMM_COOP_WGSL,
                "gemm_coop",
                &[
                    ("WG", width as f64),
                    ("TILES_M", tiles.tm as f64),
                    ("TILES_N", tiles.tn as f64),
                ],
            )?
        }
    };
    let groups = [
        to_u32("gemm_tiled", "N blocks", g.n.div_ceil(tiles.bn as usize))?,
        to_u32("gemm_tiled", "M blocks", g.m.div_ceil(tiles.bm as usize))?,
        to_u32("gemm_tiled", "batch * splits", g.batch * splits as usize)?,
    ];
    check_grid(ctx, "gemm_tiled", groups)?;

    let mut params = g.params("gemm_tiled")?;
    params.splits = splits;
    params.k_per_split = k_per_split;
    let record = |rec: &mut Recorder<'_>,
                  params: &GemmParams,
                  out: &Tensor,
                  epi: Option<&UpdateEpilogue<'_>>|
     -> Result<()> {
        let uniform = rec.uniform(params);
        let mut entries = vec![
            (0, uniform.as_entire_binding()),
            (1, a.binding(ctx)?),
            (2, b.binding(ctx)?),
            (3, out.binding(ctx)?),
        ];
        // The tiled and subgroup kernels also read A and B as vec4 (bindings 4 and 5).
        if tiles.kind != GemmKind::Coop {
            entries.extend([(4, a.binding(ctx)?), (5, b.binding(ctx)?)]);
        }
        let (mut optim_uniform, mut spare) = (None, None);
        if let Some(e) = epi {
            let mn = (params.m, params.n);
            entries.extend(e.entries(rec, mn, &mut optim_uniform, &mut spare)?);
        }
        let bg = bind_group(ctx, &pipeline, &entries);
        rec.dispatch(&pipeline, &bg, groups);
        Ok(())
    };
    if splits == 1 {
        return record(rec, &params, c, direct);
    }

    // Split-K: partial products into a workspace, then one pass that sums them into C.
    let plane = g.m * g.n;
    let slots = g.batch * splits as usize;
    let workspace = ctx.workspace(slots * plane)?;
    let mut partial = params;
    partial.alpha = 1.0;
    partial.beta = 0.0;
    partial.ldc = params.n;
    partial.stride_c = to_u32("gemm_tiled", "M * N", plane)?;
    partial.offset_c = 0;
    record(rec, &partial, &workspace, None)?;
    splitk_reduce(rec, &params, &workspace, c, epilogue)
}

/// Records `gemm_splitk_reduce`: C = alpha * sum of the `params.splits` partial products in
/// `partials` ([batch * splits, M, N], dense) + beta * C, with C's view as in `params`, and
/// `epilogue` on each element (batch 1). Also the second pass of conv.wgsl's split-K update.
pub(crate) fn splitk_reduce(
    rec: &mut Recorder<'_>,
    params: &GemmParams,
    partials: &Tensor,
    c: &Tensor,
    epilogue: Option<&UpdateEpilogue<'_>>,
) -> Result<()> {
    let ctx = rec.ctx;
    let entry = UpdateEpilogue::entry(epilogue, "gemm_splitk_reduce");
    let overrides = epilogue.map_or(vec![], |e| e.overrides().to_vec());
    let reduce = ctx
        .kernels
        .get(&ctx.device, ctx.features, &GEMM_WGSL, entry, &overrides)?;
    let reduce_groups = [params.n.div_ceil(64), params.m, params.batch];
    check_grid(ctx, "gemm_splitk_reduce", reduce_groups)?;
    let uniform = rec.uniform(params);
    let mut entries = vec![
        (0, uniform.as_entire_binding()),
        (3, c.binding(ctx)?),
        (6, partials.binding(ctx)?),
    ];
    let (mut optim_uniform, mut spare) = (None, None);
    if let Some(e) = epilogue {
        let mn = (params.m, params.n);
        entries.extend(e.entries(rec, mn, &mut optim_uniform, &mut spare)?);
    }
    let bg = bind_group(ctx, &reduce, &entries);
    rec.dispatch(&reduce, &bg, reduce_groups);
    Ok(())
}

/// Records the naive GEMM (one invocation per element of C, no tiling, no split).
pub fn gemm_naive(
    rec: &mut Recorder<'_>,
    g: &Gemm,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
) -> Result<()> {
    let ctx = rec.ctx;
    g.check("gemm_naive", a, b, c)?;
    let work = format!("a dot product of K = {}", g.k);
    check_loop_budget(ctx, "gemm_naive", g.k as u64, &work)?;
    let halves = [
        ("A_HALF", (a.dtype == DType::F16) as u32 as f64),
        ("B_HALF", (b.dtype == DType::F16) as u32 as f64),
    ];
    let pipeline = ctx
        .kernels
        .get(&ctx.device, ctx.features, &GEMM_WGSL, "gemm_naive", &halves)?;
    let groups = [
        to_u32("gemm_naive", "N / 16", g.n.div_ceil(16))?,
        to_u32("gemm_naive", "M / 16", g.m.div_ceil(16))?,
        to_u32("gemm_naive", "batch", g.batch)?,
    ];
    check_grid(ctx, "gemm_naive", groups)?;
    let uniform = rec.uniform(&g.params("gemm_naive")?);
    let bg = bind_group(
        ctx,
        &pipeline,
        &[
            (0, uniform.as_entire_binding()),
            (1, a.binding(ctx)?),
            (2, b.binding(ctx)?),
            (3, c.binding(ctx)?),
        ],
    );
    rec.dispatch(&pipeline, &bg, groups);
    Ok(())
}
