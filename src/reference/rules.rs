//! Float64 reference of every preset in `shared/golden/PRESETS.md`: one step's ΔW and
//! intermediates, the optimizers (§0.4), and the step loop over a whole case (§0.2).
//! Written from the spec text; the section numbers below are PRESETS.md's.

use std::collections::BTreeMap;

use crate::reference::dense::{Mat, guard, im2col, rows_to_nchw};
use crate::rules::case::{Array, Case, Layer};
use crate::rules::preset::{BcmActivation, DemoActivation, Optimizer, Preset};

/// What one step computes besides ΔW. Row tensors are N x C.
#[derive(Default)]
struct StepOut {
    delta_w: Option<Mat>,
    u: Option<Mat>,
    y: Option<Mat>,
    z: Option<Mat>,
    /// Forward output as rows (N x C).
    out: Option<Mat>,
    delta_b: Option<Vec<f64>>,
}

/// State carried across steps.
struct State {
    w: Mat,
    bn_mean: Vec<f64>,
    bn_var: Vec<f64>,
    bias: Vec<f64>,
    theta_ma: Vec<f64>,
    /// Lateral matrix M = (I − L_s)⁻¹ of BCM.
    lateral: Option<Mat>,
    // Optimizer state.
    t: u32,
    momentum: Option<Mat>,
    adam_m: Option<Mat>,
    adam_v: Option<Mat>,
}

fn softmax_rows(a: &Mat) -> Mat {
    let mut out = a.clone();
    for r in 0..a.rows {
        let row = a.row(r);
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        for (c, v) in e.iter().enumerate() {
            out.set(r, c, v / s);
        }
    }
    out
}

/// First index of the largest value of each row.
fn argmax_rows(a: &Mat) -> Vec<usize> {
    (0..a.rows)
        .map(|r| {
            let row = a.row(r);
            let mut best = 0;
            for (c, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = c;
                }
            }
            best
        })
        .collect()
}

/// Indices of each row sorted by decreasing value (stable: ties keep the lower index first).
fn ranks(row: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    idx
}

/// Raised cosine squared, §1.1.
fn raised_cosine2(x: &Mat, w: &Mat) -> Mat {
    let dots = x.matmul_t(w);
    let xn = x.row_norms();
    let wn = w.row_norms();
    let mut s = dots;
    for n in 0..s.rows {
        for i in 0..s.cols {
            let c = s.at(n, i) / (guard(wn[i]) * guard(xn[n]));
            s.set(n, i, ((c + 1.0) / 2.0).powi(2));
        }
    }
    s
}

/// Vector projection relu((X·Wᵀ)_ni / guard(‖w_i‖)) (or without relu).
fn projection(x: &Mat, w: &Mat, relu: bool) -> Mat {
    let wn = w.row_norms();
    let mut p = x.matmul_t(w);
    for n in 0..p.rows {
        for i in 0..p.cols {
            let v = p.at(n, i) / guard(wn[i]);
            p.set(n, i, if relu { v.max(0.0) } else { v });
        }
    }
    p
}

/// The WTA-family reduction of §1.4: ΔW = GCᵀ·X − diag(colsum(GC ⊙ sign(G)))·W with
/// GC = G ⊙ |G| / guard(colsum |G|).
fn wta_update(g: &Mat, x: &Mat, w: &Mat) -> Mat {
    let abs_sum = g.map(f64::abs).colsum();
    let mut gc = g.clone();
    for n in 0..g.rows {
        for i in 0..g.cols {
            gc.set(n, i, g.at(n, i) * g.at(n, i).abs() / guard(abs_sum[i]));
        }
    }
    let decay = gc
        .zip(g, |a, b| a * b.signum() * (b != 0.0) as u8 as f64)
        .colsum();
    let hebb = gc.t_matmul(x);
    hebb.zip(&w.scale_rows(&decay), |a, b| a - b)
}

