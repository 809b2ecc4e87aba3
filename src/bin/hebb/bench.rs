//! `hebb bench` and `hebb tune`: kernel timings, rooflines and the autotuning cache.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use hebb::bench::{self, BenchBudget};
use hebb::gpu::{GpuContext, GpuTimer};
use hebb::kernels::gemm::GemmTiles;
use hebb::train::recipes;

use crate::{AdapterArgs, write_json};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// One training step of each preset on the papers' layer shapes: fused against the naive
    /// per-sample twin and against the GEMMs the step contains.
    Rules(RulesArgs),
    /// Training throughput of RECIPE's network: images/s of each stage's step (frozen blocks,
    /// then the learning block) and of the whole network, on random images.
    Train(TrainBenchArgs),
    /// The inputs of the data-parallel scaling model, measured: per learning stage and the
    /// classifier, the step's compute, the host round trips a process group adds, and the
    /// collectives and bytes it all-reduces per step; then the predicted efficiency on 8 and
    /// 64 ranks over PCIe, NVLink and 100/400 Gb/s networks (BENCHMARKS.md).
    Scaling(ScalingArgs),
    /// This adapter's ceilings (best GEMM rate, copy bandwidth), measured here, and each
    /// GEMM and fused rule step as a fraction of them.
    Roofline(RooflineArgs),
    /// The row-wise competition kernels (per row, and per subgroup where SUBGROUP exists) on
    /// the papers' layer shapes.
    Competition(CompetitionArgs),
    /// A spiking culture's simulated ms per second and synaptic events per second: the
    /// event-driven step against the naive dense step, and training.
    Spiking(SpikingArgs),
    /// The tiled GEMM against the naive GEMM on square and Hebbian shapes.
    Gemm(GemmArgs),
}

