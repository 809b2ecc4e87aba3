//! Random-shape property checks of every preset: the fused GPU rule and its naive twin against
//! the float64 reference, on ragged layer sizes (fresh seeded inputs, several steps where the
//! rule is smooth). Rank-based presets (k-WTA, hard WTA, SoftKrotov's winner, Krotov) run one
//! step and redraw inputs until every ranked row has a gap of at least 1e-3·max|v| between the
//! ranks that decide the update (FORMAT.md §7), so float32 rounding cannot flip a decision.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::conformance::Row;
use crate::conformance::cases::{RuleVariant, run_case_gpu};
use crate::conformance::derive_seed;
use crate::conformance::{nudged, rel_err};
use crate::gpu::GpuContext;
use crate::reference;
use crate::rules::case::{Array, Case, Layer, PaddingMode};
use crate::rules::preset::RuleConfig;

/// float32 bar of FORMAT.md §6 (an all-float32 implementation of the spec stays below 2.2e-6 on
/// the golden cases).
pub const RULE_TOL: f64 = 1e-4;

/// The largest move of a tensor under the nudge that a random draw may show; a draw past it
/// is redrawn, as one whose ranks nearly tie is: its bar, RULE_TOL + 4 times the move, would
/// exceed 1e-2 and no longer tell a wrong kernel from a right one.
const MAX_NUDGE_MOVE: f64 = 2.5e-3;

/// The bar of each compared tensor of a random case: RULE_TOL, plus four times how far the
/// float64 result itself moves when the inputs x are nudged (`conformance::nudged`, 16 f32
/// roundings); None where a move is not finite or passes MAX_NUDGE_MOVE. The move stays
/// below a tenth of RULE_TOL on most draws, but not where the draw is ill-conditioned:
/// Lagani's out = relu(X·Wᵀ/‖w‖) for one sample whose seven dot products nearly cancel
/// came out 1.9e-4 off in one seed of about 170 on lavapipe, every GPU path alike, and the
/// reference itself moved 6.5e-4 under the nudge.
fn tensor_tolerances(
    case: &Case,
    want: &BTreeMap<String, Array>,
    seed: u64,
) -> Option<BTreeMap<String, f64>> {
    let mut moved_case = case.clone();
    let x = moved_case.inputs.get_mut("x")?;
    x.data = nudged(&x.data, seed);
    let moved = reference::rules::run_case(&moved_case).ok()?;
    want.iter()
        .map(|(key, w)| {
            let m = moved.get(key).filter(|m| m.shape == w.shape)?;
            let move_by_nudge = rel_err(&m.data, &w.data);
            (move_by_nudge <= MAX_NUDGE_MOVE).then(|| (key.clone(), RULE_TOL + 4.0 * move_by_nudge))
        })
        .collect()
}

