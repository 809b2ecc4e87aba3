//! Random-shape checks of the foundation kernels (GEMM, reductions, elementwise, casts).
//!
//! Tolerances (u = 2^-24, the f32 unit roundoff; inputs are uniform in [-1, 1) and exact in f32,
//! so all error comes from the kernel's own rounding):
//! - GEMM: a K-term f32 dot product accumulates K roundings of partial sums that grow like
//!   sqrt(k); their random-walk sum gives a relative error of about u·sqrt(K/2). We allow
//!   4·u·sqrt(K) for the products plus 8·u for alpha/beta, a 5–6x margin that a wrong index,
//!   a lost tile or a double write (errors of order 1) cannot hide in. With beta != 0 that is
//!   multiplied by the condition number ‖|α·AB| + |β·C|‖ / ‖α·AB + β·C‖ (1 unless they cancel).
//! - Sums (of x, x², |x| and x·y): the same random-walk argument over the elements summed:
//!   4·u·sqrt(n) + 4·u, times the condition number ‖Σ|terms|‖ / ‖Σ terms‖ (1 for x² and |x|;
//!   large when a short row nearly cancels).
//! - max and max |x|: exact in any order, tolerance 0.
//! - fill, copy, f16 -> f32: exact, tolerance 0. scale: one rounding, 2·u. axpy: at most two
//!   roundings (fma or not) of terms as large as |αx| + |y|, so 4·u times the condition number
//!   ‖|αx| + |y|‖ / ‖αx + y‖ (cancellation in a single element can make that large).
//! - GEMM with f16 operands (storage only): the kernel widens each half exactly and accumulates
//!   in f32, so against the reference on the same halves the bound is the f32 one above. (Against
//!   the f32 data before rounding to halves the error would be about 2^-11·sqrt(2): a property of
//!   the storage format, which the caller chooses, not of the kernel.)
//! - f32 -> f16: a half has 11 significant bits, so one rounding costs at most 2^-11 relative;
//!   WGSL lets the conversion round either way to a neighbour, so we allow 2^-10.

use half::f16;

use crate::conformance::{Row, U32, derive_seed, random_f32, widen};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::gemm::{self, Gemm, GemmKind, GemmTiles, SplitK};
use crate::kernels::im2col::{self, ConvGeometry};
use crate::kernels::layout::{self, Blocks, Layout};
use crate::kernels::norm::{self, BatchNorm};
use crate::kernels::pool::{self, Pool2d, PoolKind};
use crate::kernels::reduce::{self, ReduceOp};
use crate::kernels::{classifier, elementwise};
use crate::reference;

/// Ragged sizes: 1, primes around tile edges, and one past a power of two.
pub const RAGGED: [usize; 5] = [1, 7, 33, 65, 257];

pub fn gemm_tol(k: usize) -> f64 {
    4.0 * U32 * (k as f64).sqrt() + 8.0 * U32
}

/// The condition number of a sum, ‖Σ|terms|‖ / ‖Σ terms‖ (at least 1): rounding errors scale
/// with the magnitudes summed, so a result that nearly cancels needs a looser relative bound.
pub fn cancellation(spread: &[f64], result: &[f64]) -> f64 {
    let norm = |v: &[f64]| v.iter().map(|t| t * t).sum::<f64>().sqrt();
    (norm(spread) / norm(result).max(f64::MIN_POSITIVE)).max(1.0)
}

pub fn sum_tol(n: usize) -> f64 {
    4.0 * U32 * (n as f64).sqrt() + 4.0 * U32
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    Tiled,
    Naive,
}

/// Runs one GEMM on the GPU and the reference, comparing the M x N views of C and checking
/// that no element of C outside them changed.
/// `halves` says which of A and B are stored as f16.
pub fn check_gemm(
    ctx: &GpuContext,
    g: &Gemm,
    kernel: GemmKernel,
    halves: (bool, bool),
    seed: u64,
) -> Row {
    let dtype = |half: bool| if half { DType::F16 } else { DType::F32 };
    let storage = (dtype(halves.0), dtype(halves.1));
    let trans = format!(
        "{}{}{}",
        if g.trans_a { 'T' } else { 'N' },
        if g.trans_b { 'T' } else { 'N' },
        match halves {
            (false, false) => "",
            (true, false) => " A:f16",
            (false, true) => " B:f16",
            (true, true) => " A,B:f16",
        }
    );
    let tiles = g
        .kernel_tiles(ctx, storage.0, storage.1)
        .unwrap_or_else(|_| g.tiles.unwrap_or_else(|| GemmTiles::for_adapter(ctx)));
    let (name, variant) = match kernel {
        GemmKernel::Naive => ("gemm_naive", format!("{trans} beta={}", g.beta != 0.0)),
        GemmKernel::Tiled => {
            let (splits, _) = g.plan_split(ctx, &tiles);
            (
                tiles.kind.entry(),
                format!(
                    "{trans} {} split={splits} beta={}",
                    tiles.label(),
                    g.beta != 0.0
                ),
            )
        }
    };
    let row = Row::new(
        name,
        variant,
        &[("m", g.m), ("n", g.n), ("k", g.k), ("batch", g.batch)],
        seed,
    );
    // Explicit tiles past this device's limits (double buffering under WebGPU's 16 KiB of
    // workgroup memory): the launcher must refuse them.
    if let Some(Err(limit)) = g.tiles.map(|t| t.within_limits(ctx)) {
        return row.refusal(
            &limit.to_string(),
            run_gemm(ctx, g, kernel, storage, seed).map_err(|e| e.to_string()),
        );
    }
    match run_gemm(ctx, g, kernel, storage, seed) {
        Ok((got, want, outside_changed, cond)) => {
            // Tensor cores multiply halves exactly but may round (or truncate) their f32 sums
            // in an order and mode of the hardware's choosing: 4x the f32 bound.
            let hw = if tiles.kind == GemmKind::Coop {
                4.0
            } else {
                1.0
            };
            let row = row.compare(&got, &want, hw * gemm_tol(g.k) * cond);
            if outside_changed > 0 {
                row.fail(format!(
                    "{outside_changed} elements of C outside the M x N views changed"
                ))
            } else {
                row
            }
        }
        Err(e) => row.fail(e),
    }
}

fn run_gemm(
    ctx: &GpuContext,
    g: &Gemm,
    kernel: GemmKernel,
    storage: (DType, DType),
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>, usize, f64)> {
    let (ar, ac) = g.a_dims();
    let (br, bc) = g.b_dims();
    let a_len = g.offset_a + (g.batch - 1) * g.stride_a() + (ar.max(1) - 1) * g.lda() + ac;
    let b_len = g.offset_b + (g.batch - 1) * g.stride_b() + (br.max(1) - 1) * g.ldb() + bc;
    let c_len = g.offset_c + (g.batch - 1) * g.stride_c() + (g.m - 1) * g.ldc() + g.n;
    // f16 operands: the data rounded to halves, which the reference then reads exactly.
    let operand = |seed: u64, len: usize, dtype: DType| -> (Vec<f32>, Vec<f16>) {
        let v = random_f32(seed, len);
        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        match dtype {
            DType::F16 => (h.iter().map(|x| x.to_f32()).collect(), h),
            _ => (v, h),
        }
    };
    let upload = |label: &str, (v, h): &(Vec<f32>, Vec<f16>), dtype: DType| match dtype {
        DType::F16 => Tensor::from_f16(ctx, label, &[h.len()], h),
        _ => Tensor::from_f32(ctx, label, &[v.len()], v),
    };
    let a_data = operand(seed, a_len, storage.0);
    let b_data = operand(seed ^ 1, b_len, storage.1);
    let (a, b) = (&a_data.0, &b_data.0);
    // With beta == 0 the kernel must not read C, so C starts as NaN; otherwise random.
    let c0: Vec<f32> = if g.beta == 0.0 {
        vec![f32::NAN; c_len]
    } else {
        random_f32(seed ^ 2, c_len)
    };
    let ta = upload("A", &a_data, storage.0)?;
    let tb = upload("B", &b_data, storage.1)?;
    let tc = Tensor::from_f32(ctx, "C", &[c_len], &c0)?;
    let mut rec = Recorder::new(ctx);
    match kernel {
        GemmKernel::Tiled => gemm::gemm(&mut rec, g, &ta, &tb, &tc)?,
        GemmKernel::Naive => gemm::gemm_naive(&mut rec, g, &ta, &tb, &tc)?,
    }
    rec.submit();
    let got_c = tc.to_f32_vec(ctx)?;

    let mut want_c = widen(&c0);
    reference::gemm::gemm(g, &widen(a), &widen(b), &mut want_c);
    let view = reference::gemm::c_view_indices(g);
    let mut inside = vec![false; c_len];
    for &i in &view {
        inside[i] = true;
    }
    let outside_changed = (0..c_len)
        .filter(|&i| !inside[i] && got_c[i].to_bits() != c0[i].to_bits())
        .count();
    let got = view.iter().map(|&i| got_c[i] as f64).collect();
    let want: Vec<f64> = view.iter().map(|&i| want_c[i]).collect();
    // With beta != 0, α·AB and β·C can cancel (a 1 x 1 x 1 product, say); the rounding error
    // scales with ‖|α·AB| + |β·C|‖, so the tolerance is multiplied by that over ‖result‖.
    let cond = if g.beta == 0.0 {
        1.0
    } else {
        let mut ab = vec![0.0; c_len];
        let product_only = g.clone().scale(g.alpha, 0.0);
        reference::gemm::gemm(&product_only, &widen(a), &widen(b), &mut ab);
        let spread: f64 = view
            .iter()
            .map(|&i| (ab[i].abs() + (g.beta as f64 * c0[i] as f64).abs()).powi(2))
            .sum();
        let norm: f64 = want.iter().map(|v| v * v).sum();
        (spread / norm.max(f64::MIN_POSITIVE)).sqrt().max(1.0)
    };
    Ok((got, want, outside_changed, cond))
}

