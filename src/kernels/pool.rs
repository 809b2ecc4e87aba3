//! Launcher for `shaders/pool.wgsl`: 2-D max and average pooling of NCHW tensors, and their
//! backward passes for fine-tuning.
//! Bindings: 0 uniform PoolParams, 1 x (B, C, H, W), 2 out (B, C, Ho, Wo), 3 argmax
//! (B, C, Ho, Wo; f32 indices y·W + z), 4 dy (B, C, Ho, Wo), 5 dx (B, C, H, W).

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{Recorder, Tensor, grid_1d};
use crate::kernels::{POOL_WGSL, distinct_outputs, need, record_dispatch, to_u32};

/// Mirrors `PoolParams` in pool.wgsl (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PoolParams {
    pub planes: u32,
    pub h: u32,
    pub w: u32,
    pub ho: u32,
    pub wo: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub ph: u32,
    pub pw: u32,
    pub flags: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// PyTorch's `count_include_pad` chooses the divisor.
    Avg {
        count_include_pad: bool,
    },
}

/// Pooling geometry: `planes` = B·C planes of H x W.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Pool2d {
    /// (Ho, Wo), or an error naming what does not fit (PyTorch requires padding ≤ kernel/2).
    pub fn output_hw(&self) -> Result<(usize, usize)> {
        let bad = |message: String| {
            Err(HebbError::Shape {
                tensor: "pooling input".into(),
                message,
            })
        };
        let ([kh, kw], [sh, sw], [ph, pw]) = (self.kernel, self.stride, self.padding);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            return bad(format!(
                "kernel {:?} and stride {:?} must be positive",
                self.kernel, self.stride
            ));
        }
        if 2 * ph > kh || 2 * pw > kw {
            return bad(format!(
                "padding {:?} must be at most half the kernel {:?}",
                self.padding, self.kernel
            ));
        }
        if kh > self.h + 2 * ph || kw > self.w + 2 * pw {
            return bad(format!(
                "kernel {kh}x{kw} is larger than the padded {}x{} input",
                self.h + 2 * ph,
                self.w + 2 * pw
            ));
        }
        Ok((
            (self.h + 2 * ph - kh) / sh + 1,
            (self.w + 2 * pw - kw) / sw + 1,
        ))
    }
}

/// Records out = pool(x).
pub fn pool2d(rec: &mut Recorder<'_>, g: &Pool2d, x: &Tensor, out: &Tensor) -> Result<()> {
    let (params, outputs) = check(g, "pool2d")?;
    need(x, g.planes * g.h * g.w, "pooling input (B, C, H, W)")?;
    need(out, outputs, "pooling output (B, C, Ho, Wo)")?;
    distinct_outputs("pool2d", &[x], &[out])?;
    let entry = match g.kind {
        PoolKind::Max => "max_pool",
        PoolKind::Avg { .. } => "avg_pool",
    };
    launch(rec, entry, &params, &[(1, x), (2, out)], outputs)
}

/// Records out = max_pool(x) and the argmax of each window (its index y·W + z in the plane,
/// as f32), which `pool2d_backward` reads.
pub fn max_pool_indexed(
    rec: &mut Recorder<'_>,
    g: &Pool2d,
    x: &Tensor,
    out: &Tensor,
    argmax: &Tensor,
) -> Result<()> {
    let (params, outputs) = check(g, "max_pool_indexed")?;
    if g.kind != PoolKind::Max {
        return Err(HebbError::Launch {
            kernel: "max_pool_indexed".into(),
            message: format!("{:?} pooling has no argmax", g.kind),
        });
    }
    need(x, g.planes * g.h * g.w, "pooling input (B, C, H, W)")?;
    need(out, outputs, "pooling output (B, C, Ho, Wo)")?;
    need(argmax, outputs, "pooling argmax (B, C, Ho, Wo)")?;
    distinct_outputs("max_pool_indexed", &[x], &[out, argmax])?;
    launch(
        rec,
        "max_pool_indexed",
        &params,
        &[(1, x), (2, out), (3, argmax)],
        outputs,
    )
}

/// Records dx = ∂L/∂x from dy = ∂L/∂out: max pooling sends each window's gradient to its
/// argmax (from `max_pool_indexed`, required), average pooling spreads it over the window
/// divided by the forward's divisor.
pub fn pool2d_backward(
    rec: &mut Recorder<'_>,
    g: &Pool2d,
    argmax: Option<&Tensor>,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<()> {
    let (params, outputs) = check(g, "pool2d_backward")?;
    need(dy, outputs, "pooling output gradient (B, C, Ho, Wo)")?;
    need(
        dx,
        g.planes * g.h * g.w,
        "pooling input gradient (B, C, H, W)",
    )?;
    let inputs = match (g.kind, argmax) {
        (PoolKind::Max, Some(a)) => {
            need(a, outputs, "pooling argmax (B, C, Ho, Wo)")?;
            vec![(3, a), (4, dy)]
        }
        (PoolKind::Max, None) => {
            return Err(HebbError::Launch {
                kernel: "max_pool_backward".into(),
                message: "max pooling's backward needs the forward's argmax".into(),
            });
        }
        (PoolKind::Avg { .. }, _) => vec![(4, dy)],
    };
    let ins: Vec<&Tensor> = inputs.iter().map(|(_, t)| *t).collect();
    distinct_outputs("pool2d_backward", &ins, &[dx])?;
    let entry = match g.kind {
        PoolKind::Max => "max_pool_backward",
        PoolKind::Avg { .. } => "avg_pool_backward",
    };
    let mut tensors = inputs;
    tensors.push((5, dx));
    launch(rec, entry, &params, &tensors, g.planes * g.h * g.w)
}

/// The uniform of geometry `g` and its output length, or an error naming what does not fit.
fn check(g: &Pool2d, kernel: &str) -> Result<(PoolParams, usize)> {
    let (ho, wo) = g.output_hw()?;
    let u = |what: &str, v: usize| to_u32(kernel, what, v);
    if g.h * g.w > 1 << 24 {
        return Err(HebbError::Launch {
            kernel: kernel.into(),
            message: format!(
                "planes of {}x{} = {} elements: argmax indices are f32, exact up to 2^24",
                g.h,
                g.w,
                g.h * g.w
            ),
        });
    }
    let flags = match g.kind {
        PoolKind::Max => 0,
        PoolKind::Avg { count_include_pad } => count_include_pad as u32,
    };
    let params = PoolParams {
        planes: u("planes", g.planes)?,
        h: u("H", g.h)?,
        w: u("W", g.w)?,
        ho: u("Ho", ho)?,
        wo: u("Wo", wo)?,
        kh: u("kh", g.kernel[0])?,
        kw: u("kw", g.kernel[1])?,
        sh: u("sh", g.stride[0])?,
        sw: u("sw", g.stride[1])?,
        ph: u("ph", g.padding[0])?,
        pw: u("pw", g.padding[1])?,
        flags,
    };
    u("elements", g.planes * g.h.max(ho) * g.w.max(wo))?;
    Ok((params, g.planes * ho * wo))
}

/// One invocation per element of `invocations`, 256 per workgroup.
fn launch(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    params: &PoolParams,
    tensors: &[(u32, &Tensor)],
    invocations: usize,
) -> Result<()> {
    let groups = grid_1d(
        rec.ctx,
        to_u32(entry, "workgroups", invocations.div_ceil(256))?,
    );
    record_dispatch(rec, &POOL_WGSL, entry, params, tensors, groups)
}
