//! Datasets to batches: readers for the on-disk formats, each validating what it reads and
//! naming the file in every error.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod limits;
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
    /// (file, "ok (official SHA-256)" / "MISMATCH with the official SHA-256" / "no known checksum")
    pub checksums: Vec<(String, String)>,
    /// Class names in label order, where the format names them (image folders: the folder
    /// names); empty otherwise.
    pub class_names: Vec<String>,
    /// Items that could not be decoded (image folders decode every image). They do not fail
    /// the check as errors do, but `hebb data check` exits non-zero when there are any.
    pub unreadable: usize,
    /// The first unreadable item in split and file order: the file and the decoder's error.
    pub first_unreadable: Option<String>,
}

impl CheckReport {
    fn new(format: &str) -> Self {
        Self {
            format: format.into(),
            splits: Vec::new(),
            checksums: Vec::new(),
            class_names: Vec::new(),
            unreadable: 0,
            first_unreadable: None,
        }
    }
}

/// Validates a dataset folder: counts, classes, checksums where known. Recognised, in this
/// order: CIFAR-10 / CIFAR-100 binary batches, STL-10 binary files (in `dir` or
/// `dir/stl10_binary`), MNIST / Fashion-MNIST IDX files (gzipped or not; Fashion-MNIST has the
/// same file names and no known checksum here), and image folders (see [`folder`]), whose
/// every image is decoded on all cores. A structural problem (missing file or split, wrong
/// size, empty class folder) is an error naming the file; undecodable images are counted in
/// the report instead.
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
            let mut report = CheckReport::new(format);
            for (name, train) in [("train", true), ("test", false)] {
                let s = cifar::load_split(dir, variant, train)?;
                report
                    .splits
                    .push((name.into(), s.count, s.label_counts(variant.classes())));
            }
            return Ok(report);
        }
    }
    if stl10::is_stl10(dir) {
        return check_stl10(dir);
    }
    let idx_files = ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"];
    let has_idx = idx_files
        .iter()
        .any(|f| dir.join(f).is_file() || dir.join(format!("{f}.gz")).is_file());
    if !has_idx && folder::is_image_folder(dir) {
        return check_folder(dir);
    }
    if !has_idx {
        return Err(DataError::bad(
            dir,
            "not a recognised dataset folder: expected CIFAR-10/100 .bin batches, STL-10 *_X.bin files, MNIST / Fashion-MNIST IDX files, or image class folders".into(),
        ));
    }
    let mut report = CheckReport::new("mnist-idx");
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// STL-10: train and test are required, unlabeled is reported when present.
fn check_stl10(dir: &Path) -> Result<CheckReport, DataError> {
    use stl10::{Stl10Source, Stl10Split};
    let mut report = CheckReport::new("stl10-binary");
    for split in [Stl10Split::Train, Stl10Split::Test, Stl10Split::Unlabeled] {
        if split == Stl10Split::Unlabeled && stl10::split_files(dir, split).is_err() {
            continue;
        }
        let s = Stl10Source::open(dir, split, source::Augment::default())?;
        report.splits.push((
            split.name().into(),
            source::Source::len(&s),
            s.label_counts(),
        ));
        let (x, y) = stl10::split_files(dir, split)?;
        for p in std::iter::once(x).chain(y) {
            report
                .checksums
                .push((file_name(&p), "no known checksum".into()));
        }
    }
    Ok(report)
}

/// Image folder: lists every split, then decodes every image on all cores, counting the
/// unreadable ones and keeping the first in (split, file) order.
fn check_folder(dir: &Path) -> Result<CheckReport, DataError> {
    use folder::{FolderAugment, FolderLayout, FolderSource};
    use source::Source;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut sources = Vec::new();
    for split in folder::check_splits(dir) {
        sources.push((
            split,
            FolderSource::open(dir, split, 1, 1, FolderAugment::IMAGENET)?,
        ));
    }
    let format = match sources.first().map(|(_, s)| s.layout()) {
        Some(FolderLayout::Flat) => {
            "image-folder (class folders, no split level: val = every 10th image)"
        }
        _ => "image-folder",
    };
    let mut report = CheckReport::new(format);
    for (split, s) in &sources {
        report
            .splits
            .push(((*split).into(), s.len(), s.label_counts()));
    }
    report.class_names = sources
        .first()
        .map(|(_, s)| s.class_names().to_vec())
        .unwrap_or_default();

    let offsets: Vec<usize> = sources
        .iter()
        .scan(0, |acc, (_, s)| {
            let start = *acc;
            *acc += s.len();
            Some(start)
        })
        .collect();
    let total: usize = sources.iter().map(|(_, s)| s.len()).sum();
    let next = AtomicUsize::new(0);
    let failures = parking_lot::Mutex::new((0usize, None::<(usize, String)>));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    if g >= total {
                        return;
                    }
                    let k = offsets.partition_point(|&o| o <= g) - 1;
                    if let Err(e) = sources[k].1.decode(g - offsets[k]) {
                        let mut f = failures.lock();
                        f.0 += 1;
                        if f.1.as_ref().is_none_or(|(first, _)| g < *first) {
                            f.1 = Some((g, e.to_string()));
                        }
                    }
                }
            });
        }
    });
    let (count, first) = failures.into_inner();
    report.unreadable = count;
    report.first_unreadable = first.map(|(_, e)| e);
    Ok(report)
}
