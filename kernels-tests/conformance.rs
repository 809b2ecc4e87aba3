//! Every conformance family against its float64 references, once per backend.

use hebb::conformance::{FAMILIES, Row, print_table};
use hebb::gpu::context::LimitsChoice;
use hebb::gpu::{GpuContext, PolicyKind};

use crate::common;

fn assert_all_ok(ctx: &GpuContext, family: &str, seed: u64, rows: Vec<Row>) {
    assert!(!rows.is_empty(), "{family}: no checks ran");
    let failed: Vec<Row> = rows.iter().filter(|r| !r.ok).cloned().collect();
    if !failed.is_empty() {
        print_table(&failed);
        panic!(
            "{family} on {}: {} of {} checks failed (HEBB_SEED={seed} reproduces)",
            ctx.adapter_name(),
            failed.len(),
            rows.len()
        );
    }
    eprintln!(
        "{family} on {}: {} checks passed (seed {seed})",
        ctx.adapter_name(),
        rows.len()
    );
}

/// Every family of the registry the CLI runs (`hebb::conformance::FAMILIES`), so `cargo test`
/// checks exactly what `hebb conformance` checks, on `backend` under a device policy and
/// device limits (None: the adapter's own).
fn run_backend_with(backend: &str, policy: Option<PolicyKind>, limits: Option<LimitsChoice>) {
    let Some(ctx) = common::context_with(backend, policy, limits) else {
        return;
    };
    let seed = common::seed();
    eprintln!("{} ({})", ctx.adapter_name(), ctx.settings());
    for family in FAMILIES {
        assert_all_ok(&ctx, family.name, seed, family.check(&ctx, seed));
    }
    if !ctx.has(wgpu::Features::SHADER_F16) {
        eprintln!(
            "note: {} has no SHADER_F16; only the packed f16 cast path was tested on it",
            ctx.adapter_name()
        );
    }
}

fn run_backend(backend: &str) {
    run_backend_with(backend, None, None);
}

/// The policy kind this adapter does not get by default: the GPU policy on lavapipe, the CPU
/// policy on a GPU. Running the suite under it too executes every device-dependent variant
/// (tiles, fused projection, subgroup competitions, split-K sizing) on whatever machine runs
/// the tests.
fn other_policy(backend: &str) -> Option<PolicyKind> {
    let ctx = common::context(backend)?;
    Some(match ctx.policy.kind {
        PolicyKind::Cpu => PolicyKind::Gpu,
        PolicyKind::Gpu => PolicyKind::Cpu,
    })
}

fn run_backend_under_the_other_policy(backend: &str) {
    if let Some(policy) = other_policy(backend) {
        run_backend_with(backend, Some(policy), None);
    }
}

#[test]
fn conformance_vulkan() {
    run_backend("vulkan");
}

#[test]
fn conformance_gl() {
    run_backend("gl");
}

#[test]
fn conformance_metal() {
    run_backend("metal");
}

#[test]
fn conformance_dx12() {
    run_backend("dx12");
}

#[test]
fn conformance_vulkan_under_the_other_policy() {
    run_backend_under_the_other_policy("vulkan");
}

#[test]
fn conformance_gl_under_the_other_policy() {
    run_backend_under_the_other_policy("gl");
}

#[test]
fn conformance_metal_under_the_other_policy() {
    run_backend_under_the_other_policy("metal");
}

#[test]
fn conformance_dx12_under_the_other_policy() {
    run_backend_under_the_other_policy("dx12");
}

/// WebGPU's default limits (16 KiB of workgroup memory, 256 invocations per workgroup,
/// 128 MiB bindings), which browsers and many Metal and mobile devices give: every kernel fits
/// them or, for explicitly requested tiles past them, is refused with an error naming the
/// limit. Under both policies, so the GPU policy's larger plans meet the smaller limits too.
#[test]
fn conformance_vulkan_under_webgpu_limits() {
    run_backend_with("vulkan", Some(PolicyKind::Gpu), Some(LimitsChoice::WebGpu));
    run_backend_with("vulkan", Some(PolicyKind::Cpu), Some(LimitsChoice::WebGpu));
}

#[test]
fn conformance_gl_under_webgpu_limits() {
    run_backend_with("gl", None, Some(LimitsChoice::WebGpu));
}

