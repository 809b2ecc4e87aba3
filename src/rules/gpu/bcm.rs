//! Curti's BCM with fixed lateral connections.
//!
//! ```text
//! U = (X·Wᵀ)·Mᵀ, M = (I − L)⁻¹ → Y = σ(U) → θ_b = (1/B)·Σ_b y², θ ← γ·θ + (1 − γ)·θ_b →
//! Φ = y(y − θ_b) → ΔW = (1/B)·ΦᵀX → optimizer
//! ```

use super::{GpuRule, StepInput, Stepped, UpdatePath};
use crate::error::Result;
use crate::gpu::Recorder;
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Gemm};
use crate::kernels::hebbian::{self, Competition};
use crate::kernels::reduce::{self, ReduceOp};
use crate::rules::preset::{BcmActivation, Preset};

impl GpuRule {
    pub(super) fn bcm_step(
        &self,
        rec: &mut Recorder<'_>,
        input: &StepInput<'_>,
    ) -> Result<Stepped> {
        let (c, d, n, b) = (self.c, self.d, input.n, &self.bufs);
        let Preset::BcmCurti {
            activation,
            gamma,
            theta_eps,
            ..
        } = self.config.preset
        else {
            unreachable!("{:?} is not BCM", self.config.preset);
        };
        let m = self.lateral.as_ref().expect("built with the layer");
        // Project through the lateral connections, then Y = σ(U).
        let feed = self.project(rec, input, &self.w, &b.tmp_nc)?;
        let lateral = Gemm::new(n, c, c).shaped().trans(false, true);
        if self.path == UpdatePath::Naive {
            gemm::gemm_naive(rec, &lateral, feed, m, &b.u)?;
        } else {
            gemm::gemm(rec, &lateral, feed, m, &b.u)?;
        }
        let act = match activation {
            BcmActivation::Logistic => Competition::Logistic,
            BcmActivation::Relu => Competition::ReluOnly,
            BcmActivation::Linear => Competition::Identity,
        };
        hebbian::competition(rec, act, &b.u, None, n, c, &b.y, &b.g)?;
        // Thresholds: θ_b = (1/B)·Σ_b y²; θ_ma ← γ·θ_ma + (1 − γ)·θ_b; Φ uses θ_b.
        reduce::col_reduce(rec, ReduceOp::SumSquares, &b.y, n, c, &b.col_a)?;
        // In a process group: Σy² over the global batch (B rows) before θ and Φ read it.
        rec.all_reduce(&[&b.col_a])?;
        let rows = rec.global_rows(n);
        elementwise::scale(rec, &self.theta, gamma as f32)?;
        let weight = ((1.0 - gamma) / rows as f64) as f32;
        elementwise::axpy(rec, weight, &b.col_a, &self.theta)?;
        hebbian::bcm_phi(rec, &b.y, &b.col_a, n, rows, c, theta_eps as f32, &b.q)?;
        // Update: ΔW = (1/B)·ΦᵀX.
        let inv_b = 1.0 / rows as f32;
        let left = if self.path == UpdatePath::Naive {
            self.hebb_naive(rec, input.x, n, inv_b)?
        } else {
            let hebb = Gemm::new(c, d, n)
                .shaped()
                .trans(true, false)
                .scale(inv_b, 0.0);
            self.update_gemm(rec, &hebb, &b.q, input.x)?
        };
        if left == super::UpdateLeft::Delta {
            rec.all_reduce(&[&b.dw])?;
        }
        Ok(Stepped {
            left,
            wrote_u_y: true,
        })
    }
}
