//! Image folders: ImageNet, Tiny ImageNet and any `<class>/<image>` tree of JPEG and PNG files,
//! decoded on demand. Only the list of files (relative paths and labels) is held in memory,
//! never pixels, so an ImageNet split costs tens of MB of host memory however it is read.
//!
//! Layouts, tried in this order:
//! - **Split folders**: `root/<split>/<class>/**/*.{jpg,jpeg,png}` (ImageNet's `train/` and
//!   `val/` after the usual val re-foldering; Tiny ImageNet's `train/<wnid>/images/*.JPEG`, since
//!   class folders are searched recursively). Used when `root` has a `train`, `val` or `test`
//!   folder; a requested split that is not there is an error naming `root/<split>`.
//! - **Tiny ImageNet val**: `root/val/images/*.JPEG` with `root/val/val_annotations.txt`
//!   (tab-separated `file  wnid  x0 y0 x1 y1`) giving the labels.
//! - **Flat**: `root/<class>/**/*` with no split level (the ImageNet sample in
//!   `shared/datasets/imagenet-sample`). Splits are a deterministic hold-out over the sorted
//!   list of all images (classes in order, files sorted within each class): the image at
//!   position `p` is in `"val"` when `p % 10 == 0` and in `"train"` otherwise; `"all"` is every
//!   image. (A per-class rule would leave classes of one image, as in the sample, with nothing
//!   to train on.)
//!
//! Classes are the sorted class-folder names, numbered from 0. In the split layout the class
//! list of `train/` is the reference for every split, so `val/` labels agree with `train/`; a
//! `val/` class missing from `train/` is an error. Files are sorted by path within a class.
//! Other files (`.txt` boxes, `.tsv`, hidden files) are ignored. An empty class folder is an
//! error naming it.
//!
//! Items are 3 × `image_size` × `image_size` floats in [0, 1], planar RGB. Decoding uses the
//! `image` crate: greyscale becomes three equal channels, 16-bit PNG is scaled to 8 bits, the
//! EXIF orientation is applied, colour profiles are ignored (as PIL does by default).
//! Transforms (torchvision semantics, bilinear filter with antialiasing as PIL's):
//! - eval (no rng): `Resize(resize)` (shorter side to `resize`, the other side scaled and
//!   truncated) then `CenterCrop(image_size)` (zero padding where the image is smaller);
//! - train (rng given), [`FolderAugment::RandomResizedCrop`]: `RandomResizedCrop(image_size,
//!   scale, ratio)` then `RandomHorizontalFlip(0.5)` (SoftHebb's ImageNet protocol), or
//!   [`FolderAugment::Fixed`]: the eval transform then an [`Augment`] (pad-crop, flip).

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage, metadata::Orientation};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::source::{Augment, ItemShape, Source};
use crate::data::{DataError, limits};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// Deepest folder level searched below a class folder (guards against symlink loops).
const MAX_DEPTH: usize = 8;

/// Training-time transform of an image folder (used when the loader passes an rng).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum FolderAugment {
    /// torchvision `RandomResizedCrop(image_size, scale, ratio)`: a crop of a random fraction
    /// `scale` of the area with aspect ratio (width / height) log-uniform in `ratio`, resized
    /// to `image_size`², then a horizontal flip with probability 0.5 when `flip`.
    RandomResizedCrop {
        scale: (f64, f64),
        ratio: (f64, f64),
        flip: bool,
    },
    /// The eval transform (Resize + CenterCrop), then this pad-crop / flip augmentation.
    Fixed(Augment),
}

impl FolderAugment {
    /// The ImageNet protocol: scale 0.08–1, ratio 3/4–4/3, random horizontal flip.
    pub const IMAGENET: FolderAugment = FolderAugment::RandomResizedCrop {
        scale: (0.08, 1.0),
        ratio: (3.0 / 4.0, 4.0 / 3.0),
        flip: true,
    };
}

impl Default for FolderAugment {
    fn default() -> Self {
        Self::IMAGENET
    }
}

