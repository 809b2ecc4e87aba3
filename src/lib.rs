//! `hebb`: GPU compute kernels for batched Hebbian learning, in WGSL through wgpu.
//!
//! The data path runs one way: `data` (datasets to batches) → `gpu` (device, tensors, kernel cache, timing) → `kernels`
//! (one launcher per shader in `shaders/`) → `rules` (Hebbian presets) → nn → train. `reference` holds the
//! float64 CPU twin of every kernel; `conformance` compares the two; `bench` times them.

pub mod bench;
pub mod conformance;
pub mod data;
pub mod dist;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod nn;
pub mod plot;
pub mod reference;
pub mod rules;
pub mod spiking;
pub mod train;

pub use error::{HebbError, Result};
