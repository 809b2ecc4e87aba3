//! Backpropagation through a whole network in float64: the reference the GPU's fine-tuning
//! is checked against, and itself checked against central finite differences of its own
//! forward (the test below), on a small network with every layer kind fine-tuning meets:
//! reflect- and zero-padded convolutions, a linear block, the forward weights W, w/‖w‖ (Lagani's
//! WTA) and sign(w)·|w|^a (Krotov), unit-norm patches, SoftHebb's triangle, relu^a, tanh,
//! max and average pooling, batch norm (training mode, plain and Lagani's modified), dropout,
//! and the classifier's linear layer with softmax cross-entropy.
//!
//! Tensors between ops are NCHW (B, C, H, W); activations act on each position's C channels
//! (the rows of `reference::activation`). The loss is the mean cross-entropy over the batch.

use crate::kernels::hebbian::ActivationGrad;
use crate::kernels::im2col::ConvGeometry;
use crate::kernels::norm::BatchNorm;
use crate::kernels::pool::{Pool2d, PoolKind};
use crate::reference::activation::{
    activation, activation_backward, signed_pow, signed_pow_backward, unit_rows as rows_normed,
    unit_rows_backward,
};
use crate::rules::preset::ForwardWeights;

/// The patch matrix P (N x D) of x, each row over its norm with `normed`.
fn patches(g: &ConvGeometry, x: &[f64], normed: bool) -> Mat {
    let p = im2col_conv(g, x);
    if normed { rows_normed(&p) } else { p }
}

/// The weights W̃ a block projects onto.
fn forward_weights(weights: ForwardWeights, w: &Mat) -> Mat {
    match weights {
        ForwardWeights::Raw => w.clone(),
        ForwardWeights::UnitRows => rows_normed(w),
        ForwardWeights::SignedPower { exponent } => signed_pow(w, exponent as f64),
    }
}
use crate::reference::classifier::softmax_xent;
use crate::reference::dense::{Mat, col2im_conv, im2col_conv};
use crate::reference::norm::{batch_norm, batch_norm_backward};
use crate::reference::pool::{pool2d, pool2d_backward};

/// One op of the chain, with the shape of its input where it needs one.
#[derive(Clone, Debug)]
pub enum Op {
    /// U = P·W̃ᵀ (no bias) for W (C x D), geometry of the whole batch; W̃ = W, each row over
    /// its norm (Lagani's WTA vector projection), or Krotov's sign(w)·|w|^a. With
    /// `normed_patches` each row of P over its norm first (`unit_norm_input`).
    Conv {
        g: ConvGeometry,
        w: Mat,
        weights: ForwardWeights,
        normed_patches: bool,
    },
    Activation {
        kind: ActivationGrad,
        channels: usize,
    },
    Pool(Pool2d),
    /// Training mode; its running statistics are updated by each forward. `affine`: γ (C)
    /// then β (C), parameters whose gradient `ParamGrad::w` holds.
    BatchNorm {
        g: BatchNorm,
        running_mean: Vec<f64>,
        running_var: Vec<f64>,
        affine: Option<Vec<f64>>,
    },
    /// Inverted dropout with a fixed keep mask (1/(1 − rate) where kept, 0 elsewhere).
    Dropout {
        scale: Vec<f64>,
    },
    /// Z = X·Wᵀ + b for X (B x F), W (K x F).
    Linear {
        w: Mat,
        b: Vec<f64>,
    },
}

