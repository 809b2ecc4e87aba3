//! The backward passes of fine-tuning against their float64 references (`reference::pool`,
//! `reference::norm`, `reference::dense::col2im_conv`, `reference::activation`), on ragged shapes
//! and both padding modes.
//!
//! Tolerances (u = 2^-24; inputs uniform in [-1, 1)):
//! - col2im and the pooling backwards: each element is a sum of at most 9·kh·kw (col2im) or
//!   ⌈k/s⌉² (pooling) gradients, so the sum bound 4·u·√n + 4·u of `kernels`, times the
//!   cancellation ‖Σ|terms|‖/‖Σ terms‖ (the same sums of |dP| or |dy|); max pooling's argmax
//!   and forward are exact (tolerance 0).
//! - batch norm: the means of dy and dy·x̂ and the batch statistics are sums over B·H·W values
//!   (4·u·√n + 4·u each); dx = f/s·(dy − m₁ − x̂·m₂) combines them with a few roundings, so
//!   8·(4·u·√n + 4·u) + 32·u, times the cancellation of that difference.
//! - activations: relu is exact; tanh, σ and pow are built from exp2/log2, whose WGSL accuracy
//!   is a few ulp of a magnified argument, so 2e-5 of each entry's terms, as the forward
//!   competition checks allow. The triangle's derivative a·v^(a−1) at v = u − mean also carries
//!   the f32 error δv of v, magnified by its slope near the kink (a pole for powers below 1):
//!   twice |dY|·a·|a − 1|·v^(a−2)·δv is added per entry, and the row mean of those effects
//!   through mean(g). Entries with |v| ≤ 4·δv are not compared: the mean's rounding can put v
//!   on either side of the kink, in this kernel as in PyTorch. For powers below 1 such an entry
//!   sits at a pole, and through mean(g) its whole row is unstable, so that row is not compared.
//! - the unit-norm weights' backward (G̃ − W̃·(W̃·G̃))/‖w‖: two sums over D (the norm and the
//!   dot product, 4·u·√D + 4·u each) and a few roundings, so 8·(4·u·√D + 4·u) + 16·u, times
//!   the cancellation of the difference (large where G̃ is nearly parallel to the row).
//! - dropout's backward is the forward kernel with the forward's seed: the mask must be
//!   identical (dx is zero exactly where the forward output is) and each kept gradient is
//!   scaled by 1/(1 − rate) in one rounding (2·u).
//! - a convolution's dW = dUᵀ·P and dX = col2im(dU·W) through the GEMM and col2im: the GEMM
//!   bound of `kernels` for K = N (dW) and K = C (dP), plus col2im's sum bound, times the
//!   cancellation.

use crate::conformance::kernels::{
    RAGGED, cancellation, chunked_label, gemm_tol, pool_cases, sum_tol,
};
use crate::conformance::{Row, U32, derive_seed, random_f32, widen};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Gemm};
use crate::kernels::hebbian::{self, ActivationGrad};
use crate::kernels::im2col::{self, ConvGeometry};
use crate::kernels::norm::{self, BatchNorm};
use crate::kernels::pool::{self, PoolKind};
use crate::reference;
use crate::reference::dense::Mat;

/// Every backward check.
pub fn backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = col2im_checks(ctx, base_seed);
    rows.extend(conv_backward_checks(ctx, base_seed));
    rows.extend(pool_backward_checks(ctx, base_seed));
    rows.extend(norm_backward_checks(ctx, base_seed));
    rows.extend(activation_backward_checks(ctx, base_seed));
    rows.extend(dropout_backward_checks(ctx, base_seed));
    rows.extend(unit_rows_backward_checks(ctx, base_seed));
    rows.extend(signed_pow_backward_checks(ctx, base_seed));
    rows
}

