//! The prepared scripts under `benches/` run as they are, so they cannot rot between the rare
//! days a real GPU is at hand.

use std::path::PathBuf;

use crate::common;

/// `benches/gpu_check.sh --quick` on this machine's Vulkan adapter (lavapipe in CI): every step
/// the full check runs on a GPU (info, conformance, golden cases, the GEMM, rule, roofline and
/// training benches, a softhebb-cifar10 run where CIFAR-10 is at hand, krotov-mnist) on tiny
/// sizes, with its summary, JSON tables and archive.
#[test]
fn the_gpu_check_script_passes_in_quick_mode() {
    if !common::required_backends().iter().any(|b| b == "vulkan") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = common::scratch("scripts", "gpu-check");
    let cifar = root.join("../shared/datasets/cifar-10/cifar-10-batches-bin");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(root.join("benches/gpu_check.sh"))
        .args(["--quick", "--hebb", env!("CARGO_BIN_EXE_hebb"), "--out"])
        .arg(&out);
    if cifar.join("data_batch_1.bin").exists() {
        cmd.arg("--cifar").arg(&cifar);
    }
    let run = cmd
        .args(["--", "--backend", "vulkan"])
        .output()
        .expect("bash runs");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap_or_default();
    assert!(
        run.status.success() && summary.contains("\n0 step(s) failed."),
        "gpu_check.sh --quick failed:\n{summary}\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    for table in [
        "conformance.json",
        "cases.json",
        "bench-gemm.json",
        "bench-rules.json",
        "bench-roofline.json",
    ] {
        let text = std::fs::read(out.join(table)).unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{table} is not JSON: {e}"));
        // A table is an array of rows, or (roofline) an object holding one under "rows".
        let rows = json.as_array().or_else(|| json["rows"].as_array());
        assert!(rows.is_some_and(|r| !r.is_empty()), "{table}: {json}");
    }
    for step in ["info", "bench-train", "train-krotov-mnist"] {
        assert!(
            summary.contains(&format!("| {step} |")),
            "{step} missing:\n{summary}"
        );
    }
    assert!(out.join("krotov-mnist/metrics.json").exists());
    assert!(out.join("gpu_check.tar.gz").exists());
    let _ = std::fs::remove_dir_all(&out);
}
