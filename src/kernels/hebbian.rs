//! Launchers for `shaders/hebbian.wgsl`: similarities, the row-wise competition (which also
//! picks between its per-row kernel here and `kernels::competition_subgroup`) and the small
//! maps around the update GEMMs.
//! hebbian.wgsl bindings: 0 uniform HebbParams, 1..3 inputs in0..in2, 4..5 outputs out0..out1
//! (each entry point binds only the ones it uses; shapes in the shader's comments).

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{
    ELEMENTS_PER_INVOCATION, HEBBIAN_WGSL, check_loop_budget, competition_subgroup,
    distinct_outputs, need, record_dispatch, record_dispatch_with, to_u32,
};

/// Mirrors `HebbParams` in hebbian.wgsl (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct HebbParams {
    pub n: u32,
    pub c: u32,
    pub d: u32,
    pub mode: u32,
    pub k: u32,
    pub flags: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub a: f32,
    pub b: f32,
    pub e: f32,
    pub s: f32,
}

/// The mode numbers of `HebbParams.mode` for the row-wise competitions, as
/// shaders/competition_modes.wgsl names them (`ALL` lists them for the test that compares the
/// two).
pub mod modes {
    pub const RELU: u32 = 0;
    pub const TANH: u32 = 1;
    pub const KWTA: u32 = 2;
    pub const SOFT_EXP: u32 = 3;
    pub const SOFT_POW: u32 = 4;
    pub const SOFTMAX: u32 = 5;
    pub const SOFT_KROTOV: u32 = 6;
    pub const HARD: u32 = 7;
    pub const KROTOV: u32 = 8;
    pub const TEACHER: u32 = 9;
    pub const LOGISTIC: u32 = 10;
    pub const IDENTITY: u32 = 11;
    pub const RELU_ONLY: u32 = 12;
    pub const TRIANGLE: u32 = 13;
    /// (WGSL name, value) of every mode.
    pub const ALL: &[(&str, u32)] = &[
        ("MODE_RELU", RELU),
        ("MODE_TANH", TANH),
        ("MODE_KWTA", KWTA),
        ("MODE_SOFT_EXP", SOFT_EXP),
        ("MODE_SOFT_POW", SOFT_POW),
        ("MODE_SOFTMAX", SOFTMAX),
        ("MODE_SOFT_KROTOV", SOFT_KROTOV),
        ("MODE_HARD", HARD),
        ("MODE_KROTOV", KROTOV),
        ("MODE_TEACHER", TEACHER),
        ("MODE_LOGISTIC", LOGISTIC),
        ("MODE_IDENTITY", IDENTITY),
        ("MODE_RELU_ONLY", RELU_ONLY),
        ("MODE_TRIANGLE", TRIANGLE),
    ];
}

/// Row-wise competitions of `competition` (their mode numbers: `modes`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Competition {
    /// out0 = relu(u), G = out0 ⊙ T.
    Relu,
    /// out0 = tanh(u), G = out0 ⊙ T.
    Tanh,
    /// Z = [u ⊙ T ≥ k-th largest], G = Z ⊙ T.
    Kwta {
        k: u32,
    },
    /// Z = exp(u/τ) ⊙ T normalised per row (unstabilised, as the authors), G = Z ⊙ T.
    SoftExp {
        temperature: f32,
    },
    /// Z = u^p ⊙ T normalised per row, G = Z ⊙ T.
    SoftPow {
        power: f32,
    },
    /// softmax(t·u), stabilised.
    Softmax {
        t_invert: f32,
    },
    /// −softmax(t·u), +softmax at the winner.
    SoftKrotov {
        t_invert: f32,
    },
    /// onehot(argmax u).
    Hard,
    /// +1 at the winner, −Δ at the k-th ranked unit.
    Krotov {
        k: u32,
        delta: f32,
    },
    /// out0 = u, G = T.
    Teacher,
    Logistic,
    Identity,
    /// relu without a teacher.
    ReluOnly,
    /// SoftHebb's triangle: relu(u − row mean)^power.
    Triangle {
        power: f32,
    },
}

