//! Adapter selection and the device every kernel runs on.
//!
//! `GpuContext::new(&AdapterChoice)` picks an adapter (best by default, or the one named by
//! `--adapter` / `WGPU_ADAPTER_NAME`, on the backends of `--backend` / `WGPU_BACKEND`), opens a
//! device with the adapter's real limits and every optional feature the kernels know how to use,
//! and owns the kernel cache.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{HebbError, Result};
use crate::gpu::kernel_cache::KernelCache;
use crate::gpu::policy::{DevicePolicy, PolicyKind};
use crate::gpu::tensor::{DType, Tensor};
use crate::gpu::tuning::{self, ShapeClass, Tuning};

/// Optional features the kernels can use when present. None of them is required.
pub const OPTIONAL_FEATURES: &[(wgpu::Features, &str)] = &[
    (wgpu::Features::SHADER_F16, "SHADER_F16"),
    (wgpu::Features::SUBGROUP, "SUBGROUP"),
    (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
    (
        wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        "TIMESTAMP_QUERY_INSIDE_PASSES",
    ),
    (wgpu::Features::IMMEDIATES, "IMMEDIATES"),
    (wgpu::Features::PIPELINE_CACHE, "PIPELINE_CACHE"),
    (
        wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
        "EXPERIMENTAL_COOPERATIVE_MATRIX",
    ),
];

/// Set to any value to leave wgpu's experimental features (the cooperative-matrix GEMM) off
/// even where the adapter offers them.
pub const NO_EXPERIMENTAL_ENV: &str = "HEBB_NO_EXPERIMENTAL";

/// Which adapter to open. Empty fields fall back to `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`,
/// then to the best adapter on every backend.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// `vulkan`, `metal`, `dx12` or `gl` (a comma list is accepted, as in `WGPU_BACKEND`).
    pub backend: Option<String>,
    /// An index into the list `hebb info` prints, or a case-insensitive name substring.
    pub adapter: Option<String>,
    /// The device policy's kind (`--policy`); None leaves it to `HEBB_POLICY`, then to the
    /// adapter's device type.
    pub policy: Option<PolicyKind>,
    /// The device limits to request (`--limits`); None leaves it to `HEBB_LIMITS`, then to
    /// everything the adapter offers.
    pub limits: Option<LimitsChoice>,
}

/// The environment variable that selects the requested device limits: `adapter` or `webgpu`.
pub const LIMITS_ENV: &str = "HEBB_LIMITS";

/// Which device limits a context requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitsChoice {
    /// Everything the adapter offers.
    #[default]
    Adapter,
    /// WebGPU's default limits (`wgpu::Limits::default()`): 16 KiB of workgroup storage,
    /// 256 invocations per workgroup, 128 MiB storage bindings, 8 storage buffers per stage.
    /// Browsers and many Metal and mobile devices give no more; kernels must fit them or refuse
    /// clearly.
    WebGpu,
}

impl LimitsChoice {
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "adapter" => Ok(LimitsChoice::Adapter),
            "webgpu" => Ok(LimitsChoice::WebGpu),
            other => Err(HebbError::Config(format!(
                "device limits {other:?} (from --limits or {LIMITS_ENV}): expected adapter or webgpu"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            LimitsChoice::Adapter => "adapter",
            LimitsChoice::WebGpu => "webgpu",
        }
    }
}

impl AdapterChoice {
    pub fn backend(name: &str) -> Self {
        Self {
            backend: Some(name.to_string()),
            ..Self::default()
        }
    }

    /// The limits to request: the choice, else `HEBB_LIMITS`, else the adapter's.
    pub fn limits_choice(&self) -> Result<LimitsChoice> {
        match self.limits {
            Some(choice) => Ok(choice),
            None => match std::env::var(LIMITS_ENV) {
                Ok(text) if !text.trim().is_empty() => LimitsChoice::parse(&text),
                _ => Ok(LimitsChoice::Adapter),
            },
        }
    }

