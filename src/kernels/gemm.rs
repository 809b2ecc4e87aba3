//! Launchers for `shaders/gemm.wgsl`: the tiled GEMM (with split-K), and the naive baseline.
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

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::error::{HebbError, Result};
use crate::gpu::tuning::{ShapeClass, TunedKernel};
use crate::gpu::{DType, GpuContext, LoggedShape, PolicyKind, Recorder, Tensor};
use crate::kernels::elementwise;
use crate::kernels::hebbian::OptimStep;
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

/// Which GEMM kernel a `GemmTiles` configures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmKind {
    /// `gemm_tiled`: workgroup tiles staged in workgroup memory, TM x TN register blocks.
    #[default]
    Tiled,
    /// `gemm_subgroup` (shaders/gemm_subgroup.wgsl, needs SUBGROUP): 8, 16 or 24 x 32 blocks of
    /// 8 invocations sharing A through subgroup broadcasts. Built for SIMD CPU adapters. Shapes
    /// it cannot take (see `Gemm::subgroup_ok`) run `gemm_tiled` with the adapter's tiles.
    Subgroup,
    /// `gemm_coop` (shaders/gemm_coop.wgsl, needs SHADER_F16 and
    /// EXPERIMENTAL_COOPERATIVE_MATRIX with 16x16x16 f16 -> f32): tensor-core tiles for f16
    /// operands, TM x TN tiles of 16 x 16 per workgroup of one subgroup. Shapes it cannot take
    /// (see `Gemm::coop_ok`) and f32 operands run `gemm_tiled`.
    Coop,
}

/// Tile shape of a GEMM kernel (its `override` constants). Tiled: a workgroup computes a
/// BM x BN block of C in steps of BK, each invocation a TM x TN register block. Subgroup: see
/// `GemmTiles::subgroup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmTiles {
    #[serde(default)]
    pub kind: GemmKind,
    /// Workgroup tile buffers of the tiled kernel: 1, or 2 for double buffering (the next BK
    /// step loaded into the other buffer while this one is multiplied; one barrier per step
    /// instead of two, twice the workgroup memory). `+db` in labels.
    #[serde(default = "one_stage")]
    pub stages: u32,
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
}

impl GemmKind {
    /// The WGSL entry point.
    pub fn entry(self) -> &'static str {
        match self {
            GemmKind::Tiled => "gemm_tiled",
            GemmKind::Subgroup => "gemm_subgroup",
            GemmKind::Coop => "gemm_coop",
        }
    }
}

fn one_stage() -> u32 {
    1
}

impl GemmTiles {
    /// GPUs: 128 x 128 blocks, 8 x 8 per invocation (256 invocations, 16 KiB of workgroup
    /// memory), the classic register-blocked SGEMM shape.
    pub const GPU: GemmTiles = GemmTiles {
        kind: GemmKind::Tiled,
        stages: 1,
        bm: 128,
        bn: 128,
        bk: 16,
        tm: 8,
        tn: 8,
    };

    /// CPU adapters (lavapipe): 64 x 128 blocks, 8 x 8 per invocation (128 invocations). The
    /// fastest of the configurations timed on lavapipe (BENCHMARKS.md): every workgroup-memory
    /// load there is a loop over the SIMD lanes, so few, fat invocations and a deep BK win.
    pub const CPU: GemmTiles = GemmTiles {
        kind: GemmKind::Tiled,
        stages: 1,
        bm: 64,
        bn: 128,
        bk: 16,
        tm: 8,
        tn: 8,
    };

    /// A smaller configuration (16 x 16 threads of 4 x 4), also exercised by the tests.
    pub const SMALL: GemmTiles = GemmTiles {
        kind: GemmKind::Tiled,
        stages: 1,
        bm: 64,
        bn: 64,
        bk: 8,
        tm: 4,
        tn: 4,
    };