/// The GEMM checks: every op combination on ragged shapes, vec4-aligned shapes, three tile
/// configurations, batches, strided views, explicit and automatic split-K, and the naive kernel.
pub fn gemm_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut cases: Vec<(Gemm, GemmKernel)> = Vec::new();
    let mut half_cases: Vec<(Gemm, GemmKernel, (bool, bool))> = Vec::new();
    let ragged = [
        (1, 1, 1),
        (7, 33, 65),
        (33, 7, 257),
        (65, 257, 33),
        (257, 65, 7),
        (1, 257, 65),
        (257, 1, 33),
    ];
    let aligned = [(64, 128, 96), (65, 36, 260)];
    let combos = [(false, false), (false, true), (true, false), (true, true)];
    for (i, &(ta, tb)) in combos.iter().enumerate() {
        for (j, &(m, n, k)) in ragged.iter().chain(aligned.iter()).enumerate() {
            // Alternate beta == 0 (C poisoned with NaN) and beta != 0 (C read once).
            let beta = if (i + j) % 2 == 0 { 0.0 } else { -0.75 };
            cases.push((
                Gemm::new(m, n, k)
                    .trans(ta, tb)
                    .scale(1.25, beta)
                    .split_k(SplitK::Fixed(1)),
                GemmKernel::Tiled,
            ));
        }
        // The other tile configurations (the small one, and the CPU or GPU default this adapter
        // does not use) and the naive baseline, on a ragged and an aligned shape.
        let other = if GemmTiles::tiled_for_adapter(ctx) == GemmTiles::CPU {
            GemmTiles::GPU
        } else {
            GemmTiles::CPU
        };
        for &(m, n, k) in &[(33, 65, 257), (64, 128, 96)] {
            for tiles in [GemmTiles::SMALL, other] {
                cases.push((
                    Gemm::new(m, n, k)
                        .trans(ta, tb)
                        .scale(0.5, 0.25)
                        .tiles(tiles),
                    GemmKernel::Tiled,
                ));
            }
            cases.push((
                Gemm::new(m, n, k).trans(ta, tb).scale(0.5, 0.0),
                GemmKernel::Naive,
            ));
        }
        // Double-buffered tiles (the adapter's default with two tile buffers): ragged K with a
        // tail, K shorter than one BK step, and an aligned shape.
        let doubled = GemmTiles {
            stages: 2,
            ..GemmTiles::tiled_for_adapter(ctx)
        };
        for &(m, n, k) in &[(33, 65, 257), (7, 33, 5), (64, 128, 96)] {
            cases.push((
                Gemm::new(m, n, k)
                    .trans(ta, tb)
                    .scale(0.5, 0.25)
                    .tiles(doubled),
                GemmKernel::Tiled,
            ));
        }
        // f16 operands (A, B or both): ragged (scalar loads, odd offsets reach the high half of
        // a word), vec4-aligned (16-byte blocks of eight halves), and the naive kernel.
        for (h, halves) in [(true, false), (false, true), (true, true)]
            .into_iter()
            .enumerate()
        {
            let mut ragged = Gemm::new(33, 65, 257).trans(ta, tb).scale(1.0, 0.0);
            ragged.offset_a = 1 + h;
            ragged.offset_b = 3;
            half_cases.push((ragged, GemmKernel::Tiled, halves));
            let aligned = Gemm::new(64, 36, 100).trans(ta, tb).scale(0.5, 0.25);
            half_cases.push((aligned, GemmKernel::Tiled, halves));
            let naive = Gemm::new(7, 33, 65).trans(ta, tb).scale(1.0, 0.0);
            half_cases.push((naive, GemmKernel::Naive, halves));
        }
        // Split-K on a tall-skinny (Hebbian-shaped) product: explicit and automatic.
        cases.push((
            Gemm::new(33, 65, 4097)
                .trans(ta, tb)
                .scale(1.0, 0.5)
                .split_k(SplitK::Fixed(7)),
            GemmKernel::Tiled,
        ));
    }
    // The shape-chosen tile candidates (GemmTiles::for_shape) on the layer shapes that pick
    // them: forward U = P·Wᵀ (skinny N) and update ΔW = Yᵀ·P (tiny output, long K).
    for tiles in GemmTiles::candidates(ctx).iter().skip(1) {
        cases.push((
            Gemm::new(65, 10, 257).trans(false, true).tiles(*tiles),
            GemmKernel::Tiled,
        ));
        cases.push((
            Gemm::new(37, 25, 1000)
                .trans(true, false)
                .scale(1.0, 0.5)
                .tiles(*tiles),
            GemmKernel::Tiled,
        ));
    }
    // Hebbian update shape dW = Yᵀ·X: (C x N)·(N x D), with Y stored N x C.
    cases.push((
        Gemm::new(33, 100, 5000)
            .trans(true, false)
            .split_k(SplitK::Auto),
        GemmKernel::Tiled,
    ));
    // Batched, dense.
    cases.push((
        Gemm::new(7, 33, 65).batch(3).scale(1.0, 0.0),
        GemmKernel::Tiled,
    ));
    cases.push((
        Gemm::new(7, 33, 65).batch(3).scale(1.0, 0.0),
        GemmKernel::Naive,
    ));
    cases.push((
        Gemm::new(33, 65, 1025)
            .batch(2)
            .scale(1.0, 1.0)
            .split_k(SplitK::Fixed(3)),
        GemmKernel::Tiled,
    ));
    // Batched vec4 reads at a nonzero aligned offset.
    let mut aligned_batch = Gemm::new(64, 36, 96)
        .batch(2)
        .trans(true, false)
        .scale(1.0, 0.5);
    aligned_batch.offset_a = 4;
    aligned_batch.offset_b = 8;
    cases.push((aligned_batch, GemmKernel::Tiled));
    // Where SUBGROUP allows, the subgroup kernel in each of its row counts. Leading
    // dimensions padded to multiples of 4 let it take ragged M, N and K (its K tail, clamped
    // edge rows and columns); the unpadded ragged shape runs its tiled fallback.
    let variants: Vec<GemmTiles> = if GemmTiles::subgroup_available(ctx) {
        [8, 16, 24].map(GemmTiles::subgroup).to_vec()
    } else {
        Vec::new()
    };
    let pad4 = |g: Gemm| {
        let (lda, ldb) = (g.lda().next_multiple_of(4), g.ldb().next_multiple_of(4));
        let mut g = g;
        g.lda = Some(lda);
        g.ldb = Some(ldb);
        g
    };
    for (v, tiles) in variants.iter().enumerate() {
        for (i, &(ta, tb)) in combos.iter().enumerate() {
            let beta = if (i + v) % 2 == 0 { 0.0 } else { 0.5 };
            for (m, n, k, padded) in [
                (36, 68, 257, true),
                (4, 4, 3, true),
                (64, 128, 96, false),
                (7, 33, 65, false),
            ] {
                let g = Gemm::new(m, n, k).trans(ta, tb);
                let g = if padded { pad4(g) } else { g };
                cases.push((
                    g.scale(1.25, beta).split_k(SplitK::Fixed(1)).tiles(*tiles),
                    GemmKernel::Tiled,
                ));
            }
        }
        // Batched, split-K (K per split not a multiple of 4 steps' tail), aligned offset.
        let mut batched = pad4(Gemm::new(40, 36, 1031).batch(2).trans(v % 2 == 1, false))
            .scale(1.0, 0.5)
            .split_k(SplitK::Fixed(3))
            .tiles(*tiles);
        batched.offset_a = 4;
        batched.offset_b = 8;
        cases.push((batched, GemmKernel::Tiled));
    }
    // Strided views: offsets, padded leading dimensions and batch strides with gaps.
    let mut strided = Gemm::new(33, 17, 29)
        .batch(2)
        .trans(false, true)
        .scale(0.75, 0.5);
    strided.offset_a = 5;
    strided.offset_b = 3;
    strided.offset_c = 7;
    strided.lda = Some(29 + 3);
    strided.ldb = Some(29 + 1);
    strided.ldc = Some(17 + 2);
    strided.stride_a = Some(33 * 32 + 11);
    strided.stride_b = Some(17 * 30 + 5);
    strided.stride_c = Some(33 * 19 + 13);
    cases.push((strided.clone(), GemmKernel::Tiled));
    cases.push((strided.clone().split_k(SplitK::Fixed(2)), GemmKernel::Tiled));
    cases.push((strided, GemmKernel::Naive));

    // K far past llvmpipe's 65,535 loop iterations per invocation (ctx.loop_iteration_limit):
    // even with one split requested, the launcher must split K there, or the sums come back
    // silently truncated.
    cases.push((
        Gemm::new(8, 12, 270_001)
            .trans(true, false)
            .split_k(SplitK::Fixed(1)),
        GemmKernel::Tiled,
    ));
    // The cooperative-matrix kernel where the adapter has it: 2 x 2 and 1 x 1 tiles, every
    // transpose, alpha and beta, batches at aligned offsets; the default choice for f16.
    if GemmTiles::coop_width(ctx).is_some() {
        for (i, &(ta, tb)) in combos.iter().enumerate() {
            let beta = if i % 2 == 0 { 0.0 } else { 0.5 };
            for tiles in [GemmTiles::coop(2, 2), GemmTiles::coop(1, 1)] {
                half_cases.push((
                    Gemm::new(64, 96, 80)
                        .trans(ta, tb)
                        .scale(1.25, beta)
                        .tiles(tiles),
                    GemmKernel::Tiled,
                    (true, true),
                ));
            }
        }
        let mut batched = Gemm::new(48, 32, 272).batch(3).scale(1.0, -0.5);
        batched.offset_a = 8;
        batched.offset_c = 16;
        half_cases.push((batched, GemmKernel::Tiled, (true, true)));
    }
    // The Hebbian update on f16 activations and patches: dW = Yᵀ·X, split-K, batched.
    half_cases.push((
        Gemm::new(33, 100, 5000)
            .trans(true, false)
            .split_k(SplitK::Auto),
        GemmKernel::Tiled,
        (true, true),
    ));
    half_cases.push((
        Gemm::new(36, 40, 1031)
            .batch(2)
            .trans(true, false)
            .scale(1.0, 0.5)
            .split_k(SplitK::Fixed(3)),
        GemmKernel::Tiled,
        (true, false),
    ));

    cases
        .into_iter()
        .map(|(g, kernel)| (g, kernel, (false, false)))
        .chain(half_cases)
        .enumerate()
        .map(|(i, (g, kernel, halves))| {
            check_gemm(ctx, &g, kernel, halves, derive_seed(base_seed, i as u64))
        })
        .collect()
}