    fn backends(&self) -> Result<wgpu::Backends> {
        let text = match &self.backend {
            Some(b) => b.clone(),
            None => match std::env::var("WGPU_BACKEND") {
                Ok(v) if !v.trim().is_empty() => v,
                _ => return Ok(wgpu::Backends::all()),
            },
        };
        let mut backends = wgpu::Backends::empty();
        for name in text.split(',').map(|s| s.trim().to_ascii_lowercase()) {
            backends |= match name.as_str() {
                "vulkan" | "vk" => wgpu::Backends::VULKAN,
                "metal" | "mtl" => wgpu::Backends::METAL,
                "dx12" | "d3d12" => wgpu::Backends::DX12,
                "gl" | "gles" | "opengl" => wgpu::Backends::GL,
                _ => return Err(HebbError::UnknownBackend(name)),
            };
        }
        Ok(backends)
    }

    fn adapter_filter(&self) -> Option<String> {
        self.adapter
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.trim().is_empty())
    }
}

/// Adapter order for "best": real GPUs first, then by backend maturity for compute.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    };
    (ty, backend)
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    desc.flags = wgpu::InstanceFlags::from_build_config().with_env();
    wgpu::Instance::new(desc)
}

/// Every adapter on the chosen backends, in the order `--adapter <index>` refers to.
pub fn list_adapters(choice: &AdapterChoice) -> Result<Vec<wgpu::Adapter>> {
    let backends = choice.backends()?;
    let instance = instance(backends);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
    adapters.sort_by_key(|a| rank(&a.get_info()));
    Ok(adapters)
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?})", info.name, info.backend)
}

impl AdapterChoice {
    /// The adapter of the `local_rank`-th process on a node (one GPU per rank): where no
    /// adapter was named, the `local_rank`-th (modulo their count) of the adapters with the
    /// best adapter's backend and device type, so that one GPU is not counted once per
    /// backend. A named adapter is kept: every rank then opens it.
    pub fn for_local_rank(&self, local_rank: usize, local_size: usize) -> Result<Self> {
        if self.adapter_filter().is_some() {
            return Ok(self.clone());
        }
        let adapters = list_adapters(self)?;
        let Some(best) = adapters.first().map(|a| a.get_info()) else {
            return Ok(self.clone());
        };
        let peers: Vec<usize> = adapters
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                let info = a.get_info();
                info.backend == best.backend && info.device_type == best.device_type
            })
            .map(|(i, _)| i)
            .collect();
        if local_size > peers.len() && local_rank == 0 {
            eprintln!(
                "warning: {local_size} ranks on this node share {} adapter(s) of {} ({:?})",
                peers.len(),
                best.name,
                best.backend
            );
        }
        Ok(Self {
            adapter: Some(peers[local_rank % peers.len()].to_string()),
            ..self.clone()
        })
    }
}

fn pick_adapter(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let adapters = list_adapters(choice)?;
    let filter_note = match (&choice.backend, std::env::var("WGPU_BACKEND")) {
        (Some(b), _) => format!(" on backend {b}"),
        (None, Ok(b)) if !b.is_empty() => format!(" on backend {b} (WGPU_BACKEND)"),
        _ => String::new(),
    };
    if adapters.is_empty() {
        return Err(HebbError::NoAdapter {
            filter: filter_note,
        });
    }
    let picked = match choice.adapter_filter() {
        None => adapters.into_iter().next(),
        Some(wanted) => {
            let available = adapters
                .iter()
                .enumerate()
                .map(|(i, a)| format!("[{i}] {}", describe(&a.get_info())))
                .collect::<Vec<_>>()
                .join(", ");
            let by_index = wanted.parse::<usize>().ok().filter(|&i| i < adapters.len());
            let found = match by_index {
                Some(i) => adapters.into_iter().nth(i),
                None => {
                    let needle = wanted.to_lowercase();
                    adapters
                        .into_iter()
                        .find(|a| a.get_info().name.to_lowercase().contains(&needle))
                }
            };
            Some(found.ok_or(HebbError::AdapterNotFound { wanted, available })?)
        }
    };
    // Non-empty list, so `picked` is always Some here.
    picked.ok_or(HebbError::NoAdapter {
        filter: filter_note,
    })
}