/// Every preset with the authors' typical params, and which ranks decide its update.
fn presets() -> Vec<(&'static str, serde_json::Value, Ranked)> {
    let sgd = |lr: f64| json!({"kind": "sgd", "lr": lr, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0});
    let nesterov =
        json!({"kind": "sgd", "lr": 1e-3, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4});
    let adaptive = json!({"kind": "softhebb-adaptive", "lr": 0.05, "power": 0.5});
    let adam = json!({"kind": "adam", "lr": 0.02, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-3});
    vec![
        (
            "lagani/hpca",
            json!({"adaptive_step": true, "optimizer": sgd(0.01)}),
            Ranked::None,
        ),
        (
            "lagani/hpca-tanh",
            json!({"adaptive_step": false, "var_adaptive": true, "bn_momentum": 0.1, "bn_eps": 1e-5, "optimizer": sgd(0.01)}),
            Ranked::None,
        ),
        (
            "lagani/kwta",
            json!({"k": 3, "optimizer": sgd(0.01)}),
            Ranked::Similarity(3),
        ),
        (
            "lagani/soft-wta-exp",
            json!({"temperature": 0.1, "optimizer": sgd(0.01)}),
            Ranked::None,
        ),
        (
            "lagani/soft-wta-pow",
            json!({"power": 20.0, "optimizer": sgd(0.01)}),
            Ranked::None,
        ),
        ("lagani/ica", json!({"optimizer": sgd(1e-3)}), Ranked::None),
        ("lagani/hica", json!({"optimizer": sgd(1e-3)}), Ranked::None),
        (
            "lagani/ica-nrm",
            json!({"bn_momentum": 0.1, "bn_eps": 1e-5, "optimizer": sgd(1e-3)}),
            Ranked::None,
        ),
        (
            "lagani/final-supervised",
            json!({"optimizer": sgd(0.01)}),
            Ranked::None,
        ),
        (
            "hebbdemo/soft-wta",
            json!({"t_invert": 5.0, "w_nrm": true, "activation": "identity", "optimizer": nesterov.clone()}),
            Ranked::None,
        ),
        (
            "hebbdemo/hpca",
            json!({"w_nrm": false, "activation": "relu", "optimizer": nesterov}),
            Ranked::None,
        ),
        (
            "softhebb/softkrotov",
            json!({"t_invert": 1.0, "optimizer": adaptive.clone()}),
            Ranked::Currents(vec![1]),
        ),
        (
            "softhebb/soft",
            json!({"t_invert": 2.0, "bias": false, "optimizer": adaptive.clone()}),
            Ranked::None,
        ),
        (
            "softhebb/hard",
            json!({"optimizer": adaptive}),
            Ranked::Currents(vec![1]),
        ),
        (
            "bcm/curti",
            json!({"activation": "logistic", "lateral_strength": -0.1, "gamma": 0.5, "theta_eps": 1e-30, "optimizer": adam}),
            Ranked::None,
        ),
        (
            "krotov/hopfield",
            json!({"p": 3.0, "k": 3, "delta": 0.4, "prec": 1e-30, "optimizer": sgd(0.02)}),
            Ranked::Currents(vec![1, 2, 3]),
        ),
    ]
}

/// Which values are ranked, and at which ranks a gap is needed.
#[derive(Clone, Debug)]
enum Ranked {
    None,
    /// k-WTA on the similarity S (expected `u`), gap at rank k.
    Similarity(usize),
    /// Ranks of U (expected `u`).
    Currents(Vec<usize>),
}

