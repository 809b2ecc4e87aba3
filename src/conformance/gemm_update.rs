//! The GEMM update epilogues (gemm_epilogue.wgsl, `gemm::gemm_update`) against float64:
//! every epilogue entry point (tiled, subgroup where the adapter has SUBGROUP, and the split-K
//! reduction) on ragged shapes, in the Hebbian update's transposes.
//!
//! Tolerances (u = 2⁻²⁴, inputs uniform in [-1, 1)):
//! - decay, R = P − r⊙W with P = α·op(A)op(B) + β·C: the GEMM bound of `kernels::gemm_tol(K)`
//!   for P, plus one rounding each for r·W and the difference, times the condition number
//!   ‖|P| + |r⊙W|‖ / ‖R‖ (the difference can cancel).
//! - max|R| (ABS_MAX): exactly the largest |R| among the values the kernel stored; any lost,
//!   extra or mis-ordered candidate shows as a mismatch (tolerance 0).
//! - optim: W' = W − lr·d(Δ). Δ carries the GEMM bound; SGD's direction is linear in Δ and Adam's
//!   m/(√v + ε) is smooth in it for the magnitudes drawn, so an error of ε in Δ moves W', m and
//!   v by at most a few ε relative: 4x Δ's bound, plus 16·u for the update arithmetic, times
//!   the condition number of W' = W − lr·d.
//! - Outputs the epilogue must not write (C when `write_delta` is off) stay NaN, bit for bit.

use crate::conformance::kernels::{cancellation, gemm_tol};
use crate::conformance::{Row, U32, derive_seed, random_f32, widen};
use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm, GemmKind, GemmTiles, SplitK, UpdateEpilogue};
use crate::kernels::optim::OptimStep;
use crate::reference;

/// Which epilogue a check runs.
#[derive(Clone, Copy, Debug)]
enum Epi {
    Decay {
        abs_max: bool,
    },
    Sgd {
        momentum: f32,
        nesterov: bool,
        first: bool,
        write_delta: bool,
    },
    Adam {
        first: bool,
        write_delta: bool,
    },
}

impl Epi {
    fn label(&self) -> String {
        match *self {
            Epi::Decay { abs_max } => format!("decay{}", if abs_max { "+max" } else { "" }),
            Epi::Sgd {
                momentum,
                nesterov,
                first,
                write_delta,
            } => format!(
                "sgd μ={momentum}{}{}{}",
                if nesterov { " nesterov" } else { "" },
                if first { " first" } else { "" },
                if write_delta { " +Δ" } else { "" }
            ),
            Epi::Adam { first, write_delta } => format!(
                "adam{}{}",
                if first { " first" } else { "" },
                if write_delta { " +Δ" } else { "" }
            ),
        }
    }

    fn step(&self) -> Option<OptimStep> {
        match *self {
            Epi::Decay { .. } => None,
            Epi::Sgd {
                momentum,
                nesterov,
                first,
                ..
            } => Some(OptimStep::Sgd {
                lr: 0.05,
                momentum,
                nesterov,
                weight_decay: 1e-3,
                first,
            }),
            Epi::Adam { first, .. } => Some(OptimStep::Adam {
                rate: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 5e-4,
                first,
            }),
        }
    }

    fn writes_c(&self) -> bool {
        match *self {
            Epi::Decay { .. } => true,
            Epi::Sgd { write_delta, .. } | Epi::Adam { write_delta, .. } => write_delta,
        }
    }
}

/// (M, N, K, A transposed, beta, epilogue, tiles, splits).
type Case = (usize, usize, usize, bool, f32, Epi, GemmTiles, u32);