    /// The candidates `for_shape` picks from on this device type: the default first, then
    /// narrower blocks for the skinny products of small layers and classifiers.
    pub fn candidates(ctx: &GpuContext) -> &'static [GemmTiles] {
        const fn t(bm: u32, bn: u32, tm: u32, tn: u32) -> GemmTiles {
            GemmTiles {
                kind: GemmKind::Tiled,
                stages: 1,
                bm,
                bn,
                bk: 16,
                tm,
                tn,
            }
        }
        const CPU_SET: [GemmTiles; 6] = [
            GemmTiles::CPU,
            t(128, 128, 8, 8),
            t(128, 64, 8, 8),
            t(64, 64, 8, 8),
            t(64, 16, 8, 4),
            t(16, 64, 4, 8),
        ];
        const GPU_SET: [GemmTiles; 4] = [
            GemmTiles::GPU,
            t(64, 64, 4, 4),
            t(128, 16, 8, 4),
            t(16, 128, 4, 8),
        ];
        match ctx.policy.kind {
            PolicyKind::Cpu => &CPU_SET,
            PolicyKind::Gpu => &GPU_SET,
        }
    }

    /// The candidate with the least estimated work for an M x N output: the padded output
    /// Mp·Np (what the workgroups compute, ragged edges included) times a tile-load overhead
    /// 1 + L·(1/BM + 1/BN) (each BK step loads BM + BN values for BM·BN FMAs). A load costs
    /// L = `policy.gemm_load_cost`: 8 FMAs on GPUs; under the CPU policy workgroup memory and
    /// its barriers cost far more, and L = 64 matches lavapipe: its 96 x 75 x 10,240 update
    /// product runs 2.2x faster on 128 x 128 blocks than on the 64 x 16 blocks that L = 8
    /// picks (BENCHMARKS.md).
    pub fn for_shape(ctx: &GpuContext, m: usize, n: usize) -> GemmTiles {
        let load = ctx.policy.gemm_load_cost;
        let cost = |t: &GemmTiles| {
            let (bm, bn) = (t.bm as usize, t.bn as usize);
            let padded = (m.div_ceil(bm) * bm * n.div_ceil(bn) * bn) as f64;
            padded * (1.0 + load * (1.0 / bm as f64 + 1.0 / bn as f64))
        };
        let mut best = Self::candidates(ctx)[0];
        for t in Self::candidates(ctx) {
            if cost(t) < cost(&best) {
                best = *t;
            }
        }
        best
    }

    /// Default kernel for this adapter, without tuning: where the policy prefers it and the
    /// adapter has subgroups, the subgroup kernel (16 rows; 1.7–2.5x the tiled kernel on
    /// lavapipe, BENCHMARKS.md), else the tiled kernel with the policy's tiles.
    pub fn for_adapter(ctx: &GpuContext) -> GemmTiles {
        if ctx.policy.prefer_subgroup_gemm && Self::subgroup_available(ctx) {
            GemmTiles::subgroup(16)
        } else {
            Self::tiled_for_adapter(ctx)
        }
    }

    /// Default tiled-kernel tiles of the device policy's kind.
    pub fn tiled_for_adapter(ctx: &GpuContext) -> GemmTiles {
        match ctx.policy.kind {
            PolicyKind::Cpu => GemmTiles::CPU,
            PolicyKind::Gpu => GemmTiles::GPU,
        }
    }

    /// The subgroup kernel: `rows` (8, 16 or 24) x 32 per workgroup of 8, 4 k per step.
    pub const fn subgroup(rows: u32) -> GemmTiles {
        GemmTiles {
            kind: GemmKind::Subgroup,
            stages: 1,
            bm: rows,
            bn: 32,
            bk: 4,
            tm: rows,
            tn: 4,
        }
    }

    /// The cooperative-matrix kernel: `tm` x `tn` (1 or 2 each) tiles of 16 x 16 per
    /// workgroup, 16 k per step.
    pub const fn coop(tm: u32, tn: u32) -> GemmTiles {
        GemmTiles {
            kind: GemmKind::Coop,
            stages: 1,
            bm: 16 * tm,
            bn: 16 * tn,
            bk: 16,
            tm,
            tn,
        }
    }

    /// Whether `gemm_coop` can run here: SHADER_F16 and EXPERIMENTAL_COOPERATIVE_MATRIX with a
    /// subgroup-scoped 16x16x16 f16 x f16 -> f32 configuration, and a fixed subgroup size (the
    /// kernel's workgroup is exactly one subgroup). Returns that size.
    pub fn coop_width(ctx: &GpuContext) -> Option<u32> {
        let needed = wgpu::Features::SHADER_F16 | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        if !ctx.has(needed) || ctx.info.subgroup_min_size != ctx.info.subgroup_max_size {
            return None;
        }
        use wgpu::CooperativeScalarType as S;
        let f16_tiles = ctx.adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == S::F16
                && p.cr_type == S::F32
        });
        f16_tiles.then_some(ctx.info.subgroup_min_size)
    }

    /// `BMxBNxBK/TMxTN` for tiled kernels, `subgroup:BM` for the subgroup kernel, `coop:TMxTN`
    /// for the cooperative-matrix kernel (the syntax `--tiles` parses).
    pub fn label(&self) -> String {
        match self.kind {
            GemmKind::Subgroup => format!("subgroup:{}", self.bm),
            GemmKind::Coop => format!("coop:{}x{}", self.tm, self.tn),
            GemmKind::Tiled => format!(
                "{}x{}x{}/{}x{}{}",
                self.bm,
                self.bn,
                self.bk,
                self.tm,
                self.tn,
                if self.stages == 2 { "+db" } else { "" }
            ),
        }
    }

    /// Parses `label`'s syntax.
    pub fn parse(text: &str) -> Option<GemmTiles> {
        let numbers =
            |s: &str| -> Option<Vec<u32>> { s.split('x').map(|v| v.parse().ok()).collect() };
        if let Some(rows) = text.strip_prefix("subgroup:") {
            return Some(GemmTiles::subgroup(rows.parse().ok()?));
        }
        if let Some(tiles) = text.strip_prefix("coop:") {
            return match numbers(tiles)?.as_slice() {
                [tm, tn] => Some(GemmTiles::coop(*tm, *tn)),
                _ => None,
            };
        }
        let (text, stages) = match text.strip_suffix("+db") {
            Some(t) => (t, 2),
            None => (text, 1),
        };
        let (block, thread) = text.split_once('/')?;
        match (numbers(block)?.as_slice(), numbers(thread)?.as_slice()) {
            ([bm, bn, bk], [tm, tn]) => Some(GemmTiles {
                kind: GemmKind::Tiled,
                stages,
                bm: *bm,
                bn: *bn,
                bk: *bk,
                tm: *tm,
                tn: *tn,
            }),
            _ => None,
        }
    }

    /// What `hebb tune` times for a GEMM on this adapter: the tiled candidates of its device
    /// type, a few larger tiled blocks, and the subgroup kernel where it runs.
    pub fn tune_candidates(ctx: &GpuContext) -> Vec<GemmTiles> {
        let tiled = |bm, bn, bk, tm, tn| GemmTiles {
            kind: GemmKind::Tiled,
            stages: 1,
            bm,
            bn,
            bk,
            tm,
            tn,
        };
        let mut out: Vec<GemmTiles> = Self::candidates(ctx).to_vec();
        out.extend([
            tiled(128, 128, 32, 8, 8),
            tiled(64, 128, 16, 8, 8),
            tiled(128, 64, 16, 8, 8),
            tiled(64, 64, 16, 4, 4),
        ]);
        // Double-buffered twins of the device type's default and of two square blocks.
        let doubled = [
            Self::tiled_for_adapter(ctx),
            tiled(128, 128, 16, 8, 8),
            tiled(64, 64, 16, 4, 4),
        ]
        .map(|t| GemmTiles { stages: 2, ..t });
        out.extend(doubled);
        if Self::subgroup_available(ctx) {
            out.extend([8, 16, 24].map(GemmTiles::subgroup));
        }
        let mut seen = Vec::new();
        out.retain(|t| {
            let fresh = t.validate(ctx).is_ok() && !seen.contains(t);
            seen.push(*t);
            fresh
        });
        out
    }

    /// Whether `gemm_subgroup` can run here: SUBGROUP, and every subgroup holds a whole
    /// workgroup of 8.
    pub fn subgroup_available(ctx: &GpuContext) -> bool {
        ctx.has(wgpu::Features::SUBGROUP) && ctx.info.subgroup_min_size >= 8
    }

    /// Invocations per workgroup.
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm.max(1)) * (self.bn / self.tn.max(1))
    }

    /// Workgroup size (x, y).
    fn workgroup(&self) -> (u32, u32) {
        (self.bn / self.tn.max(1), self.bm / self.tm.max(1))
    }

    pub fn validate(&self, ctx: &GpuContext) -> Result<()> {
        let bad = |message: String| {
            Err(HebbError::Launch {
                kernel: "gemm_tiled".into(),
                message: format!("tiles {}: {message}", self.label()),
            })
        };
        if self.kind == GemmKind::Subgroup {
            if !matches!(self.bm, 8 | 16 | 24) || *self != GemmTiles::subgroup(self.bm) {
                return bad("subgroup: rows must be 8, 16 or 24 (32 columns, 4 k per step)".into());
            }
            if !Self::subgroup_available(ctx) {
                return bad(format!(
                    "needs SUBGROUP with subgroups of at least 8 invocations (this adapter: {}, {}..{})",
                    if ctx.has(wgpu::Features::SUBGROUP) {
                        "SUBGROUP"
                    } else {
                        "no SUBGROUP"
                    },
                    ctx.info.subgroup_min_size,
                    ctx.info.subgroup_max_size
                ));
            }
            return Ok(());
        }
        if self.kind == GemmKind::Coop {
            if !(1..=2).contains(&self.tm)
                || !(1..=2).contains(&self.tn)
                || *self != GemmTiles::coop(self.tm, self.tn)
            {
                return bad("coop: 1 or 2 tiles of 16 x 16 along M and N (coop:TMxTN)".into());
            }
            if Self::coop_width(ctx).is_none() {
                return bad(
                    "needs SHADER_F16 and EXPERIMENTAL_COOPERATIVE_MATRIX with 16x16x16 \
                     f16 -> f32 tiles and a fixed subgroup size, which this adapter lacks"
                        .into(),
                );
            }
            return Ok(());
        }
        if !matches!(self.stages, 1 | 2) {
            return bad("the tiled kernel has 1 or 2 tile buffers".into());
        }
        if self.bm == 0 || self.bn == 0 || self.bk == 0 {
            return bad("BM, BN and BK must be at least 4".into());
        }
        if ![4, 8].contains(&self.tm) || ![4, 8].contains(&self.tn) {
            return bad(
                "TM and TN must be 4 or 8 (the register block is made of 4 x 4 sub-blocks)".into(),
            );
        }
        if !self.bm.is_multiple_of(self.tm) || !self.bn.is_multiple_of(self.tn) {
            return bad("BM must be a multiple of TM and BN of TN".into());
        }
        if !self.bm.is_multiple_of(4) || !self.bn.is_multiple_of(4) || !self.bk.is_multiple_of(4) {
            return bad("BM, BN and BK must be multiples of 4 (vec4 tile loads)".into());
        }
        self.within_limits(ctx)
    }

    /// Whether a well-formed tiled configuration fits this device's limits (invocations per
    /// workgroup, workgroup size, workgroup memory): an error naming the limit if not. Under
    /// WebGPU's default limits (16 KiB of workgroup memory) the double-buffered CPU and GPU
    /// tiles do not fit, and launches asking for them are refused with this error.
    pub fn within_limits(&self, ctx: &GpuContext) -> Result<()> {
        if self.kind != GemmKind::Tiled {
            return Ok(());
        }
        let bad = |message: String| {
            Err(HebbError::Launch {
                kernel: "gemm_tiled".into(),
                message: format!("tiles {}: {message}", self.label()),
            })
        };
        let l = &ctx.limits;
        let (wx, wy) = self.workgroup();
        if self.threads() > l.max_compute_invocations_per_workgroup
            || wx > l.max_compute_workgroup_size_x
            || wy > l.max_compute_workgroup_size_y
        {
            return bad(format!(
                "a workgroup of {wx} x {wy} invocations exceeds this adapter's limits"
            ));
        }
        let shared = 4 * self.stages as u64 * self.bk as u64 * (self.bm as u64 + self.bn as u64);
        if shared > l.max_compute_workgroup_storage_size as u64 {
            return bad(format!(
                "needs {shared} bytes of workgroup memory, the adapter allows {}",
                l.max_compute_workgroup_storage_size
            ));
        }
        Ok(())
    }
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

    /// The most K one split of the tiled kernel covers on drivers with a loop-iteration limit.
    pub const LOOP_LIMITED_K: usize = 8192;
    /// The same for the subgroup kernel (32,768 of its k steps).
    pub const LOOP_LIMITED_K_SUBGROUP: usize = 131_072;

    /// Number of K splits and K per split for these tiles on this device.
    pub fn plan_split(&self, ctx: &GpuContext, tiles: &GemmTiles) -> (u32, u32) {
        let bk = tiles.bk as usize;
        let k = self.k.max(1);
        if tiles.kind == GemmKind::Coop {
            return (1, k as u32);
        }
        let wanted = match self.split_k {
            SplitK::Fixed(s) => s.max(1) as usize,
            SplitK::Auto => {
                let blocks = self.m.div_ceil(tiles.bm as usize)
                    * self.n.div_ceil(tiles.bn as usize)
                    * self.batch;
                // Enough workgroups to fill the device (`policy.split_k_workgroups`).
                let target = ctx.policy.split_k_workgroups;
                // Keep each split at least 16 K-steps long, so the partial sums stay cheap.
                let max_by_k = (k / (16 * bk)).max(1);
                target.div_ceil(blocks).clamp(1, max_by_k)
            }
        };
        let mut k_per_split = k.div_ceil(wanted).div_ceil(bk) * bk;
        // Where the driver cuts long loops short (llvmpipe: 65,535 iterations per invocation,
        // all loops together), keep each split's loops below that: the subgroup kernel loops
        // once per 4 k (its inner loops have constant bounds and unroll), the tiled kernel
        // about 20 times per BK = 16 tile step (its kk and tile-load loops).
        if ctx.loop_iteration_limit().is_some() {
            let cap = match tiles.kind {
                GemmKind::Subgroup => Self::LOOP_LIMITED_K_SUBGROUP,
                _ => Self::LOOP_LIMITED_K,
            };
            k_per_split = k_per_split.min(cap.div_ceil(bk) * bk);
        }
        let splits = k.div_ceil(k_per_split);
        (splits as u32, k_per_split as u32)
    }

    /// The kernel configuration `gemm` runs for this call: the given tiles, else the tuned
    /// winner of its shape class, else `default_tiles`. Validated; the subgroup variant gives
    /// way to a tiled configuration on shapes it cannot take.
    pub fn resolved_tiles(&self, ctx: &GpuContext) -> Result<GemmTiles> {
        let Some(tiles) = self.tiles.or_else(|| ctx.tuned(&self.shape_class())) else {
            return Ok(self.default_tiles(ctx));
        };
        tiles.validate(ctx)?;
        let unfit = match tiles.kind {
            GemmKind::Subgroup => !self.subgroup_ok(),
            // The cooperative-matrix kernel takes f16 operands only (see `kernel_tiles`).
            GemmKind::Coop => true,
            GemmKind::Tiled => false,
        };
        if unfit {
            return Ok(self.tiled_default(ctx));
        }
        Ok(tiles)
    }

    /// `resolved_tiles` for operands stored as `a` and `b`. f16 operands on both sides run the
    /// cooperative-matrix kernel where the adapter has it and the shape fits (given coop tiles,
    /// else 2 x 2 tiles, else 1 x 1; tuned entries, timed on f32, do not apply), and the tiled
    /// kernel otherwise; the subgroup kernel takes f32 only.
    pub fn kernel_tiles(&self, ctx: &GpuContext, a: DType, b: DType) -> Result<GemmTiles> {
        // Tuning times f32 operands only, so only explicit tiles steer (or stop) the choice.
        if a == DType::F16
            && b == DType::F16
            && GemmTiles::coop_width(ctx).is_some()
            && self.tiles.is_none_or(|t| t.kind == GemmKind::Coop)
        {
            let mut options: Vec<GemmTiles> = self.tiles.into_iter().collect();
            options.extend([GemmTiles::coop(2, 2), GemmTiles::coop(1, 1)]);
            for t in options {
                t.validate(ctx)?;
                if self.coop_ok(&t) {
                    return Ok(t);
                }
            }
        }
        let tiles = self.resolved_tiles(ctx)?;
        if tiles.kind == GemmKind::Subgroup && (a == DType::F16 || b == DType::F16) {
            return Ok(self.tiled_default(ctx));
        }
        Ok(tiles)
    }

    /// Whether `gemm_coop` with `tiles` takes this shape: its blocks cover C exactly (M a
    /// multiple of 16·TM, N of 16·TN), K a multiple of 16, and A's and B's offsets, leading
    /// dimensions and (batch > 1) batch strides multiples of 8 halves (16-byte tile rows; C is
    /// written element by element).
    pub fn coop_ok(&self, tiles: &GemmTiles) -> bool {
        let aligned = |ld: usize, stride: usize, offset: usize| {
            ld.is_multiple_of(8)
                && offset.is_multiple_of(8)
                && (self.batch == 1 || stride.is_multiple_of(8))
        };
        tiles.kind == GemmKind::Coop
            && self.m.is_multiple_of(tiles.bm as usize)
            && self.n.is_multiple_of(tiles.bn as usize)
            && self.k.is_multiple_of(16)
            && self.k > 0
            && aligned(self.lda(), self.stride_a(), self.offset_a)
            && aligned(self.ldb(), self.stride_b(), self.offset_b)
    }

    /// The untuned choice: the adapter's default kernel where it takes this shape, else the
    /// tiled kernel with the adapter's tiles, or the shape's for `shaped` calls.
    pub fn default_tiles(&self, ctx: &GpuContext) -> GemmTiles {
        let adapter = GemmTiles::for_adapter(ctx);
        if adapter.kind == GemmKind::Subgroup && self.subgroup_ok() {
            adapter
        } else {
            self.tiled_default(ctx)
        }
    }

    pub(crate) fn tiled_default(&self, ctx: &GpuContext) -> GemmTiles {
        if self.shape_chosen {
            GemmTiles::for_shape(ctx, self.m, self.n)
        } else {
            GemmTiles::tiled_for_adapter(ctx)
        }
    }

    /// Whether `gemm_subgroup` takes this shape: both operands readable as vec4, and the
    /// dimension a vec4 spans across lanes (M for A stored K x M, N for B stored K x N) a
    /// multiple of 4.
    pub fn subgroup_ok(&self) -> bool {
        Self::vec4_ok(self.lda(), self.stride_a(), self.offset_a, self.batch)
            && Self::vec4_ok(self.ldb(), self.stride_b(), self.offset_b, self.batch)
            && (!self.trans_a || self.m.is_multiple_of(4))
            && (self.trans_b || self.n.is_multiple_of(4))
    }

    /// Whether an operand can be read as vec4 along its contiguous dimension.
    fn vec4_ok(ld: usize, stride: usize, offset: usize, batch: usize) -> bool {
        ld.is_multiple_of(4) && offset.is_multiple_of(4) && (batch == 1 || stride.is_multiple_of(4))
    }
}

