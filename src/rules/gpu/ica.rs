//! The ICA family: Lagani's ICA, HICA and ICA-NRM.
//!
//! ```text
//! U = X·Wᵀ → Y = tanh(U) (ICA-NRM: variance adaptation) → M = (1/N)·YᵀU (HICA: its lower
//! triangle) → P = M·W → ΔW = W − P (ICA-NRM: ΔW_i = (P_i·w_i)w_i − P_i) → optimizer
//! ```

use super::{GpuRule, StepInput, Stepped, UpdateLeft, UpdatePath};
use crate::error::Result;
use crate::gpu::Recorder;
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Gemm};
use crate::kernels::hebbian::{self, Competition};
use crate::rules::preset::Preset;

impl GpuRule {
    pub(super) fn ica_step(
        &self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'_>,
    ) -> Result<Stepped> {
        let (c, d, n, b) = (self.c, self.d, input.n, &self.bufs);
        let (x, w) = (input.x, &self.w);
        // Project and compete: U into `u`, Y into `y`.
        let u = self.project(rec, input, w, &b.u)?;
        if let Preset::LaganiIcaNrm {
            bn_momentum,
            bn_eps,
        } = self.config.preset
        {
            self.variance_adapt(rec, u, n, bn_momentum, bn_eps, &b.y)?;
        } else {
            hebbian::competition(rec, Competition::Tanh, u, None, n, c, &b.y, &b.g)?;
        }
        // Update: P = M·W into `tmp_cd`, M = (1/N)·YᵀU (C x C), HICA keeps its lower triangle.
        let hica = matches!(self.config.preset, Preset::LaganiHica);
        if self.path == UpdatePath::Naive {
            self.ica_mixing_naive(rec, x, n, hica)?;
        } else {
            let mixing = Gemm::new(c, c, n)
                .shaped()
                .trans(true, false)
                .scale(1.0 / rec.global_rows(n) as f32, 0.0);
            gemm::gemm(rec, &mixing, &b.y, u, &b.cc)?;
            rec.all_reduce(&[&b.cc])?;
            let m = if hica {
                hebbian::tril_scale(rec, &b.cc, c, 1.0, &b.cc2)?;
                &b.cc2
            } else {
                &b.cc
            };
            gemm::gemm(rec, &Gemm::new(c, d, c).shaped(), m, w, &b.tmp_cd)?;
        }
        if matches!(self.config.preset, Preset::LaganiIcaNrm { .. }) {
            hebbian::ica_nrm_update(rec, &b.tmp_cd, w, c, d, &b.dw)?;
        } else {
            elementwise::copy(rec, w, &b.dw)?;
            elementwise::axpy(rec, -1.0, &b.tmp_cd, &b.dw)?;
        }
        Ok(Stepped {
            left: UpdateLeft::Delta,
            wrote_u_y: true,
        })
    }
}
