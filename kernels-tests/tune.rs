//! The autotuning cache: what `hebb tune` writes is what later runs read, per adapter and
//! driver; a tuned entry changes the kernel a launch uses (and the result stays correct); a
//! damaged cache is a clear error naming the file.

use hebb::bench::tune;
use hebb::bench::{BenchBudget, train};
use hebb::conformance::{random_f32, rel_err, widen};
use hebb::gpu::tuning::{self, ShapeClass, TunedEntry, TunedKernel, Tuning};
use hebb::gpu::{GpuTimer, Recorder, Tensor};
use hebb::kernels::gemm::{self, Gemm, GemmTiles};
use hebb::reference;

use crate::common::{self, scratch};

fn entry(class: ShapeClass, tiles: GemmTiles) -> TunedEntry {
    TunedEntry {
        class,
        shape: [class.m, class.n, class.k],
        tiles,
        gflops: 2.0,
        default_tiles: GemmTiles::SMALL,
        default_gflops: 1.0,
    }
}

#[test]
fn the_cache_round_trips_per_adapter_and_bad_files_are_errors() {
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let dir = scratch("tune", "cache");
    let path = dir.join("nested").join("tune.json");
    let class = ShapeClass::new(TunedKernel::Gemm, (true, false), 100, 800, 9000);
    assert_eq!((class.m, class.n, class.k), (128, 1024, 16384));
    let mut t = Tuning::default();
    t.insert(entry(class, GemmTiles::SMALL));
    tuning::save(&path, &ctx.info, &t).unwrap();

    // Another adapter's section is kept when this one is rewritten.
    let mut other = ctx.info.clone();
    other.driver_info = "some other driver".into();
    let other_class = ShapeClass::new(TunedKernel::ConvUpdate, (true, false), 7, 7, 7);
    let mut t2 = Tuning::default();
    t2.insert(entry(other_class, GemmTiles::GPU));
    tuning::save(&path, &other, &t2).unwrap();
    tuning::save(&path, &ctx.info, &t).unwrap();

    let mine = tuning::load(&path, &ctx.info).unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine.get(&class), Some(GemmTiles::SMALL));
    assert_eq!(mine.get(&other_class), None);
    let theirs = tuning::load(&path, &other).unwrap();
    assert_eq!(theirs.get(&other_class), Some(GemmTiles::GPU));
    assert!(
        tuning::load(&dir.join("absent.json"), &ctx.info)
            .unwrap()
            .is_empty()
    );

    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let e = tuning::load(&bad, &ctx.info).unwrap_err().to_string();
    assert!(e.contains("bad.json") && e.contains("hebb-tune/1"), "{e}");
    std::fs::write(&bad, r#"{"format": "hebb-tune/0", "adapters": {}}"#).unwrap();
    let e = tuning::load(&bad, &ctx.info).unwrap_err().to_string();
    assert!(e.contains("hebb-tune/0") && e.contains("expected"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tuned_entry_picks_the_kernel_and_the_product_stays_correct() {
    let Some(mut ctx) = common::context("vulkan") else {
        return;
    };
    let g = Gemm::new(37, 70, 129).trans(true, false).shaped();
    let untuned = g.resolved_tiles(&ctx).unwrap();
    let chosen = if untuned == GemmTiles::SMALL {
        GemmTiles::GPU
    } else {
        GemmTiles::SMALL
    };
    ctx.tuning.insert(entry(g.shape_class(), chosen));
    assert_eq!(g.resolved_tiles(&ctx).unwrap(), chosen);
    // Explicit tiles still win over the cache.
    assert_eq!(
        g.clone().tiles(untuned).resolved_tiles(&ctx).unwrap(),
        untuned
    );

    let seed = common::seed();
    let a = random_f32(seed, 129 * 37);
    let b = random_f32(seed ^ 1, 129 * 70);
    let ta = Tensor::from_f32(&ctx, "A", &[129, 37], &a).unwrap();
    let tb = Tensor::from_f32(&ctx, "B", &[129, 70], &b).unwrap();
    let tc = Tensor::from_f32(&ctx, "C", &[37, 70], &vec![f32::NAN; 37 * 70]).unwrap();
    let mut rec = Recorder::new(&ctx);
    gemm::gemm(&mut rec, &g, &ta, &tb, &tc).unwrap();
    rec.submit();
    let got = widen(&tc.to_f32_vec(&ctx).unwrap());
    let mut want = vec![0.0; 37 * 70];
    reference::gemm::gemm(&g, &widen(&a), &widen(&b), &mut want);
    let err = rel_err(&got, &want);
    assert!(
        err < 1e-5,
        "seed {seed}: relative error {err:e} with tuned tiles {chosen:?}"
    );
}

#[test]
fn tune_replays_a_recipes_launch_shapes() {
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let recipe = hebb::train::recipes::resolve(Some("default")).unwrap().0;
    let shapes = tune::recipe_shapes(&ctx, &recipe).unwrap();
    assert!(!shapes.is_empty(), "no GEMM or conv launch was logged");
    // The shape log is off again: later launches are not recorded.
    assert!(ctx.take_shape_log().is_empty());
    let timer = GpuTimer::new(&ctx, true);
    let budget = BenchBudget {
        sample_s: 0.0,
        samples: 1,
    };
    let (tuned, rows) = tune::tune(&ctx, &shapes[..1], &timer, budget, |_| {}).unwrap();
    assert_eq!(tuned.len(), 1);
    assert!(rows[0].candidates >= 2, "{rows:?}");
    assert!(rows[0].best_gflops >= rows[0].default_gflops, "{rows:?}");
    let stages = train::bench_train(&ctx, &recipe, 1).unwrap();
    assert!(
        stages
            .iter()
            .all(|s| s.images_per_s.is_finite() && s.images_per_s > 0.0)
    );
}

/// `hebb bench train --profile`: every dispatch of each stage's step is named and timed, by
/// timestamps and by fenced submissions, and a profiled step computes what an unprofiled one
/// does (the dispatches only stop sharing a compute pass).
#[test]
fn the_step_profile_names_and_times_every_dispatch() {
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let recipe = hebb::train::recipes::resolve(Some("default")).unwrap().0;
    let stages = train::stages(&recipe, &train::synthetic_network(&ctx, &recipe).unwrap().0);
    for wall in [false, true] {
        let rows = train::profile_train(&ctx, &recipe, 2, wall).unwrap();
        let timer = if wall { "wall" } else { "timestamp" };
        for (label, ..) in &stages {
            let mine: Vec<_> = rows.iter().filter(|r| &r.stage == label).collect();
            assert!(!mine.is_empty(), "no rows for {label} ({timer})");
            assert!(
                mine.iter().any(|r| r.kernel.starts_with("gemm")),
                "{mine:?}"
            );
        }
        for r in &rows {
            assert_eq!(r.timer, timer);
            assert!(
                r.kernel.contains("::") && !r.kernel.contains("uncached"),
                "{r:?}"
            );
            assert!(r.calls_per_step >= 1.0, "{r:?}");
            assert!(
                r.device_ms_per_step.is_finite() && r.device_ms_per_step >= 0.0,
                "{r:?}"
            );
            assert!(
                r.host_ms_per_step.is_finite() && r.host_ms_per_step >= 0.0,
                "{r:?}"
            );
        }
        assert!(rows.iter().any(|r| r.device_ms_per_step > 0.0), "{rows:?}");
    }
    // One learning step and one frozen forward, profiled or not, from the same start.
    let (label, upto, learning) = stages[0].clone();
    let step = |profiled: Option<bool>| {
        let (mut net, images) = train::synthetic_network(&ctx, &recipe).unwrap();
        let batch = recipe.hebbian.batch;
        let mut rec = match profiled {
            Some(wall) => Recorder::profiling(&ctx, wall),
            None => Recorder::new(&ctx),
        };
        net.train_step(&ctx, &mut rec, &images, batch, upto, &learning)
            .unwrap();
        let out = net.forward(&ctx, &mut rec, &images, batch, upto).unwrap();
        match profiled {
            Some(_) => assert!(!rec.finish_profile().unwrap().is_empty()),
            None => {
                rec.submit();
            }
        }
        let out = out.to_f32_vec(&ctx).unwrap();
        let w = net.layers[upto].rule.w.to_f32_vec(&ctx).unwrap();
        (out, w)
    };
    let plain = step(None);
    for wall in [false, true] {
        assert_eq!(step(Some(wall)), plain, "{label}, profiled (wall: {wall})");
    }
}

/// A launch timed by `GpuTimer`, with timestamps and by the wall clock, computes what an
/// untimed one does: its kernel parameters reach the GPU on both paths (the timestamp path
/// submits the recorder's encoder itself).
#[test]
fn a_timed_launch_computes_its_result() {
    let Some(ctx) = common::context("vulkan") else {
        return;
    };
    let (m, n, k) = (33, 65, 7);
    let seed = 0x71AE;
    let a = random_f32(seed, m * k);
    let b = random_f32(seed ^ 1, k * n);
    let want = reference::dense::Mat::from_vec(m, k, widen(&a))
        .matmul(&reference::dense::Mat::from_vec(k, n, widen(&b)));
    for force_wall in [false, true] {
        let timer = GpuTimer::new(&ctx, force_wall);
        let ta = Tensor::from_f32(&ctx, "a", &[m, k], &a).unwrap();
        let tb = Tensor::from_f32(&ctx, "b", &[k, n], &b).unwrap();
        let tc = Tensor::from_f32(&ctx, "c", &[m, n], &vec![0.0; m * n]).unwrap();
        tc.poison_nan(&ctx);
        let g = Gemm::new(m, n, k).shaped();
        let seconds = timer
            .time(&ctx, |rec| gemm::gemm(rec, &g, &ta, &tb, &tc))
            .unwrap();
        assert!(seconds > 0.0);
        let got = widen(&tc.to_f32_vec(&ctx).unwrap());
        let err = rel_err(&got, &want.data);
        assert!(
            err < 1e-5,
            "seed {seed}: timed GEMM (wall {force_wall}) relative error {err:e}"
        );
    }
}
