//! Hyper-parameters of vanilla training, the privacy head and FFW, with the paper's defaults.
use serde::{Deserialize, Serialize};

use crate::error::{Result, SurgeryError};
use ffw_nn::Variant;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// PyTorch SGD (L2 weight decay added to the gradient, classic momentum).
    Sgd {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    },
    /// PyTorch Adam (L2 weight decay added to the gradient, not AdamW).
    Adam { lr: f64, weight_decay: f64 },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VanillaConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    /// Epochs after which the learning rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    pub gamma: f64,
    /// Points of training (in epochs, fractions allowed: 0.0167 is 1/60 of the first) at
    /// which the parameters are also saved, for the epoch ablation. Left out of the spec
    /// when empty, so job identities stay those of configs without it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<f64>,
}

impl Default for VanillaConfig {
    /// Biased MNIST (PROTOCOL §5): SGD 0.1/0.9/1e-4, batch 100, 80 epochs, ×0.1 at 40 and 60.
    fn default() -> Self {
        Self {
            epochs: 80,
            batch_size: 100,
            optimizer: OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            milestones: vec![40, 60],
            gamma: 0.1,
            checkpoints: vec![],
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// "Train to plateau": stop once the epoch-mean loss has not improved by this relative
    /// amount for more than `patience` epochs, or after `max_epochs`.
    pub threshold: f64,
    pub patience: usize,
    pub max_epochs: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            batch_size: 100,
            threshold: 1e-3,
            patience: 5,
            max_epochs: 200,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FfwConfig {
    pub variant: Variant,
    /// The paper's λ (the code's `gamma`).
    pub lambda: f64,
    pub alpha: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    pub temperature_factor: f64,
    pub temperature_patience: usize,
    pub temperature_threshold: f64,
    pub min_temperature: f64,
    /// Gate the task head's weights too (the authors' code). Left out of the serialised
    /// form when true, so job identities from before this key existed stay the same.
    #[serde(skip_serializing_if = "is_true")]
    pub gate_head: bool,
    pub probe: ProbeConfig,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for FfwConfig {
    fn default() -> Self {
        Self {
            variant: Variant::Unstructured,
            lambda: 10.0,
            alpha: 1.0,
            lr: 1e-3,
            weight_decay: 1e-4,
            batch_size: 100,
            max_epochs: 200,
            temperature_factor: 0.1,
            temperature_patience: 5,
            temperature_threshold: 5e-2,
            gate_head: true,
            min_temperature: 1e-8,
            probe: ProbeConfig::default(),
        }
    }
}

fn check(ok: bool, key: &str, msg: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(SurgeryError::Config(format!("{key}: {msg}")))
    }
}

impl OptimizerConfig {
    pub fn validate(&self, key: &str) -> Result<()> {
        match self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                check(
                    *lr > 0.0 && lr.is_finite(),
                    &format!("{key}.lr"),
                    "must be > 0",
                )?;
                check(
                    (0.0..1.0).contains(momentum),
                    &format!("{key}.momentum"),
                    "must be in [0, 1)",
                )?;
                check(
                    *weight_decay >= 0.0,
                    &format!("{key}.weight_decay"),
                    "must be >= 0",
                )
            }
            OptimizerConfig::Adam { lr, weight_decay } => {
                check(
                    *lr > 0.0 && lr.is_finite(),
                    &format!("{key}.lr"),
                    "must be > 0",
                )?;
                check(
                    *weight_decay >= 0.0,
                    &format!("{key}.weight_decay"),
                    "must be >= 0",
                )
            }
        }
    }
}

impl VanillaConfig {
    pub fn validate(&self) -> Result<()> {
        check(self.batch_size > 0, "vanilla.batch_size", "must be > 0")?;
        check(
            self.gamma > 0.0 && self.gamma <= 1.0,
            "vanilla.gamma",
            "must be in (0, 1]",
        )?;
        self.optimizer.validate("vanilla.optimizer")
    }
}

impl ProbeConfig {
    pub fn validate(&self) -> Result<()> {
        check(self.lr > 0.0, "ffw.probe.lr", "must be > 0")?;
        check(
            (0.0..1.0).contains(&self.momentum),
            "ffw.probe.momentum",
            "must be in [0, 1)",
        )?;
        check(self.batch_size > 0, "ffw.probe.batch_size", "must be > 0")?;
        check(self.max_epochs > 0, "ffw.probe.max_epochs", "must be > 0")?;
        check(
            self.threshold >= 0.0 && self.threshold < 1.0,
            "ffw.probe.threshold",
            "must be in [0, 1)",
        )
    }
}

impl FfwConfig {
    pub fn validate(&self) -> Result<()> {
        check(
            self.lambda >= 0.0 && self.lambda.is_finite(),
            "ffw.lambda",
            "must be >= 0",
        )?;
        check(self.alpha >= 0.0, "ffw.alpha", "must be >= 0")?;
        check(self.lr > 0.0, "ffw.lr", "must be > 0")?;
        check(
            self.batch_size > 1,
            "ffw.batch_size",
            "must be > 1 (MI needs a minibatch)",
        )?;
        check(self.max_epochs > 0, "ffw.max_epochs", "must be > 0")?;
        check(
            self.temperature_factor > 0.0 && self.temperature_factor < 1.0,
            "ffw.temperature_factor",
            "must be in (0, 1)",
        )?;
        check(
            (0.0..1.0).contains(&self.temperature_threshold),
            "ffw.temperature_threshold",
            "must be in [0, 1)",
        )?;
        check(
            self.min_temperature > 0.0 && self.min_temperature < 1.0,
            "ffw.min_temperature",
            "must be in (0, 1)",
        )?;
        self.probe.validate()
    }
}
