//! What the benchmarks made by colouring MNIST digits (Biased MNIST, Multi-Color MNIST) share:
//! the digits' directory, ten classes, 3×28×28 samples. Each says how it colours the digits;
//! [`Benchmark`] follows for all of them here, once.
use std::collections::BTreeMap;
use std::path::Path;

use crate::benchmark::Benchmark;
use crate::dataset::Splits;
use crate::error::Result;
use crate::mnist::{Mnist, N_CLASSES};

pub trait ColouredMnist {
    /// [`Benchmark::name`].
    const NAME: &'static str;
    /// The directory with the four MNIST IDX files.
    fn digits_dir(&self) -> &Path;
    /// [`Benchmark::validate`].
    fn check_settings(&self) -> Result<()>;
    /// The four splits from the loaded digits.
    fn colour_splits(&self, mnist: &Mnist, seed: u64) -> Result<Splits>;
    /// [`Benchmark::params`].
    fn varied(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }
    /// [`Benchmark::set_param`].
    fn vary(&mut self, _name: &str, _value: f64) -> bool {
        false
    }
}

impl<T: ColouredMnist> Benchmark for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn validate(&self) -> Result<()> {
        self.check_settings()
    }

    fn check_files(&self) -> Result<()> {
        crate::mnist::check_dir(self.digits_dir())
    }

    fn splits(&self, seed: u64) -> Result<Splits> {
        self.colour_splits(&crate::mnist::load_dir(self.digits_dir())?, seed)
    }

    fn n_classes(&self) -> usize {
        N_CLASSES
    }

    fn input_len(&self) -> usize {
        3 * 28 * 28
    }

    fn params(&self) -> BTreeMap<String, f64> {
        self.varied()
    }

    fn set_param(&mut self, name: &str, value: f64) -> bool {
        self.vary(name, value)
    }
}
