//! A network and its training protocol as a TOML recipe (`recipes/*.toml`). Every table
//! rejects unknown keys, and a parse error names the line and column.
//!
//! ```toml
//! name = "softhebb-mnist"
//! seed = 0
//! [data]          dataset, path, image_size/resize (image folders), workers, validation,
//!                 split = { kind = "stratified" } | { kind = "python-shuffle", seed = 200 }
//! [preprocess]    normalize = "none" | "dataset" | { mean = [...], std = [...] }
//!                 zca = { epsilon = 1e-2, samples = 10000, center = true }   (optional, after normalize)
//! [hebbian]       schedule = "greedy" | "simultaneous", epochs, batch, lr_schedule
//! [[layer]]       one Hebbian block: input_norm → conv/linear (rule) → activation → pool → output_norm
//! [classifier]    epochs, batch, optimizer, dropout, lr_schedule, label_fraction
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rules::preset::{ForwardWeights, RuleConfig};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: u64,
    /// Seeds to train and average when the paper reports a mean over seeds (`hebb train` runs
    /// each into `<out>/seed<N>` and prints mean ± s.d.; `--seed N` runs one).
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    pub data: DataSpec,
    #[serde(default)]
    pub preprocess: Preprocess,
    pub hebbian: HebbianSpec,
    #[serde(rename = "layer")]
    pub layers: Vec<LayerSpec>,
    pub classifier: ClassifierSpec,
    /// End-to-end fine-tuning: with this section the supervised stage trains the blocks it
    /// names together with the classifier, by backpropagation, with `[classifier]`'s optimizer,
    /// schedule, epochs, batch, dropout, label fraction and model selection (Lagani's
    /// semi-supervised protocol; from random weights, the backprop baseline).
    #[serde(default)]
    pub finetune: Option<FineTuneSpec>,
}

/// What `[finetune]` trains, and from which weights.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineTuneSpec {
    /// The blocks (0-based) that learn with the classifier; default all. Blocks below the
    /// lowest of them run frozen.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    #[serde(default)]
    pub from: FineTuneFrom,
    /// The learning blocks' batch norms get a per-channel scale γ (from 1) and shift β (from
    /// 0), y = f·(γ·x̂ + β), learned with the weights (PyTorch's `affine=True`, what Lagani's
    /// fine-tuning trains). They exist from the start, so the Hebbian stages see γ = 1, β = 0.
    #[serde(default)]
    pub batch_norm_affine: bool,
}

/// Where fine-tuning starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FineTuneFrom {
    /// After the Hebbian stages, from their weights.
    #[default]
    Hebbian,
    /// No Hebbian stage: from the blocks' initialisation (the backprop baseline).
    Random,
}

impl FineTuneSpec {
    /// The learning blocks of a network of `blocks` blocks.
    pub fn learning(&self, blocks: usize) -> Vec<usize> {
        self.layers.clone().unwrap_or_else(|| (0..blocks).collect())
    }
}

/// How `data.validation` and `classifier.label_fraction` pick their items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SplitSpec {
    /// Drawn by the recipe's seed: a random validation hold-out, and a stratified labelled
    /// subset (each class keeps the fraction of its items).
    #[default]
    Stratified,
    /// Lagani's data manager: one shuffle of the training items by CPython's `random` module
    /// seeded with `seed` (its data seed, 200); validation is the last `data.validation` items of
    /// that order, and the labelled subset is a prefix of the rest (not stratified; nested, so
    /// a smaller fraction's labels are part of every larger one's).
    PythonShuffle { seed: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
    Cifar10,
    Cifar100,
    Stl10,
    /// `train/<class>/*` and `val/<class>/*` image folders (ImageNet layout).
    Folder,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub dataset: DatasetKind,
    /// Dataset folder; `--data` overrides it. MNIST defaults to the bundled `datasets/mnist`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Image folders: side of the square crop fed to the network.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// Image folders: shorter side after resizing, before the centre crop (eval).
    #[serde(default)]
    pub resize: Option<usize>,
    /// Decoding threads (default: available cores, at most 8).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Training items held out for validation (a seeded random subset of the training split,
    /// Lagani's 10,000 of CIFAR's 50,000): neither the Hebbian layers nor the classifier learn
    /// from them; the classifier is scored on them after every epoch.
    #[serde(default)]
    pub validation: Option<usize>,
    /// How the validation hold-out and the labelled subset are drawn from the training items.
    #[serde(default)]
    pub split: SplitSpec,
    /// Random crop/flip while training the classifier (disables the feature cache).
    #[serde(default)]
    pub augment: crate::data::source::Augment,
    /// Image folders: RandomResizedCrop (scale 0.08–1) + flip while training the classifier
    /// (SoftHebb's ImageNet protocol), instead of `augment`.
    #[serde(default)]
    pub random_resized_crop: bool,
}

