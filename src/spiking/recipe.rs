//! Spiking recipes (`recipes/spiking-*.toml`): a culture, a task and a seed. Bundled so
//! `hebb spiking NAME` works from any folder.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{HebbError, Result};
use crate::spiking::culture::CultureConfig;

/// The MNIST protocol of SpikingGrid (runexp.py, data.py).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// MNIST digits to recognise, in class order.
    pub classes: Vec<u8>,
    /// Training pool: the first N MNIST training images, restricted to `classes`; one epoch,
    /// one sample at a time, in a seeded shuffled order.
    pub train_pool: usize,
    /// Validation: MNIST training images [start, end) of `classes`.
    pub validation: [usize; 2],
    /// Evaluate on the validation set every this many training samples (the best weights
    /// by validation accuracy are kept and tested).
    pub eval_every: usize,
    /// Samples evaluated in parallel.
    pub eval_batch: usize,
    /// Presentation time per sample, ms.
    pub duration_ms: u32,
    /// Poisson rate of a pixel of intensity 1 and of a driven label electrode, Hz.
    pub rate_hz: f64,
    /// How an electrode's rate becomes spikes (see `spiking::task`).
    pub encoder: Encoder,
}

/// The electrode spike encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoder {
    /// SpikingGrid's (bindsnet 0.2's `poisson`): inter-spike intervals drawn from a Poisson
    /// distribution of mean 1000/rate ms (in steps of dt), a zero interval counted as one
    /// step, spikes at the cumulative sums inside the window. Nearly regular trains; an input
    /// whose mean interval exceeds the window almost never fires.
    #[default]
    Intervals,
    /// Bernoulli(rate · dt) independently at every step.
    Bernoulli,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            classes: vec![0, 1],
            train_pool: 10_000,
            validation: [50_000, 60_000],
            eval_every: 50,
            eval_batch: 64,
            duration_ms: 100,
            rate_hz: 200.0,
            encoder: Encoder::Intervals,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikingRecipe {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub culture: CultureConfig,
    #[serde(default)]
    pub task: TaskConfig,
}

/// Most samples evaluated at once.
pub const MAX_EVAL_BATCH: usize = 4096;
/// Longest presentation of one sample, ms (SpikingGrid presents for 100 to 350 ms).
pub const MAX_DURATION_MS: u32 = 60_000;
/// Most simulation steps per presentation.
pub const MAX_STEPS: u32 = 600_000;
/// Largest buffer of electrode spike trains for one evaluation batch (steps x batch x 60 f32).
pub const MAX_TRAIN_BYTES: u64 = 1 << 30;

/// (name, TOML text) of every bundled spiking recipe.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "spiking-mnist01-bio",
        include_str!("../../recipes/spiking-mnist01-bio.toml"),
    ),
    (
        "spiking-mnist01-tuned",
        include_str!("../../recipes/spiking-mnist01-tuned.toml"),
    ),
    (
        "spiking-mnist01-240n-bio",
        include_str!("../../recipes/spiking-mnist01-240n-bio.toml"),
    ),
    (
        "spiking-mnist01-240n-tuned",
        include_str!("../../recipes/spiking-mnist01-240n-tuned.toml"),
    ),
    (
        "spiking-mnist012-bio",
        include_str!("../../recipes/spiking-mnist012-bio.toml"),
    ),
    (
        "spiking-mnist0123-bio",
        include_str!("../../recipes/spiking-mnist0123-bio.toml"),
    ),
];

