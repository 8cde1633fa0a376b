//! The FFW loop (PROTOCOL §3–§4): learn gates on the frozen vanilla parameters against
//! `α·CE + λ·mean(MI)`, refine the privacy heads every epoch, cool the temperature on MI
//! plateaus (re-fitting the heads at each new temperature), and keep the hard mask with the
//! lowest validation bias accuracy.
use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use ffw_data::dataset::epoch_order;
use ffw_data::{Batch, Dataset, DeviceSplit};
use ffw_nn::{GateMode, GateSet, Mode, Model, ModelSpec};
use ffw_placement::{Collective, Solo};
use ffw_results::{FfwEpoch, MaskReport, SplitScores, TemperatureChange};

use crate::config::FfwConfig;
use crate::data_parallel::{agreed, all_reduce_grads, global_batches, local_pass};
use crate::encode::encode;
use crate::error::{Result, SurgeryError};
use crate::evaluate::{evaluate_params, frozen_model, model_from, scores, UnbiasedSets};
use crate::mi::mutual_information;
use crate::optim::{Adam, Optimizer};
use crate::probe::{fit_heads, Probe, ProbeInit};
use crate::progress;
use crate::running::RunningSum;
use crate::seeds::sub_seed;

pub struct FfwOutcome {
    pub gates: GateSet,
    pub history: Vec<FfwEpoch>,
    pub temperature_changes: Vec<TemperatureChange>,
    /// Epoch and gates of the lowest-validation-bias-accuracy intermediate mask.
    pub best: Option<(usize, GateSet)>,
    /// The privacy heads at the end: what the gates were last trained against.
    pub heads: Vec<HashMap<String, Tensor>>,
}

/// What FFW trains on the frozen vanilla parameters: the gates, their optimiser, and the
/// privacy heads (one per bias attribute).
pub struct Surgery<'a> {
    arch: &'a dyn ModelSpec,
    base: &'a HashMap<String, Tensor>,
    cfg: &'a FfwConfig,
    device: &'a Device,
    pub gates: GateSet,
    gate_opt: Adam,
    probes: Vec<Probe>,
}

impl<'a> Surgery<'a> {
    /// Gates at 0 (the vanilla model) and the given heads.
    pub fn new(
        arch: &'a dyn ModelSpec,
        base: &'a HashMap<String, Tensor>,
        cfg: &'a FfwConfig,
        probes: Vec<Probe>,
        device: &'a Device,
    ) -> Result<Self> {
        let gates = GateSet::zeros(arch, base, cfg.variant, cfg.gate_head, device)?;
        let gate_opt = Adam::new(gates.vars(), cfg.lr, cfg.weight_decay);
        Ok(Self {
            arch,
            base,
            cfg,
            device,
            gates,
            gate_opt,
            probes,
        })
    }

    /// One minibatch (PROTOCOL §3): backward `α·CE + λ·mean(MI)` into the gates, one step of
    /// every privacy head on its own loss over the detached features, one gate step.
    /// Returns the batch's (CE, mean MI) as scalar tensors left on the device.
    pub fn gate_step(&mut self, b: &Batch, mode: GateMode) -> Result<(Tensor, Tensor)> {
        self.gate_step_in(b, b.y.dim(0)?, mode, &Solo)
    }

