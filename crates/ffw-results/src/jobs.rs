//! The result of each kind of job, and the per-epoch records inside them.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::device::DeviceInfo;
use crate::schema::unversioned;
use crate::scores::{MaskReport, SplitScores};

/// FFW's gate granularity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// One gate per weight.
    Unstructured,
    /// One gate per output unit (channel or neuron).
    Structured,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct VanillaEpoch {
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    pub train_acc: f64,
    /// Task accuracy on the monitoring split (unbiased validation), BatchNorm in eval mode.
    pub monitor_acc: Option<f64>,
    /// Cross-entropy on the monitoring split, recorded when the plateau schedule follows it;
    /// absent otherwise and in results from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_loss: Option<f64>,
    pub secs: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FfwEpoch {
    pub epoch: usize,
    pub temperature: f64,
    pub train_ce: f64,
    pub train_mi: f64,
    pub val_mi: f64,
    pub sparsity: f64,
    pub secs: f64,
    /// Epochs the privacy heads took to plateau on this epoch's gated model.
    #[serde(default)]
    pub probe_epochs: usize,
    /// Where this epoch lowered the temperature without stopping the run: the epochs the
    /// heads took to plateau again on the model at the new temperature.
    #[serde(default)]
    pub refit_probe_epochs: Option<usize>,
    /// The soft (gated) model at this epoch's temperature with the refined heads, on
    /// unbiased val and test: recorded to follow a run's dynamics, never used for a choice.
    #[serde(default)]
    pub soft_val: Option<SplitScores>,
    #[serde(default)]
    pub soft_test: Option<SplitScores>,
}

/// Evaluation of the hard mask taken when the temperature changed.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TemperatureChange {
    pub epoch: usize,
    pub new_temperature: f64,
    pub report: MaskReport,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct VanillaResult {
    /// The result schema the file was written with (see [`crate::SCHEMA_VERSION`]).
    #[serde(default = "unversioned")]
    pub schema: u32,
    pub data_sizes: BTreeMap<String, usize>,
    /// Where labels are names (a user's CSV): each column's class names in class order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Vec<String>>,
    pub history: Vec<VanillaEpoch>,
    /// The vanilla model scored like every mask: unbiased test and val, fresh probe.
    pub report: MaskReport,
    /// The model at each of `vanilla.checkpoints`, scored the same way.
    #[serde(default)]
    pub checkpoints: Vec<CheckpointReport>,
    pub wall_secs: BTreeMap<String, f64>,
    /// Where the job ran; absent in results written before devices were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CheckpointReport {
    /// Epochs of training (fractions of the first epoch included).
    pub epoch: f64,
    pub report: MaskReport,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FfwResult {
    /// The result schema the file was written with (see [`crate::SCHEMA_VERSION`]).
    #[serde(default = "unversioned")]
    pub schema: u32,
    pub variant: Variant,
    pub lambda: f64,
    /// The vanilla checkpoint FFW started from (epochs); none = the final model.
    #[serde(default)]
    pub at: Option<f64>,
    /// The mask at the end of the temperature schedule.
    pub final_mask: MaskReport,
    /// The intermediate mask with the lowest validation bias accuracy, and its epoch.
    pub best_intermediate: Option<(usize, MaskReport)>,
    pub epochs: Vec<FfwEpoch>,
    pub temperature_changes: Vec<TemperatureChange>,
    pub wall_secs: f64,
    /// Where the job ran; absent in results written before devices were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MagnitudeResult {
    /// The result schema the file was written with (see [`crate::SCHEMA_VERSION`]).
    #[serde(default = "unversioned")]
    pub schema: u32,
    /// The requested sparsity; `report.sparsity` holds the one reached.
    pub sparsity_target: f64,
    pub report: MaskReport,
    pub wall_secs: f64,
    /// Where the job ran; absent in results written before devices were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
}
