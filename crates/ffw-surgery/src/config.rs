//! Hyper-parameters of vanilla training, the privacy head and FFW, with the paper's defaults.
use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
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

/// How the vanilla learning rate moves over the epochs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// × `gamma` after each of `milestones`.
    #[default]
    MultiStep,
    /// Cosine annealing from the optimiser's rate to 0 over `epochs` (no milestones).
    Cosine,
    /// × `plateau.factor` on each plateau of the monitored loss, stopping early once the
    /// rate falls below `plateau.min_lr` (`epochs` is then the most it trains).
    Plateau,
}

/// torch's `ReduceLROnPlateau` (mode "min", relative `threshold`) plus the authors' stop;
/// defaults are the CelebA recipe (PROTOCOL §5).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlateauConfig {
    pub factor: f64,
    pub patience: usize,
    pub cooldown: usize,
    pub threshold: f64,
    /// Training stops once the rate is below this (not torch's floor `min_lr`, which
    /// would hold the rate there instead).
    pub min_lr: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        Self {
            factor: 0.1,
            patience: 10,
            cooldown: 5,
            threshold: 1e-4,
            min_lr: 1e-3,
        }
    }
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
    /// The schedule and the augmentation are left out of the spec at their defaults, so job
    /// identities stay those of configs from before they existed.
    #[serde(skip_serializing_if = "is_default")]
    pub schedule: LrSchedule,
    #[serde(skip_serializing_if = "AugmentConfig::is_off")]
    pub augment: AugmentConfig,
    /// The `[vanilla.plateau]` table, given exactly with `schedule = "plateau"` (then
    /// serialised in full, so its values are part of the job identity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plateau: Option<PlateauConfig>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
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
            schedule: LrSchedule::MultiStep,
            augment: AugmentConfig::default(),
            plateau: None,
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

/// A float key: finite (`inf` or `nan` would train to all-NaN weights that still count as a
/// result) and within `range`, which `ok` tests.
fn float(key: &str, value: f64, ok: bool, range: &str) -> Result<()> {
    check(
        value.is_finite() && ok,
        key,
        &format!("must be {range}, got {value}"),
    )
}

fn positive(key: &str, value: f64) -> Result<()> {
    float(key, value, value > 0.0, "finite and > 0")
}

fn non_negative(key: &str, value: f64) -> Result<()> {
    float(key, value, value >= 0.0, "finite and >= 0")
}

fn momentum(key: &str, value: f64) -> Result<()> {
    float(key, value, (0.0..1.0).contains(&value), "in [0, 1)")
}

impl OptimizerConfig {
    pub fn validate(&self, key: &str) -> Result<()> {
        let (lr, weight_decay) = match self {
            OptimizerConfig::Sgd {
                lr,
                momentum: m,
                weight_decay,
            } => {
                momentum(&format!("{key}.momentum"), *m)?;
                (lr, weight_decay)
            }
            OptimizerConfig::Adam { lr, weight_decay } => (lr, weight_decay),
        };
        positive(&format!("{key}.lr"), *lr)?;
        non_negative(&format!("{key}.weight_decay"), *weight_decay)
    }
}

impl VanillaConfig {
    pub fn validate(&self) -> Result<()> {
        check(self.batch_size > 0, "vanilla.batch_size", "must be > 0")?;
        float(
            "vanilla.gamma",
            self.gamma,
            self.gamma > 0.0 && self.gamma <= 1.0,
            "in (0, 1]",
        )?;
        // A milestone at or past the last epoch would silently never lower the rate.
        check(
            self.milestones.windows(2).all(|w| w[0] < w[1])
                && self.milestones.iter().all(|&m| m > 0 && m < self.epochs),
            "vanilla.milestones",
            &format!(
                "must increase strictly and lie inside (0, {}) epochs (vanilla.epochs), got {:?}",
                self.epochs, self.milestones
            ),
        )?;
        check(
            self.schedule == LrSchedule::MultiStep || self.milestones.is_empty(),
            "vanilla.milestones",
            "must be empty unless schedule = \"multi_step\"",
        )?;
        check(
            (self.schedule == LrSchedule::Plateau) == self.plateau.is_some(),
            "vanilla.plateau",
            "a [vanilla.plateau] table goes with schedule = \"plateau\", and only with it",
        )?;
        if let Some(p) = &self.plateau {
            float(
                "vanilla.plateau.factor",
                p.factor,
                p.factor > 0.0 && p.factor < 1.0,
                "in (0, 1)",
            )?;
            float(
                "vanilla.plateau.threshold",
                p.threshold,
                (0.0..1.0).contains(&p.threshold),
                "in [0, 1)",
            )?;
            non_negative("vanilla.plateau.min_lr", p.min_lr)?;
        }
        check(
            self.augment.fill.iter().all(|v| v.is_finite()),
            "vanilla.augment.fill",
            "must be finite",
        )?;
        self.optimizer.validate("vanilla.optimizer")
    }

