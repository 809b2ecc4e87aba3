//! Shared helpers: which backends to test, seeds, and opening a context per backend.

use hebb::gpu::context::LimitsChoice;
use hebb::gpu::{AdapterChoice, GpuContext, PolicyKind};

/// Backends this run must test: `HEBB_TEST_BACKENDS` (comma list), else the platform's usual ones.
pub fn required_backends() -> Vec<String> {
    match std::env::var("HEBB_TEST_BACKENDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
        _ => {
            let default: &[&str] = if cfg!(target_os = "macos") {
                &["metal"]
            } else if cfg!(windows) {
                &["dx12", "vulkan"]
            } else {
                &["vulkan", "gl"]
            };
            default.iter().map(|s| s.to_string()).collect()
        }
    }
}

/// The context for `backend`, or None (with a note) when this run does not test that backend.
/// Panics with install advice when a required backend has no adapter.
pub fn context(backend: &str) -> Option<GpuContext> {
    context_with(backend, None, None)
}

/// `context` under a chosen device policy and device limits (None: the defaults).
pub fn context_with(
    backend: &str,
    policy: Option<PolicyKind>,
    limits: Option<LimitsChoice>,
) -> Option<GpuContext> {
    if !required_backends().iter().any(|b| b == backend) {
        eprintln!("note: backend {backend} is not in HEBB_TEST_BACKENDS for this run; not tested");
        return None;
    }
    let choice = AdapterChoice {
        policy,
        limits,
        ..AdapterChoice::backend(backend)
    };
    match GpuContext::new(&choice) {
        Ok(ctx) => Some(ctx),
        Err(e) => panic!(
            "backend {backend} is required for this run but could not be opened: {e}\n\
             (set HEBB_TEST_BACKENDS to the backends this machine has)"
        ),
    }
}

/// `HEBB_SEED` if set, else a fresh seed. Failures print it.
pub fn seed() -> u64 {
    std::env::var("HEBB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64)
        })
}

/// A fresh, empty scratch folder path for test `group`/`name` of this process.
pub fn scratch(group: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hebb-{group}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Training options for tests: the first `limit` training and test items, no progress bars,
/// output to `out`, and an optional stop after `stop_after` batches.
pub fn train_options(
    out: &std::path::Path,
    limit: usize,
    stop_after: Option<usize>,
) -> hebb::train::TrainOptions {
    hebb::train::TrainOptions {
        overrides: hebb::train::Overrides {
            limit: Some(limit),
            ..Default::default()
        },
        out: out.to_path_buf(),
        stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        checkpoint_seconds: hebb::train::CHECKPOINT_SECONDS,
        overwrite: false,
        stop_after_batches: stop_after,
        progress_bars: false,
        group: std::rc::Rc::new(hebb::dist::Solo),
    }
}

/// Asserts that the checkpoints in folders `a` and `b` hold bit-identical tensors `names`.
pub fn assert_same_tensors(a: &std::path::Path, b: &std::path::Path, names: &[&str]) {
    let ca = hebb::train::checkpoint::load(a).unwrap();
    let cb = hebb::train::checkpoint::load(b).unwrap();
    for name in names {
        assert!(
            ca.tensors[*name].1 == cb.tensors[*name].1,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// A finished run's classifier epochs, their validation accuracies, and the index of the first
/// best one: what best-validation selection must report.
pub fn classifier_selection(
    m: &hebb::train::Metrics,
) -> (Vec<&hebb::train::EpochRecord>, Vec<f64>, usize) {
    let epochs: Vec<_> = m
        .epochs
        .iter()
        .filter(|r| r.stage == "classifier")
        .collect();
    let vals: Vec<f64> = epochs
        .iter()
        .map(|r| r.validation_accuracy.unwrap())
        .collect();
    let best = vals
        .iter()
        .enumerate()
        .fold(0, |b, (i, &v)| if v > vals[b] { i } else { b });
    (epochs, vals, best)
}
