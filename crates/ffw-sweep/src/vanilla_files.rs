//! The files a vanilla job leaves in its directory for the jobs built on it: the saved model
//! (parameters and card) of the final model and of each training checkpoint, and the privacy
//! heads fitted on each.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ffw_nn::params::load_tensors;
use ffw_surgery::saved_model;
use ffw_surgery::vanilla::VanillaOutcome;

use crate::error::{Result, SweepError};
use crate::grid::VanillaSpec;

/// File-name suffix of a training checkpoint (none: the final model); `.` would read as an
/// extension.
fn at_label(at: Option<f64>) -> String {
    at.map(|a| format!("-at-{}", a.to_string().replace('.', "_")))
        .unwrap_or_default()
}

pub(crate) fn model_stem(dir: &Path, at: Option<f64>) -> PathBuf {
    dir.join(format!("vanilla{}", at_label(at)))
}

pub(crate) fn probes_path(dir: &Path, at: Option<f64>) -> PathBuf {
    dir.join(format!("probes{}.safetensors", at_label(at)))
}

/// The final parameters and those of every checkpoint, if `dir` holds them for this exact
/// spec. Checkpoints are written before the final card, so a final card means all exist.
pub(crate) fn load_trained(
    spec: &VanillaSpec,
    dir: &Path,
    device: &Device,
) -> Result<Option<VanillaOutcome>> {
    let provenance = serde_json::to_value(spec).expect("specs serialise");
    let Some((params, card)) = saved_model::load(&model_stem(dir, None), device)? else {
        return Ok(None);
    };
    if card.provenance != provenance {
        return Ok(None);
    }
    let mut checkpoints = Vec::new();
    for &at in &spec.vanilla.checkpoints {
        match saved_model::load(&model_stem(dir, Some(at)), device)? {
            Some((p, _)) => checkpoints.push((at, p)),
            None => return Ok(None),
        }
    }
    Ok(Some(VanillaOutcome {
        params,
        history: card.history,
        checkpoints,
    }))
}

/// Why the files a vanilla job leaves for its dependants (the final and every
/// `vanilla.checkpoints` checkpoint, with the privacy heads of each) are not usable, if so.
pub fn vanilla_artifacts_unusable(spec: &VanillaSpec, dir: &Path) -> Option<String> {
    let starts = std::iter::once(None).chain(spec.vanilla.checkpoints.iter().copied().map(Some));
    for at in starts {
        let stem = model_stem(dir, at);
        match saved_model::load(&stem, &Device::Cpu) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Some(format!(
                    "{} is missing",
                    stem.with_extension("json").display()
                ))
            }
            Err(e) => return Some(e.to_string()),
        }
        if let Err(e) = load_tensors(&probes_path(dir, at), &Device::Cpu) {
            return Some(e.to_string());
        }
    }
    None
}

/// The privacy heads saved by [`run_vanilla`], one map per bias attribute.
pub(crate) fn load_probes(
    path: &Path,
    n_attrs: usize,
    device: &Device,
) -> Result<Vec<HashMap<String, Tensor>>> {
    let all = load_tensors(path, device)?;
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
                    path: path.to_path_buf(),
                    reason: format!("unexpected tensor {key}"),
                });
            }
        }
    }
    Ok(maps)
}

/// The vanilla parameters a job starts from: the final model or checkpoint `at`.
pub(crate) fn load_start(
    vanilla_dir: &Path,
    at: Option<f64>,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let stem = model_stem(vanilla_dir, at);
    let (params, _) = saved_model::load(&stem, device)?.ok_or_else(|| SweepError::File {
        path: stem.with_extension("json"),
        reason: "saved vanilla model missing".into(),
    })?;
    Ok(params)
}