/// Sanger / HPCA: (1/N)·[GᵀX − ((GᵀG) ⊙ L)·W].
fn hpca_update(g: &Mat, x: &Mat, w: &Mat) -> Mat {
    let n = g.rows as f64;
    let hebb = g.t_matmul(x);
    let rec = g.t_matmul(g).lower_triangle().matmul(w);
    hebb.zip(&rec, |a, b| (a - b) / n)
}

/// Variance adaptation VA(S), §1.1: updates the tracker from S, then normalises.
fn variance_adapt(s: &Mat, mean: &mut [f64], var: &mut [f64], beta: f64, eps: f64) -> Mat {
    let n = s.rows as f64;
    let mu: Vec<f64> = s.colsum().iter().map(|v| v / n).collect();
    let mut sigma2 = vec![0.0; s.cols];
    for r in 0..s.rows {
        for i in 0..s.cols {
            sigma2[i] += (s.at(r, i) - mu[i]).powi(2);
        }
    }
    for i in 0..s.cols {
        sigma2[i] /= n - 1.0;
        mean[i] = (1.0 - beta) * mean[i] + beta * mu[i];
        var[i] = (1.0 - beta) * var[i] + beta * sigma2[i];
    }
    let mut y = s.clone();
    for r in 0..s.rows {
        for i in 0..s.cols {
            let sd = (var[i] + eps).sqrt();
            y.set(r, i, ((s.at(r, i) - mean[i]) / sd + mean[i]).tanh() * sd);
        }
    }
    y
}

/// SoftHebb's common tail, §3: R = YᵀX − diag(colsum(Y ⊙ U))·W, ΔW = R / (max|R| + 1e-30).
fn softhebb_update(y: &Mat, u: &Mat, x: &Mat, w: &Mat) -> Mat {
    let c = y.zip(u, |a, b| a * b).colsum();
    let r = y.t_matmul(x).zip(&w.scale_rows(&c), |a, b| a - b);
    let m = r.max_abs() + 1e-30;
    r.scale(1.0 / m)
}