impl DataSpec {
    /// Whether classifier batches are augmented (which rules out the feature cache).
    pub fn augments(&self) -> bool {
        !self.augment.is_identity() || self.random_resized_crop
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    #[serde(default)]
    pub normalize: Normalize,
    /// ZCA whitening after the standardisation (Lagani's WTA preprocessing).
    #[serde(default)]
    pub zca: Option<ZcaSpec>,
}

/// ZCA whitening x ↦ (x − μ)·Z with Z = U·diag(1/√(λ + ε))·Uᵀ from the covariance
/// U·diag(λ)·Uᵀ of the training split, computed once at the start of a run (`nn::zca`).
/// Images up to 32 x 32 with C·H·W ≤ 4096 are whitened whole; larger ones in non-overlapping
/// 32 x 32 blocks sharing one transform (H and W must then be multiples of 32).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZcaSpec {
    /// ε added to each eigenvalue (Lagani: 1e-2).
    #[serde(default = "zca_epsilon")]
    pub epsilon: f64,
    /// Vectors the statistics use: the first training images (all 32 x 32 blocks of the
    /// first images in block mode), after standardisation.
    #[serde(default = "zca_samples")]
    pub samples: usize,
    /// true: Z whitens the covariance about the sample mean μ, and x − μ is whitened. false:
    /// Lagani's data manager: Z whitens the second moment (1/(n − 1))·Σ x·xᵀ about zero and
    /// nothing is subtracted.
    #[serde(default = "zca_center")]
    pub center: bool,
}

fn zca_center() -> bool {
    true
}

fn zca_epsilon() -> f64 {
    1e-2
}
fn zca_samples() -> usize {
    10_000
}

/// Per-channel input standardisation (x − mean_c)/std_c, applied on the GPU.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum Normalize {
    #[default]
    #[serde(skip)]
    None,
    /// "none" or "dataset" (statistics of the training split, computed once).
    Named(String),
    Explicit {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// SoftHebb: layer i learns alone for `epochs` epochs, earlier layers frozen.
    Greedy,
    /// Lagani: every layer learns from each batch's single forward pass.
    Simultaneous,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HebbLrSchedule {
    #[default]
    Constant,
    /// Krotov–Hopfield: lr·(1 − epoch/epochs), per epoch.
    Linear,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HebbianSpec {
    pub schedule: Schedule,
    pub epochs: usize,
    pub batch: usize,
    #[serde(default)]
    pub lr_schedule: HebbLrSchedule,
    /// Images each Hebbian epoch visits (the first of the epoch's shuffled order; default all).
    #[serde(default)]
    pub images_per_epoch: Option<usize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    #[default]
    Conv,
    /// Fully connected: a convolution whose kernel covers the whole input.
    Linear,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    #[default]
    Zeros,
    Reflect,
}

/// Batch norm without affine parameters (momentum 0.1, ε 1e-5 as PyTorch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    #[default]
    None,
    Batch,
    /// Lagani's variance-preserving BN.
    Modified,
}

/// The current U = P·Ŵᵀ a block's output is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputCurrent {
    /// Ŵ = the rule's forward weights W̃ (`Preset::forward_weights`): sign(W)|W|^{p−1} for
    /// Krotov's p ≠ 2, each row over its norm for Lagani's WTA rules, W for the others.
    #[default]
    Rule,
    /// Ŵ = W itself: Krotov & Hopfield's read-out h = f(W·v), where the rule's current is
    /// ⟨W, v⟩ with the metric |W|^{p−2}.
    Weights,
}

/// A size given as `3` or `[3, 5]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Size2 {
    Square(usize),
    Rect([usize; 2]),
}

