//! `hebb bench scaling RECIPE`: the inputs of the data-parallel scaling model
//! (BENCHMARKS.md), measured on this adapter, and the model's predictions.
//!
//! Each learning stage of the recipe (and the classifier) runs its training step twice: alone,
//! and inside a metering process group (`Meter`). The meter reports two ranks, so the step
//! takes every synchronisation path a real group takes (the update epilogues off, every batch
//! sum read back to the host and written again), but its collectives are the identity and
//! count what they would send. The global batch is the local one, so both runs do the same
//! arithmetic. Measured per step: the compute alone, the same step with the host round trips
//! a group adds, the collectives called and the bytes they carry.
//!
//! The model: a ring all-reduce of m bytes over N ranks moves 2(N − 1)/N·m bytes through each
//! rank's link and takes 2(N − 1) latency-bound rounds, so a step's communication is
//! T_ar(N) = Σ_calls [2(N − 1)/N · m / B + 2(N − 1) · α] for link bandwidth B and per-round
//! latency α. With T_c the step's compute and T_h its host round trips, the parallel efficiency
//! is E(N) = T_c / (T_c + T_h + T_ar(N)). Reducing once per k local steps (not implemented:
//! every step reduces) would divide T_h + T_ar by k; `k_for_90` is the smallest k that gives
//! E ≥ 0.9.

use std::cell::Cell;
use std::time::Instant;

use serde::Serialize;

use crate::bench::train::{stages, synthetic_network};
use crate::dist::Collective;
use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::nn::recipe::Recipe;

/// A process group of two ranks whose collectives leave the data as it is and count it.
#[derive(Default)]
pub struct Meter {
    calls: Cell<usize>,
    bytes: Cell<usize>,
}

impl Meter {
    fn add(&self, bytes: usize) {
        self.calls.set(self.calls.get() + 1);
        self.bytes.set(self.bytes.get() + bytes);
    }

    fn take(&self) -> (usize, usize) {
        (self.calls.replace(0), self.bytes.replace(0))
    }
}

impl Collective for Meter {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        2
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, data: &mut [f32]) {
        self.add(4 * data.len());
    }
    fn all_reduce_sum_f64(&self, data: &mut [f64]) {
        self.add(8 * data.len());
    }
    fn all_reduce_sum_u64(&self, data: &mut [u64]) {
        self.add(8 * data.len());
    }
    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        vec![value; 2]
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn describe(&self) -> String {
        "meter (identity collectives)".into()
    }
}

/// One stage's measured inputs of the model.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    pub stage: String,
    pub batch: usize,
    /// The step alone (T_c), seconds.
    pub compute_s: f64,
    /// The step with a group's host round trips, seconds (T_c + T_h).
    pub grouped_s: f64,
    /// Collectives per step and the bytes they carry (what each rank contributes).
    pub all_reduce_calls: usize,
    pub all_reduce_bytes: usize,
    pub adapter: String,
}

/// A link of the model: name, bandwidth in bytes/s and per-round latency in seconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Link {
    pub name: &'static str,
    pub bytes_per_s: f64,
    pub latency_s: f64,
}

/// Nominal links (vendor figures, not measured here): PCIe 4.0 x16, NVLink 4 (per GPU, one
/// direction), and 100 and 400 Gb/s networks (InfiniBand HDR / NDR class).
pub const LINKS: [Link; 4] = [
    Link {
        name: "PCIe 4.0 x16 (32 GB/s)",
        bytes_per_s: 32e9,
        latency_s: 5e-6,
    },
    Link {
        name: "NVLink 4 (450 GB/s)",
        bytes_per_s: 450e9,
        latency_s: 3e-6,
    },
    Link {
        name: "100 Gb/s network",
        bytes_per_s: 12.5e9,
        latency_s: 5e-6,
    },
    Link {
        name: "400 Gb/s network",
        bytes_per_s: 50e9,
        latency_s: 5e-6,
    },
];

/// T_ar(N): a ring all-reduce of a step's collectives over `ranks` ranks on `link`.
pub fn ring_seconds(row: &ScalingRow, ranks: usize, link: &Link) -> f64 {
    if ranks < 2 {
        return 0.0;
    }
    let n = ranks as f64;
    2.0 * (n - 1.0) / n * row.all_reduce_bytes as f64 / link.bytes_per_s
        + 2.0 * (n - 1.0) * link.latency_s * row.all_reduce_calls as f64
}

/// E(N) for a step whose compute is `compute_s` and host round trips `host_s`, reducing once
/// per `k` steps.
pub fn efficiency(compute_s: f64, host_s: f64, ring_s: f64, k: usize) -> f64 {
    compute_s / (compute_s + (host_s + ring_s) / k.max(1) as f64)
}

/// The smallest k (up to 4096) with E ≥ 0.9, if any.
pub fn k_for_90(compute_s: f64, host_s: f64, ring_s: f64) -> Option<usize> {
    (1..=4096).find(|&k| efficiency(compute_s, host_s, ring_s, k) >= 0.9)
}