impl SpikingRecipe {
    /// Parses and checks a recipe; errors name `source` and the field.
    pub fn parse(text: &str, source: &str) -> Result<SpikingRecipe> {
        let recipe: SpikingRecipe = toml::from_str(text).map_err(|e| HebbError::Format {
            path: source.into(),
            message: crate::nn::recipe::printable(&e.to_string()),
        })?;
        recipe.culture.validate(source)?;
        let bad = |message: String| {
            Err(HebbError::Format {
                path: source.into(),
                message,
            })
        };
        let t = &recipe.task;
        let classes = crate::spiking::task::label_electrodes(t.classes.len());
        if t.classes.len() < 2 || classes.is_none() {
            return bad(format!(
                "task.classes: 2, 3, 4 or 6 distinct digits (got {:?})",
                t.classes
            ));
        }
        let mut sorted = t.classes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != t.classes.len() || sorted.iter().any(|&c| c > 9) {
            return bad(format!(
                "task.classes: distinct digits 0..=9 (got {:?})",
                t.classes
            ));
        }
        if t.validation[0] >= t.validation[1] {
            return bad(format!(
                "task.validation: [start, end) with start < end (got {:?})",
                t.validation
            ));
        }
        if t.eval_every == 0 || t.eval_batch == 0 || t.duration_ms == 0 {
            return bad("task.eval_every, eval_batch and duration_ms must be ≥ 1".into());
        }
        if t.eval_batch > MAX_EVAL_BATCH {
            return bad(format!(
                "task.eval_batch = {} is larger than {MAX_EVAL_BATCH}",
                t.eval_batch
            ));
        }
        if t.duration_ms > MAX_DURATION_MS
            || t.duration_ms as f64 / recipe.culture.dt > MAX_STEPS as f64
        {
            return bad(format!(
                "task.duration_ms = {} must be at most {MAX_DURATION_MS} ms and {MAX_STEPS} steps \
                 of culture.dt = {} ms (every step is recorded into one GPU submission)",
                t.duration_ms, recipe.culture.dt
            ));
        }
        // The interval encoder's trains of one evaluation batch: steps x eval_batch x 60 f32.
        let train_bytes =
            (t.duration_ms as f64 / recipe.culture.dt).round() * t.eval_batch as f64 * 60.0 * 4.0;
        if train_bytes > MAX_TRAIN_BYTES as f64 {
            return bad(format!(
                "task.duration_ms = {} at culture.dt = {} ms and task.eval_batch = {} need {} of \
                 electrode spike trains per evaluation batch, more than {}; shorten the \
                 presentation or the batch",
                t.duration_ms,
                recipe.culture.dt,
                t.eval_batch,
                crate::data::limits::show_bytes(train_bytes as u64),
                crate::data::limits::show_bytes(MAX_TRAIN_BYTES)
            ));
        }
        if (t.duration_ms as f64 / recipe.culture.dt).round() < 1.0 {
            return bad(format!(
                "task.duration_ms = {} is less than one step of culture.dt = {} ms",
                t.duration_ms, recipe.culture.dt
            ));
        }
        if !(t.rate_hz.is_finite() && t.rate_hz >= 0.0) {
            return bad(format!("task.rate_hz: must be ≥ 0 (got {})", t.rate_hz));
        }
        Ok(recipe)
    }

    /// A file path, or a bundled recipe's name (with or without `.toml`). Returns the recipe
    /// and where it came from.
    pub fn resolve(arg: &str) -> Result<(SpikingRecipe, String)> {
        let (text, origin) = Self::resolve_text(arg)?;
        Ok((Self::parse(&text, &origin)?, origin))
    }

    /// A bundled recipe's TOML text and its origin, by name.
    pub fn bundled_text(name: &str) -> Option<(&'static str, String)> {
        BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| (*text, format!("bundled recipe {n}")))
    }

    /// As `resolve`, but the recipe's text (for `--set` to edit) and where it came from.
    pub fn resolve_text(arg: &str) -> Result<(String, String)> {
        if Path::new(arg).is_file() {
            let text = crate::nn::recipe::read_text(Path::new(arg)).map_err(|message| {
                HebbError::Format {
                    path: arg.into(),
                    message,
                }
            })?;
            return Ok((text, arg.to_string()));
        }
        let name = arg.trim_end_matches(".toml");
        let name = name.rsplit('/').next().unwrap_or(name);
        match Self::bundled_text(name) {
            Some((text, origin)) => Ok((text.to_string(), origin)),
            None => {
                let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
                Err(HebbError::Format {
                    path: arg.into(),
                    message: format!(
                        "no such file, and no bundled spiking recipe of that name; bundled: {}",
                        names.join(", ")
                    ),
                })
            }
        }
    }
}