impl Competition {
    /// (mode number, k, a) of the shaders' `HebbParams` for this competition.
    pub(crate) fn mode(self) -> (u32, u32, f32) {
        match self {
            Competition::Relu => (modes::RELU, 0, 0.0),
            Competition::Tanh => (modes::TANH, 0, 0.0),
            Competition::Kwta { k } => (modes::KWTA, k, 0.0),
            Competition::SoftExp { temperature } => (modes::SOFT_EXP, 0, temperature),
            Competition::SoftPow { power } => (modes::SOFT_POW, 0, power),
            Competition::Softmax { t_invert } => (modes::SOFTMAX, 0, t_invert),
            Competition::SoftKrotov { t_invert } => (modes::SOFT_KROTOV, 0, t_invert),
            Competition::Hard => (modes::HARD, 0, 0.0),
            Competition::Krotov { k, delta } => (modes::KROTOV, k, delta),
            Competition::Teacher => (modes::TEACHER, 0, 0.0),
            Competition::Logistic => (modes::LOGISTIC, 0, 0.0),
            Competition::Identity => (modes::IDENTITY, 0, 0.0),
            Competition::ReluOnly => (modes::RELU_ONLY, 0, 0.0),
            Competition::Triangle { power } => (modes::TRIANGLE, 0, power),
        }
    }
}

/// Records one hebbian.wgsl entry over `elements` invocations (256 per workgroup) or, for
/// `per_row` entries, `elements` rows (64 per workgroup).
fn launch(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    params: HebbParams,
    inputs: &[(u32, &Tensor)],
    outputs: &[(u32, &Tensor)],
    elements: usize,
    per_workgroup: usize,
) -> Result<()> {
    let ins: Vec<&Tensor> = inputs.iter().map(|(_, t)| *t).collect();
    let outs: Vec<&Tensor> = outputs.iter().map(|(_, t)| *t).collect();
    distinct_outputs(entry, &ins, &outs)?;
    let blocks = to_u32(entry, "workgroups", elements.div_ceil(per_workgroup))?;
    let groups = grid_1d(rec.ctx, blocks);
    let tensors: Vec<(u32, &Tensor)> = inputs.iter().chain(outputs.iter()).copied().collect();
    record_dispatch(rec, &HEBBIAN_WGSL, entry, &params, &tensors, groups)
}

fn dims(kernel: &str, n: usize, c: usize, d: usize) -> Result<HebbParams> {
    Ok(HebbParams {
        n: to_u32(kernel, "N", n)?,
        c: to_u32(kernel, "C", c)?,
        d: to_u32(kernel, "D", d)?,
        ..Default::default()
    })
}

/// S = raised cosine² of the dots X·Wᵀ (N x C) given Σx² per row (N) and Σw² per neuron (C);
/// proj = dots / guard(‖w_i‖), through relu if `relu_projection`.
#[allow(clippy::too_many_arguments)]
pub fn raised_cosine2(
    rec: &mut Recorder<'_>,
    dots: &Tensor,
    x_sumsq: &Tensor,
    w_sumsq: &Tensor,
    n: usize,
    c: usize,
    relu_projection: bool,
    s: &Tensor,
    proj: &Tensor,
) -> Result<()> {
    need(dots, n * c, "dots")?;
    need(x_sumsq, n, "Σx²")?;
    need(w_sumsq, c, "Σw²")?;
    need(s, n * c, "S")?;
    need(proj, n * c, "projection")?;
    let mut p = dims("raised_cosine2", n, c, 0)?;
    p.flags = relu_projection as u32;
    launch(
        rec,
        "raised_cosine2",
        p,
        &[(1, dots), (2, x_sumsq), (3, w_sumsq)],
        &[(4, s), (5, proj)],
        n * c,
        256,
    )
}

/// Which kernel runs a row-wise competition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompetitionKernel {
    /// `competition` in hebbian.wgsl: one invocation per row, core WGSL.
    PerRow,
    /// `competition_subgroup` (shaders/competition_subgroup.wgsl, needs SUBGROUP): one
    /// subgroup per row, strided loads and subgroup reductions.
    Subgroup,
}

impl CompetitionKernel {
    /// Invocations per row of the subgroup kernel on this adapter (its minimum subgroup size,
    /// at most 64), or None where it cannot run: no SUBGROUP, or subgroups under 4.
    pub fn subgroup_width(ctx: &GpuContext) -> Option<u32> {
        let width = ctx.info.subgroup_min_size.min(64);
        (ctx.has(wgpu::Features::SUBGROUP) && width >= 4).then_some(width)
    }

