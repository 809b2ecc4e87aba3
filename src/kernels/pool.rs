//! Launcher for `shaders/pool.wgsl`: 2-D max and average pooling of NCHW tensors.
//! Bindings: 0 uniform PoolParams, 1 x (B, C, H, W), 2 out (B, C, Ho, Wo).

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{POOL_WGSL, record_dispatch, to_u32};

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
    let ctx: &GpuContext = rec.ctx;
    let (ho, wo) = g.output_hw()?;
    x.expect_dtype(DType::F32, "pooling input")?;
    out.expect_dtype(DType::F32, "pooling output")?;
    x.expect_len(g.planes * g.h * g.w, "pooling input (B, C, H, W)")?;
    out.expect_len(g.planes * ho * wo, "pooling output (B, C, Ho, Wo)")?;
    if x.buffer == out.buffer {
        return Err(HebbError::Launch {
            kernel: "pool2d".into(),
            message: "input and output must be different tensors".into(),
        });
    }
    let u = |what: &str, v: usize| to_u32("pool2d", what, v);
    let (entry, flags) = match g.kind {
        PoolKind::Max => ("max_pool", 0),
        PoolKind::Avg { count_include_pad } => ("avg_pool", count_include_pad as u32),
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
    let groups = grid_1d(ctx, u("outputs / 256", (g.planes * ho * wo).div_ceil(256))?);
    record_dispatch(rec, &POOL_WGSL, entry, &params, &[(1, x), (2, out)], groups)
}
