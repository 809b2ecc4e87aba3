//! Crash safety of `hebb train`, through the binary as a user runs it: a small run killed with
//! SIGKILL at random points spread over the Hebbian and classifier stages (once also killed
//! again during its resume), or stopped with SIGTERM, resumes to the same weights and accuracy
//! as an uninterrupted run. Checkpoints are written after every batch (`--checkpoint-every 0`)
//! so any point is a resumable one.
//!
//! `HEBB_CRASH_POINTS` sets the number of SIGKILL points (CI: 3; `benches/crash_safety.sh`
//! runs 20); `HEBB_SEED` reproduces their placement.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common;
use crate::train::TINY;

const LIMIT: &str = "480";

/// Tensors compared bit for bit: the Hebbian weights and batch-norm statistics, the
/// classifier and its optimizer state.
const COMPARED: [&str; 4] = [
    "layers.0.weight",
    "layers.0.input_bn.running_mean",
    "classifier.weight",
    "classifier.state1",
];

fn hebb(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hebb"));
    cmd.args(["--backend", "vulkan"]).args(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

fn start(recipe: &Path, out: &Path) -> Child {
    hebb(&[
        "train",
        recipe.to_str().unwrap(),
        "--limit",
        LIMIT,
        // Eight classifier epochs, so that stage's batches take a fair share of the run.
        "--epochs",
        "8",
        "--checkpoint-every",
        "0",
        "--out",
        out.to_str().unwrap(),
    ])
    .spawn()
    .expect("hebb starts")
}

fn resume(out: &Path) -> Child {
    hebb(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--quiet",
        "--checkpoint-every",
        "0",
    ])
    .spawn()
    .expect("hebb starts")
}

/// Waits for `child`; panics with its stderr unless it exited with `code`.
fn finish(child: Child, code: i32, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the run's first checkpoint exists (it is written before the first batch).
fn wait_for_checkpoint(out: &Path, child: &mut Child) {
    let started = Instant::now();
    while !out.join(hebb::train::checkpoint::FILE).exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("hebb exited ({status}) before its first checkpoint");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where the checkpoint in `out` stands: (stage, epoch, batch).
fn position(out: &Path) -> (usize, usize, usize) {
    let ck = hebb::train::checkpoint::load(out).unwrap();
    let p: hebb::train::Position = serde_json::from_str(ck.meta("position").unwrap()).unwrap();
    (p.stage, p.epoch, p.batch)
}

fn accuracy(out: &Path) -> f64 {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    m["test_accuracy"].as_f64().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("crash", name)
}

#[test]
fn runs_killed_at_random_points_resume_to_the_uninterrupted_result() {
    if common::context("vulkan").is_none() {
        return;
    }
    let points: usize = std::env::var("HEBB_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed = common::seed();
    eprintln!("crash points: {points}, seed {seed} (HEBB_SEED reproduces them)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = scratch("runs");
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("tiny.toml");
    std::fs::write(&recipe, TINY).unwrap();

    // The uninterrupted run, timed from its first checkpoint to its end.
    let straight = dir.join("straight");
    let mut child = start(&recipe, &straight);
    wait_for_checkpoint(&straight, &mut child);
    let t0 = Instant::now();
    finish(child, 0, "the uninterrupted run");
    let span = t0.elapsed().as_secs_f64();
    let want = accuracy(&straight);

    let mut landed = Vec::new();
    for i in 0..points {
        let out = dir.join(format!("killed{i}"));
        // Spread the points over the run: point i falls in the i-th slice of its length.
        let at = span * (0.05 + 0.85 * (i as f64 + rng.random::<f64>()) / points as f64);
        let mut child = start(&recipe, &out);
        wait_for_checkpoint(&out, &mut child);
        std::thread::sleep(Duration::from_secs_f64(at));
        if child.try_wait().unwrap().is_some() {
            // This run outpaced the timed one and finished before the kill: nothing to resume.
            landed.push(vec![position(&out)]);
            common::assert_same_tensors(&straight, &out, &COMPARED);
            assert_eq!(accuracy(&out), want);
            continue;
        }
        child.kill().unwrap();
        let _ = child.wait();
        let mut stops = vec![position(&out)];
        if i == 0 {
            // Killed again while resuming.
            let mut again = resume(&out);
            std::thread::sleep(Duration::from_secs_f64(span * rng.random_range(0.1..0.5)));
            again.kill().unwrap();
            let _ = again.wait();
            stops.push(position(&out));
        }
        if !out.join("metrics.json").exists() {
            finish(resume(&out), 0, &format!("the resume of point {i}"));
        }
        common::assert_same_tensors(&straight, &out, &COMPARED);
        assert_eq!(accuracy(&out), want, "point {i} (killed at {stops:?})");
        landed.push(stops);
        let _ = std::fs::remove_dir_all(&out);
    }
    eprintln!("killed at (stage, epoch, batch): {landed:?}; all resumed to the same weights");

    // SIGTERM (timeout, systemd, Slurm, docker stop) stops with a checkpoint and exit 130.
    let out = dir.join("terminated");
    let mut child = start(&recipe, &out);
    wait_for_checkpoint(&out, &mut child);
    std::thread::sleep(Duration::from_secs_f64(span * 0.3));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    // A run that finished before the signal arrived exits 0; otherwise 130 after a checkpoint.
    assert!(matches!(code, Some(130) | Some(0)), "exit {code:?}");
    if code == Some(130) {
        finish(resume(&out), 0, "the resume after SIGTERM");
    }
    common::assert_same_tensors(&straight, &out, &COMPARED);
    assert_eq!(accuracy(&out), want);
    let _ = std::fs::remove_dir_all(&dir);
}
