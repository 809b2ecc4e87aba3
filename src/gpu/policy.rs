//! The device policy: every device-dependent choice of `hebb`, made once when a context opens
//! and printed by `hebb info`.
//!
//! Kernels ask the policy (`ctx.policy`) which variant, tiles or fusion to use; none of them
//! looks at the adapter's device type itself. A policy is one of two kinds:
//! - `gpu`: register-blocked 128 x 128 tiles, separate projection and competition kernels,
//!   the subgroup competition for every row length, split-K sized for hundreds of workgroups,
//!   batch-norm statistics walked in chunks of 256 values;
//! - `cpu`: what measured fastest on lavapipe (BENCHMARKS.md): tiles costed for workgroup
//!   memory that is slow, the subgroup GEMM, separate projection and competition kernels, the
//!   per-row competition below 1024 entries, split-K sized for the host's cores.
//!
//! The adapter's device type picks the kind; `HEBB_POLICY=gpu|cpu` (or `--policy`) overrides
//! it, so the GPU defaults also run, and are tested, on lavapipe. What the hardware or driver
//! dictates for correctness (the loop limit below, workgroup limits, features) is not a
//! preference: it holds under either kind.

use std::fmt;

use crate::error::{HebbError, Result};

/// The environment variable that overrides the policy's kind.
pub const POLICY_ENV: &str = "HEBB_POLICY";

/// `DevicePolicy::sanger_scan_cost` under the cpu kind. Measured on lavapipe (Mesa 25.0.7, 2
/// cores shared with a training run), `hebb bench rules --only fc5`: the step's GEMMs, 41 G
/// multiply-adds, took 7.3 s (5.6 G/s); the whole step with the scan took 0.72 s. Charging
/// all of it to the scan's 1.2 G gives 1.7 G/s, at most 3.3x the GEMMs' cost per
/// multiply-add; 4 rounds that bound up.
const SCAN_COST_CPU: f64 = 4.0;
/// `DevicePolicy::sanger_scan_cost` under the gpu kind: not measured (no GPU was at hand). The
/// scan keeps D lanes busy, each walking C·N steps in order (fc5: 2,304 lanes of 262,144
/// steps), where a tiled GEMM keeps the whole device busy; so a GPU keeps the GEMM order
/// unless the scan saves more than 64x the work (fc5 saves 33x: GEMMs on a GPU).
const SCAN_COST_GPU: f64 = 64.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    Gpu,
    Cpu,
}

impl PolicyKind {
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "gpu" => Ok(PolicyKind::Gpu),
            "cpu" => Ok(PolicyKind::Cpu),
            other => Err(HebbError::Config(format!(
                "device policy {other:?} (from --policy or {POLICY_ENV}): expected gpu or cpu"
            ))),
        }
    }

    /// The kind an adapter of this device type gets unless told otherwise.
    pub fn for_device_type(device_type: wgpu::DeviceType) -> Self {
        match device_type {
            wgpu::DeviceType::Cpu => PolicyKind::Cpu,
            _ => PolicyKind::Gpu,
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Gpu => "gpu",
            PolicyKind::Cpu => "cpu",
        })
    }
}

/// Every device-dependent choice. Built by `DevicePolicy::new`; read through `ctx.policy`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DevicePolicy {
    pub kind: PolicyKind,
    /// What set the kind: "device type", "HEBB_POLICY" or "--policy".
    pub chosen_by: &'static str,
    /// GEMM tiles: the tile sets and defaults of this kind (`GemmTiles::candidates`).
    /// The tile cost model's price of one loaded value, in FMAs (`GemmTiles::for_shape`): 8 on
    /// GPUs; 64 on lavapipe, where workgroup memory and its barriers cost far more.
    pub gemm_load_cost: f64,
    /// The default GEMM is the subgroup kernel, where the adapter can run it: 1.7-2.5x the
    /// tiled kernel on lavapipe (BENCHMARKS.md); GPUs keep the tiled kernel.
    pub prefer_subgroup_gemm: bool,
    /// Split-K splits K until about this many workgroups run: a software rasteriser runs one
    /// per core, a GPU wants several per compute unit.
    pub split_k_workgroups: usize,
    /// Competition rows of at least this many entries use the subgroup kernel where the
    /// adapter has one (`CompetitionKernel::for_row`): every row on GPUs (coalesced loads),
    /// rows of 1024 or more on lavapipe, where each invocation is already a SIMD lane.
    pub subgroup_competition_from: usize,
    /// Rules run the fused projection + competition kernel where the layer fits it
    /// (`ProjectionPlan::for_layer`). Off under both kinds, as measured: on lavapipe the
    /// separate kernels won every case `hebb bench rules` timed, and on an NVIDIA H200
    /// (BENCHMARKS.md, "Real GPU") the fused kernel took 4.86 ms of SoftHebb MNIST layer 2's
    /// 5.55 ms step (490 x 1536 x 3456, 62 workgroups), where the separate kernels' whole step
    /// on 640 rows of the same layer took 0.78 ms. It saves five N x C passes over memory but
    /// holds all C columns per workgroup, so a batch of rows fills few workgroups.
    pub fused_projection: bool,
    /// Batch-norm statistics walk each channel's B·H·W values in chunks of this many values,
    /// one invocation per chunk, where a channel holds more than twice as many
    /// (`norm::StatisticsChunks`); None: one invocation walks a whole channel (bar a driver's
    /// loop budget). On the H200 one invocation walking a single channel of 7,840 values took
    /// 0.44 ms, 73% of SoftHebb MNIST layer 0's step; lavapipe runs each invocation on a SIMD
    /// lane across channels, where one walk per channel is what was measured.
    pub statistics_chunk: Option<usize>,
    /// The most loop iterations one invocation may run where the driver cuts loops short
    /// (llvmpipe: 65,535, all loops of the invocation together, silently). A fact of the
    /// driver, the same under either kind; launchers split their work below it or refuse.
    pub loop_iteration_limit: Option<u64>,
    /// The price of one multiply-add of Sanger's running-reconstruction update
    /// (`kernels::sanger_scan`) in GEMM multiply-adds: the rule takes that order where
    /// cost·2·N·C·D is below the GEMM order's C²·(N + D) + N·C·D (`sanger_by_scan`). The
    /// scan runs one invocation per input column with a sequential walk over the neurons, so
    /// it keeps far fewer lanes busy than a tiled GEMM.
    pub sanger_scan_cost: f64,
}

