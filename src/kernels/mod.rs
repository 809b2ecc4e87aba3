//! Launchers: one module per WGSL file of `shaders/`. Each launcher checks shapes, loads its
//! pipeline from the kernel cache, fills the `#[repr(C)]` parameter struct that mirrors the
//! shader's uniform, and records the dispatch into a `Recorder`.

pub mod classifier;
pub mod competition_subgroup;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod hebbian;
pub mod hebbian_naive;
pub mod im2col;
pub mod layout;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod projection_competition;
pub mod reduce;
pub mod sanger_scan;
pub mod spiking;

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Shader, Tensor};

pub const GEMM_WGSL: Shader = Shader {
    name: "gemm",
    // The update epilogues and the optimizer math they share with optim.wgsl come first, then
    // the tiled engine it shares with conv.wgsl.
    source: concat!(
        include_str!("../../shaders/weight_update.wgsl"),
        include_str!("../../shaders/gemm_epilogue.wgsl"),
        include_str!("../../shaders/gemm_tile_engine.wgsl"),
        include_str!("../../shaders/gemm.wgsl")
    ),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const GEMM_SUBGROUP_WGSL: Shader = Shader {
    name: "gemm_subgroup",
    source: concat!(
        include_str!("../../shaders/weight_update.wgsl"),
        include_str!("../../shaders/gemm_epilogue.wgsl"),
        include_str!("../../shaders/gemm_subgroup.wgsl")
    ),
    requires: wgpu::Features::SUBGROUP,
    launcher_checks_bounds: true,
};
pub const GEMM_COOP_WGSL: Shader = Shader {
    name: "gemm_coop",
    source: include_str!("../../shaders/gemm_coop.wgsl"),
    requires: wgpu::Features::SHADER_F16.union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
    // Never executed yet: no adapter hebb has run on offers cooperative matrices. Until the
    // kernel passes conformance on a real GPU (BENCHMARKS.md will record the day), naga keeps
    // its runtime bounds checks, whatever the launcher proves.
    launcher_checks_bounds: false,
};
pub const SPIKING_WGSL: Shader = Shader {
    name: "spiking",
    source: include_str!("../../shaders/spiking.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const REDUCE_WGSL: Shader = Shader {
    name: "reduce",
    source: include_str!("../../shaders/reduce.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const ELEMENTWISE_WGSL: Shader = Shader {
    name: "elementwise",
    source: include_str!("../../shaders/elementwise.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const CLASSIFIER_WGSL: Shader = Shader {
    name: "classifier",
    source: include_str!("../../shaders/classifier.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const HEBBIAN_WGSL: Shader = Shader {
    name: "hebbian",
    source: concat!(
        include_str!("../../shaders/competition_modes.wgsl"),
        include_str!("../../shaders/hebbian.wgsl")
    ),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const COMPETITION_SUBGROUP_WGSL: Shader = Shader {
    name: "competition_subgroup",
    source: concat!(
        include_str!("../../shaders/competition_modes.wgsl"),
        include_str!("../../shaders/competition_subgroup.wgsl")
    ),
    requires: wgpu::Features::SUBGROUP,
    launcher_checks_bounds: true,
};
pub const PROJECTION_COMPETITION_WGSL: Shader = Shader {
    name: "projection_competition",
    source: concat!(
        include_str!("../../shaders/competition_modes.wgsl"),
        include_str!("../../shaders/projection_competition.wgsl")
    ),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const HEBBIAN_NAIVE_WGSL: Shader = Shader {
    name: "hebbian_naive",
    source: include_str!("../../shaders/hebbian_naive.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const SANGER_SCAN_WGSL: Shader = Shader {
    name: "sanger_scan",
    source: include_str!("../../shaders/sanger_scan.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const OPTIM_WGSL: Shader = Shader {
    name: "optim",
    source: concat!(
        include_str!("../../shaders/weight_update.wgsl"),
        include_str!("../../shaders/optim.wgsl")
    ),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const NORM_WGSL: Shader = Shader {
    name: "norm",
    source: include_str!("../../shaders/norm.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const POOL_WGSL: Shader = Shader {
    name: "pool",
    source: include_str!("../../shaders/pool.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const IM2COL_WGSL: Shader = Shader {
    name: "im2col",
    source: include_str!("../../shaders/im2col.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const CONV_WGSL: Shader = Shader {
    name: "conv",
    // As gemm.wgsl: the update epilogues and their optimizer math, then the tiled engine.
    source: concat!(
        include_str!("../../shaders/weight_update.wgsl"),
        include_str!("../../shaders/gemm_epilogue.wgsl"),
        include_str!("../../shaders/gemm_tile_engine.wgsl"),
        include_str!("../../shaders/conv.wgsl")
    ),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const LAYOUT_WGSL: Shader = Shader {
    name: "layout",
    source: include_str!("../../shaders/layout.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const CAST_WGSL: Shader = Shader {
    name: "cast",
    source: include_str!("../../shaders/cast.wgsl"),
    requires: wgpu::Features::empty(),
    launcher_checks_bounds: true,
};
pub const CAST_F16_WGSL: Shader = Shader {
    name: "cast_f16",
    source: include_str!("../../shaders/cast_f16.wgsl"),
    requires: wgpu::Features::SHADER_F16,
    launcher_checks_bounds: true,
};

/// Every shader the library embeds (the naga test also walks `shaders/` on disk).
pub const ALL_SHADERS: &[Shader] = &[
    GEMM_WGSL,
    GEMM_SUBGROUP_WGSL,
    GEMM_COOP_WGSL,
    CLASSIFIER_WGSL,
    HEBBIAN_WGSL,
    COMPETITION_SUBGROUP_WGSL,
    PROJECTION_COMPETITION_WGSL,
    HEBBIAN_NAIVE_WGSL,
    SANGER_SCAN_WGSL,
    OPTIM_WGSL,
    IM2COL_WGSL,
    CONV_WGSL,
    LAYOUT_WGSL,
    NORM_WGSL,
    POOL_WGSL,
    REDUCE_WGSL,
    SPIKING_WGSL,
    ELEMENTWISE_WGSL,
    CAST_WGSL,
    CAST_F16_WGSL,
];

/// WGSL library files of `shaders/` (functions, structs and epilogue bindings, no entry point)
/// and the modules whose source starts with them, in this order (WGSL has no includes, so
/// `Shader::source` is the concatenation, made with `concat!` at build time).
pub const SHADER_LIBRARIES: &[(&str, &[&str])] = &[
    ("weight_update", &["gemm", "gemm_subgroup", "conv", "optim"]),
    ("gemm_epilogue", &["gemm", "gemm_subgroup", "conv"]),
    ("gemm_tile_engine", &["gemm", "conv"]),
    (
        "competition_modes",
        &["hebbian", "competition_subgroup", "projection_competition"],
    ),
];

/// Elements each invocation of the streaming passes over C x D (`signed_pow`, the optimizer
/// steps) handles, 256 apart within its workgroup's contiguous block. On llvmpipe one element
/// per invocation left these passes at about 1.3 GB/s (Krotov's 1.57 M-element signed_pow:
/// 9.7 ms; 8 per invocation: 5.3 ms, `hebb bench train krotov-mnist --profile`). Neighbouring
/// invocations still touch neighbouring elements, the layout GPUs coalesce (not measured on a
/// GPU here).
pub const ELEMENTS_PER_INVOCATION: usize = 8;

/// An f32 tensor of exactly `len` elements, or an error naming `role`.
pub(crate) fn need(t: &Tensor, len: usize, role: &str) -> Result<()> {
    t.expect_dtype(DType::F32, role)?;
    t.expect_len(len, role)
}

/// Outputs that alias no input and no other output, or an error naming them.
pub(crate) fn distinct_outputs(
    kernel: &str,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
) -> Result<()> {
    for o in outputs {
        for i in inputs {
            if i.buffer == o.buffer {
                return Err(HebbError::Launch {
                    kernel: kernel.into(),
                    message: format!("output {} must not also be an input", o.label),
                });
            }
        }
    }
    for (k, o) in outputs.iter().enumerate() {
        if let Some(other) = outputs[..k].iter().find(|p| p.buffer == o.buffer) {
            return Err(HebbError::Launch {
                kernel: kernel.into(),
                message: format!(
                    "outputs {} and {} must be different tensors",
                    other.label, o.label
                ),
            });
        }
    }
    Ok(())
}

/// Bind group 0 of `pipeline` from (binding, resource) pairs.
pub(crate) fn bind_group(
    ctx: &GpuContext,
    pipeline: &wgpu::ComputePipeline,
    entries: &[(u32, wgpu::BindingResource<'_>)],
) -> wgpu::BindGroup {
    ctx.bind_groups.get(&ctx.device, pipeline, entries)
}

/// Records one dispatch of `shader::entry` (no overrides) with `params` as the uniform at
/// binding 0 and `tensors` at their bindings, over `groups` workgroups (checked against the
/// adapter's per-dimension limit). The launch tail every simple launcher shares.
pub(crate) fn record_dispatch<P: bytemuck::Pod>(
    rec: &mut crate::gpu::Recorder<'_>,
    shader: &Shader,
    entry: &'static str,
    params: &P,
    tensors: &[(u32, &crate::gpu::Tensor)],
    groups: [u32; 3],
) -> Result<()> {
    record_dispatch_with(rec, shader, entry, &[], params, tensors, groups)
}

/// `record_dispatch` with override constants.
pub(crate) fn record_dispatch_with<P: bytemuck::Pod>(
    rec: &mut crate::gpu::Recorder<'_>,
    shader: &Shader,
    entry: &'static str,
    overrides: &[(&'static str, f64)],
    params: &P,
    tensors: &[(u32, &crate::gpu::Tensor)],
    groups: [u32; 3],
) -> Result<()> {
    let ctx = rec.ctx;
    let pipeline = ctx
        .kernels
        .get(&ctx.device, ctx.features, shader, entry, overrides)?;
    check_grid(ctx, entry, groups)?;
    let uniform = rec.uniform(params);
    let mut entries = vec![(0, uniform.as_entire_binding())];
    for (slot, t) in tensors {
        entries.push((*slot, t.binding(ctx)?));
    }
    let bg = bind_group(ctx, &pipeline, &entries);
    rec.dispatch(&pipeline, &bg, groups);
    Ok(())
}

/// Refuses a launch whose invocations would loop `iterations` times where the driver cuts
/// loops short (`GpuContext::loop_iteration_limit`, llvmpipe), instead of letting it return
/// silently truncated results. `work` says what the loop walks, for the message.
pub(crate) fn check_loop_budget(
    ctx: &GpuContext,
    kernel: &str,
    iterations: u64,
    work: &str,
) -> Result<()> {
    match ctx.loop_iteration_limit() {
        Some(limit) if iterations > limit => Err(HebbError::Launch {
            kernel: kernel.into(),
            message: format!(
                "{work} takes about {iterations} loop iterations per invocation; {} stops every \
                 loop of an invocation after {limit} in all, which would silently truncate the \
                 result (use a smaller batch, or a GPU)",
                ctx.adapter_name()
            ),
        }),
        _ => Ok(()),
    }
}

/// A size as the u32 the shaders index with, or an error naming the kernel and the value.
pub(crate) fn to_u32(kernel: &str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| HebbError::Launch {
        kernel: kernel.into(),
        message: format!("{what} = {v} does not fit the kernel's 32-bit indices"),
    })
}

/// Errors if a dispatch dimension exceeds the adapter's per-dimension workgroup limit.
pub(crate) fn check_grid(ctx: &GpuContext, kernel: &str, groups: [u32; 3]) -> Result<()> {
    let max = ctx.limits.max_compute_workgroups_per_dimension;
    if groups.iter().any(|&g| g > max) {
        return Err(HebbError::Launch {
            kernel: kernel.into(),
            message: format!(
                "needs a grid of {groups:?} workgroups, but this adapter allows {max} per dimension"
            ),
        });
    }
    Ok(())
}
