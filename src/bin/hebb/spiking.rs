//! `hebb spiking`: a SpikingGrid culture learning MNIST digits by STDP.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use hebb::gpu::GpuContext;
use hebb::train;

use crate::AdapterArgs;

#[derive(Args)]
pub struct SpikingArgs {
    /// A spiking recipe file or the name of a bundled one (spiking-mnist01-bio,
    /// spiking-mnist01-tuned, spiking-mnist01-240n-bio, spiking-mnist01-240n-tuned,
    /// spiking-mnist012-bio, spiking-mnist0123-bio).
    pub recipe: String,
    /// MNIST folder (IDX files; default: the bundled datasets/mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (default runs/<recipe>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Use at most N training, validation and test digits each.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The culture's seed (its positions, weights, sample order and spike draws), instead
    /// of the recipe's: one realisation says little, so compare several.
    #[arg(long)]
    pub seed: Option<u64>,
    /// A search: one run per seed (and per combination of --set values), into
    /// OUT/<point>/, gathered into OUT/search.json and one table. Under mpirun the runs are
    /// spread over the ranks (round-robin), one culture per GPU.
    #[arg(long, value_delimiter = ',', conflicts_with = "seed")]
    pub seeds: Option<Vec<u64>>,
    /// KEY=V1,V2,...: search over a recipe setting (a dotted key such as culture.inh_strength
    /// or task.rate_hz, TOML values); repeat for a grid. Uses the recipe's seed without
    /// --seeds.
    #[arg(long = "set", value_name = "KEY=V1,V2")]
    pub settings: Vec<String>,
    /// Start from the culture in this checkpoint (a checkpoint.safetensors that hebb spiking
    /// wrote, or one in its layout: src/spiking/checkpoint.rs) instead of building one from
    /// the seed. Its neuron count must be the recipe's; the dynamics come from the recipe,
    /// and the seed still draws the sample order and the spikes.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with_all = ["seeds", "settings"])]
    pub culture: Option<PathBuf>,
    /// Write the seed's initial culture (positions, masks and initial weights; the layout of
    /// src/spiking/checkpoint.rs) to this file and stop, without training: for running the
    /// same culture elsewhere, or later with --culture.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seeds", "settings", "culture", "data", "limit", "out"])]
    pub export_culture: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(adapter: &AdapterArgs, args: SpikingArgs) -> Result<ExitCode> {
    let group = hebb::dist::join()?;
    let searching = args.seeds.is_some() || !args.settings.is_empty();
    if !searching && group.size() > 1 {
        anyhow::bail!(
            "under mpirun, hebb spiking spreads a search over the ranks: give --seeds and/or \
             --set (one culture alone runs in one process)"
        );
    }
    if !searching {
        return run_one(adapter, args);
    }
    crate::end_job_on_error(&*group, search(adapter, args, &*group))
}

/// `--seeds` / `--set`: the search's points, this rank's share of them, one table.
fn search(
    adapter: &AdapterArgs,
    args: SpikingArgs,
    group: &dyn hebb::dist::Collective,
) -> Result<ExitCode> {
    use hebb::spiking::search;
    let SpikingArgs {
        recipe,
        data,
        out,
        limit,
        seeds,
        settings,
        quiet,
        ..
    } = args;
    let (text, origin) = hebb::spiking::recipe::SpikingRecipe::resolve_text(&recipe)?;
    let parsed = hebb::spiking::recipe::SpikingRecipe::parse(&text, &origin)?;
    let grid = settings
        .iter()
        .map(|s| search::parse_setting(s))
        .collect::<hebb::Result<Vec<_>>>()?;
    let points = search::points(&seeds.unwrap_or_else(|| vec![parsed.seed]), &grid);
    let mut names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        anyhow::bail!(
            "the search names run {} twice (a repeated seed or value)",
            w[0]
        );
    }
    let ctx = GpuContext::new(&adapter.choice_in(group)?)?;
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-search", parsed.name)));
    eprintln!(
        "{} ({origin}): {} runs; rank {} of {} on {}",
        parsed.name,
        points.len(),
        group.rank(),
        group.size(),
        ctx.adapter_name()
    );
    let base = hebb::spiking::task::SpikingOptions {
        data: Some(data.unwrap_or_else(train::data::bundled_mnist)),
        out: out.clone(),
        limit,
        culture: None,
        quiet,
    };
    let rows = search::run(&ctx, group, &text, &origin, &points, &base)?;
    if group.rank() == 0 {
        println!(
            "{:<40} {:>5} {:>9} {:>11} {:>8}",
            "run", "rank", "test", "best valid.", "wall s"
        );
        for r in &rows {
            println!(
                "{:<40} {:>5} {:>8.2}% {:>10.2}% {:>8.0}",
                r.point.name,
                r.rank,
                100.0 * r.test_accuracy,
                100.0 * r.best_validation_accuracy,
                r.wall_seconds
            );
        }
        let tests: Vec<f64> = rows.iter().map(|r| r.test_accuracy).collect();
        let mean = tests.iter().sum::<f64>() / tests.len() as f64;
        let sd = if tests.len() > 1 {
            (tests.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (tests.len() - 1) as f64)
                .sqrt()
        } else {
            0.0
        };
        println!(
            "{}: test accuracy {:.2}% ± {:.2} (mean ± s.d. over {} runs); {}",
            parsed.name,
            100.0 * mean,
            100.0 * sd,
            rows.len(),
            out.join("search.json").display()
        );
        std::fs::create_dir_all(&out)?;
        crate::write_json(
            &out.join("search.json"),
            &serde_json::json!({
                "recipe": parsed.name,
                "ranks": group.size(),
                "runs": rows,
                "test_accuracy_mean": mean,
                "test_accuracy_sd": sd,
            }),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_one(adapter: &AdapterArgs, args: SpikingArgs) -> Result<ExitCode> {
    let SpikingArgs {
        recipe,
        data,
        out,
        limit,
        seed,
        culture,
        export_culture,
        quiet,
        ..
    } = args;
    let (mut recipe, origin) = hebb::spiking::recipe::SpikingRecipe::resolve(&recipe)?;
    if let Some(seed) = seed {
        recipe.seed = seed;
    }
    if let Some(path) = export_culture {
        let c = hebb::spiking::culture::Culture::build(&recipe.culture, recipe.seed);
        hebb::spiking::checkpoint::write_initial(&path, &c)?;
        println!(
            "{} ({origin}), seed {}: initial culture of {} neurons ({} input, {} excitatory, {} inhibitory synapses) written to {}",
            recipe.name,
            recipe.seed,
            c.neurons(),
            c.input.synapses(),
            c.exc_synapses(),
            c.inhibitory.synapses(),
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = GpuContext::new(&adapter.choice()?)?;
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
        culture,
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