impl Size2 {
    pub fn get(self) -> [usize; 2] {
        match self {
            Size2::Square(v) => [v, v],
            Size2::Rect(v) => v,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Activation {
    Identity,
    Relu,
    Tanh,
    Logistic,
    /// SoftHebb: relu(u − mean over channels)^power.
    Triangle {
        power: f32,
    },
    /// Krotov–Hopfield's classifier input: relu(u)^power.
    ReluPow {
        power: f32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKindSpec {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub kind: PoolKindSpec,
    pub kernel: Size2,
    pub stride: Size2,
    #[serde(default = "zero_size")]
    pub padding: Size2,
    /// Average pooling's divisor includes the padding (PyTorch's default).
    #[serde(default = "yes")]
    pub count_include_pad: bool,
}

fn zero_size() -> Size2 {
    Size2::Square(0)
}
fn one_size() -> Size2 {
    Size2::Square(1)
}
fn yes() -> bool {
    true
}

/// Initial weights.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Init {
    /// N(mean, std²).
    Normal {
        #[serde(default)]
        mean: f64,
        std: f64,
    },
    /// SoftHebb: N(0, σ²) with σ = radius/√fan_in, so rows start with norm ≈ radius.
    Radius { radius: f64 },
    /// Lagani: U(−1/√fan_in, 1/√fan_in).
    UniformFanIn,
    /// Glorot normal: std √(2/(fan_in + fan_out)).
    GlorotNormal,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    #[serde(default)]
    pub kind: LayerKind,
    /// Output channels (neurons).
    pub channels: usize,
    #[serde(default)]
    pub kernel: Option<Size2>,
    #[serde(default = "one_size")]
    pub stride: Size2,
    #[serde(default = "zero_size")]
    pub padding: Size2,
    #[serde(default)]
    pub padding_mode: PaddingMode,
    /// Batch norm on the block input (SoftHebb).
    #[serde(default)]
    pub input_norm: NormKind,
    /// Scale each patch (each image for a linear layer) to unit L2 norm in the forward pass
    /// (what the next block, the output batch norm and the classifier see: Krotov's advice); the
    /// rule's learning step always sees raw inputs.
    #[serde(default)]
    pub unit_norm_input: bool,
    /// Which weights the block's output (what the next block and the classifier read) projects
    /// onto. The rule's own learning step always uses the rule's current.
    #[serde(default)]
    pub output_current: OutputCurrent,
    pub rule: RuleConfig,
    pub init: Init,
    pub activation: Activation,
    #[serde(default)]
    pub pool: Option<PoolSpec>,
    /// Batch norm after activation and pooling (Lagani).
    #[serde(default)]
    pub output_norm: NormKind,
    /// Run the frozen forward of a conv layer as an implicit GEMM (conv.wgsl: patches gathered
    /// inside the GEMM's tile loads), so the patch matrix is stored only for the smaller
    /// learning batch. Also chosen automatically when the patch matrix of the largest batch
    /// would exceed `nn::layer::PATCH_BUDGET` elements. Not with `unit_norm_input`.
    #[serde(default)]
    pub implicit_gemm: bool,
}

impl LayerSpec {
    /// The weights Ŵ of the block's output current U = P·Ŵᵀ (`output_current`).
    pub fn output_weights(&self) -> ForwardWeights {
        match self.output_current {
            OutputCurrent::Rule => self.rule.preset.forward_weights(),
            OutputCurrent::Weights => ForwardWeights::Raw,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClassifierOptimizer {
    /// PyTorch SGD (dampening 0), L2 weight decay.
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam (ε added to √v; bias-corrected rate), L2 weight decay.
    Adam {
        lr: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "adam_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn adam_eps() -> f64 {
    1e-8
}

impl ClassifierOptimizer {
    pub fn lr(&self) -> f64 {
        match *self {
            ClassifierOptimizer::Sgd { lr, .. } | ClassifierOptimizer::Adam { lr, .. } => lr,
        }
    }
}

/// Learning-rate schedule of the classifier, applied per epoch.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum LrSchedule {
    #[default]
    #[serde(skip)]
    Constant,
    /// "constant", or "softhebb" (CustomStepLR: halve at ⌊{0.2,0.35,0.5,0.6,0.7,0.8,0.9}·E⌋
    /// when E ≥ 50, at ⌊{0.5,0.75}·E⌋ when 20 ≤ E < 50, never below 20 epochs).
    Named(String),
    /// Multiply by gamma at each milestone epoch (MultiStepLR).
    Steps { milestones: Vec<usize>, gamma: f64 },
}

impl LrSchedule {
    /// The factor on the base learning rate during epoch `epoch` of `epochs`.
    pub fn factor(&self, epoch: usize, epochs: usize) -> f64 {
        let halvings = |at: &[f64]| {
            at.iter()
                .filter(|&&f| epoch >= (f * epochs as f64).floor() as usize)
                .count() as i32
        };
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Named(n) if n == "softhebb" => {
                if epochs >= 50 {
                    0.5f64.powi(halvings(&[0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9]))
                } else if epochs >= 20 {
                    0.5f64.powi(halvings(&[0.5, 0.75]))
                } else {
                    1.0
                }
            }
            LrSchedule::Named(_) => 1.0,
            LrSchedule::Steps { milestones, gamma } => {
                gamma.powi(milestones.iter().filter(|&&m| epoch >= m).count() as i32)
            }
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSpec {
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: ClassifierOptimizer,
    #[serde(default)]
    pub dropout: f32,
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Fraction of the training labels the classifier sees (stratified, fixed by the seed).
    #[serde(default = "one")]
    pub label_fraction: f64,
    /// Keep the frozen features of the training and test splits in host memory (f32, or f16
    /// when only that fits) within this many MiB, instead of recomputing them every epoch.
    /// 0 disables the cache. Default: half of this machine's memory
    /// (`data::limits::host_memory_budget`).
    #[serde(default)]
    pub feature_cache_mib: Option<usize>,
    /// Which epoch's classifier the run reports: the last, or the one with the best
    /// validation accuracy (needs `data.validation`; Lagani and SpikingGrid select so).
    #[serde(default)]
    pub select: Selection,
    /// The loss on the linear map's outputs z = W·x + b.
    #[serde(default)]
    pub head: ClassifierHead,
}

/// The classifier's loss. Both predict the first argmax of z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClassifierHead {
    /// Softmax cross-entropy (with the bias b).
    #[default]
    Softmax,
    /// Krotov & Hopfield's (PNAS 2019) top layer: c = tanh(β·S·h), loss Σ_k |c_k − t_k|^m
    /// with t = +1 for the label and −1 elsewhere; no bias (b stays 0). The paper: β = 0.01,
    /// m = 6.
    TanhPower { beta: f64, power: f64 },
}

/// Model selection over the classifier's epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    #[default]
    Last,
    BestValidation,
}

fn one() -> f64 {
    1.0
}

/// Largest recipe file read.
pub const MAX_RECIPE_BYTES: u64 = 1 << 20;

/// Reads a recipe file: at most [`MAX_RECIPE_BYTES`], UTF-8 text without control characters
/// (other than tab and line ends), so a binary file is refused before its bytes could reach a
/// terminal in an error message.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = crate::data::limits::read_bounded(path, MAX_RECIPE_BYTES, "the recipe file")
        .map_err(|e| e.message)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "not a TOML text file: byte {} is not UTF-8",
            e.utf8_error().valid_up_to()
        )
    })?;
    if let Some((i, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!(
            "not a TOML text file: byte {i} is the control character {:?}",
            c
        ));
    }
    Ok(text)
}

/// `text` with control characters (other than line ends and tabs) escaped, for messages that
/// quote a file's content.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\t' | '\n') {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Largest batch a recipe may ask for.
pub const MAX_BATCH: usize = 65_536;
/// Most decoding threads.
pub const MAX_WORKERS: usize = 256;
/// Largest image side, kernel or stride a recipe may name.
pub const MAX_IMAGE_SIDE: usize = 4096;

/// A recipe or run name becomes a folder under `runs/`: plain letters, digits, `.`, `_` and
/// `-`, not starting with `.`, so it can never name a path outside that folder.
pub fn check_run_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "name = {name:?}: expected 1 to 128 letters, digits, '.', '_' or '-', not starting \
             with '.' (it names the run's folder under runs/)"
        ))
    }
}

