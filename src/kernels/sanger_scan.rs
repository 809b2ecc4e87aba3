//! Launcher for `shaders/sanger_scan.wgsl`: Sanger's ΔW = s·(GᵀX − tril(GᵀG)·W) by a running
//! reconstruction, 2·N·C·D multiply-adds, for batches of fewer rows than the layer has
//! neurons (`DevicePolicy::sanger_by_scan` decides where). Bindings: 0 uniform ScanParams,
//! 1 G (N x C), 2 X (N x D), 3 W (C x D), 4 the reconstruction R (N x D, scratch), 5 ΔW (C x D).

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{
    SANGER_SCAN_WGSL, check_loop_budget, distinct_outputs, need, record_dispatch, to_u32,
};

/// Mirrors `ScanParams` in sanger_scan.wgsl (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ScanParams {
    pub n: u32,
    pub c: u32,
    pub d: u32,
    pub i0: u32,
    pub i1: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
    pub s: f32,
    pub _pad3: f32,
    pub _pad4: f32,
    pub _pad5: f32,
}

/// Rows the kernel keeps in registers per chunk (`ROWS` in the shader).
const ROWS: u64 = 8;

/// Loop iterations of one invocation over `n` rows and `neurons` neurons: per chunk of rows,
/// two loads and a store of ROWS, and per neuron one step over ROWS rows.
pub fn scan_iterations(n: usize, neurons: usize) -> u64 {
    let chunks = (n as u64).div_ceil(ROWS);
    chunks * (1 + 3 * ROWS + neurons as u64 * (1 + ROWS))
}

/// Neurons per dispatch: all of them, or where the driver cuts loops short (llvmpipe) as many
/// as its budget allows (at least one).
pub fn neurons_per_dispatch(ctx: &GpuContext, n: usize, c: usize) -> usize {
    match ctx.loop_iteration_limit() {
        None => c,
        Some(limit) => {
            let mut block = c;
            while block > 1 && scan_iterations(n, block) > limit {
                block = block.div_ceil(2);
            }
            block
        }
    }
}

/// Records ΔW = s·(GᵀX − tril(GᵀG)·W) into `dw`, using `recon` (N x D) as scratch.
#[allow(clippy::too_many_arguments)]
pub fn sanger_scan(
    rec: &mut Recorder<'_>,
    g: &Tensor,
    x: &Tensor,
    w: &Tensor,
    recon: &Tensor,
    dw: &Tensor,
    n: usize,
    c: usize,
    d: usize,
    s: f32,
) -> Result<()> {
    let ctx: &GpuContext = rec.ctx;
    if n == 0 || c == 0 || d == 0 {
        return Err(crate::error::HebbError::Launch {
            kernel: "sanger_scan".into(),
            message: format!("empty shape: {n} rows, {c} neurons, {d} inputs"),
        });
    }
    need(g, n * c, "G")?;
    need(x, n * d, "X")?;
    need(w, c * d, "W")?;
    need(recon, n * d, "reconstruction")?;
    need(dw, c * d, "ΔW")?;
    distinct_outputs("sanger_scan", &[g, x, w], &[recon, dw])?;
    let block = neurons_per_dispatch(ctx, n, c);
    let work = format!("Sanger's scan over {n} rows, {block} neurons at a time");
    check_loop_budget(ctx, "sanger_scan", scan_iterations(n, block), &work)?;
    let u = |what: &str, v: usize| to_u32("sanger_scan", what, v);
    let groups = grid_1d(ctx, u("columns / 64", d.div_ceil(64))?);
    let mut i0 = 0;
    while i0 < c {
        let i1 = (i0 + block).min(c);
        let params = ScanParams {
            n: u("N", n)?,
            c: u("C", c)?,
            d: u("D", d)?,
            i0: u("i0", i0)?,
            i1: u("i1", i1)?,
            s,
            ..Default::default()
        };
        record_dispatch(
            rec,
            &SANGER_SCAN_WGSL,
            "sanger_scan",
            &params,
            &[(1, g), (2, x), (3, w), (4, recon), (5, dw)],
            groups,
        )?;
        i0 = i1;
    }
    Ok(())
}
