//! The runtime around the kernels: the pipeline cache, the parameter structs' layout against
//! their WGSL twins, and errors instead of panics on bad input.

use std::sync::Arc;

use hebb::HebbError;
use hebb::gpu::kernel_cache::validate_wgsl;
use hebb::gpu::{AdapterChoice, DType, GpuContext, Recorder, Tensor};
use hebb::kernels::classifier::ClassifierParams;
use hebb::kernels::conv::ConvParams;
use hebb::kernels::elementwise::{CastParams, ElementwiseParams};
use hebb::kernels::gemm::{self, Gemm, GemmParams};
use hebb::kernels::hebbian::HebbParams;
use hebb::kernels::hebbian_naive::NaiveParams;
use hebb::kernels::im2col::Im2colParams;
use hebb::kernels::layout::LayoutParams;
use hebb::kernels::norm::NormParams;
use hebb::kernels::optim::OptimParams;
use hebb::kernels::pool::PoolParams;
use hebb::kernels::reduce::ReduceParams;
use hebb::kernels::{
    CAST_WGSL, CLASSIFIER_WGSL, COMPETITION_SUBGROUP_WGSL, CONV_WGSL, ELEMENTWISE_WGSL,
    GEMM_COOP_WGSL, GEMM_SUBGROUP_WGSL, GEMM_WGSL, HEBBIAN_NAIVE_WGSL, HEBBIAN_WGSL, IM2COL_WGSL,
    LAYOUT_WGSL, NORM_WGSL, OPTIM_WGSL, POOL_WGSL, PROJECTION_COMPETITION_WGSL, REDUCE_WGSL,
};

use crate::common;

/// Byte size and (name, byte offset) of every member of the struct type of global `p` in a
/// shader.
fn uniform_layout(name: &str, source: &str) -> (u32, Vec<(String, u32)>) {
    let (module, _) = validate_wgsl(name, source).unwrap();
    let (_, var) = module
        .global_variables
        .iter()
        .find(|(_, v)| v.name.as_deref() == Some("p"))
        .unwrap_or_else(|| panic!("{name}: no uniform `p`"));
    let ty = &module.types[var.ty];
    let members = match &ty.inner {
        naga::TypeInner::Struct { members, .. } => members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
            .collect(),
        other => panic!("{name}: `p` is not a struct: {other:?}"),
    };
    (ty.inner.size(module.to_ctx()), members)
}

/// (name, byte offset) of every field of a Rust parameter struct, in declaration order, read
/// without a field list: the struct is built from 4-byte words holding the f32 values 1, 2,
/// 3, … and printed with Debug. Each field then shows the word it starts at (an f32 field
/// prints the value, a u32 field its bits), so the value names the offset. Every parameter
/// struct is `repr(C)` of 4-byte scalars (or arrays of them, whose first element counts).
fn rust_layout<T: bytemuck::Pod + std::fmt::Debug>() -> Vec<(String, u32)> {
    let words: Vec<u32> = (1..=size_of::<T>() / 4)
        .map(|j| (j as f32).to_bits())
        .collect();
    let value: T = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&words));
    let text = format!("{value:?}");
    // Leaf fields in order: nested structs (ConvWords inside Im2colParams) are flattened, as
    // WGSL declares their members inline; an array contributes its first element.
    text.replace(['{', '}'], ",")
        .split(',')
        .filter_map(|field| field.split_once(": "))
        .filter_map(|(name, value)| {
            let first = value.trim().trim_start_matches('[');
            let word = match first.parse::<u32>() {
                Ok(bits) => f32::from_bits(bits),
                Err(_) => first.parse::<f32>().ok()?,
            };
            Some((name.trim().to_string(), 4 * (word as u32 - 1)))
        })
        .collect()
}

