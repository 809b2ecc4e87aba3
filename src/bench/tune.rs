//! `hebb tune`: times every kernel configuration (`GemmTiles::tune_candidates` for GEMMs, the
//! tiled candidates for the implicit-GEMM conv kernels) on the shapes a workload launches,
//! and keeps the fastest per shape class in the tuning cache (`gpu::tuning`), which later runs
//! on this adapter and driver use. The untuned default is timed in the same run, so each
//! entry records what tuning gained.

use std::collections::HashSet;

use serde::Serialize;

use crate::bench::train::{stages, synthetic_network};
use crate::bench::{BenchBudget, time_launch};
use crate::conformance::random_f32;
use crate::error::Result;
use crate::gpu::tuning::{ShapeClass, TunedEntry, Tuning};
use crate::gpu::{GpuContext, GpuTimer, LoggedShape, Recorder, Tensor};
use crate::kernels::conv::{self, ConvKernel, ConvOptions};
use crate::kernels::gemm::{self, Gemm, GemmTiles, SplitK};
use crate::nn::recipe::Recipe;

/// One tuned shape class.
#[derive(Clone, Debug, Serialize)]
pub struct TuneRow {
    pub class: String,
    pub shape: [usize; 3],
    pub default: String,
    pub default_gflops: f64,
    pub best: String,
    pub best_gflops: f64,
    pub candidates: usize,
}

/// Without a recipe: a square product, and the forward and update products of Lagani's
/// model_6l conv2 (batch 64).
pub fn default_shapes() -> Vec<LoggedShape> {
    let gemm = |m, n, k, trans_a, trans_b| LoggedShape::Gemm {
        m,
        n,
        k,
        trans_a,
        trans_b,
    };
    vec![
        gemm(1024, 1024, 1024, false, false),
        gemm(9216, 128, 864, false, true),
        gemm(128, 864, 9216, true, false),
    ]
}

/// The GEMM and conv launches of one step of every training stage of `recipe` (and its
/// frozen forward pass), on random images.
pub fn recipe_shapes(ctx: &GpuContext, recipe: &Recipe) -> Result<Vec<LoggedShape>> {
    let (mut net, images) = synthetic_network(ctx, recipe)?;
    let batch = recipe.hebbian.batch;
    ctx.log_shapes();
    let run = (|| -> Result<()> {
        for (_, upto, learning) in stages(recipe, &net) {
            let mut rec = Recorder::new(ctx);
            net.train_step(ctx, &mut rec, &images, batch, upto, &learning)?;
            rec.submit();
        }
        ctx.wait()
    })();
    let shapes = ctx.take_shape_log();
    run.map(|_| shapes)
}

fn class_of(shape: &LoggedShape) -> Result<ShapeClass> {
    Ok(match shape {
        LoggedShape::Gemm {
            m,
            n,
            k,
            trans_a,
            trans_b,
        } => Gemm::new(*m, *n, *k)
            .trans(*trans_a, *trans_b)
            .shape_class(),
        LoggedShape::Conv {
            kernel,
            geometry,
            c_out,
        } => {
            let (n, d) = geometry.patch_shape()?;
            let (m, n_out, k) = kernel.gemm_dims(n, d, *c_out);
            kernel.shape_class(m, n_out, k)
        }
    })
}

/// Times the candidates on the first shape of each class; returns the winners and a report.
pub fn tune(
    ctx: &GpuContext,
    shapes: &[LoggedShape],
    timer: &GpuTimer,
    budget: BenchBudget,
    mut progress: impl FnMut(&TuneRow),
) -> Result<(Tuning, Vec<TuneRow>)> {
    let mut tuning = Tuning::default();
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for shape in shapes {
        let class = class_of(shape)?;
        if !seen.insert(class) {
            continue;
        }
        let (dims, default, results) = match shape {
            LoggedShape::Gemm {
                m,
                n,
                k,
                trans_a,
                trans_b,
            } => tune_gemm(ctx, *m, *n, *k, (*trans_a, *trans_b), timer, budget)?,
            LoggedShape::Conv {
                kernel,
                geometry,
                c_out,
            } => tune_conv(ctx, *kernel, geometry, *c_out, timer, budget)?,
        };
        let flops = 2.0 * dims.iter().map(|&v| v as f64).product::<f64>();
        let rate = |s: f64| flops / s * 1e-9;
        let default_s = results
            .iter()
            .find(|(t, _)| *t == default)
            .map(|(_, s)| *s)
            .unwrap_or(f64::INFINITY);
        let (best, best_s) = results
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((default, default_s));
        tuning.insert(TunedEntry {
            class,
            shape: dims,
            tiles: best,
            gflops: rate(best_s),
            default_tiles: default,
            default_gflops: rate(default_s),
        });
        let row = TuneRow {
            class: class.label(),
            shape: dims,
            default: default.label(),
            default_gflops: rate(default_s),
            best: best.label(),
            best_gflops: rate(best_s),
            candidates: results.len(),
        };
        progress(&row);
        rows.push(row);
    }
    Ok((tuning, rows))
}