impl Op {
    /// A stride-1 convolution of `c_in` square `hw` x `hw` planes, kernel k, padding `pad`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        batch: usize,
        c_in: usize,
        hw: usize,
        k: usize,
        pad: usize,
        reflect: bool,
        w: Mat,
        weights: ForwardWeights,
    ) -> Op {
        let g = ConvGeometry {
            batch,
            in_channels: c_in,
            h: hw,
            w: hw,
            kernel: [k, k],
            stride: [1, 1],
            padding: [pad, pad],
            reflect,
        };
        Op::Conv {
            g,
            w,
            weights,
            normed_patches: false,
        }
    }

    /// This convolution with its patches scaled to unit norm (`unit_norm_input`).
    pub fn with_normed_patches(self) -> Op {
        match self {
            Op::Conv { g, w, weights, .. } => Op::Conv {
                g,
                w,
                weights,
                normed_patches: true,
            },
            other => other,
        }
    }

    /// Square k/s/p pooling of `planes` square `hw` x `hw` planes.
    pub fn pool(kind: PoolKind, planes: usize, hw: usize, k: usize, s: usize, p: usize) -> Op {
        Op::Pool(Pool2d {
            kind,
            planes,
            h: hw,
            w: hw,
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
        })
    }

    /// A training-mode batch norm (momentum 0.1, ε 1e-5, PyTorch's) with running means 0,
    /// the given running variances, and affine parameters γ then β when given.
    pub fn batch_norm(
        batch: usize,
        plane: usize,
        modified: bool,
        running_var: Vec<f64>,
        affine: Option<Vec<f64>>,
    ) -> Op {
        let channels = running_var.len();
        Op::BatchNorm {
            g: BatchNorm {
                batch,
                channels,
                plane,
                training: true,
                modified,
                momentum: 0.1,
                eps: 1e-5,
            },
            running_mean: vec![0.0; channels],
            running_var,
            affine,
        }
    }
}

/// What the forward of one op keeps for its backward.
enum Saved {
    Input(Vec<f64>),
    /// Batch norm: the input and the running statistics as the forward left them.
    Norm {
        x: Vec<f64>,
        running_mean: Vec<f64>,
        running_var: Vec<f64>,
    },
}

/// The gradients of one parameterised op (empty for the others).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamGrad {
    pub w: Vec<f64>,
    pub b: Vec<f64>,
}

pub struct Net {
    pub ops: Vec<Op>,
    pub batch: usize,
}

impl Net {
    /// The mean cross-entropy of `x` against `labels`, and each op's saved state. Batch norms
    /// update their running statistics; with `frozen_factors` the modified BN's factor reads
    /// the running variance given there (per op) instead: the factor is a function of a buffer
    /// and carries no gradient, so finite differences must hold it fixed.
    fn forward(
        &mut self,
        x: &[f64],
        labels: &[u32],
        frozen_factors: Option<&[Option<Vec<f64>>]>,
    ) -> (f64, Vec<Saved>, Vec<f64>) {
        let mut h = x.to_vec();
        let mut saved = Vec::new();
        let batch = self.batch;
        for (i, op) in self.ops.iter_mut().enumerate() {
            let input = h.clone();
            h = match op {
                Op::Conv {
                    g,
                    w,
                    weights,
                    normed_patches,
                } => {
                    let (ho, wo) = g.output_hw().expect("valid geometry");
                    let p = patches(g, &h, *normed_patches);
                    let u = p.matmul_t(&forward_weights(*weights, w));
                    crate::reference::dense::rows_to_nchw(&u, batch, (ho, wo))
                }
                Op::Activation { kind, channels } => {
                    let rows = nchw_to_rows(&h, batch, *channels);
                    let y = activation(*kind, &rows);
                    crate::reference::dense::rows_to_nchw(&y, batch, plane_hw(&h, batch, *channels))
                }
                Op::Pool(g) => pool2d(g, &h),
                Op::BatchNorm {
                    g,
                    running_mean,
                    running_var,
                    affine,
                } => {
                    let mut y = batch_norm(g, &h, running_mean, running_var, affine.as_deref());
                    if let Some(Some(frozen)) = frozen_factors.map(|f| &f[i]) {
                        // Redo the modified factor with the frozen running variance.
                        let eps = g.eps as f64;
                        let (c, p) = (g.channels, g.plane);
                        let mean_now = running_var.iter().sum::<f64>() / c as f64;
                        let mean_frozen = frozen.iter().sum::<f64>() / c as f64;
                        for (e, v) in y.iter_mut().enumerate() {
                            let ch = (e / p) % c;
                            let now = ((running_var[ch] + eps) / (mean_now + eps)).sqrt();
                            let fixed = ((frozen[ch] + eps) / (mean_frozen + eps)).sqrt();
                            *v *= fixed / now;
                        }
                    }
                    saved.push(Saved::Norm {
                        x: input,
                        running_mean: running_mean.clone(),
                        running_var: running_var.clone(),
                    });
                    h = y;
                    continue;
                }
                Op::Dropout { scale } => h.iter().zip(scale.iter()).map(|(a, s)| a * s).collect(),
                Op::Linear { w, b } => {
                    let f = w.cols;
                    let z = Mat::from_vec(batch, f, h.clone()).matmul_t(w);
                    (0..batch * w.rows)
                        .map(|e| z.data[e] + b[e % w.rows])
                        .collect()
                }
            };
            saved.push(Saved::Input(input));
        }
        let k = h.len() / batch;
        let (loss, _) = softmax_xent(&h, labels, k, 1.0 / batch as f64);
        (loss.iter().sum::<f64>() / batch as f64, saved, h)
    }

