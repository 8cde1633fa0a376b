//! What a data-parallel job needs across the ranks of its group: a sum, a broadcast and a
//! gather. A backend provides only sums (of tensors, and of host f64 values), in a fixed
//! order so that every run of the same group gives the same bits; broadcast and gather are
//! sums with zeros elsewhere, which are exact, so they need nothing of their own.
//!
//! A job's ranks fail alone (a file one node cannot read, a panic), and a rank left waiting
//! in a collective for a rank that gave up would wait forever: [`Agreeing`] makes every
//! collective of a group first agree that no rank has failed.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use candle_core::{DType, Tensor};

use crate::error::{PlacementError, Result};

/// Every rank of a group calls the same operations in the same order, with tensors of one
/// shape (the gather excepted: its dim 0 may differ). Shared (`Send + Sync`) so that ops
/// recorded for a backward pass (synchronised BatchNorm) can hold their group.
pub trait Collective: Send + Sync {
    /// This rank's place in the group, `0..size()`.
    fn rank(&self) -> usize;
    fn size(&self) -> usize;

    /// The element-wise sum of `t` over the group (f32), the same bits on every rank.
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor>;

    /// Ends the group's joint work: every rank calls it at the same point (or where it
    /// fails, `failed`), and no collective follows; calling it again does nothing. On an
    /// [`Agreeing`] group this is how the others learn of a failure; elsewhere nothing.
    fn conclude(&self, _failed: bool) -> Result<()> {
        Ok(())
    }

    /// The element-wise sum of host values over the group in f64, added in rank order: for
    /// sums that f32 would round (BatchNorm's statistics).
    fn sum_host_f64(&self, values: &[f64]) -> Result<Vec<f64>>;

    /// The element-wise sum of a few host values over the group (flags, running totals),
    /// through a CPU tensor; on a group of one, `values` untouched.
    fn sum_host(&self, values: &[f32]) -> Result<Vec<f32>> {
        if self.size() == 1 {
            return Ok(values.to_vec());
        }
        let t = Tensor::from_slice(values, values.len(), &candle_core::Device::Cpu)?;
        host_f32(&self.all_reduce_sum(&t)?)
    }

    /// Rank `root`'s `t` on every rank (the others pass a tensor of the same shape).
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor> {
        let mine = if self.rank() == root {
            t.detach()
        } else {
            t.zeros_like()?
        };
        self.all_reduce_sum(&mine)
    }

    /// The ranks' `t` concatenated along dim 0 in rank order, on every rank. Gradients flow
    /// back into this rank's own rows (the other rows are constants here): a loss that every
    /// rank computes identically from the gathered rows then gives each rank the gradient of
    /// its own samples.
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let (rank, size) = (self.rank(), self.size());
        if size == 1 {
            return Ok(t.clone());
        }
        let mut counts = vec![0f32; size];
        counts[rank] = t.dim(0)? as f32;
        let counts = self
            .all_reduce_sum(&Tensor::from_vec(counts, size, t.device())?)?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|c| c as usize)
            .collect::<Vec<_>>();
        let (n, total) = (t.dim(0)?, counts.iter().sum::<usize>());
        let before: usize = counts[..rank].iter().sum();
        let after = before + n;
        // Zero rows where the other ranks' rows go: the sum then holds every rank's rows.
        let zeros = |rows: usize| -> Result<Option<Tensor>> {
            let mut shape = t.dims().to_vec();
            shape[0] = rows;
            Ok((rows > 0)
                .then(|| Tensor::zeros(shape, DType::F32, t.device()))
                .transpose()?)
        };
        let own = t.to_dtype(DType::F32)?;
        let padded: Vec<Tensor> = [zeros(before)?, Some(own.detach()), zeros(total - after)?]
            .into_iter()
            .flatten()
            .collect();
        let all = self.all_reduce_sum(&Tensor::cat(&padded, 0)?)?;
        let mut pieces = Vec::with_capacity(3);
        if before > 0 {
            pieces.push(all.narrow(0, 0, before)?);
        }
        pieces.push(own);
        if after < total {
            pieces.push(all.narrow(0, after, total - after)?);
        }
        Ok(Tensor::cat(&pieces, 0)?)
    }
}

