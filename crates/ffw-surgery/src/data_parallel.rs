//! Data-parallel training steps: a group of ranks ([`Collective`]) shares one global
//! minibatch, each rank taking a contiguous slice of it in rank order. Each rank weights its
//! loss by its slice's share of the global batch, so the sum of the ranks' gradients, taken
//! in rank order by the collective, is the gradient of the global batch's mean loss; every
//! rank then takes the same optimiser step and the replicas stay identical.
//!
//! FFW's gate steps run data-parallel the same way ([`crate::surgery::Surgery::gate_step_in`]),
//! with the MI on the probabilities and bias labels gathered from the whole group.
//!
//! Vanilla training of models with BatchNorm needs its batch statistics synchronised across
//! the group, which is not done yet: [`train_step`] refuses them rather than train on
//! per-rank statistics (FFW runs BatchNorm in inference mode and needs nothing), and
//! [`check_trainable`] lets a config be refused before anything runs.
use candle_core::{Device, Tensor, Var};
use ffw_data::Batch;
use ffw_nn::params::is_running_stat;
use ffw_nn::{Model, ModelSpec, ParamStore};
use ffw_placement::Collective;

use crate::error::{Result, SurgeryError};
use crate::optim::Optimizer;

/// The rank's slice of a global minibatch: contiguous, in rank order, sizes differing by at
/// most one (the first `len % size` ranks take one more).
pub fn shard<T>(global: &[T], rank: usize, size: usize) -> &[T] {
    let (base, extra) = (global.len() / size, global.len() % size);
    let start = rank * base + rank.min(extra);
    &global[start..start + base + usize::from(rank < extra)]
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

fn refuse_batch_norm(store: &ParamStore, ranks: usize) -> Result<()> {
    let has_batch_norm = store.vars().iter().any(|(name, _)| is_running_stat(name));
    if has_batch_norm && ranks > 1 {
        return Err(SurgeryError::Unsupported(
            "data-parallel training of a model with BatchNorm (its statistics are not \
             synchronised across ranks yet)"
                .into(),
        ));
    }
    Ok(())
}

/// Whether [`train_step`] can train `arch` on `ranks` ranks: checked from a throwaway CPU
/// build, so a config is refused before any job starts.
pub fn check_trainable(arch: &dyn ModelSpec, ranks: usize) -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    arch.build(store.var_builder())?;
    refuse_batch_norm(&store, ranks)
}

