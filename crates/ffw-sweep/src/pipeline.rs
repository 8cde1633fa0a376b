//! The work of one job: data → vanilla model (trained or reused) → its evaluation, or
//! vanilla checkpoint → FFW → evaluation of the final and best masks.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use ffw_data::biased_mnist::{build_splits, BiasedMnistSplits};
use ffw_nn::gate::GateSet;
use ffw_nn::params::{load_tensors, save_tensors};
use ffw_nn::{GateMode, Variant};
use ffw_surgery::checkpoint::{self, CheckpointCard};
use ffw_surgery::evaluate::{evaluate_params, MaskReport, UnbiasedSets};
use ffw_surgery::probe::ProbeInit;
use ffw_surgery::seeds::sub_seed;
use ffw_surgery::surgery::{run_ffw, Checkpoint, FfwEpoch};
use ffw_surgery::vanilla::{train_vanilla, VanillaEpoch};
use serde::{Deserialize, Serialize};

use crate::config::DataConfig;
use crate::error::{Result, SweepError};
use crate::grid::{FfwSpec, VanillaSpec};

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct VanillaResult {
    pub data_sizes: BTreeMap<String, usize>,
    pub history: Vec<VanillaEpoch>,
    /// The vanilla model scored like every mask: unbiased test and val, fresh probe.
    pub report: MaskReport,
    pub wall_secs: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FfwResult {
    pub variant: Variant,
    pub lambda: f64,
    /// The mask at the end of the temperature schedule.
    pub final_mask: MaskReport,
    /// The intermediate mask with the lowest validation bias accuracy, and its epoch.
    pub best_intermediate: Option<(usize, MaskReport)>,
    pub epochs: Vec<FfwEpoch>,
    pub temperature_changes: Vec<Checkpoint>,
    pub wall_secs: f64,
}

/// The Biased MNIST splits of a data config; `seed` is the vanilla job's, so every job built
/// on one vanilla model sees the same images.
pub fn load_splits(data: &DataConfig, seed: u64) -> Result<BiasedMnistSplits> {
    let (dir, cfg) = data.biased_mnist();
    let mnist = ffw_data::mnist::load_dir(&dir)?;
    Ok(build_splits(&mnist, &cfg, sub_seed(seed, "data"))?)
}

fn sets(splits: &BiasedMnistSplits) -> UnbiasedSets<'_> {
    UnbiasedSets {
        train: &splits.unbiased_train,
        val: &splits.unbiased_val,
        test: &splits.test,
    }
}

fn probes_path(dir: &Path) -> std::path::PathBuf {
    dir.join("probes.safetensors")
}

/// Trains (or reuses, if `dir` holds a checkpoint of this exact spec) and scores the vanilla
/// model; saves the checkpoint and the privacy heads fitted on it.
pub fn run_vanilla(
    spec: &VanillaSpec,
    seed: u64,
    dir: &Path,
    device: &Device,
) -> Result<VanillaResult> {
    let mut wall = BTreeMap::new();
    let t = Instant::now();
    let splits = load_splits(&spec.data, seed)?;
    let data_sizes = BTreeMap::from([
        ("train".to_string(), splits.train.len()),
        ("unbiased_train".to_string(), splits.unbiased_train.len()),
        ("unbiased_val".to_string(), splits.unbiased_val.len()),
        ("test".to_string(), splits.test.len()),
    ]);
    wall.insert("data".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let provenance = serde_json::to_value(spec).expect("specs serialise");
    let stem = dir.join("vanilla");
    let (params, history) = match checkpoint::load(&stem, device)? {
        Some((params, card)) if card.provenance == provenance => {
            tracing::info!(checkpoint = %stem.display(), "reusing vanilla checkpoint");
            (params, card.history)
        }
        _ => {
            let out = train_vanilla(
                &spec.arch,
                &splits.train,
                Some(&splits.unbiased_val),
                &spec.vanilla,
                seed,
                device,
            )?;
            let card = CheckpointCard {
                arch: spec.arch.clone(),
                provenance,
                epochs: spec.vanilla.epochs,
                history: out.history.clone(),
                ffw_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            checkpoint::save(&stem, &out.params, &card)?;
            (out.params, out.history)
        }
    };
    wall.insert("vanilla".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let fresh = ProbeInit::Fresh {
        seed: sub_seed(seed, "probe"),
    };
    let eval = evaluate_params(
        &spec.arch,
        &params,
        &sets(&splits),
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
    save_tensors(&heads, &probes_path(dir))?;
    tracing::info!(task_acc = eval.report.test.task_acc, bias_acc = ?eval.report.test.bias_acc, "vanilla on unbiased test");
    wall.insert("evaluation".to_string(), t.elapsed().as_secs_f64());
    Ok(VanillaResult {
        data_sizes,
        history,
        report: eval.report,
        wall_secs: wall,
    })
}

/// The privacy heads saved by [`run_vanilla`], one map per bias attribute.
fn load_probes(
    dir: &Path,
    n_attrs: usize,
    device: &Device,
) -> Result<Vec<HashMap<String, Tensor>>> {
    let all = load_tensors(&probes_path(dir), device)?;
    let mut maps = vec![HashMap::new(); n_attrs];
    for (key, t) in all {
        let parsed = key
            .split_once('.')
            .and_then(|(a, name)| Some((a.parse::<usize>().ok()?, name.to_string())));
        match parsed {
            Some((a, name)) if a < n_attrs => {
                maps[a].insert(name, t);
            }
            _ => {
                return Err(SweepError::File {
                    path: probes_path(dir),
                    reason: format!("unexpected tensor {key}"),
                });
            }
        }
    }
    Ok(maps)
}

/// FFW from the vanilla job's checkpoint (in `vanilla_dir`), evaluated with fresh probes.
pub fn run_ffw_job(
    spec: &FfwSpec,
    vanilla: &VanillaSpec,
    vanilla_seed: u64,
    vanilla_dir: &Path,
    seed: u64,
    dir: &Path,
    device: &Device,
) -> Result<FfwResult> {
    let t = Instant::now();
    let splits = load_splits(&vanilla.data, vanilla_seed)?;
    let stem = vanilla_dir.join("vanilla");
    let (base, _) = checkpoint::load(&stem, device)?.ok_or_else(|| SweepError::File {
        path: stem.with_extension("json"),
        reason: "vanilla checkpoint missing".into(),
    })?;
    let probes = load_probes(vanilla_dir, splits.unbiased_train.biases.len(), device)?;
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
    )?;
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
    Ok(FfwResult {
        variant: spec.ffw.variant,
        lambda: spec.ffw.lambda,
        final_mask,
        best_intermediate,
        epochs: outcome.history,
        temperature_changes: outcome.checkpoints,
        wall_secs: t.elapsed().as_secs_f64(),
    })
}
