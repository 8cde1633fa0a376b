//! Experiments as a graph of jobs: the config ([`config`], with [`model_config`] and the
//! grids of its [`studies`]) and its jobs ([`grid`]); the work of one job ([`pipeline`],
//! with the files a vanilla job leaves: [`vanilla_files`]); the on-disk store and journal
//! ([`store`]) and `sweep.json` ([`manifest`]); the order of jobs ([`scheduler`]) and its
//! bookkeeping ([`coordinator`]); the loops that run them ([`exec`] in one process,
//! [`distributed`] over MPI ranks).

pub mod config;
pub mod coordinator;
#[cfg(feature = "mpi")]
pub mod distributed;
pub mod error;
pub mod exec;
pub mod grid;
pub mod joblog;
pub mod lock;
pub mod manifest;
pub mod model_config;
pub mod pipeline;
pub mod scheduler;
pub mod status;
pub mod store;
pub mod studies;
pub mod vanilla_files;

pub use config::RunConfig;
pub use error::{Result, SweepError};