    /// The default for rows of C entries: the subgroup kernel where the adapter has one and the
    /// row has at least `policy.subgroup_competition_from` entries (every row under the GPU
    /// policy, for coalesced loads; 1024 or more under the CPU policy), the per-row kernel
    /// elsewhere. On CPU adapters (lavapipe) each invocation is a SIMD lane, so the per-row
    /// kernel already runs 8 rows per instruction. `hebb bench competition` (BENCHMARKS.md)
    /// measured the subgroup kernel at 0.61–0.89x of the per-row kernel's speed at C = 128,
    /// 0.75–1.34x at 384, and 0.99–1.39x at 1536.
    pub fn for_row(ctx: &GpuContext, c: usize) -> CompetitionKernel {
        if Self::subgroup_width(ctx).is_some() && c >= ctx.policy.subgroup_competition_from {
            CompetitionKernel::Subgroup
        } else {
            CompetitionKernel::PerRow
        }
    }

    /// Loop iterations one invocation runs for a row of C entries: the ranking passes
    /// (k for k-WTA, 1 + k for Krotov, 1 for the winner-takes-all modes) plus up to three
    /// sweeps, each over C entries per row (per-row kernel) or C / WG (subgroup kernel).
    pub fn iterations(self, ctx: &GpuContext, kind: Competition, c: usize) -> u64 {
        let per_sweep = match self {
            CompetitionKernel::PerRow => c,
            CompetitionKernel::Subgroup => {
                c.div_ceil(Self::subgroup_width(ctx).unwrap_or(1) as usize)
            }
        } as u64;
        let passes = match kind {
            Competition::Kwta { k } => k as u64,
            Competition::Krotov { k, .. } => 1 + k as u64,
            Competition::SoftKrotov { .. } | Competition::Softmax { .. } | Competition::Hard => 1,
            _ => 0,
        };
        (passes + 3) * per_sweep
    }
}

/// Row-wise competition of U (N x C) with an optional teacher T (N x C): out0 is the preset's
/// activation / competition output, g the post-synaptic factor of the update. Runs the
/// adapter's default kernel for this row length (`CompetitionKernel::for_row`).
#[allow(clippy::too_many_arguments)]
pub fn competition(
    rec: &mut Recorder<'_>,
    kind: Competition,
    u: &Tensor,
    teacher: Option<&Tensor>,
    n: usize,
    c: usize,
    out0: &Tensor,
    g: &Tensor,
) -> Result<()> {
    let ctx = rec.ctx;
    let mut kernel = CompetitionKernel::for_row(ctx, c);
    // Long rankings on llvmpipe: the subgroup kernel runs C / WG iterations per pass.
    if let Some(limit) = ctx.loop_iteration_limit()
        && kernel.iterations(ctx, kind, c) > limit
        && CompetitionKernel::subgroup_width(ctx).is_some()
    {
        kernel = CompetitionKernel::Subgroup;
    }
    competition_with(rec, kernel, kind, u, teacher, n, c, out0, g)
}

/// `competition` on the given kernel.
#[allow(clippy::too_many_arguments)]
pub fn competition_with(
    rec: &mut Recorder<'_>,
    kernel: CompetitionKernel,
    kind: Competition,
    u: &Tensor,
    teacher: Option<&Tensor>,
    n: usize,
    c: usize,
    out0: &Tensor,
    g: &Tensor,
) -> Result<()> {
    need(u, n * c, "U")?;
    need(out0, n * c, "competition output")?;
    need(g, n * c, "G")?;
    if let Some(t) = teacher {
        need(t, n * c, "teacher")?;
    }
    let (mode, k, a) = kind.mode();
    if matches!(kind, Competition::Kwta { .. } | Competition::Krotov { .. })
        && (k == 0 || k as usize > c)
    {
        return Err(HebbError::Launch {
            kernel: "competition".into(),
            message: format!("k = {k} must be in 1..={c} (the number of neurons)"),
        });
    }
    let work = format!("{kind:?} on the {kernel:?} kernel over rows of {c}");
    check_loop_budget(
        rec.ctx,
        "competition",
        kernel.iterations(rec.ctx, kind, c),
        &work,
    )?;
    let mut p = dims("competition", n, c, 0)?;
    p.mode = mode;
    p.k = k;
    p.a = a;
    p.flags = teacher.is_some() as u32;
    let inputs = [(1, u), (2, teacher.unwrap_or(u))];
    let outputs = [(4, out0), (5, g)];
    match kernel {
        CompetitionKernel::PerRow => launch(rec, "competition", p, &inputs, &outputs, n, 64),
        CompetitionKernel::Subgroup => {
            competition_subgroup::record(rec, &p, u, inputs[1].1, n, out0, g)
        }
    }
}