    /// The loss, and by backpropagation ∂L/∂x and each op's parameter gradients.
    pub fn gradients(&mut self, x: &[f64], labels: &[u32]) -> (f64, Vec<f64>, Vec<ParamGrad>) {
        let (loss, saved, logits) = self.forward(x, labels, None);
        let batch = self.batch;
        let k = logits.len() / batch;
        let (_, mut grad) = softmax_xent(&logits, labels, k, 1.0 / batch as f64);
        let mut params = vec![ParamGrad::default(); self.ops.len()];
        for (i, op) in self.ops.iter().enumerate().rev() {
            grad = match (op, &saved[i]) {
                (
                    Op::Conv {
                        g,
                        w,
                        weights,
                        normed_patches,
                    },
                    Saved::Input(x),
                ) => {
                    let (ho, wo) = g.output_hw().expect("valid geometry");
                    let du = nchw_to_rows(&grad, batch, w.rows);
                    debug_assert_eq!(du.rows, batch * ho * wo);
                    // ∂L/∂W̃, then through W̃(W) to W.
                    let dw_tilde = du.t_matmul(&patches(g, x, *normed_patches));
                    params[i].w = match *weights {
                        ForwardWeights::Raw => dw_tilde.data,
                        ForwardWeights::UnitRows => unit_rows_backward(w, &dw_tilde).data,
                        ForwardWeights::SignedPower { exponent } => {
                            signed_pow_backward(w, &dw_tilde, exponent as f64).data
                        }
                    };
                    // ∂L/∂P, through p/‖p‖ per row where the patches were normalised.
                    let dp = du.matmul(&forward_weights(*weights, w));
                    let dp = if *normed_patches {
                        unit_rows_backward(&im2col_conv(g, x), &dp)
                    } else {
                        dp
                    };
                    col2im_conv(g, &dp)
                }
                (Op::Activation { kind, channels }, Saved::Input(x)) => {
                    let u = nchw_to_rows(x, batch, *channels);
                    let dy = nchw_to_rows(&grad, batch, *channels);
                    let du = activation_backward(*kind, &u, &dy);
                    crate::reference::dense::rows_to_nchw(&du, batch, plane_hw(x, batch, *channels))
                }
                (Op::Pool(g), Saved::Input(x)) => pool2d_backward(g, x, &grad),
                (
                    Op::BatchNorm { g, affine, .. },
                    Saved::Norm {
                        x,
                        running_mean,
                        running_var,
                    },
                ) => {
                    let (dx, d_affine) = batch_norm_backward(
                        g,
                        x,
                        running_mean,
                        running_var,
                        affine.as_deref(),
                        &grad,
                    );
                    if affine.is_some() {
                        params[i].w = d_affine;
                    }
                    dx
                }
                (Op::Dropout { scale }, _) => grad.iter().zip(scale).map(|(a, s)| a * s).collect(),
                (Op::Linear { w, .. }, Saved::Input(x)) => {
                    let dz = Mat::from_vec(batch, w.rows, grad.clone());
                    params[i].w = dz.t_matmul(&Mat::from_vec(batch, w.cols, x.clone())).data;
                    params[i].b = dz.colsum();
                    dz.matmul(w).data
                }
                _ => unreachable!("each op saves what its backward reads"),
            };
        }
        (loss, grad, params)
    }