/// `scale` times the cancellation of `want` against the magnitudes `spread` of its terms, as a
/// bound on `Row::compare`'s error: relative to ‖want‖, or absolute where want is all zero (a
/// row whose terms cancel exactly, as the triangle's single-channel rows), where the bound is
/// scale·‖spread‖.
fn bound(scale: f64, spread: &[f64], want: &[f64]) -> f64 {
    let norm = |v: &[f64]| v.iter().map(|t| t * t).sum::<f64>().sqrt();
    if norm(want) == 0.0 {
        scale * norm(spread)
    } else {
        scale * cancellation(spread, want)
    }
}

fn upload(ctx: &GpuContext, label: &str, v: &[f32]) -> Result<Tensor> {
    Tensor::from_f32(ctx, label, &[v.len()], v)
}

fn poisoned(ctx: &GpuContext, label: &str, len: usize) -> Result<Tensor> {
    let t = Tensor::empty(ctx, label, &[len], DType::F32)?;
    t.poison_nan(ctx);
    Ok(t)
}

/// (batch, C_in, H, W, k, stride, padding, reflect): the papers' convolutions (SoftHebb's
/// reflect-padded 5x5 and 3x3, Lagani's unpadded ones) on ragged inputs.
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, bool);

const CONVS: [ConvCase; 7] = [
    (1, 1, 1, 1, 1, 1, 0, false),
    (2, 3, 7, 7, 5, 1, 2, true),
    (1, 2, 33, 9, 3, 1, 1, true),
    (3, 4, 9, 33, 3, 2, 1, false),
    (1, 3, 8, 8, 5, 1, 0, false),
    (2, 1, 7, 65, 4, 2, 1, true),
    (2, 2, 5, 5, 3, 3, 2, false),
];

fn geometry(&(b, c, h, w, k, s, p, reflect): &ConvCase) -> ConvGeometry {
    ConvGeometry {
        batch: b,
        in_channels: c,
        h,
        w,
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        reflect,
    }
}

fn conv_row(kernel: &str, g: &ConvGeometry, seed: u64) -> Row {
    Row::new(
        kernel,
        format!(
            "k{} s{} p{} {}",
            g.kernel[0],
            g.stride[0],
            g.padding[0],
            if g.reflect { "reflect" } else { "zeros" }
        ),
        &[
            ("batch", g.batch),
            ("c_in", g.in_channels),
            ("h", g.h),
            ("w", g.w),
        ],
        seed,
    )
}

fn col2im_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, conv) in CONVS.iter().enumerate() {
        let seed = derive_seed(base_seed, 14_000 + index as u64);
        let g = geometry(conv);
        let row = conv_row("col2im", &g, seed);
        let (n, d) = match g.patch_shape() {
            Ok(nd) => nd,
            Err(e) => {
                rows.push(row.fail(e));
                continue;
            }
        };
        let dp = random_f32(seed, n * d);
        let dp64 = Mat::from_vec(n, d, widen(&dp));
        let want = reference::dense::col2im_conv(&g, &dp64);
        let spread = reference::dense::col2im_conv(&g, &dp64.map(f64::abs));
        let run = || -> Result<Vec<f64>> {
            let tdp = upload(ctx, "dP", &dp)?;
            let dx = poisoned(ctx, "dx", g.input_len())?;
            let mut rec = Recorder::new(ctx);
            im2col::col2im(&mut rec, &g, &tdp, &dx)?;
            rec.submit();
            Ok(widen(&dx.to_f32_vec(ctx)?))
        };
        let [kh, kw] = g.kernel;
        let tol = bound(sum_tol(9 * kh * kw), &spread, &want);
        rows.push(match run() {
            Ok(got) => row.compare(&got, &want, tol),
            Err(e) => row.fail(e),
        });
    }
    rows
}