/// An activation whose backward pass `activation_backward` runs (those of `nn::recipe`'s
/// blocks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationGrad {
    Identity,
    /// relu(u)^power (power 1: relu).
    ReluPow {
        power: f32,
    },
    Tanh,
    Logistic,
    /// SoftHebb's relu(u − row mean)^power.
    Triangle {
        power: f32,
    },
}

/// dU = ∂L/∂u (N x C) of the activation Y(u) from dY = ∂L/∂Y, by rows (the triangle's mean
/// couples a row's entries).
pub fn activation_backward(
    rec: &mut Recorder<'_>,
    kind: ActivationGrad,
    u: &Tensor,
    dy: &Tensor,
    n: usize,
    c: usize,
    du: &Tensor,
) -> Result<()> {
    need(u, n * c, "pre-activations U")?;
    need(dy, n * c, "activation gradient dY")?;
    need(du, n * c, "pre-activation gradient dU")?;
    let (mode, a) = match kind {
        ActivationGrad::Identity => (modes::IDENTITY, 1.0),
        ActivationGrad::ReluPow { power } => (modes::RELU_ONLY, power),
        ActivationGrad::Tanh => (modes::TANH, 1.0),
        ActivationGrad::Logistic => (modes::LOGISTIC, 1.0),
        ActivationGrad::Triangle { power } => (modes::TRIANGLE, power),
    };
    check_loop_budget(
        rec.ctx,
        "activation_backward",
        3 * c as u64,
        &format!("{kind:?} over rows of {c}"),
    )?;
    let mut p = dims("activation_backward", n, c, 0)?;
    p.mode = mode;
    p.a = a;
    launch(
        rec,
        "activation_backward",
        p,
        &[(1, u), (2, dy)],
        &[(4, du)],
        n,
        64,
    )
}

/// G (C x D) = the gradient with respect to W of W̃_i = w_i / guard(‖w_i‖), from G̃, the
/// gradient with respect to W̃: G_i = (G̃_i − W̃_i·(W̃_i·G̃_i)) / guard(‖w_i‖). Any C x D matrix
/// whose rows were so normalised: weights, or `unit_norm_input`'s N x D patches.
pub fn unit_rows_backward(
    rec: &mut Recorder<'_>,
    w: &Tensor,
    grad_normed: &Tensor,
    c: usize,
    d: usize,
    grad: &Tensor,
) -> Result<()> {
    need(w, c * d, "W")?;
    need(grad_normed, c * d, "gradient with respect to W̃")?;
    need(grad, c * d, "gradient with respect to W")?;
    check_loop_budget(
        rec.ctx,
        "unit_rows_backward",
        3 * d as u64,
        &format!("rows of {d}"),
    )?;
    let p = dims("unit_rows_backward", 0, c, d)?;
    launch(
        rec,
        "unit_rows_backward",
        p,
        &[(1, w), (2, grad_normed)],
        &[(4, grad)],
        c,
        64,
    )
}

/// How `scale_rows` turns the per-row vector v into a factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFactor {
    /// v_i
    Value,
    /// 1 / guard(v_i)
    InverseGuarded,
    /// 1 / guard(sqrt(v_i))
    InverseSqrtGuarded,
}

/// out[i, :] = s · f(v_i) · w[i, :] for a C x D matrix.
#[allow(clippy::too_many_arguments)]
pub fn scale_rows(
    rec: &mut Recorder<'_>,
    factor: RowFactor,
    w: &Tensor,
    v: &Tensor,
    c: usize,
    d: usize,
    s: f32,
    out: &Tensor,
) -> Result<()> {
    need(w, c * d, "matrix")?;
    need(v, c, "row factors")?;
    need(out, c * d, "output")?;
    let mut p = dims("scale_rows", 0, c, d)?;
    p.mode = match factor {
        RowFactor::Value => 0,
        RowFactor::InverseGuarded => 1,
        RowFactor::InverseSqrtGuarded => 2,
    };
    p.s = s;
    launch(
        rec,
        "scale_rows",
        p,
        &[(1, w), (2, v)],
        &[(4, out)],
        c * d,
        256,
    )
}

/// out = g ⊙ |g| over `len` elements.
pub fn square_signed(rec: &mut Recorder<'_>, g: &Tensor, len: usize, out: &Tensor) -> Result<()> {
    need(g, len, "G")?;
    need(out, len, "output")?;
    let p = dims("square_signed", len, 1, 0)?;
    launch(rec, "square_signed", p, &[(1, g)], &[(4, out)], len, 256)
}