/// A data-parallel group, as jobs hold it.
pub type Group = Arc<dyn Collective>;

/// `t`'s values in f32 on the host, row-major.
pub(crate) fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The element-wise sum of the `parts` equal slices of `all`, added in rank order.
pub(crate) fn sum_in_rank_order<T: Copy + std::ops::AddAssign>(all: &[T], parts: usize) -> Vec<T> {
    let n = all.len() / parts.max(1);
    let mut sum = all[..n].to_vec();
    for part in all[n..].chunks_exact(n.max(1)) {
        sum.iter_mut().zip(part).for_each(|(a, b)| *a += *b);
    }
    sum
}

/// A group whose ranks agree before each collective that none of them has failed: a rank
/// that fails says so in its [`Collective::conclude`], which meets the others' next
/// collective (or their own conclusion), and they fail with [`PlacementError::PeerFailed`]
/// instead of waiting for it. Every rank's sequence of calls is the same up to where one
/// fails, so the one flag exchange before each call always meets its counterpart.
pub struct Agreeing<C> {
    inner: C,
    /// A failure was announced or learnt, or the group concluded: it is finished.
    over: AtomicBool,
}

impl<C: Collective> Agreeing<C> {
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            over: AtomicBool::new(false),
        }
    }

    /// Exchanges the ranks' failure flags (this rank's is `failed`); an error if another
    /// rank has failed.
    fn agree(&self, failed: bool) -> Result<()> {
        let (rank, size) = (self.rank(), self.size());
        if self.over.load(Ordering::SeqCst) {
            return Err(PlacementError::Collective {
                op: "all-reduce",
                reason: "called after the group's work ended (a failure, or its conclusion)".into(),
            });
        }
        let mut flags = vec![0f32; size];
        flags[rank] = f32::from(u8::from(failed));
        let all = self.inner.sum_host(&flags)?;
        let failed_ranks: Vec<usize> = (0..size).filter(|&r| r != rank && all[r] > 0.0).collect();
        self.over
            .store(failed || !failed_ranks.is_empty(), Ordering::SeqCst);
        if failed_ranks.is_empty() {
            Ok(())
        } else {
            Err(PlacementError::PeerFailed {
                ranks: failed_ranks,
                size,
            })
        }
    }
}

impl<C: Collective> Collective for Agreeing<C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        self.agree(false)?;
        self.inner.all_reduce_sum(t)
    }

    fn sum_host(&self, values: &[f32]) -> Result<Vec<f32>> {
        self.agree(false)?;
        self.inner.sum_host(values)
    }

    fn sum_host_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        self.agree(false)?;
        self.inner.sum_host_f64(values)
    }

    fn conclude(&self, failed: bool) -> Result<()> {
        if self.over.load(Ordering::SeqCst) {
            // Agreed already: the others know.
            return Ok(());
        }
        let agreed = self.agree(failed);
        self.over.store(true, Ordering::SeqCst);
        agreed
    }
}

/// A group of one: every operation is the identity.
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }

    fn sum_host_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }
}

/// Ranks as threads of one process, summing through shared slots in rank order: a group
/// without MPI, for tests of data-parallel training.
pub struct InProcess {
    rank: usize,
    size: usize,
    /// Each rank's values, f32 ones widened (exactly).
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
    barrier: Arc<Barrier>,
}

impl InProcess {
    /// One handle per rank, each to be moved to its own thread.
    pub fn group(size: usize) -> Vec<InProcess> {
        let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
        let barrier = Arc::new(Barrier::new(size));
        (0..size)
            .map(|rank| InProcess {
                rank,
                size,
                slots: slots.clone(),
                barrier: barrier.clone(),
            })
            .collect()
    }
}

impl InProcess {
    /// Every rank's `mine`, concatenated in rank order.
    fn exchange(&self, mine: Vec<f64>) -> Vec<f64> {
        self.slots.lock().expect("no rank panicked")[self.rank] = mine;
        self.barrier.wait();
        let all = self.slots.lock().expect("no rank panicked").concat();
        self.barrier.wait();
        all
    }
}