/// Row, column and global reductions on ragged shapes, including tall inputs that take the
/// chunked two-pass paths.
pub fn reduce_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let shapes = [
        (1, 1),
        (7, 33),
        (257, 65),
        (33, 1),
        (1, 257),
        (600, 7),
        (5000, 3),
        (2, 9000),
    ];
    let mut rows = Vec::new();
    let mut index = 1000;
    for &(r, c) in &shapes {
        for op in ReduceOp::ALL {
            for along_rows in [true, false] {
                index += 1;
                let seed = derive_seed(base_seed, index);
                let kernel = if along_rows {
                    "row_reduce"
                } else {
                    "col_reduce"
                };
                let n = if along_rows { c } else { r };
                let row = Row::new(kernel, op.name(), &[("rows", r), ("cols", c)], seed);
                let x = random_f32(seed, r * c);
                let reduce_ref = |op, v: &[f64]| {
                    if along_rows {
                        reference::reduce::row_reduce(op, v, r, c)
                    } else {
                        reference::reduce::col_reduce(op, v, r, c)
                    }
                };
                let want = reduce_ref(op, &widen(&x));
                let tol = if op.is_sum() {
                    sum_tol(n) * cancellation(&reduce_ref(ReduceOp::SumAbs, &widen(&x)), &want)
                } else {
                    0.0
                };
                let run = || -> Result<Vec<f64>> {
                    let tx = Tensor::from_f32(ctx, "x", &[r, c], &x)?;
                    let out = Tensor::empty(ctx, "out", &[want.len()], DType::F32)?;
                    out.poison_nan(ctx);
                    let mut rec = Recorder::new(ctx);
                    if along_rows {
                        reduce::row_reduce(&mut rec, op, &tx, r, c, &out)?;
                    } else {
                        reduce::col_reduce(&mut rec, op, &tx, r, c, &out)?;
                    }
                    rec.submit();
                    Ok(widen(&out.to_f32_vec(ctx)?))
                };
                rows.push(match run() {
                    Ok(got) => row.compare(&got, &want, tol),
                    Err(e) => row.fail(e),
                });
            }
        }
    }
    for &n in &[1usize, 7, 4097, 65 * 257, 100_003] {
        for op in [ReduceOp::AbsMax, ReduceOp::Sum] {
            index += 1;
            let seed = derive_seed(base_seed, index);
            let row = Row::new("global_reduce", op.name(), &[("n", n)], seed);
            let x = random_f32(seed, n);
            let want = [reference::reduce::global_reduce(op, &widen(&x))];
            let spread = [reference::reduce::global_reduce(
                ReduceOp::SumAbs,
                &widen(&x),
            )];
            let tol = if op.is_sum() {
                sum_tol(n) * cancellation(&spread, &want)
            } else {
                0.0
            };
            let run = || -> Result<Vec<f64>> {
                let tx = Tensor::from_f32(ctx, "x", &[n], &x)?;
                let out = Tensor::empty(ctx, "out", &[1], DType::F32)?;
                out.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                reduce::global_reduce(&mut rec, op, &tx, &out)?;
                rec.submit();
                Ok(widen(&out.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, tol),
                Err(e) => row.fail(e),
            });
        }
    }
    for &(r, c) in &[(1, 1), (257, 65), (600, 7)] {
        index += 1;
        let seed = derive_seed(base_seed, index);
        let row = Row::new("col_dot", "sum x*y", &[("rows", r), ("cols", c)], seed);
        let x = random_f32(seed, r * c);
        let y = random_f32(seed ^ 1, r * c);
        let want = reference::reduce::col_dot(&widen(&x), &widen(&y), r, c);
        let abs = |v: &[f32]| v.iter().map(|t| t.abs() as f64).collect::<Vec<f64>>();
        let spread = reference::reduce::col_dot(&abs(&x), &abs(&y), r, c);
        let run = || -> Result<Vec<f64>> {
            let tx = Tensor::from_f32(ctx, "x", &[r, c], &x)?;
            let ty = Tensor::from_f32(ctx, "y", &[r, c], &y)?;
            let out = Tensor::empty(ctx, "out", &[c], DType::F32)?;
            out.poison_nan(ctx);
            let mut rec = Recorder::new(ctx);
            reduce::col_dot(&mut rec, &tx, &ty, r, c, &out)?;
            rec.submit();
            Ok(widen(&out.to_f32_vec(ctx)?))
        };
        rows.push(match run() {
            Ok(got) => row.compare(&got, &want, sum_tol(r) * cancellation(&spread, &want)),
            Err(e) => row.fail(e),
        });
    }
    rows
}

