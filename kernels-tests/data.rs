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
