//! The FFW loop (PROTOCOL §3–§4): learn gates on the frozen vanilla parameters against
//! `α·CE + λ·mean(MI)`, refine the privacy heads every epoch, cool the temperature on MI
//! plateaus, and keep the hard mask with the lowest validation bias accuracy.
use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use ffw_data::dataset::epoch_order;
use ffw_data::Batch;
use ffw_nn::{Arch, GateMode, GateSet};
use serde::{Deserialize, Serialize};

use crate::config::FfwConfig;
use crate::encode::encode;
use crate::error::{Result, SurgeryError};
use crate::evaluate::{evaluate_params, frozen_model, model_from, MaskReport, UnbiasedSets};
use crate::mi::mutual_information;
use crate::optim::{Adam, Optimizer};
use crate::probe::{Probe, ProbeInit};
use crate::progress;
use crate::seeds::sub_seed;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FfwEpoch {
    pub epoch: usize,
    pub temperature: f64,
    pub train_ce: f64,
    pub train_mi: f64,
    pub val_mi: f64,
    pub sparsity: f64,
    pub secs: f64,
}

/// Evaluation of the hard mask taken when the temperature changed.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Checkpoint {
    pub epoch: usize,
    pub new_temperature: f64,
    pub report: MaskReport,
}

pub struct FfwOutcome {
    pub gates: GateSet,
    pub history: Vec<FfwEpoch>,
    pub checkpoints: Vec<Checkpoint>,
    /// Epoch and gates of the lowest-validation-bias-accuracy intermediate mask.
    pub best: Option<(usize, GateSet)>,
}

/// One minibatch of FFW (PROTOCOL §3): backward `α·CE + λ·mean(MI)` into the gates, one
/// step of every privacy head on its own loss over the detached features, one gate step.
/// Returns the batch's (CE, mean MI).
#[allow(clippy::too_many_arguments)]
pub fn gate_step(
    arch: &Arch,
    base: &HashMap<String, Tensor>,
    gates: &GateSet,
    mode: GateMode,
    probes: &mut [Probe],
    gate_opt: &mut Adam,
    b: &Batch,
    cfg: &FfwConfig,
    device: &Device,
) -> Result<(f64, f64)> {
    let model = model_from(arch, &gates.effective_params(base, mode)?, device)?;
    let features = model.features(&b.x, false)?;
    let ce = candle_nn::loss::cross_entropy(&model.head(&features)?, &b.y)?;
    let mut mi_terms = Vec::with_capacity(probes.len());
    for (probe, bias) in probes.iter().zip(&b.biases) {
        let p = candle_nn::ops::softmax_last_dim(&probe.logits(&features)?)?;
        mi_terms.push(mutual_information(&p, bias)?);
    }
    let mi = (Tensor::stack(&mi_terms, 0)?.sum_all()? / probes.len() as f64)?;
    let objective = ((&ce * cfg.alpha)? + (&mi * cfg.lambda)?)?;
    // Only the gate gradients of this backward are used; the heads learn from their own
    // loss on detached features.
    let grads = objective.backward()?;
    let detached = features.detach();
    for (probe, bias) in probes.iter_mut().zip(&b.biases) {
        probe.step(&detached, bias)?;
    }
    gate_opt.step(&grads)?;
    Ok((ce.to_scalar::<f32>()? as f64, mi.to_scalar::<f32>()? as f64))
}

