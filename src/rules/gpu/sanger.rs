//! Sanger's family: Lagani's HPCA (relu, tanh, variance-adaptive tanh) and hebbdemo's HPCA.
//!
//! ```text
//! U = X·W̃ᵀ (N x C) → G = act(U) → ΔW = s·GᵀX − s·tril(GᵀG)·W → optimizer
//! ```
//!
//! s = 1/N (÷√D with Lagani's `adaptive_step`). The default path forms the decay product
//! first, so the s·GᵀX GEMM adds it as β·C and applies SGD or Adam in its epilogue. Where the
//! batch has far fewer rows than the layer has neurons (Lagani's fc5: 64 rows, 4,096 neurons)
//! the same ΔW comes from a running reconstruction instead (`kernels::sanger_scan`), in
//! 2·N·C·D multiply-adds rather than C²·(N + D) + N·C·D.

use super::{GpuRule, StepInput, Stepped, UpdateLeft, UpdatePath};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm};
use crate::kernels::hebbian::{self, Competition};
use crate::kernels::sanger_scan;
use crate::rules::preset::{DemoActivation, Preset};

impl GpuRule {
    pub(super) fn sanger_step(
        &self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'_>,
    ) -> Result<Stepped> {
        let (c, d, n, b) = (self.c, self.d, input.n, &self.bufs);
        let mut wrote_u_y = true;
        // Project and compete: G = act(X·W̃ᵀ) into `g` (and Y into `y`).
        let s = match self.config.preset {
            Preset::LaganiHpcaTanh {
                var_adaptive: true,
                adaptive_step,
                bn_momentum,
                bn_eps,
            } => {
                let u = self.project(rec, input, &self.w, &b.u)?;
                self.variance_adapt(rec, u, n, bn_momentum, bn_eps, &b.tmp_nc)?;
                let identity = Competition::Identity;
                hebbian::competition(rec, identity, &b.tmp_nc, input.teacher, n, c, &b.y, &b.g)?;
                lagani_step(rec.global_rows(n), d, adaptive_step)
            }
            Preset::LaganiHpcaTanh { adaptive_step, .. } => {
                let tanh = Competition::Tanh;
                wrote_u_y = self.project_and_compete(rec, input, &self.w, None, tanh, false)?;
                lagani_step(rec.global_rows(n), d, adaptive_step)
            }
            Preset::LaganiHpca { adaptive_step } => {
                let relu = Competition::Relu;
                wrote_u_y = self.project_and_compete(rec, input, &self.w, None, relu, false)?;
                lagani_step(rec.global_rows(n), d, adaptive_step)
            }
            Preset::HebbdemoHpca { activation, .. } => {
                let weights = self.step_weights(rec, input)?;
                let act = demo_activation(activation);
                wrote_u_y = self.project_and_compete(rec, input, weights, None, act, false)?;
                1.0 / rec.global_rows(n) as f32
            }
            ref other => unreachable!("{other:?} is not in Sanger's family"),
        };
        // Update: ΔW = s·GᵀX − s·tril(GᵀG)·W.
        let left = match (&self.bufs.recon, self.path) {
            (_, UpdatePath::Naive) => self.sanger_naive(rec, input.x, n, s)?,
            (Some(recon), _) if self.sanger_scan => {
                sanger_scan::sanger_scan(rec, &b.g, input.x, &self.w, recon, &b.dw, n, c, d, s)?;
                // Linear in the rows, as below: the ranks' ΔW sum to the global batch's.
                rec.all_reduce(&[&b.dw])?;
                UpdateLeft::Delta
            }
            _ => self.sanger_update(rec, input.x, n, s)?,
        };
        Ok(Stepped { left, wrote_u_y })
    }

    /// ΔW = s·GᵀX − s·tril(GᵀG)·W with G in `g`. The fused update computes the decay product
    /// first, so the s·GᵀX GEMM adds it and steps W in its epilogue.
    fn sanger_update(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        s: f32,
    ) -> Result<UpdateLeft> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        let gram = Gemm::new(c, c, n).shaped().trans(true, false);
        gemm::gemm(rec, &gram, &b.g, &b.g, &b.cc)?;
        hebbian::tril_scale(rec, &b.cc, c, -s, &b.cc2)?;
        if self.fuses_update(rec) {
            let decay = Gemm::new(c, d, c).shaped();
            gemm::gemm(rec, &decay, &b.cc2, &self.w, &b.dw)?;
            let hebb = Gemm::new(c, d, n).shaped().trans(true, false).scale(s, 1.0);
            return self.update_gemm(rec, &hebb, &b.g, x);
        }
        let hebb = Gemm::new(c, d, n).shaped().trans(true, false).scale(s, 0.0);
        gemm::gemm(rec, &hebb, &b.g, x, &b.dw)?;
        let decay = Gemm::new(c, d, c).shaped().scale(1.0, 1.0);
        gemm::gemm(rec, &decay, &b.cc2, &self.w, &b.dw)?;
        // In a process group: ΔW is linear in the rows (s = 1/N of the global batch), so the
        // ranks' ΔW sum to the global batch's.
        rec.all_reduce(&[&b.dw])?;
        Ok(UpdateLeft::Delta)
    }

    /// Variance adaptation of S = `u` (§1.1): updates the running statistics, then writes
    /// tanh((S − rm)/sd + rm)·sd to `out`.
    pub(super) fn variance_adapt(
        &self,
        rec: &mut Recorder<'_>,
        u: &Tensor,
        n: usize,
        momentum: f64,
        eps: f64,
        out: &Tensor,
    ) -> Result<()> {
        let c = self.c;
        let (mean, var) = (&self.bn_mean, &self.bn_var);
        hebbian::va_stats(rec, u, n, c, momentum as f32, mean, var)?;
        hebbian::va_apply(rec, u, mean, var, n, c, eps as f32, out)
    }
}

/// Lagani's step size s = 1/N, divided by √D with `adaptive_step`.
fn lagani_step(n: usize, d: usize, adaptive_step: bool) -> f32 {
    let s = 1.0 / n as f32;
    if adaptive_step {
        s / (d as f32).sqrt()
    } else {
        s
    }
}

/// hebbdemo's activation, which is also its learning signal.
pub(super) fn demo_activation(activation: DemoActivation) -> Competition {
    match activation {
        DemoActivation::Identity => Competition::Identity,
        DemoActivation::Relu => Competition::ReluOnly,
    }
}