/// The opened device, its queue, what it offers, and the kernel cache.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    pub kernels: KernelCache,
    /// Errors wgpu reported outside any call that returns a `Result` (device loss, validation).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Scratch f32 buffer shared by launches that need one (split-K partial products); it
    /// only grows. Dispatches that reuse it are ordered by wgpu's usage tracking.
    workspace: Mutex<Option<Arc<Tensor>>>,
    spare: Mutex<Option<Arc<Tensor>>>,
    /// `hebb tune`'s winners for this adapter (empty without a cache).
    pub tuning: Tuning,
    /// Every device-dependent choice (`gpu::policy`).
    pub policy: DevicePolicy,
    /// Which limits were requested (`limits` holds their values).
    pub limits_choice: LimitsChoice,
    shape_log: Mutex<Option<Vec<LoggedShape>>>,
    /// Uniform arena chunks for recorders (`bindings::UniformArena`).
    pub uniform_chunks: Arc<crate::gpu::bindings::ChunkPool>,
    /// Bind groups by pipeline and bound buffer ranges.
    pub bind_groups: crate::gpu::bindings::BindGroupCache,
}

/// A GEMM-family launch as `hebb tune` replays it.
#[derive(Clone, Debug, PartialEq)]
pub enum LoggedShape {
    Gemm {
        m: usize,
        n: usize,
        k: usize,
        trans_a: bool,
        trans_b: bool,
    },
    Conv {
        kernel: crate::kernels::conv::ConvKernel,
        geometry: crate::kernels::im2col::ConvGeometry,
        c_out: usize,
    },
}

