//! Launchers for `shaders/layout.wgsl`: between the rows layout ((B·P) x C, what X·Wᵀ over an
//! im2col matrix gives) and the planes layout ((B, C, P), NCHW); and between planes and the
//! blocks layout ((B·blocks) x C·bh·bw, one row per non-overlapping bh x bw block).
//! Bindings: 0 uniform LayoutParams, 1 source (read), 2 destination.

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, Recorder, Tensor, grid_1d};
use crate::kernels::{LAYOUT_WGSL, record_dispatch, to_u32};

/// Mirrors `LayoutParams` in layout.wgsl (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LayoutParams {
    pub batch: u32,
    pub channels: u32,
    pub positions: u32,
    pub total: u32,
    pub height: u32,
    pub width: u32,
    pub block_h: u32,
    pub block_w: u32,
}

/// Which way to convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    RowsToPlanes,
    PlanesToRows,
}

/// Which way to convert between planes and blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocks {
    PlanesToBlocks,
    BlocksToPlanes,
}

/// Records dst = the other layout of src, for `batch` images of `channels` x `positions`.
pub fn convert(
    rec: &mut Recorder<'_>,
    way: Layout,
    batch: usize,
    channels: usize,
    positions: usize,
    src: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    let entry = match way {
        Layout::RowsToPlanes => "rows_to_planes",
        Layout::PlanesToRows => "planes_to_rows",
    };
    let total = batch * channels * positions;
    let params = LayoutParams {
        batch: to_u32(entry, "batch", batch)?,
        channels: to_u32(entry, "channels", channels)?,
        positions: to_u32(entry, "positions", positions)?,
        total: to_u32(entry, "B·C·P", total)?,
        ..Default::default()
    };
    let shape = format!("{batch} x {channels} x {positions}");
    // One invocation per run of RUN (layout.wgsl) channels or positions.
    let invocations = match way {
        Layout::RowsToPlanes => batch * channels.div_ceil(RUN) * positions,
        Layout::PlanesToRows => batch * positions.div_ceil(RUN) * channels,
    };
    launch(rec, entry, &params, total, invocations, &shape, src, dst)
}

/// Elements each invocation of the row/plane transposes moves (`RUN` in layout.wgsl).
const RUN: usize = 8;

/// Checks that src and dst are distinct f32 tensors of `total` elements and records one
/// layout.wgsl entry over them with `invocations` invocations.
#[allow(clippy::too_many_arguments)]
fn launch(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    params: &LayoutParams,
    total: usize,
    invocations: usize,
    shape: &str,
    src: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    for (t, role) in [(src, "source"), (dst, "destination")] {
        t.expect_dtype(DType::F32, role)?;
        t.expect_len(total, &format!("{entry} {role} ({shape})"))?;
    }
    if src.buffer == dst.buffer {
        return Err(HebbError::Launch {
            kernel: entry.into(),
            message: "source and destination must be different tensors".into(),
        });
    }
    let groups = grid_1d(
        rec.ctx,
        to_u32(entry, "invocations / 256", invocations.div_ceil(256))?,
    );
    record_dispatch(
        rec,
        &LAYOUT_WGSL,
        entry,
        params,
        &[(1, src), (2, dst)],
        groups,
    )
}

/// Records dst = the other of the planes layout (B, C, H, W) and the blocks layout
/// ((B·H/bh·W/bw) x C·bh·bw) of src; `block` = [bh, bw] must divide [H, W].
#[allow(clippy::too_many_arguments)]
pub fn blocks(
    rec: &mut Recorder<'_>,
    way: Blocks,
    batch: usize,
    channels: usize,
    hw: [usize; 2],
    block: [usize; 2],
    src: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    let entry = match way {
        Blocks::PlanesToBlocks => "planes_to_blocks",
        Blocks::BlocksToPlanes => "blocks_to_planes",
    };
    let [h, w] = hw;
    let [bh, bw] = block;
    if bh == 0 || bw == 0 || !h.is_multiple_of(bh) || !w.is_multiple_of(bw) {
        return Err(HebbError::Launch {
            kernel: entry.into(),
            message: format!("{bh}x{bw} blocks do not tile a {h}x{w} image"),
        });
    }
    let total = batch * channels * h * w;
    let u = |what: &str, v: usize| to_u32(entry, what, v);
    let params = LayoutParams {
        batch: u("batch", batch)?,
        channels: u("channels", channels)?,
        positions: u("H·W", h * w)?,
        total: u("B·C·H·W", total)?,
        height: u("H", h)?,
        width: u("W", w)?,
        block_h: u("block height", bh)?,
        block_w: u("block width", bw)?,
    };
    let shape = format!("{batch} x {channels} x {h} x {w}");
    launch(rec, entry, &params, total, total, &shape, src, dst)
}
