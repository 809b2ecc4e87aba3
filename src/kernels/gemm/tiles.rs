//! The GEMM kernels' configurations: which kernel (`GemmKind`) and its tile shape
//! (`GemmTiles`, the kernels' `override` constants), their labels, and the checks against the
//! adapter's limits. Which configuration a call runs is `select.rs`'s.

use serde::{Deserialize, Serialize};

use crate::error::{HebbError, Result};
use crate::gpu::GpuContext;

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

    /// The override constants of gemm_tile_engine.wgsl for a tiled configuration: the tile
    /// shape and the number of tile buffers (the engine's, so gemm.wgsl and conv.wgsl alike).
    pub fn engine_overrides(&self) -> [(&'static str, f64); 6] {
        [
            ("BM", self.bm as f64),
            ("BN", self.bn as f64),
            ("BK", self.bk as f64),
            ("TM", self.tm as f64),
            ("TN", self.tn as f64),
            ("STAGES", self.stages as f64),
        ]
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