/// A random case in memory: layer, inputs and the keys to compare.
#[allow(clippy::too_many_arguments)]
fn random_case(
    name: &str,
    params: &serde_json::Value,
    layer: Layer,
    batch: usize,
    input_hw: (usize, usize),
    steps: usize,
    seed: u64,
    with_teacher: bool,
) -> Result<Case, String> {
    let rule = RuleConfig::from_params(name, params)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (c, d) = (layer.neurons(), layer.fan_in());
    let (x_shape, x_len) = match &layer {
        Layer::Linear { in_features, .. } => (
            vec![steps, batch, *in_features],
            steps * batch * in_features,
        ),
        Layer::Conv2d { in_channels, .. } => (
            vec![steps, batch, *in_channels, input_hw.0, input_hw.1],
            steps * batch * in_channels * input_hw.0 * input_hw.1,
        ),
    };
    let positive_inputs = name.starts_with("krotov") || name.starts_with("bcm");
    let x: Vec<f64> = (0..x_len)
        .map(|_| {
            if positive_inputs {
                rng.random_range(0.0..1.0)
            } else {
                rng.random_range(-1.0..1.0)
            }
        })
        .collect();
    let scale = if name.starts_with("softhebb") {
        2.0
    } else {
        1.0
    } / (d as f64).sqrt();
    let w: Vec<f64> = (0..c * d)
        .map(|_| rng.random_range(-1.0..1.0) * scale * 1.7)
        .collect();
    let w_shape = match &layer {
        Layer::Linear { .. } => vec![c, d],
        Layer::Conv2d {
            in_channels,
            kernel,
            ..
        } => vec![c, *in_channels, kernel[0], kernel[1]],
    };
    let mut inputs = BTreeMap::new();
    inputs.insert("x".to_string(), Array::new(x_shape, x));
    inputs.insert("w".to_string(), Array::new(w_shape.clone(), w));
    inputs.insert(
        "bn_running_mean".to_string(),
        Array::new(vec![c], vec![0.0; c]),
    );
    inputs.insert(
        "bn_running_var".to_string(),
        Array::new(vec![c], vec![1.0; c]),
    );
    inputs.insert(
        "theta".to_string(),
        Array::new(
            vec![c],
            (0..c).map(|_| rng.random_range(0.0..0.5)).collect(),
        ),
    );
    if with_teacher {
        let t: Vec<f64> = (0..steps * batch)
            .flat_map(|_| {
                let label = rng.random_range(0..c);
                (0..c).map(move |i| if i == label { 1.0 } else { 0.0 })
            })
            .collect();
        inputs.insert("teacher".to_string(), Array::new(vec![steps, batch, c], t));
    }
    let mut keys = vec!["delta_w", "w"];
    match rule.preset {
        crate::rules::Preset::BcmCurti { .. } => keys.extend(["y", "theta"]),
        crate::rules::Preset::SofthebbSoftkrotov { .. }
        | crate::rules::Preset::SofthebbSoft { .. }
        | crate::rules::Preset::SofthebbHard => keys.extend(["u", "y", "lr_neuron"]),
        crate::rules::Preset::HebbdemoSoftWta { .. } => keys.extend(["y", "z"]),
        crate::rules::Preset::HebbdemoHpca { .. } => keys.push("y"),
        crate::rules::Preset::KrotovHopfield { .. } => keys.extend(["u", "y"]),
        crate::rules::Preset::LaganiHpcaTanh { .. } | crate::rules::Preset::LaganiIcaNrm { .. } => {
            keys.extend(["u", "y", "out", "bn_running_mean", "bn_running_var"])
        }
        crate::rules::Preset::LaganiKwta { .. }
        | crate::rules::Preset::LaganiSoftWtaExp { .. }
        | crate::rules::Preset::LaganiSoftWtaPow { .. } => keys.extend(["u", "y", "z", "out"]),
        _ => keys.extend(["u", "y", "out"]),
    }
    let expected = keys
        .into_iter()
        .map(|k| (k.to_string(), Array::new(vec![], vec![])))
        .collect();
    let output_hw = layer.output_hw(input_hw.0, input_hw.1)?;
    Ok(Case {
        path: PathBuf::from(format!("random:{name}")),
        name: format!("random-{}", name.replace('/', "-")),
        preset: name.to_string(),
        rule,
        layer,
        inputs,
        expected,
        tolerance: RULE_TOL,
        steps,
        batch,
        input_hw,
        output_hw,
    })
}

/// True when every row of the ranked values has gaps above 1e-3·max|v| at the given ranks.
fn ranks_separated(values: &Array, c: usize, ranks: &[usize]) -> bool {
    values.data.chunks(c).all(|row| {
        let mut sorted = row.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let scale = row.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
        ranks
            .iter()
            .filter(|&&r| r < c)
            .all(|&r| sorted[r - 1] - sorted[r] > 1e-3 * scale)
    })
}

/// Layer shapes: (layer, batch, input (H, W)), ragged, linear and conv.
fn shapes() -> Vec<(Layer, usize, (usize, usize))> {
    vec![
        (
            Layer::Linear {
                in_features: 65,
                out_features: 7,
            },
            33,
            (1, 1),
        ),
        (
            Layer::Linear {
                in_features: 33,
                out_features: 7,
            },
            1,
            (1, 1),
        ),
        (
            Layer::Linear {
                in_features: 257,
                out_features: 33,
            },
            7,
            (1, 1),
        ),
        (
            Layer::Conv2d {
                in_channels: 3,
                out_channels: 7,
                kernel: [3, 3],
                stride: [2, 1],
                padding: [1, 1],
                padding_mode: PaddingMode::Reflect,
            },
            2,
            (7, 9),
        ),
    ]
}

