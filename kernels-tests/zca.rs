//! ZCA whitening (`nn::zca`): the GPU transform against its float64 reference on ragged
//! shapes (whole images and blocks), whitened training data with covariance ≈ I, the
//! `[preprocess] zca` table and the geometry errors, and a whitened run that checkpoints,
//! resumes and evaluates with its transform.

use std::path::Path;

use hebb::conformance::{random_f32, rel_err, widen};
use hebb::data::source::ItemShape;
use hebb::gpu::{GpuContext, Recorder, Tensor};
use hebb::nn::recipe::Recipe;
use hebb::nn::zca::{self, Zca, ZcaGeometry};
use hebb::reference;
use hebb::train::{self, Outcome, TrainOptions, checkpoint};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common;

fn shape(channels: usize, height: usize, width: usize) -> ItemShape {
    ItemShape {
        channels,
        height,
        width,
    }
}

/// Whitens `batch` images of x on the GPU through a transform built for `capacity` images.
fn gpu_whiten(
    ctx: &GpuContext,
    g: ZcaGeometry,
    mean: &[f32],
    z: &[f32],
    x: &[f32],
    batch: usize,
    capacity: usize,
) -> Vec<f32> {
    let t = Zca::new(ctx, g, mean.to_vec(), z.to_vec(), capacity).unwrap();
    let len = capacity * g.image.len();
    let mut padded = x.to_vec();
    padded.resize(len, f32::NAN);
    let xt = Tensor::from_f32(ctx, "x", &[len], &padded).unwrap();
    let mut rec = Recorder::new(ctx);
    let out = t.apply(&mut rec, &xt, batch).unwrap();
    out.poison_nan(ctx);
    let out = t.apply(&mut rec, &xt, batch).unwrap();
    rec.submit();
    out.to_f32_vec(ctx).unwrap()[..batch * g.image.len()].to_vec()
}

#[test]
fn gpu_whitening_matches_the_float64_reference() {
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let seed = common::seed();
    let cases: Vec<(&str, ZcaGeometry)> = vec![
        ("whole, D = 7", ZcaGeometry::new(shape(1, 1, 7)).unwrap()),
        ("whole, D = 33", ZcaGeometry::new(shape(3, 1, 11)).unwrap()),
        ("whole, D = 65", ZcaGeometry::new(shape(5, 13, 1)).unwrap()),
        (
            "4x4 blocks of 3x8x12, D = 48",
            ZcaGeometry::blocked(shape(3, 8, 12), [4, 4]).unwrap(),
        ),
        (
            "3x11 blocks of 1x7x33, D = 33",
            ZcaGeometry::blocked(shape(1, 7, 33), [7, 11]).unwrap(),
        ),
        (
            "32x32 blocks of 1x64x64, D = 1024",
            ZcaGeometry::new(shape(1, 64, 64)).unwrap(),
        ),
    ];
    for (i, (name, g)) in cases.into_iter().enumerate() {
        let d = g.dim();
        let (batch, capacity) = (3, 5);
        let s = seed ^ ((i as u64) << 32);
        let mean = random_f32(s, d);
        // A symmetric Z with entries of order 1/√D, so outputs stay of order 1.
        let r = random_f32(s ^ 1, d * d);
        let scale = 1.0 / (d as f32).sqrt();
        let z: Vec<f32> = (0..d * d)
            .map(|e| (r[e] + r[(e % d) * d + e / d]) * 0.5 * scale)
            .collect();
        let x = random_f32(s ^ 2, batch * g.image.len());
        let got = gpu_whiten(&ctx, g, &mean, &z, &x, batch, capacity);
        let want = reference::zca::whiten(&g, &widen(&mean), &widen(&z), &widen(&x), batch);
        let err = rel_err(&widen(&got), &want);
        eprintln!("zca {name}: relative error {err:.2e}");
        assert!(
            err <= 1e-5,
            "{name}: relative error {err:.2e} (HEBB_SEED={seed})"
        );
    }
}

/// Correlated synthetic vectors v = m + A·g (g uniform with unit variance, A = 3·I + 0.3·R)
/// whose covariance has every eigenvalue above 1; n x D.
fn correlated(d: usize, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a: Vec<f64> = (0..d * d)
        .map(|e| 3.0 * ((e / d == e % d) as u32 as f64) + 0.3 * rng.random_range(-1.0..1.0))
        .collect();
    let m: Vec<f64> = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
    let mut out = Vec::with_capacity(n * d);
    let root3 = 3f64.sqrt();
    for _ in 0..n {
        let g: Vec<f64> = (0..d).map(|_| rng.random_range(-root3..root3)).collect();
        for i in 0..d {
            let v: f64 = m[i] + (0..d).map(|j| a[i * d + j] * g[j]).sum::<f64>();
            out.push(v as f32);
        }
    }
    out
}

