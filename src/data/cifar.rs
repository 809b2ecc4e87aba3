//! CIFAR-10 and CIFAR-100 in the official binary layout.
//! - CIFAR-10: `data_batch_1..5.bin` (train) and `test_batch.bin`, records of 1 label byte and
//!   3·32·32 pixel bytes (R, G, B planes, each 32x32 row-major); `batches.meta.txt` names the
//!   classes.
//! - CIFAR-100: `train.bin` and `test.bin`, records of a coarse and a fine label byte, then the
//!   same pixels; the fine label (0..99) is used.
//!
//! Files are read whole (a CIFAR-10 batch is 30 MB); the streaming loaders of the training
//! code read one batch file at a time.

use std::path::{Path, PathBuf};

use crate::data::{DataError, limits};

pub const IMAGE_BYTES: usize = 3 * 32 * 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    /// Label bytes before the pixels of each record.
    fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }
    pub fn classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }
}

/// Images (N x 3 x 32 x 32 bytes, planar) and labels of one or more batch files.
#[derive(Clone, Debug, Default)]
pub struct CifarSplit {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub count: usize,
}

impl CifarSplit {
    pub fn label_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Reads one batch file, checking that it is a whole number of records with valid labels.
pub fn read_batch(path: &Path, variant: Variant, out: &mut CifarSplit) -> Result<(), DataError> {
    let bytes = limits::read_bounded(
        path,
        limits::ARRAY_MAX_BYTES.min(limits::host_memory_budget()),
        "a CIFAR batch file",
    )?;
    parse_batch(&bytes, path, variant, out)
}

/// Appends the records of one batch file's `bytes` to `out`; `path` names it in errors.
pub fn parse_batch(
    bytes: &[u8],
    path: &Path,
    variant: Variant,
    out: &mut CifarSplit,
) -> Result<(), DataError> {
    let record = variant.record_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::bad(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte records ({} label byte{} + {IMAGE_BYTES} pixels)",
                bytes.len(),
                variant.label_bytes(),
                if variant.label_bytes() == 1 { "" } else { "s" }
            ),
        ));
    }
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[variant.label_bytes() - 1];
        if label as usize >= variant.classes() {
            return Err(DataError::bad(
                path,
                format!(
                    "record {i} has label {label}, expected 0..{}",
                    variant.classes() - 1
                ),
            ));
        }
        out.labels.push(label);
        out.images.extend_from_slice(&rec[variant.label_bytes()..]);
        out.count += 1;
    }
    Ok(())
}

/// The batch files of a split, in order; an error names the first one missing.
pub fn split_files(dir: &Path, variant: Variant, train: bool) -> Result<Vec<PathBuf>, DataError> {
    let names: Vec<String> = match (variant, train) {
        (Variant::Cifar10, true) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        (Variant::Cifar10, false) => vec!["test_batch.bin".into()],
        (Variant::Cifar100, true) => vec!["train.bin".into()],
        (Variant::Cifar100, false) => vec!["test.bin".into()],
    };
    names
        .into_iter()
        .map(|n| {
            let p = dir.join(&n);
            if p.is_file() {
                Ok(p)
            } else {
                Err(DataError::bad(
                    &p,
                    "missing: expected the official CIFAR binary batch file".into(),
                ))
            }
        })
        .collect()
}

/// Loads a whole split (the train split of CIFAR-10 is 150 MB).
pub fn load_split(dir: &Path, variant: Variant, train: bool) -> Result<CifarSplit, DataError> {
    let mut split = CifarSplit::default();
    for path in split_files(dir, variant, train)? {
        read_batch(&path, variant, &mut split)?;
    }
    Ok(split)
}