/// Runs every preset on every shape: reference (f64), fused and naive GPU (f32), one row per
/// path and tensor, comparing the GPU against the reference.
pub fn rule_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (p_index, (name, params, ranked)) in presets().into_iter().enumerate() {
        let is_bcm = name.starts_with("bcm");
        for (s_index, (layer, batch, hw)) in shapes().into_iter().enumerate() {
            if is_bcm && matches!(layer, Layer::Conv2d { .. }) {
                continue; // BCM is defined for linear layers only
            }
            let variance_adaptive = name == "lagani/ica-nrm" || name == "lagani/hpca-tanh";
            if variance_adaptive && batch < 2 {
                continue; // the unbiased variance needs two rows
            }
            let steps = if matches!(ranked, Ranked::None) { 3 } else { 1 };
            let teacher =
                name == "lagani/final-supervised" || (name == "lagani/hpca" && s_index == 0);
            let shape = [
                (
                    "n",
                    batch * layer.output_hw(hw.0, hw.1).map_or(0, |(a, b)| a * b),
                ),
                ("c", layer.neurons()),
                ("d", layer.fan_in()),
            ];
            let mut attempt = 0u64;
            let prepared = loop {
                let seed = derive_seed(
                    base_seed,
                    5000 + (p_index * 100 + s_index * 10) as u64 + attempt * 100_000,
                );
                let case = match random_case(
                    name,
                    &params,
                    layer.clone(),
                    batch,
                    hw,
                    steps,
                    seed,
                    teacher,
                ) {
                    Ok(c) => c,
                    Err(e) => break Err((seed, e)),
                };
                let want = match reference::rules::run_case(&case) {
                    Ok(w) => w,
                    Err(e) => break Err((seed, e)),
                };
                let separated = match &ranked {
                    Ranked::None => true,
                    Ranked::Similarity(k) => ranks_separated(&want["u"], layer.neurons(), &[*k]),
                    Ranked::Currents(r) => ranks_separated(&want["u"], layer.neurons(), r),
                };
                // Only a separated draw's bars are measured; a draw that is not well-posed
                // either way is redrawn.
                let tols = if separated {
                    tensor_tolerances(&case, &want, seed)
                } else {
                    None
                };
                if tols.is_some() || attempt >= 30 {
                    break Ok((seed, case, want, separated, tols));
                }
                attempt += 1;
            };
            match prepared {
                Err((seed, e)) => rows.push(Row::new(name, "reference", &shape, seed).fail(e)),
                Ok((seed, case, want, separated, tols)) => {
                    for rule_variant in RuleVariant::ALL {
                        if !rule_variant.applies_to(&case.rule.preset) {
                            continue;
                        }
                        let variant = format!(
                            "{} {}",
                            rule_variant.label(),
                            if matches!(case.layer, Layer::Conv2d { .. }) {
                                "conv"
                            } else {
                                "linear"
                            }
                        );
                        let row = Row::new(name, variant, &shape, seed);
                        if !separated {
                            rows.push(row.fail("no input draw kept the ranks apart"));
                            continue;
                        }
                        let Some(tols) = &tols else {
                            rows.push(row.fail(format!(
                                "no input draw was well-conditioned: the float64 result moved \
                                 more than {MAX_NUDGE_MOVE:e} under a nudge of the inputs"
                            )));
                            continue;
                        };
                        match run_case_gpu(ctx, &case, rule_variant) {
                            Err(e) => rows.push(row.fail(e)),
                            Ok(got) => {
                                // The worst tensor, by its share of its bar, decides the row.
                                let mut worst = (0.0f64, RULE_TOL, String::new());
                                let mut missing = None;
                                for (key, w) in &want {
                                    match got.get(key) {
                                        Some(g) if g.shape == w.shape => {
                                            let e = rel_err(&g.data, &w.data);
                                            let tol = tols[key];
                                            if e.is_nan() || e / tol > worst.0 / worst.1 {
                                                worst = (e, tol, key.clone());
                                            }
                                        }
                                        _ => missing = Some(key.clone()),
                                    }
                                }
                                let mut row = row;
                                row.rel_err = worst.0;
                                row.tol = worst.1;
                                row.ok = worst.0 <= worst.1 && missing.is_none();
                                if let Some(k) = missing {
                                    row.error = Some(format!("`{k}` missing or misshapen"));
                                } else if !row.ok {
                                    row.error = Some(format!("worst tensor `{}`", worst.2));
                                }
                                rows.push(row);
                            }
                        }
                    }
                }
            }
        }
    }
    rows
}

