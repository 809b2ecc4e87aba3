//! The splits a recipe trains and tests on, opened from `[data]` (or `--data`), with the
//! `--limit` and label-fraction subsets and the dataset statistics for standardisation and
//! whitening.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::DataError;
use crate::data::cifar::{self, Variant};
use crate::data::folder::{FolderAugment, FolderSource};
use crate::data::mnist::{self, Split};
use crate::data::source::{Augment, CifarSource, IdxSource, Source};
use crate::data::stl10::{Stl10Source, Stl10Split};
use crate::nn::recipe::{DatasetKind, Recipe, SplitSpec};
use crate::nn::zca::ZcaGeometry;

pub struct Splits {
    pub train: Arc<dyn Source>,
    pub test: Arc<dyn Source>,
    pub root: PathBuf,
}

/// The folder a recipe reads: `--data`, else `[data] path`, else the bundled MNIST.
pub fn data_root(recipe: &Recipe, data: Option<&Path>) -> Result<PathBuf, DataError> {
    if let Some(d) = data {
        return Ok(d.to_path_buf());
    }
    if let Some(p) = &recipe.data.path {
        return Ok(p.clone());
    }
    match recipe.data.dataset {
        DatasetKind::Mnist => Ok(bundled_mnist()),
        other => Err(DataError::bad(
            Path::new("--data"),
            format!(
                "the {other:?} recipe needs a dataset folder: pass --data DIR or set [data] path"
            ),
        )),
    }
}

/// `datasets/mnist` next to the executable's repository, or in the working directory.
pub fn bundled_mnist() -> PathBuf {
    let local = PathBuf::from("datasets/mnist");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")
}

/// Opens the train and test splits of the recipe's dataset.
pub fn open(recipe: &Recipe, root: &Path) -> Result<Splits, DataError> {
    let augment = recipe.data.augment;
    let (train, test): (Arc<dyn Source>, Arc<dyn Source>) = match recipe.data.dataset {
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let name = if recipe.data.dataset == DatasetKind::Mnist {
                "MNIST"
            } else {
                "Fashion-MNIST"
            };
            let open = |split, label: &str| -> Result<Arc<dyn Source>, DataError> {
                let file = mnist::split_file(root, split, "images")?;
                Ok(Arc::new(IdxSource {
                    split: mnist::load_split(root, split)?,
                    name: format!("{name} {label}, {}", file.display()),
                    augment,
                }))
            };
            (open(Split::Train, "train")?, open(Split::Test, "test")?)
        }
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
            let variant = if recipe.data.dataset == DatasetKind::Cifar10 {
                Variant::Cifar10
            } else {
                Variant::Cifar100
            };
            let open = |train: bool| -> Result<Arc<dyn Source>, DataError> {
                Ok(Arc::new(CifarSource {
                    split: cifar::load_split(root, variant, train)?,
                    classes: variant.classes(),
                    name: format!(
                        "CIFAR-{} {} ({})",
                        variant.classes(),
                        if train { "train" } else { "test" },
                        root.display()
                    ),
                    augment,
                }))
            };
            (open(true)?, open(false)?)
        }
        DatasetKind::Stl10 => (
            // The labelled train split; the 100k unlabeled images are Stl10Split::Unlabeled.
            Arc::new(Stl10Source::open(root, Stl10Split::Train, augment)?),
            Arc::new(Stl10Source::open(
                root,
                Stl10Split::Test,
                Augment::default(),
            )?),
        ),
        DatasetKind::Folder => {
            let size = recipe.data.image_size.unwrap_or(224);
            let resize = recipe.data.resize.unwrap_or(size * 8 / 7);
            // With a train/val layout these are the two splits; a folder of class folders
            // (the ImageNet sample) holds out every 10th file as "val".
            let train_augment = if recipe.data.random_resized_crop {
                FolderAugment::IMAGENET
            } else {
                FolderAugment::Fixed(augment)
            };
            let eval = FolderAugment::Fixed(Augment::default());
            (
                Arc::new(FolderSource::open(
                    root,
                    "train",
                    size,
                    resize,
                    train_augment,
                )?),
                Arc::new(FolderSource::open(root, "val", size, resize, eval)?),
            )
        }
    };
    let (a, b) = (train.shape(), test.shape());
    if a != b {
        return Err(DataError::bad(
            root,
            format!(
                "the training images ({}) are {}x{}x{} but the test images ({}) are {}x{}x{}; \
                 both splits must have one image size",
                train.describe(),
                a.channels,
                a.height,
                a.width,
                test.describe(),
                b.channels,
                b.height,
                b.width
            ),
        ));
    }
    Ok(Splits {
        train,
        test,
        root: root.to_path_buf(),
    })
}

