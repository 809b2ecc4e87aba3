//! Launchers for `shaders/reduce.wgsl`: row and column reductions (sum, max, max |x|) of a
//! row-major [rows, cols] f32 matrix, and a global max |x| over a whole tensor.
//! Bindings: 0 uniform ReduceParams, 1 x: array<f32> (read), 2 out: array<f32> (written).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use serde::Serialize;

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{REDUCE_WGSL, bind_group, check_grid, to_u32};

/// Mirrors `ReduceParams` in reduce.wgsl (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ReduceParams {
    pub rows: u32,
    pub cols: u32,
    pub op: u32,
    pub rows_per_chunk: u32,
    pub offset: u32,
    pub len: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReduceOp {
    Sum,
    Max,
    AbsMax,
    /// Σ x².
    SumSquares,
    /// Σ |x|.
    SumAbs,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 5] = [
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::AbsMax,
        ReduceOp::SumSquares,
        ReduceOp::SumAbs,
    ];

    fn code(self) -> u32 {
        match self {
            ReduceOp::Sum => 0,
            ReduceOp::Max => 1,
            ReduceOp::AbsMax => 2,
            ReduceOp::SumSquares => 3,
            ReduceOp::SumAbs => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::AbsMax => "absmax",
            ReduceOp::SumSquares => "sumsq",
            ReduceOp::SumAbs => "sumabs",
        }
    }

    pub fn is_sum(self) -> bool {
        !matches!(self, ReduceOp::Max | ReduceOp::AbsMax)
    }

    /// The op that combines partial results of this op.
    fn combine_op(self) -> ReduceOp {
        if self.is_sum() {
            ReduceOp::Sum
        } else {
            ReduceOp::Max
        }
    }
}

/// Rows one column-reduce workgroup covers before the partials are reduced again.
const COL_CHUNK_ROWS: usize = 256;
/// Elements per row when a whole tensor is reduced as [chunks, GLOBAL_CHUNK].
const GLOBAL_CHUNK: usize = 4096;

fn check_matrix(kernel: &str, x: &Tensor, rows: usize, cols: usize) -> Result<()> {
    x.expect_dtype(DType::F32, "x")?;
    if rows == 0 || cols == 0 {
        return Err(HebbError::Launch {
            kernel: kernel.into(),
            message: format!("rows and cols must be at least 1 (got {rows} x {cols})"),
        });
    }
    x.expect_len(rows * cols, &format!("x ({rows} x {cols})"))
}

fn distinct(kernel: &str, x: &Tensor, out: &Tensor) -> Result<()> {
    if x.buffer == out.buffer {
        return Err(HebbError::Launch {
            kernel: kernel.into(),
            message: format!("the output must not be the input tensor ({})", x.label),
        });
    }
    Ok(())
}

fn record_row_reduce(
    rec: &mut Recorder<'_>,
    op: ReduceOp,
    x: &Tensor,
    rows: usize,
    cols: usize,
    len: usize,
    out: &Tensor,
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    let pipeline = ctx
        .kernels
        .get(&ctx.device, ctx.features, &REDUCE_WGSL, "row_reduce", &[])?;
    let params = ReduceParams {
        rows: to_u32("row_reduce", "rows", rows)?,
        cols: to_u32("row_reduce", "cols", cols)?,
        op: op.code(),
        rows_per_chunk: 0,
        offset: 0,
        len: to_u32("row_reduce", "len", len)?,
        _pad0: 0,
        _pad1: 0,
    };
    let groups = grid_1d(ctx, params.rows);
    check_grid(ctx, "row_reduce", groups)?;
    let uniform = rec.uniform(&params);
    let bg = bind_group(
        ctx,
        &pipeline,
        &[
            (0, uniform.as_entire_binding()),
            (1, x.binding(ctx)?),
            (2, out.binding(ctx)?),
        ],
    );
    rec.dispatch(&pipeline, &bg, groups);
    Ok(())
}

/// out[r] = op over c of x[r, c]; x is [rows, cols], out has at least `rows` elements.
pub fn row_reduce(
    rec: &mut Recorder<'_>,
    op: ReduceOp,
    x: &Tensor,
    rows: usize,
    cols: usize,
    out: &Tensor,
) -> Result<()> {
    check_matrix("row_reduce", x, rows, cols)?;
    distinct("row_reduce", x, out)?;
    out.expect_dtype(DType::F32, "out")?;
    out.expect_len(rows, "row_reduce output")?;
    record_row_reduce(rec, op, x, rows, cols, rows * cols, out)
}