/// fill, scale, axpy, copy and the f32 <-> f16 casts (native f16 where the device has
/// SHADER_F16, and always the packed fallback).
pub fn elementwise_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut index = 2000;
    let mut cast_paths = vec![false];
    if ctx.has(wgpu::Features::SHADER_F16) {
        cast_paths.push(true);
    }
    for &n in RAGGED.iter().chain([70_001usize].iter()) {
        for kernel in ["fill", "scale", "axpy", "copy", "dropout"] {
            index += 1;
            let seed = derive_seed(base_seed, index);
            // dropout: element i takes the mask of element first + i of the batch.
            let first = if kernel == "dropout" {
                (seed % 1000) as usize
            } else {
                0
            };
            let row = Row::new(kernel, "f32", &[("n", n), ("first", first)], seed);
            let x = random_f32(seed, n);
            let y = random_f32(seed ^ 1, n);
            let alpha = 0.6f32;
            let (want, tol) = match kernel {
                "fill" => (vec![alpha as f64; n], 0.0),
                "scale" => (
                    reference::elementwise::scale(alpha as f64, &widen(&x)),
                    2.0 * U32,
                ),
                "axpy" => {
                    let want = reference::elementwise::axpy(alpha as f64, &widen(&x), &widen(&y));
                    // A sum loses relative accuracy under cancellation: the rounding error is
                    // at most 2u·(|αx| + |y|) per element, so scale by the condition number.
                    let spread: Vec<f64> = x
                        .iter()
                        .zip(&y)
                        .map(|(a, b)| (alpha as f64 * *a as f64).abs() + (*b as f64).abs())
                        .collect();
                    let norm = |v: &[f64]| v.iter().map(|t| t * t).sum::<f64>().sqrt();
                    let cond = norm(&spread) / norm(&want).max(f64::MIN_POSITIVE);
                    (want, 4.0 * U32 * cond)
                }
                // Kept elements are x/(1 − rate), one rounding each.
                "dropout" => (
                    reference::elementwise::dropout(&widen(&x), first, 0.3, seed as u32),
                    2.0 * U32,
                ),
                _ => (widen(&x), 0.0),
            };
            let run = || -> Result<Vec<f64>> {
                let tx = Tensor::from_f32(ctx, "x", &[n], &x)?;
                let ty = Tensor::from_f32(ctx, "y", &[n], &y)?;
                let mut rec = Recorder::new(ctx);
                let out = match kernel {
                    "fill" => {
                        tx.poison_nan(ctx);
                        elementwise::fill(&mut rec, &tx, alpha)?;
                        &tx
                    }
                    "scale" => {
                        elementwise::scale(&mut rec, &tx, alpha)?;
                        &tx
                    }
                    "axpy" => {
                        elementwise::axpy(&mut rec, alpha, &tx, &ty)?;
                        &ty
                    }
                    "dropout" => {
                        elementwise::dropout(&mut rec, &tx, n, first, 0.3, seed as u32)?;
                        &tx
                    }
                    _ => {
                        ty.poison_nan(ctx);
                        elementwise::copy(&mut rec, &tx, &ty)?;
                        &ty
                    }
                };
                rec.submit();
                Ok(widen(&out.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, tol),
                Err(e) => row.fail(e),
            });
        }
        for &native in &cast_paths {
            let path = if native { "native" } else { "packed" };
            // f32 -> f16
            index += 1;
            let seed = derive_seed(base_seed, index);
            let x = random_f32(seed, n);
            let row = Row::new("cast_f32_to_f16", path, &[("n", n)], seed);
            let want = reference::elementwise::to_f16(&widen(&x));
            let run = || -> Result<Vec<f64>> {
                let tx = Tensor::from_f32(ctx, "x", &[n], &x)?;
                let th = Tensor::empty(ctx, "h", &[n], DType::F16)?;
                th.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                elementwise::copy_with(&mut rec, &tx, &th, native)?;
                rec.submit();
                Ok(widen(&th.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, 1.0 / 1024.0),
                Err(e) => row.fail(e),
            });
            // f16 -> f32
            index += 1;
            let seed = derive_seed(base_seed, index);
            let h: Vec<f16> = random_f32(seed, n)
                .iter()
                .map(|&v| f16::from_f32(v))
                .collect();
            let row = Row::new("cast_f16_to_f32", path, &[("n", n)], seed);
            let want: Vec<f64> = h.iter().map(|v| v.to_f64()).collect();
            let run = || -> Result<Vec<f64>> {
                let th = Tensor::from_f16(ctx, "h", &[n], &h)?;
                let ty = Tensor::empty(ctx, "y", &[n], DType::F32)?;
                ty.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                elementwise::copy_with(&mut rec, &th, &ty, native)?;
                rec.submit();
                Ok(widen(&ty.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, 0.0),
                Err(e) => row.fail(e),
            });
        }
    }
    // signed_pow (hebbian.wgsl): out = sign(w)·|w|^a, ELEMENTS_PER_INVOCATION per invocation,
    // so the sizes also straddle one workgroup's block of 256·8 elements.
    for &n in RAGGED.iter().chain([2048usize, 2049, 70_001].iter()) {
        for a in [1.0f32, 2.0, 4.5] {
            index += 1;
            let seed = derive_seed(base_seed, index);
            let row = Row::new("signed_pow", format!("a={a}"), &[("n", n)], seed);
            let x = random_f32(seed, n);
            let want: Vec<f64> = widen(&x)
                .iter()
                .map(|v| v.signum() * v.abs().powf(a as f64))
                .collect();
            // a = 1 is a copy and a = 2 one rounded product; other exponents go through WGSL's
            // pow = exp2(a·log2 v), whose few-ulp error in log2 v is amplified by a.
            let tol = match a {
                1.0 => 0.0,
                2.0 => 2.0 * U32,
                _ => 16.0 * U32 * (1.0 + a as f64),
            };
            let run = || -> Result<Vec<f64>> {
                let tx = Tensor::from_f32(ctx, "w", &[n], &x)?;
                let out = Tensor::empty(ctx, "signed power", &[n], DType::F32)?;
                out.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                crate::kernels::hebbian::signed_pow(&mut rec, &tx, n, a, &out)?;
                rec.submit();
                Ok(widen(&out.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, tol),
                Err(e) => row.fail(e),
            });
        }
    }
    rows
}

/// im2col against the reference on ragged geometries: zero and reflect padding, strides,
/// rectangular kernels, a kernel as large as the padded input, and a step offset.
pub fn im2col_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    // (batch, c_in, h, w, kh, kw, sh, sw, ph, pw, reflect, offset)
    let cases = [
        (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, false, 0),
        (2, 3, 7, 7, 3, 3, 1, 1, 1, 1, false, 0),
        (2, 3, 7, 9, 3, 5, 2, 1, 2, 2, true, 0),
        (3, 2, 8, 8, 5, 5, 2, 2, 2, 2, true, 7),
        (1, 4, 5, 6, 7, 8, 1, 1, 1, 1, false, 0),
        (4, 3, 11, 11, 5, 5, 2, 2, 0, 0, false, 3),
        (2, 1, 33, 65, 4, 2, 3, 5, 1, 0, true, 0),
        (7, 96, 14, 14, 3, 3, 1, 1, 0, 0, false, 0),
    ];
    let mut rows = Vec::new();
    for (index, &(batch, c_in, h, w, kh, kw, sh, sw, ph, pw, reflect, offset)) in
        cases.iter().enumerate()
    {
        let seed = derive_seed(base_seed, 3000 + index as u64);
        let g = ConvGeometry {
            batch,
            in_channels: c_in,
            h,
            w,
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: [ph, pw],
            reflect,
        };
        let variant = format!(
            "{}x{} s{}x{} p{}x{} {}",
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            if reflect { "reflect" } else { "zeros" }
        );
        let x = random_f32(seed, offset + g.input_len());
        let want = reference::dense::im2col_conv(&g, &widen(&x[offset..])).data;
        for dtype in [DType::F32, DType::F16] {
            let (name, tol) = match dtype {
                // A gather: every element is copied exactly, so the tolerance is 0.
                DType::F32 => ("im2col", 0.0),
                // One rounding to a half (2^-11 relative, 2^-10 if WGSL rounds the other way).
                _ => ("im2col_f16", 2f64.powi(-10)),
            };
            let row = Row::new(
                name,
                variant.clone(),
                &[("b", batch), ("c", c_in), ("h", h), ("w", w)],
                seed,
            );
            let run = || -> Result<Vec<f64>> {
                let (n, d) = g.patch_shape()?;
                let tx = Tensor::from_f32(ctx, "x", &[x.len()], &x)?;
                let out = Tensor::empty(ctx, "patches", &[n, d], dtype)?;
                out.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                im2col::im2col(&mut rec, &g, &tx, offset, &out)?;
                rec.submit();
                Ok(widen(&out.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, tol),
                Err(e) => row.fail(e),
            });
        }
    }
    rows
}

/// The condition number of alpha·A·B + beta·c0 from the magnitudes that round:
/// ‖|alpha|·|A|·|B| + |beta·c0|‖ / ‖result‖, with `abs_product` = |alpha|·|A|·|B| (c0 is not
/// read when beta == 0; it may hold the NaN poison).
fn bound_cond(abs_product: &[f64], beta: f32, c0: &[f32], want: &[f64]) -> f64 {
    let spread: Vec<f64> = if beta == 0.0 {
        abs_product.to_vec()
    } else {
        abs_product
            .iter()
            .zip(c0)
            .map(|(ab, c)| ab + (beta as f64 * *c as f64).abs())
            .collect()
    };
    cancellation(&spread, want)
}