/// Runs FFW from `base` (the frozen vanilla parameters). `vanilla_probes` are the privacy
/// heads trained to plateau on the vanilla model, one per bias attribute.
pub fn run_ffw(
    arch: &Arch,
    base: &HashMap<String, Tensor>,
    sets: &UnbiasedSets,
    cfg: &FfwConfig,
    vanilla_probes: &[HashMap<String, Tensor>],
    seed: u64,
    device: &Device,
) -> Result<FfwOutcome> {
    let gates = GateSet::zeros(arch, base, cfg.variant, cfg.gate_head, device)?;
    let mut gate_opt = Adam::new(gates.vars(), cfg.lr, cfg.weight_decay);
    let n_attrs = sets.train.biases.len();
    let mut probes = (0..n_attrs)
        .map(|a| {
            Probe::from_params(
                &vanilla_probes[a],
                arch.feature_dim(),
                sets.train.n_bias_classes[a],
                &cfg.probe,
                device,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut temperature = crate::schedule::Temperature::new(
        cfg.temperature_factor,
        cfg.temperature_patience,
        cfg.temperature_threshold,
    );
    let order_seed = sub_seed(seed, "ffw-order");
    let mut history = Vec::new();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    let mut best: Option<(usize, GateSet, f64)> = None;
    let pb = progress::bar(cfg.max_epochs as u64, "ffw");

    for epoch in 0..cfg.max_epochs {
        let start = Instant::now();
        let mode = GateMode::Soft {
            temperature: temperature.value,
        };
        let (mut ce_sum, mut mi_sum, mut batches) = (0.0f64, 0.0f64, 0usize);
        for chunk in epoch_order(sets.train.len(), order_seed, epoch as u64).chunks(cfg.batch_size)
        {
            if chunk.len() < 2 {
                continue; // MI is undefined on a single sample.
            }
            let b = sets.train.batch(chunk, device)?;
            let (ce, mi) = gate_step(
                arch,
                base,
                &gates,
                mode,
                &mut probes,
                &mut gate_opt,
                &b,
                cfg,
                device,
            )?;
            ce_sum += ce;
            mi_sum += mi;
            batches += 1;
        }
        let (train_ce, train_mi) = (
            ce_sum / batches.max(1) as f64,
            mi_sum / batches.max(1) as f64,
        );
        if !train_ce.is_finite() || !train_mi.is_finite() {
            pb.abandon();
            return Err(SurgeryError::NonFinite {
                phase: "ffw",
                what: "objective",
                epoch,
                value: train_ce + train_mi,
            });
        }

        // Refine the heads to plateau on the current gated encoder, then watch validation MI.
        let model = frozen_model(arch, &gates.effective_params(base, mode)?, device)?;
        let train_enc = encode(&model, sets.train, device)?;
        let val_enc = encode(&model, sets.val, device)?;
        let mut val_mi = 0.0;
        for (a, probe) in probes.iter_mut().enumerate() {
            probe.fit(
                &train_enc.features,
                &train_enc.biases[a],
                sub_seed(seed, &format!("refine-{epoch}-{a}")),
            )?;
            val_mi += probe.mean_mi(&val_enc.features, &val_enc.biases[a], cfg.batch_size)?;
        }
        val_mi /= n_attrs as f64;
        let sparsity = gates.sparsity()?.global;
        let record = FfwEpoch {
            epoch: epoch + 1,
            temperature: temperature.value,
            train_ce,
            train_mi,
            val_mi,
            sparsity,
            secs: start.elapsed().as_secs_f64(),
        };
        tracing::info!(
            epoch = record.epoch,
            temperature = record.temperature,
            train_ce = record.train_ce,
            train_mi = record.train_mi,
            val_mi = record.val_mi,
            sparsity = record.sparsity,
            "ffw epoch"
        );
        history.push(record);
        pb.set_message(format!(
            "T {:.0e} MI(val) {:.4} sparsity {:.3}",
            temperature.value, val_mi, sparsity
        ));
        pb.inc(1);

        if temperature.step(val_mi) {
            let mut report = evaluate_params(
                arch,
                &gates.effective_params(base, GateMode::Hard)?,
                sets,
                &cfg.probe,
                &ProbeInit::From(vanilla_probes.to_vec()),
                sub_seed(seed, &format!("checkpoint-{epoch}")),
                device,
            )?
            .report;
            report.sparsity = Some(gates.sparsity()?);
            let score = report.val_bias_acc();
            if best.as_ref().is_none_or(|(_, _, s)| score < *s) {
                best = Some((epoch + 1, gates.snapshot()?, score));
            }
            tracing::info!(
                epoch = epoch + 1,
                temperature = temperature.value,
                val_bias_acc = score,
                "temperature lowered"
            );
            checkpoints.push(Checkpoint {
                epoch: epoch + 1,
                new_temperature: temperature.value,
                report,
            });
            if temperature.value < cfg.min_temperature {
                break;
            }
        }
    }
    pb.finish_and_clear();
    Ok(FfwOutcome {
        gates,
        history,
        checkpoints,
        best: best.map(|(e, g, _)| (e, g)),
    })
}