/// A convolution layer's gradients from dU (N x C): dW = dUᵀ·P (C x D) and dx = col2im(dU·W).
fn conv_backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, conv) in CONVS.iter().enumerate() {
        let seed = derive_seed(base_seed, 14_100 + index as u64);
        let g = geometry(conv);
        let c = RAGGED[index % RAGGED.len()].min(33);
        let Ok((n, d)) = g.patch_shape() else {
            continue;
        };
        let x = random_f32(seed, g.input_len());
        let w = random_f32(seed ^ 1, c * d);
        let du = random_f32(seed ^ 2, n * c);
        let p64 = reference::dense::im2col_conv(&g, &widen(&x));
        let du64 = Mat::from_vec(n, c, widen(&du));
        let w64 = Mat::from_vec(c, d, widen(&w));
        let want_dw = du64.t_matmul(&p64);
        let spread_dw = du64.map(f64::abs).t_matmul(&p64.map(f64::abs));
        let dp64 = du64.matmul(&w64);
        let want_dx = reference::dense::col2im_conv(&g, &dp64);
        let spread_dx =
            reference::dense::col2im_conv(&g, &du64.map(f64::abs).matmul(&w64.map(f64::abs)));
        let run = || -> Result<(Vec<f64>, Vec<f64>)> {
            let tx = upload(ctx, "x", &x)?;
            let tw = upload(ctx, "W", &w)?;
            let tdu = upload(ctx, "dU", &du)?;
            let p = poisoned(ctx, "P", n * d)?;
            let dw = poisoned(ctx, "dW", c * d)?;
            let dp = poisoned(ctx, "dP", n * d)?;
            let dx = poisoned(ctx, "dx", g.input_len())?;
            let mut rec = Recorder::new(ctx);
            im2col::im2col(&mut rec, &g, &tx, 0, &p)?;
            // dW (C x D) = dUᵀ (C x N) · P (N x D).
            gemm::gemm(
                &mut rec,
                &Gemm::new(c, d, n).trans(true, false),
                &tdu,
                &p,
                &dw,
            )?;
            // dP (N x D) = dU (N x C) · W (C x D).
            gemm::gemm(&mut rec, &Gemm::new(n, d, c), &tdu, &tw, &dp)?;
            im2col::col2im(&mut rec, &g, &dp, &dx)?;
            rec.submit();
            Ok((widen(&dw.to_f32_vec(ctx)?), widen(&dx.to_f32_vec(ctx)?)))
        };
        let [kh, kw] = g.kernel;
        let row = |what: &str| {
            let mut r = conv_row("conv_backward", &g, seed);
            r.variant = format!("{what} {}", r.variant);
            r.shape.insert("c".into(), c);
            r
        };
        match run() {
            Ok((dw, dx)) => {
                let tol_dw = bound(gemm_tol(n), &spread_dw.data, &want_dw.data);
                rows.push(row("dW").compare(&dw, &want_dw.data, tol_dw));
                let tol_dx = bound(gemm_tol(c) + sum_tol(9 * kh * kw), &spread_dx, &want_dx);
                rows.push(row("dX").compare(&dx, &want_dx, tol_dx));
            }
            Err(e) => rows.push(row("dW, dX").fail(e)),
        }
    }
    rows
}