/// `value` must be a finite number.
pub fn finite(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(format!("{field} = {value} must be a finite number"))
    }
}

/// `value` must be finite and > 0.
pub fn positive(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("{field} = {value} must be a finite number > 0"))
    }
}

/// `value` must be finite and ≥ 0.
pub fn non_negative(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!("{field} = {value} must be a finite number ≥ 0"))
    }
}

/// `value` must lie in [0, 1).
pub fn unit_interval(field: &str, value: f64) -> Result<(), String> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("{field} = {value} must be in [0, 1)"))
    }
}

/// SGD's hyper-parameters (Hebbian and classifier optimizers alike); `prefix` names the table.
pub fn check_sgd(prefix: &str, lr: f64, momentum: f64, weight_decay: f64) -> Result<(), String> {
    positive(&format!("{prefix}.lr"), lr)?;
    unit_interval(&format!("{prefix}.momentum"), momentum)?;
    non_negative(&format!("{prefix}.weight_decay"), weight_decay)
}

/// Adam's hyper-parameters (Hebbian and classifier optimizers alike).
pub fn check_adam(
    prefix: &str,
    lr: f64,
    (beta1, beta2): (f64, f64),
    eps: f64,
    weight_decay: f64,
) -> Result<(), String> {
    positive(&format!("{prefix}.lr"), lr)?;
    unit_interval(&format!("{prefix}.beta1"), beta1)?;
    unit_interval(&format!("{prefix}.beta2"), beta2)?;
    positive(&format!("{prefix}.eps"), eps)?;
    non_negative(&format!("{prefix}.weight_decay"), weight_decay)
}

