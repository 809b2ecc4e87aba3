//! `hebb train` end to end on small subsets of the bundled MNIST (Vulkan): a run finishes with
//! its outputs, an interrupted run resumes to the bit-identical result, NaN stops training with
//! the layer named, and bad recipes and checkpoints are errors naming what is wrong.

use std::path::{Path, PathBuf};

use hebb::gpu::GpuContext;
use hebb::nn::recipe::Recipe;
use hebb::train::{self, Outcome, TrainOptions, checkpoint, recipes};

use crate::common;

/// A small network: 8 SoftHebb filters 5x5, max pool, linear classifier.
pub(crate) const TINY: &str = r#"
name = "tiny"
seed = 3
[data]
dataset = "mnist"
[hebbian]
schedule = "greedy"
epochs = 1
batch = 16
[[layer]]
channels = 8
kernel = 5
padding = 2
padding_mode = "reflect"
input_norm = "batch"
rule = { preset = "softhebb/softkrotov", params = { t_invert = 1.0, optimizer = { kind = "softhebb-adaptive", lr = 0.08, power = 0.5 } } }
init = { kind = "radius", radius = 25.0 }
activation = { kind = "triangle", power = 0.7 }
pool = { kind = "max", kernel = 4, stride = 4 }
[classifier]
epochs = 2
batch = 32
optimizer = { kind = "adam", lr = 2e-3 }
dropout = 0.25
"#;

fn scratch(name: &str) -> PathBuf {
    common::scratch("train", name)
}

fn options(out: &Path, stop_after: Option<usize>) -> TrainOptions {
    common::train_options(out, 480, stop_after)
}

fn vulkan() -> Option<GpuContext> {
    common::context("vulkan")
}

fn tiny() -> Recipe {
    Recipe::parse(TINY, Path::new("tiny.toml")).expect("the tiny recipe parses")
}

#[test]
fn a_run_writes_checkpoint_metrics_and_filters_and_learns() {
    let Some(ctx) = vulkan() else { return };
    let out = scratch("run");
    let m = match train::train(&ctx, &tiny(), TINY, &options(&out, None)).unwrap() {
        Outcome::Finished(m) => m,
        Outcome::Interrupted(_) => panic!("the run was not asked to stop"),
    };
    // 10 classes: chance is 10%; 8 Hebbian filters and 2 epochs on 480 images do far better.
    assert!(m.test_accuracy > 0.5, "test accuracy {}", m.test_accuracy);
    assert_eq!(m.test_items, 480);
    assert_eq!(
        m.epochs.len(),
        3,
        "one Hebbian and two classifier epochs: {:?}",
        m.epochs
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["recipe"], "tiny");
    assert_eq!(json["test_accuracy"].as_f64(), Some(m.test_accuracy));
    assert_eq!(json["recipe_sha256"].as_str().map(str::len), Some(64));
    let png = image::open(out.join("filters.png")).unwrap();
    assert!(png.width() > 16 && png.height() > 16);
    // curves.png: three panels, with the loss line (palette blue) and the test accuracy line
    // (palette green) drawn.
    let curves = image::open(out.join("curves.png")).unwrap().to_rgb8();
    assert_eq!(curves.dimensions(), (3 * 640, 440));
    for colour in [[0u8, 114, 178], [0, 158, 115]] {
        assert!(
            curves.pixels().any(|p| p.0 == colour),
            "no pixel of colour {colour:?} in curves.png"
        );
    }
    // The checkpoint holds PyTorch-layout weights; eval reproduces the accuracy.
    let ck = checkpoint::load(&out).unwrap();
    assert_eq!(ck.tensors["layers.0.weight"].0, vec![8, 1, 5, 5]);
    assert_eq!(ck.tensors["classifier.weight"].0, vec![10, 8 * 7 * 7]);
    // SoftHebb's forward uses W itself: the effective forward weights are W, bit for bit.
    assert_eq!(
        ck.tensors["layers.0.forward_weight"],
        ck.tensors["layers.0.weight"]
    );
    // The Hebbian epoch records its neurons' norms: those of the checkpoint's (final) weights,
    // moved from the radius-25 init towards 1 by the adaptive rate.
    let norms = &m.epochs[0].weight_norms;
    assert_eq!(norms.len(), 1, "{:?}", m.epochs[0]);
    let w = &ck.tensors["layers.0.weight"].1;
    let want = hebb::train::WeightNorms::of_rows(0, w, 8);
    assert_eq!(norms[0], want);
    let direct: Vec<f64> = w
        .chunks(25)
        .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt())
        .collect();
    let max = direct.iter().copied().fold(f64::MIN, f64::max);
    assert!(
        (want.max - max).abs() <= 1e-9 * max,
        "{want:?} vs {direct:?}"
    );
    assert!(want.min > 0.0 && want.median < 25.0, "{want:?}");
    assert!(m.epochs[1].weight_norms.is_empty());
    let e = train::evaluate_checkpoint(&ctx, &out, None, Some(480), true).unwrap();
    assert_eq!((e.items, e.evaluation.seen), (480, 480));
    assert_eq!(e.evaluation.accuracy, m.test_accuracy);
    // `hebb eval --predictions`: one per test item in order, the accuracy's argmax, and as
    // many right as the accuracy counts.
    let p = &e.evaluation.predictions;
    assert_eq!(
        p.iter().map(|q| q.index).collect::<Vec<_>>(),
        (0..480).collect::<Vec<_>>()
    );
    assert!(p.iter().all(|q| q.scores.len() == 10
        && q.scores.iter().all(|v| v.is_finite())
        && q.predicted == train::Prediction::first_argmax(&q.scores)
        && q.scores.iter().all(|&v| v <= q.scores[q.predicted])));
    let right = p.iter().filter(|q| q.predicted == q.label as usize).count();
    assert_eq!(right as f64 / 480.0, m.test_accuracy);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let Some(ctx) = vulkan() else { return };
    let straight = scratch("straight");
    let Outcome::Finished(a) =
        train::train(&ctx, &tiny(), TINY, &options(&straight, None)).unwrap()
    else {
        panic!("the straight run stopped")
    };
    // Stop inside the Hebbian epoch (30 batches of 16), resume, stop inside the first
    // classifier epoch (15 batches of 32), resume to the end.
    let split = scratch("split");
    let first = train::train(&ctx, &tiny(), TINY, &options(&split, Some(11))).unwrap();
    assert!(matches!(first, Outcome::Interrupted(_)));
    let second = train::resume(&ctx, &split, &options(&split, Some(25))).unwrap();
    assert!(matches!(second, Outcome::Interrupted(_)));
    let Outcome::Finished(b) = train::resume(&ctx, &split, &options(&split, None)).unwrap() else {
        panic!("the resumed run stopped again")
    };
    assert!(b.resumed);
    common::assert_same_tensors(
        &straight,
        &split,
        &[
            "layers.0.weight",
            "layers.0.input_bn.running_mean",
            "classifier.weight",
            "classifier.state1",
        ],
    );
    assert_eq!(a.test_accuracy, b.test_accuracy);
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&split);
}