    /// [`Self::gate_step`] on one rank of a data-parallel `group` ([`crate::data_parallel`]):
    /// `b` is this rank's slice of a global minibatch of `global_len` samples. The CE is
    /// weighted by the slice's share; the MI, a per-batch estimate, is computed on the
    /// probabilities and bias labels gathered from the whole group (every rank computes the
    /// same value; gradients reach each rank's own samples); the gradients of the gates and
    /// of the heads are summed over the group before their steps. Returns this rank's share
    /// of the global CE, and the MI.
    pub fn gate_step_in(
        &mut self,
        b: &Batch,
        global_len: usize,
        mode: GateMode,
        group: &dyn Collective,
    ) -> Result<(Tensor, Tensor)> {
        let model = model_from(
            self.arch,
            &self.gates.effective_params(self.base, mode)?,
            self.device,
        )?;
        let features = model.features(&b.x, Mode::Eval)?;
        let share = b.y.dim(0)? as f64 / global_len as f64;
        let ce = (candle_nn::loss::cross_entropy(&model.head(&features)?, &b.y)? * share)?;
        let mut mi_terms = Vec::with_capacity(self.probes.len());
        for (probe, bias) in self.probes.iter().zip(&b.biases) {
            // candle-nn's softmax_last_dim records no backward: the MI would not reach the gates.
            let p = candle_nn::ops::softmax(&probe.logits(&features)?, D::Minus1)?;
            let all_bias = group.all_gather(bias)?.to_dtype(DType::U32)?;
            mi_terms.push(mutual_information(&group.all_gather(&p)?, &all_bias)?);
        }
        let mi = (Tensor::stack(&mi_terms, 0)?.sum_all()? / self.probes.len() as f64)?;
        let objective = ((&ce * self.cfg.alpha)? + (&mi * self.cfg.lambda)?)?;
        // Only the gate gradients of this backward are used; the heads learn from their
        // own loss on detached features.
        let mut grads = objective.backward()?;
        let detached = features.detach();
        for (probe, bias) in self.probes.iter_mut().zip(&b.biases) {
            probe.step_in(&detached, bias, share, group)?;
        }
        all_reduce_grads(&mut grads, &self.gates.vars(), group)?;
        self.gate_opt.step(&grads)?;
        Ok((ce, mi))
    }

    /// The privacy heads' parameters, one map per bias attribute.
    pub fn heads(&self) -> Result<Vec<HashMap<String, Tensor>>> {
        self.probes.iter().map(Probe::params).collect()
    }

    /// One epoch of gate steps over `train` in a seeded order, data-parallel on `group`; the
    /// epoch-mean (CE, MI). Fails on a non-finite objective or gate, naming the gated layer.
    fn gate_epoch(
        &mut self,
        train: &DeviceSplit,
        order_seed: u64,
        epoch: usize,
        mode: GateMode,
        group: &dyn Collective,
    ) -> Result<(f64, f64)> {
        let (mut ce_sum, mut mi_sum, mut batches) =
            (RunningSum::default(), RunningSum::default(), 0usize);
        let order = epoch_order(train.data().len(), order_seed, epoch as u64);
        let (rank, ranks) = (group.rank(), group.size());
        // MI is undefined on a single sample.
        let globals = global_batches(&order, self.cfg.batch_size, ranks.max(2));
        let pass = local_pass(
            train,
            &order,
            &globals,
            self.cfg.batch_size,
            (rank, ranks),
            None,
        );
        for (global, item) in globals.iter().zip(pass) {
            crate::interrupt::check_in(group)?;
            let (_, b) = item?;
            let (ce, mi) = self.gate_step_in(&b, global.len(), mode, group)?;
            ce_sum.add(&ce, 1.0)?;
            mi_sum.add(&mi, 1.0)?;
            batches += 1;
        }
        // Each rank's CE is its share of the global minibatch's; the MI is the group's.
        let ce_sum = if ranks == 1 {
            ce_sum.value()?
        } else {
            f64::from(group.sum_host(&[ce_sum.value()? as f32])?[0])
        };
        let n = batches.max(1) as f64;
        let (ce, mi) = (ce_sum / n, mi_sum.value()? / n);
        let non_finite = |what: String, value: f64| SurgeryError::NonFinite {
            phase: "ffw",
            what,
            epoch: epoch + 1,
            value,
        };
        if !ce.is_finite() || !mi.is_finite() {
            return Err(non_finite("objective".into(), ce + mi));
        }
        for layer in &self.gates.layers {
            let sum = layer.m.as_tensor().sum_all()?.to_scalar::<f32>()? as f64;
            if !sum.is_finite() {
                return Err(non_finite(format!("gates of {}", layer.name), sum));
            }
        }
        Ok((ce, mi))
    }

    /// Trains the heads to plateau on the (fixed) gated model at `mode`; returns the epochs
    /// it took and that model, for scoring.
    fn fit_heads(&mut self, train: &Dataset, mode: GateMode, seed: u64) -> Result<(usize, Model)> {
        let model = frozen_model(
            self.arch,
            &self.gates.effective_params(self.base, mode)?,
            self.device,
        )?;
        let enc = encode(&model, train, self.device)?;
        let epochs = fit_heads(&mut self.probes, &enc.features, &enc.biases, seed)?;
        Ok((epochs, model))
    }