/// How the images of a [`FolderSource`] were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderLayout {
    /// `root/<split>/<class>/...`
    Split,
    /// `root/val/images/*` labelled by `root/val/val_annotations.txt` (Tiny ImageNet).
    Annotated,
    /// `root/<class>/...` with the hold-out split described in the module documentation.
    Flat,
}

/// One split of an image folder: the file list and the transform. Implements [`Source`].
pub struct FolderSource {
    /// The folder the item paths are relative to (`root/<split>` or `root`).
    base: PathBuf,
    split: String,
    layout: FolderLayout,
    class_names: Vec<String>,
    /// Relative paths of all items, concatenated; item i is `names[ends[i-1]..ends[i]]`.
    names: String,
    ends: Vec<u32>,
    labels: Vec<u32>,
    image_size: usize,
    resize: usize,
    augment: FolderAugment,
}

/// The listing of one split: relative paths (from `base`) and labels.
struct Listing {
    base: PathBuf,
    layout: FolderLayout,
    class_names: Vec<String>,
    files: Vec<(String, u32)>,
}

impl FolderSource {
    /// Lists `split` ("train", "val", "test", or for the flat layout "train" / "val" / "all")
    /// of the image folder `root`. Items are 3 × `image_size` × `image_size`; the eval
    /// transform scales the shorter side to `resize` (≥ `image_size` as a rule, e.g. 256 for
    /// 224) before the centre crop. `augment` is the transform used when the loader draws
    /// augmentation (an rng is passed to [`Source::load`]).
    pub fn open(
        root: &Path,
        split: &str,
        image_size: usize,
        resize: usize,
        augment: FolderAugment,
    ) -> Result<Self, DataError> {
        if image_size == 0 || resize == 0 {
            return Err(DataError::bad(
                root,
                format!("image size {image_size} and resize {resize} must be at least 1"),
            ));
        }
        if let FolderAugment::RandomResizedCrop { scale, ratio, .. } = augment {
            let ok = |(a, b): (f64, f64)| a.is_finite() && b.is_finite() && 0.0 < a && a <= b;
            if !ok(scale) || !ok(ratio) || scale.1 > 1.0 {
                return Err(DataError::bad(
                    root,
                    format!(
                        "RandomResizedCrop needs 0 < scale min <= max <= 1 and 0 < ratio min <= max, got scale {scale:?}, ratio {ratio:?}"
                    ),
                ));
            }
        }
        let listing = list_split(root, split)?;
        let mut names = String::new();
        let mut ends = Vec::with_capacity(listing.files.len());
        let mut labels = Vec::with_capacity(listing.files.len());
        for (name, label) in &listing.files {
            names.push_str(name);
            ends.push(u32::try_from(names.len()).map_err(|_| {
                DataError::bad(
                    &listing.base,
                    "more than 4 GiB of file names in one split".into(),
                )
            })?);
            labels.push(*label);
        }
        Ok(Self {
            base: listing.base,
            split: split.to_string(),
            layout: listing.layout,
            class_names: listing.class_names,
            names,
            ends,
            labels,
            image_size,
            resize,
            augment,
        })
    }

    /// Class names (folder names or wnids) in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn layout(&self) -> FolderLayout {
        self.layout
    }

    /// The file of item `index`.
    pub fn path(&self, index: usize) -> PathBuf {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        self.base
            .join(&self.names[start..self.ends[index] as usize])
    }

    /// How many items each class has.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Decodes item `index` at its full size, without any transform (what `hebb data check`
    /// does to every image).
    pub fn decode(&self, index: usize) -> Result<RgbImage, DataError> {
        decode_rgb(&self.path(index))
    }
}

