//! `hebb bench gemm`: the tiled GEMM against the naive one on square and Hebbian shapes.
//! FLOPs are 2·M·N·K; bytes are the compulsory traffic (A and B read once, C written once).

use std::collections::BTreeMap;

use crate::bench::{BenchBudget, BenchRow, time_launch};
use crate::conformance::random_f32;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTimer, Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm, GemmTiles};

/// A named GEMM shape to time.
#[derive(Clone, Debug)]
pub struct GemmCase {
    pub label: &'static str,
    pub gemm: Gemm,
}

/// Square 256..2048, and the Hebbian update of Lagani's model_6l conv2:
/// dW (128 x 864) = Yᵀ (128 x 9216) · X (9216 x 864), with Y stored 9216 x 128.
pub fn default_cases(square: &[usize]) -> Vec<GemmCase> {
    let mut cases: Vec<GemmCase> = square
        .iter()
        .map(|&s| GemmCase {
            label: "square",
            gemm: Gemm::new(s, s, s),
        })
        .collect();
    cases.push(GemmCase {
        label: "hebbian",
        gemm: Gemm::new(128, 864, 9216).trans(true, false),
    });
    cases
}

pub fn bench_gemm(
    ctx: &GpuContext,
    cases: &[GemmCase],
    tiles: Option<GemmTiles>,
    timer: &GpuTimer,
    budget: BenchBudget,
    with_naive: bool,
) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for case in cases {
        let g = match tiles {
            Some(t) => case.gemm.clone().tiles(t),
            None => case.gemm.clone(),
        };
        let (ar, ac) = g.a_dims();
        let (br, bc) = g.b_dims();
        let a = Tensor::from_f32(ctx, "A", &[ar, ac], &random_f32(1, ar * ac))?;
        let b = Tensor::from_f32(ctx, "B", &[br, bc], &random_f32(2, br * bc))?;
        let c = Tensor::from_f32(ctx, "C", &[g.m, g.n], &random_f32(3, g.m * g.n))?;
        let shape: BTreeMap<String, usize> = [("m", g.m), ("n", g.n), ("k", g.k)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let used_tiles = g.resolved_tiles(ctx)?;
        let (splits, _) = g.plan_split(ctx, &used_tiles);
        let row = |variant: String, median_s: f64, reps: usize| BenchRow {
            kernel: "gemm".into(),
            variant,
            shape: shape.clone(),
            median_s,
            gflops: g.flops() / median_s * 1e-9,
            gbps: g.bytes() / median_s * 1e-9,
            speedup_vs_naive: f64::NAN,
            timer: timer.kind.name().into(),
            adapter: ctx.adapter_name(),
            reps,
            samples: budget.samples,
        };
        let (tiled_s, tiled_reps) = time_launch(ctx, timer, budget, |rec: &mut Recorder<'_>| {
            gemm::gemm(rec, &g, &a, &b, &c)
        })?;
        let mut tiled = row(
            format!("{} split={splits} {}", used_tiles.label(), case.label),
            tiled_s,
            tiled_reps,
        );
        if with_naive {
            let (naive_s, naive_reps) = time_launch(ctx, timer, budget, |rec| {
                gemm::gemm_naive(rec, &g, &a, &b, &c)
            })?;
            let mut naive = row("naive".into(), naive_s, naive_reps);
            naive.speedup_vs_naive = 1.0;
            tiled.speedup_vs_naive = naive_s / tiled_s;
            rows.push(naive);
        }
        rows.push(tiled);
    }
    Ok(rows)
}
