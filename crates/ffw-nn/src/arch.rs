//! Architecture specifications (serialisable, stored in checkpoints) and the built models.
use candle_core::{Result as CResult, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::mlp::{self, Mlp};
use crate::simple_conv::{self, SimpleConvNet};

/// A layer whose `weight` FFW gates. Its output units lie along the weight's first axis;
/// `norm` names the BatchNorm that normalises them, if any: a structured gate must silence
/// a unit *after* that normalisation, or the unit still emits `β − γ·μ/σ` once pruned.
#[derive(Clone, Debug, PartialEq)]
pub struct GatedLayerSpec {
    pub name: String,
    pub norm: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arch {
    SimpleConvNet {
        kernel: usize,
        n_classes: usize,
    },
    Mlp {
        input: usize,
        hidden: Vec<usize>,
        n_classes: usize,
    },
}

impl Arch {
    pub fn validate(&self) -> Result<()> {
        match self {
            Arch::SimpleConvNet { kernel, n_classes } => {
                if *kernel == 0 || kernel % 2 == 0 {
                    return Err(NnError::Spec(format!(
                        "kernel must be odd and positive, got {kernel}"
                    )));
                }
                if *n_classes < 2 {
                    return Err(NnError::Spec(format!(
                        "n_classes must be >= 2, got {n_classes}"
                    )));
                }
            }
            Arch::Mlp {
                input,
                hidden,
                n_classes,
            } => {
                if *input == 0 || hidden.is_empty() || hidden.contains(&0) || *n_classes < 2 {
                    return Err(NnError::Spec(format!(
                        "mlp needs input > 0, non-empty positive hidden sizes and >= 2 classes, got {input} {hidden:?} {n_classes}"
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn build(&self, vb: VarBuilder) -> Result<Model> {
        self.validate()?;
        Ok(match self {
            Arch::SimpleConvNet { kernel, n_classes } => {
                Model::SimpleConvNet(SimpleConvNet::new(*kernel, *n_classes, vb)?)
            }
            Arch::Mlp {
                input,
                hidden,
                n_classes,
            } => Model::Mlp(Mlp::new(*input, hidden, *n_classes, vb)?),
        })
    }

    /// Width of the bottleneck the privacy head reads.
    pub fn feature_dim(&self) -> usize {
        match self {
            Arch::SimpleConvNet { .. } => simple_conv::CHANNELS[4],
            Arch::Mlp { hidden, .. } => *hidden.last().expect("validated"),
        }
    }

    /// Layers whose `weight` FFW gates, in forward order (every conv and linear layer, the
    /// task head last), each with the BatchNorm that normalises its output.
    pub fn gated_layers(&self) -> Vec<GatedLayerSpec> {
        match self {
            Arch::SimpleConvNet { .. } => simple_conv::gated_layers(),
            Arch::Mlp { hidden, .. } => mlp::gated_layers(hidden.len()),
        }
    }
}

pub enum Model {
    SimpleConvNet(SimpleConvNet),
    Mlp(Mlp),
}

impl Model {
    /// Bottleneck features; `train` only matters for BatchNorm.
    pub fn features(&self, x: &Tensor, train: bool) -> CResult<Tensor> {
        match self {
            Model::SimpleConvNet(m) => m.features(x, train),
            Model::Mlp(m) => m.features(x),
        }
    }

    pub fn head(&self, features: &Tensor) -> CResult<Tensor> {
        match self {
            Model::SimpleConvNet(m) => m.head(features),
            Model::Mlp(m) => m.head(features),
        }
    }
}
