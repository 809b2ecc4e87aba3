//! The decay-normalised family: SoftHebb's soft-Krotov, soft (softmax) and hard WTA, and
//! Krotov–Hopfield.
//!
//! ```text
//! U = X·W̃ᵀ (+ b) → Y = compete(U) → c = colsum(Y ⊙ U) → R = YᵀX − diag(c)·W →
//! ΔW = R / max|R| → optimizer (SoftHebb's bias: Δb from colsum(Y), also divided by its max)
//! ```
//!
//! W̃ is W for SoftHebb and sign(W)|W|^{p−1} for Krotov. The default path folds the decay and
//! max|R| into the update GEMM's epilogue and leaves the division to the optimizer.

use super::{GpuRule, StepInput, Stepped, UpdateLeft, UpdatePath};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm, UpdateEpilogue};
use crate::kernels::hebbian::{self, Competition, MaxDivisor, RowFactor};
use crate::kernels::reduce::{self, ReduceOp};
use crate::kernels::to_u32;
use crate::rules::preset::Preset;

impl GpuRule {
    pub(super) fn decay_normalised_step(
        &self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'_>,
    ) -> Result<Stepped> {
        let (c, n, b) = (self.c, input.n, &self.bufs);
        let naive = self.path == UpdatePath::Naive;
        // Project and compete: Y into `g`, c = colsum(Y ⊙ U) into `col_a` where the update
        // GEMM's epilogue reads it.
        let mut wrote_u_y = true;
        let divisor = match self.config.preset {
            Preset::SofthebbSoftkrotov {
                t_invert,
                pre_triangle: true,
            } => {
                // U ← Triangle₁(X·Wᵀ) feeds the competition and c (no fused projection: the
                // triangle needs each row's mean first).
                let raw = self.project(rec, input, &self.w, &b.tmp_nc)?;
                let triangle = Competition::Triangle { power: 1.0 };
                hebbian::competition(rec, triangle, raw, None, n, c, &b.u, &b.g)?;
                let kind = Competition::SoftKrotov {
                    t_invert: t_invert as f32,
                };
                hebbian::competition(rec, kind, &b.u, None, n, c, &b.y, &b.g)?;
                reduce::col_dot(rec, &b.g, &b.u, n, c, &b.col_a)?;
                MaxDivisor::Plus(1e-30)
            }
            Preset::SofthebbSoftkrotov { t_invert, .. } | Preset::SofthebbSoft { t_invert, .. } => {
                let kind = if matches!(self.config.preset, Preset::SofthebbSoftkrotov { .. }) {
                    Competition::SoftKrotov {
                        t_invert: t_invert as f32,
                    }
                } else {
                    Competition::Softmax {
                        t_invert: t_invert as f32,
                    }
                };
                let bias = self.has_bias().then_some(&self.bias);
                wrote_u_y = self.project_and_compete(rec, input, &self.w, bias, kind, !naive)?;
                MaxDivisor::Plus(1e-30)
            }
            Preset::SofthebbHard => {
                let hard = Competition::Hard;
                wrote_u_y = self.project_and_compete(rec, input, &self.w, None, hard, !naive)?;
                MaxDivisor::Plus(1e-30)
            }
            Preset::KrotovHopfield { k, delta, prec, .. } => {
                let currents = self.step_weights(rec, input)?;
                let kind = Competition::Krotov {
                    k: to_u32("Krotov", "k", k)?,
                    delta: delta as f32,
                };
                wrote_u_y = self.project_and_compete(rec, input, currents, None, kind, !naive)?;
                MaxDivisor::AtLeast(prec as f32)
            }
            ref other => unreachable!("{other:?} is not in the decay-normalised family"),
        };
        // Update: R = YᵀX − diag(c)·W, ΔW = R / divisor(max|R|).
        let left = self.decay_normalised_update(rec, input.x, n, divisor)?;
        if self.has_bias() {
            self.softhebb_bias_delta(rec, n)?;
        }
        Ok(Stepped { left, wrote_u_y })
    }

    /// Whether the preset learns a bias (SoftHebb's soft WTA with `bias`).
    fn has_bias(&self) -> bool {
        matches!(self.config.preset, Preset::SofthebbSoft { bias: true, .. })
    }

    /// R = YᵀX − diag(colsum(Y⊙U))·W with Y in `g`, then ΔW = R / divisor(max|R|). On the
    /// default path `col_a` already holds colsum(Y⊙U) (`project_and_compete`), and the update
    /// GEMM forms R and max|R| in its epilogue and leaves the division to the optimizer.
    fn decay_normalised_update(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        divisor: MaxDivisor,
    ) -> Result<UpdateLeft> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        if self.path == UpdatePath::Naive {
            self.decay_terms_naive(rec, x, n)?;
        } else if self.fuses_update(rec) {
            let hebb = Gemm::new(c, d, n).shaped().trans(true, false);
            let epilogue = UpdateEpilogue::Decay {
                row_decay: &b.col_a,
                w: &self.w,
                abs_max: Some(&b.r_max),
            };
            gemm::gemm_update(rec, &hebb, &b.g, x, &b.tmp_cd, &epilogue)?;
            return Ok(UpdateLeft::Normalise(divisor));
        } else {
            let factor = RowFactor::Value;
            hebbian::scale_rows(rec, factor, &self.w, &b.col_a, c, d, -1.0, &b.tmp_cd)?;
            let hebb = Gemm::new(c, d, n)
                .shaped()
                .trans(true, false)
                .scale(1.0, 1.0);
            gemm::gemm(rec, &hebb, &b.g, x, &b.tmp_cd)?;
        }
        // In a process group: R is complete before max|R|.
        rec.all_reduce(&[&b.tmp_cd])?;
        reduce::global_reduce(rec, ReduceOp::AbsMax, &b.tmp_cd, &b.max1)?;
        hebbian::divide_by_max(rec, &b.tmp_cd, &b.max1, c * d, divisor, &b.dw)?;
        Ok(UpdateLeft::Delta)
    }

    /// SoftHebb's bias change: Δb = raw(Σ_n Y, b) / max|raw| (G = Y for the softmax, and only G
    /// is written when the projection is fused).
    fn softhebb_bias_delta(&self, rec: &mut Recorder<'_>, n: usize) -> Result<()> {
        let (c, b) = (self.c, &self.bufs);
        let Preset::SofthebbSoft { t_invert, .. } = self.config.preset else {
            return Ok(());
        };
        reduce::col_reduce(rec, ReduceOp::Sum, &b.g, n, c, &b.col_a)?;
        rec.all_reduce(&[&b.col_a])?;
        let t = t_invert as f32;
        let rows = rec.global_rows(n);
        hebbian::softhebb_bias_raw(rec, &b.col_a, &self.bias, rows, c, t, &b.db_raw)?;
        reduce::global_reduce(rec, ReduceOp::AbsMax, &b.db_raw, &b.max1)?;
        let divisor = MaxDivisor::Plus(1e-30);
        hebbian::divide_by_max(rec, &b.db_raw, &b.max1, c, divisor, &b.db)
    }
}
