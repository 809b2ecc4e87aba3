//! `hebb conformance --cases DIR`: every hebb-case/1 file under DIR, one row per case and
//! expected tensor. A case that cannot be loaded or run is one row with `error`, and the run
//! goes on with the other cases.

use std::path::Path;

use serde::Serialize;

use std::collections::BTreeMap;

use crate::conformance::{rel_err, spiking_cases};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::im2col;
use crate::reference;
use crate::reference::dense::{Mat, rows_to_nchw};
use crate::rules::case::{Array, Case, CaseError, Layer, find_case_files, load_case, parse_case};
use crate::rules::gpu::{FromForward, GpuRule, RuleInit, UpdatePath};

/// The float64 reference must match the authors' float64 numbers to this (FORMAT.md §6: an
/// independent float64 implementation reaches 3e-15).
pub const REFERENCE_TOL: f64 = 1e-9;

/// One case row. JSON field names are a stable interface.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRow {
    pub case: String,
    pub preset: String,
    /// `reference-f64` (the CPU twin), `gpu-f32` (the fused rule) or `gpu-naive-f32` (its
    /// per-sample twin).
    pub variant: String,
    pub tensor: String,
    pub rel_err: f64,
    pub tol: f64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub(crate) fn error_row(case: &str, preset: &str, variant: &str, error: String) -> CaseRow {
    CaseRow {
        case: case.into(),
        preset: preset.into(),
        variant: variant.into(),
        tensor: "-".into(),
        rel_err: f64::NAN,
        tol: 0.0,
        ok: false,
        error: Some(error),
    }
}

/// Compares produced tensors with the expected ones, one row per expected tensor.
pub fn compare_tensors(
    case: &str,
    preset: &str,
    variant: &str,
    tol: f64,
    expected: &std::collections::BTreeMap<String, Array>,
    got: &std::collections::BTreeMap<String, Array>,
) -> Vec<CaseRow> {
    expected
        .iter()
        .map(|(key, want)| {
            let mut row = CaseRow {
                case: case.into(),
                preset: preset.into(),
                variant: variant.into(),
                tensor: key.clone(),
                rel_err: f64::NAN,
                tol,
                ok: false,
                error: None,
            };
            match got.get(key) {
                None => row.error = Some(format!("{variant} does not produce `{key}`")),
                Some(g) if g.shape != want.shape => {
                    row.error = Some(format!(
                        "`{key}` has shape {:?}, expected {:?}",
                        g.shape, want.shape
                    ))
                }
                Some(g) => {
                    row.rel_err = rel_err(&g.data, &want.data);
                    row.ok = row.rel_err <= tol;
                }
            }
            row
        })
        .collect()
}

/// Runs the float64 reference on every case file under `dir`.
pub fn reference_rows(dir: &Path) -> Vec<CaseRow> {
    case_rows(None, dir)
}

fn f32s(a: &Array) -> Vec<f32> {
    a.data.iter().map(|&v| v as f32).collect()
}

/// How the GPU rule runs a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleVariant {
    /// The fused update path with the fused projection + competition kernel wherever the
    /// layer has a plan, whatever the adapter's default, and the update GEMM's epilogues (asked
    /// to write U, Y and ΔW too, for comparison).
    Fused,
    /// The fused update path with the projection, the competition, the decay, the normaliser
    /// and the optimizer as separate kernels.
    Separate,
    /// The per-sample baseline.
    Naive,
    /// The fused update path with Sanger's update by running reconstruction
    /// (`kernels::sanger_scan`), whatever the policy would choose: Sanger's family only.
    Scan,
}

impl RuleVariant {
    pub const ALL: [RuleVariant; 4] = [
        RuleVariant::Fused,
        RuleVariant::Separate,
        RuleVariant::Naive,
        RuleVariant::Scan,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RuleVariant::Fused => "fused",
            RuleVariant::Separate => "separate",
            RuleVariant::Naive => "naive",
            RuleVariant::Scan => "scan",
        }
    }

    /// Whether the variant is a distinct way to run `preset` (the scan is Sanger's alone).
    pub fn applies_to(self, preset: &crate::rules::preset::Preset) -> bool {
        self != RuleVariant::Scan
            || preset.update_family() == crate::rules::preset::UpdateFamily::Sanger
    }
}