/// The implicit-GEMM convolution (conv.wgsl) against the float64 reference on ragged
/// geometries: batch 1..3, C_in 1/3/7, 1x1 to 7x7 and rectangular kernels (one as large as
/// the padded input), strides 1 and 2, zero and reflect padding, C_out 1..65, step offsets,
/// beta = 0 (output poisoned with NaN) and beta != 0, explicit and automatic split-K. The
/// forward output is also compared with im2col + the tiled GEMM. Few tile configurations (the
/// adapter's default and the small one, each also double-buffered) keep the pipeline count low.
pub fn conv_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    use crate::kernels::conv::{self, ConvKernel, ConvOptions};
    use crate::reference::dense::Mat;

    // (batch, c_in, h, w, kh, kw, sh, sw, ph, pw, reflect, c_out, offset)
    let cases = [
        (1, 1, 7, 7, 1, 1, 1, 1, 0, 0, false, 1, 0),
        (2, 3, 9, 9, 3, 3, 1, 1, 1, 1, false, 7, 0),
        (3, 3, 13, 13, 3, 3, 2, 2, 1, 1, true, 33, 5),
        (2, 7, 9, 13, 5, 3, 1, 2, 2, 1, true, 65, 0),
        (1, 3, 7, 7, 7, 7, 1, 1, 0, 0, false, 33, 0),
        (3, 7, 5, 5, 7, 7, 1, 1, 1, 1, true, 7, 0),
        (1, 3, 33, 33, 5, 5, 2, 2, 2, 2, false, 65, 0),
        (3, 3, 33, 33, 3, 3, 1, 1, 1, 1, true, 33, 0),
        (2, 7, 13, 9, 3, 5, 2, 1, 0, 2, false, 1, 3),
        (2, 3, 9, 9, 4, 4, 2, 2, 1, 1, true, 32, 4),
    ];
    let default_tiles = GemmTiles::tiled_for_adapter(ctx);
    let mut rows = Vec::new();
    for (index, &(batch, c_in, h, w, kh, kw, sh, sw, ph, pw, reflect, c_out, offset)) in
        cases.iter().enumerate()
    {
        let seed = derive_seed(base_seed, 3500 + index as u64);
        let g = ConvGeometry {
            batch,
            in_channels: c_in,
            h,
            w,
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: [ph, pw],
            reflect,
        };
        let (n, d) = match g.patch_shape() {
            Ok(nd) => nd,
            Err(e) => {
                rows.push(Row::new("conv_forward_rows", "geometry", &[], seed).fail(e));
                continue;
            }
        };
        // The small tiles on two cases and double buffering on two more (the engine's other
        // paths), the adapter's default tiles on the rest.
        let tiles = match index {
            2 | 7 => GemmTiles::SMALL,
            5 => GemmTiles {
                stages: 2,
                ..default_tiles
            },
            8 => GemmTiles {
                stages: 2,
                ..GemmTiles::SMALL
            },
            _ => default_tiles,
        };
        let odd = index % 2 == 1;
        let fwd = ConvOptions {
            alpha: if odd { 1.25 } else { 1.0 },
            beta: if odd { -0.75 } else { 0.0 },
            tiles: Some(tiles),
            split_k: SplitK::Fixed(if index == 4 { 2 } else { 1 }),
        };
        let upd = ConvOptions {
            alpha: 0.5,
            beta: if odd { 0.0 } else { 0.5 },
            tiles: Some(tiles),
            split_k: match index {
                1 => SplitK::Fixed(1),
                3 => SplitK::Fixed(2),
                9 => SplitK::Fixed(3),
                _ => SplitK::Auto,
            },
        };
        let label = |kernel: ConvKernel, opts: &ConvOptions| {
            let splits = conv::plan(ctx, kernel, &g, c_out, opts).map_or(0, |p| p.1);
            format!(
                "{kh}x{kw} s{sh}{sw} p{ph}{pw} {} {} k/{splits}{}",
                if reflect { "refl" } else { "zero" },
                tiles.label(),
                if opts.beta != 0.0 { " beta" } else { "" }
            )
        };
        let shape = [
            ("b", batch),
            ("cin", c_in),
            ("h", h),
            ("w", w),
            ("cout", c_out),
        ];
        let x = random_f32(seed, offset + g.input_len());
        let wts = random_f32(seed ^ 1, c_out * d);
        let gm = random_f32(seed ^ 2, n * c_out);
        let poisoned_or_random = |beta: f32, salt: u64, len: usize| -> Vec<f32> {
            if beta == 0.0 {
                vec![f32::NAN; len]
            } else {
                random_f32(seed ^ salt, len)
            }
        };
        let u0 = poisoned_or_random(fwd.beta, 3, n * c_out);
        let dw0 = poisoned_or_random(upd.beta, 4, c_out * d);
        let xs = widen(&x[offset..]);

        // References, and the condition numbers of their alpha/beta sums.
        let w_mat = Mat::from_vec(c_out, d, widen(&wts));
        let u0_mat = Mat::from_vec(n, c_out, widen(&u0));
        let want_u = reference::conv::conv_forward_rows(
            &g,
            &xs,
            &w_mat,
            fwd.alpha as f64,
            fwd.beta as f64,
            &u0_mat,
        )
        .data;
        // The condition numbers take |alpha|·|P|·|W|ᵀ (the patches of |x| are |P|: padding
        // maps zeros to zeros and reflects entries), so a dot product that cancels, as a single
        // output element of a 1 x 1 convolution can, widens its bound as rounding does.
        let abs = |v: &[f64]| v.iter().map(|t| t.abs()).collect::<Vec<f64>>();
        let xs_abs = abs(&xs);
        let w_abs = Mat::from_vec(c_out, d, abs(&w_mat.data));
        let product_u = reference::conv::conv_forward_rows(
            &g,
            &xs_abs,
            &w_abs,
            fwd.alpha.abs() as f64,
            0.0,
            &u0_mat,
        )
        .data;
        let cond_u = bound_cond(&product_u, fwd.beta, &u0, &want_u);
        let g_mat = Mat::from_vec(n, c_out, widen(&gm));
        let dw0_mat = Mat::from_vec(c_out, d, widen(&dw0));
        let want_dw = reference::conv::conv_update(
            &g,
            &g_mat,
            &xs,
            upd.alpha as f64,
            upd.beta as f64,
            &dw0_mat,
        )
        .data;
        let g_abs = Mat::from_vec(n, c_out, abs(&g_mat.data));
        let product_dw = reference::conv::conv_update(
            &g,
            &g_abs,
            &xs_abs,
            upd.alpha.abs() as f64,
            0.0,
            &dw0_mat,
        )
        .data;
        let cond_dw = bound_cond(&product_dw, upd.beta, &dw0, &want_dw);

        let run = || -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
            let tx = Tensor::from_f32(ctx, "x", &[x.len()], &x)?;
            let tw = Tensor::from_f32(ctx, "W", &[c_out, d], &wts)?;
            let tg = Tensor::from_f32(ctx, "G", &[n, c_out], &gm)?;
            let tu = Tensor::from_f32(ctx, "U", &[n, c_out], &u0)?;
            let tdw = Tensor::from_f32(ctx, "dW", &[c_out, d], &dw0)?;
            let tp = Tensor::empty(ctx, "patches", &[n, d], DType::F32)?;
            let tu_gemm = Tensor::from_f32(ctx, "U (im2col + gemm)", &[n, c_out], &u0)?;
            let mut rec = Recorder::new(ctx);
            conv::conv_forward_rows_with(&mut rec, &g, &tx, offset, &tw, c_out, &fwd, &tu)?;
            conv::conv_update_with(&mut rec, &g, &tg, &tx, offset, c_out, &upd, &tdw)?;
            im2col::im2col(&mut rec, &g, &tx, offset, &tp)?;
            let product = Gemm::new(n, c_out, d)
                .trans(false, true)
                .scale(fwd.alpha, fwd.beta)
                .tiles(default_tiles)
                .split_k(SplitK::Fixed(1));
            gemm::gemm(&mut rec, &product, &tp, &tw, &tu_gemm)?;
            rec.submit();
            Ok((
                widen(&tu.to_f32_vec(ctx)?),
                widen(&tdw.to_f32_vec(ctx)?),
                widen(&tu_gemm.to_f32_vec(ctx)?),
            ))
        };
        let fwd_row = Row::new(
            "conv_forward_rows",
            label(ConvKernel::ForwardRows, &fwd),
            &shape,
            seed,
        );
        let upd_row = Row::new("conv_update", label(ConvKernel::Update, &upd), &shape, seed);
        let same_row = Row::new(
            "conv_forward_rows",
            format!("= im2col+gemm {kh}x{kw} s{sh}{sw} p{ph}{pw}"),
            &shape,
            seed,
        );
        // Tiles past this device's limits (double buffering under WebGPU's 16 KiB of
        // workgroup memory): both launchers must refuse them.
        if let Err(limit) = tiles.within_limits(ctx) {
            let limit = match limit {
                crate::error::HebbError::Launch { message, .. } => message,
                other => other.to_string(),
            };
            let outcome = run().map_err(|e| e.to_string());
            rows.push(fwd_row.refusal(&limit, outcome.clone()));
            rows.push(upd_row.refusal(&limit, outcome.clone()));
            rows.push(same_row.refusal(&limit, outcome));
            continue;
        }
        match run() {
            Ok((u, dw, u_gemm)) => {
                rows.push(fwd_row.compare(&u, &want_u, gemm_tol(d) * cond_u));
                rows.push(upd_row.compare(&dw, &want_dw, gemm_tol(n) * cond_dw));
                // Both are within gemm_tol of the exact result, so within twice it of each other.
                rows.push(same_row.compare(&u, &u_gemm, 2.0 * gemm_tol(d) * cond_u));
            }
            Err(e) => {
                let e = e.to_string();
                rows.push(fwd_row.fail(&e));
                rows.push(upd_row.fail(&e));
                rows.push(same_row.fail(&e));
            }
        }
    }
    rows
}

