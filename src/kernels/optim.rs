//! Launcher for `shaders/optim.wgsl`: one optimizer step (SGD, Adam, SoftHebb's adaptive rate)
//! in place on W (C x D), optionally dividing R by its max-norm divisor on the fly. Its math
//! is weight_update.wgsl's, which the GEMM update epilogues share (`gemm::UpdateEpilogue`).

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::hebbian::MaxDivisor;
use crate::kernels::{ELEMENTS_PER_INVOCATION, OPTIM_WGSL, bind_group, check_grid, need, to_u32};

/// Mirrors `OptimParams` in weight_update.wgsl (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimParams {
    pub c: u32,
    pub d: u32,
    pub first: u32,
    pub nesterov: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub power: f32,
    pub divisor_a: f32,
}

/// The optimizers of optim.wgsl.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimStep {
    Sgd {
        lr: f32,
        momentum: f32,
        nesterov: bool,
        weight_decay: f32,
        first: bool,
    },
    /// `rate` is the bias-corrected a_t.
    Adam {
        rate: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        first: bool,
    },
    Adaptive {
        lr: f32,
        power: f32,
    },
}

impl OptimStep {
    /// The uniform of optim.wgsl and of the GEMM optimizer epilogue for a C x D matrix.
    pub fn params(&self, c: u32, d: u32) -> OptimParams {
        let mut p = OptimParams {
            c,
            d,
            ..Default::default()
        };
        match *self {
            OptimStep::Sgd {
                lr,
                momentum,
                nesterov,
                weight_decay,
                first,
            } => {
                (p.lr, p.momentum, p.nesterov, p.weight_decay, p.first) =
                    (lr, momentum, nesterov as u32, weight_decay, first as u32);
            }
            OptimStep::Adam {
                rate,
                beta1,
                beta2,
                eps,
                weight_decay,
                first,
            } => {
                (p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, p.first) =
                    (rate, beta1, beta2, eps, weight_decay, first as u32);
            }
            OptimStep::Adaptive { lr, power } => (p.lr, p.power) = (lr, power),
        }
        p
    }
}

/// ΔW normalised inside the optimizer step (SoftHebb, Krotov): ΔW = R / divisor(max|R|), with R
/// the step's `dw` and max|R| in `max` (one element, as the update GEMM's ABS_MAX epilogue
/// leaves it). With `write`, the normalised ΔW is also stored there.
#[derive(Clone, Copy)]
pub struct Normalised<'a> {
    pub max: &'a Tensor,
    pub divisor: MaxDivisor,
    pub write: Option<&'a Tensor>,
}

/// Applies one optimizer step to W (C x D) in place. `state0` / `state1` are the momentum or
/// Adam moments (C x D); `row_sumsq` (Σ_d w², C, taken before the step) and `eta` (C, written)
/// are for the adaptive rate. With `normalised`, `dw` holds R and the step divides it first.
#[allow(clippy::too_many_arguments)]
pub fn optimizer_step(
    rec: &mut Recorder<'_>,
    step: OptimStep,
    w: &Tensor,
    dw: &Tensor,
    c: usize,
    d: usize,
    state0: &Tensor,
    state1: &Tensor,
    row_sumsq: &Tensor,
    eta: &Tensor,
    normalised: Option<Normalised<'_>>,
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    need(w, c * d, "W")?;
    need(dw, c * d, "ΔW")?;
    let mut all = vec![w, dw, state0, state1, row_sumsq, eta];
    if let Some(n) = normalised {
        all.extend(std::iter::once(n.max).chain(n.write));
    }
    for (i, t) in all.iter().enumerate() {
        if all[..i].iter().any(|u| u.buffer == t.buffer) {
            return Err(HebbError::Launch {
                kernel: "optimizer".into(),
                message: format!("{} is bound twice; every tensor must be distinct", t.label),
            });
        }
    }
    let mut p = step.params(to_u32("optimizer", "C", c)?, to_u32("optimizer", "D", d)?);
    let (entry, extra): (&'static str, Vec<(u32, &Tensor)>) = match step {
        OptimStep::Sgd { .. } => {
            need(state0, c * d, "momentum buffer")?;
            ("sgd", vec![(3, state0)])
        }
        OptimStep::Adam { .. } => {
            need(state0, c * d, "Adam m")?;
            need(state1, c * d, "Adam v")?;
            ("adam", vec![(3, state0), (4, state1)])
        }
        OptimStep::Adaptive { .. } => {
            need(row_sumsq, c, "Σw² per neuron")?;
            need(eta, c, "η per neuron")?;
            ("adaptive", vec![(5, row_sumsq), (6, eta)])
        }
    };
    // Bindings 7 and 8 are read only under DIVISOR / WRITE_DW. Otherwise 7 repeats ΔW (both
    // read-only) and 8 holds the context's spare buffer.
    let spare_buffer = ctx.spare()?;
    let spare = spare_buffer.as_ref();
    let (divisor, max, out) = match normalised {
        None => (0.0, dw, spare),
        Some(n) => {
            need(n.max, 1, "max|R|")?;
            let out = match n.write {
                Some(out) => {
                    need(out, c * d, "normalised ΔW")?;
                    out
                }
                None => spare,
            };
            let (mode, a) = match n.divisor {
                MaxDivisor::Plus(a) => (1.0, a),
                MaxDivisor::AtLeast(a) => (2.0, a),
            };
            p.divisor_a = a;
            (mode, n.max, out)
        }
    };
    let write = normalised.is_some_and(|n| n.write.is_some());
    let pipeline = ctx.kernels.get(
        &ctx.device,
        ctx.features,
        &OPTIM_WGSL,
        entry,
        &[
            ("DIVISOR", divisor),
            ("WRITE_DW", write as u32 as f64),
            ("ELEMENTS_PER_INVOCATION", ELEMENTS_PER_INVOCATION as f64),
        ],
    )?;
    let per_workgroup = 256 * ELEMENTS_PER_INVOCATION;
    let groups = grid_1d(
        ctx,
        to_u32(entry, "workgroups", (c * d).div_ceil(per_workgroup))?,
    );
    check_grid(ctx, entry, groups)?;
    let uniform = rec.uniform(&p);
    let mut entries = vec![
        (0, uniform.as_entire_binding()),
        (1, w.binding(ctx)?),
        (2, dw.binding(ctx)?),
        (7, max.binding(ctx)?),
        (8, out.binding(ctx)?),
    ];
    for (slot, t) in extra {
        entries.push((slot, t.binding(ctx)?));
    }
    let bg = bind_group(ctx, &pipeline, &entries);
    rec.dispatch(&pipeline, &bg, groups);
    Ok(())
}