/// Measures every learning stage of `recipe` (at `batch` images per step, default the
/// recipe's) and its classifier step: `steps` steps each after a warm-up.
pub fn measure(
    ctx: &GpuContext,
    recipe: &Recipe,
    batch: Option<usize>,
    steps: usize,
) -> Result<Vec<ScalingRow>> {
    let mut recipe = recipe.clone();
    if let Some(b) = batch {
        recipe.hebbian.batch = b;
        recipe.classifier.batch = b;
    }
    let batch = recipe.hebbian.batch;
    let (mut net, images) = synthetic_network(ctx, &recipe)?;
    let meter = Meter::default();
    let mut rows = Vec::new();
    for (label, upto, learning) in stages(&recipe, &net) {
        if learning.is_empty() {
            continue;
        }
        rows.push(measure_step(ctx, &meter, label, batch, steps, |rec| {
            net.train_step(ctx, rec, &images, batch, upto, &learning)
        })?);
    }
    // The classifier's step on random features (its gradient is the only sum).
    let f = net.feature_len();
    let features = Tensor::from_f32(
        ctx,
        "features",
        &[batch * f],
        &crate::conformance::random_f32(0x5CA1, batch * f),
    )?;
    let labels: Vec<u32> = (0..batch).map(|i| (i % net.classes) as u32).collect();
    net.classifier.set_labels(ctx, &labels)?;
    let optimizer = crate::nn::recipe::ClassifierOptimizer::Adam {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let label = format!("classifier ({f} features)");
    rows.push(measure_step(ctx, &meter, label, batch, steps, |rec| {
        net.classifier
            .train_step(rec, &features, batch, optimizer, 1e-3, None)
    })?);
    Ok(rows)
}

/// One row: `steps` of `step` alone, then inside the metering group (each after a warm-up
/// step, which compiles the pipelines), with the collectives the grouped steps called.
fn measure_step(
    ctx: &GpuContext,
    meter: &Meter,
    stage: String,
    batch: usize,
    steps: usize,
    mut step: impl FnMut(&mut Recorder<'_>) -> Result<()>,
) -> Result<ScalingRow> {
    let steps = steps.max(1);
    let mut time = |grouped: bool| -> Result<f64> {
        let mut run = || -> Result<()> {
            let mut rec = if grouped {
                Recorder::in_group(ctx, meter, batch, batch)
            } else {
                Recorder::new(ctx)
            };
            step(&mut rec)?;
            rec.submit();
            Ok(())
        };
        run()?;
        ctx.wait()?;
        meter.take();
        let started = Instant::now();
        for _ in 0..steps {
            run()?;
        }
        ctx.wait()?;
        Ok(started.elapsed().as_secs_f64() / steps as f64)
    };
    let compute_s = time(false)?;
    let grouped_s = time(true)?;
    let (calls, bytes) = meter.take();
    Ok(ScalingRow {
        stage,
        batch,
        compute_s,
        grouped_s,
        all_reduce_calls: calls / steps,
        all_reduce_bytes: bytes / steps,
        adapter: ctx.adapter_name(),
    })
}

/// Prints the measured rows and E(8), E(64) on each link, with the k that keeps E ≥ 0.9.
pub fn print(rows: &[ScalingRow]) {
    println!(
        "{:<34} {:>6} {:>12} {:>12} {:>6} {:>12}",
        "stage", "batch", "compute s", "+host s", "calls", "bytes/step"
    );
    for r in rows {
        println!(
            "{:<34} {:>6} {:>12.4} {:>12.4} {:>6} {:>12}",
            r.stage, r.batch, r.compute_s, r.grouped_s, r.all_reduce_calls, r.all_reduce_bytes
        );
    }
    println!();
    println!(
        "predicted efficiency E(N) = T_c / (T_c + T_h + T_ar(N)) at this adapter's compute (k: \
         reductions every k steps for E ≥ 0.9, not implemented)"
    );
    for r in rows {
        let host = (r.grouped_s - r.compute_s).max(0.0);
        for link in &LINKS {
            let cells: Vec<String> = [8usize, 64]
                .iter()
                .map(|&n| {
                    let ring = ring_seconds(r, n, link);
                    let k = k_for_90(r.compute_s, host, ring)
                        .map_or("-".to_string(), |k| k.to_string());
                    format!(
                        "N={n}: T_ar {:.2e} s, E {:.3}, k {k}",
                        ring,
                        efficiency(r.compute_s, host, ring, 1)
                    )
                })
                .collect();
            println!("  {:<34} {:<24} {}", r.stage, link.name, cells.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_time_and_efficiency_follow_the_formula() {
        let row = ScalingRow {
            stage: "x".into(),
            batch: 1,
            compute_s: 0.1,
            grouped_s: 0.1,
            all_reduce_calls: 2,
            all_reduce_bytes: 1_000_000,
            adapter: String::new(),
        };
        let link = Link {
            name: "l",
            bytes_per_s: 1e9,
            latency_s: 1e-5,
        };
        // 2·7/8·1e6/1e9 + 2·7·1e-5·2 = 1.75e-3 + 2.8e-4.
        let t = ring_seconds(&row, 8, &link);
        assert!((t - 2.03e-3).abs() < 1e-12, "{t}");
        assert_eq!(ring_seconds(&row, 1, &link), 0.0);
        let e = efficiency(0.1, 0.0, t, 1);
        assert!((e - 0.1 / (0.1 + t)).abs() < 1e-15);
        assert_eq!(k_for_90(0.1, 0.0, t), Some(1));
        // Communication 9x the compute needs k = 81 for E = 0.9.
        assert_eq!(k_for_90(0.1, 0.0, 0.9), Some(81));
    }
}
