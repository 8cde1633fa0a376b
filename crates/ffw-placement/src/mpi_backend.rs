//! The collective over an MPI communicator, for CPU tensors: the ranks' tensors are gathered
//! on the group's first rank, summed there in rank order and broadcast, so every rank and
//! every run gets the same bits (MPI's own reductions may associate differently).
use candle_core::Tensor;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use std::sync::Arc;

use crate::collective::{host_f32, sum_in_rank_order, Agreeing, Collective, Group};
use crate::error::{PlacementError, Result};

pub struct MpiCollective {
    comm: SimpleCommunicator,
}

// SAFETY: the communicator is a handle MPI owns; calling MPI on it from another thread is
// MPI's business: initialised with MPI_THREAD_MULTIPLE where rank 0 runs jobs beside its
// coordinator thread, and otherwise only the thread that runs the job calls it.
unsafe impl Send for MpiCollective {}
unsafe impl Sync for MpiCollective {}

impl MpiCollective {
    /// The group of `comm`'s ranks (a job's gang, or the world).
    pub fn new(comm: SimpleCommunicator) -> Self {
        Self { comm }
    }
}

/// The collective of a job's ranks `comm` on `device`: MPI for CPU tensors, NCCL for CUDA
/// ones (its communicator id carried over `comm`); either way [`Agreeing`], so that one
/// rank's failure ends the job on all of them.
pub fn group_on(comm: SimpleCommunicator, device: &candle_core::Device) -> Result<Group> {
    if device.is_cpu() {
        return Ok(Arc::new(Agreeing::new(MpiCollective::new(comm))));
    }
    #[cfg(feature = "nccl")]
    return Ok(Arc::new(Agreeing::new(
        crate::nccl_backend::NcclCollective::new(comm, device)?,
    )));
    #[cfg(not(feature = "nccl"))]
    Err(PlacementError::Collective {
        op: "init",
        reason: "a job on several GPU ranks needs NCCL: rebuild with --features nccl \
                 (docs/GPU.md), or set ranks_per_job = 1"
            .into(),
    })
}

impl MpiCollective {
    /// `mine` summed over the group: gathered on its first rank, added in rank order there,
    /// broadcast.
    fn sum<T: Equivalence + Copy + Default + std::ops::AddAssign>(&self, mine: &[T]) -> Vec<T> {
        let root = self.comm.process_at_rank(0);
        let mut sum = if self.comm.rank() == 0 {
            let mut all = vec![T::default(); mine.len() * self.size()];
            root.gather_into_root(mine, &mut all[..]);
            sum_in_rank_order(&all, self.size())
        } else {
            root.gather_into(mine);
            vec![T::default(); mine.len()]
        };
        root.broadcast_into(&mut sum[..]);
        sum
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
    }

    fn sum_host_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(self.sum(values))
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        if !t.device().is_cpu() {
            return Err(PlacementError::Collective {
                op: "all-reduce",
                reason: "the MPI backend takes CPU tensors; CUDA tensors need the NCCL \
                         backend (build with --features nccl)"
                    .into(),
            });
        }
        let sum = self.sum(&host_f32(t)?);
        Ok(Tensor::from_vec(sum, t.shape(), t.device())?)
    }
}