type Timed = ([usize; 3], GemmTiles, Vec<(GemmTiles, f64)>);

fn tune_gemm(
    ctx: &GpuContext,
    m: usize,
    n: usize,
    k: usize,
    trans: (bool, bool),
    timer: &GpuTimer,
    budget: BenchBudget,
) -> Result<Timed> {
    let g = Gemm::new(m, n, k).trans(trans.0, trans.1).shaped();
    let (ar, ac) = g.a_dims();
    let (br, bc) = g.b_dims();
    let a = Tensor::from_f32(ctx, "A", &[ar, ac], &random_f32(1, ar * ac))?;
    let b = Tensor::from_f32(ctx, "B", &[br, bc], &random_f32(2, br * bc))?;
    let c = Tensor::from_f32(ctx, "C", &[m, n], &random_f32(3, m * n))?;
    let default = g.default_tiles(ctx);
    let mut candidates = vec![default];
    for t in GemmTiles::tune_candidates(ctx) {
        // Skip configurations this shape would not run (the subgroup kernel's fallback).
        let resolved = g.clone().tiles(t).resolved_tiles(ctx)?;
        if resolved == t && !candidates.contains(&t) {
            candidates.push(t);
        }
    }
    let mut results = Vec::new();
    for t in candidates {
        let call = g.clone().tiles(t);
        let (s, _) = time_launch(ctx, timer, budget, |rec| gemm::gemm(rec, &call, &a, &b, &c))?;
        results.push((t, s));
    }
    Ok(([m, n, k], default, results))
}

fn tune_conv(
    ctx: &GpuContext,
    kernel: ConvKernel,
    geometry: &crate::kernels::im2col::ConvGeometry,
    c_out: usize,
    timer: &GpuTimer,
    budget: BenchBudget,
) -> Result<Timed> {
    let (n, d) = geometry.patch_shape()?;
    let (m, n_out, k) = kernel.gemm_dims(n, d, c_out);
    let x_len = geometry.batch * geometry.in_channels * geometry.h * geometry.w;
    let x = Tensor::from_f32(ctx, "x", &[x_len], &random_f32(1, x_len))?;
    let w = Tensor::from_f32(ctx, "W", &[c_out, d], &random_f32(2, c_out * d))?;
    let rows = Tensor::from_f32(ctx, "U", &[n, c_out], &random_f32(3, n * c_out))?;
    let dw = Tensor::from_f32(ctx, "dW", &[c_out, d], &random_f32(4, c_out * d))?;
    let default = GemmTiles::for_shape(ctx, m, n_out);
    let mut candidates = vec![default];
    for t in GemmTiles::tune_candidates(ctx) {
        if t.kind == gemm::GemmKind::Tiled && !candidates.contains(&t) {
            candidates.push(t);
        }
    }
    let mut results = Vec::new();
    for t in candidates {
        let opts = ConvOptions {
            tiles: Some(t),
            split_k: SplitK::Auto,
            ..ConvOptions::default()
        };
        let (s, _) = time_launch(ctx, timer, budget, |rec| match kernel {
            ConvKernel::ForwardRows => {
                conv::conv_forward_rows_with(rec, geometry, &x, 0, &w, c_out, &opts, &rows)
            }
            ConvKernel::Update => {
                conv::conv_update_with(rec, geometry, &rows, &x, 0, c_out, &opts, &dw)
            }
        })?;
        results.push((t, s));
    }
    Ok(([m, n_out, k], default, results))
}

pub fn print_row(r: &TuneRow) {
    println!(
        "{:<36} {:>18} {:>22} {:>9.2} {:>22} {:>9.2} {:>6.2}x  ({} timed)",
        r.class,
        format!("{}x{}x{}", r.shape[0], r.shape[1], r.shape[2]),
        r.default,
        r.default_gflops,
        r.best,
        r.best_gflops,
        r.best_gflops / r.default_gflops,
        r.candidates
    );
}

pub fn print_header() {
    println!(
        "{:<36} {:>18} {:>22} {:>9} {:>22} {:>9} {:>7}",
        "shape class", "M x N x K", "default", "GFLOP/s", "best", "GFLOP/s", "gain"
    );
}
