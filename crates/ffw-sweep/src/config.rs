//! Experiment configuration (TOML): data, model, vanilla training, FFW, and the sweep axes.
//! `ffw run` uses the base values; `ffw sweep` expands every axis listed under `[sweep]`.
//! Unknown keys and out-of-range values are errors naming the key.
use std::path::{Path, PathBuf};

use ffw_data::DataConfig;
use ffw_nn::{Arch, ModelSpec, Variant};
use ffw_surgery::{FfwConfig, VanillaConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
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
    #[serde(default)]
    pub sweep: SweepSection,
    /// The paper's studies, each a grid of its own over the shared base config; without
    /// any, `[sweep]` is the one grid.
    #[serde(default)]
    pub studies: Studies,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub name: ModelName,
    /// SimpleConvNet kernel size (the paper uses 7).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// MLP hidden layer widths (the paper's Multi-Color MNIST MLP: 100, 100, 100).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// ResNet-18's stem: `imagenet` (torchvision's, the authors' on every benchmark) or
    /// `cifar` (3×3, no max-pool).
    #[serde(default)]
    pub stem: ffw_nn::Stem,
}

/// The model family; each has its module in ffw-nn and its arm in [`RunConfig::arch`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelName {
    #[default]
    SimpleConvNet,
    Mlp,
    Resnet18,
}

fn default_kernel() -> usize {
    7
}

fn default_hidden() -> Vec<usize> {
    vec![100, 100, 100]
}

/// FFW settings plus the variants to run on the same vanilla model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
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
}

