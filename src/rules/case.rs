//! hebb-case/1 files (`shared/golden/FORMAT.md`): one layer, one preset, 1..n steps, inputs and
//! the authors' expected results. Loading validates everything a kernel will rely on, and each
//! error names the file and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::kernels::im2col::ConvGeometry;
use crate::rules::preset::RuleConfig;

/// A row-major array of float64 values.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        Self { shape, data }
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    Zeros,
    Reflect,
}

/// FORMAT.md §2. Dilation 1, groups 1.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Layer {
    Linear {
        in_features: usize,
        out_features: usize,
    },
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        padding_mode: PaddingMode,
    },
}

impl Layer {
    /// Fan-in D.
    pub fn fan_in(&self) -> usize {
        match self {
            Layer::Linear { in_features, .. } => *in_features,
            Layer::Conv2d {
                in_channels,
                kernel,
                ..
            } => in_channels * kernel[0] * kernel[1],
        }
    }
    /// Neurons C.
    pub fn neurons(&self) -> usize {
        match self {
            Layer::Linear { out_features, .. } => *out_features,
            Layer::Conv2d { out_channels, .. } => *out_channels,
        }
    }
    /// The convolution geometry for `batch` inputs of `hw` = (H, W); None for linear layers.
    pub fn conv_geometry(&self, batch: usize, hw: (usize, usize)) -> Option<ConvGeometry> {
        match self {
            Layer::Linear { .. } => None,
            Layer::Conv2d {
                in_channels,
                kernel,
                stride,
                padding,
                padding_mode,
                ..
            } => Some(ConvGeometry {
                batch,
                in_channels: *in_channels,
                h: hw.0,
                w: hw.1,
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
                reflect: *padding_mode == PaddingMode::Reflect,
            }),
        }
    }

