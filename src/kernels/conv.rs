//! Launchers for `shaders/conv.wgsl`: a conv layer's products as an implicit GEMM, gathering
//! the patch matrix P (N x D, the im2col matrix of `ConvGeometry`) inside the tile loads, so
//! an ImageNet-sized layer never stores it.
//!
//!   conv_forward_rows: U (N x C)  = alpha · P·Wᵀ + beta · U
//!   conv_update:       ΔW (C x D) = alpha · Gᵀ·P + beta · ΔW   (long K = N: split-K)
//!
//! Bindings (the "function signature" of the kernels):
//!   0 uniform ConvParams
//!   1 x: array<f32>      (B, C_in, H, W) NCHW from element offset_x
//!   2 mat: array<f32>    W (C x D) for the forward, G (N x C) for the update, row-major
//!   3 out: array<f32>    U (N x C) or ΔW (C x D), or the split-K workspace [splits, M, N_out]
//!   4 mat4               the same buffer as 2, viewed as vec4
//!
//! The kernels run gemm_tile_engine.wgsl's engine, as `gemm`'s tiled kernel does, so tiles are
//! `GemmTiles` (chosen by `GemmTiles::for_shape` unless given), double-buffered (`+db`) ones
//! included; the split-K reduction is gemm.wgsl's `gemm_splitk_reduce`.

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::LoggedShape;
use crate::gpu::tuning::{ShapeClass, TunedKernel};
use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm, GemmKind, GemmParams, GemmTiles, SplitK, UpdateEpilogue};
use crate::kernels::im2col::{ConvGeometry, ConvWords};
use crate::kernels::{CONV_WGSL, bind_group, check_grid, to_u32};

/// Mirrors `ConvParams` in conv.wgsl field for field (96 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ConvParams {
    pub geometry: ConvWords,
    /// The GEMM view: output M x N_out (dense), inner dimension K.
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub splits: u32,
    pub k_per_split: u32,
    pub stride_c: u32,
    pub alpha: f32,
    pub beta: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Scaling, tiles and K splitting of one launch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvOptions {
    pub alpha: f32,
    /// With beta == 0 the output is not read (NaN in it does not propagate).
    pub beta: f32,
    /// None: `GemmTiles::for_shape` on the output shape.
    pub tiles: Option<GemmTiles>,
    pub split_k: SplitK,
}

impl Default for ConvOptions {
    /// alpha = 1, beta = 0, shape-chosen tiles, automatic split-K.
    fn default() -> Self {
        Self {
            alpha: 1.0,
            beta: 0.0,
            tiles: None,
            split_k: SplitK::Auto,
        }
    }
}

/// The two entry points of conv.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    /// U (N x C) = alpha · P·Wᵀ + beta · U.
    ForwardRows,
    /// ΔW (C x D) = alpha · Gᵀ·P + beta · ΔW.
    Update,
}

impl ConvKernel {
    pub fn name(self) -> &'static str {
        match self {
            ConvKernel::ForwardRows => "conv_forward_rows",
            ConvKernel::Update => "conv_update",
        }
    }

    /// The tuning cache's class of an (M, N_out, K) launch.
    pub fn shape_class(self, m: usize, n: usize, k: usize) -> ShapeClass {
        let (kernel, trans) = match self {
            ConvKernel::ForwardRows => (TunedKernel::ConvForward, (false, true)),
            ConvKernel::Update => (TunedKernel::ConvUpdate, (true, false)),
        };
        ShapeClass::new(kernel, trans, m, n, k)
    }

    /// (M, N_out, K) of the GEMM view for a patch matrix N x D and C output channels.
    pub fn gemm_dims(self, n: usize, d: usize, c_out: usize) -> (usize, usize, usize) {
        match self {
            ConvKernel::ForwardRows => (n, c_out, d),
            ConvKernel::Update => (c_out, d, n),
        }
    }
}

