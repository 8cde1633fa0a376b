//! Where work runs (DESIGN.md "Placement"): the device a process asks for (`--device`), which
//! GPU each worker of a node binds, each rank's share of its node's cores, and the
//! collective that data-parallel jobs reduce their gradients with. Jobs receive a device and
//! a collective; they never ask MPI or the driver themselves.
pub mod binding;
pub mod collective;
pub mod device;
pub mod error;
#[cfg(feature = "mpi")]
pub mod mpi_backend;
#[cfg(feature = "nccl")]
pub mod nccl_backend;

pub use binding::{gpu_of, thread_share, Worker};
pub use collective::{Collective, Group, Solo};
pub use device::{describe, open, DeviceChoice};
pub use error::{PlacementError, Result};