/// The checks: each epilogue on the tiled kernel (two tile shapes), the split-K reduction and,
/// under SUBGROUP, the subgroup kernel.
pub fn gemm_update_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let sgd = |momentum, nesterov, first, write_delta| Epi::Sgd {
        momentum,
        nesterov,
        first,
        write_delta,
    };
    // The Hebbian update is Gᵀ·X: A (N x C) transposed, B (N x D) as stored; Sanger's adds β·C.
    let tiled = GemmTiles::tiled_for_adapter(ctx);
    let mut cases: Vec<Case> = vec![
        (
            33,
            65,
            257,
            true,
            0.0,
            Epi::Decay { abs_max: true },
            tiled,
            1,
        ),
        (
            65,
            7,
            33,
            false,
            -0.5,
            Epi::Decay { abs_max: false },
            GemmTiles::SMALL,
            1,
        ),
        (
            7,
            33,
            1100,
            true,
            0.0,
            Epi::Decay { abs_max: true },
            tiled,
            3,
        ),
        (33, 27, 65, true, 1.0, sgd(0.9, true, false, true), tiled, 1),
        (
            1,
            7,
            257,
            true,
            0.0,
            sgd(0.0, false, false, false),
            GemmTiles::SMALL,
            1,
        ),
        (
            65,
            33,
            129,
            true,
            1.0,
            sgd(0.9, false, true, false),
            tiled,
            2,
        ),
        (
            33,
            65,
            700,
            true,
            0.0,
            Epi::Adam {
                first: true,
                write_delta: false,
            },
            tiled,
            2,
        ),
        (
            7,
            257,
            65,
            true,
            0.0,
            Epi::Adam {
                first: false,
                write_delta: true,
            },
            tiled,
            1,
        ),
    ];
    // The double-buffered tiled kernel's product under an epilogue.
    let doubled = GemmTiles { stages: 2, ..tiled };
    cases.push((
        65,
        33,
        100,
        true,
        0.0,
        Epi::Decay { abs_max: true },
        doubled,
        1,
    ));
    if GemmTiles::subgroup_available(ctx) {
        // The subgroup kernel wants M % 4 == 0 for A stored K x M and N % 4 == 0.
        let sg = GemmTiles::subgroup(16);
        cases.extend([
            (36, 68, 257, true, 0.0, Epi::Decay { abs_max: true }, sg, 1),
            (20, 36, 129, true, 1.0, sgd(0.9, true, false, true), sg, 1),
            (
                36,
                12,
                65,
                true,
                0.0,
                Epi::Adam {
                    first: false,
                    write_delta: false,
                },
                sg,
                1,
            ),
        ]);
    }
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (m, n, k, ta, beta, epi, tiles, splits))| {
            let g = Gemm::new(m, n, k)
                .trans(ta, false)
                .scale(1.25, beta)
                .tiles(tiles)
                .split_k(SplitK::Fixed(splits));
            let seed = derive_seed(base_seed, 0x6e0 + i as u64);
            check_update(ctx, &g, epi, seed)
        })
        .collect()
}

fn check_update(ctx: &GpuContext, g: &Gemm, epi: Epi, seed: u64) -> Row {
    let tiles = g
        .resolved_tiles(ctx)
        .unwrap_or_else(|_| g.tiles.unwrap_or_else(|| GemmTiles::for_adapter(ctx)));
    let (splits, _) = g.plan_split(ctx, &tiles);
    let kernel = match (tiles.kind, splits) {
        (_, s) if s > 1 => "gemm_splitk_reduce",
        (GemmKind::Subgroup, _) => "gemm_subgroup",
        _ => "gemm_tiled",
    };
    let variant = format!(
        "{} {}N {} split={splits} beta={}",
        epi.label(),
        if g.trans_a { 'T' } else { 'N' },
        tiles.label(),
        g.beta
    );
    let row = Row::new(
        &format!("{kernel} update"),
        variant,
        &[("m", g.m), ("n", g.n), ("k", g.k)],
        seed,
    );
    // Explicit tiles past this device's limits: the launcher must refuse them.
    if let Some(Err(limit)) = g.tiles.map(|t| t.within_limits(ctx)) {
        return row.refusal(
            &limit.to_string(),
            run_update(ctx, g, epi, seed).map_err(|e| e.to_string()),
        );
    }
    match run_update(ctx, g, epi, seed) {
        Ok(Outcome::Ok { got, want, tol }) => row.compare(&got, &want, tol),
        Ok(Outcome::Fail(message)) => row.fail(message),
        Err(e) => row.fail(e),
    }
}

enum Outcome {
    Ok {
        got: Vec<f64>,
        want: Vec<f64>,
        tol: f64,
    },
    Fail(String),
}

