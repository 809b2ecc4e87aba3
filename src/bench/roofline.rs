//! `hebb bench roofline`: this adapter's ceilings, measured here, and every timed kernel as a
//! fraction of them.
//!
//! - Compute ceiling: the best GEMM rate over every configuration `hebb tune` knows
//!   (`GemmTiles::tune_candidates`) on a large square product (2048³; 1024³ on CPU adapters).
//! - Memory ceiling: copy bandwidth of a large f32 buffer by the elementwise copy kernel
//!   (bytes = read + write).
//!
//! Each kernel row then gets its arithmetic intensity I = FLOPs / compulsory bytes, its
//! attainable rate min(compute ceiling, I · bandwidth), and its GFLOP/s and GB/s as
//! fractions of the ceilings and of that attainable rate.

use serde::Serialize;

use crate::bench::rules::RuleBenchRow;
use crate::bench::{BenchBudget, BenchRow, time_launch};
use crate::conformance::random_f32;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTimer, Tensor};
use crate::kernels::elementwise;
use crate::kernels::gemm::{self, Gemm, GemmTiles};

#[derive(Clone, Debug, Serialize)]
pub struct Ceilings {
    pub gemm_gflops: f64,
    pub gemm_config: String,
    pub gemm_size: usize,
    pub copy_gbps: f64,
    pub copy_bytes: usize,
    pub adapter: String,
}