    /// The hard mask at the current gates, scored with heads fitted from the vanilla ones
    /// (PROTOCOL §4: what a temperature change records).
    fn hard_mask_report(
        &self,
        sets: &UnbiasedSets,
        vanilla_probes: &[HashMap<String, Tensor>],
        seed: u64,
    ) -> Result<MaskReport> {
        let mut report = evaluate_params(
            self.arch,
            &self.gates.effective_params(self.base, GateMode::Hard)?,
            sets,
            &self.cfg.probe,
            &ProbeInit::From(vanilla_probes.to_vec()),
            seed,
            self.device,
        )?
        .report;
        report.sparsity = Some(self.gates.sparsity()?);
        Ok(report)
    }

    /// `model` with the current heads on `data` (MI over minibatches of the FFW batch size).
    fn scores(&self, model: &Model, data: &Dataset) -> Result<SplitScores> {
        scores(
            &encode(model, data, self.device)?,
            &self.probes,
            self.cfg.batch_size,
        )
    }
}

/// The heads FFW starts from: copies of those trained on the vanilla model, one per bias
/// attribute of `train`.
fn heads_from(
    vanilla_probes: &[HashMap<String, Tensor>],
    arch: &dyn ModelSpec,
    train: &Dataset,
    cfg: &FfwConfig,
    device: &Device,
) -> Result<Vec<Probe>> {
    vanilla_probes
        .iter()
        .zip(&train.n_bias_classes)
        .map(|(params, &n)| Probe::from_params(params, arch.feature_dim(), n, &cfg.probe, device))
        .collect()
}

/// The hard mask of the lowest validation bias accuracy among the temperature changes: its
/// epoch, gates and score.
#[derive(Default)]
struct BestMask(Option<(usize, GateSet, f64)>);

impl BestMask {
    fn offer(&mut self, epoch: usize, gates: &GateSet, score: f64) -> Result<()> {
        if self.0.as_ref().is_none_or(|(_, _, s)| score < *s) {
            self.0 = Some((epoch, gates.snapshot()?, score));
        }
        Ok(())
    }
}

fn log_temperature_change(change: &TemperatureChange) {
    tracing::info!(
        epoch = change.epoch,
        temperature = change.new_temperature,
        val_bias_acc = change.report.val_bias_acc(),
        collapsed = change.report.collapsed,
        "temperature lowered"
    );
}

/// One line per FFW epoch: a cluster log shows no progress bar.
fn log_epoch(record: &FfwEpoch, eta_max_secs: f64) {
    tracing::info!(
        epoch = record.epoch,
        temperature = record.temperature,
        train_ce = record.train_ce,
        train_mi = record.train_mi,
        val_mi = record.val_mi,
        sparsity = record.sparsity,
        probe_epochs = record.probe_epochs,
        refit_probe_epochs = ?record.refit_probe_epochs,
        eta_max_secs,
        "ffw epoch"
    );
}

