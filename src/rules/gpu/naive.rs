//! The naive twins of the update products: the pre-FastHebb baseline (`UpdatePath::Naive`),
//! which materialises per-sample, per-neuron terms in chunks of `NAIVE_TERM_BUDGET` elements
//! and reduces them in a separate pass (`hebbian_naive::naive_update`). The default path of each
//! family forms the same sums as GEMMs.

use super::{GpuRule, UpdateLeft};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::kernels::hebbian_naive::{self, NaiveTerms};

impl GpuRule {
    /// Records the `kind` terms of (`a`, `b_op`) reduced over the batch into `out`, scaled by
    /// `scale`.
    #[allow(clippy::too_many_arguments)]
    fn naive_terms(
        &self,
        rec: &mut Recorder<'_>,
        kind: NaiveTerms,
        x: &Tensor,
        a: &Tensor,
        b_op: &Tensor,
        n: usize,
        scale: f32,
        out: &Tensor,
    ) -> Result<()> {
        let (c, d, b) = (self.c, self.d, &self.bufs);
        let (chunk, terms) = (b.chunk, &b.terms);
        hebbian_naive::naive_update(
            rec, kind, x, &self.w, a, b_op, n, c, d, scale, chunk, terms, out,
        )
    }

    /// Sanger: ΔW_id = s·Σ_n g_ni·(x_nd − Σ_{k≤i} g_nk·w_kd) into `dw`.
    pub(super) fn sanger_naive(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        s: f32,
    ) -> Result<UpdateLeft> {
        let g = &self.bufs.g;
        self.naive_terms(rec, NaiveTerms::Sanger, x, g, g, n, s, &self.bufs.dw)?;
        Ok(UpdateLeft::Delta)
    }

    /// WTA: (G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W, per sample, into `tmp_cd`.
    pub(super) fn wta_terms_naive(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
    ) -> Result<()> {
        let (q, out) = (&self.bufs.q, &self.bufs.tmp_cd);
        self.naive_terms(rec, NaiveTerms::Outer, x, q, q, n, 1.0, out)
    }

    /// ICA: P = M·W with M = (1/N)·YᵀU (its lower triangle for HICA), per sample, into `tmp_cd`.
    pub(super) fn ica_mixing_naive(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        lower: bool,
    ) -> Result<()> {
        let b = &self.bufs;
        let kind = NaiveTerms::Mixing { lower };
        self.naive_terms(rec, kind, x, &b.y, &b.u, n, 1.0 / n as f32, &b.tmp_cd)
    }

    /// BCM: ΔW = s·ΦᵀX, per sample, into `dw`.
    pub(super) fn hebb_naive(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
        s: f32,
    ) -> Result<UpdateLeft> {
        let q = &self.bufs.q;
        self.naive_terms(rec, NaiveTerms::Hebb, x, q, q, n, s, &self.bufs.dw)?;
        Ok(UpdateLeft::Delta)
    }

    /// Decay-normalised: R = YᵀX − diag(colsum(Y⊙U))·W, per sample, into `tmp_cd`.
    pub(super) fn decay_terms_naive(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        n: usize,
    ) -> Result<()> {
        let b = &self.bufs;
        self.naive_terms(rec, NaiveTerms::Decay, x, &b.g, &b.u, n, 1.0, &b.tmp_cd)
    }
}
