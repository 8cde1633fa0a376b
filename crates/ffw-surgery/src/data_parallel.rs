//! Data-parallel training steps: a group of ranks ([`Collective`]) shares one global
//! minibatch, each rank taking a contiguous slice of it in rank order. Each rank weights its
//! loss by its slice's share of the global batch, so the sum of the ranks' gradients, taken
//! in rank order by the collective, is the gradient of the global batch's mean loss; every
//! rank then takes the same optimiser step and the replicas stay identical.
//!
//! FFW's gate steps run data-parallel the same way ([`crate::surgery::Surgery::gate_step_in`]),
//! with the MI on the probabilities and bias labels gathered from the whole group.
//!
//! Vanilla training normalises BatchNorm with the statistics of the whole global minibatch
//! (synchronised BatchNorm, [`ffw_kernels::batch_norm::GroupSum`]), forward and backward, so
//! k ranks train the model one rank trains; FFW runs BatchNorm in inference mode.
use std::sync::Arc;

use candle_core::{Tensor, Var};
use ffw_data::batches::Pass;
use ffw_data::{Batch, DeviceSplit};
use ffw_kernels::batch_norm::GroupSum;
use ffw_nn::{Mode, Model, ParamStore};
use ffw_placement::{Collective, Group};

use crate::error::{Result, SurgeryError};
use crate::optim::Optimizer;

/// The rank's slice of a global minibatch: contiguous, in rank order, sizes differing by at
/// most one (the first `len % size` ranks take one more).
pub fn shard<T>(global: &[T], rank: usize, size: usize) -> &[T] {
    let (base, extra) = (global.len() / size, global.len() % size);
    let start = rank * base + rank.min(extra);
    &global[start..start + base + usize::from(rank < extra)]
}

/// The global minibatches of one epoch's `order`, `batch_size` at a time; a last one shorter
/// than `min_len` is dropped (on several ranks every rank needs a sample at every step, and
/// FFW's MI needs two samples).
pub fn global_batches(order: &[usize], batch_size: usize, min_len: usize) -> Vec<&[usize]> {
    let mut chunks: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    if chunks.last().is_some_and(|c| c.len() < min_len) {
        chunks.pop();
    }
    chunks
}

/// This rank's batches of `globals`, the [`global_batches`] of `order`, in step order: on one
/// rank whole minibatches in one pass over `order`; on several, this rank's [`shard`] of each
/// global minibatch, a pass of one.
pub fn local_pass<'b>(
    split: &'b DeviceSplit,
    order: &'b [usize],
    globals: &'b [&'b [usize]],
    batch_size: usize,
    (rank, ranks): (usize, usize),
    augment: Option<u64>,
) -> Pass<'b> {
    if ranks == 1 {
        // Zipped after `globals`, so a dropped last minibatch is never read.
        return split.pass(order, batch_size, augment);
    }
    Box::new(globals.iter().flat_map(move |g| {
        let local = shard(g, rank, ranks);
        split.pass(local, local.len(), augment)
    }))
}

/// Whether `flag` holds, asserted to hold alike on every rank of the group. The replicas
/// take the same decisions (early stops, temperature changes) from the same numbers; should
/// they ever differ, the job fails here rather than leave ranks waiting in collectives the
/// others never join.
pub fn agreed(flag: bool, group: &dyn Collective) -> Result<bool> {
    if group.size() == 1 {
        return Ok(flag);
    }
    let set = group.sum_host(&[f32::from(u8::from(flag))])?[0] as usize;
    if set != 0 && set != group.size() {
        return Err(SurgeryError::Diverged(format!(
            "{set} of the group's {} ranks decided otherwise than the rest",
            group.size()
        )));
    }
    Ok(flag)
}