/// The tiles and (splits, K per split) a launch of `kernel` would use: what the conformance
/// table reports.
pub fn plan(
    ctx: &crate::gpu::GpuContext,
    kernel: ConvKernel,
    g: &ConvGeometry,
    c_out: usize,
    opts: &ConvOptions,
) -> Result<(GemmTiles, u32, u32)> {
    let (n, d) = g.patch_shape()?;
    let (m, n_out, k) = kernel.gemm_dims(n, d, c_out);
    ctx.note_shape(|| LoggedShape::Conv {
        kernel,
        geometry: *g,
        c_out,
    });
    let tiles = opts.tiles.unwrap_or_else(|| {
        ctx.tuned(&kernel.shape_class(m, n_out, k))
            .unwrap_or_else(|| GemmTiles::for_shape(ctx, m, n_out))
    });
    if tiles.kind != GemmKind::Tiled {
        return Err(HebbError::Launch {
            kernel: "conv".into(),
            message: format!(
                "tiles {}: the conv kernels take tiled configurations (BMxBNxBK/TMxTN, +db for double buffering)",
                tiles.label()
            ),
        });
    }
    let (splits, k_per_split) = Gemm::new(m, n_out, k)
        .split_k(opts.split_k)
        .plan_split(ctx, &tiles);
    Ok((tiles, splits, k_per_split))
}

/// Records U (N x C, row-major) = P·Wᵀ for the patches P of x[offset_x..] under geometry `g`
/// and W (C x D, row-major), with `c_out` = C. U must not alias x or W.
pub fn conv_forward_rows(
    rec: &mut Recorder<'_>,
    g: &ConvGeometry,
    x: &Tensor,
    offset_x: usize,
    w: &Tensor,
    c_out: usize,
    u: &Tensor,
) -> Result<()> {
    conv_forward_rows_with(rec, g, x, offset_x, w, c_out, &ConvOptions::default(), u)
}

/// `conv_forward_rows` with alpha, beta, tiles and split-K from `opts`.
#[allow(clippy::too_many_arguments)]
pub fn conv_forward_rows_with(
    rec: &mut Recorder<'_>,
    g: &ConvGeometry,
    x: &Tensor,
    offset_x: usize,
    w: &Tensor,
    c_out: usize,
    opts: &ConvOptions,
    u: &Tensor,
) -> Result<()> {
    let kernel = ConvKernel::ForwardRows;
    let (n, d) = check_common(kernel, g, x, offset_x, c_out)?;
    w.expect_dtype(DType::F32, "W")?;
    u.expect_dtype(DType::F32, "U")?;
    w.expect_len(c_out * d, &format!("W ({c_out} x {d})"))?;
    u.expect_len(n * c_out, &format!("U ({n} x {c_out})"))?;
    distinct(kernel, u, "U", &[(x, "x"), (w, "W")])?;
    launch(rec, kernel, g, x, offset_x, w, c_out, opts, u, None)
}

/// Records ΔW (C x D) = alpha · Gᵀ·P + beta · ΔW for G (N x C, row-major: the rule's
/// post-synaptic factor, one row per patch), `c_out` = C, and the patches P of x[offset_x..]
/// under `g`. K = N is long, so it is split across workgroups when ΔW has few tiles. ΔW must
/// not alias x or G.
#[allow(clippy::too_many_arguments)]
pub fn conv_update(
    rec: &mut Recorder<'_>,
    g: &ConvGeometry,
    gm: &Tensor,
    x: &Tensor,
    offset_x: usize,
    c_out: usize,
    alpha: f32,
    beta: f32,
    dw: &Tensor,
) -> Result<()> {
    let opts = ConvOptions {
        alpha,
        beta,
        ..ConvOptions::default()
    };
    conv_update_with(rec, g, gm, x, offset_x, c_out, &opts, dw)
}

/// `conv_update` with alpha, beta, tiles and split-K from `opts`.
#[allow(clippy::too_many_arguments)]
pub fn conv_update_with(
    rec: &mut Recorder<'_>,
    g: &ConvGeometry,
    gm: &Tensor,
    x: &Tensor,
    offset_x: usize,
    c_out: usize,
    opts: &ConvOptions,
    dw: &Tensor,
) -> Result<()> {
    launch_update(rec, g, gm, x, offset_x, c_out, opts, dw, None)
}

