//! Fast CPU kernels as candle custom ops. candle's own CPU convolution backward goes through a
//! direct `conv_transpose2d` and a slow kernel-gradient convolution; these ops run forward,
//! input gradient and weight gradient as a direct AVX-512 convolution for the large same-padded
//! kernels (k = 5, 7) and as im2col/col2im + GEMM otherwise, parallel over the batch.
//! Linear layers skip the input gradient of data batches; bias adds, inference-mode
//! BatchNorm and ReLU run as one pass each way; optimiser steps update in place; max-pooling
//! takes padding. Other devices keep candle's implementation.

pub mod affine;
pub mod batch_norm;
pub mod conv;
pub mod gate;
mod gemm;
pub mod linear;
pub mod optim;
pub mod pool;
mod storage;
pub mod tanh;
#[cfg(test)]
mod testing;

pub use affine::{channel_affine, relu, Act};
pub use batch_norm::batch_norm_train;
pub use conv::conv2d;
pub use gate::{gate, gated_weight};
pub use linear::matmul_t;
pub use pool::max_pool2d;
pub use tanh::tanh;