impl Collective for InProcess {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        let mine = host_f32(t)?.into_iter().map(f64::from).collect::<Vec<_>>();
        let all: Vec<f32> = self.exchange(mine).into_iter().map(|v| v as f32).collect();
        let sum = sum_in_rank_order(&all, self.size);
        Ok(Tensor::from_vec(sum, t.shape(), t.device())?)
    }

    fn sum_host_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(sum_in_rank_order(
            &self.exchange(values.to_vec()),
            self.size,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn host_values_are_summed_over_the_group() {
        assert_eq!(Solo.sum_host(&[0.1, 2.0]).unwrap(), [0.1, 2.0]);
        let sums: Vec<Vec<f32>> = InProcess::group(3)
            .into_iter()
            .map(|c| std::thread::spawn(move || c.sum_host(&[c.rank() as f32, 1.0]).unwrap()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(sums.iter().all(|s| s == &[3.0, 3.0]), "{sums:?}");
    }

    /// Rank 2 fails after the first all-reduce; the others, in their second, learn of it
    /// there instead of waiting for it, and all three end.
    #[test]
    fn a_failed_rank_ends_its_groups_collectives() {
        let handles: Vec<_> = InProcess::group(3)
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let g = Agreeing::new(c);
                    let t = Tensor::new(&[1f32], &Device::Cpu).unwrap();
                    let first = g.all_reduce_sum(&t).unwrap().to_vec1::<f32>().unwrap();
                    assert_eq!(first, [3.0]);
                    if g.rank() == 2 {
                        g.conclude(true).unwrap();
                        return None;
                    }
                    let err = g.all_reduce_sum(&t).unwrap_err().to_string();
                    // Already known: concluding exchanges nothing more.
                    g.conclude(true).unwrap();
                    Some(err)
                })
            })
            .collect();
        let errors: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for e in errors[..2].iter().flatten() {
            assert!(
                e.contains("rank(s) [2] of this job's 3 ranks failed"),
                "{e}"
            );
        }
        assert_eq!(errors.iter().flatten().count(), 2);
        // Without a failure, concluding is one more agreement that passes.
        let ok: Vec<_> = InProcess::group(2)
            .into_iter()
            .map(|c| std::thread::spawn(move || Agreeing::new(c).conclude(false).is_ok()))
            .collect();
        assert!(ok.into_iter().all(|h| h.join().unwrap()));
    }

    #[test]
    fn broadcast_and_gather_are_exact_and_gather_passes_gradients_home() {
        let ranks = InProcess::group(3);
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let r = c.rank() as f32;
                    // Rank r holds r + 1 rows of [0.1·r, -0.3].
                    let rows: Vec<f32> = (0..=c.rank()).flat_map(|_| [0.1 * r, -0.3]).collect();
                    let x = Var::from_vec(rows, (c.rank() + 1, 2), &Device::Cpu).unwrap();
                    let all = c.all_gather(x.as_tensor()).unwrap();
                    let b = c
                        .broadcast(&Tensor::new(&[r + 0.7], &Device::Cpu).unwrap(), 2)
                        .unwrap();
                    // Row i weighted by i + 1: each rank's rows get their own weights.
                    let w = Tensor::arange(1f32, 7., &Device::Cpu).unwrap();
                    let loss = all.sum(1).unwrap().mul(&w).unwrap().sum_all().unwrap();
                    let g = loss.backward().unwrap();
                    let g = g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
                    (
                        c.rank(),
                        all.to_vec2::<f32>().unwrap(),
                        b.to_vec1::<f32>().unwrap(),
                        g,
                    )
                })
            })
            .collect();
        for h in handles {
            let (rank, all, b, g) = h.join().unwrap();
            let want: Vec<Vec<f32>> = [0usize, 1, 1, 2, 2, 2]
                .iter()
                .map(|&r| vec![0.1 * r as f32, -0.3])
                .collect();
            assert_eq!(all, want, "rank {rank}");
            assert_eq!(b, vec![2.7f32], "rank {rank}");
            let first = [0usize, 1, 3][rank];
            let want_g: Vec<Vec<f32>> = (first..=first + rank)
                .map(|i| vec![(i + 1) as f32; 2])
                .collect();
            assert_eq!(g, want_g, "rank {rank}");
        }
    }
}
