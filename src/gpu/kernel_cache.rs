//! Lazily compiled compute pipelines, keyed by (shader, entry point, override constants).
//!
//! The first launch of a kernel variant compiles its pipeline; every later launch, from any
//! thread, gets the same `Arc`. Two threads asking for the same key at once compile it once:
//! the map lock is held only to find the key's slot, and the slot's own lock is held while it
//! compiles, so other keys compile in parallel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::{HebbError, Result};

/// One WGSL file of `shaders/`, embedded in the binary.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
    /// Adapter features the file needs (an `enable` directive); empty for core WGSL.
    pub requires: wgpu::Features,
    /// The launchers of this shader validate every tensor extent against the indices the
    /// shader derives from its parameters (each shader's header states the invariant, and the
    /// conformance suite checks that nothing outside the outputs changes). Such shaders are
    /// compiled without naga's per-access runtime bounds checks, which cost 2–3x on lavapipe.
    pub launcher_checks_bounds: bool,
}

/// Override constants as (name, value). Values are f64 as in `PipelineCompilationOptions`;
/// the key stores their bits so it can be hashed.
pub type Overrides = Vec<(&'static str, f64)>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    shader: &'static str,
    entry: &'static str,
    overrides: Vec<(&'static str, u64)>,
}

type Slot = Arc<Mutex<Option<Arc<wgpu::ComputePipeline>>>>;

#[derive(Default)]
pub struct KernelCache {
    pipelines: Mutex<HashMap<Key, Slot>>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    /// `shader::entry` of each compiled pipeline, keyed by the address of the cached pipeline
    /// (the cache keeps every pipeline alive, so an address names one pipeline for good).
    names: Mutex<HashMap<usize, String>>,
    compiled: AtomicUsize,
}

impl KernelCache {
    /// Number of pipelines compiled so far (each key counts once).
    pub fn compiled_count(&self) -> usize {
        self.compiled.load(Ordering::SeqCst)
    }

    /// `shader::entry` of every pipeline compiled so far, sorted: which kernel variants a run
    /// used (tests check that a device policy's choices ran).
    pub fn compiled_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.lock().values().cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// `shader::entry` of a pipeline this cache compiled (profiles label dispatches with it).
    pub fn name_of(&self, pipeline: &wgpu::ComputePipeline) -> String {
        let address = pipeline as *const wgpu::ComputePipeline as usize;
        self.names
            .lock()
            .get(&address)
            .cloned()
            .unwrap_or_else(|| "(uncached pipeline)".into())
    }

    /// The pipeline for `shader::entry` with `overrides`, compiled on first use.
    pub fn get(
        &self,
        device: &wgpu::Device,
        features: wgpu::Features,
        shader: &Shader,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = Key {
            shader: shader.name,
            entry,
            overrides: overrides.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        };
        let slot = self.pipelines.lock().entry(key).or_default().clone();
        let mut slot = slot.lock();
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        if !features.contains(shader.requires) {
            return Err(HebbError::Shader {
                shader: shader.name.into(),
                message: format!(
                    "needs adapter features {:?}, which this device lacks",
                    shader.requires - features
                ),
            });
        }
        // Capture validation errors (e.g. a workgroup larger than the adapter allows) as a
        // HebbError instead of caching an invalid pipeline.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.module(device, shader)?;
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&format!("{}::{}", shader.name, entry)),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: overrides,
                // Every kernel initialises the workgroup memory it reads.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(HebbError::Shader {
                shader: format!("{}::{entry}", shader.name),
                message: format!("pipeline creation failed with {overrides:?}: {error}"),
            });
        }
        let pipeline = Arc::new(pipeline);
        self.names.lock().insert(
            Arc::as_ptr(&pipeline) as usize,
            format!("{}::{entry}", shader.name),
        );
        self.compiled.fetch_add(1, Ordering::SeqCst);
        *slot = Some(pipeline.clone());
        Ok(pipeline)
    }

    fn module(&self, device: &wgpu::Device, shader: &Shader) -> Result<wgpu::ShaderModule> {
        let mut modules = self.modules.lock();
        if let Some(m) = modules.get(shader.name) {
            return Ok(m.clone());
        }
        // Validate with naga first, so a bad shader is a readable error, not a wgpu panic.
        validate_wgsl(shader.name, shader.source)?;
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
        };
        let module = if shader.launcher_checks_bounds && !runtime_checks_forced() {
            // SAFETY: `create_shader_module_trusted` requires that the shader never indexes
            // out of bounds and that its loops terminate. For shaders marked
            // `launcher_checks_bounds`, every buffer index is a function of the uniform
            // parameters and the invocation ids that the shader guards explicitly (e.g.
            // `row < p.m`, `i < p.n`, `k < k_end <= p.k`), and every launcher checks, before
            // recording, that each bound tensor holds the full extent those guards allow
            // (`Tensor::expect_len`, `Gemm::check`); workgroup and private arrays are indexed
            // by loop counters bounded by the same override constants that size them
            // (validated by `GemmTiles::validate`); every loop has a bound derived from those
            // parameters. `HEBB_SHADER_CHECKS=1` turns naga's checks back on for debugging.
            unsafe {
                device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            device.create_shader_module(desc)
        };
        modules.insert(shader.name, module.clone());
        Ok(module)
    }
}

/// `HEBB_SHADER_CHECKS=1` compiles every shader with naga's runtime bounds checks.
pub fn runtime_checks_forced() -> bool {
    std::env::var("HEBB_SHADER_CHECKS").is_ok_and(|v| v == "1")
}

/// Parses and validates WGSL with naga (all capabilities: the device check is separate).
pub fn validate_wgsl(name: &str, source: &str) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| HebbError::Shader {
        shader: name.into(),
        message: e.emit_to_string(source),
    })?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| HebbError::Shader {
        shader: name.into(),
        message: e.emit_to_string(source),
    })?;
    Ok((module, info))
}
