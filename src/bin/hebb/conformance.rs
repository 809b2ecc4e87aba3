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
    /// Seed of the random inputs (default: a fresh one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
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
    } = args;
    if cases.is_empty() {
        conformance(&adapter.choice()?, seed, json.as_deref(), only.as_deref())
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