fn pool_backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, (g, variant)) in pool_cases().into_iter().enumerate() {
        let seed = derive_seed(base_seed, 14_201 + index as u64);
        let (planes, h, w, kind, k, s) = (g.planes, g.h, g.w, g.kind, g.kernel[0], g.stride[0]);
        let shape = [("planes", planes), ("h", h), ("w", w)];
        let Ok((ho, wo)) = g.output_hw() else {
            continue;
        };
        let x = random_f32(seed, planes * h * w);
        let dy = random_f32(seed ^ 1, planes * ho * wo);
        let want = reference::pool::pool2d_backward(&g, &widen(&x), &widen(&dy));
        let abs_dy: Vec<f64> = dy.iter().map(|v| v.abs() as f64).collect();
        let spread = reference::pool::pool2d_backward(&g, &widen(&x), &abs_dy);
        let run = || -> Result<(Vec<f64>, Vec<f64>)> {
            let tx = upload(ctx, "x", &x)?;
            let tdy = upload(ctx, "dy", &dy)?;
            let out = poisoned(ctx, "pooled", planes * ho * wo)?;
            let argmax = poisoned(ctx, "argmax", planes * ho * wo)?;
            let dx = poisoned(ctx, "dx", planes * h * w)?;
            let mut rec = Recorder::new(ctx);
            let indices = match kind {
                PoolKind::Max => {
                    pool::max_pool_indexed(&mut rec, &g, &tx, &out, &argmax)?;
                    Some(&argmax)
                }
                PoolKind::Avg { .. } => {
                    pool::pool2d(&mut rec, &g, &tx, &out)?;
                    None
                }
            };
            pool::pool2d_backward(&mut rec, &g, indices, &tdy, &dx)?;
            rec.submit();
            Ok((widen(&out.to_f32_vec(ctx)?), widen(&dx.to_f32_vec(ctx)?)))
        };
        let tol = bound(sum_tol(k.div_ceil(s).pow(2).max(k * k)), &spread, &want);
        match run() {
            Ok((out, dx)) => {
                if kind == PoolKind::Max {
                    // The indexed forward is the plain forward, exactly.
                    let want_out = reference::pool::pool2d(&g, &widen(&x));
                    rows.push(
                        Row::new("max_pool_indexed", variant.clone(), &shape, seed)
                            .compare(&out, &want_out, 0.0),
                    );
                }
                rows.push(
                    Row::new("pool2d_backward", variant, &shape, seed).compare(&dx, &want, tol),
                );
            }
            Err(e) => rows.push(Row::new("pool2d_backward", variant, &shape, seed).fail(e)),
        }
    }
    rows
}