/// One launch of the loss `kind` and of `correct` on logits `z` (n x k) into NaN-poisoned
/// outputs: (loss, grad, correct).
fn run_loss(
    ctx: &GpuContext,
    kind: classifier::Loss,
    z: &[f32],
    labels: &[u32],
    (n, k): (usize, usize),
    scale: f32,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let tz = Tensor::from_f32(ctx, "logits", &[n, k], z)?;
    let tl = classifier::labels_tensor(ctx, labels, k)?;
    let loss = Tensor::empty(ctx, "loss", &[n], DType::F32)?;
    let grad = Tensor::empty(ctx, "grad", &[n, k], DType::F32)?;
    let hits = Tensor::empty(ctx, "correct", &[n], DType::F32)?;
    for t in [&loss, &grad, &hits] {
        t.poison_nan(ctx);
    }
    let mut rec = Recorder::new(ctx);
    classifier::loss(&mut rec, kind, &tz, &tl, n, k, scale, &loss, &grad)?;
    classifier::correct(&mut rec, &tz, &tl, n, k, &hits)?;
    rec.submit();
    Ok((
        widen(&loss.to_f32_vec(ctx)?),
        widen(&grad.to_f32_vec(ctx)?),
        widen(&hits.to_f32_vec(ctx)?),
    ))
}

/// `v` with every value smaller in magnitude than f32's smallest normal set to 0: what an f32
/// kernel can represent of a float64 reference (WGSL lets implementations flush subnormals).
fn flush_below_f32(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&x| {
            if x.abs() < f32::MIN_POSITIVE as f64 {
                0.0
            } else {
                x
            }
        })
        .collect()
}

/// The classifier checks' logits lie in [−LOGIT_REACH, LOGIT_REACH).
const LOGIT_REACH: f32 = 8.0;

/// Softmax cross-entropy and Krotov & Hopfield's tanh power loss (loss and gradient), and the
/// argmax correctness, against float64 on ragged (N, K).
pub fn classifier_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, &(n, k)) in [(1usize, 1usize), (7, 10), (33, 7), (257, 100), (65, 2)]
        .iter()
        .enumerate()
    {
        let seed = derive_seed(base_seed, 4000 + index as u64);
        // Logits spread over [-8, 8) so the softmax is far from uniform.
        let z: Vec<f32> = random_f32(seed, n * k)
            .iter()
            .map(|v| LOGIT_REACH * v)
            .collect();
        let mut state = seed;
        let labels: Vec<u32> = (0..n)
            .map(|_| {
                state = derive_seed(state, 1);
                (state % k as u64) as u32
            })
            .collect();
        let scale = 1.0 / n as f64;
        let (want_loss, want_grad) =
            reference::classifier::softmax_xent(&widen(&z), &labels, k, scale);
        let want_correct = reference::classifier::correct(&widen(&z), &labels, k);
        let shape = [("n", n), ("k", k)];
        // exp, log and the division in f32 cost a few ulps each, and the row sum adds K
        // roundings: 16·u·(sqrt(K) + 1) (measured errors stay below a tenth of it).
        let tol = 16.0 * U32 * ((k as f64).sqrt() + 1.0);
        let kind = classifier::Loss::SoftmaxXent;
        match run_loss(ctx, kind, &z, &labels, (n, k), scale as f32) {
            Ok((loss, grad, hits)) => {
                rows.push(
                    Row::new("softmax_xent", "loss", &shape, seed).compare(&loss, &want_loss, tol),
                );
                rows.push(
                    Row::new("softmax_xent", "grad", &shape, seed).compare(&grad, &want_grad, tol),
                );
                rows.push(Row::new("correct", "argmax", &shape, seed).compare(
                    &hits,
                    &want_correct,
                    0.0,
                ));
            }
            Err(e) => rows.push(Row::new("softmax_xent", "loss", &shape, seed).fail(e)),
        }
        // Krotov & Hopfield's head at their β = 0.01 with logits spread to ±800 (c saturates
        // at both ends), and at β = 0.5 with the raw spread; m = 6 and a non-integer 4.5.
        for (beta, spread, power) in [(0.01, 100.0, 6.0), (0.5, 1.0, 4.5)] {
            let zs: Vec<f32> = z.iter().map(|v| v * spread).collect();
            // The reference gets the parameters the kernel receives: β rounded to f32, as the
            // logits are (β·z feeds an exp, so β's own rounding would count against the kernel).
            let (beta, power) = (beta as f32 as f64, power as f32 as f64);
            let (want_loss, want_grad) =
                reference::classifier::tanh_power(&widen(&zs), &labels, k, scale, beta, power);
            // Where c saturates at the label, |c − 1|^m falls below f32's smallest normal
            // (1e-40 for |c − 1| ≈ 2e-7 and m = 6), which f32 cannot hold and WGSL may flush
            // to zero: the reference's values there count as 0.
            let (want_loss, want_grad) = (flush_below_f32(&want_loss), flush_below_f32(&want_grad));
            let shape = [("n", n), ("k", k), ("m", power as usize)];
            // tanh, pow (exp2∘log2) and the products cost a few ulps each in f32, amplified by
            // m through the power, and √K terms' rounding in the row's sum: 16·m·u·(√K + 1).
            // Where c saturates the error also grows with a = β·z: a rounds in f32 (relative
            // u), which exp(−2|a|) turns into 2|a|·u in 1 ∓ c and the power into 2m|a|·u; and
            // pow's own exp2 argument, m·log2|d| ≈ −2.9·m·|a|, rounds by that times u, which
            // the power's result feels as ln 2 · 2.9·m·|a|·u ≈ 2m|a|·u: about 4m|a|·u in all,
            // a factor (1 + |a|/8) on the bound at K = 1. The bound takes (1 + |a|max/2), four
            // times that growth: measured errors stay below 0.21 of it over 500 seeds on
            // llvmpipe's Vulkan and 500 on its GL (the bound without the factor was exceeded
            // by 1% at K = 1, a ≈ 7.5).
            let a_max = beta * (spread * LOGIT_REACH) as f64;
            let tol = 16.0 * power * U32 * ((k as f64).sqrt() + 1.0) * (1.0 + a_max / 2.0);
            let kind = classifier::Loss::TanhPower {
                beta: beta as f32,
                power: power as f32,
            };
            match run_loss(ctx, kind, &zs, &labels, (n, k), scale as f32) {
                Ok((loss, grad, _)) => {
                    rows.push(
                        Row::new("tanh_power", "loss", &shape, seed)
                            .compare(&loss, &want_loss, tol),
                    );
                    rows.push(
                        Row::new("tanh_power", "grad", &shape, seed)
                            .compare(&grad, &want_grad, tol),
                    );
                }
                Err(e) => rows.push(Row::new("tanh_power", "loss", &shape, seed).fail(e)),
            }
        }
    }
    rows
}

/// The pooling geometries both pooling families check, each with its row label: max and
/// average pooling (both divisors) with the papers' settings (SoftHebb's 4/2/1, Lagani's 2/2/0,
/// 3/2/1; overlapping windows and not) on ragged planes, in a fixed order.
pub fn pool_cases() -> Vec<(Pool2d, String)> {
    let kinds = [
        PoolKind::Max,
        PoolKind::Avg {
            count_include_pad: true,
        },
        PoolKind::Avg {
            count_include_pad: false,
        },
    ];
    // (planes, h, w, k, s, p)
    let shapes = [
        (1, 1, 1, 1, 1, 0),
        (6, 33, 33, 4, 2, 1),
        (5, 7, 9, 2, 2, 0),
        (3, 65, 7, 3, 2, 1),
        (2, 16, 16, 4, 2, 2),
        (7, 9, 9, 3, 1, 1),
    ];
    let mut cases = Vec::new();
    for (planes, h, w, k, s, p) in shapes {
        for kind in kinds {
            let variant = match kind {
                PoolKind::Max => format!("max {k}/{s}/{p}"),
                PoolKind::Avg { count_include_pad } => {
                    format!("avg {k}/{s}/{p} pad={count_include_pad}")
                }
            };
            let g = Pool2d {
                kind,
                planes,
                h,
                w,
                kernel: [k, k],
                stride: [s, s],
                padding: [p, p],
            };
            cases.push((g, variant));
        }
    }
    cases
}

