//! The GEMM selection policy, in one place. For a call (`Gemm`) with operands stored as
//! (a, b), `Gemm::kernel_tiles` decides, in this order:
//!   1. f16 x f16 operands: the cooperative-matrix kernel where the adapter has it and the
//!      shape fits (`coop_ok`);
//!   2. else the call's explicit tiles, else the tuned winner of its shape class
//!      (`resolved_tiles`), falling back to the tiled kernel where the choice cannot take the
//!      shape (`subgroup_ok`) or the operands (f16);
//!   3. else the device policy's default (`default_tiles`): the subgroup kernel where the
//!      policy prefers it and the shape fits, else the tiled kernel with the policy's tiles
//!      (`GemmTiles::tiled_for_adapter`), or for `shaped` calls the candidate with the least
//!      estimated work (`GemmTiles::for_shape`).
//!
//! `Gemm::plan_split` then splits K for the chosen tiles. The device-dependent numbers (load
//! cost, split target, subgroup preference) come from `ctx.policy`.

use super::{Gemm, GemmKind, GemmTiles, SplitK};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, PolicyKind};

impl GemmTiles {
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
}

impl Gemm {
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
    pub(super) fn vec4_ok(ld: usize, stride: usize, offset: usize, batch: usize) -> bool {
        ld.is_multiple_of(4) && offset.is_multiple_of(4) && (batch == 1 || stride.is_multiple_of(4))
    }
}