/// Fits a transform to training images, whitens them on the GPU and checks that the
/// whitened vectors have covariance U·diag(λ/(λ + ε))·Uᵀ ≈ I: every entry within
/// ε/(λ_min + ε) (the shrinkage ε causes) plus sampling and f32 noise.
#[test]
fn whitened_training_vectors_have_identity_covariance() {
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let seed = common::seed();
    let epsilon = 1e-2;
    let cases = [
        (
            "whole 3x1x11",
            ZcaGeometry::new(shape(3, 1, 11)).unwrap(),
            3000,
        ),
        (
            "4x4 blocks of 1x8x8",
            ZcaGeometry::blocked(shape(1, 8, 8), [4, 4]).unwrap(),
            800,
        ),
    ];
    for (name, g, images) in cases {
        let d = g.dim();
        // Correlated vectors laid out as images: the blocks of image k are vectors k·blocks...
        let vectors = correlated(d, images * g.blocks(), seed);
        let mut x = vec![0f32; images * g.image.len()];
        {
            // Scatter each vector into its block with the reference layout change.
            let planes = reference::elementwise::blocks_to_planes(
                &widen(&vectors),
                [images, g.image.channels, g.image.height, g.image.width],
                g.block,
            );
            for (o, v) in x.iter_mut().zip(planes) {
                *o = v as f32;
            }
        }
        // The host's gather (what the fit sees) recovers the vectors.
        let mut rows = Vec::new();
        for img in x.chunks_exact(g.image.len()) {
            g.push_vectors(img, &mut rows);
        }
        assert_eq!(
            rows, vectors,
            "{name}: push_vectors is not the blocks layout"
        );
        let fit = zca::fit(&rows, d, epsilon, zca::Moments::Centred).unwrap();
        let lambda_min = fit.eigenvalues[0];
        assert!(
            lambda_min > 0.5,
            "{name}: λ_min = {lambda_min}: the synthetic data is not well conditioned"
        );
        let narrow = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (mean, z) = (narrow(&fit.mean), narrow(&fit.matrix));
        // Z is symmetric, and whitening the fit's own covariance is exact in float64.
        for i in 0..d {
            for j in 0..i {
                assert_eq!(fit.matrix[i * d + j], fit.matrix[j * d + i], "{name}");
            }
        }
        let capacity = 256;
        let mut white = Vec::with_capacity(x.len());
        for chunk in x.chunks(capacity * g.image.len()) {
            let batch = chunk.len() / g.image.len();
            white.extend(gpu_whiten(&ctx, g, &mean, &z, chunk, batch, capacity));
        }
        let mut wrows = Vec::new();
        for img in white.chunks_exact(g.image.len()) {
            g.push_vectors(img, &mut wrows);
        }
        let cov = reference::zca::covariance(&widen(&wrows), d);
        let tol = epsilon / (lambda_min + epsilon) + 2e-3;
        let mut worst = 0f64;
        for i in 0..d {
            for j in 0..d {
                let e = (cov[i * d + j] - (i == j) as u32 as f64).abs();
                worst = worst.max(e);
            }
        }
        eprintln!(
            "zca {name}: max |cov − I| = {worst:.2e} (bound {tol:.2e}, λ_min {lambda_min:.2})"
        );
        assert!(
            worst <= tol,
            "{name}: max |cov − I| = {worst:.2e} > {tol:.2e} (HEBB_SEED={seed})"
        );
        // The shrinkage is visible: diagonal entries sit below 1 by about ε/λ.
        let mean_diag: f64 = (0..d).map(|i| cov[i * d + i]).sum::<f64>() / d as f64;
        assert!(mean_diag < 1.0, "{name}: mean diagonal {mean_diag}");
    }
}