fn step(preset: &Preset, x: &Mat, teacher: Option<&Mat>, st: &mut State) -> StepOut {
    let w = st.w.clone();
    let d = x.cols as f64;
    let times_t = |m: &Mat| match teacher {
        Some(t) => m.zip(t, |a, b| a * b),
        None => m.clone(),
    };
    match preset {
        Preset::LaganiHpca { adaptive_step } | Preset::LaganiHpcaTanh { adaptive_step, .. } => {
            let s = x.matmul_t(&w);
            let y = match preset {
                Preset::LaganiHpcaTanh {
                    var_adaptive: true,
                    bn_momentum,
                    bn_eps,
                    ..
                } => variance_adapt(&s, &mut st.bn_mean, &mut st.bn_var, *bn_momentum, *bn_eps),
                Preset::LaganiHpcaTanh { .. } => s.map(f64::tanh),
                _ => s.map(|v| v.max(0.0)),
            };
            let g = times_t(&y);
            let mut dw = hpca_update(&g, x, &w);
            if *adaptive_step {
                dw = dw.scale(1.0 / d.sqrt());
            }
            StepOut {
                delta_w: Some(dw),
                u: Some(s),
                out: Some(y.clone()),
                y: Some(y),
                ..Default::default()
            }
        }
        Preset::LaganiKwta { .. }
        | Preset::LaganiSoftWtaExp { .. }
        | Preset::LaganiSoftWtaPow { .. }
        | Preset::LaganiFinalSupervised => {
            let s = raised_cosine2(x, &w);
            let y = s.clone();
            let (z, g) = match preset {
                Preset::LaganiKwta { k } => {
                    let v = times_t(&y);
                    let mut z = Mat::zeros(v.rows, v.cols);
                    for n in 0..v.rows {
                        let row = v.row(n);
                        let kth = row[ranks(row)[(*k).min(row.len()) - 1]];
                        for i in 0..v.cols {
                            z.set(n, i, if row[i] >= kth { 1.0 } else { 0.0 });
                        }
                    }
                    let g = times_t(&z);
                    (Some(z), g)
                }
                Preset::LaganiSoftWtaExp { temperature } => {
                    let e = times_t(&y.map(|v| (v / temperature).exp()));
                    let z = normalise_rows(&e);
                    let g = times_t(&z);
                    (Some(z), g)
                }
                Preset::LaganiSoftWtaPow { power } => {
                    let e = times_t(&y.map(|v| v.powf(*power)));
                    let z = normalise_rows(&e);
                    let g = times_t(&z);
                    (Some(z), g)
                }
                _ => {
                    let t = teacher.cloned().unwrap_or_else(|| y.map(|_| 1.0));
                    (None, t)
                }
            };
            let dw = wta_update(&g, x, &w);
            let final_layer = matches!(preset, Preset::LaganiFinalSupervised);
            StepOut {
                delta_w: Some(dw),
                u: Some(s),
                y: Some(y),
                z,
                out: Some(projection(x, &w, !final_layer)),
                ..Default::default()
            }
        }
        Preset::LaganiIca | Preset::LaganiHica | Preset::LaganiIcaNrm { .. } => {
            let s = x.matmul_t(&w);
            let y = match preset {
                Preset::LaganiIcaNrm {
                    bn_momentum,
                    bn_eps,
                } => variance_adapt(&s, &mut st.bn_mean, &mut st.bn_var, *bn_momentum, *bn_eps),
                _ => s.map(f64::tanh),
            };
            let mut m = y.t_matmul(&s).scale(1.0 / x.rows as f64);
            if matches!(preset, Preset::LaganiHica) {
                m = m.lower_triangle();
            }
            let p = m.matmul(&w);
            let dw = match preset {
                Preset::LaganiIcaNrm { .. } => {
                    let mut dw = Mat::zeros(w.rows, w.cols);
                    for i in 0..w.rows {
                        let dot: f64 = p.row(i).iter().zip(w.row(i)).map(|(a, b)| a * b).sum();
                        for c in 0..w.cols {
                            dw.set(i, c, dot * w.at(i, c) - p.at(i, c));
                        }
                    }
                    dw
                }
                _ => w.zip(&p, |a, b| a - b),
            };
            StepOut {
                delta_w: Some(dw),
                u: Some(s),
                out: Some(y.clone()),
                y: Some(y),
                ..Default::default()
            }
        }
        Preset::HebbdemoSoftWta {
            w_nrm, activation, ..
        }
        | Preset::HebbdemoHpca { w_nrm, activation } => {
            let wt = if *w_nrm {
                let norms: Vec<f64> = w.row_norms().iter().map(|&v| 1.0 / guard(v)).collect();
                w.scale_rows(&norms)
            } else {
                w.clone()
            };
            let pre = x.matmul_t(&wt);
            let y = match activation {
                DemoActivation::Identity => pre,
                DemoActivation::Relu => pre.map(|v| v.max(0.0)),
            };
            match preset {
                Preset::HebbdemoSoftWta { t_invert, .. } => {
                    let r = softmax_rows(&y.scale(*t_invert));
                    let abs_sum = r.map(f64::abs).colsum();
                    let mut cr = r.clone();
                    for n in 0..r.rows {
                        for i in 0..r.cols {
                            cr.set(n, i, r.at(n, i).abs() / guard(abs_sum[i]) * r.at(n, i));
                        }
                    }
                    let decay = cr.colsum();
                    let dw = cr.t_matmul(x).zip(&w.scale_rows(&decay), |a, b| a - b);
                    StepOut {
                        delta_w: Some(dw),
                        out: Some(y.clone()),
                        y: Some(y),
                        z: Some(r),
                        ..Default::default()
                    }
                }
                _ => StepOut {
                    delta_w: Some(hpca_update(&y, x, &w)),
                    out: Some(y.clone()),
                    y: Some(y),
                    ..Default::default()
                },
            }
        }
        Preset::SofthebbSoftkrotov { .. } | Preset::SofthebbSoft { .. } | Preset::SofthebbHard => {
            let mut u = x.matmul_t(&w);
            if let Preset::SofthebbSoft { bias: true, .. } = preset {
                for n in 0..u.rows {
                    for i in 0..u.cols {
                        u.set(n, i, u.at(n, i) + st.bias[i]);
                    }
                }
            }
            let (y, delta_b) = match preset {
                Preset::SofthebbSoftkrotov {
                    t_invert,
                    pre_triangle,
                } => {
                    if *pre_triangle {
                        u = u.triangle_rows(1.0);
                    }
                    let p = softmax_rows(&u.scale(*t_invert));
                    let win = argmax_rows(&u);
                    let mut y = p.map(|v| -v);
                    for (n, &a) in win.iter().enumerate() {
                        y.set(n, a, p.at(n, a));
                    }
                    (y, None)
                }
                Preset::SofthebbSoft { t_invert, bias, .. } => {
                    let y = softmax_rows(&u.scale(*t_invert));
                    let delta_b = bias.then(|| {
                        let sums = y.colsum();
                        let raw: Vec<f64> = sums
                            .iter()
                            .zip(&st.bias)
                            .map(|(s, b)| {
                                let e = (t_invert * b).exp();
                                (s - y.rows as f64 * e) / e
                            })
                            .collect();
                        let m = raw.iter().fold(0.0f64, |m, v| m.max(v.abs())) + 1e-30;
                        raw.iter().map(|v| v / m).collect::<Vec<f64>>()
                    });
                    (y, delta_b)
                }
                _ => {
                    let win = argmax_rows(&u);
                    let mut y = Mat::zeros(u.rows, u.cols);
                    for (n, &a) in win.iter().enumerate() {
                        y.set(n, a, 1.0);
                    }
                    (y, None)
                }
            };
            let dw = softhebb_update(&y, &u, x, &w);
            StepOut {
                delta_w: Some(dw),
                out: Some(u.clone()),
                u: Some(u),
                y: Some(y),
                delta_b,
                ..Default::default()
            }
        }
        Preset::BcmCurti {
            activation,
            gamma,
            theta_eps,
            ..
        } => {
            let m = st.lateral.as_ref().expect("BCM lateral matrix");
            let pre = x.matmul_t(&w).matmul_t(m);
            let y = match activation {
                BcmActivation::Logistic => pre.map(|a| 1.0 / (1.0 + (-a).exp())),
                BcmActivation::Relu => pre.map(|a| a.max(0.0)),
                BcmActivation::Linear => pre,
            };
            let b = y.rows as f64;
            let theta: Vec<f64> = y.map(|v| v * v).colsum().iter().map(|s| s / b).collect();
            for (ma, t) in st.theta_ma.iter_mut().zip(&theta) {
                *ma = gamma * *ma + (1.0 - gamma) * t;
            }
            let mut phi = y.clone();
            for n in 0..y.rows {
                for i in 0..y.cols {
                    let v = y.at(n, i);
                    phi.set(n, i, v * (v - theta[i]) / (theta[i] + theta_eps));
                }
            }
            StepOut {
                delta_w: Some(phi.t_matmul(x).scale(1.0 / b)),
                y: Some(y),
                ..Default::default()
            }
        }
        Preset::KrotovHopfield {
            p, k, delta, prec, ..
        } => {
            let wt = w.map(|v| v.signum() * (v != 0.0) as u8 as f64 * v.abs().powf(p - 1.0));
            let u = x.matmul_t(&wt);
            let mut g = Mat::zeros(u.rows, u.cols);
            for n in 0..u.rows {
                let order = ranks(u.row(n));
                g.set(n, order[0], 1.0);
                g.set(n, order[(*k).min(order.len()) - 1], -delta);
            }
            let xx = g.zip(&u, |a, b| a * b).colsum();
            let ds = g.t_matmul(x).zip(&w.scale_rows(&xx), |a, b| a - b);
            let m = ds.max_abs().max(*prec);
            StepOut {
                delta_w: Some(ds.scale(1.0 / m)),
                u: Some(u),
                y: Some(g),
                ..Default::default()
            }
        }
    }
}

