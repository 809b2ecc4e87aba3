//! Criterion bench of the tiled and naive GEMM, timed on the GPU (timestamps where the adapter
//! has them, else wall-clock around a fenced submit) through `iter_custom`.
//! Adapter: `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, as for `hebb`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hebb::conformance::random_f32;
use hebb::gpu::{AdapterChoice, GpuContext, GpuTimer, Tensor};
use hebb::kernels::gemm::{self, Gemm};

fn bench(c: &mut Criterion) {
    let ctx = GpuContext::new(&AdapterChoice::default()).expect("a GPU adapter");
    let timer = GpuTimer::new(&ctx, false);
    let mut group = c.benchmark_group(format!("gemm on {}", ctx.adapter_name()));
    group.sample_size(10);
    let shapes = [
        ("square", Gemm::new(256, 256, 256)),
        ("square", Gemm::new(512, 512, 512)),
        ("hebbian", Gemm::new(128, 864, 9216).trans(true, false)),
    ];
    for (label, g) in shapes {
        let (ar, ac) = g.a_dims();
        let (br, bc) = g.b_dims();
        let a = Tensor::from_f32(&ctx, "A", &[ar, ac], &random_f32(1, ar * ac)).unwrap();
        let b = Tensor::from_f32(&ctx, "B", &[br, bc], &random_f32(2, br * bc)).unwrap();
        let cm = Tensor::from_f32(&ctx, "C", &[g.m, g.n], &random_f32(3, g.m * g.n)).unwrap();
        group.throughput(Throughput::Elements(g.flops() as u64));
        let id = format!("{label} {}x{}x{}", g.m, g.n, g.k);
        for (variant, naive) in [("tiled", false), ("naive", true)] {
            group.bench_with_input(BenchmarkId::new(variant, &id), &g, |bencher, g| {
                bencher.iter_custom(|iters| {
                    let mut total = 0.0;
                    for _ in 0..iters {
                        total += timer
                            .time(&ctx, |rec| {
                                if naive {
                                    gemm::gemm_naive(rec, g, &a, &b, &cm)
                                } else {
                                    gemm::gemm(rec, g, &a, &b, &cm)
                                }
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