/// The row-wise competition kernels (per-row, and subgroup where SUBGROUP exists) against the
/// float64 reference: every mode on ragged N x C, rows with exact ties, an optional 0/1
/// teacher. Tolerances (rel. error of each output): 0 for the modes that only select, compare
/// and multiply by 0/1 (the rankings are exact: U is compared as given, and u·t with t ∈ {0, 1}
/// is exact); 2e-5 for those that sum a row (f32 random-walk error 4·u·sqrt(C) ≈ 4e-6 at
/// C = 257) or call exp, tanh or pow (WGSL allows a few ulp plus 2 ulp per unit of |x|).
pub fn competition_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    use crate::conformance::{random_f32, widen};
    use crate::gpu::{DType, Recorder, Tensor};
    use crate::kernels::hebbian::{Competition as K, CompetitionKernel, competition_with};

    let mut kernels = vec![CompetitionKernel::PerRow];
    if CompetitionKernel::subgroup_width(ctx).is_some() {
        kernels.push(CompetitionKernel::Subgroup);
    }
    let shapes = [(1, 1), (7, 33), (33, 7), (65, 257), (257, 65)];
    let mut rows = Vec::new();
    for (s_index, &(n, c)) in shapes.iter().enumerate() {
        let k = 3.min(c) as u32;
        let kinds = [
            (K::Relu, true),
            (K::Tanh, false),
            (K::Kwta { k }, true),
            (K::Kwta { k: c as u32 }, false),
            (K::SoftExp { temperature: 0.7 }, true),
            (K::SoftPow { power: 1.5 }, false),
            (K::Softmax { t_invert: 2.5 }, false),
            (K::Softmax { t_invert: -1.5 }, false),
            (K::SoftKrotov { t_invert: 0.65 }, false),
            (K::Hard, false),
            (K::Krotov { k, delta: 0.4 }, false),
            (K::Krotov { k: 1, delta: 0.4 }, false),
            (K::Teacher, true),
            (K::Logistic, true),
            (K::Identity, false),
            (K::ReluOnly, false),
            (K::Triangle { power: 0.7 }, false),
        ];
        let seed = derive_seed(base_seed, 9000 + s_index as u64);
        let mut u = random_f32(seed, n * c);
        // Exact ties: every third row repeats its first value at its middle and last entries.
        for r in (0..n).step_by(3) {
            let first = u[r * c];
            u[r * c + c / 2] = first;
            u[r * c + c - 1] = first;
        }
        let t: Vec<f32> = random_f32(seed ^ 1, n * c)
            .iter()
            .map(|&v| if v > -0.5 { 1.0 } else { 0.0 })
            .collect();
        for (kind, with_teacher) in kinds {
            let exact = matches!(
                kind,
                K::Relu | K::Kwta { .. } | K::Hard | K::Krotov { .. } | K::Teacher
            ) || matches!(kind, K::Identity | K::ReluOnly);
            let tol = if exact { 0.0 } else { 2e-5 };
            let teacher = with_teacher.then_some(&t);
            let (want0, want_g) = reference::rules::competition(
                kind,
                &widen(&u),
                teacher.map(|t| widen(t)).as_deref(),
                n,
                c,
            );
            for kernel in &kernels {
                let name = match kernel {
                    CompetitionKernel::PerRow => "competition",
                    CompetitionKernel::Subgroup => "competition_subgroup",
                };
                // Where the driver would cut the kernel's loops short (llvmpipe), the launcher
                // must refuse with an error instead of returning a truncated ranking.
                let refuse = ctx
                    .loop_iteration_limit()
                    .is_some_and(|limit| kernel.iterations(ctx, kind, c) > limit);
                let variant = format!(
                    "{kind:?}{}{}",
                    if with_teacher { " +T" } else { "" },
                    if refuse { " refused (loop limit)" } else { "" }
                );
                let row = Row::new(name, variant, &[("n", n), ("c", c)], seed);
                let run = || -> crate::error::Result<(Vec<f64>, Vec<f64>)> {
                    let tu = Tensor::from_f32(ctx, "U", &[n, c], &u)?;
                    let tt = Tensor::from_f32(ctx, "T", &[n, c], &t)?;
                    let out0 = Tensor::empty(ctx, "out0", &[n, c], DType::F32)?;
                    let g = Tensor::empty(ctx, "G", &[n, c], DType::F32)?;
                    out0.poison_nan(ctx);
                    g.poison_nan(ctx);
                    let mut rec = Recorder::new(ctx);
                    let teacher = with_teacher.then_some(&tt);
                    competition_with(&mut rec, *kernel, kind, &tu, teacher, n, c, &out0, &g)?;
                    rec.submit();
                    Ok((widen(&out0.to_f32_vec(ctx)?), widen(&g.to_f32_vec(ctx)?)))
                };
                match run() {
                    Ok(_) if refuse => rows.push(row.fail("ran past the driver's loop limit")),
                    Err(e) if refuse => {
                        let text = e.to_string();
                        rows.push(if text.contains("loop iterations") {
                            row.compare(&[], &[], 0.0)
                        } else {
                            row.fail(text)
                        });
                    }
                    Ok((got0, got_g)) => {
                        // One row for both outputs: out0 and G side by side.
                        let got: Vec<f64> = got0.into_iter().chain(got_g).collect();
                        let want: Vec<f64> = want0.iter().chain(&want_g).copied().collect();
                        // WGSL's tanh inherits sinh/cosh's accuracy: an absolute error of a few
                        // ulp of 1 (2·U32 per output here), which is a large relative error
                        // where |u| is small and the row short (n = c = 1, u = 0.01: 2.4e-5
                        // measured on llvmpipe). Normwise: 8·U32·√len over ‖want‖.
                        let tol = if matches!(kind, K::Tanh) {
                            let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
                            let floor = 8.0 * crate::conformance::U32 * (want.len() as f64).sqrt();
                            tol + floor / norm.max(f64::MIN_POSITIVE)
                        } else {
                            tol
                        };
                        rows.push(row.compare(&got, &want, tol));
                    }
                    Err(e) => rows.push(row.fail(e)),
                }
            }
        }
    }
    // Rankings that reach into −inf entries (the last 5 of every row of 9): the winner, a
    // k-WTA threshold and a Krotov rank among them must still be found, exactly.
    let (n, c) = (3usize, 9usize);
    let seed = derive_seed(base_seed, 9100);
    let mut u = random_f32(seed, n * c);
    for r in 0..n {
        for i in 4..c {
            u[r * c + i] = f32::NEG_INFINITY;
        }
    }
    let kinds = [K::Hard, K::Kwta { k: 7 }, K::Krotov { k: 6, delta: 0.4 }];
    for kind in kinds {
        let (want0, want_g) = reference::rules::competition(kind, &widen(&u), None, n, c);
        for kernel in &kernels {
            let name = match kernel {
                CompetitionKernel::PerRow => "competition",
                CompetitionKernel::Subgroup => "competition_subgroup",
            };
            let row = Row::new(name, format!("{kind:?} -inf"), &[("n", n), ("c", c)], seed);
            let run = || -> crate::error::Result<Vec<f64>> {
                let tu = Tensor::from_f32(ctx, "U", &[n, c], &u)?;
                let out0 = Tensor::empty(ctx, "out0", &[n, c], DType::F32)?;
                let g = Tensor::empty(ctx, "G", &[n, c], DType::F32)?;
                out0.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                competition_with(&mut rec, *kernel, kind, &tu, None, n, c, &out0, &g)?;
                rec.submit();
                let mut got = widen(&out0.to_f32_vec(ctx)?);
                got.extend(widen(&g.to_f32_vec(ctx)?));
                Ok(got)
            };
            let want: Vec<f64> = want0.iter().chain(&want_g).copied().collect();
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, 0.0),
                Err(e) => row.fail(e),
            });
        }
    }
    rows
}

