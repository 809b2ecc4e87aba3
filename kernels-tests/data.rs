//! Dataset readers on the bundled MNIST (the official files) and on corrupted copies: every
//! bad input is an error naming the file, never a panic.

use std::path::{Path, PathBuf};

use hebb::data::mnist::{Split, load_split};
use hebb::data::{check_dir, idx::read_idx_u8};

fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hebb-data-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bundled_mnist_loads_with_the_published_counts() {
    let train = load_split(&mnist_dir(), Split::Train).unwrap();
    let test = load_split(&mnist_dir(), Split::Test).unwrap();
    assert_eq!((train.count, train.rows, train.cols), (60000, 28, 28));
    assert_eq!(test.count, 10000);
    assert_eq!(&train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(
        train.label_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        test.label_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let mean: f64 = train.images.iter().map(|&p| p as f64).sum::<f64>() / train.images.len() as f64;
    assert!((mean / 255.0 - 0.1307).abs() < 1e-3, "mean pixel {mean}");
}

#[test]
fn data_check_confirms_the_official_checksums() {
    let report = check_dir(&mnist_dir()).unwrap();
    assert_eq!(report.checksums.len(), 4);
    assert!(
        report.checksums.iter().all(|(_, v)| v.starts_with("ok")),
        "{:?}",
        report.checksums
    );
}

fn write_gz(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap();
}

fn labels_file(count: u32, labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend(count.to_be_bytes());
    b.extend(labels);
    b
}

#[test]
fn corrupt_idx_files_are_named_errors() {
    let dir = scratch("corrupt");
    // Wrong magic (an images header read as labels).
    let p = dir.join("bad-magic-idx1-ubyte");
    std::fs::write(&p, [0u8, 0, 8, 3, 0, 0, 0, 1, 7]).unwrap();
    let e = read_idx_u8(&p, 1).unwrap_err().to_string();
    assert!(
        e.contains("bad-magic") && e.contains("wrong IDX magic"),
        "{e}"
    );
    // Truncated data, gzipped.
    let p = dir.join("short-idx1-ubyte.gz");
    write_gz(&p, &labels_file(5, &[1, 2, 3]));
    let e = read_idx_u8(&p, 1).unwrap_err().to_string();
    assert!(
        e.contains("short-idx1-ubyte.gz") && e.contains("truncated"),
        "{e}"
    );
    // Not gzip at all despite the name.
    let p = dir.join("not-gzip-idx1-ubyte.gz");
    std::fs::write(&p, labels_file(2, &[1, 2])).unwrap();
    let e = read_idx_u8(&p, 1).unwrap_err().to_string();
    assert!(e.contains("not-gzip") && e.contains("gzip"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_split_whose_labels_do_not_match_is_an_error() {
    let dir = scratch("mismatch");
    let mut images = vec![0u8, 0, 8, 3];
    for v in [3u32, 2, 2] {
        images.extend(v.to_be_bytes());
    }
    images.extend([0u8; 12]);
    write_gz(&dir.join("t10k-images-idx3-ubyte.gz"), &images);
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels_file(2, &[1, 2])).unwrap();
    let e = load_split(&dir, Split::Test).unwrap_err().to_string();
    assert!(
        e.contains("t10k-labels-idx1-ubyte") && e.contains("2 labels for 3 images"),
        "{e}"
    );
    let e = load_split(&dir, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("missing"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cifar_batches_are_whole_records_with_valid_labels() {
    use hebb::data::cifar::{CifarSplit, Variant, read_batch};
    let dir = scratch("cifar");
    let record = Variant::Cifar10.record_bytes();
    let mut good = vec![7u8; 3 * record];
    good[0] = 3;
    good[record] = 9;
    good[2 * record] = 0;
    std::fs::write(dir.join("ok.bin"), &good).unwrap();
    let mut split = CifarSplit::default();
    read_batch(&dir.join("ok.bin"), Variant::Cifar10, &mut split).unwrap();
    assert_eq!((split.count, split.labels.clone()), (3, vec![3, 9, 0]));
    assert_eq!(split.images.len(), 3 * 3072);

    std::fs::write(dir.join("short.bin"), &good[..record + 100]).unwrap();
    let e = read_batch(&dir.join("short.bin"), Variant::Cifar10, &mut split)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("short.bin") && e.contains("3073-byte records"),
        "{e}"
    );

    let mut bad_label = good.clone();
    bad_label[record] = 12;
    std::fs::write(dir.join("label.bin"), &bad_label).unwrap();
    let e = read_batch(&dir.join("label.bin"), Variant::Cifar10, &mut split)
        .unwrap_err()
        .to_string();
    assert!(e.contains("record 1 has label 12"), "{e}");

    let e = hebb::data::cifar::load_split(&dir, Variant::Cifar10, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_1.bin") && e.contains("missing"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The real CIFAR-10 from `../shared/datasets` when it is there (CI has it; a plain clone may
/// not, and then this says so).
#[test]
fn real_cifar10_test_split_when_available() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/cifar-10/cifar-10-batches-bin");
    if !dir.is_dir() {
        eprintln!(
            "note: {} not found; real CIFAR-10 not checked",
            dir.display()
        );
        return;
    }
    use hebb::data::cifar::{Variant, load_split};
    let test = load_split(&dir, Variant::Cifar10, false).unwrap();
    assert_eq!(test.count, 10000);
    assert_eq!(test.label_counts(10), vec![1000; 10]);
}

// ---- Image folders, STL-10, the loader ----

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hebb::data::DataError;
use hebb::data::folder::{FolderAugment, FolderLayout, FolderSource, check_jpeg_structure};
use hebb::data::source::{Augment, Batch, ItemShape, Loader, LoaderOptions, Source};
use hebb::data::stl10::{self, Stl10Source, Stl10Split};
use image::{ImageEncoder, Rgb, RgbImage};
use rand_chacha::ChaCha8Rng;

fn shared_datasets() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: {} not found; shared datasets not checked",
            dir.display()
        );
        None
    }
}

fn opts(batch: usize, workers: usize, prefetch: usize, augment: bool) -> LoaderOptions {
    LoaderOptions {
        batch,
        workers,
        prefetch,
        seed: 7,
        epoch: 0,
        augment,
    }
}

fn load_all(source: Arc<dyn Source>, o: LoaderOptions) -> Vec<Batch> {
    let order = Arc::new((0..source.len()).collect::<Vec<_>>());
    Loader::new(source, order, 0, o).collect()
}

/// A test picture with structure (gradients and blocks), `w` x `h`.
fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 255) / w.max(1)) as u8,
            ((y * 255) / h.max(1)) as u8,
            (((x / 8 + y / 8 + seed) % 2) * 200) as u8,
        ])
    })
}