/// Runs a case's steps with the GPU rule (float32) and reads back every expected tensor.
pub fn run_case_gpu(
    ctx: &GpuContext,
    case: &Case,
    variant: RuleVariant,
) -> Result<BTreeMap<String, Array>> {
    let path = match variant {
        RuleVariant::Naive => UpdatePath::Naive,
        _ => UpdatePath::Fused,
    };
    let (c, d, n) = (case.layer.neurons(), case.layer.fan_in(), case.rows());
    let input = |k: &str| case.inputs.get(k).map(f32s);
    let init = RuleInit {
        w: f32s(&case.inputs["w"]),
        bn_running_mean: input("bn_running_mean"),
        bn_running_var: input("bn_running_var"),
        bias: input("b"),
        theta: input("theta"),
    };
    let mut rule = GpuRule::with_path(ctx, case.rule.clone(), c, d, n, &init, path)?;
    rule.set_keep_intermediates(true);
    if path == UpdatePath::Fused {
        rule.set_fused_projection(ctx, variant == RuleVariant::Fused);
        rule.set_fused_update(variant == RuleVariant::Fused);
        let scan = variant == RuleVariant::Scan;
        if rule.set_sanger_scan(ctx, scan)? != scan {
            return Err(crate::error::HebbError::Launch {
                kernel: case.rule.name.clone(),
                message: format!("the running-reconstruction update cannot run {n} rows here"),
            });
        }
    }
    let x_all = &case.inputs["x"];
    let per_step = x_all.data.len() / case.steps;
    let x_gpu = Tensor::from_f32(ctx, "x (all steps)", &[x_all.data.len()], &f32s(x_all))?;
    let patches = Tensor::empty(ctx, "X", &[n, d], DType::F32)?;
    let per_sample = case.output_hw.0 * case.output_hw.1;
    let mut w_steps = Vec::new();
    for s in 0..case.steps {
        let mut rec = Recorder::new(ctx);
        // Linear layers use the step's rows as X; conv layers im2col them into `patches`.
        let linear_x = match case.layer.conv_geometry(case.batch, case.input_hw) {
            None => {
                let slice = &x_all.data[s * per_step..(s + 1) * per_step];
                let data: Vec<f32> = slice.iter().map(|&v| v as f32).collect();
                Some(Tensor::from_f32(ctx, "X", &[n, d], &data)?)
            }
            Some(g) => {
                im2col::im2col(&mut rec, &g, &x_gpu, s * per_step, &patches)?;
                None
            }
        };
        let x_ref = linear_x.as_ref().unwrap_or(&patches);
        let teacher = match case.inputs.get("teacher") {
            Some(t) => {
                let mut rows = vec![0f32; n * c];
                for b in 0..case.batch {
                    for p in 0..per_sample {
                        for i in 0..c {
                            rows[(b * per_sample + p) * c + i] =
                                t.data[(s * case.batch + b) * c + i] as f32;
                        }
                    }
                }
                Some(Tensor::from_f32(ctx, "T", &[n, c], &rows)?)
            }
            None => None,
        };
        rule.step(&mut rec, x_ref, n, teacher.as_ref(), FromForward::default())?;
        rec.submit();
        if case.expected.contains_key("w_steps") {
            w_steps.extend(rule.w.to_f32_vec(ctx)?);
        }
    }
    ctx.check("case steps")?;
    let read = |t: &Tensor, len: usize| -> Result<Vec<f64>> {
        Ok(t.to_f32_vec(ctx)?[..len]
            .iter()
            .map(|&v| v as f64)
            .collect())
    };
    let w_shape = case.inputs["w"].shape.clone();
    let mut got = BTreeMap::new();
    for key in case.expected.keys() {
        let value = match key.as_str() {
            "w" => Some(Array::new(w_shape.clone(), read(&rule.w, c * d)?)),
            "w_steps" => {
                let mut shape = vec![case.steps];
                shape.extend(&w_shape);
                Some(Array::new(
                    shape,
                    w_steps.iter().map(|&v| v as f64).collect(),
                ))
            }
            "delta_w" => Some(Array::new(
                w_shape.clone(),
                read(rule.intermediate("delta_w").unwrap(), c * d)?,
            )),
            "lr_neuron" => Some(Array::new(vec![c], read(&rule.eta, c)?)),
            "theta" => Some(Array::new(vec![c], read(&rule.theta, c)?)),
            "bn_running_mean" => Some(Array::new(vec![c], read(&rule.bn_mean, c)?)),
            "bn_running_var" => Some(Array::new(vec![c], read(&rule.bn_var, c)?)),
            "b" => Some(Array::new(vec![c], read(&rule.bias, c)?)),
            "delta_b" => Some(Array::new(
                vec![c],
                read(rule.intermediate("delta_b").unwrap(), c)?,
            )),
            "out" if matches!(case.layer, Layer::Conv2d { .. }) => {
                let rows = Mat::from_vec(n, c, read(rule.intermediate("out").unwrap(), n * c)?);
                Some(Array::new(
                    vec![case.batch, c, case.output_hw.0, case.output_hw.1],
                    rows_to_nchw(&rows, case.batch, case.output_hw),
                ))
            }
            other => match rule.intermediate(other) {
                Some(t) => Some(Array::new(vec![n, c], read(t, n * c)?)),
                None => None,
            },
        };
        if let Some(v) = value {
            got.insert(key.clone(), v);
        }
    }
    Ok(got)
}

