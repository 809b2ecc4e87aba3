//! Criterion bench of one Hebbian training step, fused (FastHebb) against the naive per-sample
//! twin, on small layer shapes (the full paper shapes are in `hebb bench rules`).
//! Adapter: `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, as for `hebb`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hebb::conformance::random_f32;
use hebb::gpu::{AdapterChoice, GpuContext, GpuTimer, Tensor};
use hebb::rules::gpu::{FromForward, GpuRule, RuleInit, UpdatePath};
use hebb::rules::preset::RuleConfig;
use serde_json::json;

fn bench(c: &mut Criterion) {
    let ctx = GpuContext::new(&AdapterChoice::default()).expect("a GPU adapter");
    let timer = GpuTimer::new(&ctx, false);
    let mut group = c.benchmark_group(format!("rule step on {}", ctx.adapter_name()));
    group.sample_size(10);
    let sgd =
        json!({"kind": "sgd", "lr": 1e-3, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0});
    let presets = [
        (
            "lagani/hpca",
            json!({"adaptive_step": false, "optimizer": sgd.clone()}),
        ),
        (
            "softhebb/softkrotov",
            json!({"t_invert": 1.0, "optimizer": {"kind": "softhebb-adaptive", "lr": 0.08, "power": 0.5}}),
        ),
    ];
    let (n, cn, d) = (1024, 64, 75);
    let x = Tensor::from_f32(&ctx, "X", &[n, d], &random_f32(1, n * d)).unwrap();
    for (name, params) in presets {
        let config = RuleConfig::from_params(name, &params).unwrap();
        for (label, path) in [("fused", UpdatePath::Fused), ("naive", UpdatePath::Naive)] {
            let init = RuleInit {
                w: random_f32(2, cn * d).iter().map(|v| v * 0.1).collect(),
                ..Default::default()
            };
            let mut rule = GpuRule::with_path(&ctx, config.clone(), cn, d, n, &init, path).unwrap();
            let id = BenchmarkId::new(label, format!("{name} {n}x{cn}x{d}"));
            group.bench_function(id, |bencher| {
                bencher.iter_custom(|iters| {
                    let mut total = 0.0;
                    for _ in 0..iters {
                        total += timer
                            .time(&ctx, |rec| {
                                rule.step(rec, &x, n, None, FromForward::default())
                            })
                            .unwrap();
                    }
                    Duration::from_secs_f64(total)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