/// Row normalisation E / guard(rowsum(E)).
fn normalise_rows(e: &Mat) -> Mat {
    let mut z = e.clone();
    for n in 0..e.rows {
        let s = guard(e.row(n).iter().sum());
        for i in 0..e.cols {
            z.set(n, i, e.at(n, i) / s);
        }
    }
    z
}

/// Applies the optimizer to W (and returns the per-neuron rate for SoftHebb, or the scalar
/// rate broadcast, used for the bias).
fn apply_optimizer(opt: &Optimizer, dw: &Mat, st: &mut State) -> Vec<f64> {
    st.t += 1;
    let c = st.w.rows;
    match *opt {
        Optimizer::Sgd {
            lr,
            momentum,
            nesterov,
            weight_decay,
        } => {
            let g = dw.zip(&st.w, |d, w| -d + weight_decay * w);
            let dir = if momentum != 0.0 {
                let buf = match st.momentum.take() {
                    None => g.clone(),
                    Some(b) => b.zip(&g, |b, g| momentum * b + g),
                };
                let dir = if nesterov {
                    g.zip(&buf, |g, b| g + momentum * b)
                } else {
                    buf.clone()
                };
                st.momentum = Some(buf);
                dir
            } else {
                g
            };
            st.w = st.w.zip(&dir, |w, d| w - lr * d);
            vec![lr; c]
        }
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let g = dw.zip(&st.w, |d, w| -d + weight_decay * w);
            let m = match st.adam_m.take() {
                None => g.scale(1.0 - beta1),
                Some(m) => m.zip(&g, |m, g| beta1 * m + (1.0 - beta1) * g),
            };
            let v = match st.adam_v.take() {
                None => g.map(|g| (1.0 - beta2) * g * g),
                Some(v) => v.zip(&g, |v, g| beta2 * v + (1.0 - beta2) * g * g),
            };
            let t = st.t as i32;
            let a = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
            let step = m.zip(&v, |m, v| a * m / (v.sqrt() + eps));
            st.w = st.w.zip(&step, |w, s| w - s);
            st.adam_m = Some(m);
            st.adam_v = Some(v);
            vec![lr; c]
        }
        Optimizer::SofthebbAdaptive { lr, power } => {
            let eta: Vec<f64> =
                st.w.row_norms()
                    .iter()
                    .map(|n| lr * ((n - 1.0).abs() + 1e-10).powf(power))
                    .collect();
            st.w = st.w.zip(&dw.scale_rows(&eta), |w, d| w + d);
            eta
        }
    }
}

