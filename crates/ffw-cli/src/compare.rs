//! `ffw bench --compare-cpu`: the first command to run on a GPU node. A few vanilla steps and
//! FFW gate steps of each case run on the device and on the CPU from the same initialisation
//! and batches; the losses and parameters must agree to [`TOLERANCE`] (the kernels differ,
//! so bits do not). A wrong kernel, binding or build shows here in seconds, not after a
//! night of jobs.
use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use ffw_nn::{GateMode, ModelSpec, ParamStore};
use ffw_surgery::probe::Probe;
use ffw_surgery::surgery::Surgery;
use ffw_surgery::vanilla::train_step;
use ffw_surgery::{optim, FfwConfig};

use crate::bench::{synthetic, Case};

/// Largest absolute difference accepted between the CPU's and the device's numbers.
pub const TOLERANCE: f32 = 1e-3;

/// Losses of each step and the parameters at the end, on the CPU.
struct Trace {
    losses: Vec<f32>,
    params: HashMap<String, Tensor>,
}

fn on_cpu(params: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    params
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_device(&Device::Cpu)?)))
        .collect()
}

fn vanilla(case: &Case, steps: usize, device: &Device) -> Result<Trace> {
    let (arch, batch) = (&case.arch, case.batch);
    let data = synthetic(batch * steps, case.side);
    let store = ParamStore::new(0, device);
    let model = arch.build(store.var_builder())?;
    let mut opt = optim::build(&case.optimizer, store.trainable());
    let mut losses = Vec::new();
    for s in 0..steps {
        let idx: Vec<usize> = (s * batch..(s + 1) * batch).collect();
        let (loss, _) = train_step(&model, opt.as_mut(), &data.batch(&idx, device)?)?;
        losses.push(loss.to_scalar::<f32>()?);
    }
    Ok(Trace {
        losses,
        params: on_cpu(store.snapshot()?)?,
    })
}

/// FFW gate steps from `base` (on the CPU) with a fresh privacy head: the objective of each
/// step (CE + MI) and the gates at the end.
fn ffw(
    case: &Case,
    base: &HashMap<String, Tensor>,
    steps: usize,
    device: &Device,
) -> Result<Trace> {
    let (arch, batch) = (&case.arch, case.batch);
    let data = synthetic(batch * steps, case.side);
    let base: HashMap<String, Tensor> = base
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(device)?)))
        .collect::<Result<_>>()?;
    let cfg = FfwConfig::default();
    let probe = Probe::new(arch.feature_dim(), 10, &cfg.probe, 1, device)?;
    let mut surgery = Surgery::new(arch, &base, &cfg, vec![probe], device)?;
    let mode = GateMode::Soft { temperature: 1.0 };
    let mut losses = Vec::new();
    for s in 0..steps {
        let idx: Vec<usize> = (s * batch..(s + 1) * batch).collect();
        let (ce, mi) = surgery.gate_step(&data.batch(&idx, device)?, mode)?;
        losses.push((ce + mi)?.to_scalar::<f32>()?);
    }
    let gates = surgery
        .gates
        .layers
        .iter()
        .map(|l| Ok((l.name.clone(), l.m.as_tensor().to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    Ok(Trace {
        losses,
        params: gates,
    })
}

/// (largest loss difference, largest parameter difference) of two traces.
fn drift(a: &Trace, b: &Trace) -> Result<(f32, f32)> {
    let loss = a
        .losses
        .iter()
        .zip(&b.losses)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, worse);
    let mut param = 0f32;
    for (name, t) in &a.params {
        let d = (t - &b.params[name])?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        param = worse(param, d);
    }
    Ok((loss, param))
}

/// The larger difference, NaN winning (`f32::max` would drop it).
fn worse(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// Runs `steps` vanilla and FFW steps of each case on `device` and on the CPU; fails if any
/// loss or parameter differs by more than [`TOLERANCE`].
pub fn compare(cases: &[Case], device: &Device, steps: usize) -> Result<()> {
    println!(
        "{:<14} {:>6} {:>14} {:>14} {:>14} {:>14}   ({} vs cpu, {steps} steps)",
        "case",
        "batch",
        "vanilla Δloss",
        "vanilla Δparam",
        "ffw Δloss",
        "ffw Δgate",
        ffw_placement::describe(device)
    );
    let mut worst = 0f32;
    for case in cases {
        let cpu = vanilla(case, steps, &Device::Cpu)?;
        let dev = vanilla(case, steps, device)?;
        let (vl, vp) = drift(&cpu, &dev)?;
        // Both FFW runs start from the CPU's vanilla parameters.
        let (fl, fp) = drift(
            &ffw(case, &cpu.params, steps, &Device::Cpu)?,
            &ffw(case, &cpu.params, steps, device)?,
        )?;
        let (name, batch) = (case.name, case.batch);
        println!("{name:<14} {batch:>6} {vl:>14.3e} {vp:>14.3e} {fl:>14.3e} {fp:>14.3e}");
        worst = [vl, vp, fl, fp].into_iter().fold(worst, worse);
    }
    if !worst.is_finite() || worst > TOLERANCE {
        bail!("the device's numbers differ from the CPU's by {worst:e} > {TOLERANCE:e}");
    }
    println!("agree to {worst:e} (tolerance {TOLERANCE:e})");
    Ok(())
}
