//! `hebb conformance`: every kernel family against its float64 reference, or the golden cases.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use hebb::conformance;
use hebb::gpu::{AdapterChoice, GpuContext, feature_names};

use crate::{AdapterArgs, fresh_seed, write_json};

#[derive(Args)]
pub struct ConformanceArgs {
    /// Seed of the random inputs (default: a fresh one, printed). Every row carries the seed
    /// that reproduces it.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run every check on N seeds (the first is `--seed`, the others are derived from it)
    /// and print each check's worst run: its error, the share of its tolerance it used, how
    /// many runs failed, and the seed that reproduces it. One seed can miss a check that sits
    /// close to its tolerance on this device.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000),
          conflicts_with = "cases")]
    pub repeat: u32,
    /// Also write the table as a JSON array to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Only these conformance families, a comma list (`--only list` names them all).
    #[arg(long)]
    pub only: Option<String>,
    /// Check every hebb-case/1 and hebb-spiking-case/1 file under DIR instead (repeatable).
    /// Each case runs on the GPU (f32) and with the float64 reference; one row per case,
    /// variant and tensor.
    #[arg(long, value_name = "DIR")]
    pub cases: Vec<PathBuf>,
}

pub fn run(adapter: &AdapterArgs, args: ConformanceArgs) -> Result<ExitCode> {
    let ConformanceArgs {
        seed,
        json,
        only,
        cases,
        repeat,
    } = args;
    if cases.is_empty() {
        conformance(
            &adapter.choice()?,
            seed,
            repeat,
            json.as_deref(),
            only.as_deref(),
        )
    } else {
        case_conformance(&adapter.choice()?, &cases, json.as_deref())
    }
}

fn case_conformance(
    choice: &AdapterChoice,
    dirs: &[PathBuf],
    json: Option<&Path>,
) -> Result<ExitCode> {
    let ctx = GpuContext::new(choice)?;
    println!("adapter: {}", ctx.adapter_name());
    let mut rows = Vec::new();
    for dir in dirs {
        rows.extend(conformance::cases::case_rows(Some(&ctx), dir));
    }
    conformance::cases::print_case_table(&rows);
    if let Some(path) = json {
        write_json(path, &rows)?;
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!("cases: {} passed, {failed} failed", rows.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn conformance(
    choice: &AdapterChoice,
    seed: Option<u64>,
    repeat: u32,
    json: Option<&Path>,
    only: Option<&str>,
) -> Result<ExitCode> {
    if only == Some("list") {
        for family in conformance::FAMILIES {
            println!("{:<24} {}", family.name, family.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    conformance::select(only).map_err(|e| anyhow::anyhow!("--only: {e}"))?;
    let ctx = GpuContext::new(choice)?;
    let seed = seed.unwrap_or_else(fresh_seed);
    println!(
        "adapter: {}  features: [{}]  {}  seed: {seed}",
        ctx.adapter_name(),
        feature_names(ctx.features).join(", "),
        ctx.settings()
    );
    if repeat > 1 {
        return repeated(&ctx, seed, repeat, json, only);
    }
    let rows = conformance::run(&ctx, seed, only).map_err(|e| anyhow::anyhow!("--only: {e}"))?;
    conformance::print_table(&rows);
    if let Some(path) = json {
        write_json(path, &rows)?;
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!(
        "conformance: {} passed, {failed} failed (seed {seed})",
        rows.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--repeat N`: the checks on `first`, then on N − 1 seeds derived from it; a line per run,
/// then each check's worst run.
fn repeated(
    ctx: &GpuContext,
    first: u64,
    repeat: u32,
    json: Option<&Path>,
    only: Option<&str>,
) -> Result<ExitCode> {
    let mut worst = conformance::WorstOverRuns::default();
    for i in 0..repeat {
        let seed = if i == 0 {
            first
        } else {
            conformance::derive_seed(first, i as u64)
        };
        let rows = conformance::run(ctx, seed, only).map_err(|e| anyhow::anyhow!("--only: {e}"))?;
        let failed = rows.iter().filter(|r| !r.ok).count();
        println!(
            "run {}/{repeat}, seed {seed}: {} passed, {failed} failed",
            i + 1,
            rows.len() - failed
        );
        worst.add(rows);
    }
    let worst = worst.rows();
    conformance::print_worst_table(worst);
    if let Some(path) = json {
        write_json(path, &worst)?;
    }
    let failing = worst.iter().filter(|w| w.failed > 0).count();
    let closest = worst
        .iter()
        .filter(|w| w.failed == 0)
        .max_by(|a, b| a.tol_share.total_cmp(&b.tol_share));
    println!(
        "conformance over {repeat} seeds: {} checks passed on every seed, {failing} failed on \
         some{}",
        worst.len() - failing,
        closest.map_or(String::new(), |w| format!(
            "; the closest to its tolerance: {} {} {} at {:.3} of it (--seed {})",
            w.worst.kernel,
            w.worst.variant,
            w.worst.shape_text(),
            w.tol_share,
            w.worst.seed
        ))
    );
    Ok(if failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
