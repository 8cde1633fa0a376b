//! Scoring a parameter map (vanilla, hard-pruned) the way the paper reports it: task accuracy
//! of the model and bias accuracy of a privacy head trained to plateau on its bottleneck.
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ffw_data::Dataset;
use ffw_nn::ModelSpec;
use ffw_results::{MaskReport, SplitScores, COLLAPSE_MARGIN};

use crate::config::ProbeConfig;
use crate::encode::{accuracy, aligned_conflicting, encode, group_accuracies, Encoded};
use crate::error::Result;
use crate::probe::{fit_heads, Probe, ProbeInit};
use crate::seeds::sub_seed;

/// The unbiased splits FFW and every evaluation use.
pub struct UnbiasedSets<'a> {
    pub train: &'a Dataset,
    pub val: &'a Dataset,
    pub test: &'a Dataset,
}

pub struct Evaluation {
    pub report: MaskReport,
    /// The fitted privacy heads, one per bias attribute.
    pub probes: Vec<Probe>,
}

/// The model for forward passes only: parameters detached, so no op records a backward
/// graph (which would keep every activation of a whole-split batch alive: gigabytes).
pub fn frozen_model(
    arch: &dyn ModelSpec,
    params: &HashMap<String, Tensor>,
    device: &Device,
) -> Result<ffw_nn::Model> {
    let detached = params
        .iter()
        .map(|(k, v)| (k.clone(), v.detach()))
        .collect();
    model_from(arch, &detached, device)
}

/// Builds the model from `params` (no gates: pruning is already in the map); gradients flow
/// to whatever the tensors were computed from.
pub fn model_from(
    arch: &dyn ModelSpec,
    params: &HashMap<String, Tensor>,
    device: &Device,
) -> Result<ffw_nn::Model> {
    Ok(arch.build(VarBuilder::from_tensors(params.clone(), DType::F32, device))?)
}

/// Task accuracy, and per head bias accuracy, MI (over minibatches of `batch`) and task
/// accuracy on the aligned and conflicting samples.
pub(crate) fn scores(enc: &Encoded, probes: &[Probe], batch: usize) -> Result<SplitScores> {
    let pred = enc.logits.argmax(1)?.to_vec1::<u32>()?;
    let labels = enc.labels.to_vec1::<u32>()?;
    let mut bias_acc = Vec::new();
    let mut mi = Vec::new();
    let (mut aligned_acc, mut conflicting_acc) = (Vec::new(), Vec::new());
    for ((probe, bias), aligned) in probes.iter().zip(&enc.biases).zip(&enc.aligned) {
        bias_acc.push(probe.accuracy(&enc.features, bias)?);
        mi.push(probe.mean_mi(&enc.features, bias, batch)?);
        let (a, c) = aligned_conflicting(&pred, &labels, aligned);
        aligned_acc.push(a);
        conflicting_acc.push(c);
    }
    let groups = group_accuracies(&pred, &labels, &enc.aligned);
    let present: Vec<f64> = groups.iter().flatten().copied().collect();
    Ok(SplitScores {
        task_acc: accuracy(&enc.logits, &enc.labels)?,
        bias_acc,
        mi,
        aligned_acc,
        conflicting_acc,
        groups,
        unbiased_acc: (!present.is_empty())
            .then(|| present.iter().sum::<f64>() / present.len() as f64),
    })
}

/// Trains one probe per bias attribute to plateau on the unbiased-train features of
/// `params`, then scores validation and test.
pub fn evaluate_params(
    arch: &dyn ModelSpec,
    params: &HashMap<String, Tensor>,
    sets: &UnbiasedSets,
    probe_cfg: &ProbeConfig,
    init: &ProbeInit,
    seed: u64,
    device: &Device,
) -> Result<Evaluation> {
    let model = frozen_model(arch, params, device)?;
    let train = encode(&model, sets.train, device)?;
    let mut probes = (0..train.biases.len())
        .map(|a| {
            let n_classes = sets.train.n_bias_classes[a];
            match init {
                ProbeInit::Fresh { seed } => Probe::new(
                    arch.feature_dim(),
                    n_classes,
                    probe_cfg,
                    sub_seed(*seed, &format!("probe-init-{a}")),
                    device,
                ),
                ProbeInit::From(maps) => {
                    Probe::from_params(&maps[a], arch.feature_dim(), n_classes, probe_cfg, device)
                }
            }
        })
        .collect::<Result<Vec<_>>>()?;
    // The first attribute's order stream, so that one-attribute runs keep their numbers.
    let epochs = fit_heads(
        &mut probes,
        &train.features,
        &train.biases,
        sub_seed(seed, "probe-order-0"),
    )?;
    let val = scores(
        &encode(&model, sets.val, device)?,
        &probes,
        probe_cfg.batch_size,
    )?;
    let test = scores(
        &encode(&model, sets.test, device)?,
        &probes,
        probe_cfg.batch_size,
    )?;
    let chance = 1.0 / sets.val.n_classes as f64;
    Ok(Evaluation {
        report: MaskReport {
            collapsed: (val.task_acc - chance).abs() <= COLLAPSE_MARGIN,
            val,
            test,
            sparsity: None,
            probe_epochs: vec![epochs; probes.len()],
        },
        probes,
    })
}