/// Lagani's moments about zero: the fit keeps μ = 0, and Z·x (nothing subtracted) has the
/// second moment (1/(n − 1))·Σ (Z·x)(Z·x)ᵀ ≈ I within ε/(λ_min + ε). On vectors with a mean
/// of up to 2 per entry the covariance fit fails the same check, so the two modes differ.
#[test]
fn the_second_moment_about_zero_is_whitened_with_nothing_subtracted() {
    let seed = common::seed();
    let (d, n, epsilon) = (33, 2000, 1e-2);
    let rows = correlated(d, n, seed);
    let whitened_moment_error = |moments: zca::Moments| -> (f64, f64, f64) {
        let fit = zca::fit(&rows, d, epsilon, moments).unwrap();
        let mut second = vec![0f64; d * d];
        for x in rows.chunks_exact(d) {
            let w: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| fit.matrix[i * d + j] * x[j] as f64).sum())
                .collect();
            for i in 0..d {
                for j in 0..d {
                    second[i * d + j] += w[i] * w[j] / (n - 1) as f64;
                }
            }
        }
        let worst = (0..d * d)
            .map(|e| (second[e] - (e / d == e % d) as u32 as f64).abs())
            .fold(0f64, f64::max);
        let largest_mean = fit.mean.iter().fold(0f64, |a, m| a.max(m.abs()));
        (worst, fit.eigenvalues[0], largest_mean)
    };
    let (worst, lambda_min, largest_mean) = whitened_moment_error(zca::Moments::AboutZero);
    let tol = epsilon / (lambda_min + epsilon) + 1e-9;
    assert_eq!(largest_mean, 0.0, "μ about zero (HEBB_SEED={seed})");
    assert!(
        worst <= tol,
        "about zero: max |M − I| = {worst:.2e} > {tol:.2e} (HEBB_SEED={seed})"
    );
    let (centred_worst, _, centred_mean) = whitened_moment_error(zca::Moments::Centred);
    assert!(
        centred_mean > 0.5,
        "the test vectors have a mean (HEBB_SEED={seed})"
    );
    assert!(
        centred_worst > 10.0 * tol,
        "the covariance fit also whitens the raw second moment ({centred_worst:.2e}); the \
         test cannot tell the modes apart (HEBB_SEED={seed})"
    );
    assert!(zca::fit(&rows[..d], d, epsilon, zca::Moments::AboutZero).is_err());
}

const TINY_ZCA: &str = r#"
name = "tiny-zca"
seed = 5
[data]
dataset = "mnist"
[preprocess]
normalize = "dataset"
zca = { epsilon = 1e-2, samples = 300 }
[hebbian]
schedule = "simultaneous"
epochs = 1
batch = 16
[[layer]]
channels = 8
kernel = 5
rule = { preset = "lagani/soft-wta-exp", params = { temperature = 0.02, optimizer = { kind = "sgd", lr = 0.01, momentum = 0.0, nesterov = false, weight_decay = 0.0 } } }
init = { kind = "uniform_fan_in" }
activation = { kind = "relu" }
pool = { kind = "max", kernel = 4, stride = 4 }
[classifier]
epochs = 2
batch = 32
optimizer = { kind = "adam", lr = 2e-3 }
"#;

