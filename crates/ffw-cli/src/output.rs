//! The result file: one JSON document per run, written atomically (temp file + rename) so an
//! interrupted or failed run never leaves a half-written result.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use ffw_surgery::evaluate::MaskReport;
use ffw_surgery::surgery::{Checkpoint, FfwEpoch};
use ffw_surgery::vanilla::VanillaEpoch;
use serde::Serialize;

use crate::config::RunConfig;

#[derive(Serialize)]
pub struct Versions {
    pub ffw: &'static str,
    pub candle: &'static str,
}

pub const VERSIONS: Versions = Versions {
    ffw: env!("CARGO_PKG_VERSION"),
    candle: env!("FFW_CANDLE_VERSION"),
};

#[derive(Serialize)]
pub struct VariantResult {
    pub variant: ffw_nn::Variant,
    /// The mask at the end of the temperature schedule.
    pub final_mask: MaskReport,
    /// The intermediate mask with the lowest validation bias accuracy, and its epoch.
    pub best_intermediate: Option<(usize, MaskReport)>,
    pub epochs: Vec<FfwEpoch>,
    pub temperature_changes: Vec<Checkpoint>,
    pub wall_secs: f64,
}

#[derive(Serialize)]
pub struct RunResult {
    pub config: RunConfig,
    pub seed: u64,
    pub versions: Versions,
    pub data_sizes: BTreeMap<&'static str, usize>,
    pub vanilla_trained: bool,
    pub vanilla_history: Vec<VanillaEpoch>,
    pub vanilla: MaskReport,
    pub ffw: Vec<VariantResult>,
    /// Wall-clock seconds per phase (data, vanilla, vanilla_eval, ffw_<variant>).
    pub wall_secs: BTreeMap<String, f64>,
}

pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
