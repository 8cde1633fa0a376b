//! A seeded parameter store: the `VarBuilder` backend used to create and train models.
//!
//! candle's own `VarMap` draws initial values from an unseeded generator on the CPU, which
//! would break "same config + seed ⇒ same numbers"; this store samples every `Init` hint
//! from a ChaCha stream instead and keeps parameters in creation order.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{NnError, Result};

/// BatchNorm statistics are state, not parameters: no optimiser ever touches them.
pub fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

struct Inner {
    rng: ChaCha8Rng,
    vars: Vec<(String, Var)>,
    index: HashMap<String, usize>,
}

pub struct ParamStore {
    inner: Mutex<Inner>,
    device: Device,
}

impl ParamStore {
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rng: ChaCha8Rng::seed_from_u64(seed),
                vars: Vec::new(),
                index: HashMap::new(),
            }),
            device: device.clone(),
        }
    }

    /// A store pre-filled with `tensors` (e.g. a saved model); missing names are initialised.
    pub fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let store = Self::new(seed, device);
        {
            let mut inner = store.inner.lock().expect("param store poisoned");
            let mut names: Vec<&String> = tensors.keys().collect();
            names.sort();
            for name in names {
                let var = Var::from_tensor(&tensors[name].to_device(device)?)?;
                let i = inner.vars.len();
                inner.vars.push((name.clone(), var));
                inner.index.insert(name.clone(), i);
            }
        }
        Ok(store)
    }

    pub fn var_builder(&self) -> VarBuilder<'_> {
        VarBuilder::from_backend(Box::new(self), DType::F32, self.device.clone())
    }

    /// All variables in creation order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.inner
            .lock()
            .expect("param store poisoned")
            .vars
            .clone()
    }

    /// The variables an optimiser updates (everything but BatchNorm statistics).
    pub fn trainable(&self) -> Vec<Var> {
        self.vars()
            .into_iter()
            .filter(|(n, _)| !is_running_stat(n))
            .map(|(_, v)| v)
            .collect()
    }

    /// A detached snapshot of every tensor, e.g. to freeze the model for FFW.
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.vars()
            .into_iter()
            .map(|(n, v)| Ok((n, v.as_detached_tensor().copy()?)))
            .collect()
    }
}

/// Saves tensors as safetensors through [`ffw_data::atomic`]: a crash leaves the old file
/// or the new one, never a truncated file that a later run would trust.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    ffw_data::atomic::write_with(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp.path()).map_err(std::io::Error::other)
    })
    .map_err(|e| NnError::TensorFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|e| NnError::TensorFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn sample(init: Init, shape: &Shape, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |lo: f64, up: f64, rng: &mut ChaCha8Rng| -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(lo..up) as f32).collect()
    };
    let normal = |mean: f64, std: f64, rng: &mut ChaCha8Rng| -> Vec<f32> {
        let d = Normal::new(mean, std).expect("finite std");
        (0..n).map(|_| d.sample(rng) as f32).collect()
    };
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => uniform(lo, up, rng),
        Init::Randn { mean, stdev } => normal(mean, stdev, rng),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = match fan {
                FanInOut::FanIn => FanInOut::FanIn.for_shape(shape),
                FanInOut::FanOut => FanInOut::FanOut.for_shape(shape),
            };
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(0., std, rng),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(-bound, bound, rng)
                }
            }
        }
    }
}

impl SimpleBackend for &ParamStore {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut inner = self.inner.lock().expect("param store poisoned");
        if let Some(&i) = inner.index.get(name) {
            let t = inner.vars[i].1.as_tensor().clone();
            if t.shape() != &s {
                candle_core::bail!(
                    "parameter {name}: expected shape {s:?}, found {:?}",
                    t.shape()
                );
            }
            return Ok(t);
        }
        let data = sample(h, &s, &mut inner.rng);
        let var = Var::from_vec(data, s, dev)?;
        let var = if dtype == DType::F32 {
            var
        } else {
            Var::from_tensor(&var.to_dtype(dtype)?)?
        };
        let i = inner.vars.len();
        inner.vars.push((name.to_string(), var.clone()));
        inner.index.insert(name.to_string(), i);
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let inner = self.inner.lock().expect("param store poisoned");
        match inner.index.get(name) {
            Some(&i) => Ok(inner.vars[i].1.as_tensor().clone()),
            None => candle_core::bail!("no parameter named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner
            .lock()
            .expect("param store poisoned")
            .index
            .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_parameters_and_creation_order() -> Result<()> {
        let draw = |seed| -> Result<Vec<(String, Vec<f32>)>> {
            let store = ParamStore::new(seed, &Device::Cpu);
            let vb = store.var_builder();
            vb.get_with_hints((4, 3), "a.weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
            vb.get_with_hints(4, "a.bias", Init::Uniform { lo: -1., up: 1. })?;
            store
                .vars()
                .into_iter()
                .map(|(n, v)| Ok((n, v.flatten_all()?.to_vec1::<f32>()?)))
                .collect()
        };
        let (a, b, c) = (draw(1)?, draw(1)?, draw(2)?);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a[0].0, "a.weight");
        assert!(a[1].1.iter().all(|v| (-1.0..1.0).contains(v)));
        Ok(())
    }

    #[test]
    fn kaiming_fan_out_has_the_expected_spread() -> Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let init = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: candle_nn::init::NonLinearity::ReLU,
        };
        let w = store
            .var_builder()
            .get_with_hints((64, 32, 3, 3), "w", init)?;
        let std = w.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?;
        let expected = (2.0f32 / (64.0 * 9.0)).sqrt();
        assert!(
            (std / expected - 1.0).abs() < 0.05,
            "std {std} vs {expected}"
        );
        Ok(())
    }
}
