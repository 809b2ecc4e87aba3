//! The MNIST task of SpikingGrid (runexp.py, data.py, utils.py): stimulation through the
//! electrodes, training by STDP one sample at a time, evaluation in parallel batches, the
//! spike-count readout by electrode cell, and the run's outputs (metrics.json, checkpoint,
//! raster and weight PNGs). One difference from the original: it also scored a training
//! subset every 50 samples, for its plots only; this run scores the validation set, which
//! is what selects the weights.
//!
//! Stimulation: a digit is resized to 6 x 6 (bilinear, antialiased), pixel (r, k) drives
//! electrode (r, k) at rate pixel · `rate_hz`. During training the label electrodes of the
//! sample's class are driven at the full rate too; during evaluation they are silent. The
//! recipe's `task.encoder` turns rates into spikes:
//! - `intervals` (default, SpikingGrid's bindsnet `poisson`): per electrode of rate r > 0,
//!   intervals k ~ Poisson(1000 / (r · dt)) steps, k = 0 counted as 1, spikes at the
//!   cumulative sums ≤ the presentation's steps (a sum s fires at step s − 1). Drawn on the
//!   host from ChaCha8 (the recipe's seed, stream = the presentation's id), uploaded as 0/1
//!   trains; the GPU and the reference read the same trains. Every presentation has its own
//!   id, so each evaluation of the validation set draws fresh noise, as the original's
//!   encoder does on each pass over its validation loader.
//! - `bernoulli`: p = r · dt per step, drawn in the shader (`uniform01`).
//!
//! Readout: each neuron belongs to the electrode cell it lies in and so to that electrode's class
//! (label electrodes only); a class's score is the mean spike count of its neurons over the
//! presentation; the prediction is the first class with the highest score.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{GrayImage, Rgb, RgbImage, imageops};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use serde::Serialize;

use crate::data::mnist::{self, MnistSplit, Split};
use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, Recorder};
use crate::kernels::spiking::SpikingBuffers;
use crate::plot::{Mark, Panel, Series, write_png};
use crate::spiking::culture::{
    Culture, ELECTRODE_COLS, ELECTRODE_ROWS, ELECTRODES, HEIGHT, WIDTH, electrode_cell,
    electrode_centre,
};
use crate::spiking::recipe::{Encoder, SpikingRecipe};
use crate::train::checkpoint::write_atomic;

