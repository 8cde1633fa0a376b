//! The work of one job: data → vanilla model (trained or reused) → its evaluation, or
//! saved vanilla model (final or training checkpoint) → FFW → evaluation of the final and
//! best masks.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use ffw_data::{DataConfig, Splits};
use ffw_nn::gate::GateSet;
use ffw_nn::GateMode;
use ffw_placement::{Collective, Group};
use ffw_results::{
    CheckpointReport, FfwResult, MagnitudeResult, MaskReport, VanillaResult, SCHEMA_VERSION,
};
use ffw_surgery::evaluate::{evaluate_params, UnbiasedSets};
use ffw_surgery::magnitude::magnitude_mask;
use ffw_surgery::probe::ProbeInit;
use ffw_surgery::saved_model::{self, ModelCard};
use ffw_surgery::seeds::sub_seed;
use ffw_surgery::surgery::run_ffw;
use ffw_surgery::vanilla::train_vanilla_in;

use crate::error::Result;
use crate::grid::{FfwSpec, MagnitudeSpec, VanillaSpec};
use crate::vanilla_files::{load_probes, load_start, load_trained, model_stem, probes_path};

/// The Biased MNIST splits of a data config; `seed` is the vanilla job's, so every job built
/// on one vanilla model sees the same images.
pub fn load_splits(data: &DataConfig, seed: u64) -> Result<Splits> {
    Ok(data.benchmark().splits(sub_seed(seed, "data"))?)
}

fn sets(splits: &Splits) -> UnbiasedSets<'_> {
    UnbiasedSets {
        train: &splits.unbiased_train,
        val: &splits.unbiased_val,
        test: &splits.test,
    }
}

/// Scores a vanilla parameter map with fresh privacy heads and saves the heads, which seed
/// the FFW jobs that start from this map.
fn score_vanilla(
    spec: &VanillaSpec,
    params: &HashMap<String, Tensor>,
    splits: &Splits,
    seed: u64,
    probes: &Path,
    device: &Device,
) -> Result<MaskReport> {
    let fresh = ProbeInit::Fresh {
        seed: sub_seed(seed, "probe"),
    };
    let eval = evaluate_params(
        &spec.arch,
        params,
        &sets(splits),
        &spec.probe,
        &fresh,
        sub_seed(seed, "eval"),
        device,
    )?;
    let mut heads = HashMap::new();
    for (a, probe) in eval.probes.iter().enumerate() {
        for (name, t) in probe.params()? {
            heads.insert(format!("{a}.{name}"), t);
        }
    }
    ffw_nn::params::save_tensors(&heads, probes)?;
    Ok(eval.report)
}