impl Source for FolderSource {
    fn describe(&self) -> String {
        format!(
            "image folder {} ({}: {} images, {} classes)",
            self.base.display(),
            self.split,
            self.labels.len(),
            self.class_names.len()
        )
    }
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn shape(&self) -> ItemShape {
        ItemShape {
            channels: 3,
            height: self.image_size,
            width: self.image_size,
        }
    }
    fn classes(&self) -> usize {
        self.class_names.len()
    }
    fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }
    fn load(
        &self,
        index: usize,
        rng: Option<&mut ChaCha8Rng>,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let shape = self.shape();
        assert_eq!(out.len(), shape.len(), "output slice of the wrong size");
        let img = decode_rgb(&self.path(index))?;
        let size = self.image_size;
        match (rng, self.augment) {
            (None, _) => eval_transform(&img, self.resize, size, out),
            (Some(rng), FolderAugment::Fixed(aug)) => {
                eval_transform(&img, self.resize, size, out);
                aug.apply(shape, rng, out);
            }
            (Some(rng), FolderAugment::RandomResizedCrop { scale, ratio, flip }) => {
                let (x, y, w, h) = random_resized_crop_params(img.dimensions(), scale, ratio, rng);
                let crop = imageops::crop_imm(&img, x, y, w, h).to_image();
                let resized = resize_exact(&crop, size as u32, size as u32);
                let mirror = flip && rng.random_bool(0.5);
                write_planar(&resized, 0, 0, size, mirror, out);
            }
        }
        Ok(())
    }
}

/// Reads and decodes one JPEG or PNG to 8-bit RGB with its EXIF orientation applied. The
/// format is guessed from the content (a PNG named `.JPEG` still reads). A JPEG must be whole:
/// its segments are walked up to the end-of-image marker, since the decoder itself fills a
/// truncated image with grey. Every failure, a decoder panic included, is an error naming the
/// file.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = limits::read_bounded(path, limits::IMAGE_MAX_FILE_BYTES, "the image file")?;
    decode_rgb_bytes(&bytes, path)
}

/// [`decode_rgb`] of an image file's `bytes`; `path` names it in errors and its extension
/// hints the format.
pub fn decode_rgb_bytes(bytes: &[u8], path: &Path) -> Result<RgbImage, DataError> {
    if let Err(e) = check_jpeg_structure(bytes) {
        return Err(DataError::bad(path, format!("corrupt JPEG: {e}")));
    }
    let decode = || -> Result<RgbImage, String> {
        let mut reader = ImageReader::new(std::io::Cursor::new(bytes));
        if let Ok(format) = image::ImageFormat::from_path(path) {
            reader.set_format(format);
        }
        let reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
        let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
        // The header's size is checked before a pixel is allocated: a hostile header or a
        // decompression bomb is an unreadable image, skipped and counted like any other.
        let (width, height) = decoder.dimensions();
        if width > limits::IMAGE_MAX_SIDE
            || height > limits::IMAGE_MAX_SIDE
            || width as u64 * height as u64 > limits::IMAGE_MAX_PIXELS
        {
            return Err(format!(
                "the header declares {width}x{height} pixels; at most {} per side and {} \
                 pixels in all are decoded",
                limits::IMAGE_MAX_SIDE,
                limits::IMAGE_MAX_PIXELS
            ));
        }
        let mut bounds = image::Limits::default();
        bounds.max_image_width = Some(limits::IMAGE_MAX_SIDE);
        bounds.max_image_height = Some(limits::IMAGE_MAX_SIDE);
        bounds.max_alloc = Some(limits::IMAGE_MAX_ALLOC);
        decoder.set_limits(bounds).map_err(|e| e.to_string())?;
        // A malformed EXIF block is not worth losing the image for.
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
        img.apply_orientation(orientation);
        if img.width() == 0 || img.height() == 0 {
            return Err(format!("empty image {}x{}", img.width(), img.height()));
        }
        Ok(img.into_rgb8())
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(img)) => Ok(img),
        Ok(Err(e)) => Err(DataError::bad(path, format!("cannot decode image: {e}"))),
        Err(_) => Err(DataError::bad(
            path,
            "cannot decode image: the decoder panicked".into(),
        )),
    }
}

