use hebb::gpu::*;
use hebb::kernels::gemm::{self, Gemm};
use hebb::kernels::hebbian::{self, Competition};
use hebb::kernels::im2col::{self, ConvGeometry};
use hebb::kernels::layout::{self, Layout};
use hebb::kernels::pool::{self, Pool2d, PoolKind};
use std::time::Instant;
fn t(ctx: &GpuContext, name: &str, f: &dyn Fn(&mut Recorder)) {
    for _ in 0..2 { let mut r = Recorder::new(ctx); f(&mut r); r.submit(); ctx.wait().unwrap(); }
    let s = Instant::now();
    for _ in 0..10 { let mut r = Recorder::new(ctx); f(&mut r); r.submit(); ctx.wait().unwrap(); }
    println!("{name}: {:.2} ms", s.elapsed().as_secs_f64() * 100.0);
}
fn main() {
    let ctx = GpuContext::new(&AdapterChoice::default()).unwrap();
    let r = |n: usize| Tensor::from_f32(&ctx, "x", &[n], &(0..n).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<_>>()).unwrap();
    let (b, c, d) = (64, 64, 25); let n = b * 784;
    let x = r(b * 784); let p = r(n * d); let w = r(c * d); let u = r(n * c); let a = r(n * c); let g = r(n * c); let pl = r(n * c); let po = r(b * c * 49);
    let geo = ConvGeometry { batch: b, in_channels: 1, h: 28, w: 28, kernel: [5, 5], stride: [1, 1], padding: [2, 2], reflect: true };
    t(&ctx, "im2col", &|rec| im2col::im2col(rec, &geo, &x, 0, &p).unwrap());
    t(&ctx, "gemm U", &|rec| gemm::gemm(rec, &Gemm::new(n, c, d).shaped(&ctx).trans(false, true), &p, &w, &u).unwrap());
    t(&ctx, "conv implicit", &|rec| hebb::kernels::conv::conv_forward_rows(rec, &geo, &x, 0, &w, c, &u).unwrap());
    t(&ctx, "triangle", &|rec| hebbian::competition(rec, Competition::Triangle { power: 0.7 }, &u, None, n, c, &a, &g).unwrap());
    t(&ctx, "relu", &|rec| hebbian::competition(rec, Competition::ReluOnly, &u, None, n, c, &a, &g).unwrap());
    t(&ctx, "rows_to_planes", &|rec| layout::convert(rec, Layout::RowsToPlanes, b, c, 784, &a, &pl).unwrap());
    let pg = Pool2d { kind: PoolKind::Max, planes: b * c, h: 28, w: 28, kernel: [8, 8], stride: [4, 4], padding: [2, 2] };
    t(&ctx, "maxpool 8/4/2", &|rec| pool::pool2d(rec, &pg, &pl, &po).unwrap());
}
