//! The supervised head: dropout → linear layer (K x F weights, K biases) → softmax cross-entropy
//! (or Krotov & Hopfield's tanh power loss, without bias), trained by SGD (Nesterov momentum,
//! weight decay) or Adam on the frozen Hebbian features.
//!
//! One training step on features X (B x F) and labels:
//!   Z = X·Wᵀ + b (B x K);  G = −∂loss/∂Z / B  (the ascent direction, B x K): for softmax
//!   cross-entropy −(softmax(Z) − onehot)/B
//!   ΔW = Gᵀ·X (K x F);  Δb = colsum(G) (K);  optimizer step on W and b (optim.wgsl)
//! PyTorch's nn.Linear init: U(−1/√F, 1/√F) for W, and for b with softmax (b = 0 otherwise).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::classifier as head;
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Gemm};
use crate::kernels::hebbian;
use crate::kernels::optim::{self, OptimStep};
use crate::kernels::reduce::{self, ReduceOp};
use crate::nn::recipe::{ClassifierHead, ClassifierOptimizer};

/// One step of a recipe's supervised optimizer at the scheduled rate `lr` for a parameter
/// that has taken `steps` steps before: the first SGD step starts the momentum buffer, and
/// Adam's rate carries the bias correction a_t = lr·√(1 − β2^t)/(1 − β1^t), t = steps + 1.
/// The classifier and fine-tuning's blocks step through this one mapping.
pub fn optim_step(optimizer: ClassifierOptimizer, lr: f64, steps: u32) -> OptimStep {
    let first = steps == 0;
    let t = (steps + 1) as i32;
    match optimizer {
        ClassifierOptimizer::Sgd {
            momentum,
            nesterov,
            weight_decay,
            ..
        } => OptimStep::Sgd {
            lr: lr as f32,
            momentum: momentum as f32,
            nesterov,
            weight_decay: weight_decay as f32,
            first,
        },
        ClassifierOptimizer::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => OptimStep::Adam {
            rate: (lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t))) as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            eps: eps as f32,
            weight_decay: weight_decay as f32,
            first,
        },
    }
}

pub struct Linear {
    pub features: usize,
    pub classes: usize,
    pub w: Tensor,
    pub b: Tensor,
    /// Optimizer state: W momentum / Adam m, W Adam v, b momentum / m, b v.
    pub state: [Tensor; 4],
    pub steps: u32,
    pub head: ClassifierHead,
    batch: usize,
    logits: Tensor,
    grad: Tensor,
    loss: Tensor,
    correct: Tensor,
    dw: Tensor,
    db: Tensor,
    unused: Tensor,
    unused2: Tensor,
    /// The batch's labels (class indices as f32), rewritten by `set_labels`.
    labels: Tensor,
    /// Σ w² of W after the last step (NaN and Inf propagate through a sum).
    wsum: Tensor,
    /// What one readback returns: loss (batch), correct (batch), then Σ w² (1).
    report: Tensor,
}

/// The host's view of a step or evaluation, read back at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    pub loss_sum: f64,
    pub correct: usize,
    /// Σ w² of W is finite (checked after train steps; true after evaluations).
    pub weights_finite: bool,
}