/// The float64 reference (and, with a context, the GPU rule in float32) on every case file
/// under `dir`: one row per case, variant and expected tensor.
pub fn case_rows(ctx: Option<&GpuContext>, dir: &Path) -> Vec<CaseRow> {
    let files = match find_case_files(dir) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            return vec![error_row(
                &dir.display().to_string(),
                "-",
                "reference-f64",
                "no .json case files found".into(),
            )];
        }
        Err(e) => {
            return vec![error_row(
                &dir.display().to_string(),
                "-",
                "reference-f64",
                e.to_string(),
            )];
        }
    };
    let mut rows = Vec::new();
    for path in files {
        // Whole spiking presentations have their own format (spiking_cases.rs).
        let text = crate::data::limits::read_bounded(
            &path,
            crate::data::limits::host_memory_budget(),
            "the case file",
        )
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
        if let Some(text) = &text
            && spiking_cases::format_of(text).as_deref() == Some(spiking_cases::FORMAT)
        {
            rows.extend(spiking_cases::case_rows(ctx, &path, text));
            continue;
        }
        // An unreadable file gets load_case's error, naming what was wrong.
        let loaded = match &text {
            Some(text) => parse_case(text, &path),
            None => load_case(&path),
        };
        match loaded {
            Err(CaseError {
                path,
                preset,
                message,
            }) => rows.push(error_row(
                &path.display().to_string(),
                preset.as_deref().unwrap_or("-"),
                "reference-f64",
                message,
            )),
            Ok(case) => {
                match reference::rules::run_case(&case) {
                    Ok(got) => rows.extend(compare_tensors(
                        &case.name,
                        &case.preset,
                        "reference-f64",
                        REFERENCE_TOL,
                        &case.expected,
                        &got,
                    )),
                    Err(e) => rows.push(error_row(&case.name, &case.preset, "reference-f64", e)),
                }
                if let Some(ctx) = ctx {
                    for v in RuleVariant::ALL {
                        if !v.applies_to(&case.rule.preset) {
                            continue;
                        }
                        let variant = match v {
                            RuleVariant::Fused => "gpu-f32",
                            RuleVariant::Separate => "gpu-separate-f32",
                            RuleVariant::Naive => "gpu-naive-f32",
                            RuleVariant::Scan => "gpu-scan-f32",
                        };
                        match run_case_gpu(ctx, &case, v) {
                            Ok(got) => rows.extend(compare_tensors(
                                &case.name,
                                &case.preset,
                                variant,
                                case.tolerance,
                                &case.expected,
                                &got,
                            )),
                            Err(e) => rows.push(error_row(
                                &case.name,
                                &case.preset,
                                variant,
                                e.to_string(),
                            )),
                        }
                    }
                }
            }
        }
    }
    rows
}

pub fn print_case_table(rows: &[CaseRow]) {
    println!(
        "{:<44} {:<24} {:<14} {:<22} {:>10} {:>9}  ok",
        "case", "preset", "variant", "tensor", "rel_err", "tol"
    );
    for r in rows {
        println!(
            "{:<44} {:<24} {:<14} {:<22} {:>10.2e} {:>9.1e}  {}{}",
            r.case,
            r.preset,
            r.variant,
            r.tensor,
            r.rel_err,
            r.tol,
            if r.ok { "ok" } else { "FAIL" },
            r.error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
    }
}
