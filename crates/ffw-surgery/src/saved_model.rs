//! A saved vanilla model (the final one or a training checkpoint): parameters as safetensors
//! plus a JSON card (architecture, what produced it, training history). The card is written
//! last, so a saved model without its card is incomplete and ignored.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ffw_nn::params::load_tensors;
use ffw_nn::Arch;
use ffw_results::VanillaEpoch;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SurgeryError};

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ModelCard {
    pub arch: Arch,
    /// Canonical description of everything that determined these weights (data, model,
    /// training config, seed); a saved model is reused only when it matches exactly.
    pub provenance: serde_json::Value,
    pub epochs: usize,
    pub history: Vec<VanillaEpoch>,
    pub ffw_version: String,
}

fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    (
        stem.with_extension("safetensors"),
        stem.with_extension("json"),
    )
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> SurgeryError {
    SurgeryError::SavedModel {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

pub fn save(stem: &Path, params: &HashMap<String, Tensor>, card: &ModelCard) -> Result<()> {
    let (weights, json) = paths(stem);
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    ffw_nn::params::save_tensors(params, &weights)?;
    let text = serde_json::to_string_pretty(card).map_err(|e| io_err(&json, e))?;
    ffw_data::atomic::write(&json, text.as_bytes()).map_err(|e| io_err(&json, e))
}

/// Loads a complete saved model; `Ok(None)` if its card does not exist.
pub fn load(stem: &Path, device: &Device) -> Result<Option<(HashMap<String, Tensor>, ModelCard)>> {
    let (weights, json) = paths(stem);
    if !json.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&json).map_err(|e| io_err(&json, e))?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|e| io_err(&json, e))?;
    let params = load_tensors(&weights, device)?;
    Ok(Some((params, card)))
}