    /// The learning rate of `epoch` (0-based) for base rate `lr0`, for the schedules fixed in
    /// advance; `None` for the plateau schedule, which follows the monitored loss.
    pub fn lr(&self, lr0: f64, epoch: usize) -> Option<f64> {
        match self.schedule {
            LrSchedule::MultiStep => Some(crate::schedule::multi_step_lr(
                lr0,
                &self.milestones,
                self.gamma,
                epoch,
            )),
            LrSchedule::Cosine => Some(crate::schedule::cosine_lr(lr0, self.epochs, epoch)),
            LrSchedule::Plateau => None,
        }
    }
}

impl ProbeConfig {
    pub fn validate(&self) -> Result<()> {
        positive("ffw.probe.lr", self.lr)?;
        momentum("ffw.probe.momentum", self.momentum)?;
        non_negative("ffw.probe.weight_decay", self.weight_decay)?;
        check(self.batch_size > 0, "ffw.probe.batch_size", "must be > 0")?;
        check(self.max_epochs > 0, "ffw.probe.max_epochs", "must be > 0")?;
        float(
            "ffw.probe.threshold",
            self.threshold,
            (0.0..1.0).contains(&self.threshold),
            "in [0, 1)",
        )
    }
}

impl FfwConfig {
    pub fn validate(&self) -> Result<()> {
        non_negative("ffw.lambda", self.lambda)?;
        non_negative("ffw.alpha", self.alpha)?;
        positive("ffw.lr", self.lr)?;
        non_negative("ffw.weight_decay", self.weight_decay)?;
        check(
            self.batch_size > 1,
            "ffw.batch_size",
            "must be > 1 (MI needs a minibatch)",
        )?;
        check(self.max_epochs > 0, "ffw.max_epochs", "must be > 0")?;
        let open_unit = |key: &str, v: f64| float(key, v, v > 0.0 && v < 1.0, "in (0, 1)");
        open_unit("ffw.temperature_factor", self.temperature_factor)?;
        float(
            "ffw.temperature_threshold",
            self.temperature_threshold,
            (0.0..1.0).contains(&self.temperature_threshold),
            "in [0, 1)",
        )?;
        open_unit("ffw.min_temperature", self.min_temperature)?;
        self.probe.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(err: Result<()>, key: &str) {
        let msg = err.expect_err(key).to_string();
        assert!(msg.contains(&format!("{key}:")), "{key}: {msg}");
    }

    #[test]
    fn every_float_key_must_be_finite_and_in_range() {
        for bad in [f64::INFINITY, f64::NAN, -1.0] {
            for (key, set) in [
                (
                    "ffw.lambda",
                    (|c, v| c.lambda = v) as fn(&mut FfwConfig, f64),
                ),
                ("ffw.alpha", |c, v| c.alpha = v),
                ("ffw.lr", |c, v| c.lr = v),
                ("ffw.weight_decay", |c, v| c.weight_decay = v),
                ("ffw.temperature_factor", |c, v| c.temperature_factor = v),
                ("ffw.temperature_threshold", |c, v| {
                    c.temperature_threshold = v
                }),
                ("ffw.min_temperature", |c, v| c.min_temperature = v),
                ("ffw.probe.lr", |c, v| c.probe.lr = v),
                ("ffw.probe.momentum", |c, v| c.probe.momentum = v),
                ("ffw.probe.weight_decay", |c, v| c.probe.weight_decay = v),
                ("ffw.probe.threshold", |c, v| c.probe.threshold = v),
            ] {
                let mut c = FfwConfig::default();
                set(&mut c, bad);
                rejected(c.validate(), key);
            }
            for (key, optimizer) in [
                (
                    "vanilla.optimizer.weight_decay",
                    OptimizerConfig::Adam {
                        lr: 0.1,
                        weight_decay: bad,
                    },
                ),
                (
                    "vanilla.optimizer.lr",
                    OptimizerConfig::Adam {
                        lr: bad,
                        weight_decay: 0.0,
                    },
                ),
                (
                    "vanilla.optimizer.momentum",
                    OptimizerConfig::Sgd {
                        lr: 0.1,
                        momentum: bad,
                        weight_decay: 0.0,
                    },
                ),
            ] {
                let c = VanillaConfig {
                    optimizer,
                    ..Default::default()
                };
                rejected(c.validate(), key);
            }
            let c = VanillaConfig {
                gamma: bad,
                ..Default::default()
            };
            rejected(c.validate(), "vanilla.gamma");
        }
        FfwConfig::default().validate().unwrap();
        VanillaConfig::default().validate().unwrap();
    }

    #[test]
    fn milestones_increase_within_the_epochs() {
        for milestones in [vec![60, 40], vec![40, 40], vec![0], vec![80], vec![90]] {
            let c = VanillaConfig {
                milestones,
                ..Default::default()
            };
            rejected(c.validate(), "vanilla.milestones");
        }
        let cosine = VanillaConfig {
            schedule: LrSchedule::Cosine,
            ..Default::default()
        };
        rejected(cosine.validate(), "vanilla.milestones");
        let cosine = VanillaConfig {
            milestones: vec![],
            ..cosine
        };
        cosine.validate().unwrap();
        let lr = cosine.lr(0.1, 40).unwrap();
        assert!(lr < 0.1 && lr > 0.01);
    }

    #[test]
    fn the_plateau_table_goes_with_its_schedule_and_is_checked() {
        let plateau = VanillaConfig {
            schedule: LrSchedule::Plateau,
            milestones: vec![],
            plateau: Some(PlateauConfig::default()),
            ..Default::default()
        };
        plateau.validate().unwrap();
        assert_eq!(plateau.lr(0.1, 3), None);
        rejected(
            VanillaConfig {
                plateau: None,
                ..plateau.clone()
            }
            .validate(),
            "vanilla.plateau",
        );
        rejected(
            VanillaConfig {
                plateau: Some(PlateauConfig::default()),
                ..Default::default()
            }
            .validate(),
            "vanilla.plateau",
        );
        rejected(
            VanillaConfig {
                milestones: vec![40],
                ..plateau.clone()
            }
            .validate(),
            "vanilla.milestones",
        );
        for (key, set) in [
            (
                "vanilla.plateau.factor",
                (|p, v| p.factor = v) as fn(&mut PlateauConfig, f64),
            ),
            ("vanilla.plateau.threshold", |p, v| p.threshold = v),
            ("vanilla.plateau.min_lr", |p, v| p.min_lr = v),
        ] {
            for bad in [f64::NAN, -1.0, f64::INFINITY] {
                let mut c = plateau.clone();
                set(c.plateau.as_mut().unwrap(), bad);
                rejected(c.validate(), key);
            }
        }
        let parsed: VanillaConfig = serde_json::from_str(
            r#"{"milestones": [], "schedule": "plateau", "plateau": {"patience": 3}}"#,
        )
        .unwrap();
        assert_eq!(parsed.plateau.as_ref().unwrap().patience, 3);
        assert_eq!(parsed.plateau.as_ref().unwrap().cooldown, 5);
        let spec = serde_json::to_string(&parsed).unwrap();
        assert!(spec.contains("\"plateau\"") && spec.contains("\"min_lr\":0.001"));
    }

    /// Parsed from their keys; at their defaults, absent from the serialised spec.
    #[test]
    fn schedule_and_augment_parse_and_stay_out_of_the_default_spec() {
        let c: VanillaConfig = serde_json::from_str(
            r#"{"milestones": [], "schedule": "cosine", "augment": {"crop_padding": 4, "hflip": true}}"#,
        )
        .unwrap();
        assert_eq!(c.schedule, LrSchedule::Cosine);
        assert_eq!(c.augment.crop_padding, 4);
        assert!(c.augment.hflip);
        let default = serde_json::to_string(&VanillaConfig::default()).unwrap();
        assert!(
            !default.contains("schedule")
                && !default.contains("augment")
                && !default.contains("plateau")
        );
        assert!(serde_json::to_string(&c).unwrap().contains("\"cosine\""));
    }
}
