//! The update epilogues of the GEMM kernels (`shaders/gemm_epilogue.wgsl`, prepended to
//! gemm.wgsl and gemm_subgroup.wgsl): what an update GEMM applies to each element of C as it
//! writes it, and the bindings each adds.

use super::Gemm;
use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::kernels::elementwise;
use crate::kernels::optim::OptimStep;

/// What an update GEMM does with each element of its product as it is written
/// (gemm_epilogue.wgsl), so the rest of a Hebbian update needs no pass over C of its own.
#[derive(Clone, Copy)]
pub enum UpdateEpilogue<'a> {
    /// C = alpha·op(A)op(B) + beta·C − r[row]·W, with r = `row_decay` (M) and W (M x N) in
    /// C's layout. With `abs_max` (one f32, zeroed here first), also max|C| over all of C.
    Decay {
        row_decay: &'a Tensor,
        w: &'a Tensor,
        abs_max: Option<&'a Tensor>,
    },
    /// Δ = alpha·op(A)op(B) + beta·C, then one SGD or Adam step of W (M x N) by the ascent
    /// direction Δ with its state tensors (weight_update.wgsl's formulas, as optim.wgsl); C = Δ
    /// only with `write_delta`.
    Optim {
        step: OptimStep,
        w: &'a Tensor,
        state0: &'a Tensor,
        state1: &'a Tensor,
        write_delta: bool,
    },
}

