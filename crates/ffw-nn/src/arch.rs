//! The model seam: what FFW needs of a model ([`Backbone`]: bottleneck features and the task
//! head on them) and of its specification ([`ModelSpec`]: how to build it, the bottleneck
//! width, the gated layers with the BatchNorm after each). [`Arch`] is the serialisable spec
//! of the models ffw ships, stored in checkpoints; adding a model is a module that implements
//! both traits and one arm of [`Arch`].
use candle_core::{Result as CResult, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layers::Mode;
use crate::mlp::MlpSpec;
use crate::resnet::ResNet18Spec;
use crate::simple_conv::SimpleConvNetSpec;

/// A built model, on parameters from a `VarBuilder`.
pub trait Backbone: Send + Sync {
    /// Bottleneck features `[b, feature_dim]`; `mode` only matters for BatchNorm.
    fn features(&self, x: &Tensor, mode: Mode) -> CResult<Tensor>;
    /// Task logits from the bottleneck.
    fn head(&self, features: &Tensor) -> CResult<Tensor>;
}

pub type Model = Box<dyn Backbone>;

/// A model's specification: everything FFW, the privacy heads, magnitude pruning and the
/// per-layer sparsity need to know about it.
pub trait ModelSpec: Send + Sync {
    /// An error naming the bad setting, if any.
    fn validate(&self) -> Result<()>;
    /// The model on the parameters `vb` holds (or initialises).
    fn build(&self, vb: VarBuilder) -> Result<Model>;
    /// Width of the bottleneck the privacy heads read.
    fn feature_dim(&self) -> usize;
    /// Layers whose `weight` FFW gates, in forward order (every conv and linear layer, the
    /// task head last), each with the BatchNorm that normalises its output.
    fn gated_layers(&self) -> Vec<GatedLayerSpec>;
}

/// A layer whose `weight` FFW gates. Its output units lie along the weight's first axis;
/// `norm` names the BatchNorm that normalises them, if any: a structured gate must silence
/// a unit *after* that normalisation, or the unit still emits `β − γ·μ/σ` once pruned.
#[derive(Clone, Debug, PartialEq)]
pub struct GatedLayerSpec {
    pub name: String,
    pub norm: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Arch {
    SimpleConvNet(SimpleConvNetSpec),
    Mlp(MlpSpec),
    Resnet18(ResNet18Spec),
}

impl Arch {
    fn spec(&self) -> &dyn ModelSpec {
        match self {
            Arch::SimpleConvNet(s) => s,
            Arch::Mlp(s) => s,
            Arch::Resnet18(s) => s,
        }
    }
}

impl ModelSpec for Arch {
    fn validate(&self) -> Result<()> {
        self.spec().validate()
    }

    fn build(&self, vb: VarBuilder) -> Result<Model> {
        self.validate()?;
        self.spec().build(vb)
    }

    fn feature_dim(&self) -> usize {
        self.spec().feature_dim()
    }

    fn gated_layers(&self) -> Vec<GatedLayerSpec> {
        self.spec().gated_layers()
    }
}