fn run_update(ctx: &GpuContext, g: &Gemm, epi: Epi, seed: u64) -> Result<Outcome> {
    let (m, n, k) = (g.m, g.n, g.k);
    let mn = m * n;
    let a = random_f32(seed, m * k);
    let b = random_f32(seed ^ 1, k * n);
    // With beta == 0 the kernel must not read C (NaN there would show); where it must not write
    // C, C keeps its bits.
    let c0: Vec<f32> = if g.beta == 0.0 {
        vec![f32::NAN; mn]
    } else {
        random_f32(seed ^ 2, mn)
    };
    let w0: Vec<f32> = random_f32(seed ^ 3, mn).iter().map(|v| 0.5 * v).collect();
    let r: Vec<f32> = random_f32(seed ^ 4, m).iter().map(|v| 8.0 * v).collect();
    let s0: Vec<f32> = random_f32(seed ^ 5, mn).iter().map(|v| 0.1 * v).collect();
    let s1: Vec<f32> = random_f32(seed ^ 6, mn)
        .iter()
        .map(|v| 0.01 * v * v)
        .collect();
    let t = |label: &str, v: &[f32]| Tensor::from_f32(ctx, label, &[v.len()], v);
    let (ta, tb, tc) = (t("A", &a)?, t("B", &b)?, t("C", &c0)?);
    let (tw, tr, ts0, ts1) = (
        t("W", &w0)?,
        t("r", &r)?,
        t("state 0", &s0)?,
        t("state 1", &s1)?,
    );
    let tmax = t("max|R|", &[f32::NAN])?;

    // P = α·op(A)op(B) + β·C0 in float64, and the spread |α·AB| + |β·C0| for the bounds.
    let mut p = widen(&c0);
    reference::gemm::gemm(g, &widen(&a), &widen(&b), &mut p);
    let mut ab = vec![0.0; mn];
    reference::gemm::gemm(
        &g.clone().scale(g.alpha, 0.0),
        &widen(&a),
        &widen(&b),
        &mut ab,
    );
    let p_spread: Vec<f64> = (0..mn)
        .map(|i| {
            ab[i].abs()
                + if g.beta == 0.0 {
                    0.0
                } else {
                    (g.beta * c0[i]).abs() as f64
                }
        })
        .collect();
    let p_tol = gemm_tol(k) * cancellation(&p_spread, &p);

    let mut rec = Recorder::new(ctx);
    let epilogue = match epi.step() {
        None => UpdateEpilogue::Decay {
            row_decay: &tr,
            w: &tw,
            abs_max: matches!(epi, Epi::Decay { abs_max: true }).then_some(&tmax),
        },
        Some(step) => UpdateEpilogue::Optim {
            step,
            w: &tw,
            state0: &ts0,
            state1: &ts1,
            write_delta: epi.writes_c(),
        },
    };
    gemm::gemm_update(&mut rec, g, &ta, &tb, &tc, &epilogue)?;
    rec.submit();
    let got_c = tc.to_f32_vec(ctx)?;
    if !epi.writes_c()
        && got_c
            .iter()
            .zip(&c0)
            .any(|(g, c)| g.to_bits() != c.to_bits())
    {
        return Ok(Outcome::Fail(
            "C changed, but the epilogue was told not to write it".into(),
        ));
    }

    match epi {
        Epi::Decay { abs_max } => {
            let want: Vec<f64> = (0..mn)
                .map(|i| p[i] - r[i / n] as f64 * w0[i] as f64)
                .collect();
            let spread: Vec<f64> = (0..mn)
                .map(|i| p_spread[i] + (r[i / n] * w0[i]).abs() as f64)
                .collect();
            if abs_max {
                let got_max = tmax.to_f32_vec(ctx)?[0];
                let stored = got_c.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                if got_max.to_bits() != stored.to_bits() {
                    return Ok(Outcome::Fail(format!(
                        "max|R| = {got_max:e}, but the largest |R| stored is {stored:e}"
                    )));
                }
            }
            let tol = (gemm_tol(k) + 2.0 * U32) * cancellation(&spread, &want);
            Ok(Outcome::Ok {
                got: widen(&got_c),
                want,
                tol,
            })
        }
        Epi::Sgd { .. } | Epi::Adam { .. } => {
            let step = epi.step().expect("an optimizer epilogue");
            let (mut want_w, mut want_s0, mut want_s1) =
                (vec![0.0; mn], vec![0.0; mn], vec![0.0; mn]);
            for i in 0..mn {
                let (w, s0, s1) = (w0[i] as f64, s0[i] as f64, s1[i] as f64);
                (want_w[i], want_s0[i], want_s1[i]) =
                    reference::optim::apply(&step, w, p[i], s0, s1).expect("not an epilogue");
            }
            let got_w = widen(&tw.to_f32_vec(ctx)?);
            let got_s0 = widen(&ts0.to_f32_vec(ctx)?);
            let got_s1 = widen(&ts1.to_f32_vec(ctx)?);
            // W' = W − lr·d: its condition number is ‖|W| + |W − W'|‖ / ‖W'‖.
            let w_spread: Vec<f64> = (0..mn)
                .map(|i| (w0[i] as f64).abs() + (w0[i] as f64 - want_w[i]).abs())
                .collect();
            let tol = (4.0 * p_tol + 16.0 * U32) * cancellation(&w_spread, &want_w);
            // One row: W', both states and (when written) Δ, each under its own bound; the row
            // reports the part furthest into its bound.
            let mut parts: Vec<(&str, Vec<f64>, Vec<f64>, f64)> = vec![
                ("W", got_w, want_w, tol),
                ("state 0", got_s0, want_s0, 4.0 * p_tol + 16.0 * U32),
                ("state 1", got_s1, want_s1, 4.0 * p_tol + 16.0 * U32),
            ];
            if epi.writes_c() {
                parts.push(("Δ", widen(&got_c), p.clone(), p_tol));
            }
            if let Some((name, ..)) = parts
                .iter()
                .find(|(_, g, ..)| g.iter().any(|v| !v.is_finite()))
            {
                return Ok(Outcome::Fail(format!("{name} holds NaN/Inf")));
            }
            let into_bound = |(_, got, want, bound): &(&str, Vec<f64>, Vec<f64>, f64)| {
                crate::conformance::rel_err(got, want) / bound
            };
            let (_, got, want, bound) = parts
                .into_iter()
                .max_by(|x, y| into_bound(x).total_cmp(&into_bound(y)))
                .expect("W is always checked");
            Ok(Outcome::Ok {
                got,
                want,
                tol: bound,
            })
        }
    }
}