fn norm_backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut index = 14_300;
    // Not a batch of 2 single values: there dy − mean(dy) − x̂·mean(dy·x̂) = (dy₁ − dy₂)(1 − x̂²)/2
    // with x̂² = σ²/(σ² + ε), a cancellation down to ε/σ² that leaves no digits to compare.
    for &(batch, channels, plane) in &[
        (3usize, 1usize, 1usize),
        (7, 3, 33),
        (4, 65, 9),
        (1, 7, 257),
        (2, 257, 3),
        (33, 2, 7),
        // 66,625 values per channel: past llvmpipe's loop budget, walked in 5 chunks there.
        (65, 2, 1025),
    ] {
        for (training, modified, affine) in [
            (true, false, false),
            (true, true, false),
            (false, false, false),
            (false, true, false),
            (true, false, true),
            (true, true, true),
            (false, true, true),
        ] {
            index += 1;
            let seed = derive_seed(base_seed, index);
            let g = BatchNorm {
                batch,
                channels,
                plane,
                training,
                modified,
                momentum: 0.1,
                eps: 1e-5,
            };
            let len = batch * channels * plane;
            // Inputs with a per-channel offset and scale, as activations have.
            let x: Vec<f32> = random_f32(seed, len)
                .iter()
                .enumerate()
                .map(|(e, v)| {
                    let c = (e / plane) % channels;
                    v * (0.5 + c as f32 * 0.25) + c as f32 * 0.1
                })
                .collect();
            let dy = random_f32(seed ^ 1, len);
            let rm: Vec<f32> = random_f32(seed ^ 2, channels)
                .iter()
                .map(|v| 0.1 * v)
                .collect();
            let rv: Vec<f32> = random_f32(seed ^ 3, channels)
                .iter()
                .map(|v| 1.0 + 0.5 * v)
                .collect();
            let gamma_beta = affine.then(|| crate::conformance::random_affine(seed ^ 4, channels));
            let affine64 = gamma_beta.as_deref().map(widen);
            let (mut rm64, mut rv64) = (widen(&rm), widen(&rv));
            let x64 = widen(&x);
            let xhat = {
                let plain = BatchNorm {
                    modified: false,
                    ..g
                };
                let (mut m, mut v) = (rm64.clone(), rv64.clone());
                reference::norm::batch_norm(&plain, &x64, &mut m, &mut v, None)
            };
            reference::norm::batch_norm(&g, &x64, &mut rm64, &mut rv64, affine64.as_deref());
            let (want, want_affine) = reference::norm::batch_norm_backward(
                &g,
                &x64,
                &rm64,
                &rv64,
                affine64.as_deref(),
                &widen(&dy),
            );
            // The terms of dx's difference, for the cancellation: f/s·(|dy| + |m₁| + |x̂·m₂|),
            // bounded by f/s·(|dy| + mean|dy| + |x̂|·mean|dy·x̂|).
            let abs_dy: Vec<f64> = dy.iter().map(|v| v.abs() as f64).collect();
            let g_eval = BatchNorm {
                training: false,
                ..g
            };
            let (scale, _) = reference::norm::batch_norm_backward(
                &g_eval,
                &x64,
                &rm64,
                &rv64,
                affine64.as_deref(),
                &abs_dy,
            );
            let spread: Vec<f64> = scale.iter().map(|v| 3.0 * v.abs()).collect();
            // ∂L/∂γ, ∂L/∂β sum B·H·W products: their terms f·|dy·x̂| and f·|dy|.
            let mean_rv = rv64.iter().sum::<f64>() / channels as f64;
            let factor = |c: usize| {
                if modified {
                    ((rv64[c] + 1e-5) / (mean_rv + 1e-5)).sqrt()
                } else {
                    1.0
                }
            };
            let mut affine_spread = vec![0.0; 2 * channels];
            for e in 0..len {
                let c = (e / plane) % channels;
                affine_spread[c] += factor(c) * (dy[e] as f64 * xhat[e]).abs();
                affine_spread[channels + c] += factor(c) * (dy[e] as f64).abs();
            }
            let run = || -> Result<(Vec<f64>, Option<Vec<f64>>)> {
                let tx = upload(ctx, "x", &x)?;
                let trm = upload(ctx, "running mean", &rm)?;
                let trv = upload(ctx, "running var", &rv)?;
                let stats = poisoned(ctx, "stats", 2 * channels)?;
                let out = poisoned(ctx, "y", len)?;
                let tdy = upload(ctx, "dy", &dy)?;
                let gs = poisoned(ctx, "grad stats", 2 * channels)?;
                let dx = poisoned(ctx, "dx", len)?;
                let ta = match &gamma_beta {
                    Some(a) => Some(upload(ctx, "γ, β", a)?),
                    None => None,
                };
                let ga = poisoned(ctx, "∂L/∂(γ, β)", 2 * channels)?;
                let grad = ta
                    .as_ref()
                    .map(|params| norm::AffineGrad { params, grad: &ga });
                let mut rec = Recorder::new(ctx);
                norm::batch_norm(&mut rec, &g, &tx, &trm, &trv, &stats, ta.as_ref(), &out)?;
                norm::batch_norm_backward(&mut rec, &g, &tx, &trv, &stats, grad, &tdy, &gs, &dx)?;
                rec.submit();
                let d_affine = match grad {
                    Some(_) => Some(widen(&ga.to_f32_vec(ctx)?)),
                    None => None,
                };
                Ok((widen(&dx.to_f32_vec(ctx)?), d_affine))
            };
            let variant = format!(
                "{}{}{}{}",
                if training { "training" } else { "eval" },
                if modified { " modified" } else { "" },
                if affine { " affine" } else { "" },
                chunked_label(ctx, &g, training || affine)
            );
            let shape = [("batch", batch), ("channels", channels), ("plane", plane)];
            let row = Row::new("batch_norm_backward", variant.clone(), &shape, seed);
            let tol = bound(8.0 * sum_tol(batch * plane) + 32.0 * U32, &spread, &want);
            match run() {
                Ok((got, got_affine)) => {
                    rows.push(row.compare(&got, &want, tol));
                    if let Some(got_affine) = got_affine {
                        // x̂ itself carries the forward's rounding (the tolerance of dx's terms).
                        let tol = bound(
                            8.0 * sum_tol(batch * plane) + 32.0 * U32,
                            &affine_spread,
                            &want_affine,
                        );
                        rows.push(
                            Row::new(
                                "batch_norm_backward",
                                format!("{variant} ∂γ ∂β"),
                                &shape,
                                seed,
                            )
                            .compare(&got_affine, &want_affine, tol),
                        );
                    }
                }
                Err(e) => rows.push(row.fail(e)),
            }
        }
    }
    rows
}

