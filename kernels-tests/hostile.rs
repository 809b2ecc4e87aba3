//! Hostile input: image headers and decompression bombs, IDX sizes that wrap, recipes and
//! flags with impossible values, run folders that already hold a run, malformed checkpoint
//! metadata, NaN checkpoints and unreadable datasets. Each must end in an error naming the
//! file, field or flag, never a panic, an abort or exhausted memory, and never lost work.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hebb::data::folder::decode_rgb_bytes;
use hebb::data::idx::read_idx_u8;
use hebb::gpu::GpuContext;
use hebb::nn::recipe::Recipe;
use hebb::spiking::recipe::SpikingRecipe;
use hebb::train::{self, Outcome, checkpoint};

use crate::common;
use crate::train::TINY;

fn scratch(name: &str) -> PathBuf {
    common::scratch("hostile", name)
}

fn vulkan() -> Option<GpuContext> {
    common::context("vulkan")
}

fn tiny() -> Recipe {
    Recipe::parse(TINY, Path::new("tiny.toml")).unwrap()
}

/// CRC-32 (IEEE) of `bytes`, as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid 4 x 4 PNG whose IHDR then claims `width` x `height` (with a correct CRC, so only
/// the size is hostile).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(4, 4, |x, y| image::Rgb([x as u8 * 60, y as u8 * 60, 9]));
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4), ... CRC after 13 bytes.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn an_image_header_claiming_huge_dimensions_is_an_unreadable_image() {
    // The size is refused before a pixel is allocated: 100000² would be 30 GB, 16000² is the
    // 1 GB bomb of a 249 KB file.
    for (w, h) in [(100_000, 100_000), (16_000, 16_000), (1, 70_000_000)] {
        let started = Instant::now();
        let e = decode_rgb_bytes(&png_claiming(w, h), Path::new("bomb.png"))
            .err()
            .unwrap_or_else(|| panic!("a {w}x{h} header decoded"))
            .to_string();
        assert!(e.contains("bomb.png"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{w}x{h} took long"
        );
    }
    // The untouched image still decodes: the limits refuse sizes, not PNGs.
    let ok = decode_rgb_bytes(&png_claiming(4, 4), Path::new("ok.png")).unwrap();
    assert_eq!(ok.dimensions(), (4, 4));
}

#[test]
fn a_jpeg_header_patched_to_65000_squared_is_refused_at_once() {
    let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 15, y as u8 * 15, 0]));
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    // The baseline frame header FF C0: length (2), precision (1), height (2), width (2).
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline JPEG");
    bytes[sof + 5..sof + 7].copy_from_slice(&65000u16.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&65000u16.to_be_bytes());
    let started = Instant::now();
    let e = decode_rgb_bytes(&bytes, Path::new("patched.jpg"))
        .expect_err("a 65000² JPEG decoded")
        .to_string();
    assert!(e.contains("patched.jpg") && e.contains("65000"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// An image folder with one hostile PNG among good ones: `data check` counts and names it,
/// and nothing aborts.
#[test]
fn a_folder_with_a_hostile_png_is_checked_and_the_image_named() {
    let root = scratch("bomb-folder");
    for class in ["a", "b"] {
        let dir = root.join("train").join(class);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(root.join("val").join(class)).unwrap();
        for i in 0..3 {
            std::fs::write(dir.join(format!("{i}.png")), png_claiming(4, 4)).unwrap();
            std::fs::write(
                root.join("val").join(class).join(format!("{i}.png")),
                png_claiming(4, 4),
            )
            .unwrap();
        }
    }
    std::fs::write(
        root.join("train/b/bomb.png"),
        png_claiming(100_000, 100_000),
    )
    .unwrap();
    let report = hebb::data::check_dir(&root).unwrap();
    assert_eq!(report.unreadable, 1);
    let first = report.first_unreadable.unwrap();
    assert!(
        first.contains("bomb.png") && first.contains("100000"),
        "{first}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut h = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        h.extend(d.to_be_bytes());
    }
    h
}

fn write_gz(path: &Path, parts: &[&[u8]]) {
    let f = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    for p in parts {
        gz.write_all(p).unwrap();
    }
    gz.finish().unwrap();
}

#[test]
fn an_idx_gzip_bomb_is_refused_without_inflating_it() {
    let dir = scratch("idx-bomb");
    std::fs::create_dir_all(&dir).unwrap();
    // A header for 2 images of 28 x 28, then 256 MB of zeros (a 250 KB file): reading stops
    // one byte past the declared size.
    let path = dir.join("train-images-idx3-ubyte.gz");
    let zeros = vec![0u8; 1 << 20];
    {
        let f = std::fs::File::create(&path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        gz.write_all(&idx_header(&[2, 28, 28])).unwrap();
        for _ in 0..256 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap();
    }
    let started = Instant::now();
    let e = read_idx_u8(&path, 3).err().unwrap().to_string();
    assert!(e.contains("trailing data"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the bomb was inflated ({:?})",
        started.elapsed()
    );
    // A header declaring more than the limit is refused before anything is allocated.
    let huge = dir.join("huge-idx3-ubyte.gz");
    write_gz(&huge, &[&idx_header(&[60_000, 100_000, 100_000])]);
    let e = read_idx_u8(&huge, 3).err().unwrap().to_string();
    assert!(
        e.contains("huge-idx3-ubyte.gz") && e.contains("60000"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// MNIST files whose dimensions multiply past 2^64 (a wrapped size of 0 bytes once passed).
fn wrapping_mnist(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for split in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            idx_header(&[4, 1 << 31, 1 << 31]),
        )
        .unwrap();
        let mut labels = idx_header(&[4]);
        labels.extend([0u8, 1, 2, 3]);
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
}

#[test]
fn idx_dimensions_that_wrap_are_refused_by_check_train_and_spiking() {
    let dir = scratch("idx-wrap");
    wrapping_mnist(&dir);
    let e = hebb::data::check_dir(&dir).err().unwrap().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("2^64"),
        "{e}"
    );
    let Some(ctx) = vulkan() else { return };
    let out = scratch("idx-wrap-run");
    let mut opts = common::train_options(&out, 4, None);
    opts.overrides.data = Some(dir.clone());
    let e = train::train(&ctx, &tiny(), TINY, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    let (recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-bio").unwrap();
    let sopts = hebb::spiking::task::SpikingOptions {
        data: Some(dir.clone()),
        out: scratch("idx-wrap-spiking"),
        limit: Some(4),
        culture: None,
        quiet: true,
    };
    let e = hebb::spiking::task::run(&ctx, &recipe, &sopts)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn impossible_recipe_values_are_errors_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("lr = 0.08", "lr = nan", "params.optimizer.lr"),
        ("t_invert = 1.0", "t_invert = nan", "params.t_invert"),
        ("t_invert = 1.0", "t_invert = inf", "params.t_invert"),
        ("lr = 0.08", "lr = -0.08", "optimizer.lr"),
        ("t_invert = 1.0", "t_invert = -1.0", "t_invert"),
        ("power = 0.7", "power = -0.7", "activation.power"),
        ("radius = 25.0", "radius = 0.0", "init.radius"),
        ("epochs = 1\n", "epochs = 0\n", "hebbian.epochs"),
        ("epochs = 2\n", "epochs = 0\n", "classifier.epochs"),
        ("lr = 2e-3", "lr = -2e-3", "classifier.optimizer.lr"),
        ("name = \"tiny\"", "name = \"../../escaped\"", "name"),
        ("name = \"tiny\"", "name = \"/etc\"", "name"),
        ("batch = 16", "batch = 100000000", "hebbian.batch"),
        (
            "dataset = \"mnist\"",
            "dataset = \"mnist\"\nworkers = 1000000",
            "data.workers",
        ),
    ];
    for (from, to, field) in cases {
        assert!(TINY.contains(from), "{from:?} is not in the tiny recipe");
        let text = TINY.replacen(from, to, 1);
        let e = match Recipe::parse(&text, Path::new("bad.toml")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{to:?} was accepted"),
        };
        assert!(
            e.contains("bad.toml") && e.contains(field),
            "{to:?}: the error does not name {field}: {e}"
        );
    }
}

#[test]
fn a_binary_recipe_is_refused_without_echoing_it() {
    let dir = scratch("binary-recipe");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("binary.toml");
    let mut bytes = b"name = \"x\"\n".to_vec();
    bytes.extend([0u8, 1, 2, 27, b'[', b'2', b'J', 0x9b]);
    std::fs::write(&path, &bytes).unwrap();
    for e in [
        Recipe::load(&path).err().unwrap().to_string(),
        hebb::train::recipes::resolve(Some(path.to_str().unwrap()))
            .err()
            .unwrap()
            .to_string(),
        SpikingRecipe::resolve(path.to_str().unwrap())
            .err()
            .unwrap()
            .to_string(),
    ] {
        assert!(e.contains("not a TOML text file"), "{e}");
        assert!(
            !e.chars().any(|c| c.is_control() && c != '\n'),
            "control characters reach the terminal: {e:?}"
        );
    }
    // A text file with an escape sequence inside a string is quoted escaped.
    let e = Recipe::parse("name = 3\u{1b}[2J", Path::new("esc.toml"))
        .err()
        .unwrap()
        .to_string();
    assert!(!e.contains('\u{1b}'), "{e:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spiking_sizes_are_validated_before_anything_is_allocated() {
    let (base, _) = SpikingRecipe::resolve("spiking-mnist01-240n-bio").unwrap();
    let text = toml::to_string(&base).unwrap();
    for (key, value) in [("eval_batch", "100000000"), ("duration_ms", "4000000000")] {
        let mut doc: toml::Table = toml::from_str(&text).unwrap();
        let task = doc
            .entry("task")
            .or_insert(toml::Value::Table(Default::default()));
        task.as_table_mut()
            .unwrap()
            .insert(key.into(), toml::Value::Integer(value.parse().unwrap()));
        let e = SpikingRecipe::parse(&toml::to_string(&doc).unwrap(), "huge.toml")
            .err()
            .unwrap_or_else(|| panic!("task.{key} = {value} was accepted"))
            .to_string();
        assert!(e.contains(&format!("task.{key}")), "{e}");
    }
}

#[test]
fn a_spiking_validation_range_past_the_dataset_is_refused() {
    let Some(ctx) = vulkan() else { return };
    let (mut recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-bio").unwrap();
    recipe.task.validation = [50_000, 70_000];
    let opts = hebb::spiking::task::SpikingOptions {
        data: None,
        out: scratch("spiking-range"),
        limit: Some(4),
        culture: None,
        quiet: true,
    };
    let e = hebb::spiking::task::run(&ctx, &recipe, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("task.validation") && e.contains("60000"), "{e}");
}

#[test]
fn label_fraction_flags_out_of_range_are_refused_before_any_work() {
    let Some(ctx) = vulkan() else { return };
    for f in [0.0, 1.5, f64::INFINITY, f64::NAN, -0.5] {
        let out = scratch("fraction");
        let mut opts = common::train_options(&out, 64, None);
        opts.overrides.label_fraction = Some(f);
        let e = train::train(&ctx, &tiny(), TINY, &opts)
            .err()
            .unwrap_or_else(|| panic!("--label-fraction {f} was accepted"))
            .to_string();
        assert!(e.contains("--label-fraction"), "{e}");
        assert!(!out.exists(), "a refused run created {}", out.display());
    }
    let out = scratch("zero-epochs");
    let mut opts = common::train_options(&out, 64, None);
    opts.overrides.epochs = Some(0);
    let e = train::train(&ctx, &tiny(), TINY, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--epochs"), "{e}");
}

fn finished(ctx: &GpuContext, out: &Path) -> Box<train::Metrics> {
    match train::train(ctx, &tiny(), TINY, &common::train_options(out, 96, None)).unwrap() {
        Outcome::Finished(m) => m,
        Outcome::Interrupted(_) => panic!("the run stopped"),
    }
}

#[test]
fn a_new_run_never_silently_replaces_a_finished_one() {
    let Some(ctx) = vulkan() else { return };
    let out = scratch("replace");
    finished(&ctx, &out);
    let before = std::fs::read(out.join(checkpoint::FILE)).unwrap();
    let e = train::train(&ctx, &tiny(), TINY, &common::train_options(&out, 96, None))
        .err()
        .expect("a second run replaced the first")
        .to_string();
    assert!(e.contains("--resume") && e.contains("--overwrite"), "{e}");
    assert_eq!(std::fs::read(out.join(checkpoint::FILE)).unwrap(), before);
    // Resuming a finished run says so instead of "finishing" it again.
    let e = train::resume(&ctx, &out, &common::train_options(&out, 96, None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("finished"), "{e}");
    // --overwrite keeps the old run until the new one has a checkpoint: a run that fails
    // before that (here, a missing dataset) loses nothing.
    let mut failing = common::train_options(&out, 96, None);
    failing.overwrite = true;
    failing.overrides.data = Some("/nonexistent/mnist".into());
    assert!(train::train(&ctx, &tiny(), TINY, &failing).is_err());
    assert_eq!(std::fs::read(out.join(checkpoint::FILE)).unwrap(), before);
    assert!(out.join("metrics.json").exists());
    // A resume into another folder that holds a run is refused like a new run there.
    let other = scratch("replace-other");
    finished(&ctx, &other);
    let e = train::resume(&ctx, &out, &common::train_options(&other, 96, None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--overwrite"), "{e}");
    let _ = std::fs::remove_dir_all(&other);
    // --overwrite removes the old run's files at the new run's first checkpoint: no stale
    // metrics beside a new checkpoint.
    std::fs::write(out.join("metrics.json"), b"stale").unwrap();
    let mut opts = common::train_options(&out, 96, Some(3));
    opts.overwrite = true;
    assert!(matches!(
        train::train(&ctx, &tiny(), TINY, &opts).unwrap(),
        Outcome::Interrupted(_)
    ));
    assert!(!out.join("metrics.json").exists());
    assert!(!out.join("filters.png").exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_output_path_that_cannot_be_written_is_refused_before_any_work() {
    let Some(ctx) = vulkan() else { return };
    let dir = scratch("out-file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for out in [file.clone(), file.join("below")] {
        let started = Instant::now();
        let e = train::train(&ctx, &tiny(), TINY, &common::train_options(&out, 96, None))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a-file"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "found late");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites the checkpoint in `dir` after `edit` has changed its tensors or metadata, as a
/// hostile or damaged file would arrive (no validation on the way).
fn rewrite_checkpoint(dir: &Path, edit: impl FnOnce(&mut checkpoint::Loaded)) {
    let mut ck = checkpoint::load(dir).unwrap();
    edit(&mut ck);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = ck
        .tensors
        .iter()
        .map(|(n, (s, d))| (n.clone(), s.clone(), bytemuck::cast_slice(d).to_vec()))
        .collect();
    let views = bytes.iter().map(|(n, s, b)| {
        (
            n.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
        )
    });
    let serialized = safetensors::serialize(views, Some(ck.metadata)).unwrap();
    std::fs::write(dir.join(checkpoint::FILE), serialized).unwrap();
}

/// Rewrites the checkpoint in `dir` with metadata `key` set to `value`.
fn set_metadata(dir: &Path, key: &str, value: &str) {
    rewrite_checkpoint(dir, |ck| {
        ck.metadata.insert(key.into(), value.into());
    });
}

#[test]
fn malformed_checkpoint_metadata_is_an_error_naming_the_key() {
    let Some(ctx) = vulkan() else { return };
    let out = scratch("metadata");
    let stopped = train::train(
        &ctx,
        &tiny(),
        TINY,
        &common::train_options(&out, 96, Some(2)),
    );
    assert!(matches!(stopped.unwrap(), Outcome::Interrupted(_)));
    let good = std::fs::read(out.join(checkpoint::FILE)).unwrap();
    let cases = [
        ("position", "not json", "position"),
        (
            "position",
            r#"{"stage": 99, "epoch": 0, "batch": 0, "running": [0, 0, 0, 0]}"#,
            "position",
        ),
        (
            "position",
            r#"{"stage": 0, "epoch": 7, "batch": 0, "running": [0, 0, 0, 0]}"#,
            "position",
        ),
        ("overrides", "{", "overrides"),
        ("overrides", r#"{"limit": 0}"#, "--limit"),
        ("history", "[1, 2]", "history"),
        ("rule_steps", "[1, 2, 3]", "rule_steps"),
        ("classifier_steps", "-4", "classifier_steps"),
    ];
    for (key, value, named) in cases {
        std::fs::write(out.join(checkpoint::FILE), &good).unwrap();
        set_metadata(&out, key, value);
        let written = std::fs::read(out.join(checkpoint::FILE)).unwrap();
        let e = train::resume(&ctx, &out, &common::train_options(&out, 96, None))
            .err()
            .unwrap_or_else(|| panic!("metadata {key} = {value:?} was accepted"))
            .to_string();
        assert!(e.contains(named), "{key} = {value:?}: {e}");
        assert_eq!(
            std::fs::read(out.join(checkpoint::FILE)).unwrap(),
            written,
            "a refused resume rewrote the checkpoint"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn resume_stores_an_absolute_data_path_and_takes_it_again() {
    let Some(ctx) = vulkan() else { return };
    let out = scratch("data-path");
    let mut opts = common::train_options(&out, 96, Some(2));
    opts.overrides.data = Some(hebb::train::data::bundled_mnist());
    assert!(matches!(
        train::train(&ctx, &tiny(), TINY, &opts).unwrap(),
        Outcome::Interrupted(_)
    ));
    let ck = checkpoint::load(&out).unwrap();
    let stored: train::Overrides = serde_json::from_str(ck.meta("overrides").unwrap()).unwrap();
    assert!(
        stored.data.as_deref().is_some_and(Path::is_absolute),
        "{stored:?}"
    );
    // A moved dataset: the stored folder is gone, --data names the new one.
    set_metadata(
        &out,
        "overrides",
        r#"{"data": "/nonexistent/mnist", "limit": 96}"#,
    );
    let e = train::resume(&ctx, &out, &common::train_options(&out, 96, None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/mnist"), "{e}");
    let mut again = common::train_options(&out, 96, None);
    again.overrides = train::Overrides {
        data: Some(hebb::train::data::bundled_mnist()),
        ..Default::default()
    };
    let Outcome::Finished(m) = train::resume(&ctx, &out, &again).unwrap() else {
        panic!("the resumed run stopped")
    };
    assert_eq!(m.test_items, 96, "the stored --limit still holds");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_checkpoint_with_nan_weights_is_refused_by_eval() {
    let Some(ctx) = vulkan() else { return };
    let out = scratch("nan-eval");
    finished(&ctx, &out);
    rewrite_checkpoint(&out, |ck| {
        ck.tensors.get_mut("classifier.weight").unwrap().1[5] = f32::NAN;
    });
    let e = train::evaluate_checkpoint(&ctx, &out, None, Some(96), false)
        .err()
        .expect("a NaN checkpoint was evaluated")
        .to_string();
    assert!(e.contains("classifier.weight") && e.contains("NaN"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_dataset_whose_every_image_is_corrupt_is_an_error() {
    let Some(ctx) = vulkan() else { return };
    let root = scratch("all-corrupt");
    for split in ["train", "val"] {
        for class in ["a", "b"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..3 {
                std::fs::write(dir.join(format!("{i}.png")), b"\x89PNG garbage").unwrap();
            }
        }
    }
    let text = TINY.replace(
        "dataset = \"mnist\"",
        "dataset = \"folder\"\nimage_size = 16\nresize = 16",
    );
    let recipe = Recipe::parse(&text, Path::new("corrupt.toml")).unwrap();
    let out = scratch("all-corrupt-run");
    let mut opts = common::train_options(&out, 96, None);
    opts.overrides.data = Some(root.clone());
    let e = train::train(&ctx, &recipe, &text, &opts)
        .err()
        .expect("a dataset of corrupt images trained")
        .to_string();
    assert!(e.contains("could be read") && e.contains(".png"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn train_and_test_images_of_different_sizes_are_refused_at_open() {
    let Some(ctx) = vulkan() else { return };
    let dir = scratch("sizes");
    std::fs::create_dir_all(&dir).unwrap();
    for (split, side) in [("train", 28u32), ("t10k", 30)] {
        let mut images = idx_header(&[10, side, side]);
        images.extend((0..10 * side * side).map(|i| (i * 7 % 251) as u8));
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
        let mut labels = idx_header(&[10]);
        labels.extend(0u8..10);
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
    let out = scratch("sizes-run");
    let mut opts = common::train_options(&out, 10, None);
    opts.overrides.data = Some(dir.clone());
    let started = Instant::now();
    let e = train::train(&ctx, &tiny(), TINY, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("1x28x28") && e.contains("1x30x30"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "found late");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_huge_zca_sample_count_is_clamped_to_the_data_not_allocated() {
    let recipe = tiny();
    let splits = hebb::train::data::open(&recipe, &hebb::train::data::bundled_mnist()).unwrap();
    let geometry = hebb::nn::zca::ZcaGeometry::new(splits.train.shape()).unwrap();
    let items: Vec<usize> = (0..10).collect();
    let rows = hebb::train::data::zca_vectors(&*splits.train, &items, 100_000_000, None, &geometry)
        .unwrap();
    assert_eq!(rows.len(), 10 * geometry.dim());
}

#[test]
fn temporaries_left_by_a_crash_are_removed_when_a_run_starts() {
    let Some(ctx) = vulkan() else { return };
    let out = scratch("temporaries");
    std::fs::create_dir_all(&out).unwrap();
    // A pid far above Linux's pid_max: no such process runs.
    let stale = out.join("checkpoint.tmp.4999999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let opts = common::train_options(&out, 96, Some(1));
    assert!(matches!(
        train::train(&ctx, &tiny(), TINY, &opts).unwrap(),
        Outcome::Interrupted(_)
    ));
    assert!(!stale.exists(), "the stale temporary is still there");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp.") || n.starts_with(".hebb-write-check"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&out);
}

/// `hebb` as a user runs it: stderr of a failing command, which must exit 1.
fn hebb_fails(args: &[&str], cwd: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hebb"))
        .args(["--backend", "vulkan"])
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_io_error_is_printed_once() {
    if vulkan().is_none() {
        return;
    }
    let dir = scratch("printed-once");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a-file"), b"x").unwrap();
    let err = hebb_fails(&["train", "--out", "a-file/below", "--limit", "8"], &dir);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert_eq!(
        line.matches("Not a directory").count(),
        1,
        "the cause is repeated: {line}"
    );
    let err = hebb_fails(&["eval", "no-such-run"], &dir);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert_eq!(line.matches("No such file").count(), 1, "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write into a folder that does not exist names the file the user gave, not the
/// temporary it is written through, and leaves nothing behind.
#[test]
fn a_failed_write_names_the_target_not_its_temporary() {
    let dir = scratch("failed-write");
    std::fs::create_dir_all(&dir).unwrap();
    let target = "no-such-folder/culture.safetensors";
    let args = ["spiking", "spiking-mnist01-240n-bio", "--seed", "0"];
    let err = hebb_fails(&[&args[..], &["--export-culture", target]].concat(), &dir);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    let _ = std::fs::remove_dir_all(&dir);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(line.contains(target), "{line}");
    assert!(!line.contains(".tmp."), "names the temporary: {line}");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn hebb_spiking_finds_the_bundled_mnist_from_any_folder() {
    if vulkan().is_none() {
        return;
    }
    let dir = scratch("spiking-cwd");
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hebb"))
        .args(["--backend", "vulkan", "spiking", "spiking-mnist01-240n-bio"])
        .args(["--limit", "2", "--quiet", "--out", "run"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("run/metrics.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
