//! Launcher for `shaders/im2col.wgsl`: the patch matrix X (N x D) of a 2-D convolution.
//! Bindings: 0 uniform Im2colParams, 1 x (B, C_in, H, W) f32 (read), 2 out (N x D) f32, or
//! 3 out_f16 (N x D) as packed halves (`im2col_f16`, core WGSL: no SHADER_F16 needed);
//! `col2im` (the adjoint, for fine-tuning): 4 dP (N x D) f32 (read), 5 dx (B, C_in, H, W).

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{IM2COL_WGSL, record_dispatch, to_u32};

/// A convolution's geometry as the leading 14 words of the im2col.wgsl and conv.wgsl uniforms
/// (batch, c_in, h, w, kh, kw, sh, sw, ph, pw, ho, wo, reflect, offset_x), in that order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ConvWords {
    pub batch: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub ph: u32,
    pub pw: u32,
    pub ho: u32,
    pub wo: u32,
    pub reflect: u32,
    pub offset_x: u32,
}

/// Mirrors `Im2colParams` in im2col.wgsl (64 bytes): the geometry words, then the extent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Im2colParams {
    pub geometry: ConvWords,
    pub total: u32,
    pub _pad0: u32,
}

/// A 2-D convolution's input geometry (dilation 1, groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub reflect: bool,
}

impl ConvGeometry {
    /// (Ho, Wo), or an error naming what does not fit.
    pub fn output_hw(&self) -> Result<(usize, usize)> {
        let bad = |message: String| {
            Err(HebbError::Shape {
                tensor: "conv input".into(),
                message,
            })
        };
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let (hp, wp) = (self.h + 2 * self.padding[0], self.w + 2 * self.padding[1]);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            return bad(format!(
                "kernel {:?} and stride {:?} must be positive",
                self.kernel, self.stride
            ));
        }
        if kh > hp || kw > wp {
            return bad(format!(
                "kernel {kh}x{kw} is larger than the padded {hp}x{wp} input ({}x{} + padding {:?})",
                self.h, self.w, self.padding
            ));
        }
        if self.reflect && (self.padding[0] >= self.h || self.padding[1] >= self.w) {
            return bad(format!(
                "reflect padding {:?} must be smaller than the {}x{} input",
                self.padding, self.h, self.w
            ));
        }
        Ok(((hp - kh) / sh + 1, (wp - kw) / sw + 1))
    }

    /// (N, D) of the patch matrix.
    pub fn patch_shape(&self) -> Result<(usize, usize)> {
        let (ho, wo) = self.output_hw()?;
        Ok((
            self.batch * ho * wo,
            self.in_channels * self.kernel[0] * self.kernel[1],
        ))
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.h * self.w
    }

    /// The uniform words of this geometry reading x from element `offset_x`; `kernel` names
    /// the launcher in errors.
    pub fn words(&self, kernel: &str, offset_x: usize) -> Result<ConvWords> {
        let (ho, wo) = self.output_hw()?;
        let u = |what: &str, v: usize| to_u32(kernel, what, v);
        Ok(ConvWords {
            batch: u("batch", self.batch)?,
            c_in: u("in_channels", self.in_channels)?,
            h: u("H", self.h)?,
            w: u("W", self.w)?,
            kh: u("kh", self.kernel[0])?,
            kw: u("kw", self.kernel[1])?,
            sh: u("sh", self.stride[0])?,
            sw: u("sw", self.stride[1])?,
            ph: u("ph", self.padding[0])?,
            pw: u("pw", self.padding[1])?,
            ho: u("Ho", ho)?,
            wo: u("Wo", wo)?,
            reflect: self.reflect as u32,
            offset_x: u("offset_x", offset_x)?,
        })
    }
}

/// Records out = im2col(x[offset_x..]) for geometry `g`; `out` must hold N·D elements, f32
/// or f16 (rounded to nearest).
pub fn im2col(
    rec: &mut Recorder<'_>,
    g: &ConvGeometry,
    x: &Tensor,
    offset_x: usize,
    out: &Tensor,
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    let (n, d) = g.patch_shape()?;
    x.expect_dtype(DType::F32, "im2col input")?;
    if out.dtype != DType::F16 {
        out.expect_dtype(DType::F32, "im2col output")?;
    }
    x.expect_len(offset_x + g.input_len(), "im2col input (B, C_in, H, W)")?;
    out.expect_len(n * d, &format!("im2col output ({n} x {d})"))?;
    if x.buffer == out.buffer {
        return Err(HebbError::Launch {
            kernel: "im2col".into(),
            message: "input and output must be different tensors".into(),
        });
    }
    let params = Im2colParams {
        geometry: g.words("im2col", offset_x)?,
        total: to_u32("im2col", "N * D", n * d)?,
        _pad0: 0,
    };
    // f32: one invocation per kernel row of kw elements; f16: one per word of 2 elements.
    let (entry, invocations, binding) = match out.dtype {
        DType::F16 => ("im2col_f16", (n * d).div_ceil(2), 3),
        _ => ("im2col", n * d / g.kernel[1], 2),
    };
    let groups = grid_1d(ctx, to_u32(entry, "workgroups", invocations.div_ceil(256))?);
    record_dispatch(
        rec,
        &IM2COL_WGSL,
        entry,
        &params,
        &[(1, x), (binding, out)],
        groups,
    )
}

/// Records dx = col2im(dP), the adjoint of `im2col` (a convolution's backward-data): each
/// input element of geometry `g` receives the sum of the patch gradients dP (N x D) of the
/// patch elements that read it, mirror images included under reflect padding.
pub fn col2im(rec: &mut Recorder<'_>, g: &ConvGeometry, dp: &Tensor, dx: &Tensor) -> Result<()> {
    let (n, d) = g.patch_shape()?;
    crate::kernels::need(dp, n * d, &format!("col2im patch gradient ({n} x {d})"))?;
    crate::kernels::need(dx, g.input_len(), "col2im input gradient (B, C_in, H, W)")?;
    crate::kernels::distinct_outputs("col2im", &[dp], &[dx])?;
    let params = Im2colParams {
        geometry: g.words("col2im", 0)?,
        total: to_u32("col2im", "B * C_in * H * W", g.input_len())?,
        _pad0: 0,
    };
    to_u32("col2im", "N * D", n * d)?;
    let groups = grid_1d(
        rec.ctx,
        to_u32("col2im", "workgroups", g.input_len().div_ceil(256))?,
    );
    record_dispatch(
        rec,
        &IM2COL_WGSL,
        "col2im",
        &params,
        &[(4, dp), (5, dx)],
        groups,
    )
}