/// The case's teacher of step `s` as T (N x C): sample b's row repeated for its positions.
fn teacher_rows(case: &Case, s: usize) -> Option<Mat> {
    let t = case.inputs.get("teacher")?;
    let c = case.layer.neurons();
    let per = case.output_hw.0 * case.output_hw.1;
    let mut m = Mat::zeros(case.rows(), c);
    for b in 0..case.batch {
        for p in 0..per {
            for i in 0..c {
                m.set(b * per + p, i, t.data[(s * case.batch + b) * c + i]);
            }
        }
    }
    Some(m)
}

fn vector_or(case: &Case, key: &str, fill: f64) -> Vec<f64> {
    case.inputs
        .get(key)
        .map(|a| a.data.clone())
        .unwrap_or_else(|| vec![fill; case.layer.neurons()])
}

/// Runs every step of a case in float64 and returns a tensor for each key the case expects
/// (keys this reference cannot produce are absent).
pub fn run_case(case: &Case) -> Result<BTreeMap<String, Array>, String> {
    let c = case.layer.neurons();
    let d = case.layer.fan_in();
    let w0 = &case.inputs["w"];
    let lateral = match case.rule.preset {
        Preset::BcmCurti {
            lateral_strength, ..
        } => {
            let mut a = Mat::zeros(c, c);
            for i in 0..c {
                for j in 0..c {
                    a.set(i, j, if i == j { 1.0 } else { -lateral_strength });
                }
            }
            Some(a.inverse().ok_or_else(|| {
                format!("lateral_strength {lateral_strength} makes I − L singular")
            })?)
        }
        _ => None,
    };
    let mut st = State {
        w: Mat::from_vec(c, d, w0.data.clone()),
        bn_mean: vector_or(case, "bn_running_mean", 0.0),
        bn_var: vector_or(case, "bn_running_var", 1.0),
        bias: vector_or(case, "b", 0.0),
        theta_ma: vector_or(case, "theta", 0.0),
        lateral,
        t: 0,
        momentum: None,
        adam_m: None,
        adam_v: None,
    };
    let x_all = &case.inputs["x"];
    let per_step = x_all.data.len() / case.steps;
    let mut w_steps = Vec::with_capacity(case.steps * c * d);
    let mut last = StepOut::default();
    let mut lr_neuron = vec![0.0; c];
    for s in 0..case.steps {
        let x = im2col(
            &case.layer,
            &x_all.data[s * per_step..(s + 1) * per_step],
            case.batch,
            case.input_hw,
        );
        let teacher = teacher_rows(case, s);
        let out = step(&case.rule.preset, &x, teacher.as_ref(), &mut st);
        let dw = out.delta_w.clone().expect("every preset yields ΔW");
        lr_neuron = apply_optimizer(&case.rule.optimizer, &dw, &mut st);
        if let (
            Some(db),
            Preset::SofthebbSoft {
                lr_bias: Some(lrb), ..
            },
        ) = (&out.delta_b, &case.rule.preset)
        {
            for i in 0..c {
                st.bias[i] += lr_neuron[i] * lrb * db[i];
            }
        }
        w_steps.extend_from_slice(&st.w.data);
        last = out;
    }

    let w_shape = w0.shape.clone();
    let rows = |m: &Mat| Array::new(vec![m.rows, m.cols], m.data.clone());
    let mut got = BTreeMap::new();
    for key in case.expected.keys() {
        let value = match key.as_str() {
            "delta_w" => last
                .delta_w
                .as_ref()
                .map(|m| Array::new(w_shape.clone(), m.data.clone())),
            "w" => Some(Array::new(w_shape.clone(), st.w.data.clone())),
            "w_steps" => {
                let mut shape = vec![case.steps];
                shape.extend(&w_shape);
                Some(Array::new(shape, w_steps.clone()))
            }
            "u" => last.u.as_ref().map(rows),
            "y" => last.y.as_ref().map(rows),
            "z" => last.z.as_ref().map(rows),
            "out" => last.out.as_ref().map(|m| match case.layer {
                Layer::Linear { .. } => rows(m),
                Layer::Conv2d { .. } => Array::new(
                    vec![case.batch, c, case.output_hw.0, case.output_hw.1],
                    rows_to_nchw(m, case.batch, case.output_hw),
                ),
            }),
            "lr_neuron" => Some(Array::new(vec![c], lr_neuron.clone())),
            "theta" => Some(Array::new(vec![c], st.theta_ma.clone())),
            "bn_running_mean" => Some(Array::new(vec![c], st.bn_mean.clone())),
            "bn_running_var" => Some(Array::new(vec![c], st.bn_var.clone())),
            "delta_b" => last
                .delta_b
                .as_ref()
                .map(|v| Array::new(vec![c], v.clone())),
            "b" => Some(Array::new(vec![c], st.bias.clone())),
            _ => None,
        };
        if let Some(v) = value {
            got.insert(key.clone(), v);
        }
    }
    Ok(got)
}

