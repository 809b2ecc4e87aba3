//! Layer-wise training of a recipe's network: the Hebbian stages (greedy: one stage per layer;
//! simultaneous: one stage for all), then the classifier on the frozen features. Progress
//! bars, a log line per epoch, a checkpoint at every epoch end and on interruption, exact
//! resume, NaN/Inf detection, `metrics.json` and a PNG of the first layer's filters.
//!
//! Determinism: the data order of every epoch, each item's augmentation, the dropout masks
//! and the label subset are functions of the recipe's seed, so a resumed run repeats exactly
//! what the uninterrupted run would have done on the same adapter.

pub mod checkpoint;
pub mod curves;
pub mod data;
pub mod filters;
pub mod onnx;
pub mod recipes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use half::f16;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::source::{Loader, LoaderOptions, Source, epoch_order};
use crate::dist::{self, Collective};
use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::elementwise::dropout_hash;
use crate::kernels::reduce::{self, ReduceOp};
use crate::nn::layer::{BnState, copy_prefix};
use crate::nn::network::FineTuneStep;
use crate::nn::network::Network;
use crate::nn::recipe::{FineTuneFrom, HebbLrSchedule, Normalize, Recipe, Schedule, Selection};
use crate::nn::zca::{self, ZcaGeometry};

/// What the command line may override; stored in the checkpoint so a resume repeats it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Overrides {
    pub data: Option<PathBuf>,
    /// Classifier epochs.
    pub epochs: Option<usize>,
    pub hebbian_epochs: Option<usize>,
    pub label_fraction: Option<f64>,
    /// Use only the first N training and N test items.
    pub limit: Option<usize>,
    /// The recipe's seed (weights, data order; the label subset and validation split too,
    /// unless `data.split` draws them from a seed of its own).
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Overrides {
    /// Checks the command line's values; errors name the flag.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(f) = self.label_fraction
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(format!("--label-fraction {f}: expected a number in (0, 1]"));
        }
        for (flag, v) in [
            ("--epochs", self.epochs),
            ("--hebbian-epochs", self.hebbian_epochs),
            ("--limit", self.limit),
        ] {
            if v == Some(0) {
                return Err(format!("{flag} 0: expected at least 1"));
            }
        }
        Ok(())
    }
}

/// With `classifier.select = "best-validation"`: the checkpoint after the best epoch so far.
pub const BEST_FILE: &str = "checkpoint-best.safetensors";
/// The checkpoint at the end of the Hebbian stages, before any label is seen: `--regimes`
/// starts each label fraction's supervised stage from it.
pub const PRETRAINED_FILE: &str = "pretrained.safetensors";

/// Default seconds of training between two checkpoints inside an epoch.
pub const CHECKPOINT_SECONDS: f64 = 60.0;

pub struct TrainOptions {
    pub overrides: Overrides,
    pub out: PathBuf,
    /// Set (by Ctrl-C or SIGTERM) to stop at the next batch boundary with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// Seconds of training between checkpoints inside an epoch (every epoch end also writes
    /// one): 0 writes one after every batch, infinity only at epoch ends.
    pub checkpoint_seconds: f64,
    /// A new run may replace a finished or interrupted run's outputs in `out`; otherwise it
    /// refuses, naming `--resume` and `--overwrite`.
    pub overwrite: bool,
    /// Stop after this many batches of this run (tests of interruption and resume).
    pub stop_after_batches: Option<usize>,
    pub progress_bars: bool,
    /// The process group that trains this model (`crate::dist`): `Solo`, or the ranks of an
    /// MPI job, each reading its shard of every global batch of `size` x the recipe's batch.
    /// Rank 0 writes the run's files.
    pub group: Rc<dyn Collective>,
}

