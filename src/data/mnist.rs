//! MNIST and Fashion-MNIST in the official IDX layout: `{train,t10k}-{images-idx3,labels-idx1}-ubyte`,
//! each optionally `.gz`. `datasets/mnist/` in this repository holds the four official files.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::DataError;
use crate::data::idx::read_idx_u8;

/// One split: `count` images of `rows x cols` bytes and their labels.
#[derive(Clone, Debug)]
pub struct MnistSplit {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
}

impl MnistSplit {
    /// Image `i` as floats in [0, 1].
    pub fn image_f32(&self, i: usize) -> impl Iterator<Item = f32> + '_ {
        let size = self.rows * self.cols;
        self.images[i * size..(i + 1) * size]
            .iter()
            .map(|&p| p as f32 / 255.0)
    }

    /// How many images each label has (labels 0..=max).
    pub fn label_counts(&self) -> Vec<usize> {
        let classes = self
            .labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn stem(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// The official MNIST files' SHA-256 (shared/datasets/README.md), gzipped and raw.
const KNOWN_SHA256: &[(&str, &str)] = &[
    (
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];

/// The file of a split and kind in `dir`: the `.gz` if present, else the raw file.
pub fn split_file(dir: &Path, split: Split, what: &str) -> Result<PathBuf, DataError> {
    let kind = if what == "images" {
        "images-idx3-ubyte"
    } else {
        "labels-idx1-ubyte"
    };
    let name = format!("{}-{kind}", split.stem());
    for candidate in [format!("{name}.gz"), name.clone()] {
        let p = dir.join(&candidate);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::bad(
        &dir.join(format!("{name}[.gz]")),
        "missing: expected the official MNIST file name, gzipped or not".into(),
    ))
}

/// Loads one split from `dir`, checking that images and labels agree.
pub fn load_split(dir: &Path, split: Split) -> Result<MnistSplit, DataError> {
    let images = read_idx_u8(&split_file(dir, split, "images")?, 3)?;
    let labels = read_idx_u8(&split_file(dir, split, "labels")?, 1)?;
    let (count, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if labels.dims[0] != count {
        return Err(DataError::bad(
            &labels.path,
            format!(
                "{} labels for {count} images in {}",
                labels.dims[0],
                images.path.display()
            ),
        ));
    }
    if let Some(bad) = labels.data.iter().position(|&l| l > 9) {
        return Err(DataError::bad(
            &labels.path,
            format!(
                "label {} of item {bad} is not a digit 0-9",
                labels.data[bad]
            ),
        ));
    }
    if count == 0 || rows == 0 || cols == 0 {
        return Err(DataError::bad(
            &images.path,
            format!("empty split: dimensions {:?}", images.dims),
        ));
    }
    Ok(MnistSplit {
        images: images.data,
        labels: labels.data,
        count,
        rows,
        cols,
    })
}

/// SHA-256 of a file as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The official checksum for a file name, when it is one of the four official gz files.
pub fn known_sha256(file_name: &str) -> Option<&'static str> {
    KNOWN_SHA256
        .iter()
        .find(|(n, _)| *n == file_name)
        .map(|(_, h)| *h)
}
