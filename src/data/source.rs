//! Items to batches. A `Source` decodes one item on demand; a `Loader` runs a pool of worker
//! threads that decode the batches of one epoch in a fixed order, a bounded number ahead of the
//! consumer, so host memory holds at most `workers · (prefetch + 1)` batches whatever the
//! dataset size (each worker's queue plus the batch it is decoding).
//!
//! Determinism: batch j of an epoch always holds the same items (the epoch's order is given),
//! and item i's random augmentation is drawn from a generator seeded by (seed, epoch, i), so
//! the batches do not depend on the number of workers or on thread timing. A resumed run that
//! skips the first k batches sees exactly what the uninterrupted run saw.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::DataError;
use crate::data::cifar::{CifarSplit, IMAGE_BYTES};
use crate::data::mnist::MnistSplit;

/// Shape of one decoded item: C x H x W floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ItemShape {
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Training-time augmentation of 2-D images: random crop after reflect padding, random
/// horizontal flip (SoftHebb's STL-10/ImageNet protocol; torchvision's RandomCrop(pad, reflect)
/// and RandomHorizontalFlip), then additive Gaussian noise (SoftHebb's `MNIST_100aug`).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    #[serde(default)]
    pub crop_padding: usize,
    #[serde(default)]
    pub flip: bool,
    /// σ of the noise added to every pixel, x + σ·z with z ~ N(0, 1) drawn per pixel, in the
    /// loader's [0, 1] pixel units and not clipped (SoftHebb's `AddGaussianNoise`; its
    /// `MNIST_100aug` uses σ = 1). 0: none.
    #[serde(default)]
    pub noise_std: f32,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.flip && self.noise_std == 0.0
    }

    /// Checks the values against what they mean; errors name the field under `field`.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(format!(
                "{field}.noise_std = {}: expected a finite σ ≥ 0",
                self.noise_std
            ));
        }
        Ok(())
    }

    /// Writes one planar C x H x W item of 8-bit pixels to `out` as values in [0, 1], then
    /// applies the augmentation when an `rng` is given (training).
    pub fn decode_u8(
        &self,
        shape: ItemShape,
        pixels: &[u8],
        rng: Option<&mut ChaCha8Rng>,
        out: &mut [f32],
    ) {
        for (o, &b) in out.iter_mut().zip(pixels) {
            *o = b as f32 / 255.0;
        }
        if let Some(rng) = rng {
            self.apply(shape, rng, out);
        }
    }

    /// Applies the augmentation in place to one C x H x W item.
    pub fn apply(&self, shape: ItemShape, rng: &mut impl Rng, item: &mut [f32]) {
        let (h, w) = (shape.height, shape.width);
        let p = self
            .crop_padding
            .min(h.saturating_sub(1))
            .min(w.saturating_sub(1));
        let (dy, dx) = if p > 0 {
            (
                rng.random_range(0..=2 * p) as isize - p as isize,
                rng.random_range(0..=2 * p) as isize - p as isize,
            )
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.random_bool(0.5);
        if dy != 0 || dx != 0 || flip {
            Self::crop_and_flip(shape, (dy, dx), flip, item);
        }
        if self.noise_std > 0.0 {
            for x in item.iter_mut() {
                let z: f32 = rng.sample(rand_distr::StandardNormal);
                *x += self.noise_std * z;
            }
        }
    }

    /// Shifts every plane of `item` by (dy, dx) with reflection at the borders, flipped
    /// horizontally first when `flip`.
    fn crop_and_flip(shape: ItemShape, (dy, dx): (isize, isize), flip: bool, item: &mut [f32]) {
        let (h, w) = (shape.height, shape.width);
        // Reflect index into 0..n (no edge repeat, as torch's 'reflect').
        let reflect = |i: isize, n: usize| -> usize {
            let n = n as isize;
            let mut i = i;
            if i < 0 {
                i = -i;
            }
            if i >= n {
                i = 2 * (n - 1) - i;
            }
            i.clamp(0, n - 1) as usize
        };
        let mut plane = vec![0.0f32; h * w];
        for c in 0..shape.channels {
            let src = &mut item[c * h * w..(c + 1) * h * w];
            for y in 0..h {
                for x in 0..w {
                    let sx = if flip { w - 1 - x } else { x };
                    let yy = reflect(y as isize + dy, h);
                    let xx = reflect(sx as isize + dx, w);
                    plane[y * w + x] = src[yy * w + xx];
                }
            }
            src.copy_from_slice(&plane);
        }
    }
}

/// A dataset split whose items are decoded on demand.
pub trait Source: Send + Sync {
    /// What this is, for logs and errors (format and path).
    fn describe(&self) -> String;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn shape(&self) -> ItemShape;
    fn classes(&self) -> usize;
    /// The label of item `index`, known without decoding it.
    fn label(&self, index: usize) -> u32;
    /// Decodes item `index` into `out` (C x H x W, values in [0, 1] before any normalisation
    /// the network applies). `rng` is given for training-time augmentation. An unreadable item
    /// is an error naming its file; the loader skips it and counts it.
    fn load(
        &self,
        index: usize,
        rng: Option<&mut ChaCha8Rng>,
        out: &mut [f32],
    ) -> Result<(), DataError>;
}

/// MNIST / Fashion-MNIST held in memory (60k x 784 bytes).
pub struct IdxSource {
    pub split: MnistSplit,
    pub name: String,
    pub augment: Augment,
}