impl ClassifierOptimizer {
    fn validate(&self) -> Result<(), String> {
        let prefix = "classifier.optimizer";
        match *self {
            ClassifierOptimizer::Sgd {
                lr,
                momentum,
                weight_decay,
                ..
            } => check_sgd(prefix, lr, momentum, weight_decay),
            ClassifierOptimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => check_adam(prefix, lr, (beta1, beta2), eps, weight_decay),
        }
    }
}

/// A recipe that could not be used: the file and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RecipeError {
    pub path: PathBuf,
    pub message: String,
}

impl Recipe {
    /// Parses and validates a recipe's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RecipeError> {
        let bad = |message: String| RecipeError {
            path: path.to_path_buf(),
            message,
        };
        let recipe: Recipe = toml::from_str(text).map_err(|e| bad(printable(&e.to_string())))?;
        recipe.validate().map_err(bad)?;
        Ok(recipe)
    }

    pub fn load(path: &Path) -> Result<(Self, String), RecipeError> {
        let text = read_text(path).map_err(|message| RecipeError {
            path: path.to_path_buf(),
            message,
        })?;
        Ok((Self::parse(&text, path)?, text))
    }

    /// Checks every value against what it means and what it will allocate; run again on the
    /// recipe with the command line's overrides applied. Errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        check_run_name(&self.name)?;
        if self.layers.is_empty() {
            return Err("a recipe needs at least one [[layer]]".into());
        }
        if self.hebbian.epochs == 0 || self.classifier.epochs == 0 {
            return Err(format!(
                "hebbian.epochs = {} and classifier.epochs = {} must be at least 1",
                self.hebbian.epochs, self.classifier.epochs
            ));
        }
        if self.hebbian.images_per_epoch == Some(0) {
            return Err("hebbian.images_per_epoch must be at least 1".into());
        }
        // The batch sizes also size GPU buffers, which are checked against the adapter's
        // limits before anything is allocated; this bound keeps host-side batch vectors sane.
        for (field, batch) in [
            ("hebbian.batch", self.hebbian.batch),
            ("classifier.batch", self.classifier.batch),
        ] {
            if batch > MAX_BATCH {
                return Err(format!("{field} = {batch} is larger than {MAX_BATCH}"));
            }
        }
        if let Some(w) = self.data.workers
            && !(1..=MAX_WORKERS).contains(&w)
        {
            return Err(format!("data.workers = {w} must be in 1..={MAX_WORKERS}"));
        }
        for (field, v) in [
            ("data.image_size", self.data.image_size),
            ("data.resize", self.data.resize),
        ] {
            if let Some(v) = v
                && !(1..=MAX_IMAGE_SIDE).contains(&v)
            {
                return Err(format!("{field} = {v} must be in 1..={MAX_IMAGE_SIDE}"));
            }
        }
        self.classifier.optimizer.validate()?;
        self.data.augment.validate("data.augment")?;
        if let Some(f) = &self.finetune
            && let Some(layers) = &f.layers
        {
            if let Some(&bad) = layers.iter().find(|&&i| i >= self.layers.len()) {
                return Err(format!(
                    "finetune.layers names layer {bad}, but the recipe has {} (0-based)",
                    self.layers.len()
                ));
            }
        }
        if self.data.validation == Some(0) {
            return Err("data.validation must be at least 1 (or left out)".into());
        }
        if self.classifier.select == Selection::BestValidation && self.data.validation.is_none() {
            return Err(
                "classifier.select = \"best-validation\" needs data.validation (the held-out \
                 items it selects on)"
                    .into(),
            );
        }
        if let ClassifierHead::TanhPower { beta, power } = self.classifier.head {
            positive("classifier.head.beta", beta)?;
            if !(power.is_finite() && power > 1.0) {
                return Err(format!(
                    "classifier.head.power = {power} must be a finite number > 1"
                ));
            }
        }
        if let LrSchedule::Steps { gamma, .. } = &self.classifier.lr_schedule {
            positive("classifier.lr_schedule.gamma", *gamma)?;
        }
        if let Normalize::Explicit { mean, std } = &self.preprocess.normalize {
            for (i, (&m, &s)) in mean.iter().zip(std).enumerate() {
                finite(&format!("preprocess.normalize.mean[{i}]"), m as f64)?;
                positive(&format!("preprocess.normalize.std[{i}]"), s as f64)?;
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            let at = |field: &str| format!("layer {i}: {field}");
            match l.init {
                Init::Normal { mean, std } => {
                    finite(&at("init.mean"), mean)?;
                    positive(&at("init.std"), std)?;
                }
                Init::Radius { radius } => positive(&at("init.radius"), radius)?,
                Init::UniformFanIn | Init::GlorotNormal => {}
            }
            if let Activation::Triangle { power } | Activation::ReluPow { power } = l.activation {
                positive(&at("activation.power"), power as f64)?;
            }
            let sizes = [
                ("kernel", l.kernel.map(Size2::get)),
                ("stride", Some(l.stride.get())),
                ("pool.kernel", l.pool.map(|p| p.kernel.get())),
                ("pool.stride", l.pool.map(|p| p.stride.get())),
            ];
            for (field, size) in sizes {
                if let Some([a, b]) = size
                    && (a == 0 || b == 0 || a > MAX_IMAGE_SIDE || b > MAX_IMAGE_SIDE)
                {
                    return Err(at(&format!(
                        "{field} = [{a}, {b}] must be in 1..={MAX_IMAGE_SIDE}"
                    )));
                }
            }
        }
        if self.hebbian.batch == 0 || self.classifier.batch == 0 {
            return Err("hebbian.batch and classifier.batch must be at least 1".into());
        }
        if !(self.classifier.label_fraction > 0.0 && self.classifier.label_fraction <= 1.0) {
            return Err(format!(
                "classifier.label_fraction = {} must be in (0, 1]",
                self.classifier.label_fraction
            ));
        }
        if !(0.0..1.0).contains(&self.classifier.dropout) {
            return Err(format!(
                "classifier.dropout = {} must be in [0, 1)",
                self.classifier.dropout
            ));
        }
        if let LrSchedule::Named(n) = &self.classifier.lr_schedule
            && n != "constant"
            && n != "softhebb"
        {
            return Err(format!(
                "classifier.lr_schedule = {n:?}: expected \"constant\", \"softhebb\" or {{ milestones, gamma }}"
            ));
        }
        match &self.preprocess.normalize {
            Normalize::Named(n) if n != "none" && n != "dataset" => {
                return Err(format!(
                    "preprocess.normalize = {n:?}: expected \"none\", \"dataset\" or {{ mean, std }}"
                ));
            }
            Normalize::Explicit { mean, std } if mean.len() != std.len() => {
                return Err("preprocess.normalize: mean and std differ in length".into());
            }
            _ => {}
        }
        if let Some(z) = &self.preprocess.zca {
            if !(z.epsilon.is_finite() && z.epsilon > 0.0) {
                return Err(format!(
                    "preprocess.zca.epsilon = {} must be positive",
                    z.epsilon
                ));
            }
            if z.samples < 2 {
                return Err(format!(
                    "preprocess.zca.samples = {} must be at least 2",
                    z.samples
                ));
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.channels == 0 {
                return Err(format!("layer {i}: channels must be at least 1"));
            }
            match (l.kind, l.kernel) {
                (LayerKind::Conv, None) => {
                    return Err(format!("layer {i}: a conv layer needs `kernel`"));
                }
                (LayerKind::Linear, Some(_)) => {
                    return Err(format!(
                        "layer {i}: a linear layer's kernel is its whole input; remove `kernel`"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
