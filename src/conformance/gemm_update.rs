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
//!   m/(√v + ε) is usually smooth in it, so an error of ε in Δ moves W', m and v by a few ε
//!   relative: 4x Δ's bound, or twice the measured float64 effect of moving each Δ_i by its
//!   bound where that is larger (a tiny drawn v makes m/√v steep), plus 16·u for the update
//!   arithmetic, times the condition number of W' = W − lr·d.
//! - Outputs the epilogue must not write (C when `write_delta` is off) stay NaN, bit for bit.

use crate::conformance::kernels::{cancellation, gemm_tol};
use crate::conformance::{Row, U32, derive_seed, random_f32, widen};
use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::kernels::conv::{self, ConvKernel, ConvOptions};
use crate::kernels::gemm::{self, Gemm, GemmKind, GemmTiles, SplitK, UpdateEpilogue};
use crate::kernels::im2col::ConvGeometry;
use crate::kernels::optim::OptimStep;
use crate::reference;
use crate::reference::dense::Mat;

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
    let mut rows: Vec<Row> = cases
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
        .collect();
    // conv.wgsl's update under each epilogue (the engine's tiles, single and double
    // buffered), unsplit (its own entry points) and split (the reduction's).
    let conv_cases = [
        // (batch, c_in, h, w, kernel, c_out, beta, epilogue, tiles, splits)
        (
            2,
            3,
            9,
            9,
            3,
            7,
            0.0,
            Epi::Decay { abs_max: true },
            tiled,
            1,
        ),
        (
            1,
            3,
            13,
            11,
            5,
            33,
            0.0,
            Epi::Decay { abs_max: true },
            GemmTiles::SMALL,
            3,
        ),
        (
            3,
            1,
            7,
            7,
            3,
            65,
            0.5,
            sgd(0.9, true, false, true),
            doubled,
            1,
        ),
        (
            2,
            7,
            9,
            9,
            3,
            1,
            0.0,
            Epi::Adam {
                first: true,
                write_delta: false,
            },
            tiled,
            2,
        ),
    ];
    for (i, (batch, c_in, h, w, kernel, c_out, beta, epi, tiles, splits)) in
        conv_cases.into_iter().enumerate()
    {
        let geometry = ConvGeometry {
            batch,
            in_channels: c_in,
            h,
            w,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [1, 1],
            reflect: i % 2 == 1,
        };
        let opts = ConvOptions {
            alpha: 1.25,
            beta,
            tiles: Some(tiles),
            split_k: SplitK::Fixed(splits),
        };
        let seed = derive_seed(base_seed, 0x6f0 + i as u64);
        rows.push(check_conv_update(ctx, geometry, c_out, opts, epi, seed));
    }
    rows
}