/// out = s · (m ⊙ L) for a C x C matrix (lower triangle with the diagonal).
pub fn tril_scale(
    rec: &mut Recorder<'_>,
    m: &Tensor,
    c: usize,
    s: f32,
    out: &Tensor,
) -> Result<()> {
    need(m, c * c, "C x C matrix")?;
    need(out, c * c, "output")?;
    let mut p = dims("tril_scale", 0, c, 0)?;
    p.s = s;
    launch(rec, "tril_scale", p, &[(1, m)], &[(4, out)], c * c, 256)
}

/// How `divide_by_max` forms the divisor from the reduced maximum m.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxDivisor {
    /// m + a (SoftHebb: a = 1e-30)
    Plus(f32),
    /// max(m, a) (Krotov: a = prec)
    AtLeast(f32),
}

/// out = x / divisor(max[0]) over `len` elements.
pub fn divide_by_max(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    max: &Tensor,
    len: usize,
    divisor: MaxDivisor,
    out: &Tensor,
) -> Result<()> {
    need(x, len, "x")?;
    need(max, 1, "maximum")?;
    need(out, len, "output")?;
    let mut p = dims("divide_by_max", len, 0, 0)?;
    (p.mode, p.a) = match divisor {
        MaxDivisor::Plus(a) => (0, a),
        MaxDivisor::AtLeast(a) => (1, a),
    };
    launch(
        rec,
        "divide_by_max",
        p,
        &[(1, x), (2, max)],
        &[(4, out)],
        len,
        256,
    )
}

/// out = sign(w)·|w|^exponent over `len` elements.
pub fn signed_pow(
    rec: &mut Recorder<'_>,
    w: &Tensor,
    len: usize,
    exponent: f32,
    out: &Tensor,
) -> Result<()> {
    need(w, len, "W")?;
    need(out, len, "output")?;
    distinct_outputs("signed_pow", &[w], &[out])?;
    record_power(rec, "signed_pow", len, exponent, &[(1, w), (4, out)])
}

/// Records `entry` (signed_pow or its backward), ELEMENTS_PER_INVOCATION elements of `len`
/// per invocation, with exponent a.
fn record_power(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    len: usize,
    exponent: f32,
    tensors: &[(u32, &Tensor)],
) -> Result<()> {
    let mut p = dims(entry, len, 0, 0)?;
    p.a = exponent;
    let per_workgroup = 256 * ELEMENTS_PER_INVOCATION;
    let blocks = to_u32(entry, "workgroups", len.div_ceil(per_workgroup))?;
    let groups = grid_1d(rec.ctx, blocks);
    let overrides = [("ELEMENTS_PER_INVOCATION", ELEMENTS_PER_INVOCATION as f64)];
    record_dispatch_with(rec, &HEBBIAN_WGSL, entry, &overrides, &p, tensors, groups)
}

/// G (len) = the gradient with respect to W of Krotov's currents weights W̃ = sign(w)·|w|^a
/// (`signed_pow`), from G̃ = ∂L/∂W̃: G = G̃·a·|w|^(a − 1). Refuses a < 1 (Krotov's p < 2),
/// where the factor is unbounded at w = 0.
pub fn signed_pow_backward(
    rec: &mut Recorder<'_>,
    w: &Tensor,
    grad_tilde: &Tensor,
    len: usize,
    exponent: f32,
    grad: &Tensor,
) -> Result<()> {
    need(w, len, "W")?;
    need(grad_tilde, len, "gradient with respect to W̃")?;
    need(grad, len, "gradient with respect to W")?;
    if !(exponent >= 1.0 && exponent.is_finite()) {
        return Err(HebbError::Launch {
            kernel: "signed_pow_backward".into(),
            message: format!(
                "exponent {exponent}: expected a finite a ≥ 1 (Krotov's p ≥ 2); below, \
                 a·|w|^(a − 1) is unbounded at w = 0"
            ),
        });
    }
    distinct_outputs("signed_pow_backward", &[w, grad_tilde], &[grad])?;
    let tensors = [(1, w), (2, grad_tilde), (4, grad)];
    record_power(rec, "signed_pow_backward", len, exponent, &tensors)
}