/// Each shader's `p` against the Rust struct its launcher writes: the same size, and the same
/// member names at the same byte offsets.
#[test]
fn params_structs_match_wgsl() {
    let cases = [
        (
            GEMM_WGSL,
            size_of::<GemmParams>(),
            rust_layout::<GemmParams>(),
        ),
        // gemm_subgroup.wgsl repeats gemm.wgsl's struct (it is a separate module).
        (
            GEMM_SUBGROUP_WGSL,
            size_of::<GemmParams>(),
            rust_layout::<GemmParams>(),
        ),
        (
            GEMM_COOP_WGSL,
            size_of::<GemmParams>(),
            rust_layout::<GemmParams>(),
        ),
        (
            REDUCE_WGSL,
            size_of::<ReduceParams>(),
            rust_layout::<ReduceParams>(),
        ),
        (
            ELEMENTWISE_WGSL,
            size_of::<ElementwiseParams>(),
            rust_layout::<ElementwiseParams>(),
        ),
        (
            CAST_WGSL,
            size_of::<CastParams>(),
            rust_layout::<CastParams>(),
        ),
        (
            IM2COL_WGSL,
            size_of::<Im2colParams>(),
            rust_layout::<Im2colParams>(),
        ),
        (
            CONV_WGSL,
            size_of::<ConvParams>(),
            rust_layout::<ConvParams>(),
        ),
        (
            CLASSIFIER_WGSL,
            size_of::<ClassifierParams>(),
            rust_layout::<ClassifierParams>(),
        ),
        (
            POOL_WGSL,
            size_of::<PoolParams>(),
            rust_layout::<PoolParams>(),
        ),
        (
            LAYOUT_WGSL,
            size_of::<LayoutParams>(),
            rust_layout::<LayoutParams>(),
        ),
        (
            NORM_WGSL,
            size_of::<NormParams>(),
            rust_layout::<NormParams>(),
        ),
        (
            HEBBIAN_WGSL,
            size_of::<HebbParams>(),
            rust_layout::<HebbParams>(),
        ),
        (
            COMPETITION_SUBGROUP_WGSL,
            size_of::<HebbParams>(),
            rust_layout::<HebbParams>(),
        ),
        (
            PROJECTION_COMPETITION_WGSL,
            size_of::<HebbParams>(),
            rust_layout::<HebbParams>(),
        ),
        (
            OPTIM_WGSL,
            size_of::<OptimParams>(),
            rust_layout::<OptimParams>(),
        ),
        (
            HEBBIAN_NAIVE_WGSL,
            size_of::<NaiveParams>(),
            rust_layout::<NaiveParams>(),
        ),
    ];
    for (shader, rust_size, rust_members) in cases {
        let (size, members) = uniform_layout(shader.name, shader.source);
        assert_eq!(
            size as usize, rust_size,
            "{}: WGSL size vs Rust size",
            shader.name
        );
        assert!(members.len() >= 4, "{}: {members:?}", shader.name);
        assert_eq!(
            members, rust_members,
            "{}: WGSL members (name, offset) vs the Rust struct's",
            shader.name
        );
    }
}

fn any_context() -> GpuContext {
    let backend = common::required_backends()
        .into_iter()
        .next()
        .expect("at least one backend to test");
    GpuContext::new(&AdapterChoice::backend(&backend))
        .unwrap_or_else(|e| panic!("backend {backend}: {e}"))
}

#[test]
fn kernel_cache_compiles_each_key_once_across_threads() {
    let ctx = Arc::new(any_context());
    let before = ctx.kernels.compiled_count();
    let pipelines: Vec<_> = (0..8)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                ctx.kernels
                    .get(
                        &ctx.device,
                        ctx.features,
                        &REDUCE_WGSL,
                        "row_reduce",
                        &[("WG", 128.0)],
                    )
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ctx.kernels.compiled_count(), before + 1);
    assert!(pipelines.iter().all(|p| Arc::ptr_eq(p, &pipelines[0])));
    // A different override value is a different key.
    ctx.kernels
        .get(
            &ctx.device,
            ctx.features,
            &REDUCE_WGSL,
            "row_reduce",
            &[("WG", 64.0)],
        )
        .unwrap();
    assert_eq!(ctx.kernels.compiled_count(), before + 2);
}

#[test]
fn gemm_rejects_short_operands_with_named_error() {
    let ctx = any_context();
    let a = Tensor::from_f32(&ctx, "weights", &[10, 7], &[0.5; 70]).unwrap();
    let b = Tensor::from_f32(&ctx, "patches", &[7, 5], &[0.25; 35]).unwrap();
    let c = Tensor::empty(&ctx, "delta", &[11, 5], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx);
    // M = 11 rows of A are needed, "weights" has 10.
    let err = gemm::gemm(&mut rec, &Gemm::new(11, 5, 7), &a, &b, &c).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HebbError::Shape { .. }), "{text}");
    assert!(text.contains("weights") && text.contains("77"), "{text}");
    // A bad leading dimension is refused too.
    let mut g = Gemm::new(10, 5, 7);
    g.lda = Some(3);
    let err = gemm::gemm(&mut rec, &g, &a, &b, &c)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lda = 3"), "{err}");
    ctx.check("bad launches").unwrap();
}

