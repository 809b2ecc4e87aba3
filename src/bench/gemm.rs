//! `hebb bench gemm`: the tiled GEMM against the naive one on square and Hebbian shapes.
//! FLOPs are 2·M·N·K; bytes are the compulsory traffic (A and B read once, C written once).

use std::collections::BTreeMap;

use crate::bench::{BenchBudget, BenchRow, time_launch};
use crate::conformance::random_f32;
use crate::error::Result;
use crate::gpu::{DType, GpuContext, GpuTimer, Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm, GemmTiles};
use crate::kernels::optim::OptimStep;

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

/// What `bench_gemm` times beside the GEMM itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct GemmExtras {
    /// The naive baseline.
    pub naive: bool,
    /// A and B stored as f16.
    pub f16: bool,
    /// The update epilogues (`gemm::gemm_update`): the decay with max|C|, and SGD with
    /// momentum. Their bytes add W, r and the momentum buffer.
    pub epilogues: bool,
}

pub fn bench_gemm(
    ctx: &GpuContext,
    cases: &[GemmCase],
    tiles: Option<GemmTiles>,
    timer: &GpuTimer,
    budget: BenchBudget,
    extras: GemmExtras,
) -> Result<Vec<BenchRow>> {
    let (with_naive, with_f16) = (extras.naive, extras.f16);
    let mut rows = Vec::new();
    for case in cases {
        let g = match tiles {
            Some(t) => case.gemm.clone().tiles(t),
            None => case.gemm.clone(),
        };
        let (ar, ac) = g.a_dims();
        let (br, bc) = g.b_dims();
        let a_data = random_f32(1, ar * ac);
        let b_data = random_f32(2, br * bc);
        let a = Tensor::from_f32(ctx, "A", &[ar, ac], &a_data)?;
        let b = Tensor::from_f32(ctx, "B", &[br, bc], &b_data)?;
        let c = Tensor::from_f32(ctx, "C", &[g.m, g.n], &random_f32(3, g.m * g.n))?;
        let shape: BTreeMap<String, usize> = [("m", g.m), ("n", g.n), ("k", g.k)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let used_tiles = g.resolved_tiles(ctx)?;
        let (splits, _) = g.plan_split(ctx, &used_tiles);
        let row = |variant: String, median_s: f64, reps: usize, bytes: f64| BenchRow {
            kernel: "gemm".into(),
            variant,
            shape: shape.clone(),
            median_s,
            gflops: g.flops() / median_s * 1e-9,
            gbps: bytes / median_s * 1e-9,
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
            g.bytes(),
        );
        if with_naive {
            let (naive_s, naive_reps) = time_launch(ctx, timer, budget, |rec| {
                gemm::gemm_naive(rec, &g, &a, &b, &c)
            })?;
            let mut naive = row("naive".into(), naive_s, naive_reps, g.bytes());
            naive.speedup_vs_naive = 1.0;
            tiled.speedup_vs_naive = naive_s / tiled_s;
            rows.push(naive);
        }
        rows.push(tiled);
        if extras.epilogues && g.batch == 1 {
            let mn = g.m * g.n;
            let w = Tensor::from_f32(ctx, "W", &[mn], &random_f32(4, mn))?;
            let r = Tensor::from_f32(ctx, "r", &[g.m], &random_f32(5, g.m))?;
            let s0 = Tensor::from_f32(ctx, "state 0", &[mn], &random_f32(6, mn))?;
            let s1 = Tensor::from_f32(ctx, "state 1", &[mn], &random_f32(7, mn))?;
            let max = Tensor::from_f32(ctx, "max|C|", &[1], &[0.0])?;
            let decay = gemm::UpdateEpilogue::Decay {
                row_decay: &r,
                w: &w,
                abs_max: Some(&max),
            };
            let sgd = gemm::UpdateEpilogue::Optim {
                step: OptimStep::Sgd {
                    lr: 1e-6,
                    momentum: 0.9,
                    nesterov: false,
                    weight_decay: 0.0,
                    first: false,
                },
                w: &w,
                state0: &s0,
                state1: &s1,
                write_delta: false,
            };
            // Bytes beyond the plain product's: decay reads W and r; SGD with momentum reads
            // and writes W and its buffer, and does not write C.
            let plain = g.bytes();
            let extra = [
                ("decay+max", &decay, plain + 4.0 * (mn + g.m) as f64),
                ("sgd μ=0.9", &sgd, plain + 4.0 * 3.0 * mn as f64),
            ];
            for (name, epi, bytes) in extra {
                let (s, reps) = time_launch(ctx, timer, budget, |rec: &mut Recorder<'_>| {
                    gemm::gemm_update(rec, &g, &a, &b, &c, epi)
                })?;
                let r = row(
                    format!(
                        "{} split={splits} {} +{name}",
                        used_tiles.label(),
                        case.label
                    ),
                    s,
                    reps,
                    bytes,
                );
                rows.push(r);
            }
        }
        if with_f16 {
            // The same product with A and B stored as halves (f32 accumulation).
            let half = |v: &[f32]| {
                v.iter()
                    .map(|&x| half::f16::from_f32(x))
                    .collect::<Vec<_>>()
            };
            let a16 = Tensor::from_f16(ctx, "A (f16)", &[ar, ac], &half(&a_data))?;
            let b16 = Tensor::from_f16(ctx, "B (f16)", &[br, bc], &half(&b_data))?;
            let tiles16 = g.kernel_tiles(ctx, DType::F16, DType::F16)?;
            let (splits16, _) = g.plan_split(ctx, &tiles16);
            let (s16, reps16) = time_launch(ctx, timer, budget, |rec: &mut Recorder<'_>| {
                gemm::gemm(rec, &g, &a16, &b16, &c)
            })?;
            let mut r = row(
                format!(
                    "{} split={splits16} A,B:f16 {}",
                    tiles16.label(),
                    case.label
                ),
                s16,
                reps16,
                g.bytes_stored(DType::F16, DType::F16),
            );
            if with_naive {
                r.speedup_vs_naive = rows[rows.len() - 2].median_s / s16;
            }
            rows.push(r);
        }
    }
    Ok(rows)
}