    /// Output size (Ho, Wo) for an H x W input, (1, 1) for linear layers; for a convolution
    /// the geometry's checks apply (kernel within the padded input, reflect padding < input).
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize), String> {
        match self.conv_geometry(1, (h, w)) {
            None => Ok((1, 1)),
            Some(g) => g.output_hw().map_err(|e| e.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    format: String,
    name: String,
    preset: String,
    params: Value,
    layer: Layer,
    inputs: BTreeMap<String, Array>,
    expected: BTreeMap<String, Array>,
    tolerance: Tolerance,
    source: Value,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tolerance {
    rel: f64,
}

/// A validated case.
#[derive(Clone, Debug)]
pub struct Case {
    pub path: PathBuf,
    pub name: String,
    pub preset: String,
    pub rule: RuleConfig,
    pub layer: Layer,
    pub inputs: BTreeMap<String, Array>,
    pub expected: BTreeMap<String, Array>,
    pub tolerance: f64,
    /// Steps, batch, and (H, W) of the input (1 x 1 for linear layers).
    pub steps: usize,
    pub batch: usize,
    pub input_hw: (usize, usize),
    pub output_hw: (usize, usize),
}

impl Case {
    /// Rows N of the patch matrix per step.
    pub fn rows(&self) -> usize {
        self.batch * self.output_hw.0 * self.output_hw.1
    }
}

/// A case that could not be loaded: the file, the preset when known, and what was wrong.
#[derive(Clone, Debug)]
pub struct CaseError {
    pub path: PathBuf,
    pub preset: Option<String>,
    pub message: String,
}

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// Every `*.json` file under `dir`, sorted.
pub fn find_case_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn load_case(path: &Path) -> Result<Case, CaseError> {
    let fail = |preset: Option<&str>, message: String| CaseError {
        path: path.to_path_buf(),
        preset: preset.map(str::to_string),
        message,
    };
    let text = crate::data::limits::read_bounded(
        path,
        crate::data::limits::host_memory_budget(),
        "the case file",
    )
    .map_err(|e| fail(None, e.message))?;
    let text = String::from_utf8(text).map_err(|e| fail(None, format!("not UTF-8 text: {e}")))?;
    parse_case(&text, path)
}

/// A hebb-case/1 file's `text`, parsed and checked; `path` names it in errors.
pub fn parse_case(text: &str, path: &Path) -> Result<Case, CaseError> {
    let fail = |preset: Option<&str>, message: String| CaseError {
        path: path.to_path_buf(),
        preset: preset.map(str::to_string),
        message,
    };
    let raw: RawCase = serde_json::from_str(text)
        .map_err(|e| fail(None, format!("not a hebb-case/1 file: {e}")))?;
    let preset = Some(raw.preset.as_str());
    let _ = (&raw.source, &raw.notes);
    if raw.format != "hebb-case/1" {
        return Err(fail(
            preset,
            format!("format is {:?}, expected \"hebb-case/1\"", raw.format),
        ));
    }
    let rule = RuleConfig::from_params(&raw.preset, &raw.params).map_err(|m| fail(preset, m))?;
    for (group, arrays) in [("inputs", &raw.inputs), ("expected", &raw.expected)] {
        for (key, a) in arrays {
            let len = a.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if len != Some(a.data.len()) {
                return Err(fail(
                    preset,
                    format!(
                        "{group}.{key}: shape {:?} holds {} values, data has {}",
                        a.shape,
                        len.map_or("more than 2^64".to_string(), |n| n.to_string()),
                        a.data.len()
                    ),
                ));
            }
        }
    }
    let need = |key: &str| {
        raw.inputs
            .get(key)
            .ok_or_else(|| fail(preset, format!("inputs.{key} is missing")))
    };
    let (c, d) = (raw.layer.neurons(), raw.layer.fan_in());
    let w = need("w")?;
    let w_shape = match &raw.layer {
        Layer::Linear { .. } => vec![c, d],
        Layer::Conv2d {
            in_channels,
            kernel,
            ..
        } => vec![c, *in_channels, kernel[0], kernel[1]],
    };
    if w.shape != w_shape {
        return Err(fail(
            preset,
            format!(
                "inputs.w has shape {:?}, the layer needs {w_shape:?}",
                w.shape
            ),
        ));
    }
    let x = need("x")?;
    let (steps, batch, input_hw) = match (&raw.layer, x.shape.as_slice()) {
        (Layer::Linear { in_features, .. }, [s, b, n]) if n == in_features => (*s, *b, (1, 1)),
        (Layer::Conv2d { in_channels, .. }, [s, b, ci, h, wd]) if ci == in_channels => {
            (*s, *b, (*h, *wd))
        }
        _ => {
            return Err(fail(
                preset,
                format!(
                    "inputs.x has shape {:?}, which does not match the layer {:?}",
                    x.shape, raw.layer
                ),
            ));
        }
    };
    if steps == 0 || batch == 0 {
        return Err(fail(
            preset,
            format!("inputs.x has shape {:?}: no steps or no samples", x.shape),
        ));
    }
    let output_hw = raw
        .layer
        .output_hw(input_hw.0, input_hw.1)
        .map_err(|m| fail(preset, format!("layer {:?}: {m}", raw.layer)))?;
    let vector = |key: &str| -> Result<(), CaseError> {
        match raw.inputs.get(key) {
            Some(a) if a.shape != [c] => Err(fail(
                preset,
                format!("inputs.{key} has shape {:?}, expected [{c}]", a.shape),
            )),
            _ => Ok(()),
        }
    };
    for key in ["bn_running_mean", "bn_running_var", "b", "theta"] {
        vector(key)?;
    }
    if let Some(t) = raw.inputs.get("teacher")
        && t.shape != [steps, batch, c]
    {
        return Err(fail(
            preset,
            format!(
                "inputs.teacher has shape {:?}, expected [{steps}, {batch}, {c}]",
                t.shape
            ),
        ));
    }
    let tolerance = raw.tolerance.rel;
    if tolerance.is_nan() || tolerance <= 0.0 {
        return Err(fail(
            preset,
            format!("tolerance.rel must be positive, got {tolerance}"),
        ));
    }
    if raw.expected.is_empty() {
        return Err(fail(preset, "expected is empty".into()));
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    if stem.as_deref() != Some(raw.name.as_str()) {
        return Err(fail(
            preset,
            format!("name {:?} differs from the file name", raw.name),
        ));
    }
    Ok(Case {
        path: path.to_path_buf(),
        name: raw.name,
        preset: raw.preset,
        rule,
        layer: raw.layer,
        inputs: raw.inputs,
        expected: raw.expected,
        tolerance,
        steps,
        batch,
        input_hw,
        output_hw,
    })
}