/// `pool_cases` against the float64 pooling.
pub fn pool_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, (g, variant)) in pool_cases().into_iter().enumerate() {
        let seed = derive_seed(base_seed, 6001 + index as u64);
        let (planes, h, w, kind, k) = (g.planes, g.h, g.w, g.kind, g.kernel[0]);
        let row = Row::new(
            "pool2d",
            variant,
            &[("planes", planes), ("h", h), ("w", w)],
            seed,
        );
        let x = random_f32(seed, planes * h * w);
        let want = reference::pool::pool2d(&g, &widen(&x));
        let run = || -> Result<Vec<f64>> {
            let tx = Tensor::from_f32(ctx, "x", &[planes, h, w], &x)?;
            let out = Tensor::empty(ctx, "pooled", &[want.len()], DType::F32)?;
            out.poison_nan(ctx);
            let mut rec = Recorder::new(ctx);
            pool::pool2d(&mut rec, &g, &tx, &out)?;
            rec.submit();
            Ok(widen(&out.to_f32_vec(ctx)?))
        };
        // Max is exact; an average of at most k² values rounds k² times and divides once.
        let tol = if kind == PoolKind::Max {
            0.0
        } else {
            sum_tol(k * k)
        };
        rows.push(match run() {
            Ok(got) => row.compare(&got, &want, tol),
            Err(e) => row.fail(e),
        });
    }
    rows
}

/// Batch norm: training (batch statistics, running update), eval (running statistics) and
/// Lagani's modified BN, without and with affine parameters γ, β, on ragged (B, C, H·W).
pub fn norm_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut index = 7000;
    for &(batch, channels, plane) in &[
        (2usize, 1usize, 1usize),
        (7, 3, 33),
        (4, 65, 9),
        (1, 7, 257),
        // More channels than a workgroup: the modified BN's cooperative mean of the running
        // variances strides over them.
        (2, 257, 3),
        // 66,625 values per channel: past llvmpipe's loop budget, walked in 5 chunks there.
        (65, 2, 1025),
    ] {
        for (training, modified, affine) in [
            (true, false, false),
            (false, false, false),
            (true, true, false),
            (true, false, true),
            (false, true, true),
        ] {
            index += 1;
            let seed = derive_seed(base_seed, index);
            let g = BatchNorm {
                batch,
                channels,
                plane,
                training,
                modified,
                momentum: 0.1,
                eps: 1e-5,
            };
            let variant = format!(
                "{}{}{}{}",
                if training { "train" } else { "eval" },
                if modified { " modified" } else { "" },
                if affine { " affine" } else { "" },
                chunked_label(ctx, &g, training)
            );
            let shape = [("b", batch), ("c", channels), ("hw", plane)];
            let gamma_beta = affine.then(|| crate::conformance::random_affine(seed ^ 3, channels));
            let affine64 = gamma_beta.as_deref().map(widen);
            // Shifted and scaled so normalising does real work.
            let x: Vec<f32> = random_f32(seed, batch * channels * plane)
                .iter()
                .map(|v| 3.0 * v + 1.5)
                .collect();
            let rm0: Vec<f32> = random_f32(seed ^ 1, channels)
                .iter()
                .map(|v| 0.5 * v)
                .collect();
            let rv0: Vec<f32> = random_f32(seed ^ 2, channels)
                .iter()
                .map(|v| 1.0 + 0.5 * v)
                .collect();
            let (mut rm, mut rv) = (widen(&rm0), widen(&rv0));
            let (rm_before, rv_before) = (rm.clone(), rv.clone());
            let want =
                reference::norm::batch_norm(&g, &widen(&x), &mut rm, &mut rv, affine64.as_deref());
            // γ·x̂ + β cancels where β opposes γ·x̂: the output's error scales with
            // ‖f·(|γ·x̂| + |β|)‖ / ‖y‖, from the terms without affine and with γ = 0.
            let affine_condition = match &affine64 {
                Some(a) => {
                    let terms = |params: Option<&[f64]>| {
                        let (mut m, mut v) = (rm_before.clone(), rv_before.clone());
                        reference::norm::batch_norm(&g, &widen(&x), &mut m, &mut v, params)
                    };
                    let plain = terms(None);
                    let shift = terms(Some(
                        &[vec![0.0; channels], a[channels..].to_vec()].concat(),
                    ));
                    let spread: Vec<f64> = (0..plain.len())
                        .map(|e| (a[(e / plane) % channels] * plain[e]).abs() + shift[e].abs())
                        .collect();
                    cancellation(&spread, &want)
                }
                None => 1.0,
            };
            let run = || -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
                let tx = Tensor::from_f32(ctx, "x", &[x.len()], &x)?;
                let trm = Tensor::from_f32(ctx, "running mean", &[channels], &rm0)?;
                let trv = Tensor::from_f32(ctx, "running var", &[channels], &rv0)?;
                let stats = Tensor::empty(ctx, "stats", &[2 * channels], DType::F32)?;
                let out = Tensor::empty(ctx, "normalised", &[x.len()], DType::F32)?;
                out.poison_nan(ctx);
                let ta = match &gamma_beta {
                    Some(a) => Some(Tensor::from_f32(ctx, "γ, β", &[a.len()], a)?),
                    None => None,
                };
                let mut rec = Recorder::new(ctx);
                norm::batch_norm(&mut rec, &g, &tx, &trm, &trv, &stats, ta.as_ref(), &out)?;
                rec.submit();
                Ok((
                    widen(&out.to_f32_vec(ctx)?),
                    widen(&trm.to_f32_vec(ctx)?),
                    widen(&trv.to_f32_vec(ctx)?),
                ))
            };
            // Mean and variance sum n = B·H·W terms; the output adds a few roundings on top.
            // In training, the computed mean carries an absolute error δμ_c ≲ γ_n·mean|x_c|
            // (γ_n ≈ sum_tol(n)), and every y of channel c moves by δμ_c / s_c, with
            // s_c = sqrt(σ²_c + ε). Since ‖y‖² = Σ_c n·σ²_c / s²_c, the normwise relative error
            // this adds is at most max_c δμ_c / σ_c = γ_n·κ, where κ = max_c mean|x_c| / σ_c is
            // the condition number of centring (large when a channel's values nearly coincide,
            // e.g. two samples a hair apart). The variance only sees δμ² (Σ(x − μ) = 0), which is
            // second order, so the running statistics keep the plain bound. Eval subtracts the
            // running mean, which is exact.
            let conditioning = if training {
                centring_condition(&widen(&x), batch, channels, plane)
            } else {
                0.0
            };
            let tol = sum_tol(batch * plane) * 4.0;
            let out_tol = sum_tol(batch * plane) * (4.0 + conditioning) * affine_condition;
            // The running mean (1 − m)·rm + m·μ cancels when rm and μ have opposite signs: its
            // normwise condition number is ‖(1 − m)|rm| + m|μ|‖ / ‖(1 − m)·rm + m·μ‖ ≥ 1.
            let mean_tol = if training {
                let m = g.momentum as f64;
                let mu = channel_means(&widen(&x), batch, channels, plane);
                let magnitude: f64 = (rm0.iter().zip(&mu))
                    .map(|(&r, u)| ((1.0 - m) * (r as f64).abs() + m * u.abs()).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let value = rm.iter().map(|v| v * v).sum::<f64>().sqrt();
                tol * magnitude / value.max(f64::MIN_POSITIVE)
            } else {
                tol
            };
            match run() {
                Ok((out, got_rm, got_rv)) => {
                    rows.push(
                        Row::new("batch_norm", variant.clone(), &shape, seed)
                            .compare(&out, &want, out_tol),
                    );
                    rows.push(
                        Row::new(
                            "batch_norm",
                            format!("{variant} running mean"),
                            &shape,
                            seed,
                        )
                        .compare(&got_rm, &rm, mean_tol),
                    );
                    rows.push(
                        Row::new("batch_norm", format!("{variant} running var"), &shape, seed)
                            .compare(&got_rv, &rv, tol),
                    );
                }
                Err(e) => rows.push(Row::new("batch_norm", variant, &shape, seed).fail(e)),
            }
        }
    }
    rows
}