#[test]
fn the_zca_table_parses_and_bad_tables_and_shapes_are_errors() {
    let r = Recipe::parse(TINY_ZCA, Path::new("z.toml")).unwrap();
    let z = r.preprocess.zca.unwrap();
    assert_eq!((z.epsilon, z.samples), (1e-2, 300));
    let defaults = TINY_ZCA.replace("zca = { epsilon = 1e-2, samples = 300 }", "zca = {}");
    let z = Recipe::parse(&defaults, Path::new("z.toml"))
        .unwrap()
        .preprocess
        .zca
        .unwrap();
    assert_eq!((z.epsilon, z.samples), (1e-2, 10_000));
    let none = TINY_ZCA.replace("zca = { epsilon = 1e-2, samples = 300 }\n", "");
    assert!(
        Recipe::parse(&none, Path::new("z.toml"))
            .unwrap()
            .preprocess
            .zca
            .is_none()
    );
    let typo = TINY_ZCA.replace("samples = 300", "sample = 300");
    let e = Recipe::parse(&typo, Path::new("z.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("z.toml") && e.contains("sample") && e.contains("line"),
        "{e}"
    );
    let zero = TINY_ZCA.replace("epsilon = 1e-2", "epsilon = 0.0");
    let e = Recipe::parse(&zero, Path::new("z.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("preprocess.zca.epsilon"), "{e}");

    // Geometry: whole images up to 32x32 and 4096 values, else 32x32 blocks.
    let g = ZcaGeometry::new(shape(1, 28, 28)).unwrap();
    assert_eq!((g.dim(), g.blocks(), g.whole()), (784, 1, true));
    let g = ZcaGeometry::new(shape(3, 32, 32)).unwrap();
    assert_eq!((g.dim(), g.blocks()), (3072, 1));
    let g = ZcaGeometry::new(shape(3, 96, 64)).unwrap();
    assert_eq!((g.dim(), g.blocks(), g.block), (3072, 6, [32, 32]));
    let e = ZcaGeometry::new(shape(3, 40, 40)).unwrap_err().to_string();
    assert!(
        e.contains("preprocess.zca") && e.contains("3x40x40") && e.contains("multiples of 32"),
        "{e}"
    );
    let e = ZcaGeometry::new(shape(3, 64, 33)).unwrap_err().to_string();
    assert!(e.contains("W = 33"), "{e}");
    let e = ZcaGeometry::new(shape(8, 32, 32)).unwrap_err().to_string();
    assert!(
        e.contains("8192") && e.contains("at most 4 channels"),
        "{e}"
    );

    // The network checks the transform against its input.
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let net = |input: ItemShape, d: usize| {
        hebb::nn::network::Network::new(
            &ctx,
            &r,
            input,
            10,
            None,
            Some((vec![0.0; d], vec![0.0; d * d])),
        )
    };
    let e = net(shape(1, 40, 40), 1600).err().unwrap().to_string();
    assert!(e.contains("1x40x40") && e.contains("32"), "{e}");
    let e = net(shape(1, 28, 28), 100).err().unwrap().to_string();
    assert!(e.contains("784"), "{e}");
    assert!(net(shape(1, 28, 28), 784).is_ok());
}

fn options(out: &Path, stop_after: Option<usize>) -> TrainOptions {
    common::train_options(out, 320, stop_after)
}

fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch("zca", name)
}

#[test]
fn a_whitened_run_checkpoints_resumes_and_evaluates_with_its_transform() {
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let recipe = Recipe::parse(TINY_ZCA, Path::new("z.toml")).unwrap();
    let straight = scratch("straight");
    let Outcome::Finished(a) =
        train::train(&ctx, &recipe, TINY_ZCA, &options(&straight, None)).unwrap()
    else {
        panic!("the straight run stopped")
    };
    // Chance is 10%.
    assert!(a.test_accuracy > 0.2, "test accuracy {}", a.test_accuracy);
    let ca = checkpoint::load(&straight).unwrap();
    assert_eq!(ca.tensors["input.zca_mean"].0, vec![784]);
    assert_eq!(ca.tensors["input.zca"].0, vec![784, 784]);
    let (mean, z) = ca.zca().unwrap();
    assert!(mean.iter().chain(&z).all(|v| v.is_finite()));
    // Evaluation rebuilds the network with the stored transform.
    let e = train::evaluate_checkpoint(&ctx, &straight, None, Some(320), false).unwrap();
    assert_eq!(e.evaluation.accuracy, a.test_accuracy);
    // Stop inside the Hebbian epoch (20 batches of 16), resume to the end: the transform is
    // restored from the checkpoint and the run repeats the straight one.
    let split = scratch("split");
    let first = train::train(&ctx, &recipe, TINY_ZCA, &options(&split, Some(7))).unwrap();
    assert!(matches!(first, Outcome::Interrupted(_)));
    let Outcome::Finished(b) = train::resume(&ctx, &split, &options(&split, None)).unwrap() else {
        panic!("the resumed run stopped again")
    };
    common::assert_same_tensors(
        &straight,
        &split,
        &[
            "input.zca",
            "input.zca_mean",
            "layers.0.weight",
            "classifier.weight",
        ],
    );
    assert_eq!(a.test_accuracy, b.test_accuracy);
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&split);
}

/// Times the fit at CIFAR's size (10,000 vectors of 3072); `cargo test --release -- --ignored
/// zca_fit_time` prints it.
#[test]
#[ignore = "takes seconds to minutes of CPU; run by hand to time the fit"]
fn zca_fit_time_at_3072_dims() {
    let (n, d) = (10_000, 3072);
    // Smooth random images: a few random cosines per channel plus noise.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut rows = Vec::with_capacity(n * d);
    for _ in 0..n {
        let f: Vec<f64> = (0..6).map(|_| rng.random_range(0.0..0.5)).collect();
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let v = (f[c] * y as f64 + f[c + 3] * x as f64).cos()
                        + 0.1 * rng.random_range(-1.0..1.0);
                    rows.push(v as f32);
                }
            }
        }
    }
    let started = std::time::Instant::now();
    let fit = zca::fit(&rows, d, 1e-2, zca::Moments::Centred).unwrap();
    let total = started.elapsed().as_secs_f64();
    eprintln!(
        "ZCA fit of {n} x {d}: {total:.1} s in all, eigendecomposition {:.1} s \
         (λ from {:.2e} to {:.2e})",
        fit.eigen_seconds,
        fit.eigenvalues[0],
        fit.eigenvalues[d - 1]
    );
    assert!(fit.matrix.iter().all(|v| v.is_finite()));
}
