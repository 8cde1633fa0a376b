//! Experiment configuration (TOML): data, model, vanilla training, FFW, and the sweep axes.
//! `ffw run` uses the base values; `ffw sweep` expands every axis listed under `[sweep]`.
//! Unknown keys and out-of-range values are errors naming the key.
use std::path::{Path, PathBuf};

use ffw_data::DataConfig;
use ffw_nn::{Arch, ModelSpec, Variant};
use ffw_surgery::{FfwConfig, VanillaConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::model_config::{arch, ModelConfig};
use crate::studies::{bad, Grid, Studies, SweepSection};

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

/// Checks a benchmark, its model and its vanilla training; `section` places their keys
/// (`studies.<name>` for a study's own, empty for the base config's).
fn validate_setting(
    section: &str,
    data: &DataConfig,
    model: &ModelConfig,
    vanilla: &VanillaConfig,
) -> Result<()> {
    let named = |e: String| match section {
        "" => SweepError::Config(e),
        _ => SweepError::Config(format!("[{section}] {e}")),
    };
    data.benchmark()
        .validate()
        .map_err(|e| named(e.to_string()))?;
    arch(model, data)
        .validate()
        .map_err(|e| named(format!("model: {e}")))?;
    vanilla.validate().map_err(|e| named(e.to_string()))?;
    if vanilla.epochs == 0 {
        return Err(named("vanilla.epochs: must be > 0".into()));
    }
    Ok(())
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

    /// Checks the files under `data.dir` (their headers), and those of every study with a
    /// benchmark of its own: both splits present and non-empty; and that `model.init`, if
    /// given, is a file. Kept apart from
    /// [`RunConfig::validate`] so a config can be listed where the data is not.
    pub fn check_data(&self) -> Result<()> {
        let own = std::iter::once((String::new(), &self.data, &self.model));
        let studies = self
            .studies
            .benchmarks()
            .into_iter()
            .map(|(name, s)| (format!("studies.{name}."), &s.data, &s.model));
        for (prefix, data, model) in own.chain(studies) {
            data.benchmark()
                .check_files()
                .map_err(|e| SweepError::Config(format!("{prefix}data.dir: {e}")))?;
            if let Some(init) = model.init.as_ref().filter(|p| !p.is_file()) {
                return Err(SweepError::Config(format!(
                    "{prefix}model.init: {}: no such file",
                    init.display()
                )));
            }
        }
        Ok(())
    }

    /// The model `[model]` names, sized for the benchmark.
    pub fn arch(&self) -> Arch {
        arch(&self.model, &self.data)
    }

    pub fn validate(&self) -> Result<()> {
        validate_setting("", &self.data, &self.model, &self.vanilla)?;
        for (name, study) in self.studies.benchmarks() {
            validate_setting(
                &format!("studies.{name}"),
                &study.data,
                &study.model,
                &study.vanilla,
            )?;
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
        for grid in self.grids() {
            grid.axes.validate(&grid.section(), grid.vanilla)?;
            let (ranks, key) = (grid.ranks, &grid.ranks_key);
            if ranks == 0 {
                return Err(bad(key, "must be > 0"));
            }
            if ranks > 1 {
                let key = format!("{key} ({})", grid.section());
                let batch = grid.vanilla.batch_size.min(self.ffw.settings.batch_size);
                if batch < ranks {
                    return Err(bad(
                        &key,
                        format!("larger than the smallest minibatch ({batch})"),
                    ));
                }
            }
            let data = grid.data.benchmark();
            if !grid.axes.rho.is_empty() && !data.params().contains_key("rho") {
                return Err(bad(
                    &format!("{}.rho", grid.section()),
                    format!("{} has no rho to vary", data.name()),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a sweep whose jobs need more ranks than its `workers` (the ranks that run
    /// jobs), before any starts: such a job would wait forever.
    pub fn check_workers(&self, workers: usize) -> Result<()> {
        match self.grids().into_iter().find(|g| g.ranks > workers) {
            Some(g) => Err(bad(
                &g.ranks_key,
                format!(
                    "{} ranks per job, but the sweep has {workers} rank(s) that run jobs",
                    g.ranks
                ),
            )),
            None => Ok(()),
        }
    }

    /// The grids to run: each declared study, or `[sweep]` alone as the study "grid".
    pub fn grids(&self) -> Vec<Grid<'_>> {
        let ranks = self.sweep.ranks_per_job;
        let grid = |name, data, model, vanilla, axes| Grid {
            name,
            data,
            model,
            vanilla,
            axes,
            ranks,
            ranks_key: "sweep.ranks_per_job".into(),
        };
        let declared = self.studies.declared();
        let benchmarks = self.studies.benchmarks();
        if declared.is_empty() && benchmarks.is_empty() {
            return vec![grid(
                "grid",
                &self.data,
                &self.model,
                &self.vanilla,
                self.sweep.axes.clone(),
            )];
        }
        let own = declared.into_iter().map(|(name, axes)| {
            let axes = axes.or(&self.sweep.axes);
            grid(name, &self.data, &self.model, &self.vanilla, axes)
        });
        let other = benchmarks.into_iter().map(|(name, s)| {
            let axes = s.axes.or(&self.sweep.axes);
            match s.ranks_per_job {
                Some(ranks) => Grid {
                    ranks,
                    ranks_key: format!("studies.{name}.ranks_per_job"),
                    ..grid(name, &s.data, &s.model, &s.vanilla, axes)
                },
                None => grid(name, &s.data, &s.model, &s.vanilla, axes),
            }
        });
        own.chain(other).collect()
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
        assert_eq!(
            grids[0].axes.seeds,
            vec![0, 1],
            "studies inherit [sweep] axes"
        );
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

    #[test]
    fn a_study_on_its_own_benchmark_is_checked_under_its_name() {
        let study = "[studies.multi_color_mnist.data]\nkind = \"multi_color_mnist\"\n\
                     [studies.multi_color_mnist.model]\nname = \"mlp\"\n";
        let ok = parse(&format!("{MINIMAL}{study}")).unwrap();
        let grids = ok.grids();
        assert_eq!(grids.len(), 1);
        assert_eq!(grids[0].data.benchmark().name(), "multi_color_mnist");
        assert!(matches!(grids[0].arch(), Arch::Mlp(_)));
        let bad_data = study.replace("mnist\"\n[", "mnist\"\nseverity = 9\n[");
        let err = parse(&format!("{MINIMAL}{bad_data}")).unwrap_err();
        let err = err.to_string();
        assert!(
            err.starts_with("[studies.multi_color_mnist]") && err.contains("data.severity"),
            "{err}"
        );
        let cifar = "[studies.corrupted_cifar10.data]\nkind = \"corrupted_cifar10\"\n\
                     [studies.corrupted_cifar10.model]\nname = \"resnet18\"\n\
                     [studies.corrupted_cifar10.axes]\nrho = [0.99, 0.95]\n";
        let both = parse(&format!("{MINIMAL}{study}{cifar}")).unwrap();
        let grids = both.grids();
        let names: Vec<_> = grids.iter().map(|g| g.name).collect();
        assert_eq!(names, ["corrupted_cifar10", "multi_color_mnist"]);
        assert_eq!(grids[0].axes.rho, [0.99, 0.95]);
        assert!(matches!(grids[0].arch(), Arch::Resnet18(_)));
        let err = parse(&format!("{MINIMAL}{cifar}").replace("0.95]", "1.5]")).unwrap_err();
        assert!(
            err.to_string().contains("studies.corrupted_cifar10.rho"),
            "{err}"
        );
        let no_rho = format!("{MINIMAL}{study}[sweep]\nrho = [0.9]\n");
        let err = parse(&no_rho).unwrap_err();
        assert!(
            err.to_string()
                .contains("studies.multi_color_mnist.rho: multi_color_mnist has no rho"),
            "{err}"
        );
    }
}
