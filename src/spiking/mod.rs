//! SpikingGrid: a digital twin of a neuronal culture on a multi-electrode array, learning by
//! STDP (Lagani et al., IEEE NER 2021; §10 of shared/docs/seeds-lagani-fasthebb-spikinggrid.md).
//!
//! `culture` builds the neurons and connectivity from a seed, `checkpoint` writes and reads
//! them; `kernels::spiking` runs the steps on the GPU (shaders/spiking.wgsl),
//! `reference::spiking` in float64; `task` is the MNIST stimulation, readout, training and
//! evaluation; `recipe` the bundled configurations.

pub mod checkpoint;
pub mod culture;
pub mod recipe;
pub mod search;
pub mod task;