fn activation_backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let kinds = [
        ActivationGrad::Identity,
        ActivationGrad::ReluPow { power: 1.0 },
        ActivationGrad::ReluPow { power: 4.5 },
        ActivationGrad::Tanh,
        ActivationGrad::Logistic,
        ActivationGrad::Triangle { power: 1.0 },
        ActivationGrad::Triangle { power: 0.7 },
    ];
    let mut rows = Vec::new();
    let mut index = 14_400;
    for &(n, c) in &[(1usize, 1usize), (7, 33), (65, 7), (33, 257), (257, 65)] {
        for kind in kinds {
            index += 1;
            let seed = derive_seed(base_seed, index);
            let u = random_f32(seed, n * c);
            let dy = random_f32(seed ^ 1, n * c);
            let u64m = Mat::from_vec(n, c, widen(&u));
            let dy64 = Mat::from_vec(n, c, widen(&dy));
            let mut want = reference::activation::activation_backward(kind, &u64m, &dy64);
            let spread = reference::activation::activation_backward(
                match kind {
                    // The triangle's terms g_j before the mean is taken off: |g| + mean|g|.
                    ActivationGrad::Triangle { power } => ActivationGrad::ReluPow { power },
                    other => other,
                },
                &u64m,
                &dy64.map(f64::abs),
            );
            let run = || -> Result<Vec<f64>> {
                let tu = upload(ctx, "U", &u)?;
                let tdy = upload(ctx, "dY", &dy)?;
                let du = poisoned(ctx, "dU", n * c)?;
                let mut rec = Recorder::new(ctx);
                hebbian::activation_backward(&mut rec, kind, &tu, &tdy, n, c, &du)?;
                rec.submit();
                Ok(widen(&du.to_f32_vec(ctx)?))
            };
            let row = Row::new(
                "activation_backward",
                format!("{kind:?}"),
                &[("n", n), ("c", c)],
                seed,
            );
            let exact =
                kind == ActivationGrad::Identity || kind == ActivationGrad::ReluPow { power: 1.0 };
            // Per element: 2e-5 of the terms' magnitudes, plus for the triangle the effect of
            // the f32 error δv in v = u − mean on the derivative a·v^(a−1), that is
            // |dY|·a·|a − 1|·v^(a−2)·δv, and the row mean of those effects (through mean(g)).
            // Entries with |v| ≤ 4·δv may fall on either side of the kink and are not compared.
            let mut allowed: Vec<f64> = spread
                .data
                .iter()
                .zip(&want.data)
                .map(|(s, w)| 2e-5 * (2.0 * s.abs()).max(w.abs()))
                .collect();
            let mut at_kink = vec![false; n * c];
            if let ActivationGrad::Triangle { power } = kind {
                let a = power as f64;
                for r in 0..n {
                    let row = u64m.row(r);
                    let mean = row.iter().sum::<f64>() / c as f64;
                    let mean_abs = row.iter().map(|v| v.abs()).sum::<f64>() / c as f64;
                    let mut effects = vec![0.0; c];
                    let mut kink_effect = 0.0;
                    let mut pole = false;
                    for i in 0..c {
                        let v = row[i] - mean;
                        let dv = 4.0 * U32 * (row[i].abs() + mean.abs()) + sum_tol(c) * mean_abs;
                        let dy = dy64.at(r, i).abs();
                        if v.abs() <= 4.0 * dv {
                            at_kink[r * c + i] = true;
                            // Its g may take any value from 0 to the derivative's bound near
                            // the kink, and mean(g) carries that to the whole row:
                            // |dY|·a·(4δv)^(a−1) for a ≥ 1, unbounded at a pole (a < 1).
                            pole |= a < 1.0;
                            kink_effect += dy * a * (4.0 * dv).powf(a - 1.0);
                        } else if v > 0.0 {
                            // Twice the first-order effect covers the second order for v > 4δv.
                            effects[i] = 2.0 * dy * a * (a - 1.0).abs() * v.powf(a - 2.0) * dv;
                        }
                    }
                    if pole {
                        // A row with an entry at a pole has no stable mean(g): not compared.
                        at_kink[r * c..(r + 1) * c]
                            .iter_mut()
                            .for_each(|k| *k = true);
                    }
                    let mean_effect = (effects.iter().sum::<f64>() + kink_effect) / c as f64;
                    for i in 0..c {
                        allowed[r * c + i] += effects[i] + mean_effect;
                    }
                }
            }
            let tol = if exact {
                0.0
            } else {
                // ‖allowed‖ relative to ‖want‖ (absolute where want is all zero).
                let norm = |v: &[f64]| v.iter().map(|t| t * t).sum::<f64>().sqrt();
                let w = norm(&want.data);
                norm(&allowed) / if w == 0.0 { 1.0 } else { w }
            };
            rows.push(match run() {
                Ok(mut got) => {
                    for (e, &kink) in at_kink.iter().enumerate() {
                        if kink && got[e].is_finite() {
                            got[e] = 0.0;
                            want.data[e] = 0.0;
                        }
                    }
                    row.compare(&got, &want.data, tol)
                }
                Err(e) => row.fail(e),
            });
        }
    }
    rows
}