impl DevicePolicy {
    /// The policy for an adapter. `requested` is the caller's choice (`--policy`); without it
    /// `HEBB_POLICY` decides, and without that the device type.
    pub fn new(info: &wgpu::AdapterInfo, requested: Option<PolicyKind>) -> Result<Self> {
        let (kind, chosen_by) = match requested {
            Some(kind) => (kind, "--policy"),
            None => match std::env::var(POLICY_ENV) {
                Ok(text) if !text.trim().is_empty() => (PolicyKind::parse(&text)?, POLICY_ENV),
                _ => (PolicyKind::for_device_type(info.device_type), "device type"),
            },
        };
        Ok(Self::of_kind(kind, chosen_by, info))
    }

    fn of_kind(kind: PolicyKind, chosen_by: &'static str, info: &wgpu::AdapterInfo) -> Self {
        let names = format!("{} {}", info.name, info.driver_info).to_lowercase();
        let loop_iteration_limit = names.contains("llvmpipe").then_some(65_535);
        let cpu = kind == PolicyKind::Cpu;
        Self {
            kind,
            chosen_by,
            gemm_load_cost: if cpu { 64.0 } else { 8.0 },
            prefer_subgroup_gemm: cpu,
            split_k_workgroups: if cpu {
                2 * std::thread::available_parallelism().map_or(2, |n| n.get())
            } else {
                512
            },
            subgroup_competition_from: if cpu { 1024 } else { 0 },
            fused_projection: false,
            statistics_chunk: if cpu { None } else { Some(256) },
            loop_iteration_limit,
            sanger_scan_cost: if cpu { SCAN_COST_CPU } else { SCAN_COST_GPU },
        }
    }

    /// Whether Sanger's update of an N-row batch on a C x D layer runs as the running
    /// reconstruction (`kernels::sanger_scan`) rather than the GEMMs GᵀX, GᵀG and
    /// tril(GᵀG)·W: where it costs less by `sanger_scan_cost`, and where one neuron's step
    /// over the rows fits the driver's loop budget.
    pub fn sanger_by_scan(&self, n: usize, c: usize, d: usize) -> bool {
        let (n, c, d) = (n as f64, c as f64, d as f64);
        let scan = self.sanger_scan_cost * 2.0 * n * c * d;
        let gemm = c * c * (n + d) + n * c * d;
        let fits = self.loop_iteration_limit.is_none_or(|limit| {
            crate::kernels::sanger_scan::scan_iterations(n as usize, 1) <= limit
        });
        scan < gemm && fits
    }

    /// One line per choice, as `hebb info` prints them.
    pub fn describe(&self) -> Vec<String> {
        vec![
            format!("{} (set by {})", self.kind, self.chosen_by),
            format!(
                "GEMM: {} tile set, load cost {} FMAs, subgroup kernel {}",
                self.kind,
                self.gemm_load_cost,
                if self.prefer_subgroup_gemm {
                    "preferred where available"
                } else {
                    "not preferred"
                }
            ),
            format!("split-K: about {} workgroups", self.split_k_workgroups),
            format!(
                "competition: subgroup kernel from rows of {} entries",
                self.subgroup_competition_from
            ),
            format!(
                "fused projection + competition: {}",
                if self.fused_projection { "on" } else { "off" }
            ),
            match self.statistics_chunk {
                Some(chunk) => format!("batch-norm statistics: chunks of {chunk} values"),
                None => "batch-norm statistics: one invocation per channel".into(),
            },
            format!(
                "Sanger's update: running reconstruction where it costs under 1/{} of the GEMMs",
                self.sanger_scan_cost
            ),
            format!(
                "loop iteration limit: {}",
                self.loop_iteration_limit
                    .map_or("none known".to_string(), |n| format!("{n} (driver)"))
            ),
        ]
    }
}