/// " (N chunks)" where the pass walks its channels' values (`walks`) and this context walks
/// them in chunks (`norm::StatisticsChunks`), else "".
pub(crate) fn chunked_label(ctx: &GpuContext, g: &BatchNorm, walks: bool) -> String {
    match norm::StatisticsChunks::for_pass(ctx, g) {
        Some(k) if walks => format!(" ({} chunks)", k.chunks),
        _ => String::new(),
    }
}

/// κ = max over channels of mean|x_c| / σ_c for NCHW x (B, C, P), σ_c the biased standard
/// deviation over (B, P): how much an absolute error in the mean, relative to the values'
/// size, is magnified in x − μ relative to its spread.
fn centring_condition(x: &[f64], batch: usize, channels: usize, plane: usize) -> f64 {
    let n = (batch * plane) as f64;
    let means = channel_means(x, batch, channels, plane);
    (0..channels)
        .map(|c| {
            let values = || (0..batch).flat_map(move |b| &x[(b * channels + c) * plane..][..plane]);
            let mean = means[c];
            let magnitude = values().map(|v| v.abs()).sum::<f64>() / n;
            let sd = (values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
            magnitude / sd.max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max)
}

/// The per-channel means of NCHW x (B, C, P) over (B, P).
fn channel_means(x: &[f64], batch: usize, channels: usize, plane: usize) -> Vec<f64> {
    (0..channels)
        .map(|c| {
            (0..batch)
                .flat_map(|b| &x[(b * channels + c) * plane..][..plane])
                .sum::<f64>()
                / (batch * plane) as f64
        })
        .collect()
}

/// Layout changes rows ↔ planes on ragged (batch, channels, positions), both directions; the
/// destination is poisoned with NaN, and the result must be exact.
pub fn layout_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    let shapes = [
        (1, 1, 1),
        (2, 7, 33),
        (3, 65, 7),
        (1, 257, 1),
        (5, 33, 65),
        (4, 1, 257),
    ];
    let mut rows = Vec::new();
    for (i, &(b, c, p)) in shapes.iter().enumerate() {
        for (j, way) in [Layout::RowsToPlanes, Layout::PlanesToRows]
            .into_iter()
            .enumerate()
        {
            let seed = derive_seed(base_seed, 2600 + 2 * i as u64 + j as u64);
            let name = match way {
                Layout::RowsToPlanes => "rows_to_planes",
                Layout::PlanesToRows => "planes_to_rows",
            };
            let row = Row::new(name, "f32", &[("B", b), ("C", c), ("P", p)], seed);
            let x = random_f32(seed, b * c * p);
            let want = match way {
                Layout::RowsToPlanes => reference::elementwise::rows_to_planes(&widen(&x), b, c, p),
                Layout::PlanesToRows => reference::elementwise::planes_to_rows(&widen(&x), b, c, p),
            };
            let run = || -> Result<Vec<f64>> {
                let src = Tensor::from_f32(ctx, "source", &[b * c * p], &x)?;
                let dst = Tensor::empty(ctx, "destination", &[b * c * p], DType::F32)?;
                dst.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                layout::convert(&mut rec, way, b, c, p, &src, &dst)?;
                rec.submit();
                Ok(widen(&dst.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, 0.0),
                Err(e) => row.fail(e),
            });
        }
    }
    // Planes ↔ blocks on ragged images and blocks: (B, C, H, W, bh, bw).
    let block_shapes = [
        (1, 1, 1, 1, 1, 1),
        (2, 3, 8, 12, 4, 4),
        (3, 1, 64, 64, 32, 32),
        (1, 5, 7, 33, 7, 11),
        (2, 2, 65, 6, 13, 3),
    ];
    for (i, &(b, c, h, w, bh, bw)) in block_shapes.iter().enumerate() {
        for (j, way) in [Blocks::PlanesToBlocks, Blocks::BlocksToPlanes]
            .into_iter()
            .enumerate()
        {
            let seed = derive_seed(base_seed, 2700 + 2 * i as u64 + j as u64);
            let name = match way {
                Blocks::PlanesToBlocks => "planes_to_blocks",
                Blocks::BlocksToPlanes => "blocks_to_planes",
            };
            let row = Row::new(
                name,
                format!("{bh}x{bw} blocks"),
                &[("B", b), ("C", c), ("H", h), ("W", w)],
                seed,
            );
            let len = b * c * h * w;
            let x = random_f32(seed, len);
            let (dims, block) = ([b, c, h, w], [bh, bw]);
            let want = match way {
                Blocks::PlanesToBlocks => {
                    reference::elementwise::planes_to_blocks(&widen(&x), dims, block)
                }
                Blocks::BlocksToPlanes => {
                    reference::elementwise::blocks_to_planes(&widen(&x), dims, block)
                }
            };
            let run = || -> Result<Vec<f64>> {
                let src = Tensor::from_f32(ctx, "source", &[len], &x)?;
                let dst = Tensor::empty(ctx, "destination", &[len], DType::F32)?;
                dst.poison_nan(ctx);
                let mut rec = Recorder::new(ctx);
                layout::blocks(&mut rec, way, b, c, [h, w], block, &src, &dst)?;
                rec.submit();
                Ok(widen(&dst.to_f32_vec(ctx)?))
            };
            rows.push(match run() {
                Ok(got) => row.compare(&got, &want, 0.0),
                Err(e) => row.fail(e),
            });
        }
    }
    rows
}

/// Sanger's ΔW = s·(GᵀX − tril(GᵀG)·W) by running reconstruction (`sanger_scan`) against the
/// float64 GEMM order, on ragged (N, C, D): one row, a partial last chunk of rows, more neurons
/// than rows, and a layer split into neuron blocks where the driver limits loops (llvmpipe:
/// 257 rows x 300 neurons take two dispatches).
pub fn sanger_scan_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    use crate::kernels::sanger_scan;
    use crate::reference::dense::Mat;
    let mut rows = Vec::new();
    let mut index = 7100;
    for &(n, c, d) in &[
        (1usize, 7usize, 33usize),
        (7, 65, 33),
        (33, 257, 7),
        (65, 257, 65),
        (257, 300, 33),
    ] {
        index += 1;
        let seed = derive_seed(base_seed, index);
        let shape = [("n", n), ("c", c), ("d", d)];
        let g = random_f32(seed, n * c);
        let x = random_f32(seed ^ 1, n * d);
        let w: Vec<f32> = random_f32(seed ^ 2, c * d)
            .iter()
            .map(|v| 0.3 * v)
            .collect();
        let s = 1.0 / n as f32;
        let (g64, x64, w64) = (
            Mat::from_vec(n, c, widen(&g)),
            Mat::from_vec(n, d, widen(&x)),
            Mat::from_vec(c, d, widen(&w)),
        );
        let lower = |m: Mat| {
            let mut m = m;
            for i in 0..c {
                for k in i + 1..c {
                    m.set(i, k, 0.0);
                }
            }
            m
        };
        let product = |g: &Mat, x: &Mat, w: &Mat, sign: f64| -> Vec<f64> {
            let hebb = g.t_matmul(x);
            let decay = lower(g.t_matmul(g)).matmul(w);
            (0..c * d)
                .map(|e| s as f64 * (hebb.data[e] + sign * decay.data[e]))
                .collect()
        };
        let want = product(&g64, &x64, &w64, -1.0);
        // Each ΔW entry sums N·(C + 1) products: their magnitudes bound the rounding.
        let abs = |m: &Mat| m.map(f64::abs);
        let spread = product(&abs(&g64), &abs(&x64), &abs(&w64), 1.0);
        let tol = sum_tol(n * (c + 1)) * cancellation(&spread, &want);
        let run = || -> Result<Vec<f64>> {
            let tg = Tensor::from_f32(ctx, "G", &[n * c], &g)?;
            let tx = Tensor::from_f32(ctx, "X", &[n * d], &x)?;
            let tw = Tensor::from_f32(ctx, "W", &[c * d], &w)?;
            let recon = Tensor::empty(ctx, "R", &[n * d], DType::F32)?;
            recon.poison_nan(ctx);
            let dw = Tensor::empty(ctx, "ΔW", &[c * d], DType::F32)?;
            dw.poison_nan(ctx);
            let mut rec = Recorder::new(ctx);
            sanger_scan::sanger_scan(&mut rec, &tg, &tx, &tw, &recon, &dw, n, c, d, s)?;
            rec.submit();
            Ok(widen(&dw.to_f32_vec(ctx)?))
        };
        let blocks = c.div_ceil(sanger_scan::neurons_per_dispatch(ctx, n, c));
        let variant = format!(
            "{blocks} neuron block{}",
            if blocks == 1 { "" } else { "s" }
        );
        let row = Row::new("sanger_scan", variant, &shape, seed);
        rows.push(match run() {
            Ok(got) => row.compare(&got, &want, tol),
            Err(e) => row.fail(e),
        });
    }
    rows
}
