use hebb::gpu::*;
use hebb::kernels::gemm::{self, Gemm};
use std::time::Instant;
fn t(ctx: &GpuContext, name: &str, f: &dyn Fn(&mut Recorder)) {
    for _ in 0..2 {
        let mut r = Recorder::new(ctx);
        f(&mut r);
        r.submit();
        ctx.wait().unwrap();
    }
    let s = Instant::now();
    for _ in 0..10 {
        let mut r = Recorder::new(ctx);
        f(&mut r);
        r.submit();
        ctx.wait().unwrap();
    }
    println!("{name}: {:.2} ms", s.elapsed().as_secs_f64() * 100.0);
}
fn main() {
    let ctx = GpuContext::new(&AdapterChoice::default()).unwrap();
    let r = |n: usize| {
        Tensor::from_f32(
            &ctx,
            "x",
            &[n],
            &(0..n).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let (n, c, d) = (25088, 64, 25);
    let p = r(n * d);
    let w = r(c * d);
    let u = r(n * c);
    let dw = r(c * d);
    t(&ctx, "U = P Wt (25088x64x25)", &|rec| {
        gemm::gemm(
            rec,
            &Gemm::new(n, c, d).shaped(&ctx).trans(false, true),
            &p,
            &w,
            &u,
        )
        .unwrap()
    });
    t(&ctx, "dW = Yt P (64x25, K=25088)", &|rec| {
        gemm::gemm(
            rec,
            &Gemm::new(c, d, n).shaped(&ctx).trans(true, false),
            &u,
            &p,
            &dw,
        )
        .unwrap()
    });
    let (b, f, k) = (64, 12544, 10);
    let x = r(b * f);
    let wc = r(k * f);
    let z = r(b * k);
    let g = r(k * f);
    t(&ctx, "logits 64x10 K=12544", &|rec| {
        gemm::gemm(
            rec,
            &Gemm::new(b, k, f).shaped(&ctx).trans(false, true),
            &x,
            &wc,
            &z,
        )
        .unwrap()
    });
    t(&ctx, "dW 10x12544 K=64", &|rec| {
        gemm::gemm(
            rec,
            &Gemm::new(k, f, b).shaped(&ctx).trans(true, false),
            &z,
            &x,
            &g,
        )
        .unwrap()
    });
    t(&ctx, "empty submit", &|_rec| {});
}
