//! The winner-take-all family: Lagani's k-WTA, soft-WTA (exp, pow) and supervised final
//! layer, and hebbdemo's soft-WTA.
//!
//! ```text
//! Lagani:   S = raised cosine of X·Wᵀ with ‖x_n‖, ‖w_i‖ → G = compete(S) (teacher for the final layer)
//! hebbdemo: Y = act(X·W̃ᵀ) → G = softmax(t·Y)
//! ΔW = diag(1/guard(colsum|G|))·[(G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W] → optimizer
//! ```

use super::{GpuRule, StepInput, Stepped, UpdateLeft, UpdatePath};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm, UpdateEpilogue};
use crate::kernels::hebbian::{self, Competition, RowFactor};
use crate::kernels::reduce::{self, ReduceOp};
use crate::kernels::to_u32;
use crate::rules::preset::Preset;

impl GpuRule {
    pub(super) fn wta_step(
        &self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'_>,
    ) -> Result<Stepped> {
        let (c, d, n, b) = (self.c, self.d, input.n, &self.bufs);
        let (x, w) = (input.x, &self.w);
        // Project and compete: G into `g`.
        if let Preset::HebbdemoSoftWta {
            t_invert,
            activation,
            ..
        } = self.config.preset
        {
            // Y = act(X·W̃ᵀ); the softmax reads Y, so the activation runs on its own.
            let weights = self.step_weights(rec, input)?;
            let u = self.project(rec, input, weights, &b.u)?;
            let act = super::sanger::demo_activation(activation);
            hebbian::competition(rec, act, u, None, n, c, &b.y, &b.g)?;
            let softmax = Competition::Softmax {
                t_invert: t_invert as f32,
            };
            hebbian::competition(rec, softmax, &b.y, None, n, c, &b.z, &b.g)?;
        } else {
            // The similarity divides X·Wᵀ by ‖x_n‖·‖w_i‖ (the final layer skips the raise).
            reduce::row_reduce(rec, ReduceOp::SumSquares, x, n, d, &b.row_vec)?;
            reduce::row_reduce(rec, ReduceOp::SumSquares, w, c, d, &b.wss)?;
            let dot = self.project(rec, input, w, &b.tmp_nc)?;
            let final_layer = matches!(self.config.preset, Preset::LaganiFinalSupervised);
            let (row_norms, w_norms) = (&b.row_vec, &b.wss);
            let raise = !final_layer;
            hebbian::raised_cosine2(rec, dot, row_norms, w_norms, n, c, raise, &b.u, &b.proj)?;
            let kind = match self.config.preset {
                Preset::LaganiKwta { k } => Competition::Kwta {
                    k: to_u32("k-WTA", "k", k)?,
                },
                Preset::LaganiSoftWtaExp { temperature } => Competition::SoftExp {
                    temperature: temperature as f32,
                },
                Preset::LaganiSoftWtaPow { power } => Competition::SoftPow {
                    power: power as f32,
                },
                _ => Competition::Teacher,
            };
            hebbian::competition(rec, kind, &b.u, input.teacher, n, c, &b.z, &b.g)?;
        }
        // Update: ΔW from G ⊙ |G|.
        self.wta_update(rec, x, n)?;
        Ok(Stepped {
            left: UpdateLeft::Delta,
            wrote_u_y: true,
        })
    }

    /// ΔW = diag(1/guard(colsum|G|))·[(G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W] with G in `g`.
    fn wta_update(&self, rec: &mut Recorder<'_>, x: &Tensor, n: usize) -> Result<()> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        hebbian::square_signed(rec, &b.g, n * c, &b.q)?;
        reduce::col_reduce(rec, ReduceOp::SumAbs, &b.g, n, c, &b.col_a)?;
        if self.path == UpdatePath::Naive {
            self.wta_terms_naive(rec, x, n)?;
        } else if self.fuses_update(rec) {
            // (G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W, the decay applied in the GEMM's epilogue.
            reduce::col_reduce(rec, ReduceOp::Sum, &b.q, n, c, &b.col_b)?;
            let hebb = Gemm::new(c, d, n).shaped().trans(true, false);
            let epilogue = UpdateEpilogue::Decay {
                row_decay: &b.col_b,
                w: &self.w,
                abs_max: None,
            };
            gemm::gemm_update(rec, &hebb, &b.q, x, &b.tmp_cd, &epilogue)?;
        } else {
            reduce::col_reduce(rec, ReduceOp::Sum, &b.q, n, c, &b.col_b)?;
            let (factor, decay) = (RowFactor::Value, &b.col_b);
            hebbian::scale_rows(rec, factor, &self.w, decay, c, d, -1.0, &b.tmp_cd)?;
            let hebb = Gemm::new(c, d, n)
                .shaped()
                .trans(true, false)
                .scale(1.0, 1.0);
            gemm::gemm(rec, &hebb, &b.q, x, &b.tmp_cd)?;
        }
        // In a process group: both sums are complete before the division.
        rec.all_reduce(&[&b.tmp_cd, &b.col_a])?;
        let factor = RowFactor::InverseGuarded;
        hebbian::scale_rows(rec, factor, &b.tmp_cd, &b.col_a, c, d, 1.0, &b.dw)
    }
}
