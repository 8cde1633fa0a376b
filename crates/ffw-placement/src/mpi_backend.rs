//! The collective over an MPI communicator, for CPU tensors: the ranks' tensors are gathered
//! on the group's first rank, summed there in rank order and broadcast, so every rank and
//! every run gets the same bits (MPI's own reductions may associate differently).
use candle_core::Tensor;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::collective::{host_f32, sum_in_rank_order, Collective};
use crate::error::{PlacementError, Result};

pub struct MpiCollective {
    comm: SimpleCommunicator,
}

impl MpiCollective {
    /// The group of `comm`'s ranks (a job's gang, or the world).
    pub fn new(comm: SimpleCommunicator) -> Self {
        Self { comm }
    }
}

/// The collective of a job's ranks `comm` on `device`: MPI for CPU tensors, NCCL for CUDA
/// ones (its communicator id carried over `comm`).
pub fn group_on(
    comm: SimpleCommunicator,
    device: &candle_core::Device,
) -> Result<Box<dyn Collective>> {
    if device.is_cpu() {
        return Ok(Box::new(MpiCollective::new(comm)));
    }
    #[cfg(feature = "nccl")]
    return Ok(Box::new(crate::nccl_backend::NcclCollective::new(
        comm, device,
    )?));
    #[cfg(not(feature = "nccl"))]
    Err(PlacementError::Collective {
        op: "init",
        reason: "a job on several GPU ranks needs NCCL: rebuild with --features nccl \
                 (docs/GPU.md), or set ranks_per_job = 1"
            .into(),
    })
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
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
        let mine = host_f32(t)?;
        let root = self.comm.process_at_rank(0);
        let mut sum = if self.comm.rank() == 0 {
            let mut all = vec![0f32; mine.len() * self.size()];
            root.gather_into_root(&mine[..], &mut all[..]);
            sum_in_rank_order(&all, self.size())
        } else {
            root.gather_into(&mine[..]);
            vec![0f32; mine.len()]
        };
        root.broadcast_into(&mut sum[..]);
        Ok(Tensor::from_vec(sum, t.shape(), t.device())?)
    }
}
