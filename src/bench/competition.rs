//! `hebb bench competition`: the row-wise competition kernels side by side (one invocation per
//! row, and one subgroup per row where SUBGROUP exists) on the row shapes of the papers' layers.
//! Bytes are the compulsory traffic: U read once, out0 and G written once (12·N·C); the kernels
//! do no matrix products, so GFLOP/s is not reported (NaN).

use std::collections::BTreeMap;

use crate::bench::{BenchBudget, BenchRow, time_launch};
use crate::conformance::random_f32;
use crate::error::Result;
use crate::gpu::{DType, GpuContext, GpuTimer, Tensor};
use crate::kernels::hebbian::{Competition, CompetitionKernel, competition_with};

/// (label, N rows, C neurons): Lagani model_6l conv2 at batch 64, SoftHebb CIFAR-10 conv2 and
/// conv3 at batch 10 (positions before pooling), an MNIST layer of 2000 at batch 100.
pub const SHAPES: [(&str, usize, usize); 4] = [
    ("lagani-conv2", 9216, 128),
    ("softhebb-conv2", 2560, 384),
    ("softhebb-conv3", 640, 1536),
    ("mnist-fc2000", 100, 2000),
];

pub fn bench_competition(
    ctx: &GpuContext,
    timer: &GpuTimer,
    budget: BenchBudget,
) -> Result<Vec<BenchRow>> {
    let kinds = [
        Competition::SoftKrotov { t_invert: 0.65 },
        Competition::Hard,
        Competition::Krotov { k: 2, delta: 0.4 },
        Competition::Triangle { power: 0.7 },
    ];
    let mut kernels = vec![CompetitionKernel::PerRow];
    if CompetitionKernel::subgroup_width(ctx).is_some() {
        kernels.push(CompetitionKernel::Subgroup);
    }
    let mut rows = Vec::new();
    for (label, n, c) in SHAPES {
        let u = Tensor::from_f32(ctx, "U", &[n, c], &random_f32(7, n * c))?;
        let out0 = Tensor::empty(ctx, "out0", &[n, c], DType::F32)?;
        let g = Tensor::empty(ctx, "G", &[n, c], DType::F32)?;
        let shape: BTreeMap<String, usize> = [("n".to_string(), n), ("c".to_string(), c)].into();
        for kind in kinds {
            let mut first_s = f64::NAN;
            for kernel in &kernels {
                let (median_s, reps) = time_launch(ctx, timer, budget, |rec| {
                    competition_with(rec, *kernel, kind, &u, None, n, c, &out0, &g)
                })?;
                if first_s.is_nan() {
                    first_s = median_s;
                }
                rows.push(BenchRow {
                    kernel: "competition".into(),
                    variant: format!("{kernel:?} {kind:?} {label}"),
                    shape: shape.clone(),
                    median_s,
                    gflops: f64::NAN,
                    gbps: 12.0 * (n * c) as f64 / median_s * 1e-9,
                    // The per-row kernel is the baseline of each pair.
                    speedup_vs_naive: first_s / median_s,
                    timer: timer.kind.name().into(),
                    adapter: ctx.adapter_name(),
                    reps,
                    samples: budget.samples,
                });
            }
        }
    }
    Ok(rows)
}