#[test]
fn conv_launchers_reject_short_tensors_and_aliasing_with_named_errors() {
    use hebb::kernels::conv;
    use hebb::kernels::im2col::ConvGeometry;
    let ctx = any_context();
    // (2, 3, 9, 9), 3x3 stride 1 pad 1: N = 2·81 = 162, D = 27.
    let g = ConvGeometry {
        batch: 2,
        in_channels: 3,
        h: 9,
        w: 9,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        reflect: true,
    };
    let x = Tensor::from_f32(&ctx, "images", &[2 * 3 * 81], &[0.5; 486]).unwrap();
    let w = Tensor::from_f32(&ctx, "filters", &[4, 26], &[0.5; 104]).unwrap();
    let u = Tensor::empty(&ctx, "rows", &[162 * 4], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx);
    let err = conv::conv_forward_rows(&mut rec, &g, &x, 0, &w, 4, &u).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HebbError::Shape { .. }), "{text}");
    assert!(text.contains("filters") && text.contains("108"), "{text}");
    // The input, from an offset past its end.
    let err = conv::conv_forward_rows(&mut rec, &g, &x, 1, &u, 4, &w)
        .unwrap_err()
        .to_string();
    assert!(err.contains("images") && err.contains("487"), "{err}");
    // The update: G too short, then ΔW aliasing G.
    let dw = Tensor::empty(&ctx, "delta", &[4 * 27], DType::F32).unwrap();
    let short = Tensor::empty(&ctx, "post", &[161 * 4], DType::F32).unwrap();
    let err = conv::conv_update(&mut rec, &g, &short, &x, 0, 4, 1.0, 0.0, &dw)
        .unwrap_err()
        .to_string();
    assert!(err.contains("post") && err.contains("648"), "{err}");
    let err = conv::conv_update(&mut rec, &g, &u, &x, 0, 1, 1.0, 0.0, &u)
        .unwrap_err()
        .to_string();
    assert!(err.contains("same tensor"), "{err}");
    // Reflect padding as wide as the input.
    let wide = ConvGeometry {
        padding: [9, 1],
        ..g
    };
    let err = conv::conv_forward_rows(&mut rec, &wide, &x, 0, &w, 1, &u)
        .unwrap_err()
        .to_string();
    assert!(err.contains("reflect padding"), "{err}");
}

#[test]
fn oversized_binding_is_an_error_not_a_wgpu_panic() {
    let ctx = any_context();
    let limit = ctx.limits.max_storage_buffer_binding_size;
    let elements = (limit / 4 + 1024) as usize;
    if elements as u64 * 4 > ctx.limits.max_buffer_size {
        eprintln!("note: max_buffer_size equals the binding limit here; nothing to test");
        return;
    }
    let big = Tensor::empty(&ctx, "huge", &[elements], DType::F32).unwrap();
    let out = Tensor::empty(&ctx, "out", &[1], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx);
    let err = hebb::kernels::reduce::global_reduce(
        &mut rec,
        hebb::kernels::reduce::ReduceOp::AbsMax,
        &big,
        &out,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, HebbError::TooLargeForBinding { .. }),
        "{text}"
    );
    assert!(
        text.contains("huge") && text.contains(&limit.to_string()),
        "{text}"
    );
}

#[test]
fn bad_backend_and_adapter_names_are_clear_errors() {
    let err = GpuContext::new(&AdapterChoice::backend("opengl-es-9"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("vulkan, metal, dx12, gl"), "{err}");
    let choice = AdapterChoice {
        backend: common::required_backends().into_iter().next(),
        adapter: Some("no-such-adapter-xyz".into()),
        ..Default::default()
    };
    let err = GpuContext::new(&choice).err().unwrap().to_string();
    assert!(
        err.contains("no-such-adapter-xyz") && err.contains("available"),
        "{err}"
    );
}

#[test]
fn gemm_refuses_overflow_zero_tiles_aliasing_and_overlapping_batches() {
    let ctx = any_context();
    let a = Tensor::from_f32(&ctx, "a", &[64], &[0.5; 64]).unwrap();
    let b = Tensor::from_f32(&ctx, "b", &[64], &[0.25; 64]).unwrap();
    let c = Tensor::empty(&ctx, "c", &[64], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx);

    // Extents whose sum wraps usize must be refused, not wrap into a tiny requirement.
    let mut g = Gemm::new(1, 1, u32::MAX as usize)
        .trans(true, false)
        .batch(3);
    g.lda = Some(u32::MAX as usize);
    g.stride_a = Some(usize::MAX / 2);
    let err = gemm::gemm(&mut rec, &g, &a, &b, &c)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("overflow") || err.contains("needs at least"),
        "{err}"
    );

    let zero = hebb::kernels::gemm::GemmTiles {
        kind: hebb::kernels::gemm::GemmKind::Tiled,
        stages: 1,
        bm: 0,
        bn: 64,
        bk: 16,
        tm: 8,
        tn: 8,
    };
    let err = gemm::gemm(&mut rec, &Gemm::new(2, 2, 2).tiles(zero), &a, &b, &c)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 4"), "{err}");
    let too_tall = hebb::kernels::gemm::GemmTiles::subgroup(32);
    let err = gemm::gemm(&mut rec, &Gemm::new(2, 2, 2).tiles(too_tall), &a, &b, &c)
        .unwrap_err()
        .to_string();
    assert!(err.contains("subgroup: rows must be 8, 16 or 24"), "{err}");

    let err = gemm::gemm(&mut rec, &Gemm::new(2, 2, 2), &a, &b, &a)
        .unwrap_err()
        .to_string();
    assert!(err.contains("same tensor"), "{err}");

    let mut g = Gemm::new(4, 4, 2).batch(2);
    g.stride_c = Some(3);
    let err = gemm::gemm(&mut rec, &g, &a, &b, &c)
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap"), "{err}");

    let err = hebb::kernels::elementwise::axpy(&mut rec, 1.0, &a, &a)
        .unwrap_err()
        .to_string();
    assert!(err.contains("same tensor"), "{err}");
    drop(rec);
    ctx.check("refused launches").unwrap();
}