/// One conv update under an epilogue, as `check_update` for a GEMM.
fn check_conv_update(
    ctx: &GpuContext,
    geometry: ConvGeometry,
    c_out: usize,
    opts: ConvOptions,
    epi: Epi,
    seed: u64,
) -> Row {
    let tiles = opts.tiles.expect("the conv cases give their tiles");
    let splits = conv::plan(ctx, ConvKernel::Update, &geometry, c_out, &opts).map_or(0, |p| p.1);
    let kernel = if splits > 1 {
        "gemm_splitk_reduce"
    } else {
        "conv_update"
    };
    let [kh, kw] = geometry.kernel;
    let row = Row::new(
        &format!("{kernel} update"),
        format!(
            "{} conv {kh}x{kw}{} {} split={splits} beta={}",
            epi.label(),
            if geometry.reflect { " refl" } else { "" },
            tiles.label(),
            opts.beta
        ),
        &[
            ("b", geometry.batch),
            ("cin", geometry.in_channels),
            ("h", geometry.h),
            ("w", geometry.w),
            ("cout", c_out),
        ],
        seed,
    );
    let product = Product::Conv {
        geometry,
        c_out,
        opts,
    };
    // Tiles past this device's limits (double buffering under WebGPU's 16 KiB of workgroup
    // memory): the launcher must refuse them.
    if let Err(limit) = tiles.within_limits(ctx) {
        let limit = match limit {
            crate::error::HebbError::Launch { message, .. } => message,
            other => other.to_string(),
        };
        return row.refusal(
            &limit,
            run_update(ctx, &product, epi, seed).map_err(|e| e.to_string()),
        );
    }
    match run_update(ctx, &product, epi, seed) {
        Ok(Outcome::Ok { got, want, tol }) => row.compare(&got, &want, tol),
        Ok(Outcome::Fail(message)) => row.fail(message),
        Err(e) => row.fail(e),
    }
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
            run_update(ctx, &Product::Gemm(g), epi, seed).map_err(|e| e.to_string()),
        );
    }
    match run_update(ctx, &Product::Gemm(g), epi, seed) {
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

/// The product an update epilogue follows: a GEMM, or conv.wgsl's update ΔW = α·Gᵀ·P + β·ΔW
/// with P gathered from the input.
enum Product<'g> {
    Gemm(&'g Gemm),
    Conv {
        geometry: ConvGeometry,
        c_out: usize,
        opts: ConvOptions,
    },
}

impl Product<'_> {
    /// (M, N, K) of the product.
    fn dims(&self) -> Result<(usize, usize, usize)> {
        Ok(match self {
            Product::Gemm(g) => (g.m, g.n, g.k),
            Product::Conv {
                geometry, c_out, ..
            } => {
                let (n, d) = geometry.patch_shape()?;
                ConvKernel::Update.gemm_dims(n, d, *c_out)
            }
        })
    }

    fn beta(&self) -> f32 {
        match self {
            Product::Gemm(g) => g.beta,
            Product::Conv { opts, .. } => opts.beta,
        }
    }
}

