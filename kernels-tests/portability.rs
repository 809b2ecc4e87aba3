//! Every WGSL file in `shaders/` must validate with naga and translate to SPIR-V (Vulkan),
//! MSL (Metal) and HLSL (DX12), for every entry point, with its override constants at their
//! defaults, so Metal and DX12 users are not the first to find a portability bug. Shaders on
//! cooperative matrices skip HLSL: wgpu offers EXPERIMENTAL_COOPERATIVE_MATRIX on Vulkan and
//! Metal only, and naga has no HLSL translation for it.

use std::path::PathBuf;

use hebb::gpu::kernel_cache::validate_wgsl;
use hebb::kernels::{ALL_SHADERS, SHADER_LIBRARIES};

fn shader_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("read shader");
            (name, text)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wgsl files in {}", dir.display());
    files
}

/// The library files a module's source starts with, in order.
fn libraries_of(name: &str) -> Vec<&'static str> {
    SHADER_LIBRARIES
        .iter()
        .filter(|(_, users)| users.contains(&name))
        .map(|(lib, _)| *lib)
        .collect()
}

#[test]
fn every_shader_file_is_embedded() {
    let files = shader_files();
    let text_of = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("shaders/{name}.wgsl is missing"))
    };
    for (name, text) in &files {
        if let Some((_, users)) = SHADER_LIBRARIES.iter().find(|(lib, _)| lib == name) {
            assert!(
                !users.is_empty(),
                "library {name}.wgsl is used by no module"
            );
            continue;
        }
        let embedded = ALL_SHADERS
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("shaders/{name}.wgsl is not listed in kernels::ALL_SHADERS"));
        let mut expected: String = libraries_of(name).iter().map(|l| text_of(l)).collect();
        expected.push_str(text);
        assert_eq!(
            embedded.source, expected,
            "embedded copy of {name}.wgsl (after its libraries) is stale"
        );
    }
}

#[test]
fn every_shader_translates_to_spirv_msl_hlsl() {
    let mut translated = 0;
    for shader in ALL_SHADERS {
        let (name, text) = (shader.name, shader.source);
        let (module, info) = validate_wgsl(name, text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !module.entry_points.is_empty(),
            "{name}.wgsl has no entry point"
        );
        for ep in &module.entry_points {
            let (resolved, rinfo) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((ep.stage, ep.name.as_str())),
                &naga::back::PipelineConstants::default(),
            )
            .unwrap_or_else(|e| panic!("{name}::{}: overrides: {e}", ep.name));

            naga::back::spv::write_vec(
                &resolved,
                &rinfo,
                &naga::back::spv::Options::default(),
                Some(&naga::back::spv::PipelineOptions {
                    shader_stage: ep.stage,
                    entry_point: ep.name.clone(),
                }),
            )
            .unwrap_or_else(|e| panic!("{name}::{}: SPIR-V: {e}", ep.name));

            let msl_options = naga::back::msl::Options {
                lang_version: (2, 4),
                ..Default::default()
            };
            naga::back::msl::write_string(
                &resolved,
                &rinfo,
                &msl_options,
                &naga::back::msl::PipelineOptions {
                    entry_point: Some((ep.stage, ep.name.clone())),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}::{}: MSL: {e}", ep.name));

            if shader
                .requires
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            {
                translated += 1;
                continue;
            }
            let hlsl_options = naga::back::hlsl::Options {
                shader_model: naga::back::hlsl::ShaderModel::V6_2,
                ..Default::default()
            };
            let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
                entry_point: Some((ep.stage, ep.name.clone())),
            };
            let mut out = String::new();
            naga::back::hlsl::Writer::new(&mut out, &hlsl_options, &hlsl_pipeline)
                .write(&resolved, &rinfo, None)
                .unwrap_or_else(|e| panic!("{name}::{}: HLSL: {e}", ep.name));
            translated += 1;
        }
    }
    assert!(
        translated >= 10,
        "only {translated} entry points translated"
    );
}
