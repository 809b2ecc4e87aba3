//! `hebb conformance --cases DIR`: every hebb-case/1 file under DIR, one row per case and
//! expected tensor. A case that cannot be loaded or run is one row with `error`, and the run
//! goes on with the other cases.

use std::path::Path;

use serde::Serialize;

use crate::reference;
use crate::rules::case::{Array, CaseError, find_case_files, load_case};

/// The float64 reference must match the authors' float64 numbers to this (FORMAT.md §6: an
/// independent float64 implementation reaches 3e-15).
pub const REFERENCE_TOL: f64 = 1e-9;

/// One case row. JSON field names are a stable interface.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRow {
    pub case: String,
    pub preset: String,
    /// `reference-f64` (the CPU twin); GPU implementations add their own rows.
    pub variant: String,
    pub tensor: String,
    pub rel_err: f64,
    pub tol: f64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// FORMAT.md §6: ‖got − exp‖₂ / ‖exp‖₂, or ‖got‖₂ when ‖exp‖₂ = 0.
pub fn case_metric(got: &[f64], want: &[f64]) -> f64 {
    let diff: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    if norm == 0.0 {
        got.iter().map(|g| g * g).sum::<f64>().sqrt()
    } else {
        (diff / norm).sqrt()
    }
}

fn error_row(case: &str, preset: &str, variant: &str, error: String) -> CaseRow {
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
                    row.rel_err = case_metric(&g.data, &want.data);
                    row.ok = row.rel_err <= tol;
                }
            }
            row
        })
        .collect()
}

/// Runs the float64 reference on every case file under `dir`.
pub fn reference_rows(dir: &Path) -> Vec<CaseRow> {
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
        match load_case(&path) {
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
            Ok(case) => match reference::rules::run_case(&case) {
                Ok(got) => rows.extend(compare_tensors(
                    &case.name,
                    &case.preset,
                    "reference-f64",
                    REFERENCE_TOL,
                    &case.expected,
                    &got,
                )),
                Err(e) => rows.push(error_row(&case.name, &case.preset, "reference-f64", e)),
            },
        }
    }
    rows
}

pub fn print_case_table(rows: &[CaseRow]) {
    println!(
        "{:<44} {:<24} {:<14} {:<16} {:>10} {:>9}  ok",
        "case", "preset", "variant", "tensor", "rel_err", "tol"
    );
    for r in rows {
        println!(
            "{:<44} {:<24} {:<14} {:<16} {:>10.2e} {:>9.1e}  {}{}",
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
