//! The collective over NCCL, for CUDA tensors: the group's first rank creates the
//! communicator id and MPI carries it to the others. NCCL's ring reduction runs in a fixed
//! order for a fixed group, so repeated runs give the same bits.
use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::{CudaStorage, CustomOp1, Device, Layout, Shape, Tensor};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::collective::Collective;
use crate::error::{PlacementError, Result};
use crate::mpi_backend::MpiCollective;

pub struct NcclCollective {
    comm: Comm,
    /// Host values ([`Collective::sum_host`]) go over MPI: through NCCL they would need a
    /// copy to the GPU and a sync back.
    host: MpiCollective,
}

// SAFETY: the NCCL communicator and the MPI one are handles their libraries own; a job's
// collective is called by the one thread that runs the job (MpiCollective's note).
unsafe impl Send for NcclCollective {}
unsafe impl Sync for NcclCollective {}

fn nccl_error(op: &'static str, e: impl std::fmt::Debug) -> PlacementError {
    PlacementError::Collective {
        op,
        reason: format!("NCCL: {e:?}"),
    }
}

impl NcclCollective {
    /// A communicator over `group`'s ranks, each on its own GPU `device`.
    pub fn new(group: SimpleCommunicator, device: &Device) -> Result<Self> {
        let id = if group.rank() == 0 {
            Id::new().map_err(|e| nccl_error("init", e))?
        } else {
            Id::uninit([0; 128])
        };
        let mut bytes = *id.internal();
        group.process_at_rank(0).broadcast_into(&mut bytes[..]);
        let stream = device.as_cuda_device()?.cuda_stream();
        let comm = Comm::from_rank(
            stream,
            group.rank() as usize,
            group.size() as usize,
            Id::uninit(bytes),
        )
        .map_err(|e| nccl_error("init", e))?;
        Ok(Self {
            comm,
            host: MpiCollective::new(group),
        })
    }
}

/// The all-reduce as a candle op on the tensor's own stream, with no host copy.
struct AllReduce<'a>(&'a Comm);

impl CustomOp1 for AllReduce<'_> {
    fn name(&self) -> &'static str {
        "ffw-nccl-all-reduce"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("the NCCL all-reduce takes CUDA tensors")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = s.device().clone();
        let src = s.as_cuda_slice::<f32>()?;
        let src = match l.contiguous_offsets() {
            Some((a, b)) => src.slice(a..b),
            None => candle_core::bail!("the NCCL all-reduce takes contiguous tensors"),
        };
        // SAFETY: NCCL writes every element before anything reads the buffer.
        let mut dst = unsafe { dev.alloc::<f32>(l.shape().elem_count()) }?;
        self.0
            .all_reduce(&src, &mut dst, &ReduceOp::Sum)
            .map_err(candle_core::Error::debug)?;
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), l.shape().clone()))
    }
}

impl Collective for NcclCollective {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn size(&self) -> usize {
        self.comm.world_size()
    }

    fn sum_host(&self, values: &[f32]) -> Result<Vec<f32>> {
        self.host.sum_host(values)
    }

    fn sum_host_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        self.host.sum_host_f64(values)
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.to_dtype(candle_core::DType::F32)?.contiguous()?.detach();
        Ok(t.apply_op1_no_bwd(&AllReduce(&self.comm))?)
    }
}