impl Source for IdxSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> usize {
        self.split.count
    }
    fn shape(&self) -> ItemShape {
        ItemShape {
            channels: 1,
            height: self.split.rows,
            width: self.split.cols,
        }
    }
    fn classes(&self) -> usize {
        10
    }
    fn label(&self, index: usize) -> u32 {
        self.split.labels[index] as u32
    }
    fn load(
        &self,
        index: usize,
        rng: Option<&mut ChaCha8Rng>,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let size = self.split.rows * self.split.cols;
        let pixels = &self.split.images[index * size..(index + 1) * size];
        self.augment.decode_u8(self.shape(), pixels, rng, out);
        Ok(())
    }
}

/// CIFAR-10 / CIFAR-100 held in memory (50k x 3072 bytes).
pub struct CifarSource {
    pub split: CifarSplit,
    pub classes: usize,
    pub name: String,
    pub augment: Augment,
}

impl Source for CifarSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> usize {
        self.split.count
    }
    fn shape(&self) -> ItemShape {
        ItemShape {
            channels: 3,
            height: 32,
            width: 32,
        }
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn label(&self, index: usize) -> u32 {
        self.split.labels[index] as u32
    }
    fn load(
        &self,
        index: usize,
        rng: Option<&mut ChaCha8Rng>,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let pixels = &self.split.images[index * IMAGE_BYTES..(index + 1) * IMAGE_BYTES];
        self.augment.decode_u8(self.shape(), pixels, rng, out);
        Ok(())
    }
}

/// One batch: `len` items of `shape` (B x C x H x W) and their labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Position of this batch in the epoch.
    pub number: usize,
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub len: usize,
    /// Items of this batch that could not be decoded: (index, error).
    pub skipped: Vec<(usize, String)>,
}

/// How a loader runs.
#[derive(Clone, Copy, Debug)]
pub struct LoaderOptions {
    pub batch: usize,
    pub workers: usize,
    /// Batches each worker may have decoded ahead of the consumer.
    pub prefetch: usize,
    pub seed: u64,
    pub epoch: u64,
    /// Draw training-time augmentation.
    pub augment: bool,
}

/// The batches of one epoch over `order`, decoded by worker threads. Iterating yields them in
/// order; dropping the loader stops the workers.
pub struct Loader {
    receivers: Vec<Receiver<Batch>>,
    handles: Vec<JoinHandle<()>>,
    first: usize,
    next: usize,
    batches: usize,
}

impl Loader {
    /// Starts decoding batches `first..` of the epoch that visits `order` in chunks of `batch`.
    pub fn new(
        source: Arc<dyn Source>,
        order: Arc<Vec<usize>>,
        first: usize,
        opts: LoaderOptions,
    ) -> Self {
        let batch = opts.batch.max(1);
        let chunks = (0..order.len())
            .step_by(batch)
            .map(|s| s..(s + batch).min(order.len()))
            .collect();
        Self::over_chunks(source, order, Arc::new(chunks), first, opts)
    }

    /// Starts decoding batches `first..` of an epoch whose batch j is the items
    /// `order[chunks[j]]` (a rank's shards of the global batches, `dist::shard_chunks`);
    /// `opts.batch` is not read.
    pub fn over_chunks(
        source: Arc<dyn Source>,
        order: Arc<Vec<usize>>,
        chunks: Arc<Vec<std::ops::Range<usize>>>,
        first: usize,
        opts: LoaderOptions,
    ) -> Self {
        let batches = chunks.len();
        let workers = opts.workers.clamp(1, 64);
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        for w in 0..workers {
            let (tx, rx) = sync_channel::<Batch>(opts.prefetch.max(1));
            receivers.push(rx);
            let (source, order, chunks) = (source.clone(), order.clone(), chunks.clone());
            handles.push(std::thread::spawn(move || {
                let mut j = first + w;
                while j < batches {
                    let b = decode_batch(&*source, &order[chunks[j].clone()], j, &opts);
                    if send(&tx, b).is_err() {
                        return;
                    }
                    j += workers;
                }
            }));
        }
        Self {
            receivers,
            handles,
            first,
            next: first,
            batches,
        }
    }

    /// Batches in the whole epoch.
    pub fn batches(&self) -> usize {
        self.batches
    }
}

fn send(tx: &SyncSender<Batch>, b: Batch) -> Result<(), ()> {
    tx.send(b).map_err(|_| ())
}

/// Batch `number` of an epoch: the items `indices`.
fn decode_batch(
    source: &dyn Source,
    indices: &[usize],
    number: usize,
    opts: &LoaderOptions,
) -> Batch {
    let item = source.shape().len();
    let mut images = vec![0.0f32; indices.len() * item];
    let mut labels = Vec::with_capacity(indices.len());
    let mut skipped = Vec::new();
    let mut len = 0;
    for &i in indices {
        let out = &mut images[len * item..(len + 1) * item];
        let mut rng = opts.augment.then(|| {
            ChaCha8Rng::seed_from_u64(
                opts.seed ^ (opts.epoch << 40) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            )
        });
        match source.load(i, rng.as_mut(), out) {
            Ok(()) => {
                labels.push(source.label(i));
                len += 1;
            }
            Err(e) => skipped.push((i, e.to_string())),
        }
    }
    images.truncate(len * item);
    Batch {
        number,
        images,
        labels,
        len,
        skipped,
    }
}

impl Iterator for Loader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.batches {
            return None;
        }
        // Worker w decodes batches first + w, first + w + workers, ...
        let worker = (self.next - self.first) % self.receivers.len();
        let b = self.receivers[worker].recv().ok()?;
        self.next += 1;
        Some(b)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the receivers makes every blocked send fail, so the workers return.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A deterministic permutation of 0..n for (seed, epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_add(epoch.wrapping_mul(0xA24B_AED4_963E_E407)));
    order.shuffle(&mut rng);
    order
}