/// One data-parallel SGD/Adam step of `model`, whose parameters `store` holds and `opt`
/// updates: `local` is this rank's slice of a global minibatch of `global_len` samples.
/// Returns this rank's share of the global mean loss (the group's sum of them is the global
/// mean) and its logits, left on the device. On one rank the share is the loss itself, to
/// the bit.
pub fn train_step(
    model: &Model,
    store: &ParamStore,
    opt: &mut dyn Optimizer,
    local: &Batch,
    global_len: usize,
    group: &dyn Collective,
) -> Result<(Tensor, Tensor)> {
    refuse_batch_norm(store, group.size())?;
    let logits = model.head(&model.features(&local.x, true)?)?;
    let share = local.x.dim(0)? as f64 / global_len as f64;
    let loss = (candle_nn::loss::cross_entropy(&logits, &local.y)? * share)?;
    let mut grads = loss.backward()?;
    all_reduce_grads(&mut grads, &store.trainable(), group)?;
    opt.step(&grads)?;
    Ok((loss, logits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FfwConfig, OptimizerConfig, VanillaConfig};
    use crate::optim;
    use crate::probe::Probe;
    use crate::surgery::Surgery;
    use candle_core::Device;
    use ffw_data::dataset::epoch_order;
    use ffw_data::Dataset;
    use ffw_nn::GateMode;
    use ffw_nn::{Arch, MlpSpec, ModelSpec, ParamStore};
    use ffw_placement::collective::InProcess;
    use ffw_placement::Solo;

    #[test]
    fn shards_cover_the_batch_in_rank_order() {
        let global: Vec<usize> = (0..10).collect();
        let parts: Vec<&[usize]> = (0..3).map(|r| shard(&global, r, 3)).collect();
        assert_eq!(parts, [&[0, 1, 2, 3][..], &[4, 5, 6], &[7, 8, 9]]);
        assert_eq!(shard(&global, 0, 1), &global[..]);
        assert!(shard(&global[..1], 1, 2).is_empty());
    }

    fn data(n: usize) -> Dataset {
        Dataset {
            x: (0..n * 12)
                .map(|i| ((i * 7919 % 113) as f32 / 56.0) - 1.0)
                .collect(),
            sample_shape: vec![12],
            y: (0..n).map(|i| (i * 5 % 3) as u32).collect(),
            n_classes: 3,
            biases: vec![(0..n).map(|i| (i % 2) as u32).collect()],
            n_bias_classes: vec![2],
            aligned: vec![vec![0, 1, 0]],
        }
    }

    /// Parameters after `steps` global minibatches of 16 trained by `group`.
    fn train(group: &dyn Collective, steps: usize) -> Vec<Vec<f32>> {
        let arch = Arch::Mlp(MlpSpec {
            input: 12,
            hidden: vec![16, 8],
            n_classes: 3,
        });
        let store = ParamStore::new(7, &Device::Cpu);
        let model = arch.build(store.var_builder()).unwrap();
        let sgd = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-3,
        };
        let mut opt = optim::build(&sgd, store.trainable());
        let d = data(64);
        let order = epoch_order(d.len(), 3, 0);
        for global in order.chunks(16).take(steps) {
            let local = shard(global, group.rank(), group.size());
            let b = d.batch(local, &Device::Cpu).unwrap();
            train_step(&model, &store, opt.as_mut(), &b, global.len(), group).unwrap();
        }
        store
            .trainable()
            .iter()
            .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    /// FFW from the MLP's initial parameters: the gates and the head after `steps` gate
    /// steps on global minibatches of 16, trained by `group`.
    fn ffw(group: &dyn Collective, steps: usize) -> Vec<Vec<f32>> {
        let arch = Arch::Mlp(MlpSpec {
            input: 12,
            hidden: vec![16, 8],
            n_classes: 3,
        });
        let store = ParamStore::new(7, &Device::Cpu);
        arch.build(store.var_builder()).unwrap();
        let base = store.snapshot().unwrap();
        // At the paper's λ the MI's gradient through the gathered batch moves the gates by
        // far more than the tolerance.
        let cfg = FfwConfig::default();
        let probe = Probe::new(8, 2, &cfg.probe, 3, &Device::Cpu).unwrap();
        let mut surgery = Surgery::new(&arch, &base, &cfg, vec![probe], &Device::Cpu).unwrap();
        let mode = GateMode::Soft { temperature: 1.0 };
        let d = data(64);
        for global in epoch_order(d.len(), 4, 0).chunks(16).take(steps) {
            let local = shard(global, group.rank(), group.size());
            let b = d.batch(local, &Device::Cpu).unwrap();
            surgery.gate_step_in(&b, global.len(), mode, group).unwrap();
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
    fn two_ranks_like_one(f: fn(&dyn Collective, usize) -> Vec<Vec<f32>>) {
        let one = f(&Solo, 4);
        let two: Vec<_> = InProcess::group(2)
            .into_iter()
            .map(|g| std::thread::spawn(move || f(&g, 4)))
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
        assert!(one != f(&Solo, 0), "training moved nothing");
    }

    /// Two ranks (threads) sharing each global batch train the model one rank trains on it.
    #[test]
    fn two_ranks_train_like_one() {
        two_ranks_like_one(train);
    }

    /// The same for FFW's gate steps, whose MI needs the whole batch's probabilities.
    #[test]
    fn two_ranks_run_ffw_like_one() {
        two_ranks_like_one(ffw);
    }

    #[test]
    fn batch_norm_models_are_refused_on_several_ranks() {
        let arch = Arch::SimpleConvNet(ffw_nn::SimpleConvNetSpec {
            kernel: 3,
            n_classes: 3,
        });
        let store = ParamStore::new(1, &Device::Cpu);
        let model = arch.build(store.var_builder()).unwrap();
        let mut opt = optim::build(&VanillaConfig::default().optimizer, store.trainable());
        let d = Dataset {
            x: vec![0.5; 2 * 3 * 28 * 28].into(),
            sample_shape: vec![3, 28, 28],
            ..data(2)
        };
        let b = d.batch(&[0, 1], &Device::Cpu).unwrap();
        // The refusal comes before any collective call: one handle of a pair is enough.
        let group = InProcess::group(2).remove(0);
        let err = train_step(&model, &store, opt.as_mut(), &b, 4, &group).unwrap_err();
        assert!(err.to_string().contains("BatchNorm"), "{err}");
        let err = check_trainable(&arch, 2).unwrap_err();
        assert!(err.to_string().contains("BatchNorm"), "{err}");
        check_trainable(&arch, 1).unwrap();
        check_trainable(
            &Arch::Mlp(MlpSpec {
                input: 4,
                hidden: vec![3],
                n_classes: 2,
            }),
            2,
        )
        .unwrap();
    }
}
