//! C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] in float64, on whole buffers with the same
//! offsets, leading dimensions and batch strides as the GPU launcher. Elements of C outside
//! the M x N views are left untouched; with beta == 0, C is not read.

use crate::kernels::gemm::Gemm;

pub fn gemm(g: &Gemm, a: &[f64], b: &[f64], c: &mut [f64]) {
    let (lda, ldb, ldc) = (g.lda(), g.ldb(), g.ldc());
    for batch in 0..g.batch {
        let base_a = g.offset_a + batch * g.stride_a();
        let base_b = g.offset_b + batch * g.stride_b();
        let base_c = g.offset_c + batch * g.stride_c();
        for i in 0..g.m {
            for j in 0..g.n {
                let mut acc = 0.0f64;
                for l in 0..g.k {
                    let av = if g.trans_a {
                        a[base_a + l * lda + i]
                    } else {
                        a[base_a + i * lda + l]
                    };
                    let bv = if g.trans_b {
                        b[base_b + j * ldb + l]
                    } else {
                        b[base_b + l * ldb + j]
                    };
                    acc += av * bv;
                }
                let idx = base_c + i * ldc + j;
                let mut v = g.alpha as f64 * acc;
                if g.beta != 0.0 {
                    v += g.beta as f64 * c[idx];
                }
                c[idx] = v;
            }
        }
    }
}

/// Indices of C that the GEMM writes (every element of every batch's M x N view).
pub fn c_view_indices(g: &Gemm) -> Vec<usize> {
    let mut idx = Vec::with_capacity(g.batch * g.m * g.n);
    for batch in 0..g.batch {
        for i in 0..g.m {
            for j in 0..g.n {
                idx.push(g.offset_c + batch * g.stride_c() + i * g.ldc() + j);
            }
        }
    }
    idx
}