/// Records the tiled GEMM (and, when K is split, its reduction) into `rec`.
pub fn gemm(rec: &mut Recorder<'_>, g: &Gemm, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
    gemm_with(rec, g, a, b, c, None)
}

/// What an update GEMM does with each element of its product as it is written
/// (gemm_epilogue.wgsl), so the rest of a Hebbian update needs no pass over C of its own.
#[derive(Clone, Copy)]
pub enum UpdateEpilogue<'a> {
    /// C = alpha·op(A)op(B) + beta·C − r[row]·W, with r = `row_decay` (M) and W (M x N) in
    /// C's layout. With `abs_max` (one f32, zeroed here first), also max|C| over all of C.
    Decay {
        row_decay: &'a Tensor,
        w: &'a Tensor,
        abs_max: Option<&'a Tensor>,
    },
    /// Δ = alpha·op(A)op(B) + beta·C, then one SGD or Adam step of W (M x N) by the ascent
    /// direction Δ with its state tensors (weight_update.wgsl's formulas, as optim.wgsl); C = Δ
    /// only with `write_delta`.
    Optim {
        step: OptimStep,
        w: &'a Tensor,
        state0: &'a Tensor,
        state1: &'a Tensor,
        write_delta: bool,
    },
}

impl UpdateEpilogue<'_> {
    /// The entry point that runs this epilogue after `base`'s product or reduction.
    fn entry(epilogue: Option<&Self>, base: &'static str) -> &'static str {
        let decay = match epilogue {
            None => return base,
            Some(e) => matches!(e, UpdateEpilogue::Decay { .. }),
        };
        match (base, decay) {
            ("gemm_tiled", true) => "gemm_tiled_decay",
            ("gemm_tiled", false) => "gemm_tiled_optim",
            ("gemm_subgroup", true) => "gemm_subgroup_decay",
            ("gemm_subgroup", false) => "gemm_subgroup_optim",
            ("gemm_splitk_reduce", true) => "gemm_splitk_reduce_decay",
            ("gemm_splitk_reduce", false) => "gemm_splitk_reduce_optim",
            _ => base,
        }
    }

    fn overrides(&self) -> [(&'static str, f64); 3] {
        let flag = |b: bool| b as u32 as f64;
        match *self {
            UpdateEpilogue::Decay { abs_max, .. } => [
                ("ABS_MAX", flag(abs_max.is_some())),
                ("ADAM", 0.0),
                ("WRITE_DELTA", 0.0),
            ],
            UpdateEpilogue::Optim {
                step, write_delta, ..
            } => [
                ("ABS_MAX", 0.0),
                ("ADAM", flag(matches!(step, OptimStep::Adam { .. }))),
                ("WRITE_DELTA", flag(write_delta)),
            ],
        }
    }

    /// Checks the epilogue's tensors against the product's M x N and C.
    fn check(&self, kernel: &str, g: &Gemm, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
        let fail = |message: String| {
            Err(HebbError::Launch {
                kernel: kernel.into(),
                message,
            })
        };
        if g.batch != 1 || g.offset_c != 0 || g.ldc() != g.n {
            return fail(format!(
                "an update epilogue needs one dense M x N matrix C (got batch {}, offset_c {}, ldc {} for N = {})",
                g.batch,
                g.offset_c,
                g.ldc(),
                g.n
            ));
        }
        let mn = g.m * g.n;
        let (written, read): (Vec<&Tensor>, Vec<&Tensor>) = match *self {
            UpdateEpilogue::Decay {
                row_decay,
                w,
                abs_max,
            } => {
                row_decay.expect_len(g.m, &format!("row decay r (M = {})", g.m))?;
                w.expect_len(mn, &format!("W ({} x {})", g.m, g.n))?;
                if let Some(m) = abs_max {
                    m.expect_len(1, "max|C|")?;
                }
                (abs_max.into_iter().collect(), vec![row_decay, w])
            }
            UpdateEpilogue::Optim {
                step,
                w,
                state0,
                state1,
                ..
            } => {
                if let OptimStep::Adaptive { .. } = step {
                    return fail(
                        "the adaptive rate needs Σw² of the rows before the step; it runs as its own kernel".into(),
                    );
                }
                w.expect_len(mn, &format!("W ({} x {})", g.m, g.n))?;
                state0.expect_len(mn, "optimizer state 0")?;
                state1.expect_len(mn, "optimizer state 1")?;
                (vec![w, state0, state1], vec![])
            }
        };
        let mut all: Vec<&Tensor> = vec![a, b, c];
        for t in written.iter().chain(read.iter()) {
            // Read-only epilogue inputs may alias A or B; nothing may alias C or a written one.
            let clash = if read.iter().any(|r| r.buffer == t.buffer) {
                c.buffer == t.buffer || written.iter().any(|u| u.buffer == t.buffer)
            } else {
                all.iter().any(|u| u.buffer == t.buffer)
            };
            if clash {
                return fail(format!(
                    "{} is bound twice; the epilogue's tensors must be distinct from C and from each other",
                    t.label
                ));
            }
            all.push(t);
        }
        Ok(())
    }

    /// The epilogue's bindings (7 and up, gemm_epilogue.wgsl).
    fn entries<'t>(
        &'t self,
        rec: &mut Recorder<'_>,
        (m, n): (u32, u32),
        uniform: &'t mut Option<crate::gpu::bindings::UniformSlot>,
        spare: &'t mut Option<std::sync::Arc<Tensor>>,
    ) -> Result<Vec<(u32, wgpu::BindingResource<'t>)>> {
        let ctx = rec.ctx;
        Ok(match *self {
            UpdateEpilogue::Decay {
                row_decay,
                w,
                abs_max,
            } => {
                // Without ABS_MAX the atomic is never touched.
                let max = match abs_max {
                    Some(m) => m.binding(ctx)?,
                    None => spare.insert(ctx.spare()?).binding(ctx)?,
                };
                vec![
                    (11, row_decay.binding(ctx)?),
                    (12, w.binding(ctx)?),
                    (13, max),
                ]
            }
            UpdateEpilogue::Optim {
                step,
                w,
                state0,
                state1,
                ..
            } => {
                let params = step.params(m, n);
                let buffer = uniform.insert(rec.uniform(&params));
                vec![
                    (7, buffer.as_entire_binding()),
                    (8, w.binding(ctx)?),
                    (9, state0.binding(ctx)?),
                    (10, state1.binding(ctx)?),
                ]
            }
        })
    }
}

