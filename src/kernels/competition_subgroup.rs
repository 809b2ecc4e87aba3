//! Launcher for `shaders/competition_subgroup.wgsl`: the row-wise competition with one
//! subgroup per row. `hebbian::competition` chooses it (`hebbian::CompetitionKernel`) and
//! fills the parameters; the modes and formulas are competition_modes.wgsl's.

use crate::error::{HebbError, Result};
use crate::gpu::{Recorder, Tensor, grid_1d};
use crate::kernels::hebbian::{CompetitionKernel, HebbParams};
use crate::kernels::{COMPETITION_SUBGROUP_WGSL, distinct_outputs, record_dispatch_with, to_u32};

/// Records the subgroup competition of U (N x C, `p.c` entries per row) with `teacher` (U
/// itself when the params' teacher flag is clear) into Y (`out0`) and G (`g`), one workgroup
/// of `CompetitionKernel::subgroup_width` invocations per row.
pub(crate) fn record(
    rec: &mut Recorder<'_>,
    p: &HebbParams,
    u: &Tensor,
    teacher: &Tensor,
    n: usize,
    out0: &Tensor,
    g: &Tensor,
) -> Result<()> {
    let ctx = rec.ctx;
    let Some(width) = CompetitionKernel::subgroup_width(ctx) else {
        return Err(HebbError::MissingFeature {
            what: "the subgroup competition kernel".into(),
            feature: "SUBGROUP (with subgroups of at least 4)",
            adapter: ctx.adapter_name(),
        });
    };
    distinct_outputs("competition_subgroup", &[u, teacher], &[out0, g])?;
    let groups = grid_1d(ctx, to_u32("competition_subgroup", "N", n)?);
    record_dispatch_with(
        rec,
        &COMPETITION_SUBGROUP_WGSL,
        "competition_subgroup",
        &[("WG", width as f64)],
        p,
        &[(1, u), (2, teacher), (4, out0), (5, g)],
        groups,
    )
}
