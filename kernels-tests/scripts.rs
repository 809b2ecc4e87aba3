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

/// Whether python3 with numpy and onnxruntime runs here. Where `HEBB_REQUIRE_ONNXRUNTIME` is set
/// (CI installs them and sets it), their absence fails the test instead of skipping it.
fn onnxruntime_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import numpy, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("HEBB_REQUIRE_ONNXRUNTIME").is_none(),
            "HEBB_REQUIRE_ONNXRUNTIME is set but python3 cannot import numpy and onnxruntime"
        );
        eprintln!("note: python3 with numpy and onnxruntime is missing; ONNX export not checked");
    }
    found
}

/// `hebb export --onnx` for three rule families whose forwards differ (SoftHebb's reflect-padded
/// conv, triangle, max pool and batch norms; Krotov's unit-norm patches, signed-power weights
/// and relu^4.5; Lagani's standardisation, ZCA, unit-norm filters and modified batch norm),
/// and for Lagani's model_6l fine-tuned with affine batch norms (γ, β; plain and modified):
/// each briefly trained network, exported and run in onnxruntime by
/// `benches/onnx_predictions.py`, gives `hebb eval --predictions`'s class on every test image
/// (ties aside) and its scores to 1e-3 of their scale.
#[test]
fn onnx_exports_reproduce_hebb_predictions_in_onnxruntime() {
    if !common::required_backends().iter().any(|b| b == "vulkan") || !onnxruntime_available() {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = common::scratch("scripts", "onnx");
    std::fs::create_dir_all(&out).unwrap();
    let mnist = root.join("datasets/mnist");
    let cifar = root.join("../shared/datasets/cifar-10/cifar-10-batches-bin");
    // Lagani's recipe without its 10,000-image validation split, so a few hundred images train.
    let lagani = out.join("lagani-swta-small.toml");
    let text = std::fs::read_to_string(root.join("recipes/lagani-swta-cifar10.toml")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("validation =") && !l.starts_with("select ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&lagani, text).unwrap();
    // model_6l fine-tuned end to end with affine batch norms (plain and modified), at a rate
    // that moves γ and β well away from 1 and 0 in a few steps.
    let finetuned = out.join("lagani-hpca-finetune-small.toml");
    let text =
        std::fs::read_to_string(root.join("recipes/lagani-hpca-cifar10-finetune.toml")).unwrap();
    assert!(text.contains("batch_norm_affine = true"));
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("validation =") && !l.starts_with("select ="))
        .map(|l| l.replace("kind = \"sgd\", lr = 1e-3,", "kind = \"sgd\", lr = 0.1,") + "\n")
        .collect();
    assert!(text.contains("lr = 0.1,"));
    std::fs::write(&finetuned, text).unwrap();
    let mut runs = vec![
        ("default".to_string(), mnist.clone(), "600", "2000"),
        ("krotov-mnist".to_string(), mnist, "600", "2000"),
    ];
    if cifar.join("test_batch.bin").exists() {
        runs.push((lagani.display().to_string(), cifar.clone(), "300", "1000"));
        runs.push((finetuned.display().to_string(), cifar, "256", "500"));
    } else {
        eprintln!(
            "note: {} is missing; the Lagani export is not checked",
            cifar.display()
        );
    }
    let hebb = |args: &[&str]| {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_hebb"))
            .args(["--backend", "vulkan"])
            .args(args)
            .output()
            .expect("hebb runs");
        assert!(
            run.status.success(),
            "hebb {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    };
    for (i, (recipe, data, train_limit, test_limit)) in runs.iter().enumerate() {
        let dir = out.join(format!("run{i}"));
        let (dir_s, data_s) = (dir.display().to_string(), data.display().to_string());
        let model = out.join(format!("run{i}.onnx")).display().to_string();
        let csv = out.join(format!("run{i}.csv")).display().to_string();
        hebb(&[
            "train",
            recipe,
            "--data",
            &data_s,
            "--limit",
            train_limit,
            "--hebbian-epochs",
            "1",
            "--epochs",
            "1",
            "--out",
            &dir_s,
            "--quiet",
        ]);
        hebb(&["eval", &dir_s, "--limit", test_limit, "--predictions", &csv]);
        hebb(&["export", &dir_s, "--onnx", &model]);
        let check = std::process::Command::new("python3")
            .arg(root.join("benches/onnx_predictions.py"))
            .args([&model, &data_s, &csv])
            .output()
            .expect("python3 runs");
        assert!(
            check.status.success(),
            "{recipe}: onnxruntime disagrees with hebb:\n{}\n{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        eprintln!("{}", String::from_utf8_lossy(&check.stdout).trim());
    }
    let _ = std::fs::remove_dir_all(&out);
}