#[derive(Args)]
pub struct RulesArgs {
    /// Only cases whose preset or layer label contains this text.
    #[arg(long)]
    pub only: Option<String>,
    /// Skip the naive twins.
    #[arg(long)]
    pub no_naive: bool,
    /// Use wall-clock timing even where timestamps exist.
    #[arg(long)]
    pub wall: bool,
    /// Samples per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Target seconds per sample.
    #[arg(long, default_value_t = 0.2)]
    pub sample_seconds: f64,
    /// Also write the rows as a JSON array to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainBenchArgs {
    /// A bundled recipe name or a TOML file.
    pub recipe: String,
    /// Steps timed per stage (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Also time every kernel of each stage's step on its own (timestamps around each
    /// dispatch where the adapter has them) and print where the step's time goes.
    #[arg(long)]
    pub profile: bool,
    /// With --profile: time each dispatch by a fenced submission even where timestamps
    /// exist.
    #[arg(long)]
    pub wall: bool,
    /// Also write the rows as a JSON array to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct ScalingArgs {
    /// A bundled recipe name or a TOML file.
    pub recipe: String,
    /// Images per step (default: the recipe's batch); the bytes reduced do not depend on it.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Steps timed per stage (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Also write the rows as a JSON array to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct RooflineArgs {
    /// Square GEMM sizes to place.
    #[arg(long, value_delimiter = ',', default_values_t = [256usize, 1024, 2048])]
    pub sizes: Vec<usize>,
    /// Rule cases to place (preset or layer label substring; default: those under 2e10
    /// FLOPs per step on CPU adapters, all on GPUs).
    #[arg(long)]
    pub only: Option<String>,
    /// Use wall-clock timing even where timestamps exist.
    #[arg(long)]
    pub wall: bool,
    /// Samples per kernel (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Target seconds per sample.
    #[arg(long, default_value_t = 0.2)]
    pub sample_seconds: f64,
    /// Also write the ceilings and rows as JSON to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the roofline (log-log, every row under the two ceilings) as a PNG to FILE.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

#[derive(Args)]
pub struct CompetitionArgs {
    /// Use wall-clock timing even where timestamps exist.
    #[arg(long)]
    pub wall: bool,
    /// Samples per kernel (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Target seconds per sample.
    #[arg(long, default_value_t = 0.2)]
    pub sample_seconds: f64,
    /// Also write the rows as a JSON array to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct SpikingArgs {
    /// Spiking recipe (file or bundled name).
    #[arg(default_value = "spiking-mnist01-240n-bio")]
    pub recipe: String,
    /// MNIST folder for the stimuli (default: the bundled datasets/mnist).
    #[arg(long, default_value = "datasets/mnist")]
    pub data: PathBuf,
    /// Samples simulated at once.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Use wall-clock timing even where timestamps exist.
    #[arg(long)]
    pub wall: bool,
    /// Samples per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Target seconds per sample.
    #[arg(long, default_value_t = 0.5)]
    pub sample_seconds: f64,
    /// Also write the rows as a JSON array to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct GemmArgs {
    /// Square sizes to time.
    #[arg(long, value_delimiter = ',', default_values_t = [256usize, 512, 1024, 2048])]
    pub sizes: Vec<usize>,
    /// Tile configuration BMxBNxBK/TMxTN (default: the adapter's).
    #[arg(long)]
    pub tiles: Option<String>,
    /// Skip the naive baseline.
    #[arg(long)]
    pub no_naive: bool,
    /// Also time each shape with A and B stored as f16 (f32 accumulation).
    #[arg(long)]
    f16: bool,
    /// Also time each shape with the update epilogues (decay + max|C|, SGD with momentum),
    /// each row after the plain product's.
    #[arg(long)]
    pub epilogues: bool,
    /// Use wall-clock timing even where timestamps exist.
    #[arg(long)]
    pub wall: bool,
    /// Samples per kernel (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Target seconds per sample.
    #[arg(long, default_value_t = 0.25)]
    pub sample_seconds: f64,
    /// Also write the rows as a JSON array to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs one `hebb bench` command.
pub fn run(adapter: &AdapterArgs, command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Rules(args) => rules(adapter, args),
        BenchCommand::Train(args) => train(adapter, args),
        BenchCommand::Scaling(args) => scaling(adapter, args),
        BenchCommand::Roofline(args) => roofline(adapter, args),
        BenchCommand::Competition(args) => competition(adapter, args),
        BenchCommand::Spiking(args) => spiking(adapter, args),
        BenchCommand::Gemm(args) => gemm(adapter, args),
    }
}

pub fn rules(adapter: &AdapterArgs, args: RulesArgs) -> Result<ExitCode> {
    let RulesArgs {
        only,
        no_naive,
        wall,
        samples,
        sample_seconds,
        json,
    } = args;
    let (ctx, timer, budget) = bench_setup(adapter, wall, samples, sample_seconds)?;
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

pub fn train(adapter: &AdapterArgs, args: TrainBenchArgs) -> Result<ExitCode> {
    let TrainBenchArgs {
        recipe,
        steps,
        profile,
        wall,
        json,
    } = args;
    let ctx = GpuContext::new(&adapter.choice()?)?;
    let (recipe, _, origin) = recipes::resolve(Some(&recipe))?;
    println!(
        "adapter: {}  recipe: {} ({origin}), batch {}, tuning entries: {}",
        ctx.adapter_name(),
        recipe.name,
        recipe.hebbian.batch,
        ctx.tuning.len()
    );
    if recipe.preprocess.zca.is_some() {
        println!("note: the recipe's ZCA whitening (one D x D GEMM per batch) is not timed");
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

pub fn scaling(adapter: &AdapterArgs, args: ScalingArgs) -> Result<ExitCode> {
    let ScalingArgs {
        recipe,
        batch,
        steps,
        json,
    } = args;
    let ctx = GpuContext::new(&adapter.choice()?)?;
    let (recipe, _, origin) = recipes::resolve(Some(&recipe))?;
    println!(
        "adapter: {}  recipe: {} ({origin})",
        ctx.adapter_name(),
        recipe.name
    );
    let rows = bench::scaling::measure(&ctx, &recipe, batch, steps)?;
    bench::scaling::print(&rows);
    if let Some(path) = json {
        write_json(&path, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn roofline(adapter: &AdapterArgs, args: RooflineArgs) -> Result<ExitCode> {
    let RooflineArgs {
        sizes,
        only,
        wall,
        samples,
        sample_seconds,
        json,
        png,
    } = args;
    let ctx = GpuContext::new(&adapter.choice()?)?;
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
    if let Some(path) = png {
        bench::roofline::write_png(&path, &ceilings, &rows)?;
    }
    if let Some(path) = json {
        write_json(
            &path,
            &serde_json::json!({"ceilings": ceilings, "rows": rows}),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn competition(adapter: &AdapterArgs, args: CompetitionArgs) -> Result<ExitCode> {
    let CompetitionArgs {
        wall,
        samples,
        sample_seconds,
        json,
    } = args;
    let (ctx, timer, budget) = bench_setup(adapter, wall, samples, sample_seconds)?;
    let rows = bench::competition::bench_competition(&ctx, &timer, budget)?;
    bench::print_rows(&rows);
    if let Some(path) = json {
        write_json(&path, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn spiking(adapter: &AdapterArgs, args: SpikingArgs) -> Result<ExitCode> {
    let SpikingArgs {
        recipe,
        data,
        batch,
        wall,
        samples,
        sample_seconds,
        json,
    } = args;
    let (recipe, _) = hebb::spiking::recipe::SpikingRecipe::resolve(&recipe)?;
    let (ctx, timer, budget) = bench_setup(adapter, wall, samples, sample_seconds)?;
    let rows = bench::spiking::bench_spiking(&ctx, &recipe, &data, batch, &timer, budget)?;
    bench::spiking::print_rows(&rows);
    if let Some(path) = json {
        write_json(&path, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn gemm(adapter: &AdapterArgs, args: GemmArgs) -> Result<ExitCode> {
    let GemmArgs {
        sizes,
        tiles,
        no_naive,
        f16,
        epilogues,
        wall,
        samples,
        sample_seconds,
        json,
    } = args;
    let tiles = tiles.as_deref().map(parse_tiles).transpose()?;
    let (ctx, timer, budget) = bench_setup(adapter, wall, samples, sample_seconds)?;
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

#[derive(Args)]
pub struct TuneArgs {
    /// Recipes (bundled names or TOML files) whose training shapes to tune.
    pub recipes: Vec<String>,
    /// The cache file (default: HEBB_TUNE_CACHE, else ~/.cache/hebb/tune.json).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Samples per configuration (the median is compared).
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Target seconds per sample.
    #[arg(long, default_value_t = 0.1)]
    pub sample_seconds: f64,
    /// Use wall-clock timing even where timestamps exist.
    #[arg(long)]
    pub wall: bool,
    /// Also write the report as JSON to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn tune(adapter: &AdapterArgs, args: TuneArgs) -> Result<ExitCode> {
    let TuneArgs {
        recipes: names,
        cache,
        samples,
        sample_seconds,
        wall,
        json,
    } = args;
    let ctx = GpuContext::new(&adapter.choice()?)?;
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
