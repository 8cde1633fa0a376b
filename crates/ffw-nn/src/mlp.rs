//! The Multi-Color MNIST MLP (PROTOCOL §5): flattened input, ReLU hidden layers, linear head;
//! the last hidden layer is the bottleneck.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use serde::{Deserialize, Serialize};

use crate::arch::{Backbone, GatedLayerSpec, Model, ModelSpec};
use crate::error::{NnError, Result as NnResult};
use crate::layers::{self, Linear, Mode};

pub struct Mlp {
    hidden: Vec<Linear>,
    fc: Linear,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    /// Flattened input size (3·28·28 = 2352 for Multi-Color MNIST).
    pub input: usize,
    pub hidden: Vec<usize>,
    pub n_classes: usize,
}

impl ModelSpec for MlpSpec {
    fn validate(&self) -> NnResult<()> {
        if self.input == 0
            || self.hidden.is_empty()
            || self.hidden.contains(&0)
            || self.n_classes < 2
        {
            return Err(NnError::Spec(format!(
                "mlp needs input > 0, non-empty positive hidden sizes and >= 2 classes, got {} {:?} {}",
                self.input, self.hidden, self.n_classes
            )));
        }
        Ok(())
    }

    fn build(&self, vb: VarBuilder) -> NnResult<Model> {
        Ok(Box::new(Mlp::new(
            self.input,
            &self.hidden,
            self.n_classes,
            vb,
        )?))
    }

    /// The last hidden layer.
    fn feature_dim(&self) -> usize {
        *self.hidden.last().expect("validated")
    }

    /// `fc1..fcN` then the head `fc`, none normalised.
    fn gated_layers(&self) -> Vec<GatedLayerSpec> {
        (1..=self.hidden.len())
            .map(|i| format!("fc{i}"))
            .chain(["fc".to_string()])
            .map(|name| GatedLayerSpec { name, norm: None })
            .collect()
    }
}

impl Mlp {
    pub fn new(input: usize, hidden: &[usize], n_classes: usize, vb: VarBuilder) -> Result<Self> {
        let mut layers_ = Vec::with_capacity(hidden.len());
        let mut d = input;
        for (i, &h) in hidden.iter().enumerate() {
            layers_.push(layers::linear(d, h, vb.pp(format!("fc{}", i + 1)))?);
            d = h;
        }
        let fc = layers::linear(d, n_classes, vb.pp("fc"))?;
        Ok(Self {
            hidden: layers_,
            fc,
        })
    }
}

impl Backbone for Mlp {
    fn features(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        let mut h = x.flatten_from(1)?;
        for l in &self.hidden {
            h = l.forward_act(&h, ffw_kernels::Act::Relu)?;
        }
        Ok(h)
    }

    fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.fc.forward(features)
    }
}
