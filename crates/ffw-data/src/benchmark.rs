//! The dataset seam: a benchmark is its settings (one arm of [`DataConfig`], the `[data]`
//! section of a config) and what they build: the four splits, with the task and bias labels
//! and the aligned/conflicting groups. Adding a benchmark is a module implementing
//! [`Benchmark`] and one arm here; the sweep, FFW and the report only see this trait.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::biased_mnist::BiasedMnistConfig;
use crate::celeba::CelebaConfig;
use crate::corrupted_cifar10::CorruptedCifar10Config;
use crate::dataset::Splits;
use crate::error::Result;
use crate::folder::FolderConfig;
use crate::multi_color_mnist::MultiColorMnistConfig;

pub trait Benchmark {
    /// Its name in results, listings and tables, e.g. `biased_mnist`.
    fn name(&self) -> &'static str;
    /// Checks every setting; an error names the key (`data.<key>`).
    fn validate(&self) -> Result<()>;
    /// Checks the files the splits are built from (their headers), naming a bad one.
    fn check_files(&self) -> Result<()>;
    /// The biased train set and the unbiased sets; `seed` draws every random choice.
    fn splits(&self, seed: u64) -> Result<Splits>;
    /// Task classes.
    fn n_classes(&self) -> usize;
    /// Values in one input sample (a flat model's input width).
    fn input_len(&self) -> usize;
    /// The settings a sweep axis can vary, by name (Biased MNIST's `rho`): with the name,
    /// what records, tables and studies know a dataset by. Empty when there is none.
    fn params(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }
    /// The attributes it learns and is biased by where a config chooses them by name
    /// (CelebA's `target` and `bias`), by key: with the name and params, what records and
    /// tables know a dataset by. Empty when there is none.
    fn attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// Sets the setting `name` of [`Benchmark::params`]; false if the benchmark has none.
    fn set_param(&mut self, _name: &str, _value: f64) -> bool {
        false
    }
    /// For labels that are names (a user's CSV): each column's class names in class order,
    /// which results record. Empty where classes are plain numbers.
    fn label_names(&self) -> Result<BTreeMap<String, Vec<String>>> {
        Ok(BTreeMap::new())
    }
    /// Every problem found in the data, one line each (`ffw check-data`); empty if usable.
    /// Benchmarks that do not look further than their file check report that.
    fn problems(&self) -> Result<Vec<String>> {
        self.check_files().map(|()| Vec::new())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataConfig {
    BiasedMnist(BiasedMnistConfig),
    MultiColorMnist(MultiColorMnistConfig),
    CorruptedCifar10(CorruptedCifar10Config),
    Celeba(CelebaConfig),
    Folder(FolderConfig),
}

impl DataConfig {
    pub fn benchmark(&self) -> &dyn Benchmark {
        match self {
            DataConfig::BiasedMnist(b) => b,
            DataConfig::MultiColorMnist(b) => b,
            DataConfig::CorruptedCifar10(b) => b,
            DataConfig::Celeba(b) => b,
            DataConfig::Folder(b) => b,
        }
    }

    fn benchmark_mut(&mut self) -> &mut dyn Benchmark {
        match self {
            DataConfig::BiasedMnist(b) => b,
            DataConfig::MultiColorMnist(b) => b,
            DataConfig::CorruptedCifar10(b) => b,
            DataConfig::Celeba(b) => b,
            DataConfig::Folder(b) => b,
        }
    }

    /// A copy with setting `name` at `value`; `None` if the benchmark has no such setting.
    pub fn with_param(&self, name: &str, value: f64) -> Option<Self> {
        let mut d = self.clone();
        d.benchmark_mut().set_param(name, value).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_section_picks_the_benchmark_by_kind() {
        let d: DataConfig =
            toml::from_str("kind = \"multi_color_mnist\"\nleft_skew = 0.02\n").unwrap();
        assert_eq!(d.benchmark().name(), "multi_color_mnist");
        assert!(d.benchmark().params().is_empty());
        assert_eq!(d.with_param("rho", 0.9), None);
        let d: DataConfig = toml::from_str("kind = \"biased_mnist\"\nrho = 0.7\n").unwrap();
        let rho = |d: &DataConfig| d.benchmark().params().get("rho").copied();
        assert_eq!(rho(&d), Some(0.7));
        assert_eq!(rho(&d.with_param("rho", 0.9).unwrap()), Some(0.9));
        assert_eq!(d.with_param("severity", 2.0), None);
        let d: DataConfig =
            toml::from_str("kind = \"corrupted_cifar10\"\nsource = \"prebuilt\"\nrho = 0.995\n")
                .unwrap();
        assert_eq!(d.benchmark().name(), "corrupted_cifar10");
        assert_eq!(rho(&d.with_param("rho", 0.95).unwrap()), Some(0.95));
        assert_eq!(d.benchmark().input_len(), 3072);
        let d: DataConfig =
            toml::from_str("kind = \"celeba\"\ntarget = \"Eyeglasses\"\nimage_size = 64\n")
                .unwrap();
        assert_eq!(d.benchmark().name(), "celeba");
        assert_eq!(
            (d.benchmark().n_classes(), d.benchmark().input_len()),
            (2, 3 * 64 * 64)
        );
        assert_eq!(d.with_param("rho", 0.9), None);
        let d: DataConfig = toml::from_str(
            "kind = \"folder\"\ndir = \"x\"\nbias_columns = [\"bg\"]\nlabels = [\"a\", \"b\", \"c\"]\n\
             [bias_labels]\nbg = [\"u\", \"v\"]\n",
        )
        .unwrap();
        // Every class listed: the config is complete without reading the CSV.
        assert_eq!(d.benchmark().n_classes(), 3);
        d.benchmark().validate().unwrap();
        let err = toml::from_str::<DataConfig>("kind = \"biased_mnist\"\nrhoo = 0.7\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rhoo"), "{err}");
    }
}
