//! The `hebb` command line. One module per command: `info`, `conformance`, `train` (with
//! `eval` and `filters`), `spiking`, `bench` (with `tune`) and `data`; this file parses the
//! arguments, opens nothing itself and prints errors.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use hebb::gpu::context::LimitsChoice;
use hebb::gpu::{AdapterChoice, PolicyKind};

mod bench;
mod conformance;
mod data;
mod info;
mod spiking;
mod train;

#[derive(Parser)]
#[command(
    name = "hebb",
    version,
    about = "GPU kernels for batched Hebbian learning"
)]
struct Cli {
    #[command(flatten)]
    adapter: AdapterArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
pub struct AdapterArgs {
    /// Backend: vulkan, metal, dx12 or gl (default: WGPU_BACKEND, else all).
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Adapter index (as `hebb info` lists them) or name substring (default: WGPU_ADAPTER_NAME,
    /// else the best adapter).
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Device policy, every device-dependent kernel choice: gpu or cpu (default: HEBB_POLICY,
    /// else the adapter's device type). `hebb info` prints what each one chooses.
    #[arg(long, global = true, value_parser = ["gpu", "cpu"])]
    policy: Option<String>,
    /// Device limits to request: adapter (all it offers) or webgpu (WebGPU's defaults: 16 KiB
    /// workgroup storage, 256 invocations, 128 MiB bindings). Default: HEBB_LIMITS, else adapter.
    #[arg(long, global = true, value_parser = ["adapter", "webgpu"])]
    limits: Option<String>,
}

impl AdapterArgs {
    pub fn choice(&self) -> Result<AdapterChoice> {
        Ok(AdapterChoice {
            backend: self.backend.clone(),
            adapter: self.adapter.clone(),
            policy: self.policy.as_deref().map(PolicyKind::parse).transpose()?,
            limits: self
                .limits
                .as_deref()
                .map(LimitsChoice::parse)
                .transpose()?,
        })
    }
}

impl AdapterArgs {
    /// The adapter of this process: in a process group of several ranks, the GPU of its
    /// local rank on the node (`AdapterChoice::for_local_rank`).
    pub fn choice_in(&self, group: &dyn hebb::dist::Collective) -> Result<AdapterChoice> {
        let choice = self.choice()?;
        if group.size() == 1 {
            return Ok(choice);
        }
        Ok(choice.for_local_rank(group.local_rank(), group.local_size())?)
    }
}

/// A command's result in a process group: an error on one rank ends the whole job (printed
/// with the rank), instead of leaving the other ranks waiting in their next collective.
pub fn end_job_on_error(
    group: &dyn hebb::dist::Collective,
    result: Result<ExitCode>,
) -> Result<ExitCode> {
    match result {
        Err(e) if group.size() > 1 => {
            // One write(2) for the whole line: `eprintln!` writes each piece of its format
            // separately to the unbuffered stderr, and a launcher that tears the job down on
            // the abort may forward only the first pieces (seen under Open MPI 4.1: the line
            // stopped after "error (rank ").
            let line = format!(
                "error (rank {} of {}; ending the job): {}\n",
                group.rank(),
                group.size(),
                error_text(&e)
            );
            let mut stderr = std::io::stderr().lock();
            let _ = stderr
                .write_all(line.as_bytes())
                .and_then(|()| stderr.flush());
            group.abort(1)
        }
        other => other,
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter: backend, device type, driver, optional features, key limits and
    /// the device policy it gets.
    Info,
    /// Check every kernel against its float64 reference on the selected adapter.
    Conformance(conformance::ConformanceArgs),
    /// Time kernels.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Time every GEMM and conv kernel configuration on the shapes of RECIPEs (default: a
    /// square product and Lagani's conv2) and cache the fastest per shape class for this
    /// adapter and driver; later runs use them.
    Tune(bench::TuneArgs),
    /// Dataset tools.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Simulate a neuronal culture on a multi-electrode array learning MNIST digits by STDP
    /// (SpikingGrid): train on the recipe's training pool, keep the best weights by
    /// validation, report the test accuracy. Writes metrics.json, checkpoint.safetensors,
    /// raster.png, input_weights.png and validation.png (the validation curve).
    Spiking(spiking::SpikingArgs),
    /// Train a recipe's network: Hebbian layers, then the linear classifier on their frozen
    /// features. With no RECIPE: the default recipe on the bundled MNIST.
    Train(train::TrainArgs),
    /// Test accuracy of a checkpoint.
    Eval(train::EvalArgs),
    /// Write a PNG of a checkpoint's first-layer filters.
    Filters(train::FiltersArgs),
    /// Write a PNG of a run's curves (loss, accuracy, Hebbian weight norms per epoch) from the
    /// history its checkpoint carries; `hebb train` writes the same figure as curves.png.
    Curves(train::CurvesArgs),
    /// Export a checkpoint's network (frozen blocks + classifier) as an ONNX model.
    Export(train::ExportArgs),
}

/// Mesa's EGL (the GL backend) prints "XDG_RUNTIME_DIR is invalid or not set" on every start
/// when the variable is missing, as on CI machines and over ssh. Point it at a private
/// directory so users only see hebb's own messages.
#[cfg(unix)]
fn ensure_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    let dir = std::env::temp_dir().join(format!("hebb-runtime-{uid}"));
    if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() || dir.is_dir() {
        // SAFETY: called first thing in `main`, before any other thread exists (wgpu, Mesa and
        // env_logger start theirs later), so nothing can read the environment concurrently.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

#[cfg(not(unix))]
fn ensure_runtime_dir() {}

fn main() -> ExitCode {
    ensure_runtime_dir();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause only where the text before it does not
/// already say it (an I/O error's message is both in its Display and its source).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn run(cli: Cli) -> Result<ExitCode> {
    let adapter = &cli.adapter;
    match cli.command {
        Command::Info => info::info(&adapter.choice()?),
        Command::Conformance(args) => conformance::run(adapter, args),
        Command::Spiking(args) => spiking::run(adapter, args),
        Command::Train(args) => train::train(adapter, args),
        Command::Eval(args) => train::eval(adapter, args),
        Command::Filters(args) => train::filters(args),
        Command::Curves(args) => train::curves(args),
        Command::Export(args) => train::export(adapter, args),
        Command::Data(command) => data::run(command),
        Command::Bench(command) => bench::run(adapter, command),
        Command::Tune(args) => bench::tune(adapter, args),
    }
}

pub fn write_json<T: serde::Serialize>(path: &Path, rows: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(rows)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

pub fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64)
}
