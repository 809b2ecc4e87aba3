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
use crate::nn::layer::Mode;
use crate::nn::network::Network;
use crate::nn::recipe::{DatasetKind, Recipe, Schedule};

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

/// The modes of each stage `hebb train` runs for this recipe, with their labels: one per
/// layer (greedy) or one for all layers (simultaneous), then the frozen forward pass.
pub fn stages(recipe: &Recipe, net: &Network) -> Vec<(String, usize, Vec<Mode>)> {
    let last = net.layers.len() - 1;
    let mut out = Vec::new();
    if recipe.hebbian.schedule == Schedule::Simultaneous {
        let all: Vec<usize> = (0..=last).collect();
        out.push((
            "all layers (simultaneous)".to_string(),
            last,
            net.stage_modes(last, &all),
        ));
    } else {
        for upto in 0..=last {
            let modes = net.stage_modes(upto, &[upto]);
            out.push((format!("layer {upto} (greedy)"), upto, modes));
        }
    }
    out.push((
        "frozen forward".to_string(),
        last,
        net.stage_modes(last, &[]),
    ));
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
    for (label, upto, modes) in stages(recipe, &net) {
        let step = |net: &mut Network| -> Result<()> {
            let mut rec = Recorder::new(ctx);
            net.forward(ctx, &mut rec, &images, batch, upto, |i| modes[i])?;
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
    // One Hebbian epoch over the same images for every learning stage: the stages run in
    // sequence, so their times per image add.
    let learning: Vec<&StageRow> = rows
        .iter()
        .filter(|r| r.stage != "frozen forward")
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