/// Label electrodes of each class for `classes` classes (None when unsupported), as SpikingGrid's
/// `configs.py` assigns them. 2 and 3 classes: column 9 in equal groups of rows (2: rows 0-2 and
/// 3-5). 4 classes: three cells each in columns 8 and 9, interlocked (rows listed as column
/// 8 | column 9): class 0 = 0, 1 | 0; class 1 = 2 | 1, 2; class 2 = 3, 4 | 3; class 3 = 5 | 4, 5.
/// 6 classes (one row of column 9 each) is `hebb`'s own extension; the original has none.
pub fn label_electrodes(classes: usize) -> Option<Vec<Vec<usize>>> {
    let e = |r: usize, k: usize| r * ELECTRODE_COLS + k;
    match classes {
        2 | 3 | 6 => {
            let rows = ELECTRODE_ROWS / classes;
            Some(
                (0..classes)
                    .map(|c| (c * rows..(c + 1) * rows).map(|r| e(r, 9)).collect())
                    .collect(),
            )
        }
        4 => {
            // (rows in column 8, rows in column 9) per class.
            let cells: [(&[usize], &[usize]); 4] = [
                (&[0, 1], &[0]),
                (&[2], &[1, 2]),
                (&[3, 4], &[3]),
                (&[5], &[4, 5]),
            ];
            Some(
                cells
                    .iter()
                    .map(|(in8, in9)| {
                        let mut l: Vec<usize> = in8.iter().map(|&r| e(r, 8)).collect();
                        l.extend(in9.iter().map(|&r| e(r, 9)));
                        l.sort_unstable();
                        l
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// The 6 x 6 downscaled digit, intensities in [0, 1], row-major.
pub fn downscale(split: &MnistSplit, i: usize) -> Vec<f32> {
    let size = split.rows * split.cols;
    let pixels = split.images[i * size..(i + 1) * size].to_vec();
    let img = GrayImage::from_raw(split.cols as u32, split.rows as u32, pixels)
        .expect("MNIST image buffer matches its size");
    let small = imageops::resize(&img, 6, 6, imageops::FilterType::Triangle);
    small.pixels().map(|p| p.0[0] as f32 / 255.0).collect()
}

/// Per-step spike probabilities of the 60 electrodes for one digit (`label`: the class whose
/// label electrodes are driven, during training): the Bernoulli encoder's p = rate · dt.
pub fn stimulus(
    digit6: &[f32],
    label: Option<usize>,
    labels: &[Vec<usize>],
    rate_hz: f64,
    dt_ms: f64,
) -> Vec<f32> {
    let full = (rate_hz * dt_ms / 1000.0) as f32;
    let mut p = vec![0.0f32; ELECTRODES];
    for r in 0..6 {
        for k in 0..6 {
            p[r * ELECTRODE_COLS + k] = digit6[r * 6 + k] * full;
        }
    }
    if let Some(c) = label {
        for &e in &labels[c] {
            p[e] = full;
        }
    }
    p
}

/// The interval encoder's spike trains of one presentation: `rates_hz` per electrode, [steps, E]
/// row-major, 1.0 where an electrode fires (see the module comment). `seed` and `id` (the
/// presentation) fix the draws.
pub fn interval_trains(rates_hz: &[f64], steps: usize, dt_ms: f64, seed: u64, id: u32) -> Vec<f32> {
    let e_count = rates_hz.len();
    let mut trains = vec![0.0f32; steps * e_count];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id as u64);
    for (e, &rate) in rates_hz.iter().enumerate() {
        if rate <= 0.0 {
            continue;
        }
        let Ok(poisson) = Poisson::new(1000.0 / (rate * dt_ms)) else {
            continue;
        };
        let mut at = 0.0f64;
        loop {
            let interval: f64 = poisson.sample(&mut rng);
            at += interval.max(1.0);
            if at > steps as f64 {
                break;
            }
            trains[(at as usize - 1) * e_count + e] = 1.0;
        }
    }
    trains
}

/// Electrode rates in Hz for one digit: the Bernoulli probabilities divided by dt.
fn rates_hz(probs: &[f32], dt_ms: f64) -> Vec<f64> {
    probs.iter().map(|&p| p as f64 * 1000.0 / dt_ms).collect()
}

/// The class each neuron reads out for (None for neurons outside label cells).
pub fn neuron_classes(culture: &Culture, labels: &[Vec<usize>]) -> Vec<Option<usize>> {
    culture
        .positions
        .iter()
        .map(|&pos| {
            let cell = electrode_cell(pos);
            labels.iter().position(|l| l.contains(&cell))
        })
        .collect()
}

/// Predicted class from one sample's spike counts (n values).
pub fn predict(counts: &[f32], classes: &[Option<usize>], k: usize) -> usize {
    let mut sum = vec![0.0f64; k];
    let mut members = vec![0usize; k];
    for (c, &class) in counts.iter().zip(classes) {
        if let Some(j) = class {
            sum[j] += *c as f64;
            members[j] += 1;
        }
    }
    let score: Vec<f64> = (0..k).map(|j| sum[j] / members[j].max(1) as f64).collect();
    let mut best = 0;
    for j in 1..k {
        if score[j] > score[best] {
            best = j;
        }
    }
    best
}

/// Presentation ids (the noise streams): training samples count from 0, validation
/// presentations from here, test presentations from `TEST_IDS`.
const VALIDATION_IDS: u32 = 1 << 28;
const TEST_IDS: u32 = 1 << 29;

/// Options of `hebb spiking`.
#[derive(Clone, Debug, Default)]
pub struct SpikingOptions {
    pub data: Option<PathBuf>,
    pub out: PathBuf,
    /// At most N training, validation and test samples each.
    pub limit: Option<usize>,
    /// Start from the culture in this checkpoint (`spiking::checkpoint`) instead of building
    /// one from the seed; the seed still draws the sample order and the spikes.
    pub culture: Option<PathBuf>,
    pub quiet: bool,
}

/// One point of the validation curve.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    pub samples: usize,
    pub validation_accuracy: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SpikingMetrics {
    pub recipe: String,
    /// The culture's seed and the spike encoder, which the result depends on.
    pub seed: u64,
    pub encoder: Encoder,
    /// The checkpoint the culture was read from (`--culture`); none when built from the seed.
    pub culture_from: Option<PathBuf>,
    pub adapter: String,
    pub neurons: usize,
    pub synapses_input: usize,
    pub synapses_excitatory: usize,
    pub synapses_inhibitory: usize,
    pub classes: Vec<u8>,
    pub train_samples: usize,
    pub validation_samples: usize,
    pub test_samples: usize,
    pub best_validation_accuracy: f64,
    pub best_at_samples: usize,
    pub test_accuracy: f64,
    pub validation_curve: Vec<CurvePoint>,
    pub simulated_ms: f64,
    pub wall_seconds: f64,
    pub build_seconds: f64,
}

/// Indices of `split` images in [start, end) whose label is one of `classes`, with their class.
fn select(split: &MnistSplit, start: usize, end: usize, classes: &[u8]) -> Vec<(usize, usize)> {
    (start.min(split.count)..end.min(split.count))
        .filter_map(|i| {
            classes
                .iter()
                .position(|&c| c == split.labels[i])
                .map(|c| (i, c))
        })
        .collect()
}

/// Input, inhibitory and excitatory weights, as `SpikingBuffers::read_weights` returns them.
type Weights = (Vec<f32>, Vec<f32>, Vec<f32>);

struct Runner<'c> {
    ctx: &'c GpuContext,
    bufs: SpikingBuffers,
    steps: u32,
    labels: Vec<Vec<usize>>,
    classes: Vec<Option<usize>>,
    rate_hz: f64,
    dt_ms: f64,
    k: usize,
    encoder: Encoder,
    seed: u64,
}

impl Runner<'_> {
    /// Loads the stimulus of one presentation per batch element: `probs` holds the Bernoulli
    /// probabilities [B, E] and `ids` each element's presentation id.
    fn load_stimulus(&mut self, probs: &[f32], ids: &[u32]) -> Result<()> {
        match self.encoder {
            Encoder::Bernoulli => self.bufs.write_probs(self.ctx, probs),
            Encoder::Intervals => {
                let steps = self.steps as usize;
                let b = ids.len();
                // Per element [steps, E], interleaved into the buffer's [steps, B, E].
                let mut trains = vec![0.0f32; steps * b * ELECTRODES];
                for (j, &id) in ids.iter().enumerate() {
                    let rates = rates_hz(&probs[j * ELECTRODES..(j + 1) * ELECTRODES], self.dt_ms);
                    let one = interval_trains(&rates, steps, self.dt_ms, self.seed, id);
                    for t in 0..steps {
                        trains[(t * b + j) * ELECTRODES..(t * b + j + 1) * ELECTRODES]
                            .copy_from_slice(&one[t * ELECTRODES..(t + 1) * ELECTRODES]);
                    }
                }
                self.bufs.write_spike_trains(self.ctx, &trains, steps)
            }
        }
    }

    /// Presents one training sample with STDP, then renormalises.
    fn train_sample(
        &mut self,
        split: &MnistSplit,
        (i, class): (usize, usize),
        id: u32,
    ) -> Result<()> {
        self.bufs.set_batch(1)?;
        let probs = stimulus(
            &downscale(split, i),
            Some(class),
            &self.labels,
            self.rate_hz,
            self.dt_ms,
        );
        self.load_stimulus(&probs, &[id])?;
        let mut rec = Recorder::new(self.ctx);
        self.bufs.reset_state(&mut rec)?;
        for t in 0..self.steps {
            self.bufs.step(&mut rec, t, id, true, false)?;
        }
        self.bufs.renormalise(&mut rec)?;
        rec.submit();
        Ok(())
    }

    /// Accuracy on `items`, evaluated `eval_batch` at a time without learning.
    fn evaluate(
        &mut self,
        split: &MnistSplit,
        items: &[(usize, usize)],
        eval_batch: usize,
        id_base: u32,
    ) -> Result<f64> {
        let mut correct = 0usize;
        for (chunk_index, chunk) in items.chunks(eval_batch).enumerate() {
            self.bufs.set_batch(chunk.len())?;
            let mut probs = Vec::with_capacity(chunk.len() * ELECTRODES);
            for &(i, _) in chunk {
                probs.extend(stimulus(
                    &downscale(split, i),
                    None,
                    &self.labels,
                    self.rate_hz,
                    self.dt_ms,
                ));
            }
            let base = id_base + (chunk_index * eval_batch) as u32;
            let ids: Vec<u32> = (0..chunk.len() as u32).map(|j| base + j).collect();
            self.load_stimulus(&probs, &ids)?;
            let mut rec = Recorder::new(self.ctx);
            self.bufs.reset_state(&mut rec)?;
            for t in 0..self.steps {
                self.bufs.step(&mut rec, t, base, false, false)?;
            }
            rec.submit();
            let counts = self.bufs.read_counts(self.ctx)?;
            let n = self.bufs.params.n as usize;
            for (b, &(_, class)) in chunk.iter().enumerate() {
                if predict(&counts[b * n..(b + 1) * n], &self.classes, self.k) == class {
                    correct += 1;
                }
            }
        }
        Ok(correct as f64 / items.len().max(1) as f64)
    }

    /// The spikes of one evaluation sample, step by step: [steps][n].
    fn raster(&mut self, split: &MnistSplit, i: usize, id: u32) -> Result<Vec<Vec<bool>>> {
        self.bufs.set_batch(1)?;
        let probs = stimulus(
            &downscale(split, i),
            None,
            &self.labels,
            self.rate_hz,
            self.dt_ms,
        );
        self.load_stimulus(&probs, &[id])?;
        let mut rec = Recorder::new(self.ctx);
        self.bufs.reset_state(&mut rec)?;
        rec.submit();
        let mut rows = Vec::with_capacity(self.steps as usize);
        for t in 0..self.steps {
            let mut rec = Recorder::new(self.ctx);
            self.bufs.step(&mut rec, t, id, false, false)?;
            rec.submit();
            rows.push(self.bufs.read_spikes(self.ctx, t, 0)?);
        }
        Ok(rows)
    }
}

/// Trains and evaluates `recipe` (see the module comment); writes metrics.json, the checkpoint
/// (weights and masks, safetensors), raster.png and input_weights.png under `opts.out`.
pub fn run(
    ctx: &GpuContext,
    recipe: &SpikingRecipe,
    opts: &SpikingOptions,
) -> Result<SpikingMetrics> {
    let started = Instant::now();
    let task = &recipe.task;
    // A culture given as a file is read first, so that a bad file fails before any work; the
    // run's own checkpoint must not replace the file it started from.
    let given = match &opts.culture {
        Some(path) => {
            let written = opts.out.join(crate::train::checkpoint::FILE);
            let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
            if same(path, &written) {
                return Err(HebbError::Format {
                    path: path.clone(),
                    message: format!(
                        "the run would write its checkpoint over the culture it starts from; \
                         give another output folder than {}",
                        opts.out.display()
                    ),
                });
            }
            Some(crate::spiking::checkpoint::read(path, &recipe.culture)?)
        }
        None => None,
    };
    let dir = opts
        .data
        .clone()
        .unwrap_or_else(crate::train::data::bundled_mnist);
    let data_err = |e: crate::data::DataError| HebbError::Format {
        path: dir.clone(),
        message: e.to_string(),
    };
    let train = mnist::load_split(&dir, Split::Train).map_err(data_err)?;
    let test = mnist::load_split(&dir, Split::Test).map_err(data_err)?;
    if task.validation[1] > train.count {
        return Err(HebbError::Format {
            path: dir.clone(),
            message: format!(
                "task.validation = {:?} reaches past the {} training images of this dataset",
                task.validation, train.count
            ),
        });
    }
    let limit = opts.limit.unwrap_or(usize::MAX);
    let mut train_items = select(&train, 0, task.train_pool, &task.classes);
    let mut rng = ChaCha8Rng::seed_from_u64(recipe.seed);
    train_items.shuffle(&mut rng);
    train_items.truncate(limit);
    let mut val_items = select(
        &train,
        task.validation[0],
        task.validation[1],
        &task.classes,
    );
    val_items.truncate(limit);
    let mut test_items = select(&test, 0, test.count, &task.classes);
    test_items.truncate(limit);
    if train_items.is_empty() || test_items.is_empty() {
        return Err(HebbError::Format {
            path: dir.clone(),
            message: format!("no training or test images of classes {:?}", task.classes),
        });
    }
    // Every evaluation draws fresh validation noise (ids VALIDATION_IDS + k·|val|, below), so the
    // ids of all evaluations must stay below the test ids.
    let evaluations = train_items.len().div_ceil(task.eval_every.max(1));
    if evaluations as u64 * val_items.len() as u64 > (TEST_IDS - VALIDATION_IDS) as u64 {
        return Err(HebbError::Format {
            path: recipe.name.clone().into(),
            message: format!(
                "task.eval_every = {}: {evaluations} evaluations of {} validation digits need \
                 more than 2^28 presentation ids; raise task.eval_every or narrow \
                 task.validation",
                task.eval_every,
                val_items.len()
            ),
        });
    }
    let log = |msg: String| {
        if !opts.quiet {
            eprintln!("{msg}");
        }
    };

    // Refuse cultures this adapter cannot hold before spending minutes building them.
    crate::kernels::spiking::exc_rows_per_chunk(ctx, recipe.culture.neurons(), 1)?;
    let culture = match given {
        Some(culture) => culture,
        None => Culture::build(&recipe.culture, recipe.seed),
    };
    let build_seconds = started.elapsed().as_secs_f64();
    log(format!(
        "culture: {} neurons, {} input, {} excitatory and {} inhibitory synapses ({} in {build_seconds:.1} s)",
        culture.neurons(),
        culture.input.synapses(),
        culture.exc_synapses(),
        culture.inhibitory.synapses(),
        opts.culture
            .as_ref()
            .map_or("built".to_string(), |p| format!(
                "read from {}",
                p.display()
            ))
    ));
    let labels = label_electrodes(task.classes.len()).expect("recipe validated the class count");
    let classes = neuron_classes(&culture, &labels);
    let capacity = task.eval_batch.max(1);
    let bufs = SpikingBuffers::new(ctx, &culture, 1, capacity, recipe.seed as u32)?;
    let dt_ms = recipe.culture.dt;
    let mut runner = Runner {
        ctx,
        bufs,
        steps: (task.duration_ms as f64 / dt_ms).round() as u32,
        labels,
        classes,
        rate_hz: task.rate_hz,
        dt_ms,
        k: task.classes.len(),
        encoder: task.encoder,
        seed: recipe.seed,
    };

    std::fs::create_dir_all(&opts.out).map_err(|e| HebbError::Io {
        path: opts.out.clone(),
        source: e,
    })?;
    let mut curve = Vec::new();
    let validation_png = opts.out.join("validation.png");
    // (validation accuracy, samples seen, weights) of the best evaluation so far.
    let mut best: Option<(f64, usize, Weights)> = None;
    for (k, &item) in train_items.iter().enumerate() {
        runner.train_sample(&train, item, k as u32)?;
        let seen = k + 1;
        if seen % task.eval_every == 0 || seen == train_items.len() {
            // Fresh validation noise at every evaluation, as the original's PoissonEncoder
            // draws on each pass over its validation loader: evaluation k uses ids
            // VALIDATION_IDS + k·|val| (bounded above).
            let fresh = VALIDATION_IDS + (curve.len() * val_items.len()) as u32;
            let acc = runner.evaluate(&train, &val_items, task.eval_batch, fresh)?;
            log(format!(
                "{seen}/{} samples: validation accuracy {:.2}% ({:.0} s)",
                train_items.len(),
                100.0 * acc,
                started.elapsed().as_secs_f64()
            ));
            curve.push(CurvePoint {
                samples: seen,
                validation_accuracy: acc,
            });
            if best.as_ref().is_none_or(|b| acc > b.0) {
                best = Some((acc, seen, runner.bufs.read_weights(ctx)?));
            }
            let (best_acc, best_at) = best.as_ref().map_or((acc, seen), |b| (b.0, b.1));
            write_validation_png(&validation_png, &curve, (best_at, best_acc), None)?;
        }
    }
    // The last training sample always triggers an evaluation, so `best` is set.
    let (best_acc, best_at, (w_in, w_inh, w_exc)) = best.expect("evaluated after training");
    runner.bufs.write_weights(ctx, &w_in, &w_inh, &w_exc)?;
    let test_accuracy = runner.evaluate(&test, &test_items, task.eval_batch, TEST_IDS)?;
    log(format!(
        "test accuracy {:.2}% on {} test digits (weights after {best_at} samples, validation {:.2}%)",
        100.0 * test_accuracy,
        test_items.len(),
        100.0 * best_acc
    ));

    write_validation_png(
        &validation_png,
        &curve,
        (best_at, best_acc),
        Some(test_accuracy),
    )?;
    let raster = runner.raster(&test, test_items[0].0, TEST_IDS)?;
    write_raster_png(
        &opts.out.join("raster.png"),
        &culture,
        &runner.classes,
        &raster,
    )?;
    write_weights_png(&opts.out.join("input_weights.png"), &culture, &w_in)?;
    crate::spiking::checkpoint::write(
        &opts.out.join(crate::train::checkpoint::FILE),
        &culture,
        &w_in,
        &w_inh,
        &w_exc,
    )?;

    let simulated = (train_items.len() + val_items.len() * curve.len() + test_items.len() + 1)
        as f64
        * task.duration_ms as f64;
    let metrics = SpikingMetrics {
        recipe: recipe.name.clone(),
        seed: recipe.seed,
        encoder: task.encoder,
        culture_from: opts.culture.clone(),
        adapter: ctx.adapter_name(),
        neurons: culture.neurons(),
        synapses_input: culture.input.synapses(),
        synapses_excitatory: culture.exc_synapses(),
        synapses_inhibitory: culture.inhibitory.synapses(),
        classes: task.classes.clone(),
        train_samples: train_items.len(),
        validation_samples: val_items.len(),
        test_samples: test_items.len(),
        best_validation_accuracy: best_acc,
        best_at_samples: best_at,
        test_accuracy,
        validation_curve: curve,
        simulated_ms: simulated,
        wall_seconds: started.elapsed().as_secs_f64(),
        build_seconds,
    };
    let json = serde_json::to_vec_pretty(&metrics).expect("metrics serialise");
    write_atomic(&opts.out.join("metrics.json"), &json)?;
    Ok(metrics)
}

/// `validation.png`: validation accuracy against training samples seen, the best evaluation
/// (whose weights are tested) marked, and once tested the test accuracy as a dashed line.
/// Redrawn after every evaluation, so a running culture has its curve too.
fn write_validation_png(
    path: &Path,
    curve: &[CurvePoint],
    (best_at, best_acc): (usize, f64),
    test_accuracy: Option<f64>,
) -> Result<()> {
    let last = curve.last().map_or(best_at, |p| p.samples) as f64;
    let mut series = vec![
        Series {
            label: "validation".into(),
            points: curve
                .iter()
                .map(|p| (p.samples as f64, 100.0 * p.validation_accuracy))
                .collect(),
            mark: Mark::Line,
            colour: 0,
        },
        Series {
            label: format!("best: {:.2}% after {best_at}", 100.0 * best_acc),
            points: vec![(best_at as f64, 100.0 * best_acc)],
            mark: Mark::Dots,
            colour: 1,
        },
    ];
    if let Some(test) = test_accuracy {
        series.push(Series {
            label: format!("test, best weights: {:.2}%", 100.0 * test),
            points: vec![(0.0, 100.0 * test), (last, 100.0 * test)],
            mark: Mark::Dashed,
            colour: 2,
        });
    }
    write_png(
        path,
        &[Panel {
            title: "culture validation accuracy".into(),
            x_label: "training samples seen".into(),
            y_label: "accuracy (%)".into(),
            series,
            ..Panel::default()
        }],
    )
}

/// Spikes of one presentation: time along x (one column per step), neurons along y sorted by
/// their electrode cell, coloured by the class they read out for (grey: no class).
fn write_raster_png(
    path: &Path,
    culture: &Culture,
    classes: &[Option<usize>],
    raster: &[Vec<bool>],
) -> Result<()> {
    let n = culture.neurons();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (electrode_cell(culture.positions[i]), i));
    let (sx, sy) = (4u32, if n <= 1000 { 2u32 } else { 1 });
    let rows_px = if n <= 1000 {
        n as u32 * sy
    } else {
        n.div_ceil(4) as u32
    };
    let mut img = RgbImage::from_pixel(
        raster.len() as u32 * sx,
        rows_px.max(1),
        Rgb([255, 255, 255]),
    );
    let palette = [
        [200, 40, 40],
        [40, 80, 200],
        [30, 150, 60],
        [160, 60, 170],
        [200, 130, 0],
        [0, 150, 150],
    ];
    for (t, spikes) in raster.iter().enumerate() {
        for (row, &i) in order.iter().enumerate() {
            if !spikes[i] {
                continue;
            }
            let colour = classes[i].map_or([90, 90, 90], |c| palette[c % palette.len()]);
            let y0 = if n <= 1000 {
                row as u32 * sy
            } else {
                row as u32 / 4
            };
            for dx in 0..sx {
                for dy in 0..sy {
                    let (x, y) = (t as u32 * sx + dx, y0 + dy);
                    if y < img.height() {
                        img.put_pixel(x, y, Rgb(colour));
                    }
                }
            }
        }
    }
    img.save(path).map_err(|e| HebbError::Io {
        path: path.into(),
        source: std::io::Error::other(e),
    })
}

/// The learned input weights as a 6 x 10 grid of panels, one per electrode at its place on
/// the array. Each panel shows the whole culture with every neuron drawn at its position,
/// brighter the stronger that electrode's synapse onto it (scaled to the panel's strongest);
/// the panel's electrode is marked with a grey cross.
fn write_weights_png(path: &Path, culture: &Culture, w_in: &[f32]) -> Result<()> {
    let (pw, ph) = (120u32, 72u32);
    let gap = 4u32;
    let mut img = RgbImage::from_pixel(
        ELECTRODE_COLS as u32 * (pw + gap) + gap,
        ELECTRODE_ROWS as u32 * (ph + gap) + gap,
        Rgb([40, 40, 40]),
    );
    let width = culture.input.width;
    let n = culture.neurons();
    let mut strongest = vec![0.0f32; ELECTRODES];
    for i in 0..n {
        for j in 0..width {
            let e = culture.input.index[i * width + j];
            if e != crate::spiking::culture::NONE {
                strongest[e as usize] = strongest[e as usize].max(w_in[i * width + j]);
            }
        }
    }
    let radius = if n <= 1000 { 1i64 } else { 0 };
    for (e, &top) in strongest.iter().enumerate() {
        let (r, k) = ((e / ELECTRODE_COLS) as u32, (e % ELECTRODE_COLS) as u32);
        let (x0, y0) = (gap + k * (pw + gap), gap + r * (ph + gap));
        for y in 0..ph {
            for x in 0..pw {
                img.put_pixel(x0 + x, y0 + y, Rgb([0, 0, 0]));
            }
        }
        let mut put = |x: f64, y: f64, dx: i64, dy: i64, c: Rgb<u8>| {
            let px = (x / WIDTH * (pw - 1) as f64) as i64 + dx;
            let py = (y / HEIGHT * (ph - 1) as f64) as i64 + dy;
            if px >= 0 && py >= 0 && (px as u32) < pw && (py as u32) < ph {
                img.put_pixel(x0 + px as u32, y0 + py as u32, c);
            }
        };
        for i in 0..n {
            let w = (0..width)
                .find(|&j| culture.input.index[i * width + j] == e as u32)
                .map_or(0.0, |j| w_in[i * width + j]);
            if w <= 0.0 || top <= 0.0 {
                continue;
            }
            let v = (255.0 * (w / top).sqrt()) as u8;
            let (x, y) = culture.positions[i];
            for dx in -radius..=radius {
                for dy in -radius..=radius {
                    put(x, y, dx, dy, Rgb([v, v, v / 3]));
                }
            }
        }
        let (cx, cy) = electrode_centre(e);
        for d in -3i64..=3 {
            put(cx, cy, d, 0, Rgb([120, 120, 255]));
            put(cx, cy, 0, d, Rgb([120, 120, 255]));
        }
    }
    img.save(path).map_err(|e| HebbError::Io {
        path: path.into(),
        source: std::io::Error::other(e),
    })
}