/// out[c] = op over r of x[r, c]; x is [rows, cols], out has at least `cols` elements.
/// Tall inputs are reduced in chunks of rows, then the chunk results are reduced again.
pub fn col_reduce(
    rec: &mut Recorder<'_>,
    op: ReduceOp,
    x: &Tensor,
    rows: usize,
    cols: usize,
    out: &Tensor,
) -> Result<()> {
    col_reduce_impl(rec, op.code(), op.combine_op(), x, None, rows, cols, out)
}

/// out[c] = Σ_r x[r, c] · x2[r, c] (x and x2 of the same shape).
pub fn col_dot(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    x2: &Tensor,
    rows: usize,
    cols: usize,
    out: &Tensor,
) -> Result<()> {
    check_matrix("col_dot", x2, rows, cols)?;
    distinct("col_dot", x2, out)?;
    col_reduce_impl(rec, 4, ReduceOp::Sum, x, Some(x2), rows, cols, out)
}

#[allow(clippy::too_many_arguments)]
fn col_reduce_impl(
    rec: &mut Recorder<'_>,
    code: u32,
    combine: ReduceOp,
    x: &Tensor,
    x2: Option<&Tensor>,
    rows: usize,
    cols: usize,
    out: &Tensor,
) -> Result<()> {
    check_matrix("col_reduce", x, rows, cols)?;
    distinct("col_reduce", x, out)?;
    out.expect_dtype(DType::F32, "out")?;
    out.expect_len(cols, "col_reduce output")?;
    let ctx = rec.ctx;
    let pipeline = ctx
        .kernels
        .get(&ctx.device, ctx.features, &REDUCE_WGSL, "col_reduce", &[])?;
    let chunks = rows.div_ceil(COL_CHUNK_ROWS);
    let partials;
    let target = if chunks == 1 {
        out
    } else {
        // The context's workspace (no allocation per launch), unless this pass reads it: the
        // second pass over more than COL_CHUNK_ROWS chunks.
        let workspace = ctx.workspace(chunks * cols)?;
        let reads_it = [Some(x), x2, Some(out)]
            .into_iter()
            .flatten()
            .any(|t| t.buffer == workspace.buffer);
        partials = if reads_it {
            Arc::new(Tensor::empty(
                ctx,
                "col_reduce partials",
                &[chunks, cols],
                DType::F32,
            )?)
        } else {
            workspace
        };
        &*partials
    };
    let params = ReduceParams {
        rows: to_u32("col_reduce", "rows", rows)?,
        cols: to_u32("col_reduce", "cols", cols)?,
        op: code,
        rows_per_chunk: COL_CHUNK_ROWS as u32,
        offset: 0,
        len: to_u32("col_reduce", "len", rows * cols)?,
        _pad0: 0,
        _pad1: 0,
    };
    let groups = [
        to_u32("col_reduce", "cols / 16", cols.div_ceil(16))?,
        to_u32("col_reduce", "chunks", chunks)?,
        1,
    ];
    check_grid(ctx, "col_reduce", groups)?;
    let uniform = rec.uniform(&params);
    let bg = bind_group(
        ctx,
        &pipeline,
        &[
            (0, uniform.as_entire_binding()),
            (1, x.binding(ctx)?),
            (2, target.binding(ctx)?),
            (3, x2.unwrap_or(x).binding(ctx)?),
        ],
    );
    rec.dispatch(&pipeline, &bg, groups);
    if chunks > 1 {
        col_reduce(rec, combine, target, chunks, cols, out)?;
    }
    Ok(())
}

/// out[0] = op over every element of x (used for max |x| normalisation).
pub fn global_reduce(rec: &mut Recorder<'_>, op: ReduceOp, x: &Tensor, out: &Tensor) -> Result<()> {
    x.expect_dtype(DType::F32, "x")?;
    out.expect_dtype(DType::F32, "out")?;
    out.expect_len(1, "global_reduce output")?;
    distinct("global_reduce", x, out)?;
    let len = x.len();
    if len == 0 {
        return Err(HebbError::Launch {
            kernel: "global_reduce".into(),
            message: format!("tensor {} is empty", x.label),
        });
    }
    let chunks = len.div_ceil(GLOBAL_CHUNK);
    if chunks == 1 {
        return record_row_reduce(rec, op, x, 1, len, len, out);
    }
    let partials = Tensor::empty(rec.ctx, "global_reduce partials", &[chunks], DType::F32)?;
    record_row_reduce(rec, op, x, chunks, GLOBAL_CHUNK, len, &partials)?;
    global_reduce(rec, op.combine_op(), &partials, out)
}