fn dropout_backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, &(len, rate)) in [(1usize, 0.5f32), (257, 0.25), (4099, 0.5), (65_537, 0.75)]
        .iter()
        .enumerate()
    {
        let seed = derive_seed(base_seed, 14_500 + i as u64);
        let step_seed = (seed >> 32) as u32;
        // Never zero, so a zero output means a dropped element.
        let x: Vec<f32> = random_f32(seed, len)
            .iter()
            .map(|v| v.abs() + 0.5)
            .collect();
        let dy = random_f32(seed ^ 1, len);
        let run = || -> Result<(Vec<f32>, Vec<f32>)> {
            let tx = upload(ctx, "x", &x)?;
            let tdy = upload(ctx, "dy", &dy)?;
            let mut rec = Recorder::new(ctx);
            elementwise::dropout(&mut rec, &tx, len, 0, rate, step_seed)?;
            elementwise::dropout(&mut rec, &tdy, len, 0, rate, step_seed)?;
            rec.submit();
            Ok((tx.to_f32_vec(ctx)?, tdy.to_f32_vec(ctx)?))
        };
        let row = Row::new(
            "dropout_backward",
            format!("rate {rate}"),
            &[("n", len)],
            seed,
        );
        rows.push(match run() {
            Ok((y, dx)) => {
                let scale = 1.0 / (1.0 - rate as f64);
                // The forward's mask, read from its output, applied to dy.
                let want: Vec<f64> = y
                    .iter()
                    .zip(&dy)
                    .map(|(&y, &d)| if y == 0.0 { 0.0 } else { d as f64 * scale })
                    .collect();
                let masks_agree = y
                    .iter()
                    .zip(&dx)
                    .zip(&dy)
                    .all(|((&y, &g), &d)| (y == 0.0) == (g == 0.0 && d != 0.0) || d == 0.0);
                let r = row.compare(&widen(&dx), &want, 2.0 * U32);
                if masks_agree {
                    r
                } else {
                    r.fail("the backward's mask differs from the forward's")
                }
            }
            Err(e) => row.fail(e),
        });
    }
    rows
}

