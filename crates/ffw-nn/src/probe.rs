//! The privacy head (bias probe): one linear layer from the bottleneck to the bias classes,
//! the same shape as the task head (PROTOCOL §3).
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{self, Linear};

pub struct PrivacyHead {
    linear: Linear,
}

impl PrivacyHead {
    pub fn new(feature_dim: usize, n_bias_classes: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear: layers::linear(feature_dim, n_bias_classes, vb)?,
        })
    }

    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        self.linear.forward(features)
    }
}
