//! Launchers for `shaders/elementwise.wgsl` (fill, scale, axpy, copy on f32) and for the casts
//! between f32 and f16 in `shaders/cast.wgsl` (packed halves, core WGSL) and
//! `shaders/cast_f16.wgsl` (native f16, SHADER_F16).
//! Bindings: elementwise 0 uniform, 1 x (in place), 2 src (read), 3 y (written);
//! casts 0 uniform, 1 f32 source, 2 f16 destination, 3 f16 source, 4 f32 destination.

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, Recorder, Tensor, grid_1d};
use crate::kernels::{
    CAST_F16_WGSL, CAST_WGSL, ELEMENTWISE_WGSL, bind_group, check_grid, record_dispatch, to_u32,
};

/// Mirrors `ElementwiseParams` in elementwise.wgsl (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ElementwiseParams {
    pub n: u32,
    pub offset_x: u32,
    pub offset_y: u32,
    /// dropout: the mask index of element 0.
    pub first: u32,
    pub alpha: f32,
    pub value: f32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Mirrors `CastParams` in cast.wgsl and cast_f16.wgsl (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CastParams {
    pub n: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

const WG: usize = 256;

fn launch(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    n: usize,
    params: ElementwiseParams,
    bindings: &[(u32, &Tensor)],
) -> Result<()> {
    for (_, t) in bindings {
        t.expect_dtype(DType::F32, entry)?;
    }
    let groups = grid_1d(rec.ctx, to_u32(entry, "n / 256", n.div_ceil(WG))?);
    record_dispatch(rec, &ELEMENTWISE_WGSL, entry, &params, bindings, groups)
}

fn params(kernel: &str, n: usize, alpha: f32, value: f32) -> Result<ElementwiseParams> {
    Ok(ElementwiseParams {
        n: to_u32(kernel, "n", n)?,
        alpha,
        value,
        ..Default::default()
    })
}

fn same_len(kernel: &str, x: &Tensor, y: &Tensor) -> Result<()> {
    if x.buffer == y.buffer {
        return Err(HebbError::Launch {
            kernel: kernel.into(),
            message: format!("source and destination are the same tensor ({})", x.label),
        });
    }
    if x.len() != y.len() {
        return Err(HebbError::Shape {
            tensor: y.label.clone(),
            message: format!(
                "{kernel}: shape {:?} does not match {} {:?}",
                y.shape, x.label, x.shape
            ),
        });
    }
    Ok(())
}

/// x[i] = value.
pub fn fill(rec: &mut Recorder<'_>, x: &Tensor, value: f32) -> Result<()> {
    launch(
        rec,
        "fill",
        x.len(),
        params("fill", x.len(), 0.0, value)?,
        &[(1, x)],
    )
}

/// x[i] = alpha * x[i].
pub fn scale(rec: &mut Recorder<'_>, x: &Tensor, alpha: f32) -> Result<()> {
    launch(
        rec,
        "scale",
        x.len(),
        params("scale", x.len(), alpha, 0.0)?,
        &[(1, x)],
    )
}

/// y[i] = alpha * x[i] + y[i].
pub fn axpy(rec: &mut Recorder<'_>, alpha: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    same_len("axpy", x, y)?;
    launch(
        rec,
        "axpy",
        x.len(),
        params("axpy", x.len(), alpha, 0.0)?,
        &[(2, x), (3, y)],
    )
}

/// Copies `src` into `dst`, converting between f32 and f16 as their dtypes say.
/// f16 casts use native f16 where the device has SHADER_F16, packed halves otherwise.
pub fn copy(rec: &mut Recorder<'_>, src: &Tensor, dst: &Tensor) -> Result<()> {
    let native = rec.ctx.has(wgpu::Features::SHADER_F16);
    copy_with(rec, src, dst, native)
}

/// As `copy`, choosing the f16 path explicitly (`native_f16` needs SHADER_F16).
pub fn copy_with(
    rec: &mut Recorder<'_>,
    src: &Tensor,
    dst: &Tensor,
    native_f16: bool,
) -> Result<()> {
    same_len("copy", src, dst)?;
    let n = src.len();
    let (entry, per_invocation) = match (src.dtype, dst.dtype, native_f16) {
        (DType::F32, DType::F32, _) => {
            return launch(
                rec,
                "copy",
                n,
                params("copy", n, 0.0, 0.0)?,
                &[(2, src), (3, dst)],
            );
        }
        (DType::F16, DType::F16, _) => {
            // Same bytes: a plain buffer copy.
            let bytes = src.bytes().div_ceil(4) * 4;
            rec.encoder()
                .copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, bytes);
            return Ok(());
        }
        (DType::F32, DType::F16, true) => ("f32_to_f16", 1),
        (DType::F16, DType::F32, true) => ("f16_to_f32", 1),
        (DType::F32, DType::F16, false) => ("f32_to_f16_packed", 2),
        (DType::F16, DType::F32, false) => ("f16_packed_to_f32", 2),
    };
    let ctx = rec.ctx;
    let shader = if native_f16 {
        &CAST_F16_WGSL
    } else {
        &CAST_WGSL
    };
    if native_f16 && !ctx.has(wgpu::Features::SHADER_F16) {
        return Err(HebbError::MissingFeature {
            what: format!("the native f16 cast {entry}"),
            feature: "SHADER_F16",
            adapter: ctx.adapter_name(),
        });
    }
    let pipeline = ctx
        .kernels
        .get(&ctx.device, ctx.features, shader, entry, &[])?;
    let groups = grid_1d(
        ctx,
        to_u32(entry, "n / 256", n.div_ceil(per_invocation * WG))?,
    );
    check_grid(ctx, entry, groups)?;
    let uniform = rec.uniform(&CastParams {
        n: to_u32(entry, "n", n)?,
        ..Default::default()
    });
    let (src_slot, dst_slot) = if src.dtype == DType::F32 {
        (1, 2)
    } else {
        (3, 4)
    };
    let bg = bind_group(
        ctx,
        &pipeline,
        &[
            (0, uniform.as_entire_binding()),
            (src_slot, src.binding(ctx)?),
            (dst_slot, dst.binding(ctx)?),
        ],
    );
    rec.dispatch(&pipeline, &bg, groups);
    Ok(())
}

/// The dropout mask's hash (PCG-style integer mix), identical to `mix32` in elementwise.wgsl.
pub fn dropout_hash(v: u32) -> u32 {
    let s = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
    (w >> 22) ^ w
}

/// Whether element `i` (of the whole batch) survives dropout at `rate` for `seed` (the
/// kernel's mask).
pub fn dropout_keeps(seed: u32, i: u32, rate: f32) -> bool {
    dropout_hash(dropout_hash(i) ^ seed) as f32 >= rate * 4_294_967_296.0
}

/// Inverted dropout in place on the first `n` elements of x: kept elements are scaled by
/// 1/(1 − rate), dropped ones zeroed; the mask is a function of (seed, index) only, element
/// i taking the mask of index `first + i` (a rank of a process group holds the batch's
/// elements from `first` on, and draws the mask one process would).
pub fn dropout(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    n: usize,
    first: usize,
    rate: f32,
    seed: u32,
) -> Result<()> {
    if !(0.0..1.0).contains(&rate) {
        return Err(HebbError::Launch {
            kernel: "dropout".into(),
            message: format!("rate {rate} must be in [0, 1)"),
        });
    }
    x.expect_len(n, "dropout input")?;
    let mut p = params("dropout", n, rate, 1.0 / (1.0 - rate))?;
    p.offset_y = seed;
    p.first = to_u32("dropout", "first index", first)?;
    to_u32("dropout", "last index", first + n)?;
    launch(rec, "dropout", n, p, &[(1, x)])
}

#[cfg(test)]
mod tests {
    use super::dropout_keeps;

    #[test]
    fn dropout_mask_keeps_one_minus_rate_and_depends_on_the_seed() {
        let n = 200_000u32;
        for rate in [0.1f32, 0.5, 0.9] {
            let kept = (0..n).filter(|&i| dropout_keeps(7, i, rate)).count() as f64 / n as f64;
            assert!(
                (kept - (1.0 - rate as f64)).abs() < 0.01,
                "rate {rate}: kept {kept}"
            );
        }
        let same = (0..10_000u32)
            .filter(|&i| dropout_keeps(1, i, 0.5) == dropout_keeps(2, i, 0.5))
            .count();
        assert!(
            (4_500..5_500).contains(&same),
            "masks of seeds 1 and 2 agree on {same}"
        );
    }
}