impl Default for SweepSection {
    fn default() -> Self {
        Self {
            axes: SweepAxes::default(),
            retries: 1,
            workers_per_gpu: 1,
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
}

impl Studies {
    /// (name, axes) of every declared study, in table order.
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
}

impl SweepAxes {
    fn validate(&self, at: &str, vanilla: &VanillaConfig) -> Result<()> {
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

/// The wrong key of `[ffw]`, `[ffw.probe]` or `[sweep]`, with its line, if one of them
/// fails to deserialise: serde's `flatten` (which those sections use) loses the key and
/// leaves toml pointing at the section header. Each key is deserialised alone to find it.
fn flattened_key_error(text: &str) -> Option<String> {
    let doc: toml::Table = text.parse().ok()?;
    let spans = toml_edit::ImDocument::parse(text).ok()?;
    let single = |key: &str, value: &toml::Value| {
        toml::Value::Table(toml::Table::from_iter([(key.to_string(), value.clone())]))
    };
    for section in ["ffw", "sweep"] {
        let Some(toml::Value::Table(table)) = doc.get(section) else {
            continue;
        };
        for (key, value) in table {
            // Within `[ffw.probe]`, one probe key at a time.
            let entries: Vec<(Vec<&str>, toml::Value)> = match value {
                toml::Value::Table(probe) if section == "ffw" && key == "probe" => probe
                    .iter()
                    .map(|(k, v)| (vec![section, "probe", k.as_str()], single(k, v)))
                    .collect(),
                _ => vec![(vec![section, key.as_str()], value.clone())],
            };
            for (path, value) in entries {
                let alone = match path.as_slice() {
                    [_, "probe", _] => single("probe", &value),
                    _ => single(key, &value),
                };
                let error = if section == "ffw" {
                    alone.try_into::<FfwSection>().err()
                } else {
                    alone.try_into::<SweepSection>().err()
                };
                if let Some(e) = error {
                    let mut item = spans.as_item();
                    for k in &path {
                        item = item.get(k)?;
                    }
                    let line = text[..item.span()?.start].matches('\n').count() + 1;
                    return Some(format!("{} (line {line}): {}", path.join("."), e.message()));
                }
            }
        }
    }
    None
}

fn bad(key: &str, msg: impl std::fmt::Display) -> SweepError {
    SweepError::Config(format!("{key}: {msg}"))
}

fn check_rho(key: &str, rho: f64) -> Result<()> {
    if (0.0..=1.0).contains(&rho) {
        Ok(())
    } else {
        Err(bad(key, format!("must be in [0, 1], got {rho}")))
    }
}

impl RunConfig {
    /// Reads, parses and validates; every error names the file.
    pub fn load(path: &Path) -> Result<Self> {
        let at = |e: SweepError| SweepError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| at(SweepError::Config(e.to_string())))?;
        Self::parse(&text).map_err(at)
    }

    /// Parses and validates the text of a config file.
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| {
            SweepError::Config(flattened_key_error(text).unwrap_or_else(|| e.to_string()))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the files under `data.dir` (their headers): both splits present and non-empty.
    /// Kept apart from [`RunConfig::validate`] so a config can be listed where the data is not.
    pub fn check_data(&self) -> Result<()> {
        self.data
            .benchmark()
            .check_files()
            .map_err(|e| SweepError::Config(format!("data.dir: {e}")))
    }

    /// The model `[model]` names, sized for the benchmark.
    pub fn arch(&self) -> Arch {
        let data = self.data.benchmark();
        match self.model.name {
            ModelName::SimpleConvNet => Arch::SimpleConvNet(ffw_nn::SimpleConvNetSpec {
                kernel: self.model.kernel,
                n_classes: data.n_classes(),
            }),
            ModelName::Mlp => Arch::Mlp(ffw_nn::MlpSpec {
                input: data.input_len(),
                hidden: self.model.hidden.clone(),
                n_classes: data.n_classes(),
            }),
            ModelName::Resnet18 => Arch::Resnet18(ffw_nn::ResNet18Spec {
                n_classes: data.n_classes(),
                stem: self.model.stem,
                width: 64,
            }),
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.data
            .benchmark()
            .validate()
            .map_err(|e| SweepError::Config(e.to_string()))?;
        self.arch().validate().map_err(|e| bad("model", e))?;
        self.vanilla.validate()?;
        if self.vanilla.epochs == 0 {
            return Err(bad("vanilla.epochs", "must be > 0"));
        }
        if self.ffw.variants.is_empty() {
            return Err(bad(
                "ffw.variants",
                "name at least one of \"unstructured\", \"structured\"",
            ));
        }
        self.ffw.settings.validate()?;
        self.sweep.axes.validate("sweep", &self.vanilla)?;
        if self.sweep.workers_per_gpu == 0 {
            return Err(bad("sweep.workers_per_gpu", "must be > 0"));
        }
        for (name, axes) in self.studies.declared() {
            axes.validate(&format!("studies.{name}"), &self.vanilla)?;
        }
        let data = self.data.benchmark();
        for (name, axes) in self.grids() {
            if !axes.rho.is_empty() && data.rho().is_none() {
                let section = if name == "grid" {
                    "sweep".into()
                } else {
                    format!("studies.{name}")
                };
                return Err(bad(
                    &format!("{section}.rho"),
                    format!("{} has no rho to vary", data.name()),
                ));
            }
        }
        Ok(())
    }

    /// The grids to run: each declared study, or `[sweep]` alone as the study "grid".
    pub fn grids(&self) -> Vec<(&'static str, SweepAxes)> {
        let declared = self.studies.declared();
        if declared.is_empty() {
            vec![("grid", self.sweep.axes.clone())]
        } else {
            declared
                .into_iter()
                .map(|(n, a)| (n, a.or(&self.sweep.axes)))
                .collect()
        }
    }

    /// The output directory: `--output`, else the config's `output`, else results/<stem>.
    pub fn output_dir(&self, config_path: &Path, cli: Option<PathBuf>) -> PathBuf {
        cli.or_else(|| self.output.clone()).unwrap_or_else(|| {
            let stem = config_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            PathBuf::from("results").join(stem)
        })
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
        RunConfig::parse(text)
    }

    #[test]
    fn defaults_are_the_papers() {
        let cfg = parse(MINIMAL).unwrap();
        assert_eq!(cfg.vanilla, VanillaConfig::default());
        assert_eq!(cfg.ffw.settings.lambda, 10.0);
        assert_eq!(cfg.ffw.variants, vec![Variant::Unstructured]);
        assert_eq!(cfg.sweep, SweepSection::default());
    }

    #[test]
    fn resnet18_is_named_with_its_stem_and_sized_for_the_data() {
        let cfg =
            parse(&MINIMAL.replace("kernel = 3", "name = \"resnet18\"\nstem = \"cifar\"")).unwrap();
        let Arch::Resnet18(spec) = cfg.arch() else {
            panic!("{:?}", cfg.arch())
        };
        assert_eq!(
            (spec.stem, spec.n_classes, spec.width),
            (ffw_nn::Stem::Cifar, 10, 64)
        );
        let cfg = parse(&MINIMAL.replace("kernel = 3", "name = \"resnet18\"")).unwrap();
        assert!(matches!(cfg.arch(), Arch::Resnet18(s) if s.stem == ffw_nn::Stem::Imagenet));
        let err = parse(&MINIMAL.replace("kernel = 3", "name = \"resnet18\"\nstem = \"tiny\""))
            .unwrap_err();
        assert!(err.to_string().contains("tiny"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse(&format!("{MINIMAL}\n[ffw]\nlambdaa = 3\n")).unwrap_err();
        assert!(err.to_string().contains("lambdaa"), "{err}");
        let err = parse(&MINIMAL.replace("kernel = 3", "kernel = 3\nwidth = 2")).unwrap_err();
        assert!(err.to_string().contains("width"), "{err}");
        let err = parse(&format!("{MINIMAL}\n[sweep]\nlambdas = [1]\n")).unwrap_err();
        assert!(err.to_string().contains("lambdas"), "{err}");
        let err = parse(&MINIMAL.replace("biased_mnist", "cifar")).unwrap_err();
        assert!(err.to_string().contains("cifar"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let err = parse(&MINIMAL.replace("rho = 0.99", "rho = 1.5")).unwrap_err();
        assert!(err.to_string().contains("data.rho"), "{err}");
        let err = parse(&format!("{MINIMAL}\n[ffw]\nlambda = -1\n")).unwrap_err();
        assert!(err.to_string().contains("ffw.lambda"), "{err}");
        let err = parse(&MINIMAL.replace("kernel = 3", "kernel = 4")).unwrap_err();
        assert!(err.to_string().contains("kernel"), "{err}");
        let err = parse(&format!("{MINIMAL}\n[sweep]\nrho = [0.9, 2.0]\n")).unwrap_err();
        assert!(err.to_string().contains("sweep.rho"), "{err}");
        let err = parse(&format!("{MINIMAL}\n[sweep]\nworkers_per_gpu = 0\n")).unwrap_err();
        assert!(err.to_string().contains("sweep.workers_per_gpu"), "{err}");
    }

    #[test]
    fn wrong_types_in_flattened_sections_name_the_key_and_line() {
        for (section, needle) in [
            ("[ffw]\nlambda = 3\nlr = \"fast\"\n", "ffw.lr (line 10)"),
            (
                "[ffw]\nlambda = 3\n[ffw.probe]\nlr = 0.1\npatience = 1.5\n",
                "ffw.probe.patience (line 12)",
            ),
            ("[ffw]\nprobe = { lr = \"x\" }\n", "ffw.probe.lr (line 9)"),
            (
                "[sweep]\nretries = 1\nseeds = [\"a\"]\n",
                "sweep.seeds (line 10)",
            ),
            ("[sweep]\nretries = -1\n", "sweep.retries (line 9)"),
        ] {
            let err = parse(&format!("{MINIMAL}{section}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        // Other sections keep toml's own message, which names the line.
        let err = parse(&MINIMAL.replace("kernel = 3", "kernel = \"3\"")).unwrap_err();
        assert!(err.to_string().contains("line 7"), "{err}");
    }

    #[test]
    fn non_finite_values_are_named() {
        for (section, key) in [
            ("[ffw]\nlr = inf\n", "ffw.lr"),
            ("[ffw]\nalpha = inf\n", "ffw.alpha"),
            ("[ffw]\nweight_decay = nan\n", "ffw.weight_decay"),
            (
                "[ffw.probe]\nweight_decay = inf\n",
                "ffw.probe.weight_decay",
            ),
            ("[vanilla]\ngamma = nan\n", "vanilla.gamma"),
            ("[vanilla]\nmilestones = [60, 40]\n", "vanilla.milestones"),
            ("[sweep]\nlambda = [nan]\n", "sweep.lambda"),
            ("[sweep]\nrho = [nan]\n", "sweep.rho"),
            ("[sweep]\nmagnitude = [nan]\n", "sweep.magnitude"),
        ] {
            let err = parse(&format!("{MINIMAL}{section}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{key}:")), "{key}: {err}");
        }
        let err = parse(&MINIMAL.replace("rho = 0.99", "rho = nan")).unwrap_err();
        assert!(err.to_string().contains("data.rho:"), "{err}");
    }

    #[test]
    fn studies_are_checked_by_name() {
        let base =
            format!("{MINIMAL}\n[vanilla]\nepochs = 4\nmilestones = [3]\ncheckpoints = [0.5, 2]\n");
        let ok = parse(&format!(
            "{base}[sweep]\nseeds = [0, 1]\n[studies.epochs]\nat = [0.5, 2]\n[studies.magnitude]\nmagnitude = [0.5, 0.9]\n"
        ))
        .unwrap();
        let grids = ok.grids();
        assert_eq!(grids.len(), 2);
        assert_eq!(grids[0].1.seeds, vec![0, 1], "studies inherit [sweep] axes");
        let err = parse(&format!("{base}[studies.lamda]\nlambda = [1]\n")).unwrap_err();
        assert!(err.to_string().contains("lamda"), "{err}");
        let err = parse(&format!("{base}[studies.epochs]\nat = [1.0]\n")).unwrap_err();
        assert!(err.to_string().contains("studies.epochs.at"), "{err}");
        let err = parse(&format!("{base}[studies.magnitude]\nmagnitude = [1.0]\n")).unwrap_err();
        assert!(
            err.to_string().contains("studies.magnitude.magnitude"),
            "{err}"
        );
        let err = parse(&base.replace("[0.5, 2]", "[0.5, 4]")).unwrap_err();
        assert!(err.to_string().contains("vanilla.checkpoints"), "{err}");
        let err = parse(&format!("{base}[sweep]\nretries = 2\nrho = [3.0]\n")).unwrap_err();
        assert!(err.to_string().contains("sweep.rho"), "{err}");
    }
}