/// Where training stands: the next batch to run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    pub stage: usize,
    pub epoch: usize,
    /// Global batches done in this epoch, counted from `first_item`.
    pub batch: usize,
    /// The item of the epoch's order where its global batches begin: 0, except in an epoch
    /// resumed with another global batch (another number of ranks), which continues from the
    /// item the checkpoint reached.
    #[serde(default)]
    pub first_item: usize,
    /// Items per global batch of the epoch in progress (the recipe's batch x ranks; 0 in
    /// checkpoints written before process groups, which ran one process).
    #[serde(default)]
    pub global_batch: usize,
    /// Running sums of the epoch in progress: (Σ loss, correct, items, seconds); a Hebbian
    /// epoch keeps only items and seconds.
    pub running: (f64, usize, usize, f64),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub stage: String,
    pub epoch: usize,
    pub images: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Accuracy on the held-out training items (`data.validation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Hebbian epochs: the Euclidean norms ‖wᵢ‖ of each learning layer's neurons at the
    /// epoch's end (SoftHebb's adaptive rate drives them towards 1, Krotov's rule towards R).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_norms: Vec<WeightNorms>,
}

/// Summary of one layer's neuron norms ‖wᵢ‖ (rows of W).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WeightNorms {
    pub layer: usize,
    pub min: f64,
    pub median: f64,
    pub mean: f64,
    pub max: f64,
}

impl WeightNorms {
    /// The norms of the `c` rows of a row-major C x D matrix.
    pub fn of_rows(layer: usize, w: &[f32], c: usize) -> Self {
        let d = w.len() / c.max(1);
        let mut norms: Vec<f64> = w
            .chunks(d.max(1))
            .map(|row| row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt())
            .collect();
        norms.sort_by(f64::total_cmp);
        let n = norms.len().max(1);
        let median = match norms.len() {
            0 => 0.0,
            len if len % 2 == 1 => norms[len / 2],
            len => 0.5 * (norms[len / 2 - 1] + norms[len / 2]),
        };
        Self {
            layer,
            min: norms.first().copied().unwrap_or(0.0),
            median,
            mean: norms.iter().sum::<f64>() / n as f64,
            max: norms.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub recipe: String,
    pub recipe_sha256: String,
    pub adapter: String,
    pub seed: u64,
    /// Fraction of the test split classified correctly by the reported classifier: the last
    /// epoch's, or with `classifier.select = "best-validation"` the epoch of best validation
    /// accuracy (the first of equals).
    pub test_accuracy: f64,
    pub selection: crate::nn::recipe::Selection,
    /// The reported classifier epoch (0-based) and its validation accuracy, if any.
    pub selected_epoch: usize,
    pub validation_accuracy: Option<f64>,
    /// The last epoch's test accuracy (equal to `test_accuracy` when selecting the last).
    pub last_epoch_test_accuracy: f64,
    pub validation_items: usize,
    pub test_items: usize,
    pub train_items: usize,
    pub labeled_items: usize,
    pub label_fraction: f64,
    pub epochs: Vec<EpochRecord>,
    /// Images per second over all Hebbian stages and over all classifier epochs.
    pub hebbian_images_per_s: f64,
    pub classifier_images_per_s: f64,
    pub skipped_items: usize,
    pub first_skipped: Option<String>,
    /// Whether this run continued an interrupted one from its checkpoint.
    pub resumed: bool,
    /// Checkpoints this process wrote (the last resume's, when resumed) and the seconds they
    /// took: the cost of `--checkpoint-every`.
    pub checkpoints_written: usize,
    pub checkpoint_seconds: f64,
    /// The command line's overrides of the run (the seed and dataset folder included).
    pub overrides: Overrides,
    /// The last epoch's checkpoint, and with best-validation selection the selected epoch's,
    /// whose test accuracy `test_accuracy` is.
    pub checkpoint: PathBuf,
    pub best_checkpoint: Option<PathBuf>,
    pub filters_png: PathBuf,
    /// Loss, accuracy and weight-norm curves per epoch (`curves.rs`).
    pub curves_png: PathBuf,
    /// With `[finetune]`: the blocks that learned with the classifier by backpropagation
    /// (the supervised stage's epochs, recorded as "classifier", were end to end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fine_tuned_layers: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fine_tuned_from: Option<crate::nn::recipe::FineTuneFrom>,
    /// Processes that trained the model (`TrainOptions::group`), each on its shard of every
    /// global batch of `ranks` x the recipe's batch.
    pub ranks: usize,
}

/// How a run ended.
pub enum Outcome {
    Finished(Box<Metrics>),
    /// Stopped at a batch boundary; the checkpoint holds the position.
    Interrupted(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Greedy: this layer learns; earlier ones are frozen.
    Layer(usize),
    /// Simultaneous: every layer learns from the same forward pass.
    AllLayers,
    Classifier,
}

impl Stage {
    fn label(self) -> String {
        match self {
            Stage::Layer(i) => format!("hebbian layer {i}"),
            Stage::AllLayers => "hebbian (all layers)".into(),
            Stage::Classifier => "classifier".into(),
        }
    }
}

/// Hebbian batches between checks that the weights are finite (each check is a readback).
const FINITE_CHECK_EVERY: usize = 32;
/// Finite-check slots per Hebbian layer: W, the input BN's γ, β, the output BN's γ, β.
const FINITE_SLOTS: usize = 3;

fn stages(recipe: &Recipe) -> Vec<Stage> {
    let from_random = recipe
        .finetune
        .as_ref()
        .is_some_and(|f| f.from == FineTuneFrom::Random);
    let mut s: Vec<Stage> = match recipe.hebbian.schedule {
        // The backprop baseline: no Hebbian stage.
        _ if from_random => Vec::new(),
        Schedule::Greedy => (0..recipe.layers.len()).map(Stage::Layer).collect(),
        Schedule::Simultaneous => vec![Stage::AllLayers],
    };
    s.push(Stage::Classifier);
    s
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn data_err(e: crate::data::DataError) -> HebbError {
    HebbError::Data(e)
}

/// The recipe with the overrides applied.
pub fn effective_recipe(recipe: &Recipe, o: &Overrides) -> Recipe {
    let mut r = recipe.clone();
    if let Some(e) = o.epochs {
        r.classifier.epochs = e;
    }
    if let Some(e) = o.hebbian_epochs {
        r.hebbian.epochs = e;
    }
    if let Some(f) = o.label_fraction {
        r.classifier.label_fraction = f;
    }
    if let Some(s) = o.seed {
        r.seed = s;
    }
    r
}

/// One seed's result in a multi-seed run.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub test_accuracy: f64,
    pub out: PathBuf,
}

/// One row of a regimes table: a label fraction's result.
#[derive(Clone, Debug, Serialize)]
pub struct RegimeResult {
    pub fraction: f64,
    /// "fine-tuned" (Hebbian pre-training, then end to end), "backprop" (`[finetune]` from
    /// random weights) or "linear probe" (frozen Hebbian features).
    pub method: String,
    pub labeled_items: usize,
    pub test_accuracy: f64,
    pub validation_accuracy: Option<f64>,
    pub out: PathBuf,
}

/// Lagani's semi-supervised table: one supervised stage per label fraction.
#[derive(Clone, Debug, Serialize)]
pub struct RegimesSummary {
    pub recipe: String,
    pub regimes: Vec<RegimeResult>,
}

/// The method a recipe's supervised stage is, as the regimes table names it.
fn method(recipe: &Recipe) -> &'static str {
    match recipe.finetune.as_ref().map(|f| f.from) {
        Some(FineTuneFrom::Hebbian) => "fine-tuned",
        Some(FineTuneFrom::Random) => "backprop",
        None => "linear probe",
    }
}

/// Trains `recipe` once per label fraction into `opts.out/regime-<fraction>` and writes
/// `opts.out/regimes.json`, Lagani's semi-supervised regimes. Each fraction is a stratified
/// subset fixed by the seed (as `--label-fraction`). The Hebbian stages run once, in the first
/// fraction's run; every other fraction's supervised stage starts from that run's
/// `pretrained.safetensors`. A fraction whose folder holds a finished run of this recipe is
/// read; an interrupted one is resumed. Stops (Ok(None)) when a run is interrupted.
pub fn train_regimes(
    ctx: &GpuContext,
    recipe: &Recipe,
    recipe_text: &str,
    opts: &TrainOptions,
    fractions: &[f64],
) -> Result<Option<RegimesSummary>> {
    let mut regimes = Vec::new();
    let mut pretrained: Option<PathBuf> = None;
    for &fraction in fractions {
        let out = opts.out.join(format!("regime-{fraction}"));
        let one = TrainOptions {
            overrides: Overrides {
                label_fraction: Some(fraction),
                ..opts.overrides.clone()
            },
            out: out.clone(),
            stop: opts.stop.clone(),
            checkpoint_seconds: opts.checkpoint_seconds,
            overwrite: opts.overwrite,
            stop_after_batches: opts.stop_after_batches,
            progress_bars: opts.progress_bars,
            group: opts.group.clone(),
        };
        one.overrides.validate().map_err(HebbError::Config)?;
        let metrics_path = out.join("metrics.json");
        let metrics: serde_json::Value = if metrics_path.exists() && !opts.overwrite {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&metrics_path).map_err(|e| {
                    HebbError::Io {
                        path: metrics_path.clone(),
                        source: e,
                    }
                })?)
                .map_err(|e| HebbError::Format {
                    path: metrics_path.clone(),
                    message: e.to_string(),
                })?;
            let same = m["recipe_sha256"].as_str() == Some(&sha256_hex(recipe_text.as_bytes()))
                && m["label_fraction"].as_f64() == Some(fraction);
            if !same {
                return Err(HebbError::Format {
                    path: metrics_path,
                    message: format!(
                        "holds a run of another recipe text or label fraction than {fraction}; \
                         replace it with --overwrite or choose another --out"
                    ),
                });
            }
            eprintln!(
                "label fraction {fraction}: finished earlier ({})",
                out.display()
            );
            m
        } else {
            eprintln!("label fraction {fraction}: {}", out.display());
            let resuming = !opts.overwrite && out.join(checkpoint::FILE).exists();
            let outcome = match (&pretrained, resuming) {
                (_, true) => resume(ctx, &out, &one)?,
                (Some(p), false) => {
                    let restart = SupervisedRestart {
                        label_fraction: Some(fraction),
                        epochs: None,
                    };
                    resume_with(ctx, p, &one, Some(restart))?
                }
                (None, false) => train(ctx, recipe, recipe_text, &one)?,
            };
            match outcome {
                Outcome::Finished(m) => {
                    serde_json::to_value(&*m).map_err(|e| HebbError::Format {
                        path: metrics_path.clone(),
                        message: e.to_string(),
                    })?
                }
                Outcome::Interrupted(_) => return Ok(None),
            }
        };
        let field = |key: &str| metrics[key].as_f64();
        regimes.push(RegimeResult {
            fraction,
            method: method(recipe).into(),
            labeled_items: metrics["labeled_items"].as_u64().unwrap_or(0) as usize,
            test_accuracy: field("test_accuracy").ok_or_else(|| HebbError::Format {
                path: metrics_path.clone(),
                message: "no test_accuracy".into(),
            })?,
            validation_accuracy: field("validation_accuracy"),
            out: out.clone(),
        });
        // Later fractions start from this run's Hebbian network, where it has one.
        if pretrained.is_none() && out.join(PRETRAINED_FILE).exists() {
            pretrained = Some(out.join(PRETRAINED_FILE));
        }
    }
    let summary = RegimesSummary {
        recipe: recipe.name.clone(),
        regimes,
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| HebbError::Io {
        path: opts.out.join("regimes.json"),
        source: std::io::Error::other(e.to_string()),
    })?;
    std::fs::create_dir_all(&opts.out).map_err(|e| HebbError::Io {
        path: opts.out.clone(),
        source: e,
    })?;
    checkpoint::write_atomic(&opts.out.join("regimes.json"), &json)?;
    Ok(Some(summary))
}

/// A recipe trained once per seed, as papers that average over seeds report it.
#[derive(Clone, Debug, Serialize)]
pub struct SeedsSummary {
    pub recipe: String,
    pub runs: Vec<SeedResult>,
    /// Mean and sample standard deviation of the test accuracies (0 for one seed).
    pub mean: f64,
    pub std: f64,
}

/// Trains `recipe` once per seed into `opts.out/seed<N>`, then writes `opts.out/seeds.json`
/// with each seed's test accuracy and their mean ± s.d. A seed whose folder holds a finished
/// run is read, not retrained; one holding an interrupted run is resumed. Stops (Ok(None))
/// when a run is interrupted.
pub fn train_seeds(
    ctx: &GpuContext,
    recipe: &Recipe,
    recipe_text: &str,
    opts: &TrainOptions,
    seeds: &[u64],
) -> Result<Option<SeedsSummary>> {
    let mut runs = Vec::new();
    for &seed in seeds {
        let out = opts.out.join(format!("seed{seed}"));
        let metrics = out.join("metrics.json");
        let one = TrainOptions {
            overrides: Overrides {
                seed: Some(seed),
                ..opts.overrides.clone()
            },
            out: out.clone(),
            stop: opts.stop.clone(),
            checkpoint_seconds: opts.checkpoint_seconds,
            overwrite: opts.overwrite,
            stop_after_batches: opts.stop_after_batches,
            progress_bars: opts.progress_bars,
            group: opts.group.clone(),
        };
        let test_accuracy = if metrics.exists() && !opts.overwrite {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&metrics).map_err(|e| HebbError::Io {
                    path: metrics.clone(),
                    source: e,
                })?)
                .map_err(|e| HebbError::Format {
                    path: metrics.clone(),
                    message: e.to_string(),
                })?;
            // Only a run of this recipe, seed and options counts towards the mean.
            let stored: Option<Overrides> = serde_json::from_value(m["overrides"].clone()).ok();
            let same = m["recipe_sha256"].as_str() == Some(&sha256_hex(recipe_text.as_bytes()))
                && stored.is_some_and(|o| {
                    (
                        o.seed,
                        o.epochs,
                        o.hebbian_epochs,
                        o.label_fraction,
                        o.limit,
                    ) == (
                        Some(seed),
                        opts.overrides.epochs,
                        opts.overrides.hebbian_epochs,
                        opts.overrides.label_fraction,
                        opts.overrides.limit,
                    )
                });
            if !same {
                return Err(HebbError::Format {
                    path: metrics.clone(),
                    message: format!(
                        "holds a run of another recipe text or other options than seed {seed} \
                         asks for; replace it with --overwrite or choose another --out"
                    ),
                });
            }
            eprintln!("seed {seed}: finished earlier ({})", out.display());
            m["test_accuracy"]
                .as_f64()
                .ok_or_else(|| HebbError::Format {
                    path: metrics.clone(),
                    message: "no test_accuracy".into(),
                })?
        } else {
            eprintln!("seed {seed}: {}", out.display());
            let resuming = !opts.overwrite && out.join(checkpoint::FILE).exists();
            let outcome = if resuming {
                resume(ctx, &out, &one)?
            } else {
                train(ctx, recipe, recipe_text, &one)?
            };
            match outcome {
                Outcome::Finished(m) => m.test_accuracy,
                Outcome::Interrupted(_) => return Ok(None),
            }
        };
        runs.push(SeedResult {
            seed,
            test_accuracy,
            out,
        });
    }
    let n = runs.len() as f64;
    let mean = runs.iter().map(|r| r.test_accuracy).sum::<f64>() / n.max(1.0);
    let var = runs
        .iter()
        .map(|r| (r.test_accuracy - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    let summary = SeedsSummary {
        recipe: recipe.name.clone(),
        runs,
        mean,
        std: var.sqrt(),
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| HebbError::Format {
        path: opts.out.join("seeds.json"),
        message: e.to_string(),
    })?;
    checkpoint::write_atomic(&opts.out.join("seeds.json"), &json)?;
    Ok(Some(summary))
}

/// The input standardisation the recipe asks for.
fn standardization(
    recipe: &Recipe,
    train: &dyn Source,
    items: &[usize],
) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    Ok(match &recipe.preprocess.normalize {
        Normalize::None => None,
        Normalize::Named(n) if n == "none" => None,
        Normalize::Named(_) => {
            // Statistics of (up to) the first 10,000 training items.
            let sample = &items[..items.len().min(10_000)];
            Some(data::channel_stats(train, sample).map_err(data_err)?)
        }
        Normalize::Explicit { mean, std } => Some((mean.clone(), std.clone())),
    })
}

/// The ZCA whitening the recipe asks for: (μ, Z) fitted to the first `samples` whitening
/// vectors of the training items after the standardisation `std`.
fn whitening(
    recipe: &Recipe,
    train: &dyn Source,
    items: &[usize],
    std: Option<&(Vec<f32>, Vec<f32>)>,
) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    let Some(spec) = recipe.preprocess.zca else {
        return Ok(None);
    };
    let geometry = ZcaGeometry::new(train.shape())?;
    let started = Instant::now();
    let rows = data::zca_vectors(train, items, spec.samples, std, &geometry).map_err(data_err)?;
    let d = geometry.dim();
    let moments = if spec.center {
        zca::Moments::Centred
    } else {
        zca::Moments::AboutZero
    };
    let fit = zca::fit(&rows, d, spec.epsilon, moments)?;
    let [bh, bw] = geometry.block;
    eprintln!(
        "ZCA whitening: {} vectors of {d} values ({bh}x{bw} {}), {}, ε = {:e}, fitted in \
         {:.1} s (eigendecomposition {:.1} s)",
        rows.len() / d,
        if geometry.whole() { "images" } else { "blocks" },
        if spec.center {
            "covariance about the mean"
        } else {
            "second moment about zero"
        },
        spec.epsilon,
        started.elapsed().as_secs_f64(),
        fit.eigen_seconds
    );
    let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    Ok(Some((narrow(&fit.mean), narrow(&fit.matrix))))
}

fn workers(recipe: &Recipe) -> usize {
    recipe.data.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(8)
    })
}

fn bar(total: usize, prefix: String, visible: bool) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(total as u64),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>28} [{bar:30}] {pos}/{len} images  {per_sec}  ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}

/// Frozen features of a list of items kept on the host (row j: the j-th item's features)
/// when they fit the feature-cache budget, in f32 or, where only that fits, f16.
pub enum FeatureCache {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl FeatureCache {
    fn row(&self, i: usize, f: usize, out: &mut Vec<f32>) {
        match self {
            FeatureCache::F32(v) => out.extend_from_slice(&v[i * f..(i + 1) * f]),
            FeatureCache::F16(v) => out.extend(v[i * f..(i + 1) * f].iter().map(|h| h.to_f32())),
        }
    }
}

struct Trainer<'a> {
    ctx: &'a GpuContext,
    recipe: Recipe,
    recipe_text: String,
    overrides: Overrides,
    opts: &'a TrainOptions,
    net: Network,
    train: Arc<dyn Source>,
    test: Arc<dyn Source>,
    train_items: Vec<usize>,
    /// Training-split items held out for validation (empty without `data.validation`).
    val_items: Vec<usize>,
    test_items: Vec<usize>,
    labeled: Vec<usize>,
    history: Vec<EpochRecord>,
    skipped: usize,
    first_skipped: Option<String>,
    batches_run: usize,
    features: Tensor,
    check: Tensor,
    sums: Vec<Tensor>,
    resumed: bool,
    /// When the last checkpoint was written (mid-epoch checkpoints follow
    /// `TrainOptions::checkpoint_seconds`).
    last_save: std::cell::Cell<Instant>,
    /// Checkpoints written by this process and the seconds they took (readback, write, fsync).
    checkpoints: std::cell::Cell<(usize, f64)>,
    /// Host bytes the classifier's feature caches hold.
    feature_cache_bytes: u64,
    /// Files of an earlier run that `--overwrite` replaces, removed at the first save.
    replaces: std::cell::Cell<Option<Vec<PathBuf>>>,
}

/// Trains `recipe` (its TOML text is stored in the checkpoint) from scratch. A checkpoint
/// is written before the first batch, so an unwritable output folder is found at once and a
/// run killed at any later point can be resumed.
pub fn train(
    ctx: &GpuContext,
    recipe: &Recipe,
    recipe_text: &str,
    opts: &TrainOptions,
) -> Result<Outcome> {
    check_options(recipe, &opts.overrides)?;
    let replaced = if opts.group.rank() == 0 {
        prepare_out(&opts.out, opts.overwrite)?
    } else {
        Vec::new()
    };
    let mut t = Trainer::new(ctx, recipe, recipe_text, opts.overrides.clone(), opts, None)?;
    t.replaces.set(Some(replaced));
    let start = Position::default();
    t.save(&start)?;
    t.run(start)
}

/// The command line's overrides, and the recipe with them applied, must be valid.
fn check_options(recipe: &Recipe, overrides: &Overrides) -> Result<()> {
    overrides.validate().map_err(|message| HebbError::Format {
        path: "command line".into(),
        message,
    })?;
    effective_recipe(recipe, overrides)
        .validate()
        .map_err(|message| HebbError::Format {
            path: format!("recipe {} with the command line's overrides", recipe.name).into(),
            message,
        })
}

/// The files a finished or interrupted run leaves in its folder.
const RUN_FILES: [&str; 6] = [
    checkpoint::FILE,
    BEST_FILE,
    PRETRAINED_FILE,
    "metrics.json",
    "filters.png",
    curves::FILE,
];

/// Readies `out` for a new run: refuses a file or a folder that already holds a run (unless
/// `overwrite`, which removes that run's files), removes temporaries left by a crash, and
/// checks that the folder is writable before any work is done.
fn prepare_out(out: &Path, overwrite: bool) -> Result<Vec<PathBuf>> {
    let invalid = |message: String| HebbError::Format {
        path: out.to_path_buf(),
        message,
    };
    if out.exists() && !out.is_dir() {
        return Err(invalid(
            "the output folder (--out) is a file; expected a folder".into(),
        ));
    }
    let existing: Vec<&str> = RUN_FILES
        .iter()
        .copied()
        .filter(|f| out.join(f).exists())
        .collect();
    if !existing.is_empty() && !overwrite {
        return Err(invalid(format!(
            "already holds a run ({}); continue it with `hebb train --resume {}`, replace it \
             with --overwrite, or choose another folder with --out",
            existing.join(", "),
            out.display()
        )));
    }
    let replaced: Vec<PathBuf> = existing.iter().map(|f| out.join(f)).collect();
    std::fs::create_dir_all(out).map_err(|e| HebbError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    checkpoint::remove_stale_temporaries(out);
    let probe = out.join(format!(".hebb-write-check.{}", std::process::id()));
    std::fs::write(&probe, b"hebb").map_err(|e| HebbError::Io {
        path: out.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("the output folder is not writable: {e}")),
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(replaced)
}

/// A metadata key of a checkpoint parsed as JSON into `T`; malformed or missing metadata is
/// an error naming the key, never a silent default.
pub(crate) fn meta_json<T: serde::de::DeserializeOwned>(
    ck: &checkpoint::Loaded,
    key: &str,
) -> Result<T> {
    serde_json::from_str(ck.meta(key)?).map_err(|e| HebbError::Format {
        path: ck.path.clone(),
        message: format!("metadata {key:?} is malformed: {e}"),
    })
}

/// What a checkpoint's metadata says about its run, parsed and checked against its recipe
/// before any GPU work: malformed or inconsistent metadata is an error naming the key.
#[derive(Debug)]
pub struct ResumeState {
    pub recipe: Recipe,
    pub recipe_text: String,
    pub overrides: Overrides,
    pub position: Position,
    pub history: Vec<EpochRecord>,
    pub rule_steps: Vec<u32>,
    pub classifier_steps: u32,
    /// Fine-tuning's optimizer steps per block (empty in checkpoints written before
    /// fine-tuning existed, which had none).
    pub finetune_steps: Vec<u32>,
    /// The position is the end of the run: it finished, or was killed while finishing (then
    /// its metrics.json is missing and a resume writes it).
    pub finishing: bool,
}

impl ResumeState {
    /// Reads the metadata of `ck`; `data`, when given, replaces the stored dataset folder.
    pub fn from_checkpoint(ck: &checkpoint::Loaded, data: Option<&Path>) -> Result<Self> {
        let bad = |message: String| HebbError::Format {
            path: ck.path.clone(),
            message,
        };
        let text = ck.meta("recipe")?.to_string();
        let recipe = Recipe::parse(&text, &ck.path)
            .map_err(|e| bad(format!("metadata \"recipe\": {}", e.message)))?;
        let mut overrides: Overrides = meta_json(ck, "overrides")?;
        let position: Position = meta_json(ck, "position")?;
        let history: Vec<EpochRecord> = meta_json(ck, "history")?;
        let rule_steps: Vec<u32> = meta_json(ck, "rule_steps")?;
        let classifier_steps: u32 = meta_json(ck, "classifier_steps")?;
        let finetune_steps: Vec<u32> = match ck.metadata.contains_key("finetune_steps") {
            true => meta_json(ck, "finetune_steps")?,
            false => Vec::new(),
        };
        if let Some(data) = data {
            overrides.data = Some(data.to_path_buf());
        }
        overrides
            .validate()
            .map_err(|e| bad(format!("metadata \"overrides\": {e}")))?;
        let effective = effective_recipe(&recipe, &overrides);
        effective
            .validate()
            .map_err(|e| bad(format!("metadata \"overrides\" applied to the recipe: {e}")))?;
        let all = stages(&effective);
        let finishing = position.stage == all.len() && position.epoch == 0 && position.batch == 0;
        let epochs = match all.get(position.stage) {
            Some(Stage::Classifier) => effective.classifier.epochs,
            _ => effective.hebbian.epochs,
        };
        let (loss, correct, items, seconds) = position.running;
        if !finishing
            && (position.stage >= all.len()
                || position.epoch > epochs
                || correct > items
                || !loss.is_finite()
                || !seconds.is_finite())
        {
            return Err(bad(format!(
                "metadata \"position\" {position:?} is not a point of this recipe's run: {} \
                 stages of {} Hebbian and {} classifier epochs",
                all.len(),
                effective.hebbian.epochs,
                effective.classifier.epochs
            )));
        }
        if rule_steps.len() != recipe.layers.len() {
            return Err(bad(format!(
                "metadata \"rule_steps\" has {} entries for the recipe's {} layers",
                rule_steps.len(),
                recipe.layers.len()
            )));
        }
        Ok(Self {
            recipe,
            recipe_text: text,
            overrides,
            position,
            history,
            rule_steps,
            classifier_steps,
            finetune_steps,
            finishing,
        })
    }
}

/// Continues the run whose checkpoint is in `dir` (recipe and overrides come from it; a
/// `--data` given now replaces the stored dataset folder, for a dataset that moved).
pub fn resume(ctx: &GpuContext, dir: &Path, opts: &TrainOptions) -> Result<Outcome> {
    resume_with(ctx, dir, opts, None)
}

/// What may change when a supervised stage starts over from a Hebbian pre-training
/// (`PRETRAINED_FILE`), whose labels nothing has seen yet: `None` keeps the stored value.
#[derive(Clone, Copy, Debug, Default)]
pub struct SupervisedRestart {
    pub label_fraction: Option<f64>,
    /// Classifier epochs.
    pub epochs: Option<usize>,
}

/// `resume` from the checkpoint at `path` (a file or a run folder) into `opts.out`. With
/// `restart`, the checkpoint must stand at the start of the supervised stage, and the label
/// fraction and classifier epochs it names replace the stored ones: `--regimes` runs each
/// fraction's supervised stage from one Hebbian pre-training, and `--pretrained` trains a new
/// read-out on a finished run's Hebbian layers.
pub fn resume_with(
    ctx: &GpuContext,
    path: &Path,
    opts: &TrainOptions,
    restart: Option<SupervisedRestart>,
) -> Result<Outcome> {
    let ck = checkpoint::load(path)?;
    let mut state = ResumeState::from_checkpoint(&ck, opts.overrides.data.as_deref())?;
    let refuse = |message: String| HebbError::Format {
        path: ck.path.clone(),
        message,
    };
    match restart {
        Some(_) => {
            let start = Position {
                stage: stages(&state.recipe).len() - 1,
                ..Default::default()
            };
            if state.position != start {
                let p = &state.position;
                return Err(refuse(format!(
                    "stands at stage {} epoch {} batch {}, not at the start of the supervised \
                     stage; a new read-out starts from a run's {PRETRAINED_FILE}",
                    p.stage, p.epoch, p.batch
                )));
            }
        }
        None if state.finishing && ck.path.with_file_name("metrics.json").exists() => {
            return Err(refuse(
                "this run has finished (its results are in metrics.json beside it); start a new \
                 run with another --out, or replace this one with --overwrite"
                    .into(),
            ));
        }
        None => {}
    }
    // Every rank has read the checkpoint before rank 0 may write over it (or finish the run).
    opts.group.all_reduce_sum_u64(&mut [0]);
    if let Some(restart) = restart {
        let o = &mut state.overrides;
        o.label_fraction = restart.label_fraction.or(o.label_fraction);
        o.epochs = restart.epochs.or(o.epochs);
        o.validate().map_err(HebbError::Config)?;
    }
    let dir = ck.path.parent().unwrap_or(Path::new("."));
    // Continued into another folder: the same refusal as a new run there, and the same
    // `--overwrite`.
    let elsewhere = std::fs::canonicalize(&opts.out).ok() != std::fs::canonicalize(dir).ok();
    let mut replaced = None;
    if opts.group.rank() == 0 {
        if elsewhere {
            replaced = Some(prepare_out(&opts.out, opts.overwrite)?);
        }
        checkpoint::remove_stale_temporaries(&opts.out);
    }
    // The whitening is restored rather than refitted: the same transform, without the wait.
    let mut t = Trainer::new(
        ctx,
        &state.recipe,
        &state.recipe_text,
        state.overrides,
        opts,
        ck.zca(),
    )?;
    t.replaces.set(replaced);
    ck.restore(ctx, &t.net)?;
    for (l, s) in t.net.layers.iter_mut().zip(state.rule_steps) {
        l.rule.set_steps_done(s);
    }
    t.net.classifier.steps = state.classifier_steps;
    for (l, s) in t.net.layers.iter_mut().zip(state.finetune_steps) {
        l.set_fine_tune_steps(s);
    }
    t.history = state.history;
    // A new supervised stage on finished pre-training (`--regimes`, `--pretrained`) is not
    // the continuation of an interrupted run.
    t.resumed = restart.is_none();
    let position = state.position;
    if restart.is_some() {
        t.say(&format!(
            "{}: a new supervised stage on the Hebbian layers of {}",
            state.recipe.name,
            ck.path.display()
        ));
    } else {
        t.say(&format!(
            "resuming {} at {} epoch {} batch {}",
            state.recipe.name,
            stages(&t.recipe)
                .get(position.stage)
                .map_or("the end".to_string(), |s| s.label()),
            position.epoch,
            position.batch
        ));
    }
    t.run(position)
}

impl<'a> Trainer<'a> {
    fn new(
        ctx: &'a GpuContext,
        recipe: &Recipe,
        recipe_text: &str,
        overrides: Overrides,
        opts: &'a TrainOptions,
        stored_zca: Option<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Self> {
        let mut overrides = overrides;
        check_options(recipe, &overrides)?;
        let recipe = effective_recipe(recipe, &overrides);
        let root = data::data_root(&recipe, overrides.data.as_deref()).map_err(data_err)?;
        // Stored absolute, so `--resume` works from any working directory.
        let root = std::path::absolute(&root).unwrap_or(root);
        overrides.data = Some(root.clone());
        let splits = data::open(&recipe, &root).map_err(data_err)?;
        let train_items = data::limited(splits.train.len(), overrides.limit);
        let (train_items, val_items, labeled) = data::split_items(
            &*splits.train,
            &train_items,
            recipe.data.validation,
            recipe.data.split,
            recipe.classifier.label_fraction,
            recipe.seed,
        )
        .map_err(|message| HebbError::Format {
            path: splits.train.describe().into(),
            message,
        })?;
        let test_items = data::limited(splits.test.len(), overrides.limit);
        if train_items.is_empty() || test_items.is_empty() {
            return Err(data_err(crate::data::DataError::bad(
                &root,
                "the train or test split has no items".into(),
            )));
        }
        let std = standardization(&recipe, &*splits.train, &train_items)?;
        let zca = match stored_zca {
            Some(z) if recipe.preprocess.zca.is_some() => Some(z),
            _ => whitening(&recipe, &*splits.train, &train_items, std.as_ref())?,
        };
        let classes = splits.train.classes();
        let size = opts.group.size();
        if size > 1 && recipe.finetune.is_some() {
            return Err(HebbError::Config(format!(
                "recipe {}: [finetune] runs in one process; its gradients through the Hebbian \
                 blocks are not summed over the {size} ranks of this job (run it without mpirun)",
                recipe.name
            )));
        }
        // In a process group a rank's last batch of an epoch may hold one item more than the
        // recipe's batch (`dist::shard_chunks`).
        let mut sized = recipe.clone();
        sized.hebbian.batch = dist::local_capacity(recipe.hebbian.batch, size);
        sized.classifier.batch = dist::local_capacity(recipe.classifier.batch, size);
        let mut net = Network::new(ctx, &sized, splits.train.shape(), classes, std, zca)?;
        if let Some(f) = &recipe.finetune {
            net.enable_fine_tuning(
                ctx,
                recipe.classifier.batch,
                &f.learning(recipe.layers.len()),
            )?;
        }
        let features = Tensor::empty(
            ctx,
            "classifier features",
            &[net.capacity * net.feature_len()],
            DType::F32,
        )?;
        // FINITE_SLOTS slots per Hebbian layer (W, then the fine-tuned γ, β of its input and
        // output batch norms); the classifier checks its own weights in its report.
        let slots = FINITE_SLOTS * recipe.layers.len();
        let check = Tensor::empty(ctx, "finite check", &[slots], DType::F32)?;
        let sums = (0..slots)
            .map(|i| Tensor::empty(ctx, &format!("Σw² {i}"), &[1], DType::F32))
            .collect::<Result<_>>()?;
        Ok(Self {
            sums,
            ctx,
            recipe_text: recipe_text.to_string(),
            overrides,
            opts,
            net,
            train: splits.train,
            test: splits.test,
            train_items,
            val_items,
            test_items,
            labeled,
            history: Vec::new(),
            skipped: 0,
            first_skipped: None,
            batches_run: 0,
            features,
            check,
            resumed: false,
            last_save: std::cell::Cell::new(Instant::now()),
            checkpoints: std::cell::Cell::new((0, 0.0)),
            feature_cache_bytes: 0,
            replaces: std::cell::Cell::new(None),
            recipe,
        })
    }

    /// This rank's Hebbian batches of an epoch: its shards of the global batches of the first
    /// `visit` items of the epoch's shuffled order, from `pos` on (no augmentation: the rules
    /// learn from the plain images).
    fn loader(
        &self,
        items: &[usize],
        visit: usize,
        pos: &Position,
        batch: usize,
        epoch: u64,
        salt: u64,
    ) -> Loader {
        let order: Vec<usize> = epoch_order(items.len(), self.recipe.seed ^ salt, epoch)
            .into_iter()
            .take(visit)
            .map(|i| items[i])
            .collect();
        let chunks = self.shards(order.len(), pos, batch);
        Loader::over_chunks(
            self.train.clone(),
            Arc::new(order),
            Arc::new(chunks),
            pos.batch,
            LoaderOptions {
                batch,
                workers: workers(&self.recipe),
                prefetch: 2,
                seed: self.recipe.seed,
                epoch,
                augment: false,
            },
        )
    }

    /// The process group training this model.
    fn group(&self) -> &dyn Collective {
        &*self.opts.group
    }

    /// Prints a message of the run once: on rank 0.
    fn say(&self, text: &str) {
        if self.group().rank() == 0 {
            eprintln!("{text}");
        }
    }

    /// Whether this process shows progress bars (rank 0 only, where asked).
    fn bars(&self) -> bool {
        self.opts.progress_bars && self.group().rank() == 0
    }

    /// This rank's item ranges of an epoch order of `len` items, one per global batch of the
    /// group, from `pos.first_item` (`dist::shard_chunks`).
    fn shards(&self, len: usize, pos: &Position, batch: usize) -> Vec<std::ops::Range<usize>> {
        let g = self.group();
        dist::shard_chunks(len, pos.first_item, batch, g.rank(), g.size())
    }

    /// Sets `pos` up for global batches of `batch` x ranks over an epoch order of `len` items.
    /// A checkpoint written mid-epoch with another global batch (another number of ranks)
    /// continues from the item it reached: the end of its last global batch, as
    /// `dist::shard_chunks` cut them for that group (the last rank's shard ends the batch).
    fn regroup(&self, pos: &mut Position, batch: usize, len: usize) {
        let global = batch * self.group().size();
        let before = if pos.global_batch == 0 {
            batch
        } else {
            pos.global_batch
        };
        if before != global && pos.batch > 0 {
            let ranks = (before / batch.max(1)).max(1);
            pos.first_item = dist::item_after(len, pos.first_item, batch, ranks, pos.batch);
            pos.batch = 0;
        }
        pos.global_batch = global;
    }

    /// The images of global batch `number` over all ranks, given the `len` this rank read,
    /// and where this rank's rows begin in it (ranks hold the batch in rank order). Every rank
    /// must hold at least one: a rank with none cannot take part in the sums of the step (all
    /// ranks see the same counts and fail together).
    fn global_images(&self, len: usize, what: &str, number: usize) -> Result<(usize, usize)> {
        let g = self.group();
        if g.size() == 1 {
            return Ok((len, 0));
        }
        let lens = g.all_gather_u64(len as u64);
        let total = lens.iter().sum::<u64>() as usize;
        let first = lens[..g.rank()].iter().sum::<u64>() as usize;
        let empty = lens.iter().filter(|&&l| l == 0).count();
        if total > 0 && empty > 0 {
            return Err(HebbError::Format {
                path: self.train.describe().into(),
                message: format!(
                    "{what}, global batch {number}: {empty} of {} ranks have no readable item in \
                     their shard ({total} items in all); every rank needs at least one (fewer \
                     ranks, a larger batch, or fewer unreadable files)",
                    g.size()
                ),
            });
        }
        Ok((total, first))
    }

    /// Whether any rank was asked to stop (Ctrl-C, SIGTERM, `stop_after_batches`): the ranks
    /// stop at the same batch.
    fn stop_agreed(&self) -> bool {
        let mine = self.should_stop();
        let g = self.group();
        if g.size() == 1 {
            return mine;
        }
        let mut votes = [u64::from(mine)];
        g.all_reduce_sum_u64(&mut votes);
        votes[0] > 0
    }

    /// Fails unless every rank holds bit-identical `values` (a layer's weights after an epoch):
    /// the ranks apply the same summed updates, so any difference is a bug, reported rather
    /// than trained on.
    fn check_agreement(&self, what: &str, bytes: &[u8]) -> Result<()> {
        let g = self.group();
        if g.size() == 1 {
            return Ok(());
        }
        let prints = g.all_gather_u64(dist::fingerprint(bytes));
        if prints.iter().any(|&p| p != prints[0]) {
            return Err(HebbError::Divergence {
                stage: what.into(),
                message: format!(
                    "the {} ranks hold different values (fingerprints {prints:x?}); the run \
                     stopped at the last checkpoint",
                    g.size()
                ),
            });
        }
        Ok(())
    }

    fn note_skipped(&mut self, skipped: &[(usize, String)]) {
        self.skipped += skipped.len();
        if self.first_skipped.is_none()
            && let Some((_, e)) = skipped.first()
        {
            self.first_skipped = Some(e.clone());
        }
    }

    fn save(&self, position: &Position) -> Result<PathBuf> {
        self.save_as(position, &[checkpoint::FILE])
    }

    /// The checkpoint at `position` in the output folder under each name of `files`, in order,
    /// from one readback; returns the last file's path.
    fn save_as(&self, position: &Position, files: &[&str]) -> Result<PathBuf> {
        let paths: Vec<PathBuf> = files.iter().map(|f| self.opts.out.join(f)).collect();
        let path = paths
            .last()
            .cloned()
            .unwrap_or_else(|| self.opts.out.clone());
        if self.group().rank() != 0 {
            self.last_save.set(Instant::now());
            return Ok(path);
        }
        let mut meta = HashMap::new();
        let json = |v: serde_json::Value| v.to_string();
        meta.insert("recipe".into(), self.recipe_text.clone());
        meta.insert("recipe_name".into(), self.recipe.name.clone());
        meta.insert(
            "overrides".into(),
            json(serde_json::to_value(&self.overrides).unwrap_or_default()),
        );
        meta.insert(
            "position".into(),
            json(serde_json::to_value(position).unwrap_or_default()),
        );
        meta.insert(
            "history".into(),
            json(serde_json::to_value(&self.history).unwrap_or_default()),
        );
        let steps: Vec<u32> = self
            .net
            .layers
            .iter()
            .map(|l| l.rule.optimizer_state().2)
            .collect();
        meta.insert(
            "rule_steps".into(),
            json(serde_json::to_value(steps).unwrap_or_default()),
        );
        meta.insert(
            "classifier_steps".into(),
            self.net.classifier.steps.to_string(),
        );
        let finetune_steps: Vec<u32> = self
            .net
            .layers
            .iter()
            .map(|l| l.fine_tune_steps())
            .collect();
        meta.insert(
            "finetune_steps".into(),
            json(serde_json::to_value(finetune_steps).unwrap_or_default()),
        );
        meta.insert("adapter".into(), self.ctx.adapter_name());
        meta.insert("classes".into(), self.net.classes.to_string());
        let started = Instant::now();
        // A new run into a folder the user let it overwrite: the old run's files go only now,
        // when there is a checkpoint to replace them.
        if let Some(old) = self.replaces.take() {
            for path in old {
                std::fs::remove_file(&path).map_err(|e| HebbError::Io { path, source: e })?;
            }
        }
        meta.insert("ranks".into(), self.group().size().to_string());
        checkpoint::save_as(self.ctx, &self.net, &paths, meta)?;
        let (n, seconds) = self.checkpoints.get();
        self.checkpoints
            .set((n + 1, seconds + started.elapsed().as_secs_f64()));
        self.last_save.set(Instant::now());
        Ok(path)
    }

    /// Whether a mid-epoch checkpoint is due.
    fn checkpoint_due(&self) -> bool {
        self.last_save.get().elapsed().as_secs_f64() >= self.opts.checkpoint_seconds
    }

    /// Refuses an epoch in which no item could be read: it would "train" on nothing.
    fn some_items_read(&self, what: &str, read: usize, skipped: usize) -> Result<()> {
        if read == 0 {
            return Err(HebbError::Format {
                path: self.train.describe().into(),
                message: format!(
                    "{what}: none of its {skipped} items could be read; the first: {}",
                    self.first_skipped.as_deref().unwrap_or("?")
                ),
            });
        }
        Ok(())
    }

    /// Errors, naming the layer and tensor, if a learning layer's weights, or the γ, β its
    /// batch norms fine-tune, hold NaN or Inf (one readback for all layers).
    fn weights_finite(
        &self,
        learning: &[usize],
        stage: Stage,
        epoch: usize,
        batch: usize,
    ) -> Result<()> {
        let checked = |i: usize| {
            let layer = &self.net.layers[i];
            fn affine(bn: &Option<BnState>) -> Option<&Tensor> {
                bn.as_ref().and_then(|bn| bn.affine.as_ref())
            }
            [
                ("weights", Some(&layer.rule.w)),
                ("input batch norm's γ, β", affine(&layer.input_bn)),
                ("output batch norm's γ, β", affine(&layer.output_bn)),
            ]
        };
        let mut rec = Recorder::new(self.ctx);
        for &i in learning {
            for (k, (_, t)) in checked(i).into_iter().enumerate() {
                if let Some(t) = t {
                    self.finite_check(&mut rec, FINITE_SLOTS * i + k, t)?;
                }
            }
        }
        rec.submit();
        let sums = self.check.to_f32_vec(self.ctx)?;
        for &i in learning {
            for (k, (what, t)) in checked(i).into_iter().enumerate() {
                if t.is_some() && !sums[FINITE_SLOTS * i + k].is_finite() {
                    return Err(HebbError::Divergence {
                        stage: format!("layer {i} ({})", self.recipe.layers[i].rule.name),
                        message: format!(
                            "{what} became NaN/Inf at {} epoch {epoch}, by batch {batch} (rule step {}); training stopped, the last good checkpoint in {} is kept",
                            stage.label(),
                            self.net.layers[i].rule.optimizer_state().2,
                            self.opts.out.display()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Records Σw² of `w` into slot `slot` of the check vector (NaN and Inf propagate through
    /// a sum, unlike through a max, which some GPUs compute ignoring NaN).
    fn finite_check(&self, rec: &mut Recorder<'_>, slot: usize, w: &Tensor) -> Result<()> {
        reduce::global_reduce(rec, ReduceOp::SumSquares, w, &self.sums[slot])?;
        rec.encoder().copy_buffer_to_buffer(
            &self.sums[slot].buffer,
            0,
            &self.check.buffer,
            4 * slot as u64,
            4,
        );
        Ok(())
    }

    fn should_stop(&self) -> bool {
        self.opts.stop.load(Ordering::SeqCst)
            || self
                .opts
                .stop_after_batches
                .is_some_and(|n| self.batches_run >= n)
    }

    fn run(&mut self, start: Position) -> Result<Outcome> {
        // The ranks must train the same run: the same recipe, overrides (the data folder
        // aside, which may be each node's own copy), items and starting point. A difference
        // (another --seed, a node's copy missing files) would pair mismatched collectives.
        let mut overrides = self.overrides.clone();
        overrides.data = None;
        let run = serde_json::json!([
            self.recipe_text,
            overrides,
            [
                self.train_items.len(),
                self.val_items.len(),
                self.test_items.len(),
                self.labeled.len()
            ],
            start,
        ]);
        self.check_agreement(
            "the run's recipe, options, items and position",
            run.to_string().as_bytes(),
        )?;
        let stages = stages(&self.recipe);
        let mut pos = start;
        while pos.stage < stages.len() {
            let stage = stages[pos.stage];
            let done = match stage {
                Stage::Classifier => self.classifier_stage(&mut pos)?,
                _ => self.hebbian_stage(stage, &mut pos)?,
            };
            if !done {
                let path = self.save(&pos)?;
                self.say(&format!(
                    "stopped at {} epoch {} batch {}; checkpoint {} (continue with --resume {})",
                    stage.label(),
                    pos.epoch,
                    pos.batch,
                    path.display(),
                    self.opts.out.display()
                ));
                self.barrier();
                return Ok(Outcome::Interrupted(path));
            }
            pos = Position {
                stage: pos.stage + 1,
                ..Default::default()
            };
            // The Hebbian stages are done: keep the network before any label is seen.
            if stage != Stage::Classifier && stages.get(pos.stage) == Some(&Stage::Classifier) {
                self.save_as(&pos, &[checkpoint::FILE, PRETRAINED_FILE])?;
            }
        }
        let outcome = self.finish(&pos)?;
        self.barrier();
        Ok(outcome)
    }

    /// Redraws curves.png from the history (rank 0).
    fn write_curves(&self) -> Result<()> {
        if self.group().rank() != 0 {
            return Ok(());
        }
        curves::write(&self.opts.out.join(curves::FILE), &self.history)
    }

    /// Waits for every rank: no rank leaves the run (and its process, which an MPI launcher
    /// takes as the job ending) while rank 0 still writes the run's files.
    fn barrier(&self) {
        let mut token = [0u64];
        self.group().all_reduce_sum_u64(&mut token);
    }

    /// Runs the epochs of a Hebbian stage from `pos`; false when interrupted.
    fn hebbian_stage(&mut self, stage: Stage, pos: &mut Position) -> Result<bool> {
        let epochs = self.recipe.hebbian.epochs;
        let batch = self.recipe.hebbian.batch;
        let last = self.net.layers.len() - 1;
        let (upto, learning): (usize, Vec<usize>) = match stage {
            Stage::Layer(i) => (i, vec![i]),
            _ => (last, (0..=last).collect()),
        };
        let items = self.train_items.clone();
        while pos.epoch < epochs {
            let epoch = pos.epoch;
            let scale = match self.recipe.hebbian.lr_schedule {
                HebbLrSchedule::Constant => 1.0,
                HebbLrSchedule::Linear => 1.0 - epoch as f64 / epochs as f64,
            };
            for &i in &learning {
                self.net.layers[i].rule.lr_scale = scale;
            }
            let salt = 0x4EBB_0000 + pos.stage as u64;
            let visit = self
                .recipe
                .hebbian
                .images_per_epoch
                .unwrap_or(items.len())
                .min(items.len());
            self.regroup(pos, batch, visit);
            let loader = self.loader(&items, visit, pos, batch, epoch as u64, salt);
            let batches = loader.batches();
            let total = visit;
            let pb = bar(
                total,
                format!("{} epoch {}", stage.label(), epoch + 1),
                self.bars(),
            );
            pb.set_position((pos.first_item + pos.batch * pos.global_batch).min(total) as u64);
            let started = Instant::now();
            // Items and seconds of this epoch before a resume (0 on a fresh epoch).
            let (_, _, images_before, seconds_before) = pos.running;
            let mut images = images_before;
            let skipped_before = self.skipped;
            for b in loader {
                self.note_skipped(&b.skipped);
                let (global, _) = self.global_images(b.len, &stage.label(), b.number)?;
                if global > 0 {
                    let group = &*self.opts.group;
                    let mut rec = Recorder::in_group(self.ctx, group, b.len, global);
                    self.net
                        .train_step(self.ctx, &mut rec, &b.images, b.len, upto, &learning)?;
                    rec.submit();
                    images += global;
                }
                pb.inc((global + b.skipped.len() * self.group().size()) as u64);
                pos.batch = b.number + 1;
                pos.running = (
                    0.0,
                    0,
                    images,
                    seconds_before + started.elapsed().as_secs_f64(),
                );
                self.batches_run += 1;
                let stopping = self.stop_agreed();
                let saving = !stopping && self.checkpoint_due();
                // No readback per step: the weights' finiteness is checked every
                // FINITE_CHECK_EVERY batches and before anything is saved (NaN and Inf
                // persist in the weights, so a later check still sees them).
                if stopping || saving || pos.batch.is_multiple_of(FINITE_CHECK_EVERY) {
                    if let Err(e) = self.weights_finite(&learning, stage, epoch, b.number) {
                        pb.abandon();
                        return Err(e);
                    }
                }
                if saving {
                    self.save(pos)?;
                }
                if stopping {
                    pb.abandon();
                    return Ok(false);
                }
            }
            // A loader whose decoding thread died ends early: this rank would then pair its
            // next collectives with the wrong calls of the others.
            if pos.batch < batches {
                return Err(HebbError::Launch {
                    kernel: "loader".into(),
                    message: format!(
                        "{} epoch {}: the batches ended at {} of {batches} (a decoding thread failed)",
                        stage.label(),
                        epoch + 1,
                        pos.batch
                    ),
                });
            }
            self.some_items_read(
                &format!("{} epoch {}", stage.label(), epoch + 1),
                images,
                self.skipped - skipped_before,
            )?;
            if let Err(e) = self.weights_finite(&learning, stage, epoch, pos.batch) {
                pb.abandon();
                return Err(e);
            }
            let seconds = seconds_before + started.elapsed().as_secs_f64();
            pb.finish_and_clear();
            let mut weight_norms = Vec::new();
            for &i in &learning {
                let rule = &self.net.layers[i].rule;
                let w = rule.w.to_f32_vec(self.ctx)?;
                let what = format!("layer {i} weights after epoch {}", epoch + 1);
                self.check_agreement(&what, bytemuck::cast_slice(&w))?;
                weight_norms.push(WeightNorms::of_rows(i, &w, rule.c));
            }
            let rec = EpochRecord {
                stage: stage.label(),
                epoch,
                images,
                seconds,
                images_per_s: images as f64 / seconds.max(1e-9),
                lr: Some(scale),
                loss: None,
                train_accuracy: None,
                test_accuracy: None,
                validation_accuracy: None,
                weight_norms,
            };
            let norms: Vec<String> = rec
                .weight_norms
                .iter()
                .map(|n| {
                    format!(
                        "layer {} ‖w‖ min {:.3} median {:.3} max {:.3}",
                        n.layer, n.min, n.median, n.max
                    )
                })
                .collect();
            self.say(&format!(
                "{} epoch {}/{}: {} images in {:.1} s ({:.0} images/s); {}",
                stage.label(),
                epoch + 1,
                epochs,
                images,
                seconds,
                rec.images_per_s,
                norms.join(", ")
            ));
            self.history.push(rec);
            self.write_curves()?;
            pos.epoch += 1;
            pos.batch = 0;
            pos.first_item = 0;
            pos.running = (0.0, 0, 0, 0.0);
            self.save(pos)?;
        }
        Ok(true)
    }

    /// Frozen features of `items` in order, when the cache budget allows.
    fn cache_features(
        &mut self,
        source: &Arc<dyn Source>,
        items: &[usize],
        what: &str,
    ) -> Result<Option<FeatureCache>> {
        let f = self.net.feature_len();
        // Never more than the host can spare, whatever the recipe asks; the train and test
        // caches share the budget.
        // The budget is the node's: its ranks share it.
        let host =
            crate::data::limits::host_memory_budget() / self.group().local_size().max(1) as u64;
        let total = match self.recipe.classifier.feature_cache_mib {
            Some(mib) => (mib as u64).saturating_mul(1 << 20).min(host),
            None => host,
        };
        let budget = total.saturating_sub(self.feature_cache_bytes) as usize;
        let bytes32 = items.len() * f * 4;
        let half = if bytes32 <= budget {
            false
        } else if bytes32 / 2 <= budget {
            true
        } else {
            if total > 0 {
                eprintln!(
                    "note: the {what} features need {} as f16, more than the {} left of the \
                     feature cache's {}: the frozen layers run again every classifier epoch \
                     (classifier.feature_cache_mib sets the budget)",
                    crate::data::limits::show_bytes(bytes32 as u64 / 2),
                    crate::data::limits::show_bytes(budget as u64),
                    crate::data::limits::show_bytes(total)
                );
            }
            return Ok(None);
        };
        self.feature_cache_bytes += if half { bytes32 / 2 } else { bytes32 } as u64;
        let cap = self.net.capacity;
        let last = self.net.layers.len() - 1;
        let pb = bar(
            items.len(),
            format!("features ({what})"),
            self.opts.progress_bars,
        );
        let loader = Loader::new(
            source.clone(),
            Arc::new(items.to_vec()),
            0,
            LoaderOptions {
                batch: cap,
                workers: workers(&self.recipe),
                prefetch: 2,
                seed: self.recipe.seed,
                epoch: 0,
                augment: false,
            },
        );
        let mut f32s = Vec::new();
        let mut f16s = Vec::new();
        let mut labels = Vec::new();
        for b in loader {
            self.note_skipped(&b.skipped);
            if !b.skipped.is_empty() {
                // Cached rows must line up with the items; fall back to recomputing.
                pb.abandon();
                return Ok(None);
            }
            let mut rec = Recorder::new(self.ctx);
            let out = self
                .net
                .forward(self.ctx, &mut rec, &b.images, b.len, last)?;
            copy_prefix(&mut rec, out, &self.features, b.len * f);
            rec.submit();
            let v = self.features.to_f32_vec(self.ctx)?;
            if half {
                f16s.extend(v[..b.len * f].iter().map(|&x| f16::from_f32(x)));
            } else {
                f32s.extend_from_slice(&v[..b.len * f]);
            }
            labels.extend(b.labels);
            pb.inc(b.len as u64);
        }
        pb.finish_and_clear();
        Ok(Some(if half {
            FeatureCache::F16(f16s)
        } else {
            FeatureCache::F32(f32s)
        }))
    }

    /// Test accuracy of the current classifier over the test items.
    fn evaluate(&mut self, cache: Option<&FeatureCache>) -> Result<f64> {
        let (test, items) = (self.test.clone(), self.test_items.clone());
        self.accuracy_on(&test, &items, cache)
    }

    /// Accuracy of the current classifier over `items` of `source` (cache rows in their order).
    /// Each rank evaluates its share of `items` (`accuracy_on`); a cache holds that share's rows.
    fn evaluation_share<'i>(&self, items: &'i [usize]) -> &'i [usize] {
        let g = self.group();
        &items[dist::even_share(items.len(), g.rank(), g.size())]
    }

    /// `cache`: the rows of this rank's `evaluation_share` of `items`, in order. In a process
    /// group each rank evaluates its share and the hits are summed.
    fn accuracy_on(
        &mut self,
        source: &Arc<dyn Source>,
        items: &[usize],
        cache: Option<&FeatureCache>,
    ) -> Result<f64> {
        let share = self.evaluation_share(items).to_vec();
        let (mut correct, mut seen) = (0.0, 0.0);
        if !share.is_empty() || self.group().size() == 1 {
            let e = evaluate(
                self.ctx,
                &mut self.net,
                &self.features,
                source,
                &share,
                cache,
                false,
            )?;
            self.note_skipped(&e.skipped);
            (correct, seen) = ((e.accuracy * e.seen as f64).round(), e.seen as f64);
        }
        if self.group().size() == 1 {
            return Ok(correct / seen);
        }
        let mut sums = [correct, seen];
        self.group().all_reduce_sum_f64(&mut sums);
        if sums[1] == 0.0 {
            return Err(HebbError::Format {
                path: source.describe().into(),
                message: format!("none of the {} items could be read", items.len()),
            });
        }
        Ok(sums[0] / sums[1])
    }

    /// Runs the classifier epochs from `pos`; false when interrupted.
    ///
    /// With `[finetune]` each step is end to end (`Network::fine_tune_step`): the named blocks
    /// learn with the classifier, so no features are cached (they change every step).
    fn classifier_stage(&mut self, pos: &mut Position) -> Result<bool> {
        let spec = self.recipe.classifier.clone();
        let fine_tune: Option<Vec<usize>> = self
            .recipe
            .finetune
            .as_ref()
            .map(|f| f.learning(self.recipe.layers.len()));
        let f = self.net.feature_len();
        let last = self.net.layers.len() - 1;
        let augment = self.recipe.data.augments();
        let labeled = self.labeled.clone();
        let train = self.train.clone();
        let test = self.test.clone();
        let test_items = self.test_items.clone();
        let frozen = fine_tune.is_none();
        let what = if frozen { "classifier" } else { "fine-tuning" };
        let train_cache = if augment || !frozen {
            None
        } else {
            self.cache_features(&train, &labeled, "train")?
        };
        let test_cache = if frozen {
            // Each rank evaluates (and caches) its share of the test items.
            let share = self.evaluation_share(&test_items).to_vec();
            self.cache_features(&test, &share, "test")?
        } else {
            None
        };
        let val_items = self.val_items.clone();
        let val_cache = if val_items.is_empty() || !frozen {
            None
        } else {
            let share = self.evaluation_share(&val_items).to_vec();
            self.cache_features(&train, &share, "validation")?
        };
        // Cached rows are indexed by position in `labeled`.
        let index_of: HashMap<usize, usize> =
            labeled.iter().enumerate().map(|(j, &i)| (i, j)).collect();
        while pos.epoch < spec.epochs {
            let epoch = pos.epoch;
            let lr = spec.optimizer.lr() * spec.lr_schedule.factor(epoch, spec.epochs);
            let order: Vec<usize> =
                epoch_order(labeled.len(), self.recipe.seed ^ 0xC1A5, epoch as u64)
                    .into_iter()
                    .map(|j| labeled[j])
                    .collect();
            self.regroup(pos, spec.batch, labeled.len());
            let pb = bar(
                order.len(),
                format!("{what} epoch {}", epoch + 1),
                self.bars(),
            );
            pb.set_position(
                (pos.first_item + pos.batch * pos.global_batch).min(order.len()) as u64,
            );
            let (mut loss_sum, mut hits, mut seen, seconds_before) = pos.running;
            let started = Instant::now();
            let chunks = self.shards(order.len(), pos, spec.batch);
            let batches = chunks.len();
            let mut loader = match &train_cache {
                Some(_) => None,
                None => Some(Loader::over_chunks(
                    train.clone(),
                    Arc::new(order.clone()),
                    Arc::new(chunks.clone()),
                    pos.batch,
                    LoaderOptions {
                        batch: spec.batch,
                        workers: workers(&self.recipe),
                        prefetch: 2,
                        seed: self.recipe.seed,
                        epoch: epoch as u64,
                        augment,
                    },
                )),
            };
            let mut host = Vec::with_capacity(spec.batch * f);
            for number in pos.batch..batches {
                // This rank's share of the global batch: read first, since the recorder of the
                // step needs the global count.
                let (n, labels, images, features) = match (&train_cache, loader.as_mut()) {
                    (Some(cache), _) => {
                        let chunk = &order[chunks[number].clone()];
                        host.clear();
                        for i in chunk {
                            cache.row(index_of[i], f, &mut host);
                        }
                        self.features.write_f32(self.ctx, &host)?;
                        (
                            chunk.len(),
                            chunk.iter().map(|&i| train.label(i)).collect::<Vec<u32>>(),
                            None,
                            false,
                        )
                    }
                    (None, Some(loader)) => {
                        let b = loader.next().ok_or_else(|| HebbError::Launch {
                            kernel: "classifier".into(),
                            message: format!("the loader ended before batch {number}"),
                        })?;
                        self.note_skipped(&b.skipped);
                        let frozen_forward = fine_tune.is_none();
                        (b.len, b.labels, Some(b.images), frozen_forward)
                    }
                    (None, None) => unreachable!("a loader exists whenever there is no cache"),
                };
                let (global, first_row) = self.global_images(n, what, number)?;
                if global == 0 {
                    continue;
                }
                let mut rec = Recorder::in_group(self.ctx, &*self.opts.group, n, global);
                // Without a cache, the frozen blocks' features of the batch first.
                let images = match (features, images) {
                    (true, Some(images)) => {
                        let out = self.net.forward(self.ctx, &mut rec, &images, n, last)?;
                        copy_prefix(&mut rec, out, &self.features, n * f);
                        None
                    }
                    (_, images) => images,
                };
                self.net.classifier.set_labels(self.ctx, &labels)?;
                let step = self.net.classifier.steps;
                let seed = dropout_hash(self.recipe.seed as u32 ^ dropout_hash(step));
                match (&fine_tune, images) {
                    (Some(learning), Some(images)) => {
                        let step = FineTuneStep {
                            optimizer: spec.optimizer,
                            lr,
                            dropout: spec.dropout,
                            dropout_seed: seed,
                        };
                        self.net
                            .fine_tune_step(self.ctx, &mut rec, &images, n, learning, &step)?;
                    }
                    _ => {
                        crate::nn::classifier::Linear::dropout(
                            &mut rec,
                            &self.features,
                            n * f,
                            first_row * f,
                            spec.dropout,
                            seed,
                        )?;
                        self.net.classifier.train_step(
                            &mut rec,
                            &self.features,
                            n,
                            spec.optimizer,
                            lr,
                            None,
                        )?;
                    }
                }
                rec.submit();
                let report = self.net.classifier.read_report(self.ctx, n)?;
                let (mut loss, mut correct) = (report.loss_sum, report.correct);
                if self.group().size() > 1 {
                    let mut sums = [loss, correct as f64];
                    self.group().all_reduce_sum_f64(&mut sums);
                    (loss, correct) = (sums[0], sums[1] as usize);
                }
                if !loss.is_finite() || !report.weights_finite {
                    pb.abandon();
                    return Err(HebbError::Divergence {
                        stage: "classifier".into(),
                        message: format!(
                            "loss or weights became NaN/Inf at epoch {epoch}, batch {number} (step {}); training stopped, the last good checkpoint in {} is kept",
                            step + 1,
                            self.opts.out.display()
                        ),
                    });
                }
                loss_sum += loss;
                hits += correct;
                seen += global;
                pb.inc(global as u64);
                pos.batch = number + 1;
                self.batches_run += 1;
                pos.running = (
                    loss_sum,
                    hits,
                    seen,
                    seconds_before + started.elapsed().as_secs_f64(),
                );
                if pos.batch < batches {
                    if self.stop_agreed() {
                        pb.abandon();
                        return Ok(false);
                    }
                    if self.checkpoint_due() {
                        self.save(pos)?;
                    }
                }
            }
            drop(loader);
            pb.finish_and_clear();
            self.some_items_read(
                &format!("classifier epoch {}", epoch + 1),
                seen,
                self.skipped,
            )?;
            if let Some(learning) = &fine_tune {
                self.weights_finite(learning, Stage::Classifier, epoch, batches)?;
            }
            let seconds = seconds_before + started.elapsed().as_secs_f64();
            let validation_accuracy = if val_items.is_empty() {
                None
            } else {
                Some(self.accuracy_on(&train, &val_items, val_cache.as_ref())?)
            };
            // A new best validation accuracy: this classifier becomes the selected one.
            let improved = validation_accuracy.is_some_and(|v| {
                self.history
                    .iter()
                    .filter(|r| r.stage == Stage::Classifier.label())
                    .filter_map(|r| r.validation_accuracy)
                    .all(|best| v > best)
            });
            // Selecting by validation, the test split is scored only where the result can be
            // reported: at the last epoch, and at a new best epoch; while fine-tuning in one
            // process, the best epoch's score waits for `finish`, which scores the selected
            // epoch's checkpoint once (as the authors' code tests the selected model only).
            // A fine-tuning epoch's evaluation then reads the validation split alone. A
            // process group scores as it goes: its ranks may not share rank 0's folder.
            let last = epoch + 1 == spec.epochs;
            let deferred = fine_tune.is_some() && self.group().size() == 1;
            let selecting = spec.select == Selection::BestValidation;
            let test_accuracy = if !selecting || (improved && !deferred) || last {
                Some(self.evaluate(test_cache.as_ref())?)
            } else {
                None
            };
            let rec = EpochRecord {
                stage: Stage::Classifier.label(),
                epoch,
                images: seen,
                seconds,
                images_per_s: seen as f64 / seconds.max(1e-9),
                lr: Some(lr),
                loss: Some(loss_sum / seen.max(1) as f64),
                train_accuracy: Some(hits as f64 / seen.max(1) as f64),
                test_accuracy,
                validation_accuracy,
                weight_norms: Vec::new(),
            };
            if self.group().size() > 1 {
                // A readback only a group needs.
                self.check_agreement(
                    &format!("classifier weights after epoch {}", epoch + 1),
                    bytemuck::cast_slice(&self.net.classifier.w.to_f32_vec(self.ctx)?),
                )?;
            }
            self.say(&format!(
                "{what} epoch {}/{}: loss {:.4}  train {:.2}%  {}{}lr {:.2e}  ({:.0} images/s)",
                epoch + 1,
                spec.epochs,
                rec.loss.unwrap_or(0.0),
                100.0 * rec.train_accuracy.unwrap_or(0.0),
                validation_accuracy
                    .map_or(String::new(), |v| format!("validation {:.2}%  ", 100.0 * v)),
                test_accuracy.map_or(String::new(), |t| format!("test {:.2}%  ", 100.0 * t)),
                lr,
                rec.images_per_s
            ));
            self.history.push(rec);
            self.write_curves()?;
            pos.epoch += 1;
            pos.batch = 0;
            pos.first_item = 0;
            pos.running = (0.0, 0, 0, 0.0);
            // The best checkpoint first: killed between the two writes, the run resumes before
            // this epoch's end and selects it again.
            if improved && spec.select == Selection::BestValidation {
                self.save_as(pos, &[BEST_FILE, checkpoint::FILE])?;
            } else {
                self.save(pos)?;
            }
            if self.stop_agreed() && pos.epoch < spec.epochs {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn finish(&mut self, pos: &Position) -> Result<Outcome> {
        let checkpoint = self.save(pos)?;
        let last_epoch_test_accuracy = match self.history.iter().rev().find_map(|r| r.test_accuracy)
        {
            Some(a) => a,
            None => self.evaluate(None)?,
        };
        // The classifier epochs (their indices in the history), and the one reported.
        let classifier: Vec<usize> = (0..self.history.len())
            .filter(|&i| self.history[i].stage == Stage::Classifier.label())
            .collect();
        let selection = self.recipe.classifier.select;
        let selected = match selection {
            Selection::Last => classifier.len().saturating_sub(1),
            Selection::BestValidation => classifier
                .iter()
                .enumerate()
                .fold(None::<(usize, f64)>, |best, (i, &h)| {
                    let v = self.history[h]
                        .validation_accuracy
                        .unwrap_or(f64::NEG_INFINITY);
                    match best {
                        Some((_, b)) if b >= v => best,
                        _ => Some((i, v)),
                    }
                })
                .map_or(0, |(i, _)| i),
        };
        // The first layer's filters as the last epoch left them (checkpoint.safetensors),
        // read before a selected epoch's weights may replace them below.
        let w0 = self.net.layers[0].rule.w.to_f32_vec(self.ctx)?;
        // A selected epoch not scored yet (fine-tuning defers it): its checkpoint is scored now.
        if let Some(&h) = classifier.get(selected)
            && self.history[h].test_accuracy.is_none()
            && selection == Selection::BestValidation
        {
            if self.group().size() > 1 {
                // Only rank 0 wrote checkpoint-best.safetensors, and the ranks may not share
                // its folder. Nothing is lost: the run is complete, and one process scores it.
                return Err(HebbError::Config(format!(
                    "the selected epoch {} of {} was left to be scored by a one-process run; \
                     score it in one process: hebb train --resume {}",
                    selected + 1,
                    self.opts.out.display(),
                    self.opts.out.display()
                )));
            }
            let best = self.opts.out.join(BEST_FILE);
            checkpoint::load(&best)?.restore(self.ctx, &self.net)?;
            let accuracy = self.evaluate(None)?;
            self.say(&format!(
                "selected epoch {} ({}): test {:.2}%",
                selected + 1,
                best.display(),
                100.0 * accuracy
            ));
            self.history[h].test_accuracy = Some(accuracy);
            self.write_curves()?;
        }
        let epochs: Vec<&EpochRecord> = classifier.iter().map(|&h| &self.history[h]).collect();
        let test_accuracy = epochs
            .get(selected)
            .and_then(|r| r.test_accuracy)
            .unwrap_or(last_epoch_test_accuracy);
        let validation_accuracy = epochs.get(selected).and_then(|r| r.validation_accuracy);
        let s = self.net.layers[0].shape;
        let shape = [
            self.recipe.layers[0].channels,
            s.conv.in_channels,
            s.conv.kernel[0],
            s.conv.kernel[1],
        ];
        let filters_png = self.opts.out.join("filters.png");
        let writes = self.group().rank() == 0;
        if writes {
            filters::write_png(&filters_png, &shape, &w0[..shape.iter().product()])?;
        }
        let rate = |pred: &dyn Fn(&EpochRecord) -> bool| {
            let (i, s) = self
                .history
                .iter()
                .filter(|r| pred(r))
                .fold((0usize, 0f64), |(i, s), r| (i + r.images, s + r.seconds));
            i as f64 / s.max(1e-9)
        };
        let metrics = Metrics {
            recipe: self.recipe.name.clone(),
            recipe_sha256: sha256_hex(self.recipe_text.as_bytes()),
            adapter: self.ctx.adapter_name(),
            seed: self.recipe.seed,
            test_accuracy,
            selection,
            selected_epoch: selected,
            validation_accuracy,
            last_epoch_test_accuracy,
            validation_items: self.val_items.len(),
            test_items: self.test_items.len(),
            train_items: self.train_items.len(),
            labeled_items: self.labeled.len(),
            label_fraction: self.recipe.classifier.label_fraction,
            epochs: self.history.clone(),
            hebbian_images_per_s: rate(&|r| r.stage != "classifier"),
            classifier_images_per_s: rate(&|r| r.stage == "classifier"),
            skipped_items: {
                let mut skipped = [self.skipped as u64];
                self.group().all_reduce_sum_u64(&mut skipped);
                skipped[0] as usize
            },
            first_skipped: self.first_skipped.clone(),
            resumed: self.resumed,
            checkpoints_written: self.checkpoints.get().0,
            checkpoint_seconds: self.checkpoints.get().1,
            overrides: self.overrides.clone(),
            checkpoint,
            best_checkpoint: (selection == Selection::BestValidation)
                .then(|| self.opts.out.join(BEST_FILE))
                .filter(|p| p.exists()),
            filters_png,
            curves_png: self.opts.out.join(curves::FILE),
            fine_tuned_layers: self
                .recipe
                .finetune
                .as_ref()
                .map(|f| f.learning(self.recipe.layers.len())),
            fine_tuned_from: self.recipe.finetune.as_ref().map(|f| f.from),
            ranks: self.group().size(),
        };
        let json = serde_json::to_vec_pretty(&metrics).map_err(|e| HebbError::Io {
            path: self.opts.out.join("metrics.json"),
            source: std::io::Error::other(e.to_string()),
        })?;
        if writes {
            checkpoint::write_atomic(&self.opts.out.join("metrics.json"), &json)?;
        }
        if self.skipped > 0 {
            eprintln!(
                "skipped {} unreadable items{}; the first: {}",
                self.skipped,
                if self.group().size() > 1 {
                    format!(" (rank {})", self.group().rank())
                } else {
                    String::new()
                },
                self.first_skipped.as_deref().unwrap_or("?")
            );
        }
        Ok(Outcome::Finished(Box::new(metrics)))
    }
}

/// What `evaluate` measured.
pub struct Evaluation {
    /// Fraction of the readable items classified correctly.
    pub accuracy: f64,
    /// Items evaluated.
    pub seen: usize,
    /// Items that could not be read, with the reason (skipped, not counted).
    pub skipped: Vec<(usize, String)>,
    /// One per evaluated item, in item order, when asked for (else empty).
    pub predictions: Vec<Prediction>,
}

/// The classifier's verdict on one item.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    /// The item's index in its split (the test set's order).
    pub index: usize,
    pub label: u32,
    /// The first index of the largest score, as the accuracy counts it.
    pub predicted: usize,
    /// The head's scores, one per class (`Linear::read_scores`).
    pub scores: Vec<f32>,
}

impl Prediction {
    /// The first argmax of `scores`: the class the GPU's `correct` kernel compares (strictly
    /// greater wins, so the first of equal maxima stays).
    pub fn first_argmax(scores: &[f32]) -> usize {
        let mut best = 0;
        for (j, &v) in scores.iter().enumerate().skip(1) {
            if v > scores[best] {
                best = j;
            }
        }
        best
    }
}

/// Accuracy of `net` (its frozen layers, then its classifier) over `items` of `source`, in
/// batches of the network's capacity. With `cache`, row j of the cache holds the frozen
/// features of `items[j]` and the layers do not run. `features` is the classifier's input
/// buffer (capacity x feature_len). Unreadable items are skipped and listed; an error only
/// when none could be read. With `with_predictions`, each item's scores are also read back.
pub fn evaluate(
    ctx: &GpuContext,
    net: &mut Network,
    features: &Tensor,
    source: &Arc<dyn Source>,
    items: &[usize],
    cache: Option<&FeatureCache>,
    with_predictions: bool,
) -> Result<Evaluation> {
    let f = net.feature_len();
    let cap = net.capacity;
    let last = net.layers.len() - 1;
    let mut correct = 0usize;
    let mut seen = 0usize;
    let mut skipped = Vec::new();
    let mut predictions = Vec::new();
    let mut host = Vec::with_capacity(cap * f);
    for (start, chunk) in items.chunks(cap).enumerate().map(|(j, c)| (j * cap, c)) {
        let mut rec = Recorder::new(ctx);
        // The items of this batch that were read, in row order.
        let mut evaluated: Vec<usize> = Vec::with_capacity(chunk.len());
        let labels: Vec<u32> = match cache {
            Some(c) => {
                host.clear();
                for j in 0..chunk.len() {
                    c.row(start + j, f, &mut host);
                }
                features.write_f32(ctx, &host)?;
                evaluated.extend_from_slice(chunk);
                chunk.iter().map(|&i| source.label(i)).collect()
            }
            None => {
                let item = net.input.len();
                let mut images = vec![0f32; chunk.len() * item];
                let mut labels = Vec::new();
                for &i in chunk {
                    let n = labels.len();
                    match source.load(i, None, &mut images[n * item..(n + 1) * item]) {
                        Ok(()) => {
                            labels.push(source.label(i));
                            evaluated.push(i);
                        }
                        Err(e) => skipped.push((i, e.to_string())),
                    }
                }
                if labels.is_empty() {
                    continue;
                }
                let n = labels.len();
                let out = net.forward(ctx, &mut rec, &images[..n * item], n, last)?;
                copy_prefix(&mut rec, out, features, n * f);
                labels
            }
        };
        let n = labels.len();
        net.classifier.set_labels(ctx, &labels)?;
        net.classifier.evaluate(&mut rec, features, n)?;
        rec.submit();
        correct += net.classifier.read_report(ctx, n)?.correct;
        seen += n;
        if with_predictions {
            let k = net.classifier.classes;
            let scores = net.classifier.read_scores(ctx, n)?;
            for (row, (&index, &label)) in evaluated.iter().zip(&labels).enumerate() {
                let scores = scores[row * k..(row + 1) * k].to_vec();
                predictions.push(Prediction {
                    index,
                    label,
                    predicted: Prediction::first_argmax(&scores),
                    scores,
                });
            }
        }
    }
    if seen == 0 {
        return Err(HebbError::Format {
            path: source.describe().into(),
            message: format!(
                "none of the {} items could be read; the first: {}",
                items.len(),
                skipped.first().map_or("?", |(_, e)| e.as_str())
            ),
        });
    }
    Ok(Evaluation {
        accuracy: correct as f64 / seen as f64,
        seen,
        skipped,
        predictions,
    })
}

/// A checkpoint's evaluation on its test split.
pub struct CheckpointEvaluation {
    /// The recipe's name.
    pub recipe: String,
    /// The test items asked for (`limit` applied); `evaluation.seen` of them were read.
    pub items: usize,
    pub evaluation: Evaluation,
}

/// A checkpoint's recipe (its overrides applied, `data` and `limit` replacing the stored
/// ones), its dataset's splits, and its network with the checkpoint's weights.
pub fn load_network(
    ctx: &GpuContext,
    path: &Path,
    data: Option<&Path>,
    limit: Option<usize>,
) -> Result<(Recipe, data::Splits, Network)> {
    let ck = checkpoint::load(path)?;
    let text = ck.meta("recipe")?.to_string();
    let recipe = Recipe::parse(&text, &ck.path)?;
    let overrides: Overrides = ck
        .meta("overrides")
        .ok()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let overrides = Overrides {
        data: data.map(Path::to_path_buf).or(overrides.data),
        limit,
        ..overrides
    };
    let recipe = effective_recipe(&recipe, &overrides);
    let root = data::data_root(&recipe, overrides.data.as_deref()).map_err(data_err)?;
    let splits = data::open(&recipe, &root).map_err(data_err)?;
    let zca = ck.zca();
    if recipe.preprocess.zca.is_some() && zca.is_none() {
        return Err(HebbError::Format {
            path: ck.path.clone(),
            message: "the recipe whitens its input (preprocess.zca) but the checkpoint has no \
                      input.zca / input.zca_mean tensors"
                .into(),
        });
    }
    let net = Network::new(
        ctx,
        &recipe,
        splits.train.shape(),
        splits.train.classes(),
        ck.standardize(),
        zca.filter(|_| recipe.preprocess.zca.is_some()),
    )?;
    ck.restore(ctx, &net)?;
    Ok((recipe, splits, net))
}

/// The ONNX model of a checkpoint's network (`onnx::export`); `data` names the dataset folder
/// when the stored one has moved (its image shape and classes shape the network).
pub fn export_onnx(
    ctx: &GpuContext,
    path: &Path,
    data: Option<&Path>,
) -> Result<(String, Vec<u8>)> {
    let (recipe, _, net) = load_network(ctx, path, data, None)?;
    let bytes = onnx::export(ctx, &net, &recipe.name)?;
    Ok((recipe.name, bytes))
}

/// Test accuracy of a checkpoint on the test split of `data` (or the recipe's folder), and with
/// `with_predictions` every item's prediction and scores.
pub fn evaluate_checkpoint(
    ctx: &GpuContext,
    path: &Path,
    data: Option<&Path>,
    limit: Option<usize>,
    with_predictions: bool,
) -> Result<CheckpointEvaluation> {
    let (recipe, splits, mut net) = load_network(ctx, path, data, limit)?;
    let features = Tensor::empty(
        ctx,
        "classifier features",
        &[net.capacity * net.feature_len()],
        DType::F32,
    )?;
    let test_items = data::limited(splits.test.len(), limit);
    let evaluation = evaluate(
        ctx,
        &mut net,
        &features,
        &splits.test,
        &test_items,
        None,
        with_predictions,
    )?;
    Ok(CheckpointEvaluation {
        recipe: recipe.name,
        items: test_items.len(),
        evaluation,
    })
}