/// Splits `items` into (training, validation): `count` items drawn by `seed` are held out;
/// both parts keep ascending order. Errors when nothing would be left to train on.
pub fn hold_out(
    items: &[usize],
    count: usize,
    seed: u64,
) -> std::result::Result<(Vec<usize>, Vec<usize>), String> {
    check_hold_out(count, items.len())?;
    let mut order = items.to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x7A11_DA7E));
    let mut val = order[..count].to_vec();
    let mut train = order[count..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    Ok((train, val))
}

/// CPython's `random.shuffle(items)` right after `random.seed(seed)`, item for item: the
/// Mersenne Twister seeded by `init_by_array` with the seed's 32-bit words (least significant
/// first), then Fisher–Yates from the end, each j = `_randbelow(i + 1)` drawn by rejection from
/// the top k = bit_length(i + 1) bits of one 32-bit output (`getrandbits(k)`, k ≤ 32).
/// 2^32 items or more (which need CPython's multi-word `getrandbits`) are refused.
pub fn python_shuffle<T>(items: &mut [T], seed: u64) -> std::result::Result<(), String> {
    if items.len() as u64 >= 1 << 32 {
        return Err(format!(
            "a Python-shuffle split of {} items: fewer than 2^32 are supported",
            items.len()
        ));
    }
    let key: Vec<u32> = if seed >> 32 == 0 {
        vec![seed as u32]
    } else {
        vec![seed as u32, (seed >> 32) as u32]
    };
    let mut mt = rand_mt::Mt::new_with_key(key);
    for i in (1..items.len()).rev() {
        let n = i as u64 + 1;
        let k = 64 - n.leading_zeros();
        let j = loop {
            let r = (mt.next_u32() >> (32 - k)) as u64;
            if r < n {
                break r as usize;
            }
        };
        items.swap(i, j);
    }
    Ok(())
}

/// Training, validation and labelled items, each in ascending order.
pub type ItemSplit = (Vec<usize>, Vec<usize>, Vec<usize>);

/// The (training, validation, labelled) items of `items` under `split`: `validation` items
/// held out (none when None), and the `label_fraction` of the rest whose labels the supervised
/// stages see. Training and validation keep ascending order; so does the labelled subset.
pub fn split_items(
    source: &dyn Source,
    items: &[usize],
    validation: Option<usize>,
    split: SplitSpec,
    label_fraction: f64,
    seed: u64,
) -> std::result::Result<ItemSplit, String> {
    let count = validation.unwrap_or(0);
    if validation.is_some() {
        check_hold_out(count, items.len())?;
    }
    match split {
        SplitSpec::Stratified => {
            let (train, val) = match validation {
                Some(count) => hold_out(items, count, seed)?,
                None => (items.to_vec(), Vec::new()),
            };
            let labeled = label_subset(source, &train, label_fraction, seed);
            Ok((train, val, labeled))
        }
        SplitSpec::PythonShuffle { seed } => {
            let mut order = items.to_vec();
            python_shuffle(&mut order, seed)?;
            let rest = order.len() - count;
            let mut val = order[rest..].to_vec();
            let keep = if label_fraction >= 1.0 {
                rest
            } else {
                ((rest as f64 * label_fraction).round() as usize).clamp(rest.min(1), rest)
            };
            let mut labeled = order[..keep].to_vec();
            let mut train = order[..rest].to_vec();
            for v in [&mut train, &mut val, &mut labeled] {
                v.sort_unstable();
            }
            Ok((train, val, labeled))
        }
    }
}

/// An error unless holding out `count` of `len` items leaves some to train on.
fn check_hold_out(count: usize, len: usize) -> std::result::Result<(), String> {
    if count >= len {
        return Err(format!(
            "data.validation = {count} leaves nothing to train on: the training split has {len} \
             items (after --limit, if given)"
        ));
    }
    Ok(())
}