/// `conv_update_with` followed by an update epilogue on each element of ΔW as it is written
/// (`gemm::UpdateEpilogue`, as `gemm::gemm_update` applies it): R = ΔW − r ⊙ W with max|R|,
/// or an optimizer step of W by ΔW. An unsplit update runs it in conv.wgsl's
/// `conv_update_decay` / `conv_update_optim`, a split one in the split-K reduction.
#[allow(clippy::too_many_arguments)]
pub fn conv_update_epilogue(
    rec: &mut Recorder<'_>,
    g: &ConvGeometry,
    gm: &Tensor,
    x: &Tensor,
    offset_x: usize,
    c_out: usize,
    opts: &ConvOptions,
    dw: &Tensor,
    epilogue: &UpdateEpilogue<'_>,
) -> Result<()> {
    launch_update(rec, g, gm, x, offset_x, c_out, opts, dw, Some(epilogue))
}

/// Checks G (N x C) and ΔW (C x D) against the geometry, then launches the update.
#[allow(clippy::too_many_arguments)]
fn launch_update(
    rec: &mut Recorder<'_>,
    g: &ConvGeometry,
    gm: &Tensor,
    x: &Tensor,
    offset_x: usize,
    c_out: usize,
    opts: &ConvOptions,
    dw: &Tensor,
    epilogue: Option<&UpdateEpilogue<'_>>,
) -> Result<()> {
    let kernel = ConvKernel::Update;
    let (n, d) = check_common(kernel, g, x, offset_x, c_out)?;
    gm.expect_dtype(DType::F32, "G")?;
    dw.expect_dtype(DType::F32, "ΔW")?;
    gm.expect_len(n * c_out, &format!("G ({n} x {c_out})"))?;
    dw.expect_len(c_out * d, &format!("ΔW ({c_out} x {d})"))?;
    distinct(kernel, dw, "ΔW", &[(x, "x"), (gm, "G")])?;
    launch(rec, kernel, g, x, offset_x, gm, c_out, opts, dw, epilogue)
}

/// Checks the geometry, x and C; returns (N, D).
fn check_common(
    kernel: ConvKernel,
    g: &ConvGeometry,
    x: &Tensor,
    offset_x: usize,
    c_out: usize,
) -> Result<(usize, usize)> {
    let (n, d) = g.patch_shape()?;
    if n == 0 || d == 0 || c_out == 0 {
        return Err(HebbError::Launch {
            kernel: kernel.name().into(),
            message: format!(
                "batch, channels and output channels must be at least 1 (got N={n}, D={d}, C={c_out})"
            ),
        });
    }
    x.expect_dtype(DType::F32, "conv input")?;
    x.expect_len(
        offset_x + g.input_len(),
        &format!(
            "conv input ({}, {}, {}, {}) from element {offset_x}",
            g.batch, g.in_channels, g.h, g.w
        ),
    )?;
    Ok((n, d))
}

fn distinct(
    kernel: ConvKernel,
    out: &Tensor,
    role: &str,
    inputs: &[(&Tensor, &str)],
) -> Result<()> {
    for (input, name) in inputs {
        if input.buffer == out.buffer {
            return Err(HebbError::Launch {
                kernel: kernel.name().into(),
                message: format!(
                    "{role} ({}) must not be the same tensor as {name}",
                    out.label
                ),
            });
        }
    }
    Ok(())
}