/// Float64 reference of the row-wise competition kernels (`competition` in hebbian.wgsl and
/// `competition_subgroup`): (out0, G) for U and an optional teacher T, both N x C row-major.
/// Rankings order entries by value descending, then index ascending (first index wins among
/// equal values; duplicates count toward k), as PRESETS.md §1.4, §3.3 and §5 say.
pub fn competition(
    kind: crate::kernels::hebbian::Competition,
    u: &[f64],
    teacher: Option<&[f64]>,
    n: usize,
    c: usize,
) -> (Vec<f64>, Vec<f64>) {
    use crate::kernels::hebbian::Competition as K;
    let pow_nonneg = |v: f64, a: f64| if v <= 0.0 { 0.0 } else { v.powf(a) };
    // Indices of the row in rank order.
    let order = |row: &[f64]| {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|&i, &j| row[j].total_cmp(&row[i]).then(i.cmp(&j)));
        idx
    };
    let mut out0 = vec![0.0; n * c];
    let mut g = vec![0.0; n * c];
    for r in 0..n {
        let row = &u[r * c..(r + 1) * c];
        let t: Vec<f64> = match teacher {
            Some(t) => t[r * c..(r + 1) * c].to_vec(),
            None => vec![1.0; c],
        };
        let (o, gg) = (&mut out0[r * c..(r + 1) * c], &mut g[r * c..(r + 1) * c]);
        let normalise = |e: Vec<f64>, o: &mut [f64], gg: &mut [f64]| {
            let total = guard(e.iter().sum());
            for i in 0..c {
                o[i] = e[i] / total;
                gg[i] = o[i] * t[i];
            }
        };
        match kind {
            K::Relu | K::Tanh | K::Logistic | K::Identity | K::ReluOnly => {
                for i in 0..c {
                    let y = match kind {
                        K::Relu | K::ReluOnly => row[i].max(0.0),
                        K::Tanh => row[i].tanh(),
                        K::Logistic => 1.0 / (1.0 + (-row[i]).exp()),
                        _ => row[i],
                    };
                    o[i] = y;
                    gg[i] = if kind == K::ReluOnly { y } else { y * t[i] };
                }
            }
            K::Kwta { k } => {
                let v: Vec<f64> = (0..c).map(|i| row[i] * t[i]).collect();
                let kth = v[order(&v)[k as usize - 1]];
                for i in 0..c {
                    o[i] = if v[i] >= kth { 1.0 } else { 0.0 };
                    gg[i] = o[i] * t[i];
                }
            }
            K::SoftExp { temperature } => {
                let a = temperature as f64;
                normalise((0..c).map(|i| (row[i] / a).exp() * t[i]).collect(), o, gg)
            }
            K::SoftPow { power } => {
                let a = power as f64;
                normalise(
                    (0..c).map(|i| pow_nonneg(row[i], a) * t[i]).collect(),
                    o,
                    gg,
                )
            }
            K::Softmax { t_invert } | K::SoftKrotov { t_invert } => {
                let a = t_invert as f64;
                let shift = row.iter().map(|v| a * v).fold(f64::MIN, f64::max);
                let e: Vec<f64> = row.iter().map(|v| (a * v - shift).exp()).collect();
                let total: f64 = e.iter().sum();
                let winner = order(row)[0];
                for i in 0..c {
                    let q = e[i] / total;
                    let y = match kind {
                        K::SoftKrotov { .. } if i != winner => -q,
                        _ => q,
                    };
                    o[i] = y;
                    gg[i] = y;
                }
            }
            K::Hard | K::Krotov { .. } => {
                let ranked = order(row);
                for i in 0..c {
                    let mut v = if i == ranked[0] { 1.0 } else { 0.0 };
                    if let K::Krotov { k, delta } = kind {
                        if i == ranked[k as usize - 1] {
                            v = -(delta as f64);
                        }
                    }
                    o[i] = v;
                    gg[i] = v;
                }
            }
            K::Teacher => {
                o.copy_from_slice(row);
                gg.copy_from_slice(&t);
            }
            K::Triangle { power } => {
                let mean = row.iter().sum::<f64>() / c as f64;
                for i in 0..c {
                    o[i] = pow_nonneg(row[i] - mean, power as f64);
                    gg[i] = o[i];
                }
            }
        }
    }
    (out0, g)
}