/// The first `limit` items (all when None).
pub fn limited(len: usize, limit: Option<usize>) -> Vec<usize> {
    (0..limit.map_or(len, |l| l.min(len))).collect()
}

/// A stratified subset keeping `fraction` of each class (at least one item per class present),
/// chosen by `seed`; the order of `items` is kept.
pub fn label_subset(source: &dyn Source, items: &[usize], fraction: f64, seed: u64) -> Vec<usize> {
    if fraction >= 1.0 {
        return items.to_vec();
    }
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for &i in items {
        by_class.entry(source.label(i)).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1ABE_1F4A);
    let mut keep = Vec::new();
    for (_, mut members) in by_class {
        let k = ((members.len() as f64 * fraction).round() as usize).clamp(1, members.len());
        members.shuffle(&mut rng);
        keep.extend_from_slice(&members[..k]);
    }
    let keep: std::collections::HashSet<usize> = keep.into_iter().collect();
    items.iter().copied().filter(|i| keep.contains(i)).collect()
}

/// Per-channel mean and standard deviation of `items` (decoded without augmentation), in f64.
pub fn channel_stats(
    source: &dyn Source,
    items: &[usize],
) -> Result<(Vec<f32>, Vec<f32>), DataError> {
    let shape = source.shape();
    let plane = shape.height * shape.width;
    let mut sum = vec![0f64; shape.channels];
    let mut sumsq = vec![0f64; shape.channels];
    let mut buf = vec![0f32; shape.len()];
    let mut count = 0usize;
    for &i in items {
        if source.load(i, None, &mut buf).is_err() {
            continue;
        }
        count += 1;
        for c in 0..shape.channels {
            for &v in &buf[c * plane..(c + 1) * plane] {
                sum[c] += v as f64;
                sumsq[c] += (v as f64) * (v as f64);
            }
        }
    }
    let n = (count * plane).max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std: Vec<f32> = sum
        .iter()
        .zip(&sumsq)
        .map(|(s, q)| ((q / n - (s / n) * (s / n)).max(0.0).sqrt()) as f32)
        .collect();
    Ok((mean, std))
}

/// The first `samples` whitening vectors of `items` (decoded without augmentation, skipping
/// unreadable ones), standardised per channel by `standardize` = (mean, std) when given, in
/// the order of `ZcaGeometry::push_vectors`: samples x D, row-major.
pub fn zca_vectors(
    source: &dyn Source,
    items: &[usize],
    samples: usize,
    standardize: Option<&(Vec<f32>, Vec<f32>)>,
    geometry: &ZcaGeometry,
) -> Result<Vec<f32>, DataError> {
    let shape = source.shape();
    let plane = shape.height * shape.width;
    // No more vectors than the items hold, and no more bytes than the host can spare: checked
    // before the buffer is allocated.
    let samples = samples.min(items.len().saturating_mul(geometry.blocks()));
    let bytes = (samples as u64).saturating_mul(geometry.dim() as u64 * 4);
    let budget = crate::data::limits::host_memory_budget();
    if bytes > budget {
        return Err(DataError::bad(
            std::path::Path::new("recipe"),
            format!(
                "preprocess.zca.samples: {samples} whitening vectors of {} values need {} of host \
                 memory, more than the {} allowed (half this machine's memory); use fewer samples",
                geometry.dim(),
                crate::data::limits::show_bytes(bytes),
                crate::data::limits::show_bytes(budget)
            ),
        ));
    }
    let want = samples * geometry.dim();
    let mut rows = Vec::with_capacity(want);
    let mut buf = vec![0f32; shape.len()];
    for &i in items {
        if rows.len() >= want {
            break;
        }
        if source.load(i, None, &mut buf).is_err() {
            continue;
        }
        if let Some((mean, std)) = standardize {
            for c in 0..shape.channels {
                let (m, s) = (mean[c] as f64, std[c] as f64);
                for v in &mut buf[c * plane..(c + 1) * plane] {
                    *v = ((*v as f64 - m) / s) as f32;
                }
            }
        }
        geometry.push_vectors(&buf, &mut rows);
    }
    rows.truncate(want);
    Ok(rows)
}
