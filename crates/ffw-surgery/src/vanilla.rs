//! Vanilla training on the biased train set (PROTOCOL §5): the model FFW later operates on.
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use ffw_data::dataset::epoch_order;
use ffw_data::seeds::epoch_seed;
use ffw_data::{Batch, Dataset, DeviceSplit};
use ffw_nn::{Model, ModelSpec, ParamStore};
use ffw_placement::{Group, Solo};
use ffw_results::VanillaEpoch;

use crate::config::{OptimizerConfig, VanillaConfig};
use crate::data_parallel::{agreed, global_batches, local_pass};
use crate::error::{Result, SurgeryError};
use crate::optim::{self, Optimizer};
use crate::progress;
use crate::running::RunningSum;
use crate::schedule::PlateauLr;
use crate::seeds::sub_seed;

pub struct VanillaOutcome {
    pub params: HashMap<String, Tensor>,
    pub history: Vec<VanillaEpoch>,
    /// (epochs, parameters) at each of `cfg.checkpoints`, in the order training reached them.
    pub checkpoints: Vec<(f64, HashMap<String, Tensor>)>,
}

/// The optimiser step after which a checkpoint at `epochs` is taken: at least the first, so
/// "1/60 of an epoch" on a small set still means some training.
pub fn checkpoint_step(epochs: f64, steps_per_epoch: usize) -> usize {
    ((epochs * steps_per_epoch as f64).round() as usize).max(1)
}

fn base_lr(cfg: &OptimizerConfig) -> f64 {
    match *cfg {
        OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr,
    }
}

/// One SGD/Adam step on a minibatch, BatchNorm in training mode; returns (loss, logits), the
/// loss as a scalar tensor left on the device.
pub fn train_step(model: &Model, opt: &mut dyn Optimizer, b: &Batch) -> Result<(Tensor, Tensor)> {
    let logits = model.head(&model.features(&b.x, ffw_nn::Mode::Train)?)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &b.y)?;
    opt.step(&loss.backward()?)?;
    Ok((loss, logits))
}

/// Trains from a seeded initialisation, overwritten by the parameters of `init` where that
/// file has them (a pretrained start); `monitor`, if given, is scored after every epoch so
/// the history shows when the model starts to learn more than the shortcut. With
/// `schedule = "plateau"` its loss drives the learning rate and the early stop: the sweep
/// passes the unbiased validation split (for CelebA the 40% of the group-balanced valid
/// partition, PROTOCOL §5's "val"), which keeps the unbiased-train part FFW learns its mask
/// on unseen by vanilla training, as the test set is.
pub fn train_vanilla(
    arch: &dyn ModelSpec,
    init: Option<&Path>,
    train: &Dataset,
    monitor: Option<&Dataset>,
    cfg: &VanillaConfig,
    seed: u64,
    device: &Device,
) -> Result<VanillaOutcome> {
    let solo: Group = std::sync::Arc::new(Solo);
    train_vanilla_in(arch, init, train, monitor, cfg, seed, device, &solo)
}

