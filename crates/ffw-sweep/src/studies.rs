//! The grids of a config: the axes `[sweep]` and each study vary, the studies (on the base
//! benchmark, or on one of their own), and each grid with the setting it varies around.
use ffw_data::DataConfig;
use ffw_nn::{Arch, Variant};
use ffw_surgery::VanillaConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::model_config::{arch, ModelConfig};

/// The axes of one grid: every listed value replaces the base config's. Empty = base value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SweepAxes {
    pub seeds: Vec<u64>,
    pub rho: Vec<f64>,
    pub lambda: Vec<f64>,
    pub vanilla_epochs: Vec<usize>,
    /// FFW variants (empty = `ffw.variants`).
    pub variants: Vec<Variant>,
    /// Vanilla checkpoints (in epochs, from `vanilla.checkpoints`) that FFW also starts
    /// from, besides the final model: the epoch ablation.
    pub at: Vec<f64>,
    /// Global magnitude-pruning sparsities of the vanilla model, scored like FFW masks.
    pub magnitude: Vec<f64>,
}

/// `[sweep]`: the default grid (and the defaults of every study), plus retries and placement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SweepSection {
    #[serde(flatten)]
    pub axes: SweepAxes,
    /// Extra attempts for a failed job before it counts as failed for good.
    pub retries: usize,
    /// Workers bound to one GPU under `--device cuda` (small models leave a GPU idle): a
    /// node may run up to this many workers per GPU (docs/GPU.md).
    pub workers_per_gpu: usize,
    /// Worker ranks that run one vanilla or FFW job together, data-parallel (docs/GPU.md);
    /// a benchmark study may set its own.
    pub ranks_per_job: usize,
}

impl Default for SweepSection {
    fn default() -> Self {
        Self {
            axes: SweepAxes::default(),
            retries: 1,
            workers_per_gpu: 1,
            ranks_per_job: 1,
        }
    }
}

/// The paper's studies (PROTOCOL §6). An axis a study leaves empty falls back to `[sweep]`'s,
/// then to the base config. Jobs several studies share run once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Studies {
    /// Table 1 / Fig. 5: FFW across λ.
    pub lambda: Option<SweepAxes>,
    /// Table 2: vanilla and FFW (both variants) across ρ.
    pub rho: Option<SweepAxes>,
    /// Table 6 / Fig. 7: FFW from vanilla checkpoints taken during training.
    pub epochs: Option<SweepAxes>,
    /// Table 7 / Fig. 6: global magnitude pruning versus FFW.
    pub magnitude: Option<SweepAxes>,
    /// Table 4 / Fig. 4: Corrupted CIFAR-10 across ρ, with its own data, model and training.
    pub corrupted_cifar10: Option<BenchmarkStudy>,
    /// Table 5: Multi-Color MNIST, with its own data, model and training.
    pub multi_color_mnist: Option<BenchmarkStudy>,
}

/// A study on a benchmark of its own: its `data`, `model` and `vanilla` replace the base
/// config's; the FFW settings are the base config's, and an axis its `axes` leave empty is
/// `[sweep]`'s.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkStudy {
    pub data: DataConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub vanilla: VanillaConfig,
    #[serde(default)]
    pub axes: SweepAxes,
    /// `[sweep] ranks_per_job` for this study's jobs (e.g. ResNet-18 on several GPUs while the
    /// MNIST jobs take one each).
    #[serde(default)]
    pub ranks_per_job: Option<usize>,
}

/// One grid of jobs: a study (or `[sweep]` alone) with the setting it varies its axes around.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid<'a> {
    pub name: &'static str,
    pub data: &'a DataConfig,
    pub model: &'a ModelConfig,
    pub vanilla: &'a VanillaConfig,
    pub axes: SweepAxes,
    /// The ranks each of its vanilla and FFW jobs runs on, and the key that set them.
    pub ranks: usize,
    pub ranks_key: String,
}