/// Runs FFW from `base` (the frozen vanilla parameters). `vanilla_probes` are the privacy
/// heads trained to plateau on the vanilla model, one per bias attribute. On a data-parallel
/// `group` ([`Solo`] for one process) the gate steps share every global minibatch
/// ([`Surgery::gate_step_in`]); fitting the heads and scoring run whole on every rank,
/// replicas that take the same decisions, so every rank returns the same outcome.
#[allow(clippy::too_many_arguments)]
pub fn run_ffw(
    arch: &dyn ModelSpec,
    base: &HashMap<String, Tensor>,
    sets: &UnbiasedSets,
    cfg: &FfwConfig,
    vanilla_probes: &[HashMap<String, Tensor>],
    seed: u64,
    device: &Device,
    group: &dyn Collective,
) -> Result<FfwOutcome> {
    let probes = heads_from(vanilla_probes, arch, sets.train, cfg, device)?;
    let mut surgery = Surgery::new(arch, base, cfg, probes, device)?;
    let mut temperature = crate::schedule::Temperature::new(
        cfg.temperature_factor,
        cfg.temperature_patience,
        cfg.temperature_threshold,
    );
    let order_seed = sub_seed(seed, "ffw-order");
    let train_batches = DeviceSplit::new(sets.train, device)?;
    let mut history = Vec::new();
    let mut temperature_changes = Vec::new();
    let mut best = BestMask::default();
    let pb = progress::bar(cfg.max_epochs as u64, "ffw");

    let run_start = Instant::now();
    for epoch in 0..cfg.max_epochs {
        crate::interrupt::check_in(group)?;
        let start = Instant::now();
        let soft = |t: f64| GateMode::Soft { temperature: t };
        let epoch_temperature = temperature.value;
        let (train_ce, train_mi) = surgery.gate_epoch(
            &train_batches,
            order_seed,
            epoch,
            soft(epoch_temperature),
            group,
        )?;

        // Refine the heads to plateau on the current gated encoder, then watch validation MI.
        let (probe_epochs, model) = surgery.fit_heads(
            sets.train,
            soft(epoch_temperature),
            sub_seed(seed, &format!("refine-{epoch}")),
        )?;
        let soft_val = surgery.scores(&model, sets.val)?;
        let soft_test = surgery.scores(&model, sets.test)?;
        let val_mi = soft_val.mi.iter().sum::<f64>() / soft_val.mi.len().max(1) as f64;
        let sparsity = surgery.gates.sparsity()?.global;
        let mut refit_probe_epochs = None;
        let mut stop = false;

        if agreed(temperature.step(val_mi), group)? {
            // The seed's label is older than the name "temperature change": renaming it
            // would change every FFW result.
            let report = surgery.hard_mask_report(
                sets,
                vanilla_probes,
                sub_seed(seed, &format!("checkpoint-{epoch}")),
            )?;
            best.offer(epoch + 1, &surgery.gates, report.val_bias_acc())?;
            let change = TemperatureChange {
                epoch: epoch + 1,
                new_temperature: temperature.value,
                report,
            };
            log_temperature_change(&change);
            temperature_changes.push(change);
            stop = temperature.value < cfg.min_temperature;
            if !stop {
                // The heads were fitted to the features at the old temperature: fit them
                // again at the new one before the next gate epoch (PROTOCOL §4).
                refit_probe_epochs = Some(
                    surgery
                        .fit_heads(
                            sets.train,
                            soft(temperature.value),
                            sub_seed(seed, &format!("refit-{epoch}")),
                        )?
                        .0,
                );
            }
        }

        let record = FfwEpoch {
            epoch: epoch + 1,
            temperature: epoch_temperature,
            train_ce,
            train_mi,
            val_mi,
            sparsity,
            secs: start.elapsed().as_secs_f64(),
            probe_epochs,
            refit_probe_epochs,
            soft_val: Some(soft_val),
            soft_test: Some(soft_test),
        };
        // The schedule decides the length; the epoch cap bounds it.
        log_epoch(
            &record,
            run_start.elapsed().as_secs_f64() / (epoch + 1) as f64
                * (cfg.max_epochs - epoch - 1) as f64,
        );
        history.push(record);
        pb.set_message(format!(
            "T {:.0e} MI(val) {:.4} sparsity {:.3}",
            temperature.value, val_mi, sparsity
        ));
        pb.inc(1);
        if stop {
            break;
        }
    }
    pb.finish_and_clear();
    Ok(FfwOutcome {
        heads: surgery.heads()?,
        gates: surgery.gates,
        history,
        temperature_changes,
        best: best.0.map(|(e, g, _)| (e, g)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProbeConfig;
    use ffw_nn::{Arch, MlpSpec, ParamStore};
    use ffw_placement::collective::InProcess;

    fn data(n: usize, salt: usize) -> Dataset {
        Dataset {
            x: (0..n * 6)
                .map(|i| (((i + salt) * 7919 % 113) as f32 / 56.0) - 1.0)
                .collect(),
            sample_shape: vec![6],
            y: (0..n).map(|i| ((i + salt) * 5 % 3 % 2) as u32).collect(),
            n_classes: 2,
            biases: vec![(0..n).map(|i| ((i + salt) / 3 % 2) as u32).collect()],
            n_bias_classes: vec![2],
            aligned: vec![vec![0, 1]],
        }
    }

    /// A 6 → 8 → 2 MLP and its initial parameters.
    fn tiny_mlp(seed: u64) -> (Arch, HashMap<String, Tensor>) {
        let arch = Arch::Mlp(MlpSpec {
            input: 6,
            hidden: vec![8],
            n_classes: 2,
        });
        let store = ParamStore::new(seed, &Device::Cpu);
        arch.build(store.var_builder()).unwrap();
        (arch, store.snapshot().unwrap())
    }

    /// A whole FFW run, data-parallel on `group`: the per-epoch (CE, MI(val)), the epochs of
    /// the temperature changes, and the final gates.
    fn ffw_run(group: &dyn Collective) -> (Vec<[f64; 2]>, Vec<usize>, Vec<f32>) {
        let device = Device::Cpu;
        let (arch, base) = tiny_mlp(5);
        let cfg = FfwConfig {
            batch_size: 16,
            max_epochs: 4,
            temperature_patience: 1,
            probe: ProbeConfig {
                batch_size: 16,
                max_epochs: 3,
                ..ProbeConfig::default()
            },
            ..FfwConfig::default()
        };
        let probe = Probe::new(8, 2, &cfg.probe, 4, &device).unwrap();
        let heads = vec![probe.params().unwrap()];
        // 58 samples: the last global minibatch (10) splits 5 / 5, the others 8 / 8.
        let (train, val, test) = (data(58, 0), data(24, 1), data(24, 2));
        let sets = UnbiasedSets {
            train: &train,
            val: &val,
            test: &test,
        };
        let out = run_ffw(&arch, &base, &sets, &cfg, &heads, 9, &device, group).unwrap();
        let history = out.history.iter().map(|e| [e.train_ce, e.val_mi]).collect();
        let changes = out.temperature_changes.iter().map(|c| c.epoch).collect();
        let gates = out
            .gates
            .vars()
            .iter()
            .flat_map(|v| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect();
        (history, changes, gates)
    }

    /// Two ranks (threads) run FFW, head fits and temperature schedule included, as one does.
    #[test]
    fn two_ranks_run_whole_ffw_like_one() {
        let one = ffw_run(&Solo);
        let two: Vec<_> = InProcess::group(2)
            .into_iter()
            .map(|g| std::thread::spawn(move || ffw_run(&g)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(two[0], two[1], "replicas stay identical");
        let (history, changes, gates) = &two[0];
        assert_eq!(history.len(), one.0.len());
        assert_eq!(changes, &one.1);
        assert!(!changes.is_empty(), "no temperature change exercised");
        let diff = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f64, f64::max)
        };
        let h = |v: &[[f64; 2]]| v.iter().flatten().copied().collect::<Vec<f64>>();
        assert!(
            diff(&h(history), &h(&one.0)) < 1e-5,
            "{history:?} vs {:?}",
            one.0
        );
        let g = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        assert!(diff(&g(gates), &g(&one.2)) < 1e-5);
        assert!(one.2.iter().any(|&x| x != 0.0), "the gates never moved");
    }

    /// With the CE switched off, the MI alone must still move the gates of the layers before
    /// the bottleneck: its gradient has to pass the probe's softmax.
    #[test]
    fn the_mi_term_alone_moves_the_gates() {
        let device = Device::Cpu;
        let (arch, base) = tiny_mlp(3);
        let cfg = FfwConfig {
            alpha: 0.0,
            ..FfwConfig::default()
        };
        let probe = Probe::new(8, 2, &cfg.probe, 4, &device).unwrap();
        let mut surgery = Surgery::new(&arch, &base, &cfg, vec![probe], &device).unwrap();
        let n = 16;
        let data = Dataset {
            x: (0..n * 6)
                .map(|i| ((i * 37 % 17) as f32 / 8.0) - 1.0)
                .collect(),
            sample_shape: vec![6],
            y: (0..n).map(|i| (i % 2) as u32).collect(),
            n_classes: 2,
            biases: vec![(0..n).map(|i| (i / 2 % 2) as u32).collect()],
            n_bias_classes: vec![2],
            aligned: vec![vec![0, 1]],
        };
        let all: Vec<usize> = (0..n).collect();
        let b = data.batch(&all, &device).unwrap();
        surgery
            .gate_step(&b, GateMode::Soft { temperature: 1.0 })
            .unwrap();
        let fc1 = surgery.gates.layers[0].m.as_tensor();
        let moved = fc1.abs().unwrap().max_all().unwrap();
        assert!(moved.to_scalar::<f32>().unwrap() > 0.0, "no MI gradient");
    }
}
