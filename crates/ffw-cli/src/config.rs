//! The run configuration (TOML): data, model, vanilla training and FFW sections. Unknown
//! keys and out-of-range values are errors naming the key.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ffw_data::biased_mnist::BiasedMnistConfig;
use ffw_nn::{Arch, Variant};
use ffw_surgery::{FfwConfig, VanillaConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub seed: u64,
    /// Output directory; default results/<config file stem>.
    pub output: Option<PathBuf>,
    pub data: DataConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub vanilla: VanillaConfig,
    #[serde(default)]
    pub ffw: FfwSection,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    BiasedMnist {
        /// Directory with the four MNIST IDX files (raw or .gz).
        dir: PathBuf,
        rho: f64,
        n_train: Option<usize>,
        #[serde(default = "default_unbiased")]
        n_unbiased_train: usize,
        #[serde(default = "default_unbiased")]
        n_unbiased_val: usize,
        n_test: Option<usize>,
        #[serde(default = "default_unbiased_rho")]
        unbiased_rho: f64,
    },
}

fn default_unbiased() -> usize {
    10_000
}

fn default_unbiased_rho() -> f64 {
    0.1
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// SimpleConvNet kernel size (the paper uses 7).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
}

fn default_kernel() -> usize {
    7
}

/// FFW settings plus the variants to run on the same vanilla model.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FfwSection {
    pub variants: Vec<Variant>,
    #[serde(flatten)]
    pub settings: FfwConfig,
}

impl Default for FfwSection {
    fn default() -> Self {
        Self {
            variants: vec![Variant::Unstructured],
            settings: FfwConfig::default(),
        }
    }
}

impl DataConfig {
    pub fn biased_mnist(&self) -> (PathBuf, BiasedMnistConfig) {
        match self {
            DataConfig::BiasedMnist {
                dir,
                rho,
                n_train,
                n_unbiased_train,
                n_unbiased_val,
                n_test,
                unbiased_rho,
            } => (
                dir.clone(),
                BiasedMnistConfig {
                    rho: *rho,
                    n_train: *n_train,
                    n_unbiased_train: *n_unbiased_train,
                    n_unbiased_val: *n_unbiased_val,
                    n_test: *n_test,
                    unbiased_rho: *unbiased_rho,
                },
            ),
        }
    }
}

impl RunConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let cfg: RunConfig =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        cfg.validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(cfg)
    }

    pub fn arch(&self) -> Arch {
        Arch::SimpleConvNet {
            kernel: self.model.kernel,
            n_classes: ffw_data::mnist::N_CLASSES,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let DataConfig::BiasedMnist {
            rho,
            n_unbiased_train,
            n_unbiased_val,
            unbiased_rho,
            n_train,
            n_test,
            ..
        } = &self.data;
        if !(0.0..=1.0).contains(rho) {
            bail!("data.rho: must be in [0, 1], got {rho}");
        }
        if !(0.0..=1.0).contains(unbiased_rho) {
            bail!("data.unbiased_rho: must be in [0, 1], got {unbiased_rho}");
        }
        for (key, v) in [
            ("data.n_unbiased_train", Some(*n_unbiased_train)),
            ("data.n_unbiased_val", Some(*n_unbiased_val)),
            ("data.n_train", *n_train),
            ("data.n_test", *n_test),
        ] {
            if v == Some(0) {
                bail!("{key}: must be > 0");
            }
        }
        self.arch().validate().context("model")?;
        self.vanilla.validate()?;
        if self.vanilla.epochs == 0 {
            bail!("vanilla.epochs: must be > 0");
        }
        if self.ffw.variants.is_empty() {
            bail!("ffw.variants: name at least one of \"unstructured\", \"structured\"");
        }
        self.ffw.settings.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [data]
        kind = "biased_mnist"
        dir = "data/mnist"
        rho = 0.99
        [model]
        kernel = 3
    "#;

    fn parse(text: &str) -> Result<RunConfig> {
        let cfg: RunConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn defaults_are_the_papers() {
        let cfg = parse(MINIMAL).unwrap();
        assert_eq!(cfg.vanilla, VanillaConfig::default());
        assert_eq!(cfg.ffw.settings.lambda, 10.0);
        assert_eq!(cfg.ffw.variants, vec![Variant::Unstructured]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse(&format!("{MINIMAL}\n[ffw]\nlambdaa = 3\n")).unwrap_err();
        assert!(format!("{err:#}").contains("lambdaa"), "{err:#}");
        let err = parse(&MINIMAL.replace("kernel = 3", "kernel = 3\nwidth = 2")).unwrap_err();
        assert!(format!("{err:#}").contains("width"), "{err:#}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let err = parse(&MINIMAL.replace("rho = 0.99", "rho = 1.5")).unwrap_err();
        assert!(format!("{err:#}").contains("data.rho"), "{err:#}");
        let err = parse(&format!("{MINIMAL}\n[ffw]\nlambda = -1\n")).unwrap_err();
        assert!(format!("{err:#}").contains("ffw.lambda"), "{err:#}");
        let err = parse(&MINIMAL.replace("kernel = 3", "kernel = 4")).unwrap_err();
        assert!(format!("{err:#}").contains("kernel"), "{err:#}");
    }
}