impl Grid<'_> {
    /// The key prefix of its settings in the config, for errors.
    pub(crate) fn section(&self) -> String {
        if self.name == "grid" {
            "sweep".into()
        } else {
            format!("studies.{}", self.name)
        }
    }

    pub fn arch(&self) -> Arch {
        arch(self.model, self.data)
    }
}

impl Studies {
    /// (name, axes) of every declared study of the base config's benchmark, in table order.
    pub fn declared(&self) -> Vec<(&'static str, &SweepAxes)> {
        [
            ("lambda", &self.lambda),
            ("rho", &self.rho),
            ("epochs", &self.epochs),
            ("magnitude", &self.magnitude),
        ]
        .into_iter()
        .filter_map(|(n, a)| a.as_ref().map(|a| (n, a)))
        .collect()
    }

    /// (name, study) of every declared study on a benchmark of its own.
    pub fn benchmarks(&self) -> Vec<(&'static str, &BenchmarkStudy)> {
        [
            ("corrupted_cifar10", &self.corrupted_cifar10),
            ("multi_color_mnist", &self.multi_color_mnist),
        ]
        .into_iter()
        .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
        .collect()
    }
}

impl SweepAxes {
    pub(crate) fn validate(&self, at: &str, vanilla: &VanillaConfig) -> Result<()> {
        let key = |axis: &str| format!("{at}.{axis}");
        for &r in &self.rho {
            check_rho(&key("rho"), r)?;
        }
        if let Some(l) = self.lambda.iter().find(|l| !(**l >= 0.0 && l.is_finite())) {
            return Err(bad(
                &key("lambda"),
                format!("every value must be >= 0, got {l}"),
            ));
        }
        if self.vanilla_epochs.contains(&0) {
            return Err(bad(&key("vanilla_epochs"), "every value must be > 0"));
        }
        let shortest = self
            .vanilla_epochs
            .iter()
            .copied()
            .min()
            .unwrap_or(vanilla.epochs);
        for &c in &vanilla.checkpoints {
            if !(c > 0.0 && c < shortest as f64) {
                return Err(bad(
                    "vanilla.checkpoints",
                    format!("{c} is not inside (0, {shortest}) epochs of training"),
                ));
            }
        }
        if let Some(a) = self.at.iter().find(|a| !vanilla.checkpoints.contains(a)) {
            return Err(bad(
                &key("at"),
                format!(
                    "{a} is not one of vanilla.checkpoints {:?}",
                    vanilla.checkpoints
                ),
            ));
        }
        if let Some(m) = self.magnitude.iter().find(|m| !(**m > 0.0 && **m < 1.0)) {
            return Err(bad(
                &key("magnitude"),
                format!("sparsities must be in (0, 1), got {m}"),
            ));
        }
        Ok(())
    }

    /// These axes with every empty one taken from `defaults`.
    pub fn or(&self, defaults: &SweepAxes) -> SweepAxes {
        fn pick<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
            if a.is_empty() { b } else { a }.to_vec()
        }
        SweepAxes {
            seeds: pick(&self.seeds, &defaults.seeds),
            rho: pick(&self.rho, &defaults.rho),
            lambda: pick(&self.lambda, &defaults.lambda),
            vanilla_epochs: pick(&self.vanilla_epochs, &defaults.vanilla_epochs),
            variants: pick(&self.variants, &defaults.variants),
            at: pick(&self.at, &defaults.at),
            magnitude: pick(&self.magnitude, &defaults.magnitude),
        }
    }
}

pub(crate) fn bad(key: &str, msg: impl std::fmt::Display) -> SweepError {
    SweepError::Config(format!("{key}: {msg}"))
}

fn check_rho(key: &str, rho: f64) -> Result<()> {
    if (0.0..=1.0).contains(&rho) {
        Ok(())
    } else {
        Err(bad(key, format!("must be in [0, 1], got {rho}")))
    }
}
