//! Training and scoring the privacy head on fixed (detached) bottleneck features.
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use ffw_data::dataset::epoch_order;
use ffw_nn::{ParamStore, PrivacyHead};

use crate::config::ProbeConfig;
use crate::encode::accuracy;
use crate::error::{Result, SurgeryError};
use crate::mi::mutual_information;
use crate::optim::{Optimizer, Sgd};
use crate::schedule::Plateau;

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
    pub fn step(&mut self, features: &Tensor, labels: &Tensor) -> Result<f32> {
        let loss = candle_nn::loss::cross_entropy(&self.head.forward(features)?, labels)?;
        self.opt.step(&loss.backward()?)?;
        Ok(loss.to_scalar::<f32>()?)
    }

    /// Trains to plateau on fixed features; returns the number of epochs run.
    pub fn fit(&mut self, features: &Tensor, labels: &Tensor, seed: u64) -> Result<usize> {
        let n = labels.dim(0)?;
        let mut plateau = Plateau::new(self.cfg.threshold, self.cfg.patience);
        for epoch in 0..self.cfg.max_epochs {
            let order = epoch_order(n, seed, epoch as u64);
            let mut total = 0.0f64;
            let mut batches = 0usize;
            for chunk in order.chunks(self.cfg.batch_size) {
                let idx = Tensor::from_iter(chunk.iter().map(|&i| i as u32), features.device())?;
                total += self.step(
                    &features.index_select(&idx, 0)?,
                    &labels.index_select(&idx, 0)?,
                )? as f64;
                batches += 1;
            }
            let mean = total / batches.max(1) as f64;
            if !mean.is_finite() {
                return Err(SurgeryError::NonFinite {
                    phase: "probe",
                    what: "loss",
                    epoch,
                    value: mean,
                });
            }
            if plateau.observe(mean) {
                return Ok(epoch + 1);
            }
        }
        Ok(self.cfg.max_epochs)
    }

    pub fn accuracy(&self, features: &Tensor, labels: &Tensor) -> Result<f64> {
        accuracy(&self.logits(features)?, labels)
    }

    /// Mean over minibatches of `batch` of the normalised MI between labels and the probe's
    /// softmax output (the quantity the temperature schedule watches).
    pub fn mean_mi(&self, features: &Tensor, labels: &Tensor, batch: usize) -> Result<f64> {
        let n = labels.dim(0)?;
        let mut total = 0.0;
        let mut count = 0usize;
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let p =
                candle_nn::ops::softmax_last_dim(&self.logits(&features.narrow(0, start, len)?)?)?;
            total +=
                mutual_information(&p, &labels.narrow(0, start, len)?)?.to_scalar::<f32>()? as f64;
            count += 1;
            start += len;
        }
        Ok(if count == 0 {
            f64::NAN
        } else {
            total / count as f64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::encode;
    use ffw_data::Dataset;
    use ffw_nn::{Arch, ParamStore};

    /// Training the probe on features computed once equals training it on features recomputed
    /// by a forward pass per batch (what a naive implementation does every probe epoch).
    #[test]
    fn cached_features_train_the_same_probe_as_per_batch_forward_passes() {
        let device = Device::Cpu;
        let n = 120;
        let data = Dataset {
            x: (0..n * 3 * 28 * 28)
                .map(|i| ((i * 7919 % 997) as f32 / 498.0) - 1.0)
                .collect(),
            sample_shape: vec![3, 28, 28],
            y: (0..n).map(|i| (i % 10) as u32).collect(),
            n_classes: 10,
            biases: vec![(0..n).map(|i| ((i / 3) % 10) as u32).collect()],
            n_bias_classes: vec![10],
        };
        let arch = Arch::SimpleConvNet {
            kernel: 3,
            n_classes: 10,
        };
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
        cached.fit(&enc.features, &enc.biases[0], 9).unwrap();

        let mut naive = Probe::new(128, 10, &cfg, 5, &device).unwrap();
        for epoch in 0..cfg.max_epochs {
            for chunk in epoch_order(n, 9, epoch as u64).chunks(cfg.batch_size) {
                let b = data.batch(chunk, &device).unwrap();
                let f = model.features(&b.x, false).unwrap().detach();
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
}
