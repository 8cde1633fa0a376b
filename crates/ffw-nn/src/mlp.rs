//! The Multi-Color MNIST MLP (PROTOCOL §5): flattened input, ReLU hidden layers, linear head;
//! the last hidden layer is the bottleneck.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::arch::GatedLayerSpec;
use crate::layers::{self, Linear};

pub struct Mlp {
    hidden: Vec<Linear>,
    fc: Linear,
}

/// Gated layers for a given depth: `fc1..fcN` then the head `fc`, none normalised.
pub fn gated_layers(n_hidden: usize) -> Vec<GatedLayerSpec> {
    (1..=n_hidden)
        .map(|i| format!("fc{i}"))
        .chain(["fc".to_string()])
        .map(|name| GatedLayerSpec { name, norm: None })
        .collect()
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

    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.flatten_from(1)?;
        for l in &self.hidden {
            h = l.forward_act(&h, ffw_kernels::Act::Relu)?;
        }
        Ok(h)
    }

    pub fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.fc.forward(features)
    }
}