/// The subgroup kernels at lavapipe's other subgroup width: 4 lanes (a 128-bit native vector,
/// `LP_NATIVE_VECTOR_WIDTH=128`) besides the default 8 (256-bit) that the tests above run.
/// Mesa reads the width once per process, so this runs the `hebb` binary with it set, under
/// both policies. At 4 lanes the subgroup GEMM (which needs 8) falls back to the tiled kernel
/// and the subgroup competition runs 4 lanes per row. Skipped where Vulkan is not lavapipe.
#[test]
fn subgroup_kernels_at_lavapipes_four_lane_width() {
    if !common::required_backends().iter().any(|b| b == "vulkan") {
        return;
    }
    let hebb = |args: &[&str], policy: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hebb"))
            .args(["--backend", "vulkan"])
            .args(args)
            .env("LP_NATIVE_VECTOR_WIDTH", "128")
            .env("HEBB_POLICY", policy)
            .output()
            .expect("the hebb binary runs")
    };
    let info = String::from_utf8_lossy(&hebb(&["info"], "cpu").stdout).to_string();
    if !info.contains("llvmpipe") || !info.contains("subgroups:    4..4") {
        eprintln!("note: Vulkan is not lavapipe at 4 lanes here; not tested:\n{info}");
        return;
    }
    let seed = common::seed().to_string();
    for policy in ["cpu", "gpu"] {
        let out = hebb(
            &[
                "conformance",
                "--only",
                "gemm,gemm_update,competition,projection_competition,rules",
                "--seed",
                &seed,
            ],
            policy,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(" 0 failed"),
            "{policy} policy at 4 lanes (HEBB_SEED={seed} reproduces):\n{}\n{}",
            text.lines()
                .filter(|l| l.contains("FAIL") || l.starts_with("conformance:"))
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `hebb conformance --repeat N`: one row per check over N seeds, each the check's worst run
/// (the largest share of its tolerance) with that run's seed, and `--seed` with that seed
/// reproduces the run's error exactly. Every row of a single run carries the run's seed.
#[test]
fn repeated_conformance_reports_each_checks_worst_run_with_a_seed_that_reproduces_it() {
    if !common::required_backends().iter().any(|b| b == "vulkan") {
        return;
    }
    let dir = common::scratch("conformance", "repeat");
    std::fs::create_dir_all(&dir).unwrap();
    let first = common::seed();
    let families = "classifier,elementwise";
    let conformance = |seed: u64, extra: &[&str], json: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hebb"))
            .args(["--backend", "vulkan", "conformance", "--only", families])
            .args(["--seed", &seed.to_string()])
            .args(extra)
            .arg("--json")
            .arg(json)
            .output()
            .expect("the hebb binary runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "hebb conformance {extra:?} (HEBB_SEED={first} reproduces):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        (text, rows)
    };
    let (text, worst) = conformance(first, &["--repeat", "3"], &dir.join("worst.json"));
    assert!(
        text.contains("run 3/3") && text.contains("conformance over 3 seeds:"),
        "{text}"
    );
    // The seeds as the run lines print them ("run 2/3, seed S: …"), the first one --seed's.
    let seeds: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("run ")?
                .split(", seed ")
                .nth(1)?
                .split(':')
                .next()
        })
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!((seeds.len(), seeds[0]), (3, first), "{text}");
    let singles: Vec<Vec<serde_json::Value>> = seeds
        .iter()
        .map(|&s| conformance(s, &[], &dir.join(format!("{s}.json"))).1)
        .collect();
    assert_eq!(worst.len(), singles[0].len(), "one row per check");
    let share = |r: &serde_json::Value| {
        let (err, tol) = (r["rel_err"].as_f64().unwrap(), r["tol"].as_f64().unwrap());
        if tol > 0.0 { err / tol } else { err }
    };
    for (place, w) in worst.iter().enumerate() {
        assert_eq!(
            (w["runs"].as_u64(), w["failed"].as_u64()),
            (Some(3), Some(0)),
            "{w}"
        );
        let seed = w["seed"].as_u64().unwrap();
        let run = seeds
            .iter()
            .position(|&s| s == seed)
            .expect("a seed of the runs");
        for (single, &s) in singles.iter().zip(&seeds) {
            assert_eq!(
                single[place]["seed"].as_u64(),
                Some(s),
                "rows carry their run's seed"
            );
            assert!(
                share(&single[place]) <= share(w),
                "{w} is not the worst: {}",
                single[place]
            );
        }
        // The run it names, rerun alone with its seed, has exactly its error.
        let again = &singles[run][place];
        assert_eq!(
            (
                &again["kernel"],
                &again["variant"],
                &again["shape"],
                &again["rel_err"]
            ),
            (&w["kernel"], &w["variant"], &w["shape"], &w["rel_err"]),
            "--seed {seed} does not reproduce the worst run (HEBB_SEED={first})"
        );
        let tol_share = w["tol_share"].as_f64().unwrap();
        assert!((tol_share - share(w)).abs() <= 1e-12 * share(w).max(1.0));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
