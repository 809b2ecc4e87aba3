//! Datasets to batches: readers for the on-disk formats, each validating what it reads and
//! naming the file in every error.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod mnist;
pub mod source;
pub mod stl10;

use std::path::{Path, PathBuf};

/// A dataset file that could not be used: which file, and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DataError {
    pub path: PathBuf,
    pub message: String,
}

impl DataError {
    pub fn bad(path: &Path, message: String) -> Self {
        Self {
            path: path.to_path_buf(),
            message,
        }
    }
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Self::bad(path, e.to_string())
    }
}

/// What `hebb data check` reports for one dataset folder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckReport {
    pub format: String,
    /// (split, items, classes with their counts)
    pub splits: Vec<(String, usize, Vec<usize>)>,
    /// (file, "ok" / "mismatch" / "unknown file")
    pub checksums: Vec<(String, String)>,
}

/// Validates a dataset folder (MNIST IDX files, or CIFAR-10 / CIFAR-100 binary batches):
/// counts, classes, checksums where known. The first problem is an error naming the file.
pub fn check_dir(dir: &Path) -> Result<CheckReport, DataError> {
    if !dir.is_dir() {
        return Err(DataError::bad(dir, "not a folder".into()));
    }
    let cifar = [
        ("cifar-10-bin", cifar::Variant::Cifar10, "data_batch_1.bin"),
        ("cifar-100-bin", cifar::Variant::Cifar100, "train.bin"),
    ];
    for (format, variant, marker) in cifar {
        if dir.join(marker).is_file() {
            let mut report = CheckReport {
                format: format.into(),
                splits: Vec::new(),
                checksums: Vec::new(),
            };
            for (name, train) in [("train", true), ("test", false)] {
                let s = cifar::load_split(dir, variant, train)?;
                report
                    .splits
                    .push((name.into(), s.count, s.label_counts(variant.classes())));
            }
            return Ok(report);
        }
    }
    let mut report = CheckReport {
        format: "mnist-idx".into(),
        splits: Vec::new(),
        checksums: Vec::new(),
    };
    for split in [mnist::Split::Train, mnist::Split::Test] {
        let s = mnist::load_split(dir, split)?;
        let name = if split == mnist::Split::Train {
            "train"
        } else {
            "test"
        };
        report.splits.push((name.into(), s.count, s.label_counts()));
        for what in ["images", "labels"] {
            let path = mnist::split_file(dir, split, what)?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let verdict = match mnist::known_sha256(&file) {
                Some(want) if mnist::sha256_file(&path)? == want => "ok (official SHA-256)",
                Some(_) => "MISMATCH with the official SHA-256",
                None => "no known checksum",
            };
            report.checksums.push((file, verdict.into()));
        }
    }
    Ok(report)
}
