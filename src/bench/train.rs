//! `hebb bench train RECIPE`: training throughput of a recipe's network on this adapter, per
//! stage and for the whole network, measured on random images of the recipe's input shape
//! (data decoding is not included: the loaders decode on other threads, ahead of the GPU).
//!
//! Each stage is the step `hebb train` runs: the frozen blocks before layer i, then layer i
//! learning (greedy), or every block learning at once (simultaneous). Steps are recorded and
//! submitted back to back exactly as in training and timed by the wall clock over all of them,
//! so launch and submission overhead counts.

use std::time::Instant;

use serde::Serialize;

use crate::data::source::ItemShape;
use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, Recorder};
use crate::nn::network::{FineTuneStep, Network};
use crate::nn::recipe::{ClassifierOptimizer, DatasetKind, Recipe, Schedule};

/// Input shape and class count of a recipe's dataset, as its loader produces them.
pub fn recipe_input(recipe: &Recipe) -> (ItemShape, usize) {
    let rgb = |side: usize| ItemShape {
        channels: 3,
        height: side,
        width: side,
    };
    match recipe.data.dataset {
        DatasetKind::Mnist | DatasetKind::FashionMnist => (
            ItemShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            10,
        ),
        DatasetKind::Cifar10 => (rgb(32), 10),
        DatasetKind::Cifar100 => (rgb(32), 100),
        DatasetKind::Stl10 => (rgb(96), 10),
        DatasetKind::Folder => (rgb(recipe.data.image_size.unwrap_or(224)), 1000),
    }
}

/// One timed stage.
#[derive(Clone, Debug, Serialize)]
pub struct StageRow {
    /// `layer i (greedy)`, `all layers (simultaneous)` or `frozen forward`.
    pub stage: String,
    pub batch: usize,
    pub steps: usize,
    pub seconds_per_step: f64,
    pub images_per_s: f64,
    pub adapter: String,
}

/// The recipe's network with untrained weights, and random images in [0, 1) for one batch.
pub fn synthetic_network(ctx: &GpuContext, recipe: &Recipe) -> Result<(Network, Vec<f32>)> {
    let (input, classes) = recipe_input(recipe);
    let net = Network::new(ctx, recipe, input, classes, None, None)?;
    let batch = recipe.hebbian.batch;
    let images: Vec<f32> = crate::conformance::random_f32(0x1A6E, batch * input.len())
        .into_iter()
        .map(|v| 0.5 * (v + 1.0))
        .collect();
    Ok((net, images))
}

/// The stages `hebb train` runs for this recipe, with their labels, last block and learning
/// blocks: one per layer (greedy) or one for all layers (simultaneous), then the frozen forward
/// pass (no block learning).
pub fn stages(recipe: &Recipe, net: &Network) -> Vec<(String, usize, Vec<usize>)> {
    let last = net.layers.len() - 1;
    let mut out = Vec::new();
    if recipe.hebbian.schedule == Schedule::Simultaneous {
        let all: Vec<usize> = (0..=last).collect();
        out.push(("all layers (simultaneous)".to_string(), last, all));
    } else {
        for upto in 0..=last {
            out.push((format!("layer {upto} (greedy)"), upto, vec![upto]));
        }
    }
    out.push(("frozen forward".to_string(), last, Vec::new()));
    out
}

/// Times `steps` steps of every stage after one warm-up step (which compiles the pipelines).
pub fn bench_train(ctx: &GpuContext, recipe: &Recipe, steps: usize) -> Result<Vec<StageRow>> {
    if recipe.layers.is_empty() {
        return Err(HebbError::Shape {
            tensor: "recipe layers".into(),
            message: "the recipe has no Hebbian layers to time".into(),
        });
    }
    let (mut net, images) = synthetic_network(ctx, recipe)?;
    let batch = recipe.hebbian.batch;
    let mut rows = Vec::new();
    for (label, upto, learning) in stages(recipe, &net) {
        let step = |net: &mut Network| -> Result<()> {
            let mut rec = Recorder::new(ctx);
            net.train_step(ctx, &mut rec, &images, batch, upto, &learning)?;
            rec.submit();
            Ok(())
        };
        step(&mut net)?;
        ctx.wait()?;
        let started = Instant::now();
        for _ in 0..steps.max(1) {
            step(&mut net)?;
        }
        ctx.wait()?;
        let seconds = started.elapsed().as_secs_f64() / steps.max(1) as f64;
        rows.push(StageRow {
            stage: label,
            batch,
            steps: steps.max(1),
            seconds_per_step: seconds,
            images_per_s: batch as f64 / seconds,
            adapter: ctx.adapter_name(),
        });
    }
    rows.extend(bench_fine_tuning(ctx, recipe, &mut net, steps)?);
    // One Hebbian epoch over the same images for every learning stage: the stages run in
    // sequence, so their times per image add.
    let learning: Vec<&StageRow> = rows
        .iter()
        .filter(|r| r.stage != "frozen forward" && !r.stage.starts_with("fine-tuning"))
        .collect();
    let per_image: f64 = learning.iter().map(|r| 1.0 / r.images_per_s).sum();
    rows.push(StageRow {
        stage: "whole network (one epoch of every stage)".into(),
        batch,
        steps: steps.max(1),
        seconds_per_step: per_image * batch as f64,
        images_per_s: 1.0 / per_image,
        adapter: ctx.adapter_name(),
    });
    Ok(rows)
}