impl UpdateEpilogue<'_> {
    /// Checks that the adapter can run the epilogue and its tensors fit the product `g` (of
    /// A, B into C, launched as `kernel`), and zeroes max|C| when the epilogue folds it.
    /// Every launcher of an update epilogue calls this before recording the product.
    pub(crate) fn prepare(
        &self,
        rec: &mut Recorder<'_>,
        kernel: &str,
        g: &Gemm,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
    ) -> Result<()> {
        let ctx = rec.ctx;
        if !update_epilogues_available(ctx) {
            return Err(HebbError::Launch {
                kernel: kernel.into(),
                message: format!(
                    "the adapter offers {} storage buffers per shader stage; an update epilogue binds {UPDATE_STORAGE_BUFFERS}",
                    ctx.limits.max_storage_buffers_per_shader_stage
                ),
            });
        }
        self.check(kernel, g, a, b, c)?;
        if let UpdateEpilogue::Decay {
            abs_max: Some(max), ..
        } = self
        {
            elementwise::fill(rec, max, 0.0)?;
        }
        Ok(())
    }

    /// The entry point that runs this epilogue after `base`'s product or reduction.
    pub(crate) fn entry(epilogue: Option<&Self>, base: &'static str) -> &'static str {
        let decay = match epilogue {
            None => return base,
            Some(e) => matches!(e, UpdateEpilogue::Decay { .. }),
        };
        match (base, decay) {
            ("gemm_tiled", true) => "gemm_tiled_decay",
            ("gemm_tiled", false) => "gemm_tiled_optim",
            ("gemm_subgroup", true) => "gemm_subgroup_decay",
            ("gemm_subgroup", false) => "gemm_subgroup_optim",
            ("gemm_splitk_reduce", true) => "gemm_splitk_reduce_decay",
            ("gemm_splitk_reduce", false) => "gemm_splitk_reduce_optim",
            ("conv_update", true) => "conv_update_decay",
            ("conv_update", false) => "conv_update_optim",
            _ => base,
        }
    }

    pub(crate) fn overrides(&self) -> [(&'static str, f64); 3] {
        let flag = |b: bool| b as u32 as f64;
        match *self {
            UpdateEpilogue::Decay { abs_max, .. } => [
                ("ABS_MAX", flag(abs_max.is_some())),
                ("ADAM", 0.0),
                ("WRITE_DELTA", 0.0),
            ],
            UpdateEpilogue::Optim {
                step, write_delta, ..
            } => [
                ("ABS_MAX", 0.0),
                ("ADAM", flag(matches!(step, OptimStep::Adam { .. }))),
                ("WRITE_DELTA", flag(write_delta)),
            ],
        }
    }

    /// Checks the epilogue's tensors against the product's M x N and C.
    fn check(&self, kernel: &str, g: &Gemm, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
        let fail = |message: String| {
            Err(HebbError::Launch {
                kernel: kernel.into(),
                message,
            })
        };
        if g.batch != 1 || g.offset_c != 0 || g.ldc() != g.n {
            return fail(format!(
                "an update epilogue needs one dense M x N matrix C (got batch {}, offset_c {}, ldc {} for N = {})",
                g.batch,
                g.offset_c,
                g.ldc(),
                g.n
            ));
        }
        let mn = g.m * g.n;
        let (written, read): (Vec<&Tensor>, Vec<&Tensor>) = match *self {
            UpdateEpilogue::Decay {
                row_decay,
                w,
                abs_max,
            } => {
                row_decay.expect_len(g.m, &format!("row decay r (M = {})", g.m))?;
                w.expect_len(mn, &format!("W ({} x {})", g.m, g.n))?;
                if let Some(m) = abs_max {
                    m.expect_len(1, "max|C|")?;
                }
                (abs_max.into_iter().collect(), vec![row_decay, w])
            }
            UpdateEpilogue::Optim {
                step,
                w,
                state0,
                state1,
                ..
            } => {
                if let OptimStep::Adaptive { .. } = step {
                    return fail(
                        "the adaptive rate needs Σw² of the rows before the step; it runs as its own kernel".into(),
                    );
                }
                w.expect_len(mn, &format!("W ({} x {})", g.m, g.n))?;
                state0.expect_len(mn, "optimizer state 0")?;
                state1.expect_len(mn, "optimizer state 1")?;
                (vec![w, state0, state1], vec![])
            }
        };
        let mut all: Vec<&Tensor> = vec![a, b, c];
        for t in written.iter().chain(read.iter()) {
            // Read-only epilogue inputs may alias A or B; nothing may alias C or a written one.
            let clash = if read.iter().any(|r| r.buffer == t.buffer) {
                c.buffer == t.buffer || written.iter().any(|u| u.buffer == t.buffer)
            } else {
                all.iter().any(|u| u.buffer == t.buffer)
            };
            if clash {
                return fail(format!(
                    "{} is bound twice; the epilogue's tensors must be distinct from C and from each other",
                    t.label
                ));
            }
            all.push(t);
        }
        Ok(())
    }

    /// The epilogue's bindings (7 and up, gemm_epilogue.wgsl).
    pub(crate) fn entries<'t>(
        &'t self,
        rec: &mut Recorder<'_>,
        (m, n): (u32, u32),
        uniform: &'t mut Option<crate::gpu::bindings::UniformSlot>,
        spare: &'t mut Option<std::sync::Arc<Tensor>>,
    ) -> Result<Vec<(u32, wgpu::BindingResource<'t>)>> {
        let ctx = rec.ctx;
        Ok(match *self {
            UpdateEpilogue::Decay {
                row_decay,
                w,
                abs_max,
            } => {
                // Without ABS_MAX the atomic is never touched.
                let max = match abs_max {
                    Some(m) => m.binding(ctx)?,
                    None => spare.insert(ctx.spare()?).binding(ctx)?,
                };
                vec![
                    (11, row_decay.binding(ctx)?),
                    (12, w.binding(ctx)?),
                    (13, max),
                ]
            }
            UpdateEpilogue::Optim {
                step,
                w,
                state0,
                state1,
                ..
            } => {
                let params = step.params(m, n);
                let buffer = uniform.insert(rec.uniform(&params));
                vec![
                    (7, buffer.as_entire_binding()),
                    (8, w.binding(ctx)?),
                    (9, state0.binding(ctx)?),
                    (10, state1.binding(ctx)?),
                ]
            }
        })
    }
}

/// Storage buffers an update epilogue's entry point binds: A, B, C, the vec4 views of A and B,
/// and three of the epilogue's own (W, r, max|C| or W and two state tensors).
pub const UPDATE_STORAGE_BUFFERS: u32 = 8;

/// Whether this adapter can run the update epilogues (WebGPU guarantees 8 storage buffers per
/// shader stage; a downlevel adapter may offer fewer, and then runs the separate kernels).
pub fn update_epilogues_available(ctx: &GpuContext) -> bool {
    ctx.limits.max_storage_buffers_per_shader_stage >= UPDATE_STORAGE_BUFFERS
}