/// Updates the running mean / variance (length C) from S (N x C) with momentum `beta`.
pub fn va_stats(
    rec: &mut Recorder<'_>,
    s: &Tensor,
    n: usize,
    c: usize,
    beta: f32,
    mean: &Tensor,
    var: &Tensor,
) -> Result<()> {
    need(s, n * c, "S")?;
    need(mean, c, "running mean")?;
    need(var, c, "running variance")?;
    if n < 2 {
        return Err(HebbError::Launch {
            kernel: "va_stats".into(),
            message: "the unbiased variance needs at least 2 rows".into(),
        });
    }
    let work = format!("the column statistics of {n} rows");
    check_loop_budget(rec.ctx, "va_stats", 2 * n as u64, &work)?;
    let mut p = dims("va_stats", n, c, 0)?;
    p.a = beta;
    launch(rec, "va_stats", p, &[(1, s)], &[(4, mean), (5, var)], c, 64)
}

/// out = tanh((s − rm)/sd + rm)·sd with sd = sqrt(rv + eps), over N x C.
#[allow(clippy::too_many_arguments)]
pub fn va_apply(
    rec: &mut Recorder<'_>,
    s: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    n: usize,
    c: usize,
    eps: f32,
    out: &Tensor,
) -> Result<()> {
    need(s, n * c, "S")?;
    need(mean, c, "running mean")?;
    need(var, c, "running variance")?;
    need(out, n * c, "output")?;
    let mut p = dims("va_apply", n, c, 0)?;
    p.e = eps;
    launch(
        rec,
        "va_apply",
        p,
        &[(1, s), (2, mean), (3, var)],
        &[(4, out)],
        n * c,
        256,
    )
}

/// Φ = y ⊙ (y − θ)/(θ + eps) over n x C, with θ_i = y_sumsq_i / `rows`, the rows the sum
/// ran over (n, or a process group's global batch).
#[allow(clippy::too_many_arguments)]
pub fn bcm_phi(
    rec: &mut Recorder<'_>,
    y: &Tensor,
    y_sumsq: &Tensor,
    n: usize,
    rows: usize,
    c: usize,
    eps: f32,
    out: &Tensor,
) -> Result<()> {
    need(y, n * c, "Y")?;
    need(y_sumsq, c, "Σy²")?;
    need(out, n * c, "Φ")?;
    let mut p = dims("bcm_phi", n, c, 0)?;
    p.s = 1.0 / rows as f32;
    p.e = eps;
    launch(
        rec,
        "bcm_phi",
        p,
        &[(1, y), (2, y_sumsq)],
        &[(4, out)],
        n * c,
        256,
    )
}

/// ΔW_i = (P_i · w_i)·w_i − P_i for C x D matrices P and W.
pub fn ica_nrm_update(
    rec: &mut Recorder<'_>,
    pm: &Tensor,
    w: &Tensor,
    c: usize,
    d: usize,
    out: &Tensor,
) -> Result<()> {
    need(pm, c * d, "P")?;
    need(w, c * d, "W")?;
    need(out, c * d, "ΔW")?;
    let p = dims("ica_nrm_update", 0, c, d)?;
    launch(
        rec,
        "ica_nrm_update",
        p,
        &[(1, pm), (2, w)],
        &[(4, out)],
        c,
        64,
    )
}

/// out = u + b (b broadcast over rows), N x C.
pub fn add_bias(
    rec: &mut Recorder<'_>,
    u: &Tensor,
    b: &Tensor,
    n: usize,
    c: usize,
    out: &Tensor,
) -> Result<()> {
    need(u, n * c, "U")?;
    need(b, c, "bias")?;
    need(out, n * c, "output")?;
    let p = dims("add_bias", n, c, 0)?;
    launch(
        rec,
        "add_bias",
        p,
        &[(1, u), (2, b)],
        &[(4, out)],
        n * c,
        256,
    )
}

/// Δb_raw,i = (Σ_n Y_ni − N·e^{t·b_i}) / e^{t·b_i}.
#[allow(clippy::too_many_arguments)]
pub fn softhebb_bias_raw(
    rec: &mut Recorder<'_>,
    y_colsum: &Tensor,
    b: &Tensor,
    n: usize,
    c: usize,
    t_invert: f32,
    out: &Tensor,
) -> Result<()> {
    need(y_colsum, c, "Σ_n Y")?;
    need(b, c, "bias")?;
    need(out, c, "output")?;
    let mut p = dims("softhebb_bias_raw", n, c, 0)?;
    p.a = t_invert;
    launch(
        rec,
        "softhebb_bias_raw",
        p,
        &[(1, y_colsum), (2, b)],
        &[(4, out)],
        c,
        64,
    )
}