/// Fine-tuning's throughput (`[finetune]`: every block and the classifier by backprop, SGD with
/// Nesterov momentum) at the classifier's batch: the forward alone, the whole step, and the
/// backward as their difference (measured in the same run). None, with the reason on stderr,
/// where a block is one fine-tuning cannot differentiate yet or the adapter refuses a launch.
fn bench_fine_tuning(
    ctx: &GpuContext,
    recipe: &Recipe,
    net: &mut Network,
    steps: usize,
) -> Result<Vec<StageRow>> {
    let batch = recipe.classifier.batch;
    let learning: Vec<usize> = (0..net.layers.len()).collect();
    if let Err(e) = net.enable_fine_tuning(ctx, batch, &learning) {
        eprintln!("fine-tuning not timed: {e}");
        return Ok(Vec::new());
    }
    let (input, classes) = recipe_input(recipe);
    let images: Vec<f32> = crate::conformance::random_f32(0xF17E, batch * input.len())
        .into_iter()
        .map(|v| 0.5 * (v + 1.0))
        .collect();
    let labels: Vec<u32> = (0..batch).map(|i| (i % classes) as u32).collect();
    net.classifier.set_labels(ctx, &labels)?;
    let step = FineTuneStep {
        optimizer: ClassifierOptimizer::Sgd {
            lr: 1e-3,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-2,
        },
        lr: 1e-3,
        dropout: 0.5,
        dropout_seed: 7,
    };
    let time = |net: &mut Network, backward: bool| -> Result<f64> {
        let run = |net: &mut Network| -> Result<()> {
            let mut rec = Recorder::new(ctx);
            net.fine_tune_forward(ctx, &mut rec, &images, batch, &step)?;
            if backward {
                net.fine_tune_backward(&mut rec, batch, &learning, &step)?;
            }
            rec.submit();
            Ok(())
        };
        run(net)?;
        ctx.wait()?;
        let started = Instant::now();
        for _ in 0..steps.max(1) {
            run(net)?;
        }
        ctx.wait()?;
        Ok(started.elapsed().as_secs_f64() / steps.max(1) as f64)
    };
    // A launch this adapter refuses (a loop budget no split fits) skips the rows with the
    // reason, as a block fine-tuning cannot differentiate does.
    let (forward, whole) = match time(net, false).and_then(|f| Ok((f, time(net, true)?))) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fine-tuning not timed: {e}");
            return Ok(Vec::new());
        }
    };
    let row = |stage: &str, seconds: f64| StageRow {
        stage: stage.into(),
        batch,
        steps: steps.max(1),
        seconds_per_step: seconds,
        images_per_s: batch as f64 / seconds,
        adapter: ctx.adapter_name(),
    };
    Ok(vec![
        row("fine-tuning forward", forward),
        row(
            "fine-tuning backward (step − forward)",
            (whole - forward).max(f64::MIN_POSITIVE),
        ),
        row("fine-tuning step (forward + backward)", whole),
    ])
}

/// One kernel's share of one stage's step, from `profile_train`.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    pub stage: String,
    /// `shader::entry`.
    pub kernel: String,
    /// Workgroups per dispatch (one row per kernel and grid).
    pub groups: [u32; 3],
    pub calls_per_step: f64,
    /// Device time per step (timestamps around each dispatch, or wall time per lone
    /// submission where the adapter has no timestamps: see `timer`).
    pub device_ms_per_step: f64,
    /// Host time per step spent recording these dispatches (bind groups, parameter buffers,
    /// checks, uploads).
    pub host_ms_per_step: f64,
    pub timer: String,
    pub adapter: String,
}