/// `hebb train --pretrained`: a new read-out with more classifier epochs, trained on a
/// finished run's Hebbian layers, is bit for bit the straight run with those epochs. A
/// checkpoint past the start of the supervised stage, `--resume` of a finished run, and an
/// output folder holding a run (without --overwrite), are refused with errors saying so.
#[test]
fn a_new_read_out_on_a_finished_runs_hebbian_layers_is_the_straight_run() {
    let Some(ctx) = vulkan() else { return };
    let straight = scratch("readout-straight");
    let mut three = options(&straight, None);
    three.overrides.epochs = Some(3);
    let Outcome::Finished(a) = train::train(&ctx, &tiny(), TINY, &three).unwrap() else {
        panic!("the straight run stopped")
    };
    let base = scratch("readout-base");
    let Outcome::Finished(two) = train::train(&ctx, &tiny(), TINY, &options(&base, None)).unwrap()
    else {
        panic!("the base run stopped")
    };
    let readout = scratch("readout-new");
    let restart = train::SupervisedRestart {
        epochs: Some(3),
        label_fraction: None,
    };
    let pretrained = base.join(train::PRETRAINED_FILE);
    let Outcome::Finished(b) =
        train::resume_with(&ctx, &pretrained, &options(&readout, None), Some(restart)).unwrap()
    else {
        panic!("the read-out stopped")
    };
    let classifier_epochs =
        |m: &train::Metrics| m.epochs.iter().filter(|r| r.stage == "classifier").count();
    assert_eq!(classifier_epochs(&b), 3);
    assert_eq!(classifier_epochs(&two), 2);
    assert_eq!(b.overrides.epochs, Some(3));
    assert_eq!(a.test_accuracy, b.test_accuracy);
    common::assert_same_tensors(
        &straight,
        &readout,
        &["layers.0.weight", "classifier.weight", "classifier.state1"],
    );
    // The base run's own checkpoint stands at the end of its run, not at a fresh read-out.
    let other = scratch("readout-other");
    let Err(e) = train::resume_with(
        &ctx,
        &base.join(checkpoint::FILE),
        &options(&other, None),
        Some(restart),
    ) else {
        panic!("a finished run's checkpoint was taken for a pretrained network")
    };
    let e = e.to_string();
    assert!(e.contains("start of the supervised stage"), "{e}");
    // And `--resume` of that finished run is refused as finished.
    let Err(e) = train::resume(&ctx, &base, &options(&base, None)) else {
        panic!("a finished run was resumed")
    };
    let e = e.to_string();
    assert!(
        e.contains("has finished") && e.contains("metrics.json"),
        "{e}"
    );
    // The new read-out's folder holds a run now: refused, then replaced with --overwrite.
    let Err(e) = train::resume_with(&ctx, &pretrained, &options(&readout, None), Some(restart))
    else {
        panic!("a run was overwritten without --overwrite")
    };
    let e = e.to_string();
    assert!(e.contains("--overwrite"), "{e}");
    let mut replace = options(&readout, None);
    replace.overwrite = true;
    let one = train::SupervisedRestart {
        epochs: Some(1),
        label_fraction: None,
    };
    let Outcome::Finished(c) = train::resume_with(&ctx, &pretrained, &replace, Some(one)).unwrap()
    else {
        panic!("the replacing read-out stopped")
    };
    assert_eq!(classifier_epochs(&c), 1);
    for dir in [straight, base, readout, other] {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn nan_weights_stop_training_naming_the_layer() {
    let Some(ctx) = vulkan() else { return };
    // Weights of 1e30 overflow U = X·Wᵀ on the first step.
    let text = TINY.replace(
        r#"init = { kind = "radius", radius = 25.0 }"#,
        r#"init = { kind = "normal", std = 1e30 }"#,
    );
    let recipe = Recipe::parse(&text, Path::new("nan.toml")).unwrap();
    let out = scratch("nan");
    let err = match train::train(&ctx, &recipe, &text, &options(&out, None)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("training on overflowing weights did not stop"),
    };
    assert!(err.contains("layer 0") && err.contains("NaN/Inf"), "{err}");
    // The only checkpoint is the one written before the first batch: finite weights at the
    // start of the run, never the NaN ones.
    let ck = checkpoint::load(&out).unwrap();
    assert!(
        ck.tensors["layers.0.weight"]
            .1
            .iter()
            .all(|v| v.is_finite()),
        "a checkpoint of NaN weights was written"
    );
    let position: train::Position = serde_json::from_str(ck.meta("position").unwrap()).unwrap();
    assert_eq!(position, train::Position::default());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_recipes_are_errors_naming_the_line_or_layer() {
    let unknown_key = TINY.replace("dropout = 0.25", "dropout = 0.25\ndropuot = 0.5");
    let e = Recipe::parse(&unknown_key, Path::new("r.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("r.toml") && e.contains("line") && e.contains("dropuot"),
        "{e}"
    );

    let unknown_preset = TINY.replace("softhebb/softkrotov", "softhebb/nonsense");
    let e = Recipe::parse(&unknown_preset, Path::new("r.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("softhebb/nonsense") && e.contains("line"), "{e}");

    let unknown_layer = TINY.replace("channels = 8", "kind = \"deconv\"\nchannels = 8");
    let e = Recipe::parse(&unknown_layer, Path::new("r.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("deconv"), "{e}");

    let Some(ctx) = vulkan() else { return };
    // A 40x40 kernel on a 28x28 image.
    let too_big = TINY.replace("kernel = 5", "kernel = 40");
    let r = Recipe::parse(&too_big, Path::new("r.toml")).unwrap();
    let out = scratch("big");
    let e = match train::train(&ctx, &r, &too_big, &options(&out, None)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a kernel larger than its input was accepted"),
    };
    let _ = std::fs::remove_dir_all(&out);
    assert!(e.contains("layer 0") && e.contains("larger than"), "{e}");
    // A second layer whose kernel does not fit the first one's pooled 7x7 output.
    let chained = format!(
        "{}\n{}",
        TINY.split("[classifier]").next().unwrap(),
        r#"[[layer]]
channels = 4
kernel = 9
rule = { preset = "softhebb/softkrotov", params = { t_invert = 1.0, optimizer = { kind = "softhebb-adaptive", lr = 0.08, power = 0.5 } } }
init = { kind = "radius", radius = 25.0 }
activation = { kind = "relu" }
[classifier]
epochs = 1
batch = 32
optimizer = { kind = "adam", lr = 1e-3 }
"#
    );
    let r = Recipe::parse(&chained, Path::new("r.toml")).unwrap();
    let out = scratch("chain");
    let e = match train::train(&ctx, &r, &chained, &options(&out, None)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("layers whose shapes do not chain were accepted"),
    };
    let _ = std::fs::remove_dir_all(&out);
    assert!(e.contains("layer 1") && e.contains("9x9"), "{e}");
}

#[test]
fn every_bundled_recipe_parses_and_its_network_chains() {
    for (name, _) in recipes::BUNDLED {
        let (r, _, _) = recipes::resolve(Some(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.name, *name);
    }
    let e = recipes::resolve(Some("no-such-recipe"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bundled: default"), "{e}");
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_the_file() {
    let dir = scratch("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(checkpoint::FILE);
    std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    let e = checkpoint::load(&dir)
        .err()
        .expect("a corrupt checkpoint loaded")
        .to_string();
    assert!(e.contains("checkpoint.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One-block networks of each forward flavour, frozen, against `reference::network`; and each
/// block's effective forward weights (a checkpoint's `forward_weight`) against its reference.
#[test]
fn network_forward_matches_the_float64_reference() {
    use hebb::data::source::ItemShape;
    use hebb::gpu::Recorder;
    use hebb::nn::network::Network;
    use hebb::reference::dense::Mat;
    use hebb::reference::network::{BlockStats, block_forward};
    use rand::{Rng, SeedableRng};

    let Some(ctx) = vulkan() else { return };
    let seed = common::seed();
    let sgd = r#"optimizer = { kind = "sgd", lr = 0.01, momentum = 0.0, nesterov = false, weight_decay = 0.0 }"#;
    // (name, input shape, layer table)
    let blocks: Vec<(&str, ItemShape, String)> = vec![
        (
            "softhebb conv: input BN, reflect, triangle, max pool",
            ItemShape { channels: 3, height: 13, width: 11 },
            r#"channels = 7
kernel = [5, 3]
padding = [2, 1]
padding_mode = "reflect"
input_norm = "batch"
rule = { preset = "softhebb/softkrotov", params = { t_invert = 1.0, optimizer = { kind = "softhebb-adaptive", lr = 0.08, power = 0.5 } } }
init = { kind = "radius", radius = 2.0 }
activation = { kind = "triangle", power = 0.7 }
pool = { kind = "max", kernel = 4, stride = 2, padding = 1 }"#
                .to_string(),
        ),
        (
            "softhebb conv with pre_triangle: Triangle₁(U), then triangle^1.4",
            ItemShape { channels: 5, height: 9, width: 9 },
            r#"channels = 33
kernel = 3
padding = 1
padding_mode = "reflect"
input_norm = "batch"
rule = { preset = "softhebb/softkrotov", params = { t_invert = 0.65, pre_triangle = true, optimizer = { kind = "softhebb-adaptive", lr = 0.005, power = 0.5 } } }
init = { kind = "radius", radius = 2.0 }
activation = { kind = "triangle", power = 1.4 }
pool = { kind = "max", kernel = 4, stride = 2, padding = 1 }"#
                .to_string(),
        ),
        (
            "lagani conv: WTA projection, relu, stride 2, avg pool, modified BN",
            ItemShape { channels: 2, height: 12, width: 12 },
            format!(
                r#"channels = 33
kernel = 3
stride = 2
rule = {{ preset = "lagani/soft-wta-exp", params = {{ temperature = 0.02, {sgd} }} }}
init = {{ kind = "uniform_fan_in" }}
activation = {{ kind = "relu" }}
pool = {{ kind = "avg", kernel = 2, stride = 1, padding = 1 }}
output_norm = "modified""#
            ),
        ),
        (
            "hebbdemo conv: W̃ = unit rows (w_nrm), identity",
            ItemShape { channels: 3, height: 9, width: 9 },
            format!(
                r#"channels = 7
kernel = 3
rule = {{ preset = "hebbdemo/soft-wta", params = {{ t_invert = 50.0, w_nrm = true, activation = "identity", {sgd} }} }}
init = {{ kind = "normal", std = 0.5 }}
activation = {{ kind = "identity" }}"#
            ),
        ),
        (
            "krotov linear: unit-norm inputs, W̃ = sign|W|^2, relu^4.5",
            ItemShape { channels: 1, height: 7, width: 5 },
            format!(
                r#"kind = "linear"
channels = 65
unit_norm_input = true
rule = {{ preset = "krotov/hopfield", params = {{ p = 3.0, k = 2, delta = 0.4, prec = 1e-30, {sgd} }} }}
init = {{ kind = "normal", std = 0.3 }}
activation = {{ kind = "relu_pow", power = 4.5 }}"#
            ),
        ),
        (
            "bcm linear: lateral M, logistic, output BN",
            ItemShape { channels: 1, height: 6, width: 6 },
            format!(
                r#"kind = "linear"
channels = 9
rule = {{ preset = "bcm/curti", params = {{ activation = "logistic", lateral_strength = -0.1, gamma = 0.5, theta_eps = 1e-30, {sgd} }} }}
init = {{ kind = "glorot_normal" }}
activation = {{ kind = "logistic" }}
output_norm = "batch""#
            ),
        ),
    ];
    // The conv blocks again with their frozen forward as an implicit GEMM (conv.wgsl).
    let implicit: Vec<(&str, ItemShape, String)> = blocks[..3]
        .iter()
        .map(|(name, input, layer)| (*name, *input, format!("{layer}\nimplicit_gemm = true")))
        .collect();
    // The blocks whose rule projects onto its own W̃ (Krotov's sign|W|^{p−1}, Lagani's unit
    // rows) again with their output read from W itself (`output_current = "weights"`).
    let plain: Vec<(&str, ItemShape, String)> = blocks
        .iter()
        .filter(|(name, ..)| name.starts_with("krotov") || name.starts_with("lagani"))
        .map(|(name, input, layer)| {
            (
                *name,
                *input,
                format!("{layer}\noutput_current = \"weights\""),
            )
        })
        .collect();
    assert_eq!(plain.len(), 2);
    let blocks: Vec<(&str, ItemShape, String)> =
        blocks.into_iter().chain(implicit).chain(plain).collect();
    for (i, (name, input, layer)) in blocks.iter().enumerate() {
        let text = format!(
            "name = \"block\"\nseed = {}\n[data]\ndataset = \"mnist\"\n[hebbian]\nschedule = \"greedy\"\nepochs = 1\nbatch = 3\n[[layer]]\n{layer}\n[classifier]\nepochs = 1\nbatch = 3\noptimizer = {{ kind = \"adam\", lr = 1e-3 }}\n",
            seed % 1000
        );
        let recipe = Recipe::parse(&text, Path::new("block.toml")).unwrap();
        let mut net = Network::new(&ctx, &recipe, *input, 10, None, None).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ i as u64);
        let batch = 3;
        let x: Vec<f32> = (0..batch * input.len())
            .map(|_| rng.random_range(-1.0..1.5))
            .collect();
        // Non-trivial running statistics.
        let mut stats = |t: Option<&hebb::nn::layer::BnState>| -> Option<(Vec<f64>, Vec<f64>)> {
            let bn = t?;
            let m: Vec<f32> = (0..bn.channels)
                .map(|_| rng.random_range(-0.5..0.5))
                .collect();
            let v: Vec<f32> = (0..bn.channels)
                .map(|_| rng.random_range(0.2..2.0))
                .collect();
            bn.mean.write_f32(&ctx, &m).unwrap();
            bn.var.write_f32(&ctx, &v).unwrap();
            Some((
                m.iter().map(|&a| a as f64).collect(),
                v.iter().map(|&a| a as f64).collect(),
            ))
        };
        let layer = &net.layers[0];
        let implicit = text.contains("implicit_gemm = true");
        assert_eq!(layer.implicit_forward(), implicit, "{name}");
        let name = format!(
            "{name}{}{}",
            if implicit { " (implicit GEMM)" } else { "" },
            if text.contains("output_current") {
                " (output_current = weights)"
            } else {
                ""
            }
        );
        let st = BlockStats {
            input: stats(layer.input_bn.as_ref()),
            output: stats(layer.output_bn.as_ref()),
        };
        let (c, d) = (layer.rule.c, layer.rule.d);
        let w = Mat::from_vec(
            c,
            d,
            layer
                .rule
                .w
                .to_f32_vec(&ctx)
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect(),
        );
        let lateral = layer.rule.lateral().map(|m| {
            Mat::from_vec(
                c,
                c,
                m.to_f32_vec(&ctx)
                    .unwrap()
                    .iter()
                    .map(|&v| v as f64)
                    .collect(),
            )
        });
        // The checkpoint's `forward_weight`: M·W̃, what a plain convolution needs.
        let want_w = hebb::reference::network::effective_weights(&layer.spec, &w, lateral.as_ref());
        let got_w = hebb::conformance::widen(&layer.effective_weights(&ctx).unwrap());
        let err = hebb::conformance::rel_err(&got_w, &want_w.data);
        assert!(
            err < 1e-5,
            "{name}: effective weights off by {err:.2e} (seed {seed})"
        );
        let xs = hebb::conformance::widen(&x);
        let want = block_forward(
            &layer.spec,
            &layer.shape,
            &w,
            lateral.as_ref(),
            &st,
            &xs,
            batch,
        );
        let len = batch * layer.shape.output.len();
        let mut rec = Recorder::new(&ctx);
        let out = net.forward(&ctx, &mut rec, &x, batch, 0).unwrap();
        out.poison_nan(&ctx);
        let out = net.forward(&ctx, &mut rec, &x, batch, 0).unwrap();
        rec.submit();
        let got = out.to_f32_vec(&ctx).unwrap();
        let got = hebb::conformance::widen(&got[..len]);
        let err = hebb::conformance::rel_err(&got, &want);
        assert!(err < 2e-5, "{name}: relative error {err:.2e} (seed {seed})");
    }
}

/// An image-folder dataset streams through training: JPEGs decoded on worker threads, a
/// corrupt file skipped, counted and named in the metrics, the epoch completed.
#[test]
fn image_folder_training_skips_a_corrupt_jpeg_and_finishes() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/imagenet-sample");
    if !sample.is_dir() {
        eprintln!(
            "note: {} is missing; image-folder training not tested",
            sample.display()
        );
        return;
    }
    let Some(ctx) = vulkan() else { return };
    // train/<class>/ and val/<class>/ with 3 classes, the sample's JPEGs copied in (several
    // per class), and one truncated JPEG among the training images.
    let root = scratch("folder");
    let mut jpegs: Vec<PathBuf> = std::fs::read_dir(&sample)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .flat_map(|d| {
            std::fs::read_dir(d)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
        })
        .collect();
    jpegs.sort();
    for (i, src) in jpegs.iter().take(24).enumerate() {
        let split = if i % 4 == 0 { "val" } else { "train" };
        let dir = root.join(split).join(format!("class{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(src, dir.join(format!("img{i}.JPEG"))).unwrap();
    }
    let good = std::fs::read(&jpegs[0]).unwrap();
    let bad = root.join("train/class1/corrupt.JPEG");
    std::fs::write(&bad, &good[..good.len() / 3]).unwrap();
    let text = TINY
        .replace(
            "dataset = \"mnist\"",
            "dataset = \"folder\"\nimage_size = 32\nresize = 36",
        )
        .replace("channels = 8\n", "channels = 6\n")
        .replace("batch = 16", "batch = 4")
        .replace("batch = 32", "batch = 5");
    let recipe = Recipe::parse(&text, Path::new("folder.toml")).unwrap();
    let out = scratch("folder-run");
    let mut opts = options(&out, None);
    opts.overrides.data = Some(root.clone());
    opts.overrides.limit = None;
    let Outcome::Finished(m) = train::train(&ctx, &recipe, &text, &opts).unwrap() else {
        panic!("the run stopped")
    };
    assert_eq!(
        m.train_items, 19,
        "18 good training images and the corrupt one"
    );
    assert_eq!(m.test_items, 6);
    // The corrupt file is skipped once per pass over the training split: the Hebbian epoch,
    // the feature pass and nothing else (the classifier reads cached features).
    assert!(m.skipped_items >= 1, "skipped {}", m.skipped_items);
    assert!(
        m.first_skipped
            .as_deref()
            .is_some_and(|e| e.contains("corrupt.JPEG")),
        "{:?}",
        m.first_skipped
    );
    assert!((0.0..=1.0).contains(&m.test_accuracy));
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&out);
}

/// The Hebbian and classifier weights after one short run of the tiny recipe (96 images, one
/// classifier epoch: 6 Hebbian steps and 3 classifier steps) on `ctx`.
fn short_run_weights(ctx: &GpuContext, name: &str) -> (Vec<f32>, Vec<f32>) {
    let out = scratch(name);
    let mut opts = options(&out, None);
    opts.overrides.limit = Some(96);
    opts.overrides.epochs = Some(1);
    let Outcome::Finished(m) = train::train(ctx, &tiny(), TINY, &opts).unwrap() else {
        panic!("the {name} run stopped")
    };
    assert_eq!(m.test_items, 96);
    let ck = checkpoint::load(&out).unwrap();
    let weights = (
        ck.tensors["layers.0.weight"].1.clone(),
        ck.tensors["classifier.weight"].1.clone(),
    );
    let _ = std::fs::remove_dir_all(&out);
    weights
}

/// Two short runs learned the same weights up to f32 rounding: the kernels they ran differ
/// (backend compilers, or device policies) but compute the same step. Argmax ties could break
/// this; none occur on real images.
fn assert_same_learning(a: &(Vec<f32>, Vec<f32>), b: &(Vec<f32>, Vec<f32>), what: &str) {
    use hebb::conformance::{rel_err, widen};
    let hebb = rel_err(&widen(&a.0), &widen(&b.0));
    let head = rel_err(&widen(&a.1), &widen(&b.1));
    assert!(
        hebb < 1e-4,
        "Hebbian weights: {what} relative error {hebb:.2e}"
    );
    assert!(
        head < 1e-3,
        "classifier weights: {what} relative error {head:.2e}"
    );
}

/// The same small run on lavapipe's GL adapter and on Vulkan: every kernel of a training run
/// compiles and runs through the GL backend too, and both learn the same weights up to f32
/// rounding (one short run: GL compiles each pipeline in seconds).
#[test]
fn a_run_on_gl_learns_what_vulkan_learns() {
    let Some(gl) = common::context("gl") else {
        return;
    };
    let Some(vk) = vulkan() else { return };
    let on_gl = short_run_weights(&gl, "backend-gl");
    let on_vulkan = short_run_weights(&vk, "backend-vulkan");
    assert_same_learning(&on_gl, &on_vulkan, "GL vs Vulkan");
}

/// `python_shuffle` reproduces CPython's `random.seed(s); random.shuffle(l)` exactly. The
/// expected orders were printed by CPython 3.11.7 (the Python of the authors' run) for
/// `l = list(range(n))`; the seed-200 checksum is Σ i·l[i] mod 1,000,000,007 over CIFAR's 50,000.
#[test]
fn python_shuffle_matches_cpython() {
    let shuffled = |n: usize, seed: u64| {
        let mut l: Vec<usize> = (0..n).collect();
        train::data::python_shuffle(&mut l, seed).unwrap();
        l
    };
    assert_eq!(shuffled(10, 0), [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]);
    assert_eq!(shuffled(7, 1), [3, 6, 5, 2, 0, 4, 1]);
    assert_eq!(
        shuffled(33, 200),
        [
            32, 26, 12, 17, 7, 9, 31, 11, 20, 6, 27, 1, 10, 15, 3, 16, 18, 24, 21, 30, 5, 14, 29,
            28, 8, 25, 19, 4, 0, 22, 23, 13, 2
        ]
    );
    // A seed above 2^32 seeds with two key words.
    assert_eq!(
        &shuffled(65, (1 << 40) + 5)[..12],
        [13, 20, 31, 40, 44, 6, 9, 12, 0, 11, 63, 62]
    );
    let cifar = shuffled(50_000, 200);
    assert_eq!(
        &cifar[..10],
        [
            23771, 28183, 218, 37502, 22097, 10232, 38892, 48043, 19488, 3784
        ]
    );
    let checksum = cifar
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &v)| (acc + (i * v) as u64) % 1_000_000_007);
    assert_eq!(checksum, 557_447_814);
    assert_eq!(shuffled(1, 5), [0]);
    assert!(shuffled(0, 5).is_empty());
}

/// `data.split = { kind = "python-shuffle" }`: validation is the tail of the shuffled order,
/// the labelled subsets are nested prefixes of the rest (not stratified), and every part is
/// disjoint from validation; the stratified default keeps each class's fraction.
#[test]
fn python_shuffle_split_is_nested_prefixes_and_a_held_out_tail() {
    let recipe = tiny();
    let root = train::data::data_root(&recipe, None).unwrap();
    let splits = train::data::open(&recipe, &root).unwrap();
    let items: Vec<usize> = (0..3000).collect();
    let split = hebb::nn::recipe::SplitSpec::PythonShuffle { seed: 200 };
    let part = |fraction: f64| {
        train::data::split_items(&*splits.train, &items, Some(500), split, fraction, 3).unwrap()
    };
    let (train_a, val, small) = part(0.01);
    let (train_b, val_b, large) = part(0.1);
    assert_eq!(
        (train_a.len(), val.len(), small.len(), large.len()),
        (2500, 500, 25, 250)
    );
    assert_eq!((&train_a, &val), (&train_b, &val_b));
    let mut order = items.clone();
    train::data::python_shuffle(&mut order, 200).unwrap();
    let mut tail = order[2500..].to_vec();
    tail.sort_unstable();
    assert_eq!(val, tail);
    let mut head = order[..25].to_vec();
    head.sort_unstable();
    assert_eq!(small, head);
    assert!(small.iter().all(|i| large.binary_search(i).is_ok()));
    assert!(large.iter().all(|i| val.binary_search(i).is_err()));
    assert!(train_a.iter().all(|i| val.binary_search(i).is_err()));
    assert!(train::data::split_items(&*splits.train, &items, Some(3000), split, 1.0, 3).is_err());
    // The stratified default: 10% of each class present among the training items.
    let strat = hebb::nn::recipe::SplitSpec::Stratified;
    let (train_s, val_s, lab_s) =
        train::data::split_items(&*splits.train, &items, Some(500), strat, 0.1, 3).unwrap();
    assert_eq!((train_s.len(), val_s.len()), (2500, 500));
    for class in 0..10 {
        let count = |v: &[usize]| {
            v.iter()
                .filter(|&&i| splits.train.label(i) == class)
                .count()
        };
        let expected = (count(&train_s) as f64 * 0.1).round() as usize;
        assert_eq!(count(&lab_s), expected.max(1), "class {class}");
    }
}

/// `data.validation` holds out a seeded subset of the training items (learned from by nothing);
/// `classifier.select = "best-validation"` reports the epoch of best validation accuracy, and
/// its checkpoint (`checkpoint-best.safetensors`) evaluates to the reported test accuracy.
#[test]
fn best_validation_selection_reports_and_keeps_the_selected_epoch() {
    let Some(ctx) = vulkan() else { return };
    let (train_items, val) = train::data::hold_out(&(0..480).collect::<Vec<_>>(), 96, 3).unwrap();
    assert_eq!((train_items.len(), val.len()), (384, 96));
    assert!(val.iter().all(|v| train_items.binary_search(v).is_err()));
    assert!(train::data::hold_out(&[1, 2, 3], 3, 0).is_err());

    let text = TINY
        .replace(
            "dataset = \"mnist\"",
            "dataset = \"mnist\"\nvalidation = 96",
        )
        .replace("epochs = 2\n", "epochs = 4\nselect = \"best-validation\"\n");
    let recipe = Recipe::parse(&text, Path::new("val.toml")).unwrap();
    let out = scratch("validation");
    let Outcome::Finished(m) = train::train(&ctx, &recipe, &text, &options(&out, None)).unwrap()
    else {
        panic!("the run stopped")
    };
    assert_eq!((m.train_items, m.validation_items), (384, 96));
    assert_eq!(
        m.labeled_items, 384,
        "the classifier learns from the training part only"
    );
    let (epochs, vals, best) = common::classifier_selection(&m);
    assert_eq!(epochs.len(), 4);
    assert_eq!(m.selected_epoch, best, "validation {vals:?}");
    assert_eq!(m.validation_accuracy, Some(vals[best]));
    assert_eq!(Some(m.test_accuracy), epochs[best].test_accuracy);
    assert_eq!(Some(m.last_epoch_test_accuracy), epochs[3].test_accuracy);
    // The test split is scored at each new best validation epoch and at the last one only.
    for (i, r) in epochs.iter().enumerate() {
        let new_best = vals[..i].iter().all(|&v| vals[i] > v);
        assert_eq!(
            r.test_accuracy.is_some(),
            new_best || i == 3,
            "epoch {i}: {vals:?}"
        );
    }
    let best_ck = out.join(train::BEST_FILE);
    assert_eq!(m.best_checkpoint.as_deref(), Some(best_ck.as_path()));
    let e = train::evaluate_checkpoint(&ctx, &best_ck, None, Some(480), false).unwrap();
    assert_eq!(e.evaluation.accuracy, m.test_accuracy);
    assert!(e.evaluation.predictions.is_empty());
    // Without validation items the selection has nothing to select on.
    let bad = TINY.replace("epochs = 2\n", "epochs = 2\nselect = \"best-validation\"\n");
    let e = Recipe::parse(&bad, Path::new("bad.toml"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("data.validation"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}

/// A recipe trained per seed: each seed's run in `<out>/seed<N>` (the seed stored with it, so a
/// resume repeats it), `seeds.json` with mean ± s.d.; finished seeds are read, not retrained.
#[test]
fn a_multi_seed_run_reports_the_mean_and_reuses_finished_seeds() {
    let Some(ctx) = vulkan() else { return };
    let out = scratch("seeds");
    let opts = common::train_options(&out, 96, None);
    let summary = train::train_seeds(&ctx, &tiny(), TINY, &opts, &[1, 2])
        .unwrap()
        .expect("not interrupted");
    assert_eq!(summary.runs.len(), 2);
    let accs: Vec<f64> = summary.runs.iter().map(|r| r.test_accuracy).collect();
    assert!((summary.mean - (accs[0] + accs[1]) / 2.0).abs() < 1e-12);
    let sd = ((accs[0] - accs[1]).powi(2) / 2.0).sqrt();
    assert!((summary.std - sd).abs() < 1e-12, "{} vs {sd}", summary.std);
    let a = checkpoint::load(&out.join("seed1")).unwrap();
    let b = checkpoint::load(&out.join("seed2")).unwrap();
    assert_ne!(
        a.tensors["layers.0.weight"].1, b.tensors["layers.0.weight"].1,
        "two seeds trained the same weights"
    );
    let stored: train::Overrides = serde_json::from_str(a.meta("overrides").unwrap()).unwrap();
    assert_eq!(stored.seed, Some(1));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("seeds.json")).unwrap()).unwrap();
    assert_eq!(json["mean"].as_f64(), Some(summary.mean));
    // Again: both seeds are read from their metrics, nothing is retrained.
    let before = std::fs::metadata(out.join("seed1/checkpoint.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let again = train::train_seeds(&ctx, &tiny(), TINY, &opts, &[1, 2])
        .unwrap()
        .unwrap();
    assert_eq!(again.mean, summary.mean);
    let after = std::fs::metadata(out.join("seed1/checkpoint.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a finished seed was retrained");
    // A finished seed of other options is not averaged in.
    let mut other = common::train_options(&out, 96, None);
    other.overrides.epochs = Some(1);
    let e = train::train_seeds(&ctx, &tiny(), TINY, &other, &[1, 2])
        .expect_err("a run of other options was reused")
        .to_string();
    assert!(e.contains("--overwrite"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Krotov & Hopfield's top layer (tanh power loss, no bias) trains end to end and predicts
/// well above chance; its bias stays 0.
#[test]
fn the_tanh_power_head_learns_without_a_bias() {
    let Some(ctx) = vulkan() else { return };
    let text = TINY.replace(
        "dropout = 0.25",
        "dropout = 0.25\nhead = { kind = \"tanh_power\", beta = 0.1, power = 6.0 }",
    );
    let recipe = Recipe::parse(&text, Path::new("tanh.toml")).unwrap();
    let out = scratch("tanh-head");
    let Outcome::Finished(m) = train::train(&ctx, &recipe, &text, &options(&out, None)).unwrap()
    else {
        panic!("the run stopped")
    };
    assert!(m.test_accuracy > 0.3, "test accuracy {}", m.test_accuracy);
    let ck = checkpoint::load(&out).unwrap();
    assert!(ck.tensors["classifier.bias"].1.iter().all(|&b| b == 0.0));
    for bad in ["power = 1.0", "beta = 0.0"] {
        let t = text
            .replace(
                "power = 6.0",
                if bad.starts_with("power") {
                    bad
                } else {
                    "power = 6.0"
                },
            )
            .replace(
                "beta = 0.1",
                if bad.starts_with("beta") {
                    bad
                } else {
                    "beta = 0.1"
                },
            );
        let e = Recipe::parse(&t, Path::new("bad.toml"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("classifier.head"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// The same small run under both device policies on Vulkan. The GPU policy's defaults (128 x
/// 128 tiles, subgroup competitions for every row length, batch-norm statistics in chunks)
/// carry a whole training run, on lavapipe as on a GPU, and learn what the CPU policy's
/// kernels learn up to f32 rounding.
#[test]
fn a_run_under_the_gpu_policy_learns_what_the_cpu_policy_learns() {
    use hebb::gpu::PolicyKind;
    let mut weights = Vec::new();
    for policy in [PolicyKind::Gpu, PolicyKind::Cpu] {
        let Some(ctx) = common::context_with("vulkan", Some(policy), None) else {
            return;
        };
        weights.push(short_run_weights(&ctx, &format!("policy-{policy}")));
        // The policy's choices ran: separate projection and competition kernels under both
        // (the fused kernel lost on lavapipe and on an H200), and the chunked batch-norm
        // statistics under the GPU policy only.
        let names = ctx.kernels.compiled_names();
        let compiled = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
        assert!(
            !compiled("projection_competition::"),
            "{policy} policy: compiled {names:?}"
        );
        assert_eq!(
            compiled("norm::bn_chunk_moments"),
            policy == PolicyKind::Gpu,
            "{policy} policy: compiled {names:?}"
        );
    }
    assert_same_learning(&weights[0], &weights[1], "GPU vs CPU policy");
}

/// A learning block whose output is needed (here by its output batch norm) projects once: the
/// rule's step reads the layer's U = P·W̃ᵀ instead of forming it again, so computing the
/// output costs no second projection, and the rule learns what it learns projecting alone.
#[test]
fn a_learning_block_whose_output_is_needed_projects_once() {
    use hebb::conformance::{rel_err, widen};
    use hebb::gpu::{Recorder, Tensor};
    let Some(ctx) = vulkan() else { return };
    let recipe = recipes::resolve(Some("default")).unwrap().0;
    let run = |output: bool| {
        let (mut net, images) = hebb::bench::train::synthetic_network(&ctx, &recipe).unwrap();
        let batch = recipe.hebbian.batch;
        let layer = &mut net.layers[0];
        assert!(layer.rule.takes_projection() && layer.output_bn.is_some());
        let x = Tensor::from_f32(&ctx, "images", &[images.len()], &images).unwrap();
        let mut projections = 0;
        for step in 0..3 {
            let mut rec = if step == 0 {
                Recorder::profiling(&ctx, false)
            } else {
                Recorder::new(&ctx)
            };
            let out = layer.train_step(&mut rec, &x, batch, output).unwrap();
            assert_eq!(out.is_some(), output);
            if step == 0 {
                let profile = rec.finish_profile().unwrap();
                let names: Vec<&str> = profile.iter().map(|d| d.kernel.as_str()).collect();
                // U = P·W̃ᵀ: a GEMM whose output is N x C, or the fused projection kernel.
                projections = names
                    .iter()
                    .filter(|k| k.contains("projection") || k.contains("gemm"))
                    .count();
                assert!(projections > 0, "{names:?}");
            } else {
                rec.submit();
            }
        }
        (projections, layer.rule.w.to_f32_vec(&ctx).unwrap())
    };
    let (with_output, shared) = run(true);
    let (alone, own) = run(false);
    assert_eq!(
        with_output, alone,
        "products recorded with the output ({with_output}) and without it ({alone})"
    );
    let err = rel_err(&widen(&shared), &widen(&own));
    assert!(err < 1e-5, "weights after 3 steps differ by {err:.2e}");
}

/// `output_current = "weights"` changes only what the block outputs (relu(W·v̂)^n, Krotov &
/// Hopfield's read-out): the rule's step still projects onto its own W̃ = sign(W)|W|^{p−1}, so
/// a block that must give its output learns the same weights as with the rule's current, while
/// its output differs.
#[test]
fn a_block_reading_out_w_itself_learns_what_the_rules_current_learns() {
    use hebb::conformance::{rel_err, widen};
    use hebb::gpu::{Recorder, Tensor};
    let Some(ctx) = vulkan() else { return };
    let seed = common::seed();
    let run = |current: &str| {
        let text = format!(
            "name = \"krotov\"\nseed = {}\n[data]\ndataset = \"mnist\"\n[hebbian]\nschedule = \"greedy\"\nepochs = 1\nbatch = 7\n[[layer]]\nkind = \"linear\"\nchannels = 65\nunit_norm_input = true\noutput_current = \"{current}\"\nrule = {{ preset = \"krotov/hopfield\", params = {{ p = 3.0, k = 7, delta = 0.4, prec = 1e-30, optimizer = {{ kind = \"sgd\", lr = 0.02, momentum = 0.0, nesterov = false, weight_decay = 0.0 }} }} }}\ninit = {{ kind = \"normal\", std = 1.0 }}\nactivation = {{ kind = \"relu_pow\", power = 4.5 }}\n[classifier]\nepochs = 1\nbatch = 7\noptimizer = {{ kind = \"adam\", lr = 1e-3 }}\n",
            seed % 1000
        );
        let recipe = Recipe::parse(&text, Path::new("krotov.toml")).unwrap();
        let (mut net, images) = hebb::bench::train::synthetic_network(&ctx, &recipe).unwrap();
        let layer = &mut net.layers[0];
        let x = Tensor::from_f32(&ctx, "images", &[images.len()], &images).unwrap();
        let mut outputs = Vec::new();
        for _ in 0..3 {
            let mut rec = Recorder::new(&ctx);
            let out = layer.train_step(&mut rec, &x, 7, true).unwrap().unwrap();
            // Queued writes land before the submitted commands: the step must overwrite it.
            out.poison_nan(&ctx);
            rec.submit();
            outputs.push(out.to_f32_vec(&ctx).unwrap()[..7 * 65].to_vec());
        }
        (layer.rule.w.to_f32_vec(&ctx).unwrap(), outputs)
    };
    let (w_rule, out_rule) = run("rule");
    let (w_plain, out_plain) = run("weights");
    let err = rel_err(&widen(&w_plain), &widen(&w_rule));
    assert!(
        err < 1e-6,
        "weights after 3 steps differ by {err:.2e} (seed {seed})"
    );
    assert!(out_plain.iter().flatten().all(|v| v.is_finite()));
    let apart = rel_err(&widen(&out_plain[0]), &widen(&out_rule[0]));
    assert!(
        apart > 0.1,
        "the output with W itself equals the rule's current's ({apart:.2e}, seed {seed})"
    );
}

/// After its first steps, a training step allocates nothing for its launches: every kernel's
/// parameters go to a reused uniform arena chunk, and every bind group comes from the cache.
#[test]
fn a_steady_state_training_step_allocates_no_uniforms_or_bind_groups() {
    use hebb::gpu::Recorder;
    let Some(ctx) = vulkan() else { return };
    let recipe = recipes::resolve(Some("default")).unwrap().0;
    let (mut net, images) = hebb::bench::train::synthetic_network(&ctx, &recipe).unwrap();
    let batch = recipe.hebbian.batch;
    let step = |net: &mut hebb::nn::network::Network| {
        let mut rec = Recorder::new(&ctx);
        net.train_step(&ctx, &mut rec, &images, batch, 0, &[0])
            .unwrap();
        rec.submit();
        let mut rec = Recorder::new(&ctx);
        net.forward(&ctx, &mut rec, &images, batch, 0).unwrap();
        rec.submit();
    };
    step(&mut net);
    step(&mut net);
    ctx.wait().unwrap();
    let (chunks, groups) = (ctx.uniform_chunks.created(), ctx.bind_groups.created());
    assert!(
        chunks > 0 && groups > 0,
        "{chunks} chunks, {groups} bind groups"
    );
    for _ in 0..5 {
        step(&mut net);
    }
    ctx.wait().unwrap();
    assert_eq!(
        ctx.uniform_chunks.created(),
        chunks,
        "uniform chunks allocated"
    );
    assert_eq!(ctx.bind_groups.created(), groups, "bind groups created");
}
