//! `hebb bench rules`: one training step of each preset on layer shapes from the papers, fused
//! (FastHebb) against its naive per-sample twin, and against the GEMMs the fused step contains.
//!
//! FLOPs count the step's matrix products, 2·N·C·D each (the forward U = X·Wᵀ and the update
//! GᵀX; Sanger adds GᵀG and tril(·)·W, ICA adds YᵀS and M·W, BCM the lateral product); the
//! element-wise work around them is not counted. The naive twin does the same useful work.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::bench::{BenchBudget, time_launch};
use crate::conformance::random_f32;
use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, GpuTimer, Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm};
use crate::rules::gpu::{FromForward, GpuRule, RuleInit, UpdatePath};
use crate::rules::preset::{Preset, RuleConfig, UpdateFamily};

/// A preset on a layer shape: N patch rows, C neurons, fan-in D.
#[derive(Clone, Debug)]
pub struct RuleCase {
    pub label: &'static str,
    pub preset: &'static str,
    pub params: serde_json::Value,
    pub n: usize,
    pub c: usize,
    pub d: usize,
}

fn sgd(lr: f64) -> serde_json::Value {
    json!({"kind": "sgd", "lr": lr, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0})
}

/// The shapes of issue #3: SoftHebb CIFAR-10 conv1/2/3 at batch 10 and 64, Lagani model_6l
/// conv2 (96→128, 3×3 on 14×14, batch 64: N = 9216, D = 864, C = 128), an MNIST fully
/// connected layer 784→2000 at batch 100 and 1000, and BCM / Krotov at 784→100 and 784→2000.
pub fn default_cases() -> Vec<RuleCase> {
    let hpca = json!({"adaptive_step": false, "optimizer": sgd(1e-3)});
    let swta = json!({"temperature": 0.02, "optimizer": sgd(1e-3)});
    let adaptive = |t: f64, lr: f64| json!({"t_invert": t, "optimizer": {"kind": "softhebb-adaptive", "lr": lr, "power": 0.5}});
    let soft = json!({"t_invert": 12.0, "bias": false,
        "optimizer": {"kind": "softhebb-adaptive", "lr": 0.045, "power": 0.2}});
    let bcm = json!({"activation": "relu", "lateral_strength": -0.1, "gamma": 0.5, "theta_eps": 1e-30,
        "optimizer": {"kind": "adam", "lr": 0.02, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}});
    let krotov = json!({"p": 3.0, "k": 7, "delta": 0.4, "prec": 1e-30, "optimizer": sgd(0.02)});
    let case = |label, preset, params: &serde_json::Value, n, c, d| RuleCase {
        label,
        preset,
        params: params.clone(),
        n,
        c,
        d,
    };
    vec![
        case(
            "lagani model_6l conv2 b64",
            "lagani/hpca",
            &hpca,
            9216,
            128,
            864,
        ),
        // fc5 (256·3·3 → 4,096): far more neurons than rows, where Sanger's update by
        // running reconstruction does 1/33 of the GEMM order's work.
        case(
            "lagani model_6l fc5 b64",
            "lagani/hpca",
            &hpca,
            64,
            4096,
            2304,
        ),
        case(
            "lagani model_6l conv2 b64",
            "lagani/soft-wta-exp",
            &swta,
            9216,
            128,
            864,
        ),
        case(
            "softhebb cifar conv1 b10",
            "softhebb/softkrotov",
            &adaptive(1.0, 0.08),
            10 * 1024,
            96,
            75,
        ),
        case(
            "softhebb cifar conv1 b64",
            "softhebb/softkrotov",
            &adaptive(1.0, 0.08),
            64 * 1024,
            96,
            75,
        ),
        case(
            "softhebb cifar conv2 b10",
            "softhebb/softkrotov",
            &adaptive(0.65, 0.005),
            10 * 256,
            384,
            864,
        ),
        case(
            "softhebb cifar conv2 b64",
            "softhebb/softkrotov",
            &adaptive(0.65, 0.005),
            64 * 256,
            384,
            864,
        ),
        case(
            "softhebb cifar conv3 b10",
            "softhebb/softkrotov",
            &adaptive(0.25, 0.01),
            10 * 64,
            1536,
            3456,
        ),
        case(
            "softhebb cifar conv3 b64",
            "softhebb/softkrotov",
            &adaptive(0.25, 0.01),
            64 * 64,
            1536,
            3456,
        ),
        case(
            "mnist fc 784-2000 b100",
            "softhebb/soft",
            &soft,
            100,
            2000,
            784,
        ),
        case(
            "mnist fc 784-2000 b1000",
            "softhebb/soft",
            &soft,
            1000,
            2000,
            784,
        ),
        case("bcm 784-100 b100", "bcm/curti", &bcm, 100, 100, 784),
        case("bcm 784-2000 b100", "bcm/curti", &bcm, 100, 2000, 784),
        case(
            "krotov 784-100 b100",
            "krotov/hopfield",
            &krotov,
            100,
            100,
            784,
        ),
        case(
            "krotov 784-2000 b100",
            "krotov/hopfield",
            &krotov,
            100,
            2000,
            784,
        ),
    ]
}

