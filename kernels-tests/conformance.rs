//! Every foundation kernel against its float64 reference, once per backend.

use hebb::conformance::{Row, kernels as checks, print_table};
use hebb::gpu::GpuContext;

use crate::common;

fn assert_all_ok(ctx: &GpuContext, family: &str, seed: u64, rows: Vec<Row>) {
    assert!(!rows.is_empty(), "{family}: no checks ran");
    let failed: Vec<Row> = rows.iter().filter(|r| !r.ok).cloned().collect();
    if !failed.is_empty() {
        print_table(&failed);
        panic!(
            "{family} on {}: {} of {} checks failed (HEBB_SEED={seed} reproduces)",
            ctx.adapter_name(),
            failed.len(),
            rows.len()
        );
    }
    eprintln!(
        "{family} on {}: {} checks passed (seed {seed})",
        ctx.adapter_name(),
        rows.len()
    );
}

fn run_backend(backend: &str) {
    let Some(ctx) = common::context(backend) else {
        return;
    };
    let seed = common::seed();
    assert_all_ok(&ctx, "gemm", seed, checks::gemm_checks(&ctx, seed));
    assert_all_ok(&ctx, "im2col", seed, checks::im2col_checks(&ctx, seed));
    assert_all_ok(&ctx, "conv", seed, checks::conv_checks(&ctx, seed));
    assert_all_ok(
        &ctx,
        "classifier",
        seed,
        checks::classifier_checks(&ctx, seed),
    );
    assert_all_ok(&ctx, "reduce", seed, checks::reduce_checks(&ctx, seed));
    // The row-wise competitions, per-row kernel and (where SUBGROUP exists) subgroup kernel.
    assert_all_ok(
        &ctx,
        "competition",
        seed,
        hebb::conformance::rules::competition_checks(&ctx, seed),
    );
    assert_all_ok(
        &ctx,
        "projection_competition",
        seed,
        hebb::conformance::rules::projection_competition_checks(&ctx, seed),
    );
    assert_all_ok(
        &ctx,
        "elementwise",
        seed,
        checks::elementwise_checks(&ctx, seed),
    );
    if !ctx.has(wgpu::Features::SHADER_F16) {
        eprintln!(
            "note: {} has no SHADER_F16; only the packed f16 cast path was tested on it",
            ctx.adapter_name()
        );
    }
}

#[test]
fn conformance_vulkan() {
    run_backend("vulkan");
}

#[test]
fn conformance_gl() {
    run_backend("gl");
}

#[test]
fn conformance_metal() {
    run_backend("metal");
}

#[test]
fn conformance_dx12() {
    run_backend("dx12");
}
