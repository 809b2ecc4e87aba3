//! The fuzz targets: every parser that reads a file `hebb` is given, fed arbitrary bytes.
//! Each returns normally for any input (an `Err` is the expected answer to garbage); a panic,
//! an abort, a hang or exhausted memory is a finding.
//!
//! Compiled twice: by `cargo fuzz` (the `fuzz_targets/` binaries, with coverage
//! instrumentation, `benches/fuzz.sh`) and by the test suite, which replays the saved corpus
//! (`kernels-tests/fuzz_corpus.rs`, in CI).

use std::io::Read;
use std::path::{Path, PathBuf};

/// The target names, each with a corpus folder `corpus/<name>/`.
pub const TARGETS: [&str; 8] = [
    "idx",
    "cifar",
    "stl10",
    "image",
    "recipe",
    "checkpoint",
    "case",
    "spiking_recipe",
];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "idx" => idx(data),
        "cifar" => cifar(data),
        "stl10" => stl10(data),
        "image" => image(data),
        "recipe" => recipe(data),
        "checkpoint" => checkpoint(data),
        "case" => case(data),
        "spiking_recipe" => spiking_recipe(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// IDX arrays: byte 0 picks the rank (1 to 4) and whether the rest is gzipped.
pub fn idx(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let rank = (mode & 3) as usize + 1;
    let path = Path::new("fuzz-idx-ubyte");
    let parsed = if mode & 4 != 0 {
        hebb::data::idx::parse_idx_u8(&mut flate2::read::GzDecoder::new(rest), path, rank)
    } else {
        hebb::data::idx::parse_idx_u8(&mut { rest }, path, rank)
    };
    if let Ok(a) = parsed {
        assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
    }
}

/// CIFAR-10 / CIFAR-100 batch files: byte 0 picks the variant.
pub fn cifar(data: &[u8]) {
    use hebb::data::cifar::{CifarSplit, Variant, parse_batch};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let variant = if mode & 1 == 0 {
        Variant::Cifar10
    } else {
        Variant::Cifar100
    };
    let mut split = CifarSplit::default();
    if parse_batch(rest, Path::new("fuzz.bin"), variant, &mut split).is_ok() {
        split.label_counts(variant.classes());
    }
}

/// A scratch folder of this process for targets whose parser reads files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hebb-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// STL-10 binary files: bytes 0–1 give the label file's length n, the next n bytes are the
/// labels, the rest the images.
pub fn stl10(data: &[u8]) {
    use hebb::data::source::Source;
    use hebb::data::stl10::{Stl10Source, Stl10Split};
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (labels, images) = data[2..].split_at(n);
    let dir = scratch("stl10");
    let _ = std::fs::write(dir.join("train_y.bin"), labels);
    let _ = std::fs::write(dir.join("train_X.bin"), images);
    if let Ok(s) = Stl10Source::open(&dir, Stl10Split::Train, Default::default()) {
        let mut out = vec![0f32; s.shape().len()];
        for i in [0, s.len() - 1] {
            let _ = s.load(i, None, &mut out);
            s.label(i);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// JPEG and PNG files as an image folder's reader decodes them.
pub fn image(data: &[u8]) {
    if let Ok(img) = hebb::data::folder::decode_rgb_bytes(data, Path::new("fuzz")) {
        assert!(img.width() > 0 && img.height() > 0);
    }
}

/// Training recipes (TOML).
pub fn recipe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = hebb::nn::recipe::Recipe::parse(text, Path::new("fuzz.toml")) {
        let _ = r.validate();
    }
}

/// Checkpoints (safetensors), with the metadata a resume reads.
pub fn checkpoint(data: &[u8]) {
    if let Ok(ck) = hebb::train::checkpoint::parse(data, Path::new("fuzz.safetensors")) {
        let _ = hebb::train::ResumeState::from_checkpoint(&ck, None);
        let _ = (ck.zca(), ck.standardize());
    }
}

/// hebb-case/1 JSON files (the golden cases).
pub fn case(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hebb::rules::case::parse_case(text, Path::new("fuzz.json"));
}

/// Spiking recipes (TOML).
pub fn spiking_recipe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hebb::spiking::recipe::SpikingRecipe::parse(text, "fuzz.toml");
}

/// Every file of a corpus folder, sorted by name.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// Reads a corpus file whole.
pub fn read(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
}