/// Trains (or reuses, if `dir` holds a saved model of this exact spec) and scores the vanilla
/// model and its checkpoints; saves them and the privacy heads fitted on each. Training runs
/// data-parallel on `group`, whose first rank alone goes on to save, score and return the
/// result (`None` on the others).
pub fn run_vanilla(
    spec: &VanillaSpec,
    seed: u64,
    dir: &Path,
    device: &Device,
    group: &Group,
) -> Result<Option<VanillaResult>> {
    let mut wall = BTreeMap::new();
    let t = Instant::now();
    let splits = load_splits(&spec.data, seed)?;
    let data_sizes = BTreeMap::from([
        ("train".to_string(), splits.train.len()),
        ("unbiased_train".to_string(), splits.unbiased_train.len()),
        ("unbiased_val".to_string(), splits.unbiased_val.len()),
        ("test".to_string(), splits.test.len()),
    ]);
    let labels = spec.data.benchmark().label_names()?;
    wall.insert("data".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    // A damaged saved model is only a lost cache: train again.
    let reusable = load_trained(spec, dir, device).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "unreadable saved vanilla model: training again");
        None
    });
    // A group reuses only what each of its ranks found, or some would wait for a training
    // that never comes.
    let found = group.sum_host(&[f32::from(u8::from(reusable.is_some()))])?;
    let reusable = if found[0] as usize == group.size() {
        reusable
    } else {
        None
    };
    let leader = group.rank() == 0;
    let (trained, fresh) = match reusable {
        Some(found) => {
            tracing::info!(dir = %dir.display(), "reusing the saved vanilla model");
            (found, false)
        }
        None => {
            let out = train_vanilla_in(
                &spec.arch,
                spec.init.as_ref().map(|i| i.path.as_path()),
                &splits.train,
                Some(&splits.unbiased_val),
                &spec.vanilla,
                seed,
                device,
                group,
            )?;
            (out, true)
        }
    };
    // The group's joint work ends here: its other ranks are free for the next job.
    group.conclude(false)?;
    if !leader {
        return Ok(None);
    }
    if fresh {
        let card = |epochs: usize| ModelCard {
            arch: spec.arch.clone(),
            provenance: serde_json::to_value(spec).expect("specs serialise"),
            epochs,
            history: trained.history[..epochs.min(trained.history.len())].to_vec(),
            ffw_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        for (at, params) in &trained.checkpoints {
            saved_model::save(
                &model_stem(dir, Some(*at)),
                params,
                &card(at.floor() as usize),
            )?;
        }
        saved_model::save(
            &model_stem(dir, None),
            &trained.params,
            // The plateau schedule may stop before `epochs`.
            &card(trained.history.len()),
        )?;
    }
    wall.insert("vanilla".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut checkpoints = Vec::new();
    for (at, params) in &trained.checkpoints {
        let report = score_vanilla(
            spec,
            params,
            &splits,
            seed,
            &probes_path(dir, Some(*at)),
            device,
        )?;
        tracing::info!(epoch = at, task_acc = report.test.task_acc, bias_acc = ?report.test.bias_acc, "vanilla checkpoint on unbiased test");
        checkpoints.push(CheckpointReport { epoch: *at, report });
    }
    let report = score_vanilla(
        spec,
        &trained.params,
        &splits,
        seed,
        &probes_path(dir, None),
        device,
    )?;
    tracing::info!(task_acc = report.test.task_acc, bias_acc = ?report.test.bias_acc, "vanilla on unbiased test");
    wall.insert("evaluation".to_string(), t.elapsed().as_secs_f64());
    Ok(Some(VanillaResult {
        schema: SCHEMA_VERSION,
        data_sizes,
        labels,
        history: trained.history,
        report,
        checkpoints,
        wall_secs: wall,
        device: Some(ffw_placement::describe(device)),
    }))
}

/// FFW from the vanilla job's saved model (in `vanilla_dir`), evaluated with fresh probes.
/// FFW runs data-parallel on `group`, whose first rank alone goes on to score, save and
/// return the result (`None` on the others).
#[allow(clippy::too_many_arguments)]
pub fn run_ffw_job(
    spec: &FfwSpec,
    vanilla: &VanillaSpec,
    vanilla_seed: u64,
    vanilla_dir: &Path,
    seed: u64,
    dir: &Path,
    device: &Device,
    group: &dyn Collective,
) -> Result<Option<FfwResult>> {
    let t = Instant::now();
    let splits = load_splits(&vanilla.data, vanilla_seed)?;
    let base = load_start(vanilla_dir, spec.at, device)?;
    let probes = load_probes(
        &probes_path(vanilla_dir, spec.at),
        splits.unbiased_train.biases.len(),
        device,
    )?;
    let arch = &vanilla.arch;
    let sets = sets(&splits);
    let outcome = run_ffw(
        arch,
        &base,
        &sets,
        &spec.ffw,
        &probes,
        sub_seed(seed, "ffw"),
        device,
        group,
    )?;
    group.conclude(false)?;
    if group.rank() != 0 {
        return Ok(None);
    }
    let fresh = ProbeInit::Fresh {
        seed: sub_seed(vanilla_seed, "probe"),
    };
    let score = |gates: &GateSet, tag: &str| -> Result<MaskReport> {
        let params = gates.effective_params(&base, GateMode::Hard)?;
        let mut r = evaluate_params(
            arch,
            &params,
            &sets,
            &spec.ffw.probe,
            &fresh,
            sub_seed(seed, tag),
            device,
        )?
        .report;
        r.sparsity = Some(gates.sparsity()?);
        Ok(r)
    };
    let final_mask = score(&outcome.gates, "eval-final")?;
    outcome.gates.save(&dir.join("gates_final.safetensors"))?;
    let best_intermediate = match &outcome.best {
        Some((epoch, gates)) => {
            gates.save(&dir.join("gates_best.safetensors"))?;
            Some((*epoch, score(gates, "eval-best")?))
        }
        None => None,
    };
    tracing::info!(
        task_acc = final_mask.test.task_acc,
        bias_acc = ?final_mask.test.bias_acc,
        sparsity = final_mask.sparsity.as_ref().map(|s| s.global),
        "FFW final mask on unbiased test"
    );
    Ok(Some(FfwResult {
        schema: SCHEMA_VERSION,
        variant: spec.ffw.variant,
        lambda: spec.ffw.lambda,
        at: spec.at,
        final_mask,
        best_intermediate,
        epochs: outcome.history,
        temperature_changes: outcome.temperature_changes,
        wall_secs: t.elapsed().as_secs_f64(),
        device: Some(ffw_placement::describe(device)),
    }))
}

/// Global magnitude pruning of the final vanilla model, scored like an FFW mask: hard-pruned
/// parameters, a fresh privacy head to plateau, unbiased val/test.
pub fn run_magnitude_job(
    spec: &MagnitudeSpec,
    vanilla: &VanillaSpec,
    vanilla_seed: u64,
    vanilla_dir: &Path,
    seed: u64,
    device: &Device,
) -> Result<MagnitudeResult> {
    let t = Instant::now();
    let splits = load_splits(&vanilla.data, vanilla_seed)?;
    let base = load_start(vanilla_dir, None, device)?;
    let mask = magnitude_mask(&vanilla.arch, &base, spec.sparsity, device)?;
    let params = mask.effective_params(&base, GateMode::Hard)?;
    let fresh = ProbeInit::Fresh {
        seed: sub_seed(vanilla_seed, "probe"),
    };
    let mut report = evaluate_params(
        &vanilla.arch,
        &params,
        &sets(&splits),
        &vanilla.probe,
        &fresh,
        sub_seed(seed, "eval-magnitude"),
        device,
    )?
    .report;
    report.sparsity = Some(mask.sparsity()?);
    tracing::info!(
        sparsity = spec.sparsity,
        task_acc = report.test.task_acc,
        bias_acc = ?report.test.bias_acc,
        "magnitude-pruned model on unbiased test"
    );
    Ok(MagnitudeResult {
        schema: SCHEMA_VERSION,
        sparsity_target: spec.sparsity,
        report,
        wall_secs: t.elapsed().as_secs_f64(),
        device: Some(ffw_placement::describe(device)),
    })
}