/// For data that starts like a JPEG (FF D8), walks the marker segments and the entropy-coded
/// scans up to the end-of-image marker (FF D9); data after it is allowed. An error says where
/// the file ends early. Other data passes unchecked.
pub fn check_jpeg_structure(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(());
    }
    let len = bytes.len();
    let truncated = |what: &str| {
        Err(format!(
            "truncated: the file ends ({len} bytes) {what}, before the end-of-image marker"
        ))
    };
    let mut i = 2;
    loop {
        // Find the next marker, skipping stray bytes and fill bytes (FF FF ...).
        match bytes[i.min(len)..].iter().position(|&b| b == 0xFF) {
            Some(k) => i += k,
            None => return truncated("between segments"),
        }
        while i < len && bytes[i] == 0xFF {
            i += 1;
        }
        if i >= len {
            return truncated("in a marker");
        }
        let marker = bytes[i];
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        if i + 2 > len {
            return truncated("in a segment header");
        }
        let seg = u16::from_be_bytes([bytes[i], bytes[i + 1]]) as usize;
        if seg < 2 {
            return Err(format!(
                "segment FF {marker:02X} at byte {} has length {seg}",
                i - 2
            ));
        }
        i += seg;
        if i > len {
            return truncated(&format!("inside segment FF {marker:02X}"));
        }
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker other than a stuffed zero or a restart.
            loop {
                match bytes[i..].iter().position(|&b| b == 0xFF) {
                    Some(k) => i += k,
                    None => return truncated("inside the image data"),
                }
                if i + 1 >= len {
                    return truncated("inside the image data");
                }
                match bytes[i + 1] {
                    0x00 | 0xD0..=0xD7 => i += 2,
                    0xFF => i += 1,
                    _ => break,
                }
            }
        }
    }
}

/// Bilinear resize with PIL-style antialiasing when shrinking (the `image` crate's Triangle
/// filter scales its support with the reduction factor).
fn resize_exact(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    imageops::resize(img, width.max(1), height.max(1), FilterType::Triangle)
}

/// torchvision `Resize(resize)` then `CenterCrop(size)`, written planar into `out`.
fn eval_transform(img: &RgbImage, resize: usize, size: usize, out: &mut [f32]) {
    let (w, h) = (img.width() as u64, img.height() as u64);
    let r = resize as u64;
    let (nw, nh) = if w <= h {
        (r, (r * h / w).max(1))
    } else {
        ((r * w / h).max(1), r)
    };
    let resized = resize_exact(img, nw as u32, nh as u32);
    // Crop origin as torchvision: round((n - size) / 2) with ties to even; negative where
    // the crop is larger than the image (zero padding).
    let origin = |n: u64| ((n as f64 - size as f64) / 2.0).round_ties_even() as i64;
    write_planar(&resized, origin(nw), origin(nh), size, false, out);
}

/// Writes the `size`² window at (x0, y0) of `img` as planar RGB floats in [0, 1]; pixels
/// outside the image are 0. `mirror` flips the window horizontally.
fn write_planar(img: &RgbImage, x0: i64, y0: i64, size: usize, mirror: bool, out: &mut [f32]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let plane = size * size;
    for y in 0..size {
        let sy = y0 + y as i64;
        for x in 0..size {
            let sx = x0 + if mirror { size - 1 - x } else { x } as i64;
            let px = if (0..h).contains(&sy) && (0..w).contains(&sx) {
                img.get_pixel(sx as u32, sy as u32).0
            } else {
                [0, 0, 0]
            };
            for c in 0..3 {
                out[c * plane + y * size + x] = px[c] as f32 / 255.0;
            }
        }
    }
}