fn unit_rows_backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, &(c, d)) in [(1usize, 1usize), (7, 33), (65, 7), (33, 257), (257, 65)]
        .iter()
        .enumerate()
    {
        let seed = derive_seed(base_seed, 14_600 + i as u64);
        let w = random_f32(seed, c * d);
        let g = random_f32(seed ^ 1, c * d);
        let w64 = Mat::from_vec(c, d, widen(&w));
        let g64 = Mat::from_vec(c, d, widen(&g));
        let want = reference::activation::unit_rows_backward(&w64, &g64);
        // |G̃|/‖w‖ + |W̃|·(|W̃|·|G̃|)/‖w‖: the magnitudes of the difference's two terms.
        let normed = reference::activation::unit_rows(&w64);
        let mut spread = Vec::with_capacity(c * d);
        for r in 0..c {
            let norm = w64
                .row(r)
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
                .max(f64::MIN_POSITIVE);
            let dot: f64 = (0..d).map(|j| (normed.at(r, j) * g64.at(r, j)).abs()).sum();
            for j in 0..d {
                spread.push((g64.at(r, j).abs() + normed.at(r, j).abs() * dot) / norm);
            }
        }
        let run = || -> Result<Vec<f64>> {
            let tw = upload(ctx, "W", &w)?;
            let tg = upload(ctx, "G̃", &g)?;
            let out = poisoned(ctx, "G", c * d)?;
            let mut rec = Recorder::new(ctx);
            hebbian::unit_rows_backward(&mut rec, &tw, &tg, c, d, &out)?;
            rec.submit();
            Ok(widen(&out.to_f32_vec(ctx)?))
        };
        let row = Row::new("unit_rows_backward", "w/‖w‖", &[("c", c), ("d", d)], seed);
        let tol = bound(8.0 * sum_tol(d) + 16.0 * U32, &spread, &want.data);
        rows.push(match run() {
            Ok(got) => row.compare(&got, &want.data, tol),
            Err(e) => row.fail(e),
        });
    }
    rows
}

/// Krotov's sign(w)·|w|^a back to W, for a = 1, 2 (exact products), 2.5 and 4.5 (pow), with
/// exact zeros among the weights (the factor's value at w = 0).
fn signed_pow_backward_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut index = 14_700;
    for &len in &RAGGED {
        for a in [1.0f32, 2.0, 2.5, 4.5] {
            index += 1;
            let seed = derive_seed(base_seed, index);
            let mut w = random_f32(seed, len);
            for v in w.iter_mut().step_by(5) {
                *v = 0.0;
            }
            let g = random_f32(seed ^ 1, len);
            let w64 = Mat::from_vec(1, len, widen(&w));
            let want = reference::activation::signed_pow_backward(
                &w64,
                &Mat::from_vec(1, len, widen(&g)),
                a as f64,
            );
            let run = || -> Result<Vec<f64>> {
                let tw = upload(ctx, "W", &w)?;
                let tg = upload(ctx, "G̃", &g)?;
                let out = poisoned(ctx, "G", len)?;
                let mut rec = Recorder::new(ctx);
                hebbian::signed_pow_backward(&mut rec, &tw, &tg, len, a, &out)?;
                rec.submit();
                Ok(widen(&out.to_f32_vec(ctx)?))
            };
            let row = Row::new(
                "signed_pow_backward",
                format!("a = {a}"),
                &[("n", len)],
                seed,
            );
            // Elementwise: a product and a pow, whose error WGSL bounds by a few ulp of the
            // result each (exp2 and log2 of |w|^(a − 1)).
            let tol = 16.0 * U32 * (1.0 + a as f64);
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want.data, tol),
                Err(e) => row.fail(e),
            });
        }
    }
    // Below a = 1 (Krotov's p < 2) the factor is unbounded at w = 0: refused, naming the
    // exponent.
    let refused = (|| -> Result<()> {
        let t = upload(ctx, "W", &[0.5])?;
        let mut rec = Recorder::new(ctx);
        hebbian::signed_pow_backward(&mut rec, &t, &t, 1, 0.5, &upload(ctx, "G", &[0.0])?)
    })();
    let row = Row::new("signed_pow_backward", "a = 0.5 refused", &[("n", 1)], 0);
    rows.push(match refused {
        Err(e) if e.to_string().contains("exponent 0.5") => row.compare(&[0.0], &[0.0], 0.0),
        Err(e) => row.fail(e),
        Ok(()) => row.fail("a = 0.5 was launched, not refused"),
    });
    rows
}