/// Storage buffers an update epilogue's entry point binds: A, B, C, the vec4 views of A and B,
/// and three of the epilogue's own (W, r, max|C| or W and two state tensors).
pub const UPDATE_STORAGE_BUFFERS: u32 = 8;

/// Whether this adapter can run the update epilogues (WebGPU guarantees 8 storage buffers per
/// shader stage; a downlevel adapter may offer fewer, and then runs the separate kernels).
pub fn update_epilogues_available(ctx: &GpuContext) -> bool {
    ctx.limits.max_storage_buffers_per_shader_stage >= UPDATE_STORAGE_BUFFERS
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
        if !update_epilogues_available(ctx) {
            return Err(HebbError::Launch {
                kernel: "gemm_update".into(),
                message: format!(
                    "the adapter offers {} storage buffers per shader stage; an update epilogue binds {UPDATE_STORAGE_BUFFERS}",
                    ctx.limits.max_storage_buffers_per_shader_stage
                ),
            });
        }
        epi.check("gemm_update", g, a, b, c)?;
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
            let mut overrides = vec![
                ("BM", tiles.bm as f64),
                ("BN", tiles.bn as f64),
                ("BK", tiles.bk as f64),
                ("TM", tiles.tm as f64),
                ("TN", tiles.tn as f64),
                ("VEC4_A", vec4_a as u32 as f64),
                ("VEC4_B", vec4_b as u32 as f64),
                ("A_HALF", a_half as u32 as f64),
                ("B_HALF", b_half as u32 as f64),
                ("STAGES", tiles.stages as f64),
            ];
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
    if let Some(UpdateEpilogue::Decay {
        abs_max: Some(max), ..
    }) = epilogue
    {
        elementwise::fill(rec, max, 0.0)?;
    }

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
    splitk_reduce_with(rec, &params, &workspace, c, epilogue)
}

/// Records `gemm_splitk_reduce`: C = alpha * sum of the `params.splits` partial products in
/// `partials` ([batch * splits, M, N], dense) + beta * C, with C's view as in `params`. Also
/// the second pass of conv.wgsl's split-K update.
pub(crate) fn splitk_reduce(
    rec: &mut Recorder<'_>,
    params: &GemmParams,
    partials: &Tensor,
    c: &Tensor,
) -> Result<()> {
    splitk_reduce_with(rec, params, partials, c, None)
}

fn splitk_reduce_with(
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
