//! `hebb train`, `hebb eval`, `hebb filters`, `hebb curves` and `hebb export`: training runs and
//! their checkpoints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;

use hebb::gpu::GpuContext;
use hebb::train::{self, recipes};

use crate::AdapterArgs;

#[derive(Args)]
pub struct TrainArgs {
    /// A recipe file (recipes/*.toml) or the name of a bundled recipe.
    pub recipe: Option<String>,
    /// Dataset folder (overrides the recipe's [data] path).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Classifier epochs (overrides the recipe).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Hebbian epochs per stage (overrides the recipe).
    #[arg(long)]
    pub hebbian_epochs: Option<usize>,
    /// Fraction of the training labels the classifier sees, in (0, 1].
    #[arg(long)]
    pub label_fraction: Option<f64>,
    /// Use only the first N training and N test items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The seed of this run (weights, data order, label subset), instead of the recipe's.
    #[arg(long, conflicts_with_all = ["seeds", "resume"])]
    pub seed: Option<u64>,
    /// Train once per seed (comma-separated) into <out>/seed<N> and print the mean ± s.d.
    /// of the test accuracies, as papers that average over seeds report (default: the
    /// recipe's `seeds`, if it lists any). Finished seeds are read, interrupted ones resumed.
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub seeds: Option<Vec<u64>>,
    /// Lagani's semi-supervised regimes: train once per label fraction (comma-separated, each
    /// in (0, 1]) into <out>/regime-<F>, the Hebbian stages once, and print and write
    /// (regimes.json) one table of fraction, method and test accuracy.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["resume", "seeds", "label_fraction"])]
    pub regimes: Option<Vec<f64>>,
    /// Output folder: checkpoint, metrics.json, filters.png, curves.png (default
    /// runs/<recipe>). A
    /// folder that already holds a run is refused unless --overwrite is given.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the run already in the output folder (its checkpoint, metrics.json,
    /// filters.png and curves.png are removed first).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue the run whose checkpoint is in DIR (recipe and options come from it; --data
    /// may name the dataset folder again if it moved).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["recipe", "epochs", "hebbian_epochs", "label_fraction", "limit"])]
    pub resume: Option<PathBuf>,
    /// Train only a new supervised stage on the Hebbian layers of a finished run: PATH is its
    /// pretrained.safetensors or the run folder holding one. The recipe, seed and dataset
    /// come from it; --epochs and --label-fraction may change, and --out names the new run.
    #[arg(long, value_name = "PATH", requires = "out",
          conflicts_with_all = ["recipe", "resume", "hebbian_epochs", "limit", "seed", "seeds", "regimes"])]
    pub pretrained: Option<PathBuf>,
    /// Seconds of training between checkpoints inside an epoch (each epoch end writes one
    /// too): 0 writes one after every batch, inf only at epoch ends.
    #[arg(long, value_name = "SECONDS", default_value_t = train::CHECKPOINT_SECONDS)]
    pub checkpoint_every: f64,
    /// Stop with a checkpoint after N batches (to test interruption; Ctrl-C does the same).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// No progress bars (log lines only).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A checkpoint file or the folder holding checkpoint.safetensors.
    pub checkpoint: PathBuf,
    /// Dataset folder (default: the one the run used).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N test items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also write every test item's prediction to FILE: JSON (an array of {index, label,
    /// predicted, scores}) when FILE ends in .json, else CSV (index, label, predicted,
    /// score_0 .. score_{K-1}). `predicted` is the first index of the largest score, the class
    /// the accuracy counts; the scores are the head's (logits for the softmax head).
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A checkpoint file or the folder holding checkpoint.safetensors.
    pub checkpoint: PathBuf,
    /// Write the ONNX model (opset 13) to FILE: input `images` (N, C, H, W) with pixels scaled
    /// as the loader scales them (/255), output `scores` (N, K); standardisation and
    /// whitening are inside the graph.
    #[arg(long, value_name = "FILE")]
    pub onnx: PathBuf,
    /// Dataset folder (default: the one the run used; its image shape and classes shape the
    /// network).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

