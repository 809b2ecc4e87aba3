//! The conformance test suite: `cargo test --release` runs it.
//!
//! - `conformance`: every kernel against its float64 reference on each backend this platform
//!   is expected to offer (Linux: Vulkan and GL, which lavapipe provides without a GPU). A
//!   listed backend without an adapter fails the test; set `HEBB_TEST_BACKENDS` to change the
//!   list. Inputs are fresh each run; `HEBB_SEED` reproduces a failing run.
//! - `portability`: every WGSL file validates with naga and translates to SPIR-V, MSL and HLSL.
//! - `runtime`: the kernel cache, parameter-struct layouts and error paths.
//! - `cases_reference`: the golden cases (reference and GPU rules); `data`: dataset readers.
//! - `train`: `hebb train` end to end; `zca`: input whitening (GPU vs reference, covariance ≈ I);
//!   `tune`: the autotuning cache; `hostile`: hostile files, recipes, flags and run folders
//!   end in clear errors; `crash`: runs killed at random points resume to the same result; `spiking`: the culture simulator (kernels vs reference per
//!   backend, culture builder, recipes, `hebb spiking` end to end); `scripts`: the prepared
//!   GPU check (`benches/gpu_check.sh`) in its quick mode.

mod cases_reference;
mod common;
mod conformance;
mod crash;
mod data;
mod finetune;
mod fuzz_corpus;
mod hostile;
#[cfg(feature = "mpi")]
mod mpi;
mod portability;
mod runtime;
mod scripts;
mod spiking;
mod train;
mod tune;
mod zca;