impl Linear {
    pub fn new(
        ctx: &GpuContext,
        features: usize,
        classes: usize,
        batch: usize,
        seed: u64,
        head: ClassifierHead,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC1A5_5E00);
        let a = 1.0 / (features as f64).sqrt();
        let mut draw =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-a..a) as f32).collect() };
        let w = Tensor::from_f32(
            ctx,
            "classifier W",
            &[classes, features],
            &draw(classes * features),
        )?;
        let bias = match head {
            ClassifierHead::Softmax => draw(classes),
            ClassifierHead::TanhPower { .. } => vec![0.0; classes],
        };
        let b = Tensor::from_f32(ctx, "classifier b", &[classes], &bias)?;
        let zeros = |label: &str, len: usize| Tensor::from_f32(ctx, label, &[len], &vec![0.0; len]);
        let kf = classes * features;
        let t = |label: &str, len: usize| Tensor::empty(ctx, label, &[len.max(1)], DType::F32);
        Ok(Self {
            features,
            classes,
            w,
            b,
            state: [
                zeros("classifier W state 0", kf)?,
                zeros("classifier W state 1", kf)?,
                zeros("classifier b state 0", classes)?,
                zeros("classifier b state 1", classes)?,
            ],
            steps: 0,
            head,
            batch,
            logits: t("logits", batch * classes)?,
            grad: t("logit gradient", batch * classes)?,
            loss: t("loss", batch)?,
            correct: t("correct", batch)?,
            dw: t("classifier ΔW", kf)?,
            db: t("classifier Δb", classes)?,
            unused: t("unused", 1)?,
            unused2: t("unused", 1)?,
            labels: t("labels", batch)?,
            wsum: t("classifier Σw²", 1)?,
            report: Tensor::from_f32(
                ctx,
                "classifier report",
                &[2 * batch + 1],
                &vec![0.0; 2 * batch + 1],
            )?,
        })
    }

    /// Z = X·Wᵀ + b for `n` rows of X (n ≤ the batch it was built for).
    fn logits(&self, rec: &mut Recorder<'_>, x: &Tensor, n: usize) -> Result<()> {
        let (f, k) = (self.features, self.classes);
        gemm::gemm(
            rec,
            &Gemm::new(n, k, f).shaped().trans(false, true),
            x,
            &self.w,
            &self.grad,
        )?;
        hebbian::add_bias(rec, &self.grad, &self.b, n, k, &self.logits)
    }

    /// Writes the labels of the next step or evaluation (n ≤ the batch it was built for).
    pub fn set_labels(&self, ctx: &GpuContext, labels: &[u32]) -> Result<()> {
        head::write_labels(ctx, &self.labels, labels, self.classes)
    }

    /// Copies the first n losses and hits (and, when `with_wsum`, Σ w²) into the report.
    fn record_report(&self, rec: &mut Recorder<'_>, n: usize, with_wsum: bool) {
        let b = self.batch as u64;
        let enc = rec.encoder();
        enc.copy_buffer_to_buffer(&self.loss.buffer, 0, &self.report.buffer, 0, 4 * n as u64);
        enc.copy_buffer_to_buffer(
            &self.correct.buffer,
            0,
            &self.report.buffer,
            4 * b,
            4 * n as u64,
        );
        if with_wsum {
            enc.copy_buffer_to_buffer(&self.wsum.buffer, 0, &self.report.buffer, 8 * b, 4);
        }
    }

    /// Records one optimizer step on `n` rows with the labels of `set_labels`. `lr` is the
    /// scheduled rate; `read_report` then gives the batch's loss, hits and a finite check.
    /// With `input_grad` (n x F), also writes −∂L/∂X = G·W there, with the weights of the
    /// forward (fine-tuning's backward pass continues from it).
    pub fn train_step(
        &mut self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        optimizer: ClassifierOptimizer,
        lr: f64,
        input_grad: Option<&Tensor>,
    ) -> Result<()> {
        let (f, k) = (self.features, self.classes);
        let labels = &self.labels;
        self.logits(rec, x, n)?;
        head::correct(rec, &self.logits, labels, n, k, &self.correct)?;
        let kind = match self.head {
            ClassifierHead::Softmax => head::Loss::SoftmaxXent,
            ClassifierHead::TanhPower { beta, power } => head::Loss::TanhPower {
                beta: beta as f32,
                power: power as f32,
            },
        };
        head::loss(
            rec,
            kind,
            &self.logits,
            labels,
            n,
            k,
            // The mean over the batch: of the whole group's batch in a process group.
            -1.0 / rec.global_rows(n) as f32,
            &self.loss,
            &self.grad,
        )?;
        gemm::gemm(
            rec,
            &Gemm::new(k, f, n).shaped().trans(true, false),
            &self.grad,
            x,
            &self.dw,
        )?;
        reduce::col_reduce(rec, ReduceOp::Sum, &self.grad, n, k, &self.db)?;
        // In a process group: the gradient of the global batch before the optimizer.
        rec.all_reduce(&[&self.dw, &self.db])?;
        if let Some(dx) = input_grad {
            // −∂L/∂X (n x F) = G (n x K) · W (K x F).
            gemm::gemm(rec, &Gemm::new(n, f, k).shaped(), &self.grad, &self.w, dx)?;
        }
        let step = optim_step(optimizer, lr, self.steps);
        let [s0, s1, s2, s3] = &self.state;
        // row_sumsq and eta are only read by the adaptive rule; placeholders here.
        optim::optimizer_step(
            rec,
            step,
            &self.w,
            &self.dw,
            k,
            f,
            s0,
            s1,
            &self.unused,
            &self.unused2,
            None,
        )?;
        // The bias takes the same step (PyTorch's single parameter group); Krotov's head has
        // none.
        if self.head == ClassifierHead::Softmax {
            optim::optimizer_step(
                rec,
                step,
                &self.b,
                &self.db,
                k,
                1,
                s2,
                s3,
                &self.unused,
                &self.unused2,
                None,
            )?;
        }
        reduce::global_reduce(rec, ReduceOp::SumSquares, &self.w, &self.wsum)?;
        self.record_report(rec, n, true);
        self.steps += 1;
        Ok(())
    }

    /// Records the logits of `n` rows and their correctness against the `set_labels` labels.
    pub fn evaluate(&self, rec: &mut Recorder<'_>, x: &Tensor, n: usize) -> Result<()> {
        self.logits(rec, x, n)?;
        head::correct(
            rec,
            &self.logits,
            &self.labels,
            n,
            self.classes,
            &self.correct,
        )?;
        self.record_report(rec, n, false);
        Ok(())
    }

    /// The last `n`-row train step's or evaluation's report, in one readback (waits for the
    /// GPU). The loss and the finite check are only meaningful after `train_step`.
    pub fn read_report(&self, ctx: &GpuContext, n: usize) -> Result<Report> {
        let r = self.report.to_f32_vec(ctx)?;
        let b = self.batch;
        Ok(Report {
            loss_sum: r[..n].iter().map(|&v| v as f64).sum(),
            correct: r[b..b + n].iter().filter(|&&v| v > 0.5).count(),
            weights_finite: r[2 * b].is_finite(),
        })
    }

    /// The head's scores of the last `n`-row evaluation (n x classes, row-major): the logits a
    /// softmax or hinge head turns into probabilities or margins, the pre-activation S·h of
    /// the tanh head. Waits for the GPU.
    pub fn read_scores(&self, ctx: &GpuContext, n: usize) -> Result<Vec<f32>> {
        let mut scores = self.logits.to_f32_vec(ctx)?;
        scores.truncate(n * self.classes);
        Ok(scores)
    }

    /// Most rows one call takes.
    pub fn capacity(&self) -> usize {
        self.batch
    }

    /// Applies dropout in place to the first `len` = n·F features of x, which are elements
    /// `first..first + len` of the whole batch (`elementwise::dropout`).
    pub fn dropout(
        rec: &mut Recorder<'_>,
        x: &Tensor,
        len: usize,
        first: usize,
        rate: f32,
        seed: u32,
    ) -> Result<()> {
        if rate > 0.0 {
            elementwise::dropout(rec, x, len, first, rate, seed)?;
        }
        Ok(())
    }
}