/// The gradients of `vars` summed over the group, as one flat all-reduce in `vars` order
/// (a variable without a gradient on this rank contributes zeros).
pub fn all_reduce_grads(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    group: &dyn Collective,
) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    let flat = vars
        .iter()
        .map(|v| match grads.get(v.as_tensor()) {
            Some(g) => g.flatten_all(),
            None => v.as_tensor().zeros_like()?.flatten_all(),
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let summed = group.all_reduce_sum(&Tensor::cat(&flat, 0)?)?;
    let mut offset = 0;
    for v in vars {
        let n = v.elem_count();
        let g = summed.narrow(0, offset, n)?.reshape(v.shape())?;
        grads.insert(v.as_tensor(), g);
        offset += n;
    }
    Ok(())
}

/// The group as the sum of BatchNorm's per-channel statistics ([`Mode::TrainSynced`]), in
/// f64 like one rank's.
struct BatchNormSums(Group);

impl GroupSum for BatchNormSums {
    fn sum(&self, values: &[f64]) -> candle_core::Result<Vec<f64>> {
        self.0
            .sum_host_f64(values)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// One data-parallel SGD/Adam step of `model`, whose parameters `store` holds and `opt`
/// updates: `local` is this rank's slice of a global minibatch of `global_len` samples;
/// BatchNorm normalises with the global minibatch's statistics. Returns this rank's share of
/// the global mean loss (the group's sum of them is the global mean) and its logits, left on
/// the device. On one rank the share is the loss itself, to the bit.
pub fn train_step(
    model: &Model,
    store: &ParamStore,
    opt: &mut dyn Optimizer,
    local: &Batch,
    global_len: usize,
    group: &Group,
) -> Result<(Tensor, Tensor)> {
    let sums: Arc<dyn GroupSum> = Arc::new(BatchNormSums(group.clone()));
    let mode = if group.size() > 1 {
        Mode::TrainSynced(&sums)
    } else {
        Mode::Train
    };
    let logits = model.head(&model.features(&local.x, mode)?)?;
    let share = local.x.dim(0)? as f64 / global_len as f64;
    let loss = (candle_nn::loss::cross_entropy(&logits, &local.y)? * share)?;
    let mut grads = loss.backward()?;
    all_reduce_grads(&mut grads, &store.trainable(), group.as_ref())?;
    opt.step(&grads)?;
    Ok((loss, logits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FfwConfig, OptimizerConfig};
    use crate::optim;
    use crate::probe::Probe;
    use crate::surgery::Surgery;
    use candle_core::Device;
    use ffw_data::dataset::epoch_order;
    use ffw_data::Dataset;
    use ffw_nn::GateMode;
    use ffw_nn::{Arch, MlpSpec, ModelSpec};
    use ffw_placement::collective::InProcess;
    use ffw_placement::Solo;

    #[test]
    fn a_last_minibatch_shorter_than_the_minimum_is_dropped() {
        let order: Vec<usize> = (0..11).collect();
        assert_eq!(global_batches(&order, 5, 1)[2], &[10]);
        assert_eq!(global_batches(&order, 5, 2).len(), 2);
        assert_eq!(global_batches(&order[..10], 4, 2).len(), 3);
    }

    /// Replicas that decide alike go on; replicas that do not fail on every rank.
    #[test]
    fn a_decision_the_ranks_disagree_on_fails_on_all_of_them() {
        let decide = |flags: [bool; 2]| -> Vec<Result<bool>> {
            InProcess::group(2)
                .into_iter()
                .map(|g| std::thread::spawn(move || agreed(flags[g.rank()], &g)))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        };
        assert!(decide([true, true]).iter().all(|r| matches!(r, Ok(true))));
        assert!(decide([false, false])
            .iter()
            .all(|r| matches!(r, Ok(false))));
        for r in decide([true, false]) {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("diverged: 1 of the group's 2 ranks"), "{e}");
        }
    }

    #[test]
    fn shards_cover_the_batch_in_rank_order() {
        let global: Vec<usize> = (0..10).collect();
        let parts: Vec<&[usize]> = (0..3).map(|r| shard(&global, r, 3)).collect();
        assert_eq!(parts, [&[0, 1, 2, 3][..], &[4, 5, 6], &[7, 8, 9]]);
        assert_eq!(shard(&global, 0, 1), &global[..]);
        assert!(shard(&global[..1], 1, 2).is_empty());
    }

    /// `n` samples of shape `sample_shape`, 3 classes, a binary bias.
    fn data(n: usize, sample_shape: &[usize]) -> Dataset {
        let dim: usize = sample_shape.iter().product();
        Dataset {
            x: (0..n * dim)
                .map(|i| ((i * 7919 % 113) as f32 / 56.0) - 1.0)
                .collect(),
            sample_shape: sample_shape.to_vec(),
            y: (0..n).map(|i| (i * 5 % 3) as u32).collect(),
            n_classes: 3,
            biases: vec![(0..n).map(|i| (i % 2) as u32).collect()],
            n_bias_classes: vec![2],
            aligned: vec![vec![0, 1, 0]],
        }
    }

    fn mlp() -> Arch {
        Arch::Mlp(MlpSpec {
            input: 12,
            hidden: vec![16, 8],
            n_classes: 3,
        })
    }

    /// Parameters (running statistics included) after `steps` global minibatches of 16 of
    /// `data` trained by `group`.
    fn train(arch: Arch, data: Dataset, group: &Group, steps: usize) -> Vec<Vec<f32>> {
        let store = ParamStore::new(7, &Device::Cpu);
        let model = arch.build(store.var_builder()).unwrap();
        let sgd = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-3,
        };
        let mut opt = optim::build(&sgd, store.trainable());
        let order = epoch_order(data.len(), 3, 0);
        for global in order.chunks(16).take(steps) {
            let local = shard(global, group.rank(), group.size());
            let b = data.batch(local, &Device::Cpu).unwrap();
            train_step(&model, &store, opt.as_mut(), &b, global.len(), group).unwrap();
        }
        let mut vars = store.vars();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    fn train_mlp(group: &Group, steps: usize) -> Vec<Vec<f32>> {
        train(mlp(), data(64, &[12]), group, steps)
    }

    /// SimpleConvNet: BatchNorm after every convolution.
    fn train_conv(group: &Group, steps: usize) -> Vec<Vec<f32>> {
        let arch = Arch::SimpleConvNet(ffw_nn::SimpleConvNetSpec {
            kernel: 3,
            n_classes: 3,
        });
        train(arch, data(64, &[3, 6, 6]), group, steps)
    }

    /// FFW from the MLP's initial parameters: the gates and the head after `steps` gate
    /// steps on global minibatches of 16, trained by `group`.
    fn ffw(group: &Group, steps: usize) -> Vec<Vec<f32>> {
        let arch = mlp();
        let store = ParamStore::new(7, &Device::Cpu);
        arch.build(store.var_builder()).unwrap();
        let base = store.snapshot().unwrap();
        // At the paper's λ the MI's gradient through the gathered batch moves the gates by
        // far more than the tolerance.
        let cfg = FfwConfig::default();
        let probe = Probe::new(8, 2, &cfg.probe, 3, &Device::Cpu).unwrap();
        let mut surgery = Surgery::new(&arch, &base, &cfg, vec![probe], &Device::Cpu).unwrap();
        let mode = GateMode::Soft { temperature: 1.0 };
        let d = data(64, &[12]);
        for global in epoch_order(d.len(), 4, 0).chunks(16).take(steps) {
            let local = shard(global, group.rank(), group.size());
            let b = d.batch(local, &Device::Cpu).unwrap();
            surgery
                .gate_step_in(&b, global.len(), mode, group.as_ref())
                .unwrap();
        }
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out: Vec<Vec<f32>> = surgery.gates.vars().iter().map(|v| flat(v)).collect();
        let heads = surgery.heads().unwrap();
        let mut names: Vec<&String> = heads[0].keys().collect();
        names.sort();
        out.extend(names.into_iter().map(|n| flat(&heads[0][n])));
        out
    }

    /// Runs `f` on two in-process ranks and on one; checks the replicas agree and match the
    /// single rank to 1e-5, and that training moved something (`f(&Solo, 0)` is the start).
    fn two_ranks_like_one(f: fn(&Group, usize) -> Vec<Vec<f32>>) {
        let solo: Group = Arc::new(Solo);
        let one = f(&solo, 4);
        let two: Vec<_> = InProcess::group(2)
            .into_iter()
            .map(|g| std::thread::spawn(move || f(&(Arc::new(g) as Group), 4)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(two[0], two[1], "replicas stay identical");
        let diff = one
            .iter()
            .flatten()
            .zip(two[0].iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "max difference {diff}");
        assert!(one != f(&solo, 0), "training moved nothing");
    }

    /// Two ranks (threads) sharing each global batch train the model one rank trains on it.
    #[test]
    fn two_ranks_train_like_one() {
        two_ranks_like_one(train_mlp);
    }

    /// The same with BatchNorm, synchronised: its batch statistics are the global batch's,
    /// and so are the running statistics every replica keeps.
    #[test]
    fn two_ranks_train_a_batch_norm_model_like_one() {
        two_ranks_like_one(train_conv);
    }

    /// The same for FFW's gate steps, whose MI needs the whole batch's probabilities.
    #[test]
    fn two_ranks_run_ffw_like_one() {
        two_ranks_like_one(ffw);
    }
}
