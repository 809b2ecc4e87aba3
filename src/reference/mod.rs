//! Float64 CPU twins of the GPU kernels, written from the math in each shader's header and
//! kept deliberately plain: loops in the textbook order, no blocking, no tricks.

pub mod elementwise;
pub mod gemm;
pub mod reduce;
