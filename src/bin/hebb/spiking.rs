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
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(adapter: &AdapterArgs, args: SpikingArgs) -> Result<ExitCode> {
    let SpikingArgs {
        recipe,
        data,
        out,
        limit,
        seed,
        quiet,
    } = args;
    let (mut recipe, origin) = hebb::spiking::recipe::SpikingRecipe::resolve(&recipe)?;
    if let Some(seed) = seed {
        recipe.seed = seed;
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
