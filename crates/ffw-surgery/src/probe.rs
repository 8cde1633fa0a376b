//! Training and scoring the privacy head on fixed (detached) bottleneck features.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use ffw_data::dataset::epoch_order;
use ffw_nn::{ParamStore, PrivacyHead};
use ffw_placement::{Collective, Solo};

use crate::config::ProbeConfig;
use crate::data_parallel::all_reduce_grads;
use crate::encode::accuracy;
use crate::error::{Result, SurgeryError};
use crate::mi::mutual_information;
use crate::optim::{Optimizer, Sgd};
use crate::progress::Heartbeat;
use crate::running::RunningSum;
use crate::schedule::Plateau;

/// Probe epochs are short and a fit runs every FFW epoch: one line per epoch would flood a
/// cluster log, none would leave a long fit (a paper-scale training split) silent there.
const PROBE_LINE_EVERY: Duration = Duration::from_secs(30);

pub struct Probe {
    store: ParamStore,
    head: PrivacyHead,
    opt: Sgd,
    cfg: ProbeConfig,
}

/// How an evaluation's probe starts.
#[derive(Clone)]
pub enum ProbeInit {
    /// Freshly initialised from this seed.
    Fresh { seed: u64 },
    /// A copy of trained parameters (one map per bias attribute).
    From(Vec<HashMap<String, Tensor>>),
}

impl Probe {
    fn with_store(
        store: ParamStore,
        feature_dim: usize,
        n_classes: usize,
        cfg: &ProbeConfig,
    ) -> Result<Self> {
        let head = PrivacyHead::new(feature_dim, n_classes, store.var_builder())?;
        let opt = Sgd::new(store.trainable(), cfg.lr, cfg.momentum, cfg.weight_decay);
        Ok(Self {
            store,
            head,
            opt,
            cfg: cfg.clone(),
        })
    }

    pub fn new(
        feature_dim: usize,
        n_classes: usize,
        cfg: &ProbeConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::with_store(ParamStore::new(seed, device), feature_dim, n_classes, cfg)
    }

    /// A probe starting from `params`, with a fresh optimiser state.
    pub fn from_params(
        params: &HashMap<String, Tensor>,
        feature_dim: usize,
        n_classes: usize,
        cfg: &ProbeConfig,
        device: &Device,
    ) -> Result<Self> {
        Self::with_store(
            ParamStore::from_tensors(params, 0, device)?,
            feature_dim,
            n_classes,
            cfg,
        )
    }

    pub fn params(&self) -> Result<HashMap<String, Tensor>> {
        Ok(self.store.snapshot()?)
    }

    pub fn logits(&self, features: &Tensor) -> Result<Tensor> {
        Ok(self.head.forward(features)?)
    }

    /// One SGD step on the probe's own cross-entropy; `features` must already be detached.
    /// Returns the loss as a scalar tensor left on the device.
    pub fn step(&mut self, features: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.step_in(features, labels, 1.0, &Solo)
    }

    /// [`Self::step`] on one rank of a data-parallel `group`: the loss weighted by this
    /// rank's `share` of the global minibatch, the gradients summed over the group.
    pub fn step_in(
        &mut self,
        features: &Tensor,
        labels: &Tensor,
        share: f64,
        group: &dyn Collective,
    ) -> Result<Tensor> {
        let loss =
            (candle_nn::loss::cross_entropy(&self.head.forward(features)?, labels)? * share)?;
        let mut grads = loss.backward()?;
        all_reduce_grads(&mut grads, &self.store.trainable(), group)?;
        self.opt.step(&grads)?;
        Ok(loss)
    }

    pub fn accuracy(&self, features: &Tensor, labels: &Tensor) -> Result<f64> {
        accuracy(&self.logits(features)?, labels)
    }