/// The matrix products of one fused step, as GEMM descriptors.
fn contained_gemms(preset: &Preset, n: usize, c: usize, d: usize) -> Vec<Gemm> {
    let forward = Gemm::new(n, c, d).trans(false, true);
    let update = Gemm::new(c, d, n).trans(true, false);
    let mut g = vec![forward, update];
    match preset {
        Preset::LaganiHpca { .. } | Preset::LaganiHpcaTanh { .. } | Preset::HebbdemoHpca { .. } => {
            g.push(Gemm::new(c, c, n).trans(true, false));
            g.push(Gemm::new(c, d, c));
        }
        Preset::LaganiIca | Preset::LaganiHica | Preset::LaganiIcaNrm { .. } => {
            g[1] = Gemm::new(c, c, n).trans(true, false);
            g.push(Gemm::new(c, d, c));
        }
        Preset::BcmCurti { .. } => g.push(Gemm::new(n, c, c).trans(false, true)),
        _ => {}
    }
    g
}

/// FLOPs of one step of `case` (its contained GEMMs).
pub fn step_flops(case: &RuleCase) -> f64 {
    match RuleConfig::from_params(case.preset, &case.params) {
        Ok(config) => contained_gemms(&config.preset, case.n, case.c, case.d)
            .iter()
            .map(|g| g.flops())
            .sum(),
        Err(_) => f64::INFINITY,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleBenchRow {
    pub kernel: String,
    pub preset: String,
    /// `fused` (FastHebb: batched GEMMs, the projection and the competition as separate
    /// kernels, the rest of the update in the update GEMM's epilogue), `fused-sepupd` (the same
    /// with the decay, normaliser and optimizer as kernels of their own), `fused+pc` (`fused`
    /// with the fused projection + competition kernel, where the layer has a plan), `scan`
    /// (`fused` with Sanger's update by running reconstruction; its GFLOP/s count the GEMM
    /// order's FLOPs, the same useful work), `naive` or `gemms` (the fused step's GEMMs alone).
    pub variant: String,
    pub shape: BTreeMap<String, usize>,
    pub label: String,
    pub median_s: f64,
    pub gflops: f64,
    pub speedup_vs_naive: f64,
    /// `fused+pc` rows: speed over the `fused` step's (>1: the fused projection wins).
    pub pc_speedup: f64,
    /// `fused` rows: speed over the `fused-sepupd` step's (>1: the update epilogues win).
    pub epilogue_speedup: f64,
    /// Fused step time over the time of the GEMMs it contains (1.0 = no overhead).
    pub cost_vs_gemms: f64,
    /// GFLOP/s of this row over the contained GEMMs' GFLOP/s on the same shapes.
    pub fraction_of_gemm: f64,
    pub timer: String,
    pub adapter: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Naive steps of more than this many term operations (terms, times the neurons each of
/// Sanger's and ICA's terms sums over) are skipped on software adapters (minutes per step);
/// GPUs run them all.
const CPU_NAIVE_LIMIT: f64 = 2.5e9;

pub fn bench_rules(
    ctx: &GpuContext,
    cases: &[RuleCase],
    timer: &GpuTimer,
    budget: BenchBudget,
    with_naive: bool,
) -> Result<Vec<RuleBenchRow>> {
    let mut rows = Vec::new();
    for case in cases {
        let config = RuleConfig::from_params(case.preset, &case.params).map_err(|message| {
            HebbError::Launch {
                kernel: case.preset.into(),
                message,
            }
        })?;
        let (n, c, d) = (case.n, case.c, case.d);
        let scale = 1.0 / (d as f32).sqrt();
        let init = RuleInit {
            w: random_f32(7, c * d).iter().map(|v| v * scale).collect(),
            ..Default::default()
        };
        let x = Tensor::from_f32(ctx, "X", &[n, d], &random_f32(8, n * d))?;
        let gemms = contained_gemms(&config.preset, n, c, d);
        let flops: f64 = gemms.iter().map(|g| g.flops()).sum();
        let shape: BTreeMap<String, usize> = [("n", n), ("c", c), ("d", d)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let row = |variant: &str, median_s: f64| RuleBenchRow {
            kernel: "rule_step".into(),
            preset: case.preset.into(),
            variant: variant.into(),
            shape: shape.clone(),
            label: case.label.into(),
            median_s,
            gflops: flops / median_s * 1e-9,
            speedup_vs_naive: f64::NAN,
            pc_speedup: f64::NAN,
            epilogue_speedup: f64::NAN,
            cost_vs_gemms: f64::NAN,
            fraction_of_gemm: f64::NAN,
            timer: timer.kind.name().into(),
            adapter: ctx.adapter_name(),
            note: None,
        };

        // The contained GEMMs alone, on buffers of the same shapes.
        let operands: Vec<(Tensor, Tensor, Tensor)> = gemms
            .iter()
            .map(|g| {
                let (ar, ac) = g.a_dims();
                let (br, bc) = g.b_dims();
                Ok((
                    Tensor::from_f32(ctx, "A", &[ar * ac], &random_f32(1, ar * ac))?,
                    Tensor::from_f32(ctx, "B", &[br * bc], &random_f32(2, br * bc))?,
                    Tensor::from_f32(ctx, "C", &[g.m * g.n], &random_f32(3, g.m * g.n))?,
                ))
            })
            .collect::<Result<_>>()?;
        let (gemm_s, _) = time_launch(ctx, timer, budget, |rec: &mut Recorder<'_>| {
            for (g, (a, b, cm)) in gemms.iter().zip(&operands) {
                gemm::gemm(rec, g, a, b, cm)?;
            }
            Ok(())
        })?;

        // The FastHebb step with the projection and the competition as separate kernels, with
        // the update as kernels of its own and in the update GEMM's epilogue, then (where the
        // layer has a plan) with the fused projection + competition kernel.
        let mut fused_rule =
            GpuRule::with_path(ctx, config.clone(), c, d, n, &init, UpdatePath::Fused)?;
        // Sanger's GEMM order here; its running reconstruction is the `scan` row below.
        let scans = fused_rule.sanger_scan();
        fused_rule.set_sanger_scan(ctx, false)?;
        fused_rule.set_fused_projection(ctx, false);
        fused_rule.set_fused_update(false);
        let (sepupd_s, _) = time_launch(ctx, timer, budget, |rec| {
            fused_rule.step(rec, &x, n, None, FromForward::default())
        })?;
        fused_rule.set_fused_update(true);
        let (fused_s, _) = time_launch(ctx, timer, budget, |rec| {
            fused_rule.step(rec, &x, n, None, FromForward::default())
        })?;
        // Sanger's family: the update by running reconstruction (the projection and the
        // competition as in `fused`), which `scans` says the policy picks for this shape.
        let scan_s = if fused_rule.set_sanger_scan(ctx, true)? {
            let (t, _) = time_launch(ctx, timer, budget, |rec| {
                fused_rule.step(rec, &x, n, None, FromForward::default())
            })?;
            fused_rule.set_sanger_scan(ctx, false)?;
            Some(t)
        } else {
            None
        };
        let pc_s = if fused_rule.set_fused_projection(ctx, true) {
            Some(
                time_launch(ctx, timer, budget, |rec| {
                    fused_rule.step(rec, &x, n, None, FromForward::default())
                })?
                .0,
            )
        } else {
            None
        };

        let terms = n as f64 * c as f64 * d as f64;
        // Sanger's and ICA's naive terms each sum over up to C neurons (C/2 on average).
        let naive_work = match config.preset.update_family() {
            UpdateFamily::Sanger | UpdateFamily::Ica => terms * (c as f64 / 2.0).max(1.0),
            _ => terms,
        };
        let too_slow =
            ctx.info.device_type == wgpu::DeviceType::Cpu && naive_work > CPU_NAIVE_LIMIT;
        let naive_s = if !with_naive || too_slow {
            None
        } else {
            let mut naive_rule =
                GpuRule::with_path(ctx, config.clone(), c, d, n, &init, UpdatePath::Naive)?;
            let one = BenchBudget {
                sample_s: 0.0,
                samples: 1,
            };
            let b = if terms > 2e8 { one } else { budget };
            Some(
                time_launch(ctx, timer, b, |rec| {
                    naive_rule.step(rec, &x, n, None, FromForward::default())
                })?
                .0,
            )
        };

        let mut gemm_row = row("gemms", gemm_s);
        gemm_row.fraction_of_gemm = 1.0;
        let mut sepupd = row("fused-sepupd", sepupd_s);
        sepupd.cost_vs_gemms = sepupd_s / gemm_s;
        sepupd.fraction_of_gemm = gemm_s / sepupd_s;
        let mut fused = row("fused", fused_s);
        fused.cost_vs_gemms = fused_s / gemm_s;
        fused.fraction_of_gemm = gemm_s / fused_s;
        fused.epilogue_speedup = sepupd_s / fused_s;
        let mut pc = pc_s.map(|ps| {
            let mut r = row("fused+pc", ps);
            r.cost_vs_gemms = ps / gemm_s;
            r.fraction_of_gemm = gemm_s / ps;
            r.pc_speedup = fused_s / ps;
            r
        });
        match naive_s {
            Some(ns) => {
                let mut naive = row("naive", ns);
                naive.speedup_vs_naive = 1.0;
                naive.fraction_of_gemm = gemm_s / ns;
                fused.speedup_vs_naive = ns / fused_s;
                sepupd.speedup_vs_naive = ns / sepupd_s;
                if let Some(r) = pc.as_mut() {
                    r.speedup_vs_naive = ns / r.median_s;
                }
                rows.push(naive);
            }
            None if with_naive => {
                fused.note = Some(format!(
                    "naive twin not run: {naive_work:.1e} term operations per step is minutes on a software adapter"
                ));
            }
            None => {}
        }
        let scan = scan_s.map(|t| {
            let mut r = row("scan", t);
            r.cost_vs_gemms = t / gemm_s;
            r.fraction_of_gemm = gemm_s / t;
            r.speedup_vs_naive = naive_s.map_or(f64::NAN, |ns| ns / t);
            r.note = Some(format!(
                "{:.2}x the fused step; the policy {} it here",
                fused_s / t,
                if scans { "picks" } else { "does not pick" }
            ));
            r
        });
        rows.push(sepupd);
        rows.push(fused);
        rows.extend(scan);
        rows.extend(pc);
        rows.push(gemm_row);
    }
    Ok(rows)
}

pub fn print_rule_rows(rows: &[RuleBenchRow]) {
    println!(
        "{:<22} {:<28} {:<12} {:<22} {:>11} {:>9} {:>8} {:>7} {:>6} {:>8}  timer",
        "preset",
        "layer",
        "variant",
        "N x C x D",
        "median",
        "GFLOP/s",
        "x naive",
        "epi/sep",
        "pc/sep",
        "/ gemms"
    );
    for r in rows {
        println!(
            "{:<22} {:<28} {:<12} {:<22} {:>9.3}ms {:>9.2} {:>8.1} {:>7.2} {:>6.2} {:>8.2}  {}{}",
            r.preset,
            r.label,
            r.variant,
            format!("{}x{}x{}", r.shape["n"], r.shape["c"], r.shape["d"]),
            r.median_s * 1e3,
            r.gflops,
            r.speedup_vs_naive,
            r.epilogue_speedup,
            r.pc_speedup,
            r.cost_vs_gemms,
            r.timer,
            r.note
                .as_ref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
    }
}