/// torchvision `RandomResizedCrop.get_params`: up to ten draws of an area fraction in `scale`
/// and a log-uniform aspect ratio in `ratio`, taking the first crop that fits; otherwise the
/// central crop clamped to the ratio range. Returns (x, y, width, height).
pub fn random_resized_crop_params(
    (width, height): (u32, u32),
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> (u32, u32, u32, u32) {
    let (w, h) = (width as f64, height as f64);
    let area = w * h;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * (scale.0 + rng.random::<f64>() * (scale.1 - scale.0));
        let aspect = (log_lo + rng.random::<f64>() * (log_hi - log_lo)).exp();
        let cw = (target * aspect).sqrt().round_ties_even();
        let ch = (target / aspect).sqrt().round_ties_even();
        if cw > 0.0 && cw <= w && ch > 0.0 && ch <= h {
            let (cw, ch) = (cw as u32, ch as u32);
            let y = rng.random_range(0..=height - ch);
            let x = rng.random_range(0..=width - cw);
            return (x, y, cw, ch);
        }
    }
    let in_ratio = w / h;
    let (cw, ch) = if in_ratio < ratio.0 {
        (
            width,
            ((w / ratio.0).round_ties_even() as u32).clamp(1, height),
        )
    } else if in_ratio > ratio.1 {
        (
            ((h * ratio.1).round_ties_even() as u32).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    ((width - cw) / 2, (height - ch) / 2, cw, ch)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String, DataError> {
    name.to_str()
        .map(str::to_string)
        .ok_or_else(|| DataError::bad(&path.join(name), "file name is not UTF-8".into()))
}

/// The non-hidden sub-folders of `dir` (symlinks followed), sorted by name.
pub fn sub_folders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        if hidden(&name) {
            continue;
        }
        if entry.path().is_dir() {
            out.push(utf8_name(dir, &name)?);
        }
    }
    out.sort();
    Ok(out)
}

/// Image files below `base/rel` (recursively), as paths relative to `base`, sorted.
fn list_images(
    base: &Path,
    rel: &str,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), DataError> {
    let dir = base.join(rel);
    if depth > MAX_DEPTH {
        return Err(DataError::bad(
            &dir,
            format!(
                "folders nested more than {MAX_DEPTH} levels below the class folder (a symlink loop?)"
            ),
        ));
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
        let entry = entry.map_err(|e| DataError::io(&dir, e))?;
        let name = entry.file_name();
        if hidden(&name) {
            continue;
        }
        let name = utf8_name(&dir, &name)?;
        entries.push(name);
    }
    entries.sort();
    for name in entries {
        let path = dir.join(&name);
        let child = format!("{rel}/{name}");
        if path.is_dir() {
            list_images(base, &child, depth + 1, out)?;
        } else if is_image(&path) {
            out.push(child);
        }
    }
    Ok(())
}

/// The images of each class folder `base/<class>`, labelled by `reference` (the class list
/// that numbers the labels). An empty class folder is an error naming it.
fn list_classes(
    base: &Path,
    classes: &[String],
    reference: &[String],
    reference_dir: &Path,
) -> Result<Vec<(String, u32)>, DataError> {
    let mut files = Vec::new();
    for class in classes {
        let label = reference.binary_search(class).map_err(|_| {
            DataError::bad(
                &base.join(class),
                format!(
                    "class folder has no counterpart in {} (labels follow its class list)",
                    reference_dir.display()
                ),
            )
        })? as u32;
        let mut found = Vec::new();
        list_images(base, class, 0, &mut found)?;
        if found.is_empty() {
            return Err(DataError::bad(
                &base.join(class),
                format!(
                    "empty class folder: no image files ({})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            ));
        }
        files.extend(found.into_iter().map(|f| (f, label)));
    }
    Ok(files)
}

const SPLIT_NAMES: [&str; 3] = ["train", "val", "test"];

/// Whether `root` uses split folders (`train/`, `val/` or `test/`).
fn has_split_folders(root: &Path) -> bool {
    SPLIT_NAMES.iter().any(|s| root.join(s).is_dir())
}

fn list_split(root: &Path, split: &str) -> Result<Listing, DataError> {
    if !root.is_dir() {
        return Err(DataError::bad(root, "not a folder".into()));
    }
    if has_split_folders(root) {
        let base = root.join(split);
        if !base.is_dir() {
            let found: Vec<&str> = SPLIT_NAMES
                .iter()
                .copied()
                .filter(|s| root.join(s).is_dir())
                .collect();
            return Err(DataError::bad(
                &base,
                format!(
                    "missing split folder: expected {}/<class>/<images> (this dataset has {})",
                    base.display(),
                    found.join(", ")
                ),
            ));
        }
        let train = root.join("train");
        let reference = if split != "train" && train.is_dir() {
            Some(sub_folders(&train)?)
        } else {
            None
        };
        let annotations = base.join("val_annotations.txt");
        if annotations.is_file() && base.join("images").is_dir() {
            return list_annotated(&base, &annotations, reference);
        }
        let classes = sub_folders(&base)?;
        if classes.is_empty() {
            return Err(DataError::bad(
                &base,
                "no class folders: expected <class>/<images> inside the split folder (ImageNet's val images must first be sorted into class folders)".into(),
            ));
        }
        let (reference, reference_dir) = match reference {
            Some(r) => (r, train),
            None => (classes.clone(), base.clone()),
        };
        let files = list_classes(&base, &classes, &reference, &reference_dir)?;
        return Ok(Listing {
            base,
            layout: FolderLayout::Split,
            class_names: reference,
            files,
        });
    }
    let classes = sub_folders(root)?;
    if classes.is_empty() {
        return Err(DataError::bad(
            &root.join(split),
            format!(
                "missing split folder: expected {}/<class>/<images>, or class folders directly in {}",
                root.join(split).display(),
                root.display()
            ),
        ));
    }
    let keep: fn(usize) -> bool = match split {
        "train" => |p| p % 10 != 0,
        "val" => |p| p % 10 == 0,
        "all" => |_| true,
        _ => {
            return Err(DataError::bad(
                &root.join(split),
                format!(
                    "missing split folder: {} holds class folders directly, whose splits are \"train\", \"val\" (every 10th image) and \"all\"",
                    root.display()
                ),
            ));
        }
    };
    let files = list_classes(root, &classes, &classes, root)?
        .into_iter()
        .enumerate()
        .filter(|(p, _)| keep(*p))
        .map(|(_, f)| f)
        .collect();
    Ok(Listing {
        base: root.to_path_buf(),
        layout: FolderLayout::Flat,
        class_names: classes,
        files,
    })
}

/// Tiny ImageNet's val split: `base/images/<file>` labelled by `val_annotations.txt`.
fn list_annotated(
    base: &Path,
    annotations: &Path,
    reference: Option<Vec<String>>,
) -> Result<Listing, DataError> {
    let text = std::fs::read_to_string(annotations).map_err(|e| DataError::io(annotations, e))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        match (fields.next(), fields.next()) {
            (Some(file), Some(class)) if !file.is_empty() && !class.is_empty() => {
                rows.push((file.to_string(), class.to_string()))
            }
            _ => {
                return Err(DataError::bad(
                    annotations,
                    format!("line {}: expected <file>\\t<class>[\\t<box>]", n + 1),
                ));
            }
        }
    }
    let class_names = match reference {
        Some(r) => r,
        None => {
            let mut c: Vec<String> = rows.iter().map(|(_, c)| c.clone()).collect();
            c.sort();
            c.dedup();
            c
        }
    };
    let mut files = Vec::with_capacity(rows.len());
    for (file, class) in rows {
        let label = class_names.binary_search(&class).map_err(|_| {
            DataError::bad(
                annotations,
                format!("{file}: class {class} is not a class folder of train/"),
            )
        })? as u32;
        let rel = format!("images/{file}");
        if !base.join(&rel).is_file() {
            return Err(DataError::bad(
                &base.join(&rel),
                format!("listed in {} but missing", annotations.display()),
            ));
        }
        files.push((rel, label));
    }
    if files.is_empty() {
        return Err(DataError::bad(annotations, "lists no images".into()));
    }
    files.sort();
    Ok(Listing {
        base: base.to_path_buf(),
        layout: FolderLayout::Annotated,
        class_names,
        files,
    })
}

/// Whether `dir` looks like an image folder (split folders, or class folders holding images).
pub fn is_image_folder(dir: &Path) -> bool {
    if has_split_folders(dir) {
        return true;
    }
    let Ok(classes) = sub_folders(dir) else {
        return false;
    };
    classes.iter().any(|c| {
        let mut found = Vec::new();
        list_images(dir, c, 0, &mut found).is_ok() && !found.is_empty()
    })
}

/// The splits a `hebb data check` of an image folder reports: the split folders present, or
/// the flat layout's hold-out "train" and "val".
pub fn check_splits(root: &Path) -> Vec<&'static str> {
    if has_split_folders(root) {
        SPLIT_NAMES
            .iter()
            .copied()
            .filter(|s| root.join(s).is_dir())
            .collect()
    } else {
        vec!["train", "val"]
    }
}