impl GpuContext {
    /// Opens the adapter described by `choice`. A software adapter is used when it is the only
    /// one, with a one-line notice on stderr.
    pub fn new(choice: &AdapterChoice) -> Result<Self> {
        let adapter = pick_adapter(choice)?;
        let info = adapter.get_info();
        let policy = DevicePolicy::new(&info, choice.policy)?;
        let limits_choice = choice.limits_choice()?;
        if info.device_type == wgpu::DeviceType::Cpu && choice.adapter_filter().is_none() {
            eprintln!(
                "note: no hardware GPU found; using the software adapter {} ({:?}). Timings say little about GPUs.",
                info.name, info.backend
            );
        }
        let mut wanted = OPTIONAL_FEATURES
            .iter()
            .fold(wgpu::Features::empty(), |f, (flag, _)| f | *flag);
        if std::env::var_os(NO_EXPERIMENTAL_ENV).is_some() {
            wanted.remove(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        }
        let features = adapter.features() & wanted;
        let experimental_features =
            if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                // SAFETY: `ExperimentalFeatures::enabled` asks no precondition of the caller's
                // code; its contract is an acknowledgement that wgpu's experimental features may
                // still have bugs. The only one requested is cooperative matrices, and hebb uses
                // it in one shader (gemm_coop.wgsl) whose launcher admits only shapes where every
                // tile load and store lies inside the bound buffers (Gemm::coop_ok), so no access
                // relies on bounds checks that the experimental path may lack. Users can opt out
                // with HEBB_NO_EXPERIMENTAL.
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            };
        let limits = match limits_choice {
            LimitsChoice::Adapter => adapter.limits(),
            // Alignments are minimums, not capacities: keep the adapter's.
            LimitsChoice::WebGpu => wgpu::Limits::default().using_alignment(adapter.limits()),
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("hebb"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| HebbError::RequestDevice {
            adapter: describe(&info),
            source,
        })?;
        let tuning = match tuning::cache_path() {
            Some(path) => tuning::load(&path, &info).unwrap_or_else(|e| {
                eprintln!("warning: ignoring the tuning cache: {e}");
                Tuning::default()
            }),
            None => Tuning::default(),
        };
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().push(e.to_string());
        }));
        Ok(Self {
            adapter,
            device,
            queue,
            info,
            features,
            limits,
            kernels: KernelCache::default(),
            uncaptured,
            workspace: Mutex::new(None),
            spare: Mutex::new(None),
            tuning,
            policy,
            limits_choice,
            shape_log: Mutex::new(None),
            uniform_chunks: Default::default(),
            bind_groups: Default::default(),
        })
    }

    /// The tuned configuration for a shape class, if `hebb tune` measured one here.
    pub fn tuned(&self, class: &ShapeClass) -> Option<crate::kernels::gemm::GemmTiles> {
        self.tuning.get(class)
    }

    /// Starts recording the shapes every GEMM and conv launch takes (for `hebb tune`).
    pub fn log_shapes(&self) {
        *self.shape_log.lock() = Some(Vec::new());
    }

    /// Stops recording and returns the distinct logged launches, in first-seen order.
    pub fn take_shape_log(&self) -> Vec<LoggedShape> {
        let mut out: Vec<LoggedShape> = Vec::new();
        for s in self.shape_log.lock().take().unwrap_or_default() {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// Records a launch's shape while logging is on.
    pub fn note_shape(&self, shape: impl FnOnce() -> LoggedShape) {
        if let Some(log) = self.shape_log.lock().as_mut() {
            log.push(shape());
        }
    }

    pub fn has(&self, feature: wgpu::Features) -> bool {
        self.features.contains(feature)
    }

    /// The most loop iterations one invocation may run, where the driver cuts loops short:
    /// llvmpipe (lavapipe and Mesa's GL) ends every loop of an invocation once all its loops
    /// together have iterated 65,535 times (LP_MAX_TGSI_LOOP_ITERATIONS, "shared between every
    /// loop in a shader"), silently. Launchers whose loop counts grow with the data split the
    /// work or refuse with an error below this. None where no such limit is known.
    pub fn loop_iteration_limit(&self) -> Option<u64> {
        self.policy.loop_iteration_limit
    }

    /// `policy cpu, limits adapter`: what a report needs to reproduce this context's choices.
    pub fn settings(&self) -> String {
        format!(
            "policy {}, limits {}",
            self.policy.kind,
            self.limits_choice.name()
        )
    }

    /// `name (backend)`, as printed in reports.
    pub fn adapter_name(&self) -> String {
        describe(&self.info)
    }

    /// Turns any error wgpu reported asynchronously into a `HebbError`.
    pub fn check(&self, during: &str) -> Result<()> {
        let mut errors = self.uncaptured.lock();
        if errors.is_empty() {
            return Ok(());
        }
        let message = errors.join("; ");
        errors.clear();
        Err(HebbError::Gpu {
            during: during.to_string(),
            message,
        })
    }

    /// A scratch f32 tensor of at least `elements` elements, reused across launches.
    pub fn workspace(&self, elements: usize) -> Result<Arc<Tensor>> {
        let mut slot = self.workspace.lock();
        if let Some(t) = slot.as_ref().filter(|t| t.len() >= elements) {
            return Ok(t.clone());
        }
        let t = Arc::new(Tensor::empty(self, "workspace", &[elements], DType::F32)?);
        *slot = Some(t.clone());
        Ok(t)
    }

    /// A 16-byte buffer no launcher reads or writes: it fills a binding that an entry point
    /// declares but a launch's override constants leave untouched.
    pub fn spare(&self) -> Result<Arc<Tensor>> {
        let mut slot = self.spare.lock();
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let t = Arc::new(Tensor::empty(self, "spare binding", &[4], DType::F32)?);
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| HebbError::Gpu {
                during: "wait for the queue".into(),
                message: e.to_string(),
            })?;
        self.check("queue execution")
    }
}

/// One line per enabled optional feature name, for reports.
pub fn feature_names(features: wgpu::Features) -> Vec<&'static str> {
    OPTIONAL_FEATURES
        .iter()
        .filter(|(f, _)| features.contains(*f))
        .map(|(_, n)| *n)
        .collect()
}