/// The fused projection + competition kernel (`projection_competition.wgsl`) on ragged
/// N x C x D (C = 7, 33, 96, 257 and 1100 take five different tile plans), every mode it runs, with and without a bias and a teacher. Each launch is checked
/// in three parts:
/// - U against X·Wᵀ + b in float64, within the f32 GEMM bound 2·D·2⁻²⁴ (at least 1e-6);
/// - Y and G against the float64 competition of the U the kernel wrote (so rankings are
///   compared exactly, as in `competition_checks`, with the same tolerances: 0 where the mode
///   only selects and multiplies by 0/1, 2e-5 where it sums a row or calls exp, tanh or pow);
/// - the column partials, summed over workgroups, against colsum(G ⊙ U) of those outputs
///   (2e-5: f32 sums over at most 128 rows).
///
/// A second launch writes only G and the partials (a training step): U and Y must stay as
/// poisoned (NaN), and G and the partials must equal the first launch's bit for bit.
pub fn projection_competition_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    use crate::conformance::{random_f32, rel_err, widen};
    use crate::gpu::{DType, Recorder, Tensor};
    use crate::kernels::hebbian::Competition as K;
    use crate::kernels::projection_competition::{
        ProjectionOutputs, ProjectionPlan, projection_competition,
    };
    use crate::reference::dense::Mat;

    const NAME: &str = "projection_competition";
    let shapes = [
        (1, 7, 1),
        (257, 33, 7),
        (33, 96, 75),
        (7, 257, 65),
        (5, 1100, 9),
        // Near the plan's loop budget on llvmpipe (D = 1500 at C = 96): a count that missed
        // loop iterations would show here as truncated dots.
        (9, 96, 1500),
    ];
    let mut rows = Vec::new();
    for (s_index, &(n, c, d)) in shapes.iter().enumerate() {
        let shape = [("n", n), ("c", c), ("d", d)];
        let seed = derive_seed(base_seed, 9200 + s_index as u64);
        let Some(plan) = ProjectionPlan::for_layer(ctx, c, d) else {
            rows.push(
                Row::new(NAME, "plan", &shape, seed)
                    .fail(format!("no tile plan for C = {c}, D = {d} on this adapter")),
            );
            continue;
        };
        let x = random_f32(seed, n * d);
        let w = random_f32(seed ^ 1, c * d);
        let b = random_f32(seed ^ 2, c);
        let t: Vec<f32> = random_f32(seed ^ 3, n * c)
            .iter()
            .map(|&v| if v > -0.5 { 1.0 } else { 0.0 })
            .collect();
        let k = 3.min(c) as u32;
        // (kind, bias, teacher)
        let kinds = [
            (K::Relu, false, true),
            (K::Tanh, true, false),
            (K::Softmax { t_invert: 2.5 }, false, false),
            (K::Softmax { t_invert: -1.5 }, true, false),
            (K::SoftKrotov { t_invert: 0.65 }, false, false),
            (K::Hard, true, false),
            (K::Krotov { k, delta: 0.4 }, false, false),
            (K::Krotov { k: 1, delta: 0.4 }, true, false),
            (K::Logistic, false, true),
            (K::Identity, true, false),
            (K::ReluOnly, false, false),
            (K::Triangle { power: 0.7 }, true, false),
        ];
        let gemm_tol = (2.0 * d as f64 * 2f64.powi(-24)).max(1e-6);
        for (kind, with_bias, with_teacher) in kinds {
            let exact = matches!(
                kind,
                K::Relu | K::Hard | K::Krotov { .. } | K::Identity | K::ReluOnly
            );
            let tol = if exact { 0.0 } else { 2e-5 };
            let variant = format!(
                "{kind:?}{}{}",
                if with_bias { " +b" } else { "" },
                if with_teacher { " +T" } else { "" }
            );
            let row = |part: &str| Row::new(NAME, format!("{variant} {part}"), &shape, seed);
            let blocks = plan.blocks(n);
            let run = || -> crate::error::Result<Vec<Vec<f32>>> {
                let tx = Tensor::from_f32(ctx, "X", &[n, d], &x)?;
                let tw = Tensor::from_f32(ctx, "W", &[c, d], &w)?;
                let tb = Tensor::from_f32(ctx, "b", &[c], &b)?;
                let tt = Tensor::from_f32(ctx, "T", &[n, c], &t)?;
                let out = |label: &str, len: usize| -> crate::error::Result<Tensor> {
                    let o = Tensor::empty(ctx, label, &[len], DType::F32)?;
                    o.poison_nan(ctx);
                    Ok(o)
                };
                let (u, y, g, s) = (
                    out("U", n * c)?,
                    out("Y", n * c)?,
                    out("G", n * c)?,
                    out("S", blocks * c)?,
                );
                let (u2, y2, g2, s2) = (
                    out("U (unused)", n * c)?,
                    out("Y (unused)", n * c)?,
                    out("G", n * c)?,
                    out("S", blocks * c)?,
                );
                let mut rec = Recorder::new(ctx);
                let (bias, teacher) = (with_bias.then_some(&tb), with_teacher.then_some(&tt));
                let all = ProjectionOutputs {
                    g: &g,
                    u: Some(&u),
                    y: Some(&y),
                    col_partials: Some(&s),
                };
                let training = ProjectionOutputs {
                    g: &g2,
                    u: None,
                    y: None,
                    col_partials: Some(&s2),
                };
                for outputs in [&all, &training] {
                    let shape = (n, c, d);
                    projection_competition(
                        &mut rec, &plan, kind, &tx, &tw, bias, teacher, shape, outputs,
                    )?;
                }
                rec.submit();
                [&u, &y, &g, &s, &u2, &y2, &g2, &s2]
                    .iter()
                    .map(|t| t.to_f32_vec(ctx))
                    .collect()
            };
            let got = match run() {
                Ok(got) => got,
                Err(e) => {
                    rows.push(row("run").fail(e));
                    continue;
                }
            };
            let (u, y, g, s) = (&got[0], &got[1], &got[2], &got[3]);
            // U = X·Wᵀ + b in float64.
            let (xm, wm) = (
                Mat::from_vec(n, d, widen(&x)),
                Mat::from_vec(c, d, widen(&w)),
            );
            let mut u_ref = xm.matmul_t(&wm).data;
            if with_bias {
                for (e, v) in u_ref.iter_mut().enumerate() {
                    *v += b[e % c] as f64;
                }
            }
            rows.push(row("U").compare(&widen(&u[..n * c]), &u_ref, gemm_tol));
            let teacher = with_teacher.then(|| widen(&t));
            let (want_y, want_g) =
                reference::rules::competition(kind, &widen(&u[..n * c]), teacher.as_deref(), n, c);
            let got_yg: Vec<f64> = widen(&y[..n * c])
                .into_iter()
                .chain(widen(&g[..n * c]))
                .collect();
            let want_yg: Vec<f64> = want_y.into_iter().chain(want_g.iter().copied()).collect();
            rows.push(row("Y, G").compare(&got_yg, &want_yg, tol));
            let mut sums = vec![0f64; c];
            let mut want_sums = vec![0f64; c];
            for r in 0..blocks {
                for i in 0..c {
                    sums[i] += s[r * c + i] as f64;
                }
            }
            for r in 0..n {
                for i in 0..c {
                    want_sums[i] += g[r * c + i] as f64 * u[r * c + i] as f64;
                }
            }
            rows.push(row("colsum(G⊙U)").compare(&sums, &want_sums, 2e-5));
            // The training launch: U and Y untouched, G and the partials identical.
            let (u2, y2, g2, s2) = (&got[4], &got[5], &got[6], &got[7]);
            let untouched = u2.iter().chain(y2.iter()).all(|v| v.is_nan());
            let same = g2[..n * c] == g[..n * c] && s2[..blocks * c] == s[..blocks * c];
            let check = row("G only");
            rows.push(if !untouched {
                check.fail("U or Y was written although not asked for")
            } else if !same {
                let e = rel_err(&widen(&g2[..n * c]), &widen(&g[..n * c]));
                check.fail(format!(
                    "G differs from the launch that wrote U (rel. error {e:.2e})"
                ))
            } else {
                check.compare(&[], &[], 0.0)
            });
        }
    }
    rows
}
