//! The spiking culture simulator: its kernels against the float64 reference on each backend,
//! the culture builder's invariants, recipe errors, and `hebb spiking` end to end on the
//! 240-neuron culture.

use hebb::conformance::spiking::spiking_checks;
use hebb::spiking::culture::{Culture, CultureConfig, ELECTRODES, NONE};
use hebb::spiking::recipe::SpikingRecipe;
use hebb::spiking::task::{SpikingOptions, label_electrodes, run};

use crate::common;

fn conformance(backend: &str) {
    let Some(ctx) = common::context(backend) else {
        return;
    };
    let seed = common::seed();
    let rows = spiking_checks(&ctx, seed);
    let failed: Vec<_> = rows.iter().filter(|r| !r.ok).cloned().collect();
    if !failed.is_empty() {
        hebb::conformance::print_table(&failed);
        panic!(
            "spiking on {}: {} of {} checks failed (HEBB_SEED={seed} reproduces)",
            ctx.adapter_name(),
            failed.len(),
            rows.len()
        );
    }
}

#[test]
fn spiking_conformance_vulkan() {
    conformance("vulkan");
}

#[test]
fn spiking_conformance_gl() {
    conformance("gl");
}

/// Every neuron's incoming Σ|w| equals the connection's strength after the build; pruned and
/// self synapses are masked; ELL rows are ascending and padded with NONE.
#[test]
fn culture_build_normalises_and_masks() {
    let cfg = CultureConfig {
        rows: 5,
        cols: 13,
        exc_strength: 3.0,
        inh_strength: 300.0,
        ..CultureConfig::default()
    };
    let c = Culture::build(&cfg, 7);
    let n = c.neurons();
    assert_eq!(n, 65);
    for i in 0..n {
        let row = |e: &hebb::spiking::culture::Ell| {
            let r = &e.index[i * e.width..(i + 1) * e.width];
            let w = &e.weight[i * e.width..(i + 1) * e.width];
            let live = r.iter().take_while(|&&x| x != NONE).count();
            assert!(
                r[live..].iter().all(|&x| x == NONE),
                "padding after the entries"
            );
            assert!(r[..live].windows(2).all(|p| p[0] < p[1]), "ascending");
            w[..live].iter().map(|v| v.abs() as f64).sum::<f64>()
        };
        assert!((row(&c.input) - 1.0).abs() < 1e-5);
        assert!(
            c.input
                .index
                .iter()
                .all(|&e| e == NONE || (e as usize) < ELECTRODES)
        );
        assert!((row(&c.inhibitory) - 300.0).abs() < 1e-3);
        let inh = &c.inhibitory.index[i * c.inhibitory.width..(i + 1) * c.inhibitory.width];
        assert!(
            !inh.contains(&(i as u32)),
            "neuron {i}'s own relay inhibits it"
        );
        assert!(c.exc[i * n + i] < 0.0, "no self-connections");
        let exc: f64 = (0..n).map(|p| c.exc[p * n + i].max(0.0) as f64).sum();
        assert!((exc - 3.0).abs() < 1e-5, "neuron {i}: Σ exc = {exc}");
    }
    // The same seed builds the same culture; another seed another one.
    assert_eq!(Culture::build(&cfg, 7).exc, c.exc);
    assert_ne!(Culture::build(&cfg, 8).exc, c.exc);
}

#[test]
fn label_electrodes_cover_the_label_columns_without_overlap() {
    for k in [2, 3, 4, 6] {
        let l = label_electrodes(k).unwrap();
        let mut all: Vec<usize> = l.iter().flatten().copied().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "{k} classes overlap");
        assert!(
            all.iter().all(|e| e % 10 >= 6),
            "label electrodes sit in columns 6-9"
        );
    }
    assert!(label_electrodes(5).is_none());
}

#[test]
fn bad_spiking_recipes_name_the_field() {
    let err = |text: &str| {
        SpikingRecipe::parse(text, "x.toml")
            .unwrap_err()
            .to_string()
    };
    let e = err("name = \"a\"\n[task]\nclasses = [0, 0]\n");
    assert!(e.contains("x.toml") && e.contains("task.classes"), "{e}");
    let e = err("name = \"a\"\n[culture]\ntau_m = -1.0\n");
    assert!(e.contains("culture.tau_m"), "{e}");
    let e = err("name = \"a\"\n[culture]\nbogus = 1\n");
    assert!(e.contains("bogus"), "{e}");
    let e = err("name = \"a\"\n[task]\nclasses = [0, 1, 2, 3, 4]\n");
    assert!(e.contains("task.classes"), "{e}");
    // Every bundled recipe parses.
    for (name, _) in hebb::spiking::recipe::BUNDLED {
        SpikingRecipe::resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// `hebb spiking` on the 240-neuron culture with a small limit writes its outputs, and the
/// accuracies are fractions of the digits evaluated.
#[test]
fn spiking_run_writes_metrics_checkpoint_and_pngs() {
    let backend = common::required_backends().remove(0);
    let ctx = common::context(&backend).expect("first required backend");
    let (recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-bio").unwrap();
    let out = common::scratch("spiking", "run");
    let opts = SpikingOptions {
        data: Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")),
        out: out.clone(),
        limit: Some(24),
        quiet: true,
    };
    let m = run(&ctx, &recipe, &opts).unwrap();
    assert_eq!((m.train_samples, m.test_samples), (24, 24));
    assert!((0.0..=1.0).contains(&m.test_accuracy));
    // Accuracies are multiples of 1/24.
    assert!(((m.test_accuracy * 24.0) - (m.test_accuracy * 24.0).round()).abs() < 1e-9);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["test_accuracy"].as_f64(), Some(m.test_accuracy));
    for f in ["raster.png", "input_weights.png"] {
        image::open(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let bytes = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("excitatory.weight").unwrap().shape(), &[240, 240]);
    let _ = std::fs::remove_dir_all(&out);
}
