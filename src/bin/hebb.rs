//! The `hebb` command line: adapter info, conformance and benchmarks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use hebb::bench::{self, BenchBudget};
use hebb::conformance;
use hebb::gpu::context::LimitsChoice;
use hebb::gpu::{AdapterChoice, GpuContext, GpuTimer, PolicyKind, feature_names, list_adapters};
use hebb::kernels::gemm::GemmTiles;
use hebb::train::{self, recipes};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
struct AdapterArgs {
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
    fn choice(&self) -> Result<AdapterChoice> {
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

#[derive(Subcommand)]
enum Command {
    /// List every adapter: backend, device type, driver, optional features and key limits.
    Info,
    /// Check every kernel against its float64 reference on the selected adapter.
    Conformance {
        /// Seed of the random inputs (default: a fresh one, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Also write the table as a JSON array to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only these conformance families, a comma list (`--only list` names them all).
        #[arg(long)]
        only: Option<String>,
        /// Check every hebb-case/1 file under DIR instead (repeatable). Each case runs on the
        /// GPU (f32) and with the float64 reference; one row per case, variant and tensor.
        #[arg(long, value_name = "DIR")]
        cases: Vec<PathBuf>,
    },
    /// Time kernels.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Time every GEMM and conv kernel configuration on the shapes of RECIPEs (default: a
    /// square product and Lagani's conv2) and cache the fastest per shape class for this
    /// adapter and driver; later runs use them.
    Tune {
        /// Recipes (bundled names or TOML files) whose training shapes to tune.
        recipes: Vec<String>,
        /// The cache file (default: HEBB_TUNE_CACHE, else ~/.cache/hebb/tune.json).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Samples per configuration (the median is compared).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Target seconds per sample.
        #[arg(long, default_value_t = 0.1)]
        sample_seconds: f64,
        /// Use wall-clock timing even where timestamps exist.
        #[arg(long)]
        wall: bool,
        /// Also write the report as JSON to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Dataset tools.
    #[command(subcommand)]
    Data(DataCommand),
    /// Simulate a neuronal culture on a multi-electrode array learning MNIST digits by STDP
    /// (SpikingGrid): train on the recipe's training pool, keep the best weights by
    /// validation, report the test accuracy. Writes metrics.json, checkpoint.safetensors,
    /// raster.png and input_weights.png.
    Spiking {
        /// A spiking recipe file or the name of a bundled one (spiking-mnist01-bio,
        /// spiking-mnist01-tuned, spiking-mnist01-240n-bio, spiking-mnist01-240n-tuned,
        /// spiking-mnist012-bio, spiking-mnist0123-bio).
        recipe: String,
        /// MNIST folder (IDX files; default: the bundled datasets/mnist).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output folder (default runs/<recipe>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Use at most N training, validation and test digits each.
        #[arg(long)]
        limit: Option<usize>,
        /// The culture's seed (its positions, weights, sample order and spike draws), instead
        /// of the recipe's: one realisation says little, so compare several.
        #[arg(long)]
        seed: Option<u64>,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Train a recipe's network: Hebbian layers, then the linear classifier on their frozen
    /// features. With no RECIPE: the default recipe on the bundled MNIST.
    Train {
        /// A recipe file (recipes/*.toml) or the name of a bundled recipe.
        recipe: Option<String>,
        /// Dataset folder (overrides the recipe's [data] path).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Classifier epochs (overrides the recipe).
        #[arg(long)]
        epochs: Option<usize>,
        /// Hebbian epochs per stage (overrides the recipe).
        #[arg(long)]
        hebbian_epochs: Option<usize>,
        /// Fraction of the training labels the classifier sees, in (0, 1].
        #[arg(long)]
        label_fraction: Option<f64>,
        /// Use only the first N training and N test items.
        #[arg(long)]
        limit: Option<usize>,
        /// The seed of this run (weights, data order, label subset), instead of the recipe's.
        #[arg(long, conflicts_with_all = ["seeds", "resume"])]
        seed: Option<u64>,
        /// Train once per seed (comma-separated) into <out>/seed<N> and print the mean ± s.d.
        /// of the test accuracies, as papers that average over seeds report (default: the
        /// recipe's `seeds`, if it lists any). Finished seeds are read, interrupted ones resumed.
        #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
        seeds: Option<Vec<u64>>,
        /// Output folder: checkpoint, metrics.json, filters.png (default runs/<recipe>). A
        /// folder that already holds a run is refused unless --overwrite is given.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the run already in the output folder (its checkpoint, metrics.json and
        /// filters.png are removed first).
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// Continue the run whose checkpoint is in DIR (recipe and options come from it; --data
        /// may name the dataset folder again if it moved).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["recipe", "epochs", "hebbian_epochs", "label_fraction", "limit"])]
        resume: Option<PathBuf>,
        /// Seconds of training between checkpoints inside an epoch (each epoch end writes one
        /// too): 0 writes one after every batch, inf only at epoch ends.
        #[arg(long, value_name = "SECONDS", default_value_t = train::CHECKPOINT_SECONDS)]
        checkpoint_every: f64,
        /// Stop with a checkpoint after N batches (to test interruption; Ctrl-C does the same).
        #[arg(long, hide = true)]
        stop_after: Option<usize>,
        /// No progress bars (log lines only).
        #[arg(long)]
        quiet: bool,
    },
    /// Test accuracy of a checkpoint.
    Eval {
        /// A checkpoint file or the folder holding checkpoint.safetensors.
        checkpoint: PathBuf,
        /// Dataset folder (default: the one the run used).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Use only the first N test items.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Write a PNG of a checkpoint's first-layer filters.
    Filters {
        checkpoint: PathBuf,
        #[arg(long, default_value = "filters.png")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Validate a dataset folder: counts, classes, checksums where known, and the first
    /// unreadable file. Exits non-zero on any problem.
    Check {
        /// The dataset folder: MNIST / Fashion-MNIST IDX files (gzipped or not), CIFAR-10/100 or
        /// STL-10 binary files, or an image folder (`<split>/<class>/*` or `<class>/*`, JPEG and
        /// PNG; every image is decoded).
        #[arg(default_value = "datasets/mnist")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// One training step of each preset on the papers' layer shapes: fused against the naive
    /// per-sample twin and against the GEMMs the step contains.
    Rules {
        /// Only cases whose preset or layer label contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Skip the naive twins.
        #[arg(long)]
        no_naive: bool,
        /// Use wall-clock timing even where timestamps exist.
        #[arg(long)]
        wall: bool,
        /// Samples per measurement (the median is reported).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Target seconds per sample.
        #[arg(long, default_value_t = 0.2)]
        sample_seconds: f64,
        /// Also write the rows as a JSON array to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Training throughput of RECIPE's network: images/s of each stage's step (frozen blocks,
    /// then the learning block) and of the whole network, on random images.
    Train {
        /// A bundled recipe name or a TOML file.
        recipe: String,
        /// Steps timed per stage (after one warm-up step).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Also time every kernel of each stage's step on its own (timestamps around each
        /// dispatch where the adapter has them) and print where the step's time goes.
        #[arg(long)]
        profile: bool,
        /// With --profile: time each dispatch by a fenced submission even where timestamps
        /// exist.
        #[arg(long)]
        wall: bool,
        /// Also write the rows as a JSON array to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// This adapter's ceilings (best GEMM rate, copy bandwidth), measured here, and each
    /// GEMM and fused rule step as a fraction of them.
    Roofline {
        /// Square GEMM sizes to place.
        #[arg(long, value_delimiter = ',', default_values_t = [256usize, 1024, 2048])]
        sizes: Vec<usize>,
        /// Rule cases to place (preset or layer label substring; default: those under 2e10
        /// FLOPs per step on CPU adapters, all on GPUs).
        #[arg(long)]
        only: Option<String>,
        /// Use wall-clock timing even where timestamps exist.
        #[arg(long)]
        wall: bool,
        /// Samples per kernel (the median is reported).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Target seconds per sample.
        #[arg(long, default_value_t = 0.2)]
        sample_seconds: f64,
        /// Also write the ceilings and rows as JSON to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The row-wise competition kernels (per row, and per subgroup where SUBGROUP exists) on
    /// the papers' layer shapes.
    Competition {
        /// Use wall-clock timing even where timestamps exist.
        #[arg(long)]
        wall: bool,
        /// Samples per kernel (the median is reported).
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Target seconds per sample.
        #[arg(long, default_value_t = 0.2)]
        sample_seconds: f64,
        /// Also write the rows as a JSON array to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// A spiking culture's simulated ms per second and synaptic events per second: the
    /// event-driven step against the naive dense step, and training.
    Spiking {
        /// Spiking recipe (file or bundled name).
        #[arg(default_value = "spiking-mnist01-240n-bio")]
        recipe: String,
        /// MNIST folder for the stimuli (default: the bundled datasets/mnist).
        #[arg(long, default_value = "datasets/mnist")]
        data: PathBuf,
        /// Samples simulated at once.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Use wall-clock timing even where timestamps exist.
        #[arg(long)]
        wall: bool,
        /// Samples per measurement (the median is reported).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Target seconds per sample.
        #[arg(long, default_value_t = 0.5)]
        sample_seconds: f64,
        /// Also write the rows as a JSON array to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The tiled GEMM against the naive GEMM on square and Hebbian shapes.
    Gemm {
        /// Square sizes to time.
        #[arg(long, value_delimiter = ',', default_values_t = [256usize, 512, 1024, 2048])]
        sizes: Vec<usize>,
        /// Tile configuration BMxBNxBK/TMxTN (default: the adapter's).
        #[arg(long)]
        tiles: Option<String>,
        /// Skip the naive baseline.
        #[arg(long)]
        no_naive: bool,
        /// Also time each shape with A and B stored as f16 (f32 accumulation).
        #[arg(long)]
        f16: bool,
        /// Also time each shape with the update epilogues (decay + max|C|, SGD with momentum),
        /// each row after the plain product's.
        #[arg(long)]
        epilogues: bool,
        /// Use wall-clock timing even where timestamps exist.
        #[arg(long)]
        wall: bool,
        /// Samples per kernel (the median is reported).
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Target seconds per sample.
        #[arg(long, default_value_t = 0.25)]
        sample_seconds: f64,
        /// Also write the rows as a JSON array to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
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
    match cli.command {
        Command::Info => info(&cli.adapter.choice()?),
        Command::Conformance {
            seed,
            json,
            only,
            cases,
        } => {
            if cases.is_empty() {
                conformance(
                    &cli.adapter.choice()?,
                    seed,
                    json.as_deref(),
                    only.as_deref(),
                )
            } else {
                case_conformance(&cli.adapter.choice()?, &cases, json.as_deref())
            }
        }
        Command::Spiking {
            recipe,
            data,
            out,
            limit,
            seed,
            quiet,
        } => {
            let (mut recipe, origin) = hebb::spiking::recipe::SpikingRecipe::resolve(&recipe)?;
            if let Some(seed) = seed {
                recipe.seed = seed;
            }
            let ctx = GpuContext::new(&cli.adapter.choice()?)?;
            eprintln!("{} ({origin}) on {}", recipe.name, ctx.adapter_name());
            let opts = hebb::spiking::task::SpikingOptions {
                // The bundled MNIST wherever the command runs from, as for `hebb train`.
                data: Some(data.unwrap_or_else(train::data::bundled_mnist)),
                out: out.unwrap_or_else(|| {
                    let name = match seed {
                        Some(s) => format!("{}-seed{s}", recipe.name),
                        None => recipe.name.clone(),
                    };
                    PathBuf::from("runs").join(name)
                }),
                limit,
                quiet,
            };
            let m = hebb::spiking::task::run(&ctx, &recipe, &opts)?;
            println!(
                "{}: test accuracy {:.2}% on {} test digits (best validation {:.2}% after {} samples); {:.0} s; {}",
                m.recipe,
                100.0 * m.test_accuracy,
                m.test_samples,
                100.0 * m.best_validation_accuracy,
                m.best_at_samples,
                m.wall_seconds,
                opts.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            recipe,
            data,
            epochs,
            hebbian_epochs,
            label_fraction,
            limit,
            seed,
            seeds,
            out,
            overwrite,
            resume,
            checkpoint_every,
            stop_after,
            quiet,
        } => {
            if checkpoint_every.is_nan() || checkpoint_every < 0.0 {
                bail!(
                    "--checkpoint-every {checkpoint_every}: expected seconds ≥ 0 (inf: only at epoch ends)"
                );
            }
            let ctx = GpuContext::new(&cli.adapter.choice()?)?;
            let stop = Arc::new(AtomicBool::new(false));
            {
                let stop = stop.clone();
                // Ctrl-C, SIGTERM and SIGHUP (timeout, systemd, Slurm, docker stop) all stop at
                // the next batch boundary with a checkpoint. A second signal while the
                // checkpoint is written kills the process as usual; the atomic write leaves
                // the previous checkpoint whole.
                let _ = ctrlc::set_handler(move || {
                    if stop.swap(true, Ordering::SeqCst) {
                        std::process::exit(130);
                    }
                    eprintln!("\ninterrupted: finishing this batch and writing a checkpoint");
                });
            }
            let overrides = train::Overrides {
                data,
                epochs,
                hebbian_epochs,
                label_fraction,
                limit,
                seed,
            };
            let outcome = match resume {
                Some(dir) => {
                    let opts = train::TrainOptions {
                        overrides,
                        out: out.unwrap_or_else(|| dir.clone()),
                        stop,
                        checkpoint_seconds: checkpoint_every,
                        overwrite: false,
                        stop_after_batches: stop_after,
                        progress_bars: !quiet,
                    };
                    train::resume(&ctx, &dir, &opts)?
                }
                None => {
                    let (recipe, text, path) = recipes::resolve(recipe.as_deref())?;
                    let opts = train::TrainOptions {
                        overrides,
                        out: out.unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name)),
                        stop,
                        checkpoint_seconds: checkpoint_every,
                        overwrite,
                        stop_after_batches: stop_after,
                        progress_bars: !quiet,
                    };
                    eprintln!(
                        "training {} ({}) on {}",
                        recipe.name,
                        path,
                        ctx.adapter_name()
                    );
                    let seeds = match (seed, seeds, &recipe.seeds) {
                        (Some(_), _, _) => None,
                        (None, Some(list), _) => Some(list),
                        (None, None, Some(list)) if list.len() > 1 => Some(list.clone()),
                        _ => None,
                    };
                    if let Some(seeds) = seeds {
                        let Some(summary) =
                            train::train_seeds(&ctx, &recipe, &text, &opts, &seeds)?
                        else {
                            return Ok(ExitCode::from(130));
                        };
                        for r in &summary.runs {
                            println!(
                                "  seed {}: test accuracy {:.2}%  ({})",
                                r.seed,
                                100.0 * r.test_accuracy,
                                r.out.display()
                            );
                        }
                        println!(
                            "{}: test accuracy {:.2}% ± {:.2} (mean ± s.d. over {} seeds); {}",
                            summary.recipe,
                            100.0 * summary.mean,
                            100.0 * summary.std,
                            summary.runs.len(),
                            opts.out.join("seeds.json").display()
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                    train::train(&ctx, &recipe, &text, &opts)?
                }
            };
            match outcome {
                train::Outcome::Finished(m) => {
                    let selected = match m.validation_accuracy {
                        Some(v) if m.selection == hebb::nn::recipe::Selection::BestValidation => {
                            format!(
                                " (classifier epoch {} of best validation accuracy, {:.2}% on {} \
                                 held-out images; the last epoch: {:.2}%)",
                                m.selected_epoch + 1,
                                100.0 * v,
                                m.validation_items,
                                100.0 * m.last_epoch_test_accuracy
                            )
                        }
                        _ => String::new(),
                    };
                    println!(
                        "{}: test accuracy {:.2}% on {} test images{selected} ({} labelled training images); {}",
                        m.recipe,
                        100.0 * m.test_accuracy,
                        m.test_items,
                        m.labeled_items,
                        m.checkpoint.display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                train::Outcome::Interrupted(_) => Ok(ExitCode::from(130)),
            }
        }
        Command::Eval {
            checkpoint,
            data,
            limit,
        } => {
            let ctx = GpuContext::new(&cli.adapter.choice()?)?;
            let (name, acc, n) =
                train::evaluate_checkpoint(&ctx, &checkpoint, data.as_deref(), limit)?;
            println!(
                "{name}: test accuracy {:.2}% on {n} test images",
                100.0 * acc
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Filters { checkpoint, out } => {
            let ck = train::checkpoint::load(&checkpoint)?;
            let (shape, w) = ck
                .tensors
                .get("layers.0.weight")
                .with_context(|| format!("{}: no tensor layers.0.weight", ck.path.display()))?;
            train::filters::write_png(&out, shape, w)?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(DataCommand::Check { dir }) => {
            let report = hebb::data::check_dir(&dir)?;
            println!("{}: {}", dir.display(), report.format);
            for (split, items, counts) in &report.splits {
                if counts.len() <= 20 {
                    println!(
                        "  {split}: {items} items, {} classes {counts:?}",
                        counts.len()
                    );
                } else {
                    let min = counts.iter().min().copied().unwrap_or(0);
                    let max = counts.iter().max().copied().unwrap_or(0);
                    println!(
                        "  {split}: {items} items, {} classes, {min}..{max} items per class",
                        counts.len()
                    );
                }
            }
            if !report.class_names.is_empty() {
                let shown: Vec<&str> = report
                    .class_names
                    .iter()
                    .take(10)
                    .map(String::as_str)
                    .collect();
                let more = report.class_names.len().saturating_sub(shown.len());
                println!(
                    "  classes: {}{}",
                    shown.join(" "),
                    if more > 0 {
                        format!(" … and {more} more")
                    } else {
                        String::new()
                    }
                );
            }
            let mut bad = false;
            for (file, verdict) in &report.checksums {
                println!("  {file}: {verdict}");
                bad |= verdict.starts_with("MISMATCH");
            }
            if report.unreadable > 0 {
                bad = true;
                println!(
                    "  UNREADABLE: {} item{}; the first: {}",
                    report.unreadable,
                    if report.unreadable == 1 { "" } else { "s" },
                    report.first_unreadable.as_deref().unwrap_or("?")
                );
            } else if report.format.starts_with("image-folder") {
                println!("  every image decodes");
            }
            Ok(if bad {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Bench(BenchCommand::Rules {
            only,
            no_naive,
            wall,
            samples,
            sample_seconds,
            json,
        }) => {
            let (ctx, timer, budget) = bench_setup(&cli.adapter, wall, samples, sample_seconds)?;
            let cases: Vec<_> = bench::rules::default_cases()
                .into_iter()
                .filter(|c| {
                    only.as_deref()
                        .is_none_or(|o| c.preset.contains(o) || c.label.contains(o))
                })
                .collect();
            if cases.is_empty() {
                bail!("--only {only:?} matches no benchmark case");
            }
            let rows = bench::rules::bench_rules(&ctx, &cases, &timer, budget, !no_naive)?;
            bench::rules::print_rule_rows(&rows);
            if let Some(path) = json {
                write_json(&path, &rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Roofline {
            sizes,
            only,
            wall,
            samples,
            sample_seconds,
            json,
        }) => {
            let ctx = GpuContext::new(&cli.adapter.choice()?)?;
            let timer = GpuTimer::new(&ctx, wall);
            let budget = BenchBudget {
                sample_s: sample_seconds,
                samples,
            };
            let ceilings = bench::roofline::measure_ceilings(&ctx, &timer, budget)?;
            bench::roofline::print_ceilings(&ceilings);
            let gemm_rows = bench::gemm::bench_gemm(
                &ctx,
                &bench::gemm::default_cases(&sizes),
                None,
                &timer,
                budget,
                bench::gemm::GemmExtras {
                    f16: true,
                    ..Default::default()
                },
            )?;
            let mut rows: Vec<_> = gemm_rows
                .iter()
                .map(|r| bench::roofline::place_gemm(&ceilings, r))
                .collect();
            let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
            let cases: Vec<_> = bench::rules::default_cases()
                .into_iter()
                .filter(|c| match &only {
                    Some(o) => c.preset.contains(o.as_str()) || c.label.contains(o.as_str()),
                    None => !cpu || bench::rules::step_flops(c) < 2e10,
                })
                .collect();
            let rule_rows = bench::rules::bench_rules(&ctx, &cases, &timer, budget, false)?;
            rows.extend(
                rule_rows
                    .iter()
                    .filter(|r| r.variant == "fused")
                    .map(|r| bench::roofline::place_rule(&ceilings, r)),
            );
            bench::roofline::print_rows(&rows);
            if let Some(path) = json {
                write_json(
                    &path,
                    &serde_json::json!({"ceilings": ceilings, "rows": rows}),
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Train {
            recipe,
            steps,
            profile,
            wall,
            json,
        }) => {
            let ctx = GpuContext::new(&cli.adapter.choice()?)?;
            let (recipe, _, origin) = recipes::resolve(Some(&recipe))?;
            println!(
                "adapter: {}  recipe: {} ({origin}), batch {}, tuning entries: {}",
                ctx.adapter_name(),
                recipe.name,
                recipe.hebbian.batch,
                ctx.tuning.len()
            );
            if recipe.preprocess.zca.is_some() {
                println!(
                    "note: the recipe's ZCA whitening (one D x D GEMM per batch) is not timed"
                );
            }
            let rows = bench::train::bench_train(&ctx, &recipe, steps)?;
            bench::train::print_stages(&rows);
            if profile {
                let kernels = bench::train::profile_train(&ctx, &recipe, steps, wall)?;
                bench::train::print_profile(&kernels);
                if let Some(path) = json {
                    write_json(
                        &path,
                        &serde_json::json!({ "stages": rows, "kernels": kernels }),
                    )?;
                }
            } else if let Some(path) = json {
                write_json(&path, &rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tune {
            recipes: names,
            cache,
            samples,
            sample_seconds,
            wall,
            json,
        } => {
            let ctx = GpuContext::new(&cli.adapter.choice()?)?;
            let path = cache
                .or_else(hebb::gpu::tuning::cache_path)
                .context("no cache location: pass --cache FILE (HEBB_TUNE_CACHE is off)")?;
            let timer = GpuTimer::new(&ctx, wall);
            let mut shapes = Vec::new();
            if names.is_empty() {
                shapes = bench::tune::default_shapes();
            }
            for name in &names {
                let (recipe, _, _) = recipes::resolve(Some(name))?;
                shapes.extend(bench::tune::recipe_shapes(&ctx, &recipe)?);
            }
            println!(
                "adapter: {} ({} {})  timer: {}  {} launch shapes",
                ctx.adapter_name(),
                ctx.info.driver,
                ctx.info.driver_info,
                timer.kind.name(),
                shapes.len()
            );
            let budget = BenchBudget {
                sample_s: sample_seconds,
                samples,
            };
            bench::tune::print_header();
            let (mut tuning, rows) =
                bench::tune::tune(&ctx, &shapes, &timer, budget, bench::tune::print_row)?;
            // Keep this adapter's earlier winners for classes not tuned now.
            for e in ctx.tuning.entries() {
                if tuning.get(&e.class).is_none() {
                    tuning.insert(e.clone());
                }
            }
            hebb::gpu::tuning::save(&path, &ctx.info, &tuning)?;
            println!(
                "{} entries for this adapter in {}",
                tuning.len(),
                path.display()
            );
            if let Some(json_path) = json {
                write_json(&json_path, &rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Competition {
            wall,
            samples,
            sample_seconds,
            json,
        }) => {
            let (ctx, timer, budget) = bench_setup(&cli.adapter, wall, samples, sample_seconds)?;
            let rows = bench::competition::bench_competition(&ctx, &timer, budget)?;
            bench::print_rows(&rows);
            if let Some(path) = json {
                write_json(&path, &rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Spiking {
            recipe,
            data,
            batch,
            wall,
            samples,
            sample_seconds,
            json,
        }) => {
            let (recipe, _) = hebb::spiking::recipe::SpikingRecipe::resolve(&recipe)?;
            let (ctx, timer, budget) = bench_setup(&cli.adapter, wall, samples, sample_seconds)?;
            let rows = bench::spiking::bench_spiking(&ctx, &recipe, &data, batch, &timer, budget)?;
            bench::spiking::print_rows(&rows);
            if let Some(path) = json {
                write_json(&path, &rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Gemm {
            sizes,
            tiles,
            no_naive,
            f16,
            epilogues,
            wall,
            samples,
            sample_seconds,
            json,
        }) => {
            let tiles = tiles.as_deref().map(parse_tiles).transpose()?;
            let (ctx, timer, budget) = bench_setup(&cli.adapter, wall, samples, sample_seconds)?;
            let rows = bench::gemm::bench_gemm(
                &ctx,
                &bench::gemm::default_cases(&sizes),
                tiles,
                &timer,
                budget,
                bench::gemm::GemmExtras {
                    naive: !no_naive,
                    f16,
                    epilogues,
                },
            )?;
            bench::print_rows(&rows);
            if let Some(path) = json {
                write_json(&path, &rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_tiles(text: &str) -> Result<GemmTiles> {
    GemmTiles::parse(text).with_context(|| {
        format!("--tiles {text:?}: expected BMxBNxBK/TMxTN (e.g. 64x64x16/8x8) or subgroup:8, subgroup:16, subgroup:24")
    })
}

/// The adapter, timer and sampling budget of a `hebb bench` command, with its header line.
fn bench_setup(
    adapter: &AdapterArgs,
    wall: bool,
    samples: usize,
    sample_seconds: f64,
) -> Result<(GpuContext, GpuTimer, BenchBudget)> {
    let ctx = GpuContext::new(&adapter.choice()?)?;
    let timer = GpuTimer::new(&ctx, wall);
    println!(
        "adapter: {}  timer: {}  {}",
        ctx.adapter_name(),
        timer.kind.name(),
        ctx.settings()
    );
    let budget = BenchBudget {
        sample_s: sample_seconds,
        samples,
    };
    Ok((ctx, timer, budget))
}

fn write_json<T: serde::Serialize>(path: &Path, rows: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(rows)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

fn info(choice: &AdapterChoice) -> Result<ExitCode> {
    let adapters = list_adapters(choice)?;
    if adapters.is_empty() {
        bail!(hebb::HebbError::NoAdapter {
            filter: String::new()
        });
    }
    for (i, adapter) in adapters.iter().enumerate() {
        let info = adapter.get_info();
        let limits = adapter.limits();
        println!("[{i}] {}", info.name);
        println!("    backend:      {:?}", info.backend);
        println!("    device type:  {:?}", info.device_type);
        println!("    driver:       {} {}", info.driver, info.driver_info);
        println!(
            "    features:     {}",
            match feature_names(adapter.features()).join(", ") {
                s if s.is_empty() => "(none of the optional ones)".to_string(),
                s => s,
            }
        );
        println!(
            "    subgroups:    {}..{}",
            info.subgroup_min_size, info.subgroup_max_size
        );
        println!(
            "    limits:       max_buffer_size {} B, max_storage_buffer_binding_size {} B,",
            limits.max_buffer_size, limits.max_storage_buffer_binding_size
        );
        println!(
            "                  workgroup storage {} B, invocations/workgroup {}, workgroup size {}x{}x{}, workgroups/dim {}",
            limits.max_compute_workgroup_storage_size,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroup_size_x,
            limits.max_compute_workgroup_size_y,
            limits.max_compute_workgroup_size_z,
            limits.max_compute_workgroups_per_dimension
        );
        let policy = hebb::gpu::DevicePolicy::new(&info, choice.policy)?;
        for (j, line) in policy.describe().iter().enumerate() {
            println!("    {:<14}{line}", if j == 0 { "policy:" } else { "" });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64)
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
