//! The authors' variant of ReBias' SimpleConvNet (PROTOCOL §5): four same-padded convs
//! 3→16→32→64→128 with BatchNorm, ReLU after the first three and tanh after the last,
//! global average pooling as the bottleneck, and a linear task head.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use ffw_kernels::Act;

use serde::{Deserialize, Serialize};

use crate::arch::{Backbone, GatedLayerSpec, Model, ModelSpec};
use crate::error::{NnError, Result as NnResult};
use crate::layers::{self, BatchNorm, Conv2d, Linear, Mode};

pub const CHANNELS: [usize; 5] = [3, 16, 32, 64, 128];

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimpleConvNetSpec {
    pub kernel: usize,
    pub n_classes: usize,
}

impl ModelSpec for SimpleConvNetSpec {
    fn validate(&self) -> NnResult<()> {
        if self.kernel == 0 || self.kernel % 2 == 0 {
            return Err(NnError::Spec(format!(
                "kernel must be odd and positive, got {}",
                self.kernel
            )));
        }
        if self.n_classes < 2 {
            return Err(NnError::Spec(format!(
                "n_classes must be >= 2, got {}",
                self.n_classes
            )));
        }
        Ok(())
    }

    fn build(&self, vb: VarBuilder) -> NnResult<Model> {
        Ok(Box::new(SimpleConvNet::new(
            self.kernel,
            self.n_classes,
            vb,
        )?))
    }

    fn feature_dim(&self) -> usize {
        CHANNELS[4]
    }

    /// `conv{i}` normalised by `bn{i}`, then the head `fc`.
    fn gated_layers(&self) -> Vec<GatedLayerSpec> {
        (1..=4)
            .map(|i| GatedLayerSpec {
                name: format!("conv{i}"),
                norm: Some(format!("bn{i}")),
            })
            .chain([GatedLayerSpec {
                name: "fc".into(),
                norm: None,
            }])
            .collect()
    }
}

pub struct SimpleConvNet {
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
    fc: Linear,
}

impl SimpleConvNet {
    pub fn new(kernel: usize, n_classes: usize, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::with_capacity(4);
        let mut bns = Vec::with_capacity(4);
        for i in 0..4 {
            let (cin, cout) = (CHANNELS[i], CHANNELS[i + 1]);
            convs.push(layers::conv2d_same(
                cin,
                cout,
                kernel,
                vb.pp(format!("conv{}", i + 1)),
            )?);
            bns.push(layers::batch_norm(cout, vb.pp(format!("bn{}", i + 1)))?);
        }
        let fc = layers::linear(CHANNELS[4], n_classes, vb.pp("fc"))?;
        Ok(Self { convs, bns, fc })
    }
}

impl Backbone for SimpleConvNet {
    /// Bottleneck features `[b, 128]`.
    fn features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            h = conv.forward(&h)?;
            h = if i == 3 {
                ffw_kernels::tanh(&bn.forward_act(&h, mode, Act::Identity)?)?
            } else {
                bn.forward_act(&h, mode, Act::Relu)?
            };
        }
        h.mean((2, 3))
    }

    fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.fc.forward(features)
    }
}
