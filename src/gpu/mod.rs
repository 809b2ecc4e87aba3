//! The GPU runtime: adapter and device (`context`), every device-dependent choice (`policy`),
//! the pipeline cache (`kernel_cache`), typed device tensors (`tensor`), command batching
//! (`recorder`), parameter slots and cached bind groups (`bindings`), timing (`timing`) and the
//! autotuning cache (`tuning`).

pub mod bindings;
pub mod context;
pub mod kernel_cache;
pub mod policy;
pub mod recorder;
pub mod tensor;
pub mod timing;
pub mod tuning;

pub use context::{AdapterChoice, GpuContext, LoggedShape, feature_names, list_adapters};
pub use kernel_cache::{KernelCache, Shader};
pub use policy::{DevicePolicy, PolicyKind};
pub use recorder::{DispatchTime, Recorder, grid_1d};
pub use tensor::{DType, Tensor};
pub use timing::{GpuTimer, TimerKind};