/// Plans tiles and splits, records the kernel and, when K is split, the reduction.
#[allow(clippy::too_many_arguments)]
fn launch(
    rec: &mut Recorder<'_>,
    kernel: ConvKernel,
    g: &ConvGeometry,
    x: &Tensor,
    offset_x: usize,
    mat: &Tensor,
    c_out: usize,
    opts: &ConvOptions,
    out: &Tensor,
    epilogue: Option<&UpdateEpilogue<'_>>,
) -> Result<()> {
    let ctx = rec.ctx;
    let name = kernel.name();
    let (n, d) = g.patch_shape()?;
    let (m, n_out, k) = kernel.gemm_dims(n, d, c_out);
    if let Some(epi) = epilogue {
        epi.prepare(rec, "conv_update", &Gemm::new(m, n_out, k), mat, x, out)?;
    }
    let (tiles, splits, k_per_split) = plan(ctx, kernel, g, c_out, opts)?;
    // The epilogue runs in the product kernel when K is not split, else in the reduction.
    let direct = epilogue.filter(|_| splits == 1);
    tiles.validate(ctx).map_err(|e| match e {
        HebbError::Launch { message, .. } => HebbError::Launch {
            kernel: name.into(),
            message,
        },
        other => other,
    })?;
    let threads = tiles.threads();
    if !threads.is_multiple_of(tiles.bm / 4) || !threads.is_multiple_of(tiles.bn / 4) {
        return Err(HebbError::Launch {
            kernel: name.into(),
            message: format!(
                "tiles {}: the {threads} invocations must be a multiple of BM / 4 and BN / 4",
                tiles.label()
            ),
        });
    }
    // Row length of `mat`: D for W, C for G.
    let mat_cols = match kernel {
        ConvKernel::ForwardRows => d,
        ConvKernel::Update => c_out,
    };
    let vec4 = mat_cols.is_multiple_of(4);
    let pipeline = ctx.kernels.get(
        &ctx.device,
        ctx.features,
        &CONV_WGSL,
        UpdateEpilogue::entry(direct, name),
        &[
            tiles.engine_overrides().as_slice(),
            &[("VEC4", vec4 as u32 as f64)],
            &direct.map_or(vec![], |e| e.overrides().to_vec()),
        ]
        .concat(),
    )?;
    let groups = [
        to_u32(name, "N_out blocks", n_out.div_ceil(tiles.bn as usize))?,
        to_u32(name, "M blocks", m.div_ceil(tiles.bm as usize))?,
        splits,
    ];
    check_grid(ctx, name, groups)?;

    let u = |what: &str, v: usize| to_u32(name, what, v);
    let plane = m * n_out;
    let split = splits > 1;
    let params = ConvParams {
        geometry: g.words(name, offset_x)?,
        m: u("M", m)?,
        n: u("N_out", n_out)?,
        k: u("K", k)?,
        splits,
        k_per_split,
        stride_c: u("M * N_out", plane)?,
        // Split: partial products into the workspace, scaled by the reduction.
        alpha: if split { 1.0 } else { opts.alpha },
        beta: if split { 0.0 } else { opts.beta },
        _pad0: 0,
        _pad1: 0,
    };
    let workspace = if split {
        Some(ctx.workspace(splits as usize * plane)?)
    } else {
        None
    };
    let target = workspace.as_deref().unwrap_or(out);
    let uniform = rec.uniform(&params);
    let mut entries = vec![
        (0, uniform.as_entire_binding()),
        (1, x.binding(ctx)?),
        (2, mat.binding(ctx)?),
        (3, target.binding(ctx)?),
        (4, mat.binding(ctx)?),
    ];
    let (mut optim_uniform, mut spare) = (None, None);
    if let Some(e) = direct {
        entries.extend(e.entries(rec, (params.m, params.n), &mut optim_uniform, &mut spare)?);
    }
    let bg = bind_group(ctx, &pipeline, &entries);
    rec.dispatch(&pipeline, &bg, groups);
    let Some(workspace) = workspace else {
        return Ok(());
    };
    let reduce = GemmParams {
        m: params.m,
        n: params.n,
        k: params.k,
        batch: 1,
        lda: 0,
        ldb: 0,
        ldc: params.n,
        splits,
        stride_a: 0,
        stride_b: 0,
        stride_c: params.stride_c,
        k_per_split,
        offset_a: 0,
        offset_b: 0,
        offset_c: 0,
        trans: 0,
        alpha: opts.alpha,
        beta: opts.beta,
        _pad0: 0,
        _pad1: 0,
    };
    gemm::splitk_reduce(rec, &reduce, &workspace, out, epilogue)
}
