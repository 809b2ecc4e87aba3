//! Launcher for `shaders/layout.wgsl`: between the rows layout ((B·P) x C, what X·Wᵀ over an
//! im2col matrix gives) and the planes layout ((B, C, P), NCHW).
//! Bindings: 0 uniform LayoutParams, 1 source (read), 2 destination.

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, Recorder, Tensor, grid_1d};
use crate::kernels::{LAYOUT_WGSL, record_dispatch, to_u32};

/// Mirrors `LayoutParams` in layout.wgsl (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LayoutParams {
    pub batch: u32,
    pub channels: u32,
    pub positions: u32,
    pub total: u32,
}

/// Which way to convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    RowsToPlanes,
    PlanesToRows,
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
    for (t, role) in [(src, "source"), (dst, "destination")] {
        t.expect_dtype(DType::F32, role)?;
        t.expect_len(
            total,
            &format!("{entry} {role} ({batch} x {channels} x {positions})"),
        )?;
    }
    if src.buffer == dst.buffer {
        return Err(HebbError::Launch {
            kernel: entry.into(),
            message: "source and destination must be different tensors".into(),
        });
    }
    let params = LayoutParams {
        batch: to_u32(entry, "batch", batch)?,
        channels: to_u32(entry, "channels", channels)?,
        positions: to_u32(entry, "positions", positions)?,
        total: to_u32(entry, "B·C·P", total)?,
    };
    let groups = grid_1d(
        rec.ctx,
        to_u32(entry, "elements / 256", total.div_ceil(256))?,
    );
    record_dispatch(
        rec,
        &LAYOUT_WGSL,
        entry,
        &params,
        &[(1, src), (2, dst)],
        groups,
    )
}
