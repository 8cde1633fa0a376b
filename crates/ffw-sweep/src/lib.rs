//! Experiments as a graph of jobs: the config and its grid ([`config`], [`grid`]), the work
//! of one job ([`pipeline`]), the on-disk store and journal ([`store`]), and the schedulers
//! ([`exec`] in one process, [`distributed`] over MPI ranks).

pub mod config;
#[cfg(feature = "mpi")]
pub mod distributed;
pub mod error;
pub mod exec;
pub mod grid;
pub mod joblog;
pub mod lock;
pub mod pipeline;
pub mod status;
pub mod store;

pub use config::RunConfig;
pub use error::{Result, SweepError};