fn run_update(ctx: &GpuContext, product: &Product<'_>, epi: Epi, seed: u64) -> Result<Outcome> {
    let (m, n, k) = product.dims()?;
    let beta = product.beta();
    let mn = m * n;
    // With beta == 0 the kernel must not read C (NaN there would show); where it must not write
    // C, C keeps its bits.
    let c0: Vec<f32> = if beta == 0.0 {
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
    let tc = t("C", &c0)?;
    let (tw, tr, ts0, ts1) = (
        t("W", &w0)?,
        t("r", &r)?,
        t("state 0", &s0)?,
        t("state 1", &s1)?,
    );
    let tmax = t("max|R|", &[f32::NAN])?;

    // The operands (A, B or G, x), P = α·AB + β·C0 in float64, α·AB's magnitude for the
    // norm-wise bound (|α·AB| for a GEMM, as `gemm_checks`; |α|·|G|ᵀ·|P| for a conv update, as
    // `conv_checks`: one output element can be a single cancelling dot product), and
    // |α|·|A|·|B|, what each element's rounding error scales with.
    let (ta, tb, p, ab_magnitude, ab_abs) = match product {
        Product::Gemm(g) => {
            let a = random_f32(seed, m * k);
            let b = random_f32(seed ^ 1, k * n);
            let mut p = widen(&c0);
            reference::gemm::gemm(g, &widen(&a), &widen(&b), &mut p);
            let mut ab = vec![0.0; mn];
            reference::gemm::gemm(
                &(*g).clone().scale(g.alpha, 0.0),
                &widen(&a),
                &widen(&b),
                &mut ab,
            );
            let ab: Vec<f64> = ab.iter().map(|v| v.abs()).collect();
            let abs = |v: &[f32]| v.iter().map(|t| t.abs() as f64).collect::<Vec<f64>>();
            let mut ab_abs = vec![0.0; mn];
            reference::gemm::gemm(
                &(*g).clone().scale(g.alpha.abs(), 0.0),
                &abs(&a),
                &abs(&b),
                &mut ab_abs,
            );
            (t("A", &a)?, t("B", &b)?, p, ab, ab_abs)
        }
        Product::Conv {
            geometry,
            c_out,
            opts,
        } => {
            let x = random_f32(seed, geometry.input_len());
            let gm = random_f32(seed ^ 1, k * c_out);
            let (xs, gs) = (widen(&x), Mat::from_vec(k, *c_out, widen(&gm)));
            let c0_mat = Mat::from_vec(m, n, widen(&c0));
            let (alpha, beta) = (opts.alpha as f64, opts.beta as f64);
            let p = reference::conv::conv_update(geometry, &gs, &xs, alpha, beta, &c0_mat).data;
            let abs = |v: &[f64]| v.iter().map(|t| t.abs()).collect::<Vec<f64>>();
            let gs_abs = Mat::from_vec(k, *c_out, abs(&gs.data));
            let ab = reference::conv::conv_update(
                geometry,
                &gs_abs,
                &abs(&xs),
                alpha.abs(),
                0.0,
                &c0_mat,
            )
            .data;
            (t("G", &gm)?, t("x", &x)?, p, ab.clone(), ab)
        }
    };
    let p_spread: Vec<f64> = (0..mn)
        .map(|i| {
            ab_magnitude[i]
                + if beta == 0.0 {
                    0.0
                } else {
                    (beta * c0[i]).abs() as f64
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
    match product {
        Product::Gemm(g) => gemm::gemm_update(&mut rec, g, &ta, &tb, &tc, &epilogue)?,
        Product::Conv {
            geometry,
            c_out,
            opts,
        } => conv::conv_update_epilogue(
            &mut rec, geometry, &ta, &tb, 0, *c_out, opts, &tc, &epilogue,
        )?,
    }
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
            // Δ's error moves W', m and v through the step. The 4x rule covers Adam where v is
            // not tiny; where the drawn state makes m/√v steep in Δ it does not, so each bound is
            // also at least twice the measured effect of moving every Δ_i by its own bound
            // e_i = gemm_tol(K)·(|α|·|A||B| + |β·C0|)_i either way (float64 evaluations of the
            // same step: one element of Δ that cancels carries an error far above its size).
            let e: Vec<f64> = (0..mn)
                .map(|i| {
                    let c = if beta == 0.0 {
                        0.0
                    } else {
                        (beta * c0[i]).abs() as f64
                    };
                    gemm_tol(k) * (ab_abs[i] + c)
                })
                .collect();
            let (mut moved_w, mut moved_s0, mut moved_s1) =
                (vec![0.0; mn], vec![0.0; mn], vec![0.0; mn]);
            for sign in [-1.0, 1.0] {
                for i in 0..mn {
                    let (w, a, b) = (w0[i] as f64, s0[i] as f64, s1[i] as f64);
                    let (mw, ma, mb) = reference::optim::apply(&step, w, p[i] + sign * e[i], a, b)
                        .expect("not an epilogue");
                    moved_w[i] = f64::max(moved_w[i], (mw - want_w[i]).abs());
                    moved_s0[i] = f64::max(moved_s0[i], (ma - want_s0[i]).abs());
                    moved_s1[i] = f64::max(moved_s1[i], (mb - want_s1[i]).abs());
                }
            }
            let norm = |v: &[f64]| v.iter().map(|t| t * t).sum::<f64>().sqrt();
            let effect =
                |moved: &[f64], want: &[f64]| 2.0 * norm(moved) / norm(want).max(f64::MIN_POSITIVE);
            let w_cond = cancellation(&w_spread, &want_w);
            let tol =
                f64::max(4.0 * p_tol, effect(&moved_w, &want_w)) * w_cond + 16.0 * U32 * w_cond;
            let state_tol = |moved: &[f64], want: &[f64]| {
                f64::max(4.0 * p_tol, effect(moved, want)) + 16.0 * U32
            };
            let (tol_s0, tol_s1) = (
                state_tol(&moved_s0, &want_s0),
                state_tol(&moved_s1, &want_s1),
            );
            // One row: W', both states and (when written) Δ, each under its own bound; the row
            // reports the part furthest into its bound.
            let mut parts: Vec<(&str, Vec<f64>, Vec<f64>, f64)> = vec![
                ("W", got_w, want_w, tol),
                ("state 0", got_s0, want_s0, tol_s0),
                ("state 1", got_s1, want_s1, tol_s1),
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
