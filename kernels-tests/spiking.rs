//! The spiking culture simulator (its kernels are the `spiking` conformance family): the
//! culture builder's invariants, recipe errors, and `hebb spiking` end to end on the
//! 240-neuron culture.

use hebb::spiking::checkpoint;
use hebb::spiking::culture::{Culture, CultureConfig, ELECTRODE_COLS, ELECTRODES, NONE};
use hebb::spiking::recipe::SpikingRecipe;
use hebb::spiking::task::{SpikingOptions, label_electrodes, run};

use crate::common;

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

/// SpikingGrid's `configs.py` layouts, written out cell by cell as (row, column): two classes
/// split column 9 at row 3; four classes interlock in columns 8 and 9.
#[test]
fn label_electrodes_follow_the_original_layouts() {
    let cells = |l: &[usize]| -> Vec<(usize, usize)> {
        l.iter()
            .map(|e| (e / ELECTRODE_COLS, e % ELECTRODE_COLS))
            .collect()
    };
    let two = label_electrodes(2).unwrap();
    assert_eq!(cells(&two[0]), [(0, 9), (1, 9), (2, 9)]);
    assert_eq!(cells(&two[1]), [(3, 9), (4, 9), (5, 9)]);
    let three = label_electrodes(3).unwrap();
    assert_eq!(cells(&three[1]), [(2, 9), (3, 9)]);
    let four = label_electrodes(4).unwrap();
    assert_eq!(cells(&four[0]), [(0, 8), (0, 9), (1, 8)]);
    assert_eq!(cells(&four[1]), [(1, 9), (2, 8), (2, 9)]);
    assert_eq!(cells(&four[2]), [(3, 8), (3, 9), (4, 8)]);
    assert_eq!(cells(&four[3]), [(4, 9), (5, 8), (5, 9)]);
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
        culture: None,
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
    for f in ["raster.png", "input_weights.png", "validation.png"] {
        image::open(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // The validation curve (palette blue) and the tested accuracy (palette green) are drawn.
    let curve = image::open(out.join("validation.png")).unwrap().to_rgb8();
    for colour in [[0u8, 114, 178], [0, 158, 115]] {
        assert!(
            curve.pixels().any(|p| p.0 == colour),
            "no pixel of colour {colour:?} in validation.png"
        );
    }
    let bytes = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("excitatory.weight").unwrap().shape(), &[240, 240]);
    let _ = std::fs::remove_dir_all(&out);
}

/// The interval encoder (SpikingGrid's bindsnet `poisson`): at full intensity (200 Hz, dt 1 ms,
/// 100 ms) trains are nearly regular, spike count s.d. about 2 where Bernoulli's is about 4;
/// inputs whose mean interval exceeds the window never fire; the draws are a function of
/// (seed, presentation id).
#[test]
fn interval_trains_are_regular_and_dim_inputs_stay_silent() {
    use hebb::spiking::task::interval_trains;
    let (steps, dt) = (100, 1.0);
    let seed = common::seed();
    // Electrode 0 at 200 Hz, 1 at 100 Hz, 2 at 0.02 · 200 = 4 Hz, 3 silent.
    let rates = [200.0, 100.0, 4.0, 0.0];
    let mut counts = vec![Vec::new(); rates.len()];
    for id in 0..2000u32 {
        let t = interval_trains(&rates, steps, dt, seed, id);
        assert_eq!(t.len(), steps * rates.len());
        for (e, c) in counts.iter_mut().enumerate() {
            c.push(
                (0..steps)
                    .filter(|&s| t[s * rates.len() + e] == 1.0)
                    .count() as f64,
            );
        }
    }
    let stats = |c: &[f64]| {
        let m = c.iter().sum::<f64>() / c.len() as f64;
        let v = c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / c.len() as f64;
        (m, v.sqrt())
    };
    // Mean interval 5 steps (a zero interval counts one step): about 19.6 spikes in 100 ms.
    let (m0, sd0) = stats(&counts[0]);
    assert!(
        (18.5..20.5).contains(&m0),
        "200 Hz: mean {m0} (seed {seed})"
    );
    assert!(
        (1.5..2.6).contains(&sd0),
        "200 Hz: s.d. {sd0} (seed {seed})"
    );
    let (m1, _) = stats(&counts[1]);
    assert!((9.3..10.3).contains(&m1), "100 Hz: mean {m1} (seed {seed})");
    assert!(counts[2].iter().all(|&c| c == 0.0), "a 4 Hz input fired");
    assert!(counts[3].iter().all(|&c| c == 0.0), "a silent input fired");
    assert_eq!(
        interval_trains(&rates, steps, dt, seed, 7),
        interval_trains(&rates, steps, dt, seed, 7)
    );
    assert_ne!(
        interval_trains(&rates, steps, dt, seed, 7),
        interval_trains(&rates, steps, dt, seed, 8)
    );
}

/// Precomputed trains drive the electrodes exactly: one learning presentation from the trains
/// buffer (one submission) equals the same presentation with p_e written as the 0/1 row of
/// each step before it (one submission per step), bit for bit in counts and weights.
#[test]
fn spike_trains_drive_the_electrodes_exactly() {
    use hebb::gpu::Recorder;
    use hebb::kernels::spiking::SpikingBuffers;
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let cfg = CultureConfig {
        rows: 6,
        cols: 10,
        ..CultureConfig::default()
    };
    let culture = Culture::build(&cfg, 3);
    let steps = 40;
    let rates: Vec<f64> = (0..ELECTRODES).map(|e| (e % 7) as f64 * 40.0).collect();
    let trains = hebb::spiking::task::interval_trains(&rates, steps, cfg.dt, 11, 5);
    assert!(trains.contains(&1.0));
    let run = |from_trains: bool| {
        let mut bufs = SpikingBuffers::new(&ctx, &culture, 1, 1, 9).unwrap();
        let mut rec = Recorder::new(&ctx);
        bufs.reset_state(&mut rec).unwrap();
        rec.submit();
        if from_trains {
            bufs.write_spike_trains(&ctx, &trains, steps).unwrap();
            let mut rec = Recorder::new(&ctx);
            for t in 0..steps as u32 {
                bufs.step(&mut rec, t, 0, true, false).unwrap();
            }
            rec.submit();
        } else {
            for t in 0..steps {
                bufs.write_probs(&ctx, &trains[t * ELECTRODES..(t + 1) * ELECTRODES])
                    .unwrap();
                let mut rec = Recorder::new(&ctx);
                bufs.step(&mut rec, t as u32, 0, true, false).unwrap();
                rec.submit();
            }
        }
        (
            bufs.read_counts(&ctx).unwrap(),
            bufs.read_weights(&ctx).unwrap(),
        )
    };
    let (a, b) = (run(true), run(false));
    assert!(a.0.iter().sum::<f32>() > 0.0, "no neuron fired");
    assert_eq!(a, b);
    // A step past the trains is refused, and half-spikes are not trains.
    let mut bufs = SpikingBuffers::new(&ctx, &culture, 1, 1, 9).unwrap();
    bufs.write_spike_trains(&ctx, &trains, steps).unwrap();
    let mut rec = Recorder::new(&ctx);
    assert!(bufs.step(&mut rec, steps as u32, 0, false, false).is_err());
    let mut half = trains.clone();
    half[0] = 0.5;
    assert!(bufs.write_spike_trains(&ctx, &half, steps).is_err());
}

fn mnist_options(out: &std::path::Path, limit: usize) -> SpikingOptions {
    SpikingOptions {
        data: Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")),
        out: out.to_path_buf(),
        limit: Some(limit),
        culture: None,
        quiet: true,
    }
}

/// Each evaluation draws fresh validation noise, as SpikingGrid's encoder does on each pass
/// over its validation loader: with STDP switched off the culture never changes, so the
/// validation accuracies differ between evaluations only through their spike trains (with
/// one fixed draw, as before 9c43b17, they were all equal).
#[test]
fn validation_draws_fresh_noise_at_every_evaluation() {
    let backend = common::required_backends().remove(0);
    let ctx = common::context(&backend).expect("first required backend");
    let (mut recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-bio").unwrap();
    recipe.culture.rows = 6;
    recipe.culture.cols = 10;
    recipe.culture.a_plus = 0.0;
    recipe.culture.a_minus = 0.0;
    recipe.task.eval_every = 6;
    let out = common::scratch("spiking", "fresh-validation");
    let m = run(&ctx, &recipe, &mnist_options(&out, 24)).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let accs: Vec<f64> = m
        .validation_curve
        .iter()
        .map(|p| p.validation_accuracy)
        .collect();
    assert_eq!(accs.len(), 4, "{accs:?}");
    assert!(
        accs.iter().any(|&a| a != accs[0]),
        "every evaluation scored the same: {accs:?}"
    );
}

/// A task whose evaluations would need more validation presentation ids than exist is refused
/// before the culture is built, naming the field.
#[test]
fn too_many_validation_presentations_are_refused() {
    let backend = common::required_backends().remove(0);
    let ctx = common::context(&backend).expect("first required backend");
    let (mut recipe, _) = SpikingRecipe::resolve("spiking-mnist01-bio").unwrap();
    recipe.task.classes = vec![0, 1, 2, 3, 4, 5];
    recipe.task.train_pool = 60_000;
    recipe.task.validation = [0, 60_000];
    recipe.task.eval_every = 1;
    let out = common::scratch("spiking", "too-many-ids");
    let err = run(&ctx, &recipe, &mnist_options(&out, usize::MAX))
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        err.contains("task.eval_every = 1") && err.contains("2^28"),
        "{err}"
    );
}

/// `back`, read from a checkpoint, is culture `c`: both ELLs and W_E exactly, the positions
/// as float32.
fn assert_reads_back_as(back: &Culture, c: &Culture) {
    assert_eq!(back.input, c.input);
    assert_eq!(back.inhibitory, c.inhibitory);
    assert_eq!(back.exc, c.exc);
    let rounded: Vec<(f64, f64)> = c
        .positions
        .iter()
        .map(|&(x, y)| (x as f32 as f64, y as f32 as f64))
        .collect();
    assert_eq!(back.positions, rounded);
}

/// A culture written by `spiking::checkpoint::write` reads back as the same culture: the
/// positions (to float32), both ELLs and W_E.
#[test]
fn a_culture_checkpoint_reads_back_as_written() {
    let (recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-tuned").unwrap();
    let c = Culture::build(&recipe.culture, 3);
    let dir = common::scratch("spiking", "culture-roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("culture.safetensors");
    checkpoint::write_initial(&path, &c).unwrap();
    let back = checkpoint::read(&path, &recipe.culture).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_reads_back_as(&back, &c);
}

/// `hebb spiking --export-culture FILE` writes the seed's initial culture (no GPU, no
/// training), which reads back as `Culture::build` of that seed; it refuses to combine with
/// the flags of a run.
#[test]
fn export_culture_writes_the_seeds_initial_culture() {
    let (recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-bio").unwrap();
    let dir = common::scratch("spiking", "export-culture");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bio-s7.safetensors");
    let hebb = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hebb"))
            .args([
                "spiking",
                "spiking-mnist01-240n-bio",
                "--seed",
                "7",
                "--export-culture",
            ])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = hebb(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let back = checkpoint::read(&path, &recipe.culture).unwrap();
    let refused = hebb(&["--limit", "3"]);
    let _ = std::fs::remove_dir_all(&dir);
    let c = Culture::build(&recipe.culture, 7);
    assert!(
        said.contains("seed 7") && said.contains(&format!("{} input", c.input.synapses())),
        "{said}"
    );
    assert_reads_back_as(&back, &c);
    assert!(!refused.status.success());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(
        e.contains("--limit") && e.contains("--export-culture"),
        "{e}"
    );
}

/// `--culture`: a run that reads seed 5's culture from a checkpoint, with seed 5 drawing the
/// order and the spikes, is the run that built it; reading seed 6's culture instead changes
/// the result, so the file is what the run simulates.
#[test]
fn a_run_from_a_culture_checkpoint_is_the_run_that_built_it() {
    let backend = common::required_backends().remove(0);
    let ctx = common::context(&backend).expect("first required backend");
    let (mut recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-tuned").unwrap();
    recipe.seed = 5;
    recipe.task.eval_every = 8;
    let dir = common::scratch("spiking", "culture-run");
    std::fs::create_dir_all(&dir).unwrap();
    let built = run(&ctx, &recipe, &mnist_options(&dir.join("built"), 24)).unwrap();
    let culture_of = |seed: u64| {
        let c = Culture::build(&recipe.culture, seed);
        let path = dir.join(format!("culture-{seed}.safetensors"));
        checkpoint::write_initial(&path, &c).unwrap();
        path
    };
    let from = |path: std::path::PathBuf, name: &str| {
        let opts = SpikingOptions {
            culture: Some(path),
            ..mnist_options(&dir.join(name), 24)
        };
        run(&ctx, &recipe, &opts).unwrap()
    };
    let same = from(culture_of(5), "same");
    let other = from(culture_of(6), "other");
    // The same run to the last weight, and a trained culture reads back and runs on.
    let trained =
        |name: &str| std::fs::read(dir.join(name).join("checkpoint.safetensors")).unwrap();
    assert!(
        trained("built") == trained("same"),
        "the trained cultures differ"
    );
    let again = from(dir.join("built").join("checkpoint.safetensors"), "again");
    assert_eq!(
        again.culture_from,
        Some(dir.join("built").join("checkpoint.safetensors"))
    );
    // Never over the file the run starts from.
    let opts = SpikingOptions {
        culture: Some(dir.join("built").join("checkpoint.safetensors")),
        ..mnist_options(&dir.join("built"), 24)
    };
    let e = run(&ctx, &recipe, &opts).unwrap_err().to_string();
    assert!(e.contains("over the culture it starts from"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let curve = |m: &hebb::spiking::task::SpikingMetrics| -> Vec<f64> {
        m.validation_curve
            .iter()
            .map(|p| p.validation_accuracy)
            .collect()
    };
    assert_eq!(curve(&same), curve(&built));
    assert_eq!(same.test_accuracy, built.test_accuracy);
    assert!(same.culture_from.is_some() && built.culture_from.is_none());
    assert_ne!(
        (curve(&other), other.test_accuracy),
        (curve(&built), built.test_accuracy),
        "another culture gave the same run"
    );
}

/// The culture layout as the test writes it, independently of `checkpoint::write`: (name,
/// dtype, shape, bytes) per tensor, for files that writer would never produce.
fn culture_tensors(c: &Culture) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    use safetensors::Dtype::{F32, U32};
    let n = c.neurons();
    let pos: Vec<f32> = c
        .positions
        .iter()
        .flat_map(|&(x, y)| [x as f32, y as f32])
        .collect();
    let f = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
    let u = |v: &[u32]| bytemuck::cast_slice::<u32, u8>(v).to_vec();
    let (wi, wh) = (c.input.width, c.inhibitory.width);
    vec![
        ("positions".into(), F32, vec![n, 2], f(&pos)),
        ("input.index".into(), U32, vec![n, wi], u(&c.input.index)),
        ("input.weight".into(), F32, vec![n, wi], f(&c.input.weight)),
        (
            "inhibitory.index".into(),
            U32,
            vec![n, wh],
            u(&c.inhibitory.index),
        ),
        (
            "inhibitory.weight".into(),
            F32,
            vec![n, wh],
            f(&c.inhibitory.weight),
        ),
        ("excitatory.weight".into(), F32, vec![n, n], f(&c.exc)),
    ]
}

fn save_tensors(
    path: &std::path::Path,
    tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)],
    format: Option<&str>,
) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    let meta =
        format.map(|f| std::collections::HashMap::from([("format".to_string(), f.to_string())]));
    std::fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

/// A bad culture file is refused with an error naming the file, the tensor or entry, and what
/// was expected; nothing is simulated.
#[test]
fn bad_culture_checkpoints_name_the_tensor() {
    let (recipe, _) = SpikingRecipe::resolve("spiking-mnist01-240n-bio").unwrap();
    let cfg = &recipe.culture;
    let good = Culture::build(cfg, 1);
    let dir = common::scratch("spiking", "bad-culture");
    std::fs::create_dir_all(&dir).unwrap();
    let n = good.neurons();
    let read_err = |path: &std::path::Path| {
        let e = checkpoint::read(path, cfg).unwrap_err().to_string();
        let file = path.file_name().unwrap().to_str().unwrap();
        assert!(e.contains(file), "the error does not name {file}: {e}");
        e
    };
    let err_of = |name: &str, c: &Culture| {
        let path = dir.join(format!("{name}.safetensors"));
        checkpoint::write_initial(&path, c).unwrap();
        read_err(&path)
    };
    // The row of fewest input synapses, padded in at least two slots.
    let w = good.input.width;
    let live = |r: usize| {
        good.input.index[r * w..(r + 1) * w]
            .iter()
            .filter(|&&i| i != NONE)
            .count()
    };
    let sparse = (0..n).min_by_key(|&r| live(r)).unwrap();
    let k = live(sparse);
    assert!(
        w - k >= 2 && live(0) >= 2,
        "the culture has no row to spoil"
    );

    let mut c = good.clone();
    c.input.weight[0] = -0.5;
    let e = err_of("negative-input", &c);
    assert!(
        e.contains("input.weight[0, 0] = -0.5") && e.contains("≥ 0"),
        "{e}"
    );
    let mut c = good.clone();
    c.input.weight[sparse * w + k] = 0.25;
    let e = err_of("padding-weight", &c);
    assert!(
        e.contains(&format!(
            "input.weight[{sparse}, {k}] = 0.25 at a padding slot"
        )),
        "{e}"
    );
    let mut c = good.clone();
    c.input.index[sparse * w + w - 1] = 59;
    let e = err_of("after-padding", &c);
    assert!(
        e.contains(&format!(
            "input.index[{sparse}, {}] = 59 follows padding",
            w - 1
        )),
        "{e}"
    );
    let mut c = good.clone();
    c.input.index[live(0) - 1] = 60;
    let e = err_of("electrode-60", &c);
    assert!(
        e.contains(&format!(
            "input.index[0, {}] = 60, expected below 60",
            live(0) - 1
        )),
        "{e}"
    );
    let mut c = good.clone();
    c.input.index.swap(0, 1);
    c.input.weight.swap(0, 1);
    let e = err_of("unordered", &c);
    assert!(
        e.contains("input.index[0, 1]") && e.contains("ascend"),
        "{e}"
    );
    let mut c = good.clone();
    let wh = c.inhibitory.width;
    let own = (0..n)
        .find(|&r| c.inhibitory.index[r * wh] > r as u32)
        .expect("a row to spoil");
    c.inhibitory.index[own * wh] = own as u32;
    let e = err_of("self-inhibition", &c);
    assert!(
        e.contains(&format!("inhibitory.index[{own}, 0]")) && e.contains("own neuron"),
        "{e}"
    );
    let mut c = good.clone();
    c.inhibitory.weight[0] = 0.5;
    let e = err_of("positive-inhibition", &c);
    assert!(
        e.contains("inhibitory.weight[0, 0] = 0.5") && e.contains("≤ 0"),
        "{e}"
    );
    let mut c = good.clone();
    c.exc[7 * n + 7] = 0.25;
    let e = err_of("exc-diagonal", &c);
    assert!(e.contains("excitatory.weight[7, 7] = 0.25"), "{e}");
    let mut c = good.clone();
    c.exc[3] = f32::NAN;
    let e = err_of("exc-nan", &c);
    assert!(e.contains("excitatory.weight[0, 3] = NaN"), "{e}");
    let mut c = good.clone();
    c.positions[4] = (2.5, 0.5);
    let e = err_of("outside", &c);
    assert!(e.contains("positions[4]"), "{e}");
    // Another culture size than the recipe's.
    let small = Culture::build(
        &CultureConfig {
            rows: 5,
            cols: 7,
            ..cfg.clone()
        },
        1,
    );
    let e = err_of("small", &small);
    assert!(
        e.contains("tensor positions has shape [35, 2]") && e.contains("12 x 20"),
        "{e}"
    );

    // Files `write` never produces: a wrong dtype, mismatched widths, a foreign format, a
    // missing tensor, and no safetensors at all.
    let tensors = culture_tensors(&good);
    let path = dir.join("dtype.safetensors");
    let mut t = tensors.clone();
    t[1].1 = safetensors::Dtype::F32;
    save_tensors(&path, &t, None);
    let e = read_err(&path);
    assert!(e.contains("tensor input.index is F32, expected U32"), "{e}");
    let path = dir.join("widths.safetensors");
    let mut t = tensors.clone();
    t[4].2 = vec![n, wh - 1];
    t[4].3.truncate(4 * n * (wh - 1));
    save_tensors(&path, &t, None);
    let e = read_err(&path);
    assert!(
        e.contains(&format!(
            "tensor inhibitory.weight has shape [{n}, {}], expected [{n}, {wh}]",
            wh - 1
        )),
        "{e}"
    );
    let path = dir.join("format.safetensors");
    save_tensors(&path, &tensors, Some("pt"));
    let e = read_err(&path);
    assert!(e.contains("metadata `format` is \"pt\""), "{e}");
    let path = dir.join("no-format.safetensors");
    save_tensors(&path, &tensors, None);
    let back = checkpoint::read(&path, cfg).unwrap();
    assert_eq!(back.exc, good.exc);
    let path = dir.join("no-input.safetensors");
    save_tensors(&path, &tensors[..1], None);
    let e = read_err(&path);
    assert!(e.contains("tensor input.index is missing"), "{e}");
    let path = dir.join("text.safetensors");
    std::fs::write(&path, b"not a culture").unwrap();
    let e = read_err(&path);
    assert!(e.contains("not a safetensors file"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
