//! Float64 CPU twins of the GPU kernels, written from the math in each shader's header and
//! kept deliberately plain: loops in the textbook order, no blocking, no tricks.

// Index loops mirror the subscripts of the math they implement.
#![allow(clippy::needless_range_loop)]

pub mod activation;
pub mod backprop;
pub mod classifier;
pub mod conv;
pub mod dense;
pub mod elementwise;
pub mod gemm;
pub mod network;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rules;
pub mod spiking;
pub mod zca;
