//! STL-10 in the official binary layout (`stl10_binary/` of `stl10_binary.tar.gz`):
//! - `train_X.bin` (5000 images), `test_X.bin` (8000), `unlabeled_X.bin` (100000): images of
//!   3 × 96 × 96 bytes, one after another, with no header. Each image is three planes (R, G, B)
//!   of 96 · 96 bytes, and each plane is stored **column-major**: byte `x · 96 + y` of a plane
//!   is the pixel in row `y`, column `x`.
//! - `train_y.bin`, `test_y.bin`: one label byte per image, 1..=10 (class_names.txt order:
//!   airplane, bird, car, cat, deer, dog, horse, monkey, ship, truck); read here as 0..=9.
//!
//! Images are read on demand (seek and read one 27648-byte record), so no split is held in
//! memory: the unlabeled split alone is 2.7 GB. Items are 3 × 96 × 96 floats in [0, 1], planar
//! and row-major like every other source.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rand_chacha::ChaCha8Rng;

use crate::data::source::{Augment, ItemShape, Source};
use crate::data::{DataError, limits};

pub const SIDE: usize = 96;
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
pub const CLASSES: usize = 10;
/// The label [`Stl10Source::label`] gives every item of the unlabeled split.
pub const UNLABELED: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stl10Split {
    Train,
    Test,
    /// The 100000 unlabeled images (labels are [`UNLABELED`]).
    Unlabeled,
}

impl Stl10Split {
    pub fn name(self) -> &'static str {
        match self {
            Stl10Split::Train => "train",
            Stl10Split::Test => "test",
            Stl10Split::Unlabeled => "unlabeled",
        }
    }
}

/// The folder holding the `.bin` files: `dir` itself, or `dir/stl10_binary` (the archive's
/// top folder) when `dir` has none.
pub fn data_dir(dir: &Path) -> PathBuf {
    let has_bins = |d: &Path| {
        ["train_X.bin", "test_X.bin", "unlabeled_X.bin"]
            .iter()
            .any(|f| d.join(f).is_file())
    };
    let nested = dir.join("stl10_binary");
    if !has_bins(dir) && has_bins(&nested) {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Whether `dir` (or `dir/stl10_binary`) holds STL-10 binary files.
pub fn is_stl10(dir: &Path) -> bool {
    data_dir(dir).join("train_X.bin").is_file()
        || data_dir(dir).join("test_X.bin").is_file()
        || data_dir(dir).join("unlabeled_X.bin").is_file()
}

/// The image file and (except for unlabeled) the label file of a split; an error names the
/// first one missing.
pub fn split_files(dir: &Path, split: Stl10Split) -> Result<(PathBuf, Option<PathBuf>), DataError> {
    let dir = data_dir(dir);
    let x = dir.join(format!("{}_X.bin", split.name()));
    let y = (split != Stl10Split::Unlabeled).then(|| dir.join(format!("{}_y.bin", split.name())));
    for p in std::iter::once(&x).chain(y.as_ref()) {
        if !p.is_file() {
            return Err(DataError::bad(
                p,
                "missing: expected the official STL-10 binary file".into(),
            ));
        }
    }
    Ok((x, y))
}

/// One STL-10 split read from its file on demand. Implements [`Source`].
pub struct Stl10Source {
    images: PathBuf,
    file: Mutex<File>,
    /// Labels 0..=9 (empty for the unlabeled split).
    labels: Vec<u8>,
    count: usize,
    split: Stl10Split,
    pub augment: Augment,
}

impl Stl10Source {
    /// Opens a split in `dir` (or `dir/stl10_binary`), checking that the image file is a whole
    /// number of 27648-byte images and that the labels match them in number and range.
    /// `augment` is applied when the loader draws augmentation.
    pub fn open(dir: &Path, split: Stl10Split, augment: Augment) -> Result<Self, DataError> {
        let (images, labels_path) = split_files(dir, split)?;
        let file = File::open(&images).map_err(|e| DataError::io(&images, e))?;
        let size = file
            .metadata()
            .map_err(|e| DataError::io(&images, e))?
            .len();
        if size == 0 || size % IMAGE_BYTES as u64 != 0 {
            return Err(DataError::bad(
                &images,
                format!(
                    "{size} bytes is not a whole number of {IMAGE_BYTES}-byte images (3 × 96 × 96); truncated?"
                ),
            ));
        }
        let count = (size / IMAGE_BYTES as u64) as usize;
        let mut labels = Vec::new();
        if let Some(path) = labels_path {
            // A label file longer than the images is refused before it is read.
            let len = limits::file_len(&path, u64::MAX, "the label file")?;
            if len != count as u64 {
                return Err(DataError::bad(
                    &path,
                    format!("{len} labels for {count} images in {}", images.display()),
                ));
            }
            let raw = limits::read_bounded(&path, count as u64, "the label file")?;
            if raw.len() != count {
                return Err(DataError::bad(
                    &path,
                    format!(
                        "{} labels for {count} images in {}",
                        raw.len(),
                        images.display()
                    ),
                ));
            }
            if let Some(bad) = raw.iter().position(|&l| !(1..=10).contains(&l)) {
                return Err(DataError::bad(
                    &path,
                    format!("label {} of item {bad} is not in 1..=10", raw[bad]),
                ));
            }
            labels = raw.into_iter().map(|l| l - 1).collect();
        }
        Ok(Self {
            images,
            file: Mutex::new(file),
            labels,
            count,
            split,
            augment,
        })
    }

    pub fn split(&self) -> Stl10Split {
        self.split
    }

    /// How many images each class has (empty for the unlabeled split).
    pub fn label_counts(&self) -> Vec<usize> {
        if self.labels.is_empty() {
            return Vec::new();
        }
        let mut counts = vec![0; CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The raw bytes of image `index` as stored (planes of column-major 96 × 96).
    pub fn read_raw(&self, index: usize, buf: &mut [u8]) -> Result<(), DataError> {
        assert_eq!(buf.len(), IMAGE_BYTES);
        let mut file = self.file.lock();
        file.seek(SeekFrom::Start((index * IMAGE_BYTES) as u64))
            .and_then(|_| file.read_exact(buf))
            .map_err(|e| DataError::bad(&self.images, format!("reading image {index}: {e}")))
    }
}

impl Source for Stl10Source {
    fn describe(&self) -> String {
        format!(
            "STL-10 {} ({}: {} images)",
            self.images.display(),
            self.split.name(),
            self.count
        )
    }
    fn len(&self) -> usize {
        self.count
    }
    fn shape(&self) -> ItemShape {
        ItemShape {
            channels: 3,
            height: SIDE,
            width: SIDE,
        }
    }
    fn classes(&self) -> usize {
        CLASSES
    }
    fn label(&self, index: usize) -> u32 {
        self.labels.get(index).map_or(UNLABELED, |&l| l as u32)
    }
    fn load(
        &self,
        index: usize,
        rng: Option<&mut ChaCha8Rng>,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let mut raw = vec![0u8; IMAGE_BYTES];
        self.read_raw(index, &mut raw)?;
        let plane = SIDE * SIDE;
        for c in 0..3 {
            let (src, dst) = (
                &raw[c * plane..(c + 1) * plane],
                &mut out[c * plane..(c + 1) * plane],
            );
            for y in 0..SIDE {
                for x in 0..SIDE {
                    dst[y * SIDE + x] = src[x * SIDE + y] as f32 / 255.0;
                }
            }
        }
        if let Some(rng) = rng {
            self.augment.apply(self.shape(), rng, out);
        }
        Ok(())
    }
}