/// Measures the two ceilings on this adapter.
pub fn measure_ceilings(
    ctx: &GpuContext,
    timer: &GpuTimer,
    budget: BenchBudget,
) -> Result<Ceilings> {
    let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
    let size = if cpu { 1024 } else { 2048 };
    let a = Tensor::from_f32(ctx, "A", &[size, size], &random_f32(1, size * size))?;
    let b = Tensor::from_f32(ctx, "B", &[size, size], &random_f32(2, size * size))?;
    let c = Tensor::from_f32(ctx, "C", &[size, size], &random_f32(3, size * size))?;
    let mut best = (0.0f64, String::new());
    for t in GemmTiles::tune_candidates(ctx) {
        let g = Gemm::new(size, size, size).tiles(t);
        let (s, _) = time_launch(ctx, timer, budget, |rec| gemm::gemm(rec, &g, &a, &b, &c))?;
        let rate = g.flops() / s * 1e-9;
        if rate > best.0 {
            best = (rate, t.label());
        }
    }
    // 64 MiB on CPU adapters; on GPUs the largest buffer one binding allows, up to 256 MiB.
    let max_binding = ctx.limits.max_storage_buffer_binding_size as usize / 4;
    let elements = if cpu {
        16 << 20
    } else {
        (64 << 20).min(max_binding)
    };
    let src = Tensor::from_f32(ctx, "src", &[elements], &random_f32(4, elements))?;
    let dst = Tensor::from_f32(ctx, "dst", &[elements], &random_f32(5, elements))?;
    let (s, _) = time_launch(ctx, timer, budget, |rec| elementwise::copy(rec, &src, &dst))?;
    let bytes = 8 * elements;
    Ok(Ceilings {
        gemm_gflops: best.0,
        gemm_config: best.1,
        gemm_size: size,
        copy_gbps: bytes as f64 / s * 1e-9,
        copy_bytes: bytes,
        adapter: ctx.adapter_name(),
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct RooflineRow {
    pub kernel: String,
    pub variant: String,
    pub shape: String,
    pub gflops: f64,
    pub gbps: f64,
    /// FLOPs per compulsory byte.
    pub intensity: f64,
    /// `compute` when I · bandwidth exceeds the compute ceiling, else `memory`.
    pub bound: &'static str,
    pub fraction_of_gemm_peak: f64,
    pub fraction_of_copy_bw: f64,
    /// GFLOP/s over min(compute ceiling, I · bandwidth).
    pub fraction_of_attainable: f64,
}

/// Places a timed kernel (its FLOPs and compulsory bytes per launch, median seconds) under the
/// ceilings.
pub fn place(
    ceilings: &Ceilings,
    kernel: &str,
    variant: &str,
    shape: String,
    flops: f64,
    bytes: f64,
    seconds: f64,
) -> RooflineRow {
    let gflops = flops / seconds * 1e-9;
    let gbps = bytes / seconds * 1e-9;
    let intensity = flops / bytes;
    let memory_roof = intensity * ceilings.copy_gbps;
    let (bound, attainable) = if memory_roof < ceilings.gemm_gflops {
        ("memory", memory_roof)
    } else {
        ("compute", ceilings.gemm_gflops)
    };
    RooflineRow {
        kernel: kernel.into(),
        variant: variant.into(),
        shape,
        gflops,
        gbps,
        intensity,
        bound,
        fraction_of_gemm_peak: gflops / ceilings.gemm_gflops,
        fraction_of_copy_bw: gbps / ceilings.copy_gbps,
        fraction_of_attainable: gflops / attainable,
    }
}

/// A `bench gemm` row under the ceilings.
pub fn place_gemm(ceilings: &Ceilings, r: &BenchRow) -> RooflineRow {
    let shape = format!("{}x{}x{}", r.shape["m"], r.shape["n"], r.shape["k"]);
    let flops = r.gflops * 1e9 * r.median_s;
    let bytes = r.gbps * 1e9 * r.median_s;
    place(
        ceilings, &r.kernel, &r.variant, shape, flops, bytes, r.median_s,
    )
}

/// A fused `bench rules` step under the ceilings. Its compulsory traffic is X (N x D) read
/// once and W (C x D) read and written.
pub fn place_rule(ceilings: &Ceilings, r: &RuleBenchRow) -> RooflineRow {
    let (n, c, d) = (r.shape["n"], r.shape["c"], r.shape["d"]);
    let bytes = 4.0 * (n * d + 2 * c * d) as f64;
    let flops = r.gflops * 1e9 * r.median_s;
    place(
        ceilings,
        "rule_step",
        &format!("{} {}", r.preset, r.label),
        format!("{n}x{c}x{d}"),
        flops,
        bytes,
        r.median_s,
    )
}

/// The roofline as a PNG: log10 axes, FLOPs per byte against GFLOP/s, the roof
/// min(compute ceiling, I · bandwidth) dashed, each kind of kernel in its own colour.
pub fn write_png(path: &std::path::Path, ceilings: &Ceilings, rows: &[RooflineRow]) -> Result<()> {
    let (lo, hi) = rows
        .iter()
        .map(|r| r.intensity)
        .filter(|i| i.is_finite() && *i > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), i| {
            (lo.min(i), hi.max(i))
        });
    let ridge = ceilings.gemm_gflops / ceilings.copy_gbps;
    // The roof spans the kernels and the ridge point, a decade either side at most.
    let (x0, x1) = (lo.min(ridge) / 2.0, hi.max(ridge) * 2.0);
    let mut series = vec![crate::plot::Series {
        label: format!(
            "roof: {:.1} GFLOP/s, {:.1} GB/s",
            ceilings.gemm_gflops, ceilings.copy_gbps
        ),
        points: vec![
            (x0, x0 * ceilings.copy_gbps),
            (ridge, ceilings.gemm_gflops),
            (x1, ceilings.gemm_gflops),
        ],
        mark: crate::plot::Mark::Dashed,
        colour: 6,
    }];
    let mut kinds: Vec<&str> = rows.iter().map(|r| r.kernel.as_str()).collect();
    kinds.dedup();
    for (colour, kind) in kinds.into_iter().enumerate() {
        series.push(crate::plot::Series {
            label: kind.to_string(),
            points: rows
                .iter()
                .filter(|r| r.kernel == kind)
                .map(|r| (r.intensity, r.gflops))
                .collect(),
            mark: crate::plot::Mark::Dots,
            colour,
        });
    }
    crate::plot::write_png(
        path,
        &[crate::plot::Panel {
            title: format!("roofline on {}", ceilings.adapter),
            x_label: "arithmetic intensity (FLOP per compulsory byte)".into(),
            y_label: "GFLOP/s".into(),
            log_x: true,
            log_y: true,
            series,
            ..Default::default()
        }],
    )
}

pub fn print_ceilings(c: &Ceilings) {
    println!(
        "ceilings on {}: GEMM {:.2} GFLOP/s ({} at {}³), copy {:.2} GB/s ({} MiB read + written)",
        c.adapter,
        c.gemm_gflops,
        c.gemm_config,
        c.gemm_size,
        c.copy_gbps,
        c.copy_bytes >> 21
    );
}

pub fn print_rows(rows: &[RooflineRow]) {
    println!(
        "{:<10} {:<34} {:<18} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7}",
        "kernel", "variant", "shape", "GFLOP/s", "GB/s", "FLOP/B", "bound", "%peak", "%bw", "%roof"
    );
    for r in rows {
        println!(
            "{:<10} {:<34} {:<18} {:>9.2} {:>8.2} {:>8.1} {:>8} {:>6.1}% {:>6.1}% {:>6.1}%",
            r.kernel,
            r.variant,
            r.shape,
            r.gflops,
            r.gbps,
            r.intensity,
            r.bound,
            100.0 * r.fraction_of_gemm_peak,
            100.0 * r.fraction_of_copy_bw,
            100.0 * r.fraction_of_attainable
        );
    }
}
