//! Benchmarks behind `hebb bench`: median GPU time per kernel launch, GFLOP/s, GB/s and the
//! speedup over the naive baseline, all measured in one run on one adapter.

pub mod competition;
pub mod gemm;
pub mod roofline;
pub mod rules;
pub mod scaling;
pub mod spiking;
pub mod train;
pub mod tune;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::gpu::{GpuContext, GpuTimer, Recorder};

/// One benchmark row. JSON field names are a stable interface.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub kernel: String,
    /// `naive` for the baseline.
    pub variant: String,
    pub shape: BTreeMap<String, usize>,
    pub median_s: f64,
    pub gflops: f64,
    pub gbps: f64,
    pub speedup_vs_naive: f64,
    /// `timestamp` or `wall`.
    pub timer: String,
    pub adapter: String,
    /// Launches timed per sample and samples taken.
    pub reps: usize,
    pub samples: usize,
}

/// How long to measure each kernel.
#[derive(Clone, Copy, Debug)]
pub struct BenchBudget {
    /// Target seconds of GPU time per sample (launches are batched up to this).
    pub sample_s: f64,
    pub samples: usize,
}

impl Default for BenchBudget {
    fn default() -> Self {
        Self {
            sample_s: 0.25,
            samples: 5,
        }
    }
}

/// Median seconds per launch of `record`, after one warm-up launch that also compiles the
/// pipeline. Launches are batched into one pass so short kernels are not dominated by
/// submission overhead. Returns (median seconds, launches per sample).
pub fn time_launch<'c>(
    ctx: &'c GpuContext,
    timer: &GpuTimer,
    budget: BenchBudget,
    mut record: impl FnMut(&mut Recorder<'c>) -> Result<()>,
) -> Result<(f64, usize)> {
    let once = timer.time(ctx, |rec| record(rec))?;
    // A single-sample budget (for steps that take seconds) reports that first run: its
    // pipeline compiles are milliseconds against the step.
    if budget.sample_s <= 0.0 {
        return Ok((once, 1));
    }
    let reps = ((budget.sample_s / once.max(1e-7)).floor() as usize).clamp(1, 1000);
    let mut samples = Vec::with_capacity(budget.samples);
    for _ in 0..budget.samples.max(1) {
        let t = timer.time(ctx, |rec| {
            for _ in 0..reps {
                record(rec)?;
            }
            Ok(())
        })?;
        samples.push(t / reps as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], reps))
}

pub fn print_rows(rows: &[BenchRow]) {
    println!(
        "{:<8} {:<26} {:<26} {:>12} {:>10} {:>9} {:>9}  timer",
        "kernel", "variant", "shape", "median", "GFLOP/s", "GB/s", "x naive"
    );
    for r in rows {
        let shape = r
            .shape
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{:<8} {:<26} {:<26} {:>10.3}ms {:>10.2} {:>9.2} {:>9.2}  {}",
            r.kernel,
            r.variant,
            shape,
            r.median_s * 1e3,
            r.gflops,
            r.gbps,
            r.speedup_vs_naive,
            r.timer
        );
    }
}