    /// Mean over minibatches of `batch` of the normalised MI between labels and the probe's
    /// softmax output (the quantity the temperature schedule watches).
    pub fn mean_mi(&self, features: &Tensor, labels: &Tensor, batch: usize) -> Result<f64> {
        let n = labels.dim(0)?;
        let mut total = RunningSum::default();
        let mut count = 0usize;
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let p =
                candle_nn::ops::softmax_last_dim(&self.logits(&features.narrow(0, start, len)?)?)?;
            total.add(
                &mutual_information(&p, &labels.narrow(0, start, len)?)?,
                1.0,
            )?;
            count += 1;
            start += len;
        }
        Ok(if count == 0 {
            f64::NAN
        } else {
            total.value()? / count as f64
        })
    }
}

/// Trains every head on fixed features to plateau, together (PROTOCOL §3): each epoch visits
/// the samples in one seeded order, every head stepping on every minibatch, and all stop on
/// the plateau of the mean of their epoch losses. `labels[a]` are head `a`'s targets. Returns
/// the number of epochs run.
pub fn fit_heads(
    probes: &mut [Probe],
    features: &Tensor,
    labels: &[Tensor],
    seed: u64,
) -> Result<usize> {
    let Some(cfg) = probes.first().map(|p| p.cfg.clone()) else {
        return Ok(0);
    };
    let n = features.dim(0)?;
    train_to_plateau(&cfg, |epoch| {
        let mut totals: Vec<RunningSum> = probes.iter().map(|_| RunningSum::default()).collect();
        let mut batches = 0usize;
        for chunk in epoch_order(n, seed, epoch as u64).chunks(cfg.batch_size) {
            crate::interrupt::check()?;
            let idx = Tensor::from_iter(chunk.iter().map(|&i| i as u32), features.device())?;
            let x = features.index_select(&idx, 0)?;
            for ((probe, y), total) in probes.iter_mut().zip(labels).zip(&mut totals) {
                total.add(&probe.step(&x, &y.index_select(&idx, 0)?)?, 1.0)?;
            }
            batches += 1;
        }
        totals
            .iter()
            .map(|t| Ok(t.value()? / batches.max(1) as f64))
            .collect()
    })
}