    /// The loss with every batch norm's running statistics reset to `state` first and the
    /// modified factors frozen at `factors` (finite differences evaluate the same function).
    pub fn loss_at(
        &mut self,
        x: &[f64],
        labels: &[u32],
        state: &[Op],
        factors: &[Option<Vec<f64>>],
    ) -> f64 {
        for (op, s) in self.ops.iter_mut().zip(state) {
            if let (
                Op::BatchNorm {
                    running_mean,
                    running_var,
                    ..
                },
                Op::BatchNorm {
                    running_mean: m0,
                    running_var: v0,
                    ..
                },
            ) = (op, s)
            {
                running_mean.clone_from(m0);
                running_var.clone_from(v0);
            }
        }
        self.forward(x, labels, Some(factors)).0
    }
}

/// (B, C, H, W) to rows (B·H·W x C), row n = (b·H + y)·W + z.
fn nchw_to_rows(x: &[f64], batch: usize, channels: usize) -> Mat {
    let plane = x.len() / (batch * channels);
    let mut rows = Mat::zeros(batch * plane, channels);
    for b in 0..batch {
        for c in 0..channels {
            for p in 0..plane {
                rows.set(b * plane + p, c, x[(b * channels + c) * plane + p]);
            }
        }
    }
    rows
}

/// (H·W, 1) as the plane shape `rows_to_nchw` needs (it only uses the product).
fn plane_hw(x: &[f64], batch: usize, channels: usize) -> (usize, usize) {
    (x.len() / (batch * channels), 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(rng: &mut ChaCha8Rng, len: usize, scale: f64) -> Vec<f64> {
        (0..len)
            .map(|_| scale * rng.random_range(-1.0..1.0))
            .collect()
    }

    /// Running variances 1 + 0.1·c, so that the modified BN's factors differ; with `affine`,
    /// γ = 1 + 0.3·(c − 1) and β = 0.2 − 0.15·c, away from the identity.
    fn norm(batch: usize, channels: usize, plane: usize, modified: bool, affine: bool) -> Op {
        let var = (0..channels).map(|c| 1.0 + 0.1 * c as f64).collect();
        let affine = affine.then(|| {
            let gamma = (0..channels).map(|c| 1.0 + 0.3 * (c as f64 - 1.0));
            let beta = (0..channels).map(|c| 0.2 - 0.15 * c as f64);
            gamma.chain(beta).collect()
        });
        Op::batch_norm(batch, plane, modified, var, affine)
    }

    /// B = 3 images of 2 x 9 x 9 through every layer kind to 3 classes.
    fn tiny(rng: &mut ChaCha8Rng) -> Net {
        let b = 3;
        let mut w = |c: usize, d: usize| Mat::from_vec(c, d, random(rng, c * d, 0.5));
        let ops = vec![
            // 2x9x9 → 4x9x9, SoftHebb's pre-triangle Triangle₁, then its triangle (power 1.3:
            // no pole to straddle).
            Op::conv(b, 2, 9, 3, 1, true, w(4, 18), ForwardWeights::Raw),
            Op::Activation {
                kind: ActivationGrad::Triangle { power: 1.0 },
                channels: 4,
            },
            Op::Activation {
                kind: ActivationGrad::Triangle { power: 1.3 },
                channels: 4,
            },
            // → 4x4x4 by SoftHebb's 4/2/1 max pooling.
            Op::pool(PoolKind::Max, b * 4, 9, 4, 2, 1),
            norm(b, 4, 16, false, false),
            // → 5x2x2 through unit-norm weights (Lagani's WTA forward), relu.
            Op::conv(b, 4, 4, 3, 0, false, w(5, 36), ForwardWeights::UnitRows),
            Op::Activation {
                kind: ActivationGrad::ReluPow { power: 1.0 },
                channels: 5,
            },
            // → 5x3x3 by average pooling 2/1/1 without the padding in the divisor.
            Op::pool(
                PoolKind::Avg {
                    count_include_pad: false,
                },
                b * 5,
                2,
                2,
                1,
                1,
            ),
            // Lagani's modified BN over an affine BN, as his fine-tuning trains it.
            norm(b, 5, 9, true, true),
            // A linear block: a convolution covering its input, its patches over their norms
            // and Krotov's weights sign(w)·|w|^2.5 (p = 3.5), → 6x1x1, relu^2 then tanh.
            Op::conv(
                b,
                5,
                3,
                3,
                0,
                false,
                w(6, 45),
                ForwardWeights::SignedPower { exponent: 2.5 },
            )
            .with_normed_patches(),
            Op::Activation {
                kind: ActivationGrad::ReluPow { power: 2.0 },
                channels: 6,
            },
            Op::Activation {
                kind: ActivationGrad::Tanh,
                channels: 6,
            },
            // Dropout (rate 1/4, a fixed mask), then the classifier.
            Op::Dropout {
                scale: (0..b * 6)
                    .map(|i| if i % 4 == 1 { 0.0 } else { 4.0 / 3.0 })
                    .collect(),
            },
            Op::Linear {
                w: w(3, 6),
                b: random(rng, 3, 0.1),
            },
        ];
        Net { ops, batch: b }
    }

    /// Moves parameter `e` of `which` ("w": the weights, or a batch norm's γ then β; "b": the
    /// classifier's bias) of `op` by `delta`.
    fn nudge(op: &mut Op, which: &str, e: usize, delta: f64) {
        match (op, which) {
            (Op::Conv { w, .. } | Op::Linear { w, .. }, "w") => w.data[e] += delta,
            (Op::Linear { b, .. }, "b") => b[e] += delta,
            (
                Op::BatchNorm {
                    affine: Some(a), ..
                },
                "w",
            ) => a[e] += delta,
            _ => unreachable!("only parameters are nudged"),
        }
    }

    #[test]
    fn gradient_matches_central_differences() {
        let seed = 20261203;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut net = tiny(&mut rng);
        let x = random(&mut rng, 3 * 2 * 9 * 9, 1.0);
        let labels = [0u32, 2, 1];
        let state = net.ops.clone();
        let (_, dx, params) = net.gradients(&x, &labels);
        // The modified BN's factors as that forward left the running variances.
        let factors: Vec<Option<Vec<f64>>> = net
            .ops
            .iter()
            .map(|op| match op {
                Op::BatchNorm { g, running_var, .. } if g.modified => Some(running_var.clone()),
                _ => None,
            })
            .collect();
        let h = 1e-5;
        let mut checked = 0;
        let mut worst: f64 = 0.0;
        let mut compare = |analytic: f64, numeric: f64, what: &str| {
            // Relative, with a floor of 1e-5 for gradients near zero: the difference quotient's
            // own rounding is about 1e-16·L/h ≈ 1e-11 and its truncation h²·L''' about 1e-10.
            // The kinks (relu, the max's argmax, the triangle) lie further than h from these
            // seeded points.
            let err = (analytic - numeric).abs() / (analytic.abs().max(numeric.abs()) + 1e-5);
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "{what}: backprop {analytic:e}, finite difference {numeric:e} (seed {seed})"
            );
            checked += 1;
        };
        for e in 0..x.len() {
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus[e] += h;
            minus[e] -= h;
            let numeric = (net.loss_at(&plus, &labels, &state, &factors)
                - net.loss_at(&minus, &labels, &state, &factors))
                / (2.0 * h);
            compare(dx[e], numeric, &format!("x[{e}]"));
        }
        for i in 0..net.ops.len() {
            for which in ["w", "b"] {
                let len = match (&net.ops[i], which) {
                    (Op::Conv { w, .. } | Op::Linear { w, .. }, "w") => w.data.len(),
                    (Op::Linear { b, .. }, "b") => b.len(),
                    (
                        Op::BatchNorm {
                            affine: Some(a), ..
                        },
                        "w",
                    ) => a.len(),
                    _ => 0,
                };
                for e in 0..len {
                    let mut at = |delta: f64| {
                        nudge(&mut net.ops[i], which, e, delta);
                        let loss = net.loss_at(&x, &labels, &state, &factors);
                        nudge(&mut net.ops[i], which, e, -delta);
                        loss
                    };
                    let numeric = (at(h) - at(-h)) / (2.0 * h);
                    let analytic = if which == "w" {
                        params[i].w[e]
                    } else {
                        params[i].b[e]
                    };
                    compare(analytic, numeric, &format!("op {i} {which}[{e}]"));
                }
            }
        }
        // 486 inputs, 72 + 180 + 270 + 18 weights, 3 biases and 5 + 5 of γ, β.
        assert_eq!(checked, 486 + 72 + 180 + 270 + 18 + 3 + 10);
        eprintln!(
            "{checked} gradients agree with central differences; worst relative error {worst:e}"
        );
    }
}