/// Exact ties in the ranking competitions: first index wins, duplicates count toward k, and
/// k-WTA lets every entry equal to the k-th value win (PRESETS.md §1.4, §3.3, §5).
#[test]
fn competitions_break_exact_ties_as_the_spec_says() {
    use hebb::kernels::hebbian::{Competition, competition};
    let ctx = any_context();
    let row = [1.0f32, 3.0, 3.0, 2.0];
    let u = Tensor::from_f32(&ctx, "U", &[1, 4], &row).unwrap();
    let run = |kind| {
        let out0 = Tensor::empty(&ctx, "out0", &[4], DType::F32).unwrap();
        let g = Tensor::empty(&ctx, "g", &[4], DType::F32).unwrap();
        out0.poison_nan(&ctx);
        let mut rec = Recorder::new(&ctx);
        competition(&mut rec, kind, &u, None, 1, 4, &out0, &g).unwrap();
        rec.submit();
        out0.to_f32_vec(&ctx).unwrap()
    };
    assert_eq!(run(Competition::Kwta { k: 1 }), vec![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(run(Competition::Kwta { k: 2 }), vec![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(run(Competition::Kwta { k: 3 }), vec![0.0, 1.0, 1.0, 1.0]);
    assert_eq!(run(Competition::Hard), vec![0.0, 1.0, 0.0, 0.0]);
    assert_eq!(
        run(Competition::Krotov { k: 2, delta: 0.4 }),
        vec![0.0, 1.0, -0.4, 0.0]
    );
    assert_eq!(
        run(Competition::Krotov { k: 3, delta: 0.4 }),
        vec![0.0, 1.0, 0.0, -0.4]
    );
}

/// SoftHebb's triangle activation relu(u − mean over channels)^q, on hand-computed rows.
#[test]
fn triangle_activation_matches_hand_values() {
    use hebb::kernels::hebbian::{Competition, competition};
    let ctx = any_context();
    // Row means 2.5 and 0: relu(u − mean)^q with q = 0.7 and q = 1.4.
    let u = Tensor::from_f32(
        &ctx,
        "U",
        &[2, 4],
        &[1.0, 2.0, 3.0, 4.0, -2.0, 1.0, 3.0, -2.0],
    )
    .unwrap();
    for q in [0.7f64, 1.4] {
        let out0 = Tensor::empty(&ctx, "out0", &[8], DType::F32).unwrap();
        let g = Tensor::empty(&ctx, "g", &[8], DType::F32).unwrap();
        out0.poison_nan(&ctx);
        let mut rec = Recorder::new(&ctx);
        competition(
            &mut rec,
            Competition::Triangle { power: q as f32 },
            &u,
            None,
            2,
            4,
            &out0,
            &g,
        )
        .unwrap();
        rec.submit();
        let got = out0.to_f32_vec(&ctx).unwrap();
        let want = [
            0.0,
            0.0,
            0.5f64.powf(q),
            1.5f64.powf(q),
            0.0,
            1.0,
            3.0f64.powf(q),
            0.0,
        ];
        for (gv, wv) in got.iter().zip(want) {
            assert!(
                (*gv as f64 - wv).abs() <= 1e-5 * wv.abs().max(1.0),
                "q={q}: {got:?} vs {want:?}"
            );
        }
    }
}

/// Kernel choice for f16 operands: the cooperative-matrix kernel only where the adapter has it
/// and the shape fits; otherwise the tiled kernel (never the f32-only subgroup kernel), and
/// explicit coop tiles on an adapter without it are refused with a message naming the features.
#[test]
fn f16_operands_pick_a_kernel_that_takes_them() {
    use hebb::kernels::gemm::{GemmKind, GemmTiles};
    let ctx = any_context();
    assert_eq!(GemmTiles::parse("coop:2x1"), Some(GemmTiles::coop(2, 1)));
    assert_eq!(GemmTiles::coop(2, 1).label(), "coop:2x1");
    let fits = Gemm::new(64, 64, 64);
    let ragged = Gemm::new(33, 64, 64);
    let f16 = DType::F16;
    assert!(fits.coop_ok(&GemmTiles::coop(2, 2)));
    assert!(!ragged.coop_ok(&GemmTiles::coop(1, 1)));
    let ragged_kind = ragged.kernel_tiles(&ctx, f16, f16).unwrap().kind;
    assert_eq!(ragged_kind, GemmKind::Tiled);
    let chosen = fits.kernel_tiles(&ctx, f16, f16).unwrap();
    let mixed = fits.kernel_tiles(&ctx, f16, DType::F32).unwrap();
    assert_eq!(mixed.kind, GemmKind::Tiled, "mixed precision runs tiled");
    match GemmTiles::coop_width(&ctx) {
        Some(_) => assert_eq!(chosen, GemmTiles::coop(2, 2)),
        None => {
            assert_eq!(chosen.kind, GemmKind::Tiled);
            let err = GemmTiles::coop(1, 1)
                .validate(&ctx)
                .unwrap_err()
                .to_string();
            assert!(err.contains("EXPERIMENTAL_COOPERATIVE_MATRIX"), "{err}");
        }
    }
}

/// A training step with the fused projection (`projection_competition.wgsl`) writes G but
/// neither U nor Y, and gives the ΔW and weights of the separate GEMM + competition kernels.
/// Layers the kernel cannot hold (C over 2048) and the naive path run the separate kernels.
#[test]
fn fused_projection_leaves_u_unwritten_and_matches_the_separate_kernels() {
    use hebb::conformance::{random_f32, rel_err, widen};
    use hebb::rules::gpu::{FromForward, GpuRule, RuleInit, UpdatePath};
    use hebb::rules::preset::RuleConfig;
    use serde_json::json;

    let ctx = any_context();
    let adaptive = json!({"kind": "softhebb-adaptive", "lr": 0.08, "power": 0.5});
    let sgd =
        json!({"kind": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0});
    let presets = [
        (
            "softhebb/softkrotov",
            json!({"t_invert": 2.0, "optimizer": adaptive.clone()}),
        ),
        (
            "lagani/hpca",
            json!({"adaptive_step": false, "optimizer": sgd}),
        ),
        (
            "krotov/hopfield",
            json!({"p": 3.0, "k": 2, "delta": 0.4, "prec": 1e-30, "optimizer": {"kind": "sgd", "lr": 0.02, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0}}),
        ),
    ];
    let (n, c, d) = (65, 33, 27);
    let seed = common::seed();
    let x_data = random_f32(seed, n * d);
    let x = Tensor::from_f32(&ctx, "X", &[n, d], &x_data).unwrap();
    for (name, params) in presets {
        let config =
            RuleConfig::from_params(name, &params).unwrap_or_else(|e| panic!("{name}: {e}"));
        let init = RuleInit {
            w: random_f32(seed ^ 7, c * d)
                .iter()
                .map(|v| v * 0.3)
                .collect(),
            ..Default::default()
        };
        let run = |fused: bool| {
            let mut rule =
                GpuRule::with_path(&ctx, config.clone(), c, d, n, &init, UpdatePath::Fused)
                    .unwrap();
            assert_eq!(rule.set_fused_projection(&ctx, fused), fused, "{name}");
            // ΔW of a training step is compared below, so the update writes it.
            rule.set_fused_update(false);
            let step = |rule: &mut GpuRule| {
                let mut rec = Recorder::new(&ctx);
                rule.step(&mut rec, &x, n, None, FromForward::default())
                    .unwrap();
                rec.submit();
            };
            // A first step writes U and Y, to get at their buffers, which are then poisoned.
            rule.set_keep_intermediates(true);
            step(&mut rule);
            let views: Vec<Tensor> = ["u", "y"]
                .iter()
                .map(|k| {
                    let t = rule.intermediate(k).unwrap();
                    let view = Tensor {
                        label: t.label.clone(),
                        shape: t.shape.clone(),
                        dtype: t.dtype,
                        buffer: t.buffer.clone(),
                    };
                    view.poison_nan(&ctx);
                    view
                })
                .collect();
            // A training step.
            rule.set_keep_intermediates(false);
            step(&mut rule);
            let untouched = views
                .iter()
                .all(|v| v.to_f32_vec(&ctx).unwrap().iter().all(|x| x.is_nan()));
            let listed = rule.intermediate("u").is_some();
            let dw = rule
                .intermediate("delta_w")
                .unwrap()
                .to_f32_vec(&ctx)
                .unwrap();
            (dw, rule.w.to_f32_vec(&ctx).unwrap(), untouched, listed)
        };
        let (dw_fused, w_fused, untouched, listed) = run(true);
        assert!(untouched, "{name}: the fused training step wrote U or Y");
        assert!(
            !listed,
            "{name}: U is listed as an intermediate of a step that left it out"
        );
        let (dw_sep, w_sep, untouched, listed) = run(false);
        assert!(
            !untouched && listed,
            "{name}: the separate kernels write U and Y"
        );
        let e_dw = rel_err(&widen(&dw_fused), &widen(&dw_sep));
        let e_w = rel_err(&widen(&w_fused), &widen(&w_sep));
        // Same math in a different summation order: f32 rounding of a D = 27 dot and of
        // sums over N = 65 rows (the rankings agree: ties are measure-zero in random data).
        assert!(
            e_dw < 1e-5 && e_w < 1e-6,
            "{name}: fused vs separate ΔW {e_dw:.2e}, W {e_w:.2e} (HEBB_SEED={seed})"
        );
    }
    // No plan for a layer wider than the kernel holds; none on the naive path.
    let wide = RuleConfig::from_params(
        "softhebb/softkrotov",
        &json!({"t_invert": 1.0, "optimizer": adaptive}),
    )
    .unwrap();
    let init = RuleInit {
        w: vec![0.01; 2049],
        ..Default::default()
    };
    let rule =
        GpuRule::with_path(&ctx, wide.clone(), 2049, 1, 4, &init, UpdatePath::Fused).unwrap();
    assert!(!rule.fused_projection());
    // Nor for a rule whose competition reads a similarity instead of U.
    let swta = RuleConfig::from_params(
        "lagani/soft-wta-exp",
        &json!({"temperature": 0.02, "optimizer": {"kind": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0}}),
    )
    .unwrap();
    let init = RuleInit {
        w: vec![0.01; 8],
        ..Default::default()
    };
    let mut rule = GpuRule::with_path(&ctx, swta, 8, 1, 4, &init, UpdatePath::Fused).unwrap();
    assert!(!rule.set_fused_projection(&ctx, true));
    let init = RuleInit {
        w: vec![0.01; 8],
        ..Default::default()
    };
    let rule = GpuRule::with_path(&ctx, wide, 8, 1, 4, &init, UpdatePath::Naive).unwrap();
    assert!(!rule.fused_projection());
}

/// With the update epilogues (`gemm::gemm_update`) a training step leaves ΔW unwritten and
/// takes W, over three steps, where the separate decay, normaliser and optimizer kernels take
/// it: the normalised rules (SoftHebb with the adaptive rate and with a bias, Krotov), the WTA
/// decay, and the optimizer run in the epilogue (Sanger with Nesterov momentum, BCM with
/// Adam). Asked to keep intermediates, the fused step writes the same ΔW. Misuse of an
/// epilogue is an error that names it.
#[test]
fn fused_update_leaves_delta_w_unwritten_and_matches_the_separate_kernels() {
    use hebb::conformance::{random_f32, rel_err, widen};
    use hebb::kernels::gemm::UpdateEpilogue;
    use hebb::kernels::optim::OptimStep;
    use hebb::rules::gpu::{FromForward, GpuRule, RuleInit, UpdatePath};
    use hebb::rules::preset::RuleConfig;
    use serde_json::json;

    let ctx = any_context();
    let sgd =
        json!({"kind": "sgd", "lr": 0.02, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0});
    let presets = [
        (
            "softhebb/softkrotov",
            json!({"t_invert": 2.0, "optimizer": {"kind": "softhebb-adaptive", "lr": 0.08, "power": 0.5}}),
        ),
        (
            "softhebb/soft",
            json!({"t_invert": 1.0, "bias": true, "lr_bias": 2.0, "optimizer": sgd.clone()}),
        ),
        (
            "krotov/hopfield",
            json!({"p": 3.0, "k": 2, "delta": 0.4, "prec": 1e-30, "optimizer": sgd.clone()}),
        ),
        (
            "lagani/soft-wta-exp",
            json!({"temperature": 0.5, "optimizer": sgd}),
        ),
        (
            "lagani/hpca",
            json!({"adaptive_step": true, "optimizer": {"kind": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4}}),
        ),
        (
            "bcm/curti",
            json!({"activation": "relu", "lateral_strength": -0.1, "gamma": 0.5, "theta_eps": 1e-30, "optimizer": {"kind": "adam", "lr": 0.02, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}}),
        ),
    ];
    let (n, c, d) = (65, 33, 27);
    let seed = common::seed();
    let x_data = random_f32(seed, n * d);
    let x = Tensor::from_f32(&ctx, "X", &[n, d], &x_data).unwrap();
    for (name, params) in presets {
        let config =
            RuleConfig::from_params(name, &params).unwrap_or_else(|e| panic!("{name}: {e}"));
        let init = RuleInit {
            w: random_f32(seed ^ 7, c * d)
                .iter()
                .map(|v| v * 0.3)
                .collect(),
            ..Default::default()
        };
        // Three steps; ΔW of the last, kept or not.
        let run = |fused: bool, keep: bool| {
            let mut rule =
                GpuRule::with_path(&ctx, config.clone(), c, d, n, &init, UpdatePath::Fused)
                    .unwrap();
            rule.set_fused_projection(&ctx, false);
            assert_eq!(rule.set_fused_update(fused), fused, "{name}");
            rule.set_keep_intermediates(keep);
            for _ in 0..3 {
                let mut rec = Recorder::new(&ctx);
                rule.step(&mut rec, &x, n, None, FromForward::default())
                    .unwrap();
                rec.submit();
            }
            let dw = rule
                .intermediate("delta_w")
                .map(|t| t.to_f32_vec(&ctx).unwrap());
            (dw, rule.w.to_f32_vec(&ctx).unwrap())
        };
        let (dw_sep, w_sep) = run(false, false);
        let dw_sep = dw_sep.unwrap_or_else(|| panic!("{name}: the separate step writes ΔW"));
        let (dw_none, w_fused) = run(true, false);
        let (dw_kept, w_kept) = run(true, true);
        let dw_kept = dw_kept.unwrap_or_else(|| panic!("{name}: a kept ΔW is listed"));
        let e_w = rel_err(&widen(&w_fused), &widen(&w_sep));
        let e_dw = rel_err(&widen(&dw_kept), &widen(&dw_sep));
        // Same math, rounded in another order (the decay subtracted in the epilogue instead of
        // accumulated through β·C): f32 rounding of K = 65 sums, over three steps.
        assert!(
            e_w < 1e-5 && e_dw < 1e-4,
            "{name}: fused vs separate W {e_w:.2e}, ΔW {e_dw:.2e} (HEBB_SEED={seed})"
        );
        assert_eq!(w_kept, w_fused, "{name}: keeping ΔW changed W");
        // The WTA rules still run ΔW through their row normaliser, so it is written.
        if name != "lagani/soft-wta-exp" {
            assert!(
                dw_none.is_none(),
                "{name}: ΔW is listed as an intermediate of a step that left it out"
            );
        }
    }
    // The naive path has no epilogues.
    let config = RuleConfig::from_params("lagani/hpca", &json!({"adaptive_step": false, "optimizer": {"kind": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0}})).unwrap();
    let init = RuleInit {
        w: vec![0.01; 8],
        ..Default::default()
    };
    let mut rule = GpuRule::with_path(&ctx, config, 8, 1, 4, &init, UpdatePath::Naive).unwrap();
    assert!(!rule.fused_update() && !rule.set_fused_update(true));

    // Misuse is refused with the reason.
    let t =
        |label: &str, len: usize| Tensor::from_f32(&ctx, label, &[len], &vec![0.5; len]).unwrap();
    let (a, b, cm, w, r, s0, s1) = (
        t("A", 7 * 5),
        t("B", 7 * 3),
        t("C", 5 * 3),
        t("W", 5 * 3),
        t("r", 5),
        t("s0", 15),
        t("s1", 15),
    );
    let g = Gemm::new(5, 3, 7).trans(true, false);
    let mut rec = Recorder::new(&ctx);
    let decay = UpdateEpilogue::Decay {
        row_decay: &r,
        w: &cm,
        abs_max: None,
    };
    let err = gemm::gemm_update(&mut rec, &g, &a, &b, &cm, &decay)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bound twice"), "{err}");
    let adaptive = UpdateEpilogue::Optim {
        step: OptimStep::Adaptive {
            lr: 0.1,
            power: 0.5,
        },
        w: &w,
        state0: &s0,
        state1: &s1,
        write_delta: false,
    };
    let err = gemm::gemm_update(&mut rec, &g, &a, &b, &cm, &adaptive)
        .unwrap_err()
        .to_string();
    assert!(err.contains("adaptive rate"), "{err}");
    let short = t("short W", 14);
    let decay = UpdateEpilogue::Decay {
        row_decay: &r,
        w: &short,
        abs_max: None,
    };
    let err = gemm::gemm_update(&mut rec, &g, &a, &b, &cm, &decay)
        .unwrap_err()
        .to_string();
    assert!(err.contains("W (5 x 3)"), "{err}");
    let batched = Gemm::new(5, 3, 7).batch(2);
    let big = t("big", 100);
    let decay = UpdateEpilogue::Decay {
        row_decay: &r,
        w: &w,
        abs_max: None,
    };
    let err = gemm::gemm_update(&mut rec, &batched, &big, &big, &t("C2", 30), &decay)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one dense M x N matrix"), "{err}");
}

/// Double-buffered tiles: `+db` in labels, twice the workgroup memory in validation, taken by
/// the conv kernels (which share the GEMM's tile engine), and a stage count other than 1 or 2
/// is an error.
#[test]
fn double_buffered_tiles_parse_validate_and_are_taken_by_gemm_and_conv() {
    use hebb::kernels::conv::{self, ConvOptions};
    use hebb::kernels::gemm::GemmTiles;
    use hebb::kernels::im2col::ConvGeometry;
    let ctx = any_context();
    let db = GemmTiles::parse("64x64x16/4x4+db").expect("parses");
    assert_eq!(db.stages, 2);
    assert_eq!(db.label(), "64x64x16/4x4+db");
    assert_eq!(GemmTiles::parse("64x64x16/4x4").unwrap().stages, 1);
    db.validate(&ctx).unwrap();
    let three = GemmTiles { stages: 3, ..db };
    assert!(
        three
            .validate(&ctx)
            .unwrap_err()
            .to_string()
            .contains("1 or 2")
    );
    // Workgroup memory doubles: BK so deep that one buffer fits and two do not.
    let limit = ctx.limits.max_compute_workgroup_storage_size as u64;
    let bk = (limit / (4 * 128)) as u32 / 4 * 4;
    let single = GemmTiles::parse(&format!("64x64x{bk}/8x8")).unwrap();
    let double = GemmTiles {
        stages: 2,
        ..single
    };
    single.validate(&ctx).unwrap();
    let err = double.validate(&ctx).unwrap_err().to_string();
    assert!(err.contains("bytes of workgroup memory"), "{err}");
    let g = ConvGeometry {
        batch: 2,
        in_channels: 3,
        h: 9,
        w: 9,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        reflect: false,
    };
    // The conv kernels run the GEMM's tile engine, so they take double-buffered tiles too (their
    // results are conformance's); configurations of the other GEMM kernels are refused.
    let opts = ConvOptions {
        tiles: Some(db),
        ..Default::default()
    };
    let (planned, _, _) = conv::plan(&ctx, conv::ConvKernel::Update, &g, 8, &opts).unwrap();
    assert_eq!(planned.stages, 2);
    let opts = ConvOptions {
        tiles: Some(GemmTiles::subgroup(16)),
        ..Default::default()
    };
    let err = conv::plan(&ctx, conv::ConvKernel::Update, &g, 8, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("take tiled configurations"), "{err}");
}

/// `--policy` / `HEBB_POLICY` and `--limits` / `HEBB_LIMITS` name their choices or fail
/// clearly; a context under WebGPU's limits requests exactly those, and the policy kind
/// decides the choices `hebb info` prints.
#[test]
fn device_policy_and_limits_choices_are_named_and_applied() {
    use hebb::gpu::PolicyKind;
    use hebb::gpu::context::LimitsChoice;
    let err = PolicyKind::parse("fastest").unwrap_err().to_string();
    assert!(
        err.contains("\"fastest\"") && err.contains("gpu or cpu"),
        "{err}"
    );
    let err = LimitsChoice::parse("browser").unwrap_err().to_string();
    assert!(
        err.contains("\"browser\"") && err.contains("adapter or webgpu"),
        "{err}"
    );
    assert_eq!(PolicyKind::parse(" GPU ").unwrap(), PolicyKind::Gpu);
    let Some(backend) = common::required_backends().into_iter().next() else {
        return;
    };
    for policy in [PolicyKind::Gpu, PolicyKind::Cpu] {
        let Some(ctx) = common::context_with(&backend, Some(policy), Some(LimitsChoice::WebGpu))
        else {
            return;
        };
        assert_eq!(ctx.policy.kind, policy);
        assert_eq!(ctx.policy.chosen_by, "--policy");
        assert!(!ctx.policy.fused_projection);
        assert_eq!(
            ctx.policy.statistics_chunk.is_some(),
            policy == PolicyKind::Gpu
        );
        assert_eq!(ctx.limits.max_compute_workgroup_storage_size, 16384);
        assert_eq!(ctx.limits.max_compute_invocations_per_workgroup, 256);
        assert_eq!(ctx.limits.max_storage_buffer_binding_size, 128 << 20);
        assert!(ctx.settings().contains(&format!("policy {policy}")));
        assert!(ctx.settings().contains("limits webgpu"));
        let lines = ctx.policy.describe();
        assert!(lines[0].starts_with(&policy.to_string()), "{lines:?}");
        // The driver's loop limit is a fact of the adapter, not of the policy.
        assert_eq!(
            ctx.loop_iteration_limit().is_some(),
            ctx.adapter_name().to_lowercase().contains("llvmpipe")
        );
    }
}

/// The competition mode numbers are written once in WGSL (shaders/competition_modes.wgsl,
/// prepended to the three competition kernels) and once in Rust (`kernels::hebbian::modes`):
/// every name has the same value on both sides, and no mode is missing from either.
#[test]
fn competition_mode_numbers_match_wgsl() {
    use hebb::kernels::hebbian::modes;
    let (module, _) = validate_wgsl("competition_modes", HEBBIAN_WGSL.source).unwrap();
    let mut wgsl: Vec<(String, u32)> = module
        .constants
        .iter()
        .filter_map(|(_, c)| {
            let name = c.name.clone()?;
            if !name.starts_with("MODE_") {
                return None;
            }
            match module.global_expressions[c.init] {
                naga::Expression::Literal(naga::Literal::U32(v)) => Some((name, v)),
                ref other => panic!("{name} is not a u32 literal: {other:?}"),
            }
        })
        .collect();
    wgsl.sort_by_key(|(_, v)| *v);
    let rust: Vec<(String, u32)> = modes::ALL
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    assert_eq!(wgsl, rust);
    // Distinct values 0..14, so a switch over them has one arm per mode.
    let values: Vec<u32> = rust.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, (0..values.len() as u32).collect::<Vec<_>>());
}