/// [`train_vanilla`] on one rank of a data-parallel `group` ([`crate::data_parallel`]):
/// every global minibatch is shared by the group, the replicas stay identical, and every
/// rank returns the same outcome (the history's loss and accuracy are the group's). On one
/// rank ([`Solo`]) the numbers are [`train_vanilla`]'s. Every rank scores `monitor` itself,
/// so the replicas take the same plateau decisions.
#[allow(clippy::too_many_arguments)]
pub fn train_vanilla_in(
    arch: &dyn ModelSpec,
    init: Option<&Path>,
    train: &Dataset,
    monitor: Option<&Dataset>,
    cfg: &VanillaConfig,
    seed: u64,
    device: &Device,
    group: &Group,
) -> Result<VanillaOutcome> {
    let store = ParamStore::new(sub_seed(seed, "vanilla-init"), device);
    let model = arch.build(store.var_builder())?;
    if let Some(path) = init {
        let skipped = ffw_nn::init_file::load_into(&store, path, device)?;
        tracing::info!(file = %path.display(), ?skipped, "vanilla starts from pretrained parameters");
    }
    let mut opt = optim::build(&cfg.optimizer, store.trainable());
    let order_seed = sub_seed(seed, "vanilla-order");
    // Random flips of the image files that allow them (in-memory benchmarks have none); the
    // tensor augmentation of `cfg.augment` draws from its own stream.
    let flip_seed = sub_seed(seed, "vanilla-file-flip");
    let augment_seed = sub_seed(seed, "vanilla-augment");
    let (rank, ranks) = (group.rank(), group.size());
    let steps_per_epoch = global_batches(
        &epoch_order(train.len(), order_seed, 0),
        cfg.batch_size,
        ranks,
    )
    .len();
    let pb = progress::bar((cfg.epochs * steps_per_epoch) as u64, "vanilla");
    let mut history = Vec::with_capacity(cfg.epochs);
    let mut checkpoints = Vec::with_capacity(cfg.checkpoints.len());
    let mut step = 0usize;
    let batches = DeviceSplit::new(train, device)?;
    let mut plateau = match (&cfg.plateau, monitor) {
        (Some(p), Some(_)) => Some((
            PlateauLr::new(
                base_lr(&cfg.optimizer),
                p.factor,
                p.threshold,
                p.patience,
                p.cooldown,
            ),
            p.min_lr,
        )),
        (Some(_), None) => {
            return Err(SurgeryError::Config(
                "vanilla.schedule: \"plateau\" needs a monitoring split".into(),
            ))
        }
        (None, _) => None,
    };
    for epoch in 0..cfg.epochs {
        let start = Instant::now();
        let lr = match &plateau {
            Some((p, _)) => p.lr,
            None => cfg.lr(base_lr(&cfg.optimizer), epoch).ok_or_else(|| {
                SurgeryError::Config(
                    "vanilla.plateau: schedule = \"plateau\" needs this table".into(),
                )
            })?,
        };
        opt.set_lr(lr);
        let (mut loss_sum, mut hits, mut seen) = (RunningSum::default(), RunningSum::default(), 0);
        let order = epoch_order(train.len(), order_seed, epoch as u64);
        let flips = Some(epoch_seed(flip_seed, epoch as u64));
        let globals = global_batches(&order, cfg.batch_size, ranks);
        let pass = local_pass(
            &batches,
            &order,
            &globals,
            cfg.batch_size,
            (rank, ranks),
            flips,
        );
        for (i, (global, item)) in globals.iter().zip(pass).enumerate() {
            crate::interrupt::check_in(group.as_ref())?;
            let (chunk, mut b) = item?;
            b.x = cfg.augment.apply(&b.x, augment_seed, epoch, i)?;
            let (loss, logits) = crate::data_parallel::train_step(
                &model,
                &store,
                opt.as_mut(),
                &b,
                global.len(),
                group,
            )?;
            // Summed over the group at the epoch's end: each rank's share of the global mean
            // loss, and its own hits.
            loss_sum.add(&loss, global.len() as f64)?;
            hits.add(
                &crate::encode::accuracy_on_device(&logits, &b.y)?,
                chunk.len() as f64,
            )?;
            seen += global.len();
            step += 1;
            for &at in &cfg.checkpoints {
                if checkpoint_step(at, steps_per_epoch) == step {
                    checkpoints.push((at, store.snapshot()?));
                }
            }
            pb.inc(1);
        }
        // Summed in f32 on several ranks; on one, the f64 sums untouched.
        let (loss, hits) = if ranks == 1 {
            (loss_sum.value()?, hits.value()?)
        } else {
            let s = group.sum_host(&[loss_sum.value()? as f32, hits.value()? as f32])?;
            (f64::from(s[0]), f64::from(s[1]))
        };
        let loss = loss / seen as f64;
        if !loss.is_finite() {
            pb.abandon();
            return Err(SurgeryError::NonFinite {
                phase: "vanilla",
                what: "loss".into(),
                epoch,
                value: loss,
            });
        }
        let (monitor_acc, monitor_loss) = match monitor {
            Some(m) => {
                let frozen = crate::evaluate::frozen_model(arch, &store.snapshot()?, device)?;
                let enc = crate::encode::encode(&frozen, m, device)?;
                let acc = crate::encode::accuracy(&enc.logits, &enc.labels)?;
                let loss = match plateau {
                    Some(_) => Some(
                        candle_nn::loss::cross_entropy(&enc.logits, &enc.labels)?
                            .to_dtype(candle_core::DType::F64)?
                            .to_scalar::<f64>()?,
                    ),
                    None => None,
                };
                (Some(acc), loss)
            }
            None => (None, None),
        };
        let e = VanillaEpoch {
            epoch: epoch + 1,
            lr,
            loss,
            train_acc: hits / seen as f64,
            monitor_acc,
            monitor_loss,
            secs: start.elapsed().as_secs_f64(),
        };
        pb.set_message(format!("loss {:.4} acc {:.3}", e.loss, e.train_acc));
        tracing::info!(
            epoch = e.epoch,
            loss = e.loss,
            train_acc = e.train_acc,
            monitor_acc = e.monitor_acc,
            secs = e.secs,
            // At this epoch's pace: a cluster log shows no progress bar.
            eta_secs = e.secs * (cfg.epochs - e.epoch) as f64,
            "vanilla epoch"
        );
        history.push(e);
        if let (Some((p, min_lr)), Some(val_loss)) = (plateau.as_mut(), monitor_loss) {
            if !val_loss.is_finite() {
                pb.abandon();
                return Err(SurgeryError::NonFinite {
                    phase: "vanilla",
                    what: "monitor loss".into(),
                    epoch,
                    value: val_loss,
                });
            }
            let next = p.step(val_loss);
            if agreed(next < *min_lr, group.as_ref())? {
                // The history ends here: its last epoch is the one training stopped at.
                tracing::info!(
                    epoch = epoch + 1,
                    lr = next,
                    "vanilla stops: lr below min_lr"
                );
                break;
            }
        }
    }
    pb.finish_and_clear();
    Ok(VanillaOutcome {
        params: store.snapshot()?,
        history,
        checkpoints,
    })
}