fn jpeg_bytes(img: &RgbImage, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
    if let Some(exif) = exif {
        enc.set_exif_metadata(exif).unwrap();
    }
    enc.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

#[test]
fn imagenet_sample_lists_and_decodes_every_image() {
    let Some(shared) = shared_datasets() else {
        return;
    };
    let root = shared.join("imagenet-sample");
    let all = FolderSource::open(&root, "all", 64, 73, FolderAugment::IMAGENET).unwrap();
    assert_eq!(all.layout(), FolderLayout::Flat);
    assert_eq!((all.len(), all.classes()), (346, 346));
    assert_eq!(all.class_names()[0], "n01440764");
    assert_eq!(all.label_counts(), vec![1; 346]);
    // The hold-out: every 10th image is val, the two splits partition the folder.
    let train = FolderSource::open(&root, "train", 64, 73, FolderAugment::IMAGENET).unwrap();
    let val = FolderSource::open(&root, "val", 64, 73, FolderAugment::IMAGENET).unwrap();
    assert_eq!((train.len(), val.len()), (311, 35));
    assert_eq!(val.path(1), all.path(10));
    assert_eq!(train.path(0), all.path(1));

    // Full-size decode: sizes as CLASSES.tsv records them (PIL, before any EXIF rotation);
    // greyscale (mode L) becomes three equal channels.
    let tsv = std::fs::read_to_string(root.join("CLASSES.tsv")).unwrap();
    let mut by_path = std::collections::HashMap::new();
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f[3] == "yes" {
            let (w, h): (u32, u32) = (f[5].parse().unwrap(), f[6].parse().unwrap());
            by_path.insert(root.join(f[4]), (w, h, f[7].to_string()));
        }
    }
    assert_eq!(by_path.len(), 346);
    let (mut grey, mut rotated) = (0, 0);
    for i in 0..all.len() {
        let path = all.path(i);
        let (w, h, mode) = by_path
            .get(&path)
            .unwrap_or_else(|| panic!("{path:?} not in CLASSES.tsv"));
        let img = all.decode(i).unwrap();
        if img.dimensions() == (*h, *w) && w != h {
            rotated += 1;
        } else {
            assert_eq!(img.dimensions(), (*w, *h), "{path:?}");
        }
        if mode == "L" {
            grey += 1;
            assert!(
                img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
                "{path:?}"
            );
        }
    }
    assert_eq!(grey, 23);
    eprintln!("imagenet-sample: {grey} greyscale, {rotated} turned by their EXIF orientation");

    // Every image through the eval transform on worker threads: 3 x 64 x 64 in [0, 1].
    let batches = load_all(Arc::new(all), opts(32, 2, 2, false));
    let items: usize = batches.iter().map(|b| b.len).sum();
    assert_eq!(items, 346);
    for b in &batches {
        assert!(b.skipped.is_empty(), "{:?}", b.skipped);
        assert_eq!(b.images.len(), b.len * 3 * 64 * 64);
        assert!(b.images.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // Training transform (RandomResizedCrop + flip) on a few real images: same seed, same
    // pixels; another epoch, others.
    let source: Arc<dyn Source> = Arc::new(train);
    let order = Arc::new((0..24).collect::<Vec<_>>());
    let a: Vec<Batch> =
        Loader::new(source.clone(), order.clone(), 0, opts(8, 1, 1, true)).collect();
    let b: Vec<Batch> =
        Loader::new(source.clone(), order.clone(), 0, opts(8, 3, 2, true)).collect();
    let mut other = opts(8, 2, 1, true);
    other.epoch = 1;
    let c: Vec<Batch> = Loader::new(source, order, 0, other).collect();
    for ((a, b), c) in a.iter().zip(&b).zip(&c) {
        assert_eq!(a.images, b.images);
        assert_ne!(a.images, c.images);
        assert!(a.images.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn imagenet_sample_passes_data_check() {
    let Some(shared) = shared_datasets() else {
        return;
    };
    let report = check_dir(&shared.join("imagenet-sample")).unwrap();
    assert!(
        report.format.starts_with("image-folder"),
        "{}",
        report.format
    );
    let total: usize = report.splits.iter().map(|s| s.1).sum();
    assert_eq!(total, 346);
    assert_eq!(report.class_names.len(), 346);
    assert_eq!((report.unreadable, report.first_unreadable), (0, None));
}

#[test]
fn exif_orientation_is_applied() {
    // 48 x 16, left third red: EXIF orientation 6 (rotate 90° clockwise) makes it 16 x 48
    // with the red at the top.
    let img = RgbImage::from_fn(48, 16, |x, _| {
        if x < 16 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    tiff.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let dir = scratch("exif");
    std::fs::write(dir.join("rot.jpg"), jpeg_bytes(&img, Some(tiff))).unwrap();
    let out = hebb::data::folder::decode_rgb(&dir.join("rot.jpg")).unwrap();
    assert_eq!(out.dimensions(), (16, 48));
    let top = out.get_pixel(8, 4);
    let bottom = out.get_pixel(8, 44);
    assert!(top[0] > 200 && top[2] < 60, "{top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "{bottom:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_truncated_jpeg_is_caught_at_every_length() {
    let bytes = jpeg_bytes(&picture(40, 24, 1), None);
    assert!(check_jpeg_structure(&bytes).is_ok());
    let mut trailing = bytes.clone();
    trailing.extend([0u8; 10]);
    assert!(
        check_jpeg_structure(&trailing).is_ok(),
        "data after the end marker is allowed"
    );
    for cut in 2..bytes.len() {
        let e = check_jpeg_structure(&bytes[..cut]).expect_err(&format!("prefix of {cut} bytes"));
        assert!(e.contains("truncated"), "{e}");
    }
}

/// A split-layout folder with good PNG/JPEG files (colour, greyscale, 16-bit, a PNG named
/// .JPEG) and two bad ones.
fn mixed_folder(name: &str) -> PathBuf {
    let root = scratch(name);
    let a = root.join("train/ant");
    let b = root.join("train/bee");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    picture(40, 30, 0).save(a.join("0.png")).unwrap();
    std::fs::write(a.join("1.jpg"), jpeg_bytes(&picture(30, 50, 1), None)).unwrap();
    image::GrayImage::from_fn(20, 20, |x, _| image::Luma([(x * 10) as u8]))
        .save(a.join("2.png"))
        .unwrap();
    let full = jpeg_bytes(&picture(64, 48, 2), None);
    std::fs::write(b.join("3.JPEG"), &full[..full.len() / 2]).unwrap();
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(17, 33, |x, y| {
        image::Rgb([(x * 3000) as u16, (y * 1000) as u16, 65535])
    })
    .save(b.join("4.png"))
    .unwrap();
    std::fs::write(b.join("5.JPEG"), b"this is not an image at all").unwrap();
    // A PNG under a JPEG name (ImageNet has one), and a file that is not an image.
    let mut png = Vec::new();
    picture(25, 25, 3)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(b.join("6.JPEG"), png).unwrap();
    std::fs::write(b.join("bee_boxes.txt"), "not listed").unwrap();
    root
}

#[test]
fn a_corrupt_jpeg_is_skipped_and_reported_and_the_rest_delivered() {
    let root = mixed_folder("mixed");
    let source = FolderSource::open(&root, "train", 16, 18, FolderAugment::IMAGENET).unwrap();
    assert_eq!(source.layout(), FolderLayout::Split);
    assert_eq!(
        source.class_names(),
        &["ant".to_string(), "bee".to_string()]
    );
    assert_eq!(source.label_counts(), vec![3, 4]);
    for augment in [false, true] {
        let batches = load_all(
            Arc::new(FolderSource::open(&root, "train", 16, 18, FolderAugment::IMAGENET).unwrap()),
            opts(3, 2, 1, augment),
        );
        let labels: Vec<u32> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(labels, vec![0, 0, 0, 1, 1], "augment {augment}");
        let skipped: Vec<&(usize, String)> = batches.iter().flat_map(|b| &b.skipped).collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(skipped[0].0, 3);
        assert!(
            skipped[0].1.contains("3.JPEG") && skipped[0].1.contains("truncated"),
            "{}",
            skipped[0].1
        );
        assert_eq!(skipped[1].0, 5);
        assert!(
            skipped[1].1.contains("5.JPEG") && skipped[1].1.contains("cannot decode"),
            "{}",
            skipped[1].1
        );
        for b in &batches {
            assert_eq!(b.images.len(), b.len * 3 * 16 * 16);
            assert!(b.images.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
    // The greyscale PNG has equal channels after the eval transform.
    let mut out = vec![0.0; 3 * 16 * 16];
    source.load(2, None, &mut out).unwrap();
    assert_eq!(out[..256], out[256..512]);
    assert_eq!(out[..256], out[512..]);

    let report = check_dir(&root).unwrap();
    assert_eq!(report.splits, vec![("train".to_string(), 7, vec![3, 4])]);
    assert_eq!(report.unreadable, 2);
    let first = report.first_unreadable.unwrap();
    assert!(first.contains("3.JPEG"), "{first}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn eval_transform_is_resize_then_centre_crop() {
    // 60 x 30, left half black, right half white, a 4-pixel red column in the middle: after
    // Resize(20) -> 40 x 20 and CenterCrop(20) the red column is at the centre and the crop
    // holds 10 columns of each half.
    let root = scratch("eval");
    std::fs::create_dir_all(root.join("val/c")).unwrap();
    RgbImage::from_fn(60, 30, |x, _| match x {
        28..=31 => Rgb([255, 0, 0]),
        0..=27 => Rgb([0, 0, 0]),
        _ => Rgb([255, 255, 255]),
    })
    .save(root.join("val/c/a.png"))
    .unwrap();
    let s = FolderSource::open(&root, "val", 20, 20, FolderAugment::IMAGENET).unwrap();
    let mut out = vec![0.0; 3 * 400];
    s.load(0, None, &mut out).unwrap();
    let (r, b) = (&out[..400], &out[800..]);
    let row = 10 * 20;
    assert!(
        r[row + 9] > 0.8 && b[row + 9] < 0.3,
        "red column near the centre"
    );
    assert!(r[row] < 0.05 && b[row] < 0.05, "black on the left");
    assert!(
        r[row + 19] > 0.95 && b[row + 19] > 0.95,
        "white on the right"
    );
    // Resize larger than the crop: Resize(40) -> 80 x 40, crop 20 is the central quarter.
    let s = FolderSource::open(&root, "val", 20, 40, FolderAugment::IMAGENET).unwrap();
    s.load(0, None, &mut out).unwrap();
    assert!(out[..400].iter().all(|v| (0.0..=1.0).contains(v)));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn folder_layout_errors_name_the_folder() {
    let root = scratch("layout");
    std::fs::create_dir_all(root.join("train/cat")).unwrap();
    std::fs::create_dir_all(root.join("train/dog")).unwrap();
    picture(8, 8, 0).save(root.join("train/cat/1.png")).unwrap();
    let e = FolderSource::open(&root, "train", 8, 8, FolderAugment::IMAGENET)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("train/dog") && e.contains("empty class folder"),
        "{e}"
    );
    picture(8, 8, 1).save(root.join("train/dog/1.png")).unwrap();
    FolderSource::open(&root, "train", 8, 8, FolderAugment::IMAGENET).unwrap();
    let e = FolderSource::open(&root, "val", 8, 8, FolderAugment::IMAGENET)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&root.join("val").display().to_string()) && e.contains("missing split"),
        "{e}"
    );
    // val labels follow train's class list; a class train does not have is an error.
    std::fs::create_dir_all(root.join("val/dog")).unwrap();
    picture(8, 8, 2).save(root.join("val/dog/9.png")).unwrap();
    let val = FolderSource::open(&root, "val", 8, 8, FolderAugment::IMAGENET).unwrap();
    assert_eq!((val.len(), val.classes(), val.label(0)), (1, 2, 1));
    std::fs::create_dir_all(root.join("val/eel")).unwrap();
    picture(8, 8, 2).save(root.join("val/eel/9.png")).unwrap();
    let e = FolderSource::open(&root, "val", 8, 8, FolderAugment::IMAGENET)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("val/eel") && e.contains("train"), "{e}");
    // No images at all.
    let empty = scratch("layout-empty");
    let e = FolderSource::open(&empty, "train", 8, 8, FolderAugment::IMAGENET)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("train") && e.contains("missing split"), "{e}");
    std::fs::remove_dir_all(&root).ok();
    std::fs::remove_dir_all(&empty).ok();
}

#[test]
fn tiny_imagenet_layout() {
    let root = scratch("tiny");
    for (wnid, n) in [("n01", 2), ("n02", 1)] {
        let d = root.join(format!("train/{wnid}/images"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            picture(64, 64, i)
                .save(d.join(format!("{wnid}_{i}.JPEG")))
                .unwrap();
        }
        std::fs::write(root.join(format!("train/{wnid}/{wnid}_boxes.txt")), "").unwrap();
    }
    std::fs::create_dir_all(root.join("val/images")).unwrap();
    for i in 0..3 {
        picture(64, 64, i)
            .save(root.join(format!("val/images/val_{i}.JPEG")))
            .unwrap();
    }
    std::fs::write(
        root.join("val/val_annotations.txt"),
        "val_0.JPEG\tn02\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t1\t5\t5\nval_2.JPEG\tn02\t0\t0\t1\t1\n",
    )
    .unwrap();
    let train = FolderSource::open(&root, "train", 64, 64, FolderAugment::IMAGENET).unwrap();
    assert_eq!((train.len(), train.label_counts()), (3, vec![2, 1]));
    let val = FolderSource::open(&root, "val", 64, 64, FolderAugment::IMAGENET).unwrap();
    assert_eq!(val.layout(), FolderLayout::Annotated);
    assert_eq!(
        (0..3).map(|i| val.label(i)).collect::<Vec<_>>(),
        vec![1, 0, 1]
    );
    std::fs::remove_dir_all(&root).ok();
}

/// Items generated on the fly that record how far decoding runs ahead of the consumer.
struct Counting {
    n: usize,
    started: AtomicUsize,
    consumed: Arc<AtomicUsize>,
    max_ahead: AtomicUsize,
}

impl Source for Counting {
    fn describe(&self) -> String {
        "counting".into()
    }
    fn len(&self) -> usize {
        self.n
    }
    fn shape(&self) -> ItemShape {
        ItemShape {
            channels: 1,
            height: 2,
            width: 2,
        }
    }
    fn classes(&self) -> usize {
        1
    }
    fn label(&self, _: usize) -> u32 {
        0
    }
    fn load(
        &self,
        index: usize,
        _: Option<&mut ChaCha8Rng>,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let started = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let ahead = started - self.consumed.load(Ordering::SeqCst).min(started);
        self.max_ahead.fetch_max(ahead, Ordering::SeqCst);
        out.fill(index as f32);
        Ok(())
    }
}

#[test]
fn the_loader_decodes_a_bounded_number_of_batches_ahead() {
    let (workers, prefetch, batch) = (3, 2, 4);
    let consumed = Arc::new(AtomicUsize::new(0));
    let source = Arc::new(Counting {
        n: 100_000,
        started: AtomicUsize::new(0),
        consumed: consumed.clone(),
        max_ahead: AtomicUsize::new(0),
    });
    let order = Arc::new((0..source.n).rev().collect::<Vec<_>>());
    let mut loader = Loader::new(
        source.clone(),
        order,
        0,
        opts(batch, workers, prefetch, false),
    );
    for j in 0..30 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = loader.next().unwrap();
        assert_eq!(b.number, j);
        assert_eq!(b.images[0], (100_000 - 1 - j * batch) as f32);
        consumed.fetch_add(b.len, Ordering::SeqCst);
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    // Each worker holds at most `prefetch` batches in its queue and one it cannot hand over;
    // one more batch of slack for the moment between a receive and the count above.
    let bound = (workers * (prefetch + 1) + 1) * batch;
    let ahead = source.max_ahead.load(Ordering::SeqCst);
    assert!(
        ahead <= bound,
        "decoded {ahead} items ahead of the consumer, bound {bound}"
    );
    assert!(
        ahead >= workers * batch,
        "the workers did run ahead ({ahead})"
    );
    let started = source.started.load(Ordering::SeqCst);
    assert!(
        started <= 30 * batch + bound,
        "{started} items decoded for 30 batches"
    );
    drop(loader);
}

fn stl_value(n: usize, c: usize, y: usize, x: usize) -> u8 {
    ((n * 7 + c * 50 + y + 2 * x) % 256) as u8
}

/// STL-10 files of `n` images (planes stored column-major) and labels.
fn stl_images(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n * stl10::IMAGE_BYTES];
    for i in 0..n {
        for c in 0..3 {
            for y in 0..96 {
                for x in 0..96 {
                    bytes[i * stl10::IMAGE_BYTES + c * 9216 + x * 96 + y] = stl_value(i, c, y, x);
                }
            }
        }
    }
    bytes
}

#[test]
fn stl10_reads_items_on_demand_in_row_major_order() {
    let dir = scratch("stl10");
    let bin = dir.join("stl10_binary");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("train_X.bin"), stl_images(3)).unwrap();
    std::fs::write(bin.join("train_y.bin"), [1u8, 10, 3]).unwrap();
    std::fs::write(bin.join("test_X.bin"), stl_images(2)).unwrap();
    std::fs::write(bin.join("test_y.bin"), [2u8, 2]).unwrap();
    std::fs::write(bin.join("unlabeled_X.bin"), stl_images(4)).unwrap();

    // `dir` or `dir/stl10_binary` both work.
    let train = Stl10Source::open(&dir, Stl10Split::Train, Augment::default()).unwrap();
    assert_eq!(
        (train.len(), train.classes(), train.shape().len()),
        (3, 10, 27648)
    );
    assert_eq!(
        (0..3).map(|i| train.label(i)).collect::<Vec<_>>(),
        vec![0, 9, 2]
    );
    let mut out = vec![0.0; 27648];
    train.load(1, None, &mut out).unwrap();
    for (c, y, x) in [(0, 0, 0), (0, 0, 5), (1, 7, 3), (2, 95, 94)] {
        assert_eq!(
            out[c * 9216 + y * 96 + x],
            stl_value(1, c, y, x) as f32 / 255.0,
            "{c} {y} {x}"
        );
    }
    let unlabeled = Stl10Source::open(&bin, Stl10Split::Unlabeled, Augment::default()).unwrap();
    assert_eq!((unlabeled.len(), unlabeled.label(3)), (4, stl10::UNLABELED));
    // Through the loader with pad-crop / flip / noise augmentation: deterministic whatever the
    // workers and prefetch.
    let aug = Augment {
        crop_padding: 4,
        flip: true,
        noise_std: 0.5,
    };
    let s: Arc<dyn Source> = Arc::new(Stl10Source::open(&dir, Stl10Split::Unlabeled, aug).unwrap());
    let a = load_all(s.clone(), opts(2, 1, 1, true));
    let b = load_all(s, opts(2, 3, 2, true));
    assert_eq!(
        a.iter().map(|b| &b.images).collect::<Vec<_>>(),
        b.iter().map(|b| &b.images).collect::<Vec<_>>()
    );

    let report = check_dir(&dir).unwrap();
    assert_eq!(report.format, "stl10-binary");
    assert_eq!(
        report.splits[0],
        ("train".to_string(), 3, vec![1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    );
    assert_eq!(report.splits[1].1, 2);
    assert_eq!(report.splits[2], ("unlabeled".to_string(), 4, vec![]));

    // Bad files.
    std::fs::write(bin.join("test_X.bin"), &stl_images(2)[..27648 + 100]).unwrap();
    let e = Stl10Source::open(&dir, Stl10Split::Test, Augment::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("test_X.bin") && e.contains("27648"), "{e}");
    std::fs::write(bin.join("test_X.bin"), stl_images(2)).unwrap();
    std::fs::write(bin.join("test_y.bin"), [2u8, 2, 2]).unwrap();
    let e = Stl10Source::open(&dir, Stl10Split::Test, Augment::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("test_y.bin") && e.contains("3 labels for 2 images"),
        "{e}"
    );
    std::fs::write(bin.join("test_y.bin"), [2u8, 0]).unwrap();
    let e = Stl10Source::open(&dir, Stl10Split::Test, Augment::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("test_y.bin") && e.contains("label 0 of item 1"),
        "{e}"
    );
    std::fs::remove_file(bin.join("test_y.bin")).unwrap();
    let e = check_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("test_y.bin") && e.contains("missing"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fashion_mnist_reads_like_mnist_without_a_known_checksum() {
    // Fashion-MNIST ships under MNIST's file names; here raw (not gzipped) files.
    let dir = scratch("fashion");
    for (stem, n) in [("train", 3u32), ("t10k", 2)] {
        let mut images = vec![0u8, 0, 8, 3];
        for v in [n, 28, 28] {
            images.extend(v.to_be_bytes());
        }
        images.extend(vec![128u8; (n * 784) as usize]);
        std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), images).unwrap();
        let labels: Vec<u8> = (0..n as u8).map(|i| 9 - i).collect();
        std::fs::write(
            dir.join(format!("{stem}-labels-idx1-ubyte")),
            labels_file(n, &labels),
        )
        .unwrap();
    }
    let train = load_split(&dir, Split::Train).unwrap();
    assert_eq!((train.count, train.labels.clone()), (3, vec![9, 8, 7]));
    let report = check_dir(&dir).unwrap();
    assert_eq!(report.format, "mnist-idx");
    assert_eq!(report.splits[1].1, 2);
    assert!(
        report
            .checksums
            .iter()
            .all(|(_, v)| v == "no known checksum"),
        "{:?}",
        report.checksums
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Gaussian-noise augmentation (SoftHebb's `MNIST_100aug`): x + σ·z per pixel, z ~ N(0, 1).
/// On a ragged 3×33×65 item of seeded random pixels the added noise has mean 0 (within 5
/// standard errors) and s.d. σ (within 5%; the s.d. of a sample s.d. over 6,435 pixels is
/// 0.9%), is drawn again by the same seed, differs under another, and is added on top of a
/// flip. σ = 0 is the identity, and a negative or NaN σ is a recipe error naming
/// the field.
#[test]
fn gaussian_noise_augmentation_has_the_stated_spread() {
    use rand::{Rng, SeedableRng};
    let seed = crate::common::seed();
    eprintln!("seed {seed}");
    let shape = ItemShape {
        channels: 3,
        height: 33,
        width: 65,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clean: Vec<f32> = (0..shape.len()).map(|_| rng.random::<f32>()).collect();
    let sigma = 0.7f32;
    let noise = Augment {
        noise_std: sigma,
        ..Augment::default()
    };
    assert!(!noise.is_identity() && Augment::default().is_identity());
    let noisy = |aug: &Augment, s: u64| {
        let mut item = clean.clone();
        aug.apply(shape, &mut ChaCha8Rng::seed_from_u64(s), &mut item);
        item
    };
    let a = noisy(&noise, seed ^ 1);
    let diff: Vec<f64> = a.iter().zip(&clean).map(|(x, c)| (x - c) as f64).collect();
    let n = diff.len() as f64;
    let mean = diff.iter().sum::<f64>() / n;
    let sd = (diff.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let se = sigma as f64 / n.sqrt();
    assert!(
        mean.abs() < 5.0 * se,
        "seed {seed}: mean {mean}, 5 s.e. {}",
        5.0 * se
    );
    assert!(
        (sd / sigma as f64 - 1.0).abs() < 0.05,
        "seed {seed}: s.d. {sd} for σ = {sigma}"
    );
    assert_eq!(a, noisy(&noise, seed ^ 1), "seed {seed}: not reproducible");
    assert_ne!(
        a,
        noisy(&noise, seed ^ 2),
        "seed {seed}: two seeds drew the same noise"
    );
    // With a flip that fires, the noise is added to the flipped item: the flip alone under
    // the same draws, plus noise of the same spread.
    let flip = Augment {
        flip: true,
        ..Augment::default()
    };
    let both = Augment {
        flip: true,
        noise_std: sigma,
        ..Augment::default()
    };
    let mut draws = 0u64;
    let (f, fb) = loop {
        let s = seed.wrapping_add(100 + draws);
        let f = noisy(&flip, s);
        if f != clean {
            break (f, noisy(&both, s));
        }
        draws += 1;
        assert!(draws < 64, "seed {seed}: no flip in 64 draws");
    };
    let sd_fb = (f
        .iter()
        .zip(&fb)
        .map(|(x, y)| ((y - x) as f64).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(
        (sd_fb / sigma as f64 - 1.0).abs() < 0.05,
        "seed {seed}: noise over the flip has s.d. {sd_fb}"
    );
    // Recipe errors name the field.
    for bad in ["-1.0", "nan"] {
        let text = crate::train::TINY.replace(
            "dataset = \"mnist\"",
            &format!("dataset = \"mnist\"\naugment = {{ noise_std = {bad} }}"),
        );
        let e = hebb::nn::recipe::Recipe::parse(&text, std::path::Path::new("noise.toml"))
            .err()
            .unwrap_or_else(|| panic!("noise_std = {bad} was accepted"))
            .to_string();
        assert!(e.contains("data.augment.noise_std"), "{e}");
    }
}