/// Runs `epoch` (which returns each head's epoch-mean loss) until the mean over heads has not
/// improved by the relative `cfg.threshold` for more than `cfg.patience` epochs, or for
/// `cfg.max_epochs`; returns the number of epochs run.
pub fn train_to_plateau(
    cfg: &ProbeConfig,
    mut epoch: impl FnMut(usize) -> Result<Vec<f64>>,
) -> Result<usize> {
    let mut plateau = Plateau::new(cfg.threshold, cfg.patience);
    let mut heartbeat = Heartbeat::new(PROBE_LINE_EVERY);
    let start = Instant::now();
    for e in 0..cfg.max_epochs {
        let losses = epoch(e)?;
        let mean = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        if heartbeat.due() {
            // The plateau decides the length; the epoch cap bounds it.
            tracing::info!(
                epoch = e + 1,
                max_epochs = cfg.max_epochs,
                loss = mean,
                eta_max_secs = start.elapsed().as_secs_f64() / (e + 1) as f64
                    * (cfg.max_epochs - e - 1) as f64,
                "probe epoch"
            );
        }
        if !mean.is_finite() {
            return Err(SurgeryError::NonFinite {
                phase: "probe",
                what: "loss".into(),
                epoch: e,
                value: mean,
            });
        }
        if plateau.observe(mean) {
            return Ok(e + 1);
        }
    }
    Ok(cfg.max_epochs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::encode;
    use ffw_data::Dataset;
    use ffw_nn::{Arch, ModelSpec, ParamStore};

    /// Training the probe on features computed once equals training it on features recomputed
    /// by a forward pass per batch (what a naive implementation does every probe epoch).
    #[test]
    fn cached_features_train_the_same_probe_as_per_batch_forward_passes() {
        let device = Device::Cpu;
        let n = 120;
        let data = Dataset {
            x: (0..n * 3 * 28 * 28)
                .map(|i| ((i * 7919 % 997) as f32 / 498.0) - 1.0)
                .collect::<Vec<_>>()
                .into(),
            sample_shape: vec![3, 28, 28],
            y: (0..n).map(|i| (i % 10) as u32).collect(),
            n_classes: 10,
            biases: vec![(0..n).map(|i| ((i / 3) % 10) as u32).collect()],
            n_bias_classes: vec![10],
            aligned: vec![(0..10).collect()],
        };
        let arch = Arch::SimpleConvNet(ffw_nn::SimpleConvNetSpec {
            kernel: 3,
            n_classes: 10,
        });
        let store = ParamStore::new(1, &device);
        let model = arch.build(store.var_builder()).unwrap();
        // Enough patience that both run exactly `max_epochs` epochs.
        let cfg = ProbeConfig {
            max_epochs: 3,
            patience: 100,
            batch_size: 32,
            ..Default::default()
        };

        let mut cached = Probe::new(128, 10, &cfg, 5, &device).unwrap();
        let enc = encode(&model, &data, &device).unwrap();
        fit_heads(
            std::slice::from_mut(&mut cached),
            &enc.features,
            &enc.biases,
            9,
        )
        .unwrap();

        let mut naive = Probe::new(128, 10, &cfg, 5, &device).unwrap();
        for epoch in 0..cfg.max_epochs {
            for chunk in epoch_order(n, 9, epoch as u64).chunks(cfg.batch_size) {
                let b = data.batch(chunk, &device).unwrap();
                let f = model.features(&b.x, ffw_nn::Mode::Eval).unwrap().detach();
                naive.step(&f, &b.biases[0]).unwrap();
            }
        }
        for ((name, a), (_, b)) in cached.store.vars().iter().zip(naive.store.vars().iter()) {
            let d = (a.as_tensor() - b.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-6, "{name} differs by {d}");
        }
    }

    /// Two heads stop together when the *mean* of their losses plateaus: not when the first
    /// of them would (a, b) nor when the last would (x, y).
    #[test]
    fn several_heads_stop_on_the_plateau_of_their_mean_loss() {
        let cfg = ProbeConfig {
            threshold: 0.1,
            patience: 1,
            max_epochs: 50,
            ..Default::default()
        };
        let run = |heads: &[&dyn Fn(usize) -> f64]| {
            train_to_plateau(&cfg, |e| Ok(heads.iter().map(|h| h(e)).collect())).unwrap()
        };
        // a: best 0.5 at epoch 1, bad epochs 2 and 3 (> patience 1): stops after 4.
        let a = |e: usize| if e == 0 { 1.0 } else { 0.5 };
        // b: 30% better each epoch until 0.24 at epoch 4, bad 5 and 6: stops after 7.
        let b = |e: usize| [1.0, 0.7, 0.49, 0.343, 0.24][e.min(4)];
        assert_eq!(run(&[&a]), 4);
        assert_eq!(run(&[&b]), 7);
        // Mean 1.0, 0.6, 0.495, 0.4215, 0.37, 0.37, ...: > 10% better until epoch 4.
        assert_eq!(run(&[&a, &b]), 7);
        // x halves forever (alone it runs every epoch); y is a, ten times larger: the mean
        // follows y and stops after 4.
        let x = |e: usize| 0.01 * 0.5f64.powi(e as i32);
        let y = |e: usize| 10.0 * a(e);
        assert_eq!(run(&[&x]), 50);
        assert_eq!(run(&[&x, &y]), 4);
    }

    #[test]
    fn a_non_finite_mean_loss_is_an_error() {
        let cfg = ProbeConfig::default();
        let err = train_to_plateau(&cfg, |_| Ok(vec![0.5, f64::NAN])).unwrap_err();
        assert!(err.to_string().contains("non-finite loss"), "{err}");
    }
}
