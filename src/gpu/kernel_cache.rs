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
    compiled: AtomicUsize,
}

impl KernelCache {
    /// Number of pipelines compiled so far (each key counts once).
    pub fn compiled_count(&self) -> usize {
        self.compiled.load(Ordering::SeqCst)
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
        let pipeline = Arc::new(pipeline);
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
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
        });
        modules.insert(shader.name, module.clone());
        Ok(module)
    }
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