pub fn export(adapter: &AdapterArgs, args: ExportArgs) -> Result<ExitCode> {
    let ExportArgs {
        checkpoint,
        onnx,
        data,
    } = args;
    let ctx = GpuContext::new(&adapter.choice()?)?;
    let (name, bytes) = train::export_onnx(&ctx, &checkpoint, data.as_deref())?;
    train::checkpoint::write_atomic(&onnx, &bytes)
        .with_context(|| format!("{}: writing the ONNX model", onnx.display()))?;
    println!("{name}: {} ({} bytes)", onnx.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct CurvesArgs {
    /// A checkpoint, or the run folder holding one.
    pub checkpoint: PathBuf,
    #[arg(long, default_value = "curves.png")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct FiltersArgs {
    pub checkpoint: PathBuf,
    #[arg(long, default_value = "filters.png")]
    pub out: PathBuf,
}

pub fn train(adapter: &AdapterArgs, args: TrainArgs) -> Result<ExitCode> {
    let group = hebb::dist::join()?;
    if group.size() == 1 {
        return train_in(adapter, args, group);
    }
    crate::end_job_on_error(&*group, train_in(adapter, args, group.clone()))
}

fn train_in(
    adapter: &AdapterArgs,
    args: TrainArgs,
    group: std::rc::Rc<dyn hebb::dist::Collective>,
) -> Result<ExitCode> {
    let TrainArgs {
        recipe,
        data,
        epochs,
        hebbian_epochs,
        label_fraction,
        limit,
        seed,
        seeds,
        regimes,
        out,
        overwrite,
        resume,
        pretrained,
        checkpoint_every,
        stop_after,
        quiet,
    } = args;
    if checkpoint_every.is_nan() || checkpoint_every < 0.0 {
        bail!(
            "--checkpoint-every {checkpoint_every}: expected seconds ≥ 0 (inf: only at epoch ends)"
        );
    }
    let (rank, size) = (group.rank(), group.size());
    if size > 1 && (regimes.is_some() || seeds.is_some() && seed.is_none()) {
        bail!(
            "--regimes and --seeds run their trainings one after another in one process; under \
             mpirun train one recipe at a time"
        );
    }
    let ctx = GpuContext::new(&adapter.choice_in(&*group)?)?;
    if size > 1 {
        // One write(2) per line: the ranks share the terminal (or mpirun's pipe), and a
        // line written in pieces interleaves with the other ranks' lines. Writes under
        // PIPE_BUF (4 KiB) to a pipe are atomic.
        let line = format!(
            "rank {rank} of {size} ({}; local rank {}): {}\n",
            group.describe(),
            group.local_rank(),
            ctx.adapter_name()
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
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
    let options = |out: PathBuf, overwrite: bool| train::TrainOptions {
        overrides: overrides.clone(),
        out,
        stop: stop.clone(),
        checkpoint_seconds: checkpoint_every,
        overwrite,
        stop_after_batches: stop_after,
        progress_bars: !quiet,
        group: group.clone(),
    };
    let outcome = match (pretrained, resume) {
        (Some(path), _) => {
            let path = if path.is_dir() {
                path.join(train::PRETRAINED_FILE)
            } else {
                path
            };
            let restart = train::SupervisedRestart {
                label_fraction,
                epochs,
            };
            // clap's `requires = "out"` makes --out present.
            let opts = options(out.context("--pretrained needs --out")?, overwrite);
            train::resume_with(&ctx, &path, &opts, Some(restart))?
        }
        (None, Some(dir)) => {
            let opts = options(out.unwrap_or_else(|| dir.clone()), false);
            train::resume(&ctx, &dir, &opts)?
        }
        (None, None) => {
            let (recipe, text, path) = recipes::resolve(recipe.as_deref())?;
            let opts = options(
                out.unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name)),
                overwrite,
            );
            if rank == 0 {
                eprintln!(
                    "training {} ({}) on {}",
                    recipe.name,
                    path,
                    ctx.adapter_name()
                );
            }
            let seeds = match (seed, seeds, &recipe.seeds) {
                (Some(_), _, _) => None,
                (None, Some(list), _) => Some(list),
                (None, None, Some(list)) if list.len() > 1 => Some(list.clone()),
                _ => None,
            };
            if size > 1 && seeds.is_some() {
                bail!(
                    "recipe {} lists several seeds, which run one after another in one process; \
                     under mpirun pick one with --seed",
                    recipe.name
                );
            }
            if let Some(fractions) = regimes {
                let Some(summary) = train::train_regimes(&ctx, &recipe, &text, &opts, &fractions)?
                else {
                    return Ok(ExitCode::from(130));
                };
                println!(
                    "{:>9}  {:<13} {:>8}  {:>9}  {:>10}",
                    "fraction", "method", "labelled", "test", "validation"
                );
                for r in &summary.regimes {
                    println!(
                        "{:>9}  {:<13} {:>8}  {:>8.2}%  {:>10}",
                        r.fraction,
                        r.method,
                        r.labeled_items,
                        100.0 * r.test_accuracy,
                        r.validation_accuracy
                            .map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v))
                    );
                }
                println!(
                    "{}: {}",
                    summary.recipe,
                    opts.out.join("regimes.json").display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(seeds) = seeds {
                let Some(summary) = train::train_seeds(&ctx, &recipe, &text, &opts, &seeds)? else {
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
        train::Outcome::Finished(_) if rank > 0 => Ok(ExitCode::SUCCESS),
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

pub fn eval(adapter: &AdapterArgs, args: EvalArgs) -> Result<ExitCode> {
    let EvalArgs {
        checkpoint,
        data,
        limit,
        predictions,
    } = args;
    let ctx = GpuContext::new(&adapter.choice()?)?;
    let result = train::evaluate_checkpoint(
        &ctx,
        &checkpoint,
        data.as_deref(),
        limit,
        predictions.is_some(),
    )?;
    let e = &result.evaluation;
    println!(
        "{}: test accuracy {:.2}% on {} test images",
        result.recipe,
        100.0 * e.accuracy,
        e.seen
    );
    if !e.skipped.is_empty() {
        println!(
            "{} of {} test items could not be read and were skipped",
            e.skipped.len(),
            result.items
        );
    }
    if let Some(path) = predictions {
        write_predictions(&path, &e.predictions)?;
        println!("{} predictions: {}", e.predictions.len(), path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `hebb eval --predictions`: JSON for a .json path, CSV otherwise, written atomically.
fn write_predictions(path: &std::path::Path, predictions: &[train::Prediction]) -> Result<()> {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let bytes = if json {
        serde_json::to_vec_pretty(predictions)?
    } else {
        let classes = predictions.first().map_or(0, |p| p.scores.len());
        let mut out = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["index".to_string(), "label".into(), "predicted".into()];
        header.extend((0..classes).map(|j| format!("score_{j}")));
        out.write_record(&header)?;
        for p in predictions {
            let mut record = vec![
                p.index.to_string(),
                p.label.to_string(),
                p.predicted.to_string(),
            ];
            record.extend(p.scores.iter().map(|v| v.to_string()));
            out.write_record(&record)?;
        }
        out.into_inner().map_err(|e| e.into_error())?
    };
    train::checkpoint::write_atomic(path, &bytes)
        .with_context(|| format!("{}: writing the predictions", path.display()))?;
    Ok(())
}

pub fn curves(args: CurvesArgs) -> Result<ExitCode> {
    let CurvesArgs { checkpoint, out } = args;
    let ck = train::checkpoint::load(&checkpoint)?;
    let history = train::curves::history_of(&ck)?;
    train::curves::write(&out, &history)?;
    println!("{} ({} epochs)", out.display(), history.len());
    Ok(ExitCode::SUCCESS)
}

pub fn filters(args: FiltersArgs) -> Result<ExitCode> {
    let FiltersArgs { checkpoint, out } = args;
    let ck = train::checkpoint::load(&checkpoint)?;
    let (shape, w) = ck
        .tensors
        .get("layers.0.weight")
        .with_context(|| format!("{}: no tensor layers.0.weight", ck.path.display()))?;
    train::filters::write_png(&out, shape, w)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