/// Profiles every stage of `bench_train` kernel by kernel: `steps` steps after one warm-up,
/// each dispatch timed alone (`Recorder::profiling`), summed per kernel and divided by the
/// step count. Rows come per stage, in order of the kernel's first dispatch. `force_wall`
/// times each dispatch by a fenced submission even where timestamps exist.
pub fn profile_train(
    ctx: &GpuContext,
    recipe: &Recipe,
    steps: usize,
    force_wall: bool,
) -> Result<Vec<KernelRow>> {
    let (mut net, images) = synthetic_network(ctx, recipe)?;
    let batch = recipe.hebbian.batch;
    let steps = steps.max(1);
    let mut rows = Vec::new();
    for (label, upto, learning) in stages(recipe, &net) {
        let mut plain = Recorder::new(ctx);
        net.train_step(ctx, &mut plain, &images, batch, upto, &learning)?;
        plain.submit();
        ctx.wait()?;
        let mut per_kernel: Vec<(String, [u32; 3], usize, f64, f64)> = Vec::new();
        let mut timer = String::new();
        for _ in 0..steps {
            let mut rec = Recorder::profiling(ctx, force_wall);
            timer = rec
                .profile_timer()
                .map(|t| t.name())
                .unwrap_or("")
                .to_string();
            net.train_step(ctx, &mut rec, &images, batch, upto, &learning)?;
            for d in rec.finish_profile()? {
                match per_kernel
                    .iter_mut()
                    .find(|k| k.0 == d.kernel && k.1 == d.groups)
                {
                    Some(k) => {
                        k.2 += 1;
                        k.3 += d.device_seconds;
                        k.4 += d.host_seconds;
                    }
                    None => {
                        per_kernel.push((d.kernel, d.groups, 1, d.device_seconds, d.host_seconds))
                    }
                }
            }
        }
        for (kernel, groups, calls, device, host) in per_kernel {
            rows.push(KernelRow {
                stage: label.clone(),
                kernel,
                groups,
                calls_per_step: calls as f64 / steps as f64,
                device_ms_per_step: device * 1e3 / steps as f64,
                host_ms_per_step: host * 1e3 / steps as f64,
                timer: timer.clone(),
                adapter: ctx.adapter_name(),
            });
        }
    }
    Ok(rows)
}

/// Prints each stage's kernels, heaviest first, with their share of the stage's device time.
pub fn print_profile(rows: &[KernelRow]) {
    let mut stages: Vec<&str> = Vec::new();
    for r in rows {
        if !stages.contains(&r.stage.as_str()) {
            stages.push(&r.stage);
        }
    }
    for stage in stages {
        let mut mine: Vec<&KernelRow> = rows.iter().filter(|r| r.stage == stage).collect();
        let device: f64 = mine.iter().map(|r| r.device_ms_per_step).sum();
        let host: f64 = mine.iter().map(|r| r.host_ms_per_step).sum();
        let calls: f64 = mine.iter().map(|r| r.calls_per_step).sum();
        mine.sort_by(|a, b| b.device_ms_per_step.total_cmp(&a.device_ms_per_step));
        println!(
            "{stage}: {calls:.0} dispatches, device {device:.2} ms, host {host:.2} ms per step ({} timing)",
            mine.first().map(|r| r.timer.as_str()).unwrap_or("")
        );
        println!(
            "  {:<36} {:>16} {:>6} {:>11} {:>7} {:>9}",
            "kernel", "workgroups", "calls", "device ms", "share", "host ms"
        );
        for r in mine {
            let [x, y, z] = r.groups;
            println!(
                "  {:<36} {:>16} {:>6.1} {:>11.3} {:>6.1}% {:>9.3}",
                r.kernel,
                format!("{x}x{y}x{z}"),
                r.calls_per_step,
                r.device_ms_per_step,
                100.0 * r.device_ms_per_step / device.max(f64::MIN_POSITIVE),
                r.host_ms_per_step
            );
        }
    }
}

pub fn print_stages(rows: &[StageRow]) {
    println!(
        "{:<42} {:>6} {:>6} {:>12} {:>10}",
        "stage", "batch", "steps", "ms/step", "images/s"
    );
    for r in rows {
        println!(
            "{:<42} {:>6} {:>6} {:>12.2} {:>10.1}",
            r.stage,
            r.batch,
            r.steps,
            r.seconds_per_step * 1e3,
            r.images_per_s
        );
    }
}
