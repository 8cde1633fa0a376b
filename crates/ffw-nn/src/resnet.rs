//! ResNet-18 (PROTOCOL §5: Corrupted CIFAR-10 with fc → 10, CelebA with fc → 2).
//!
//! The authors build `torchvision.models.resnet18` with a new `fc` for both benchmarks, the
//! ImageNet stem (7×7/2 convolution + 3×3/2 max-pool) included, also on 32×32 CIFAR images;
//! [`Stem::Cifar`] is the 3×3/1 stem without max-pool that most CIFAR ResNets use, kept as an
//! option. Parameter names are torchvision's (`conv1.weight`, `layer1.0.downsample.0.weight`,
//! `fc.bias`, ...), so a torchvision state dict saved as safetensors loads as it is.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use ffw_kernels::Act;
use serde::{Deserialize, Serialize};

use crate::arch::{Backbone, GatedLayerSpec, Model, ModelSpec};
use crate::error::{NnError, Result as NnResult};
use crate::layers::{self, BatchNorm, Conv2d, ConvOpts, Linear, Mode};

/// The first convolution and what follows it before `layer1`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// torchvision's: 7×7 stride-2 convolution, BatchNorm, ReLU, 3×3 stride-2 max-pool.
    #[default]
    Imagenet,
    /// 3×3 stride-1 convolution, BatchNorm, ReLU, no pooling.
    Cifar,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResNet18Spec {
    pub n_classes: usize,
    #[serde(default)]
    pub stem: Stem,
    /// Channels of `layer1` (64 in ResNet-18), doubled at each later stage; smaller widths
    /// make small test models of the same structure.
    #[serde(default = "default_width")]
    pub width: usize,
}

fn default_width() -> usize {
    64
}

/// Blocks per stage and stride of each stage's first block.
const STAGES: [usize; 4] = [2, 2, 2, 2];
const STRIDES: [usize; 4] = [1, 2, 2, 2];

impl ResNet18Spec {
    fn channels(&self, stage: usize) -> usize {
        self.width << stage
    }

    /// `(prefix, in, out, stride)` of every basic block, in forward order.
    fn blocks(&self) -> Vec<(String, usize, usize, usize)> {
        let mut out = Vec::new();
        let mut cin = self.width;
        for (s, (&n, &stride)) in STAGES.iter().zip(&STRIDES).enumerate() {
            let cout = self.channels(s);
            for b in 0..n {
                let stride = if b == 0 { stride } else { 1 };
                out.push((format!("layer{}.{b}", s + 1), cin, cout, stride));
                cin = cout;
            }
        }
        out
    }
}

impl ModelSpec for ResNet18Spec {
    fn validate(&self) -> NnResult<()> {
        if self.n_classes < 2 || self.width == 0 {
            return Err(NnError::Spec(format!(
                "resnet18 needs n_classes >= 2 and width > 0, got {} and {}",
                self.n_classes, self.width
            )));
        }
        Ok(())
    }

    fn build(&self, vb: VarBuilder) -> NnResult<Model> {
        Ok(Box::new(ResNet18::new(self, vb)?))
    }

    /// The pooled output of `layer4`.
    fn feature_dim(&self) -> usize {
        self.channels(3)
    }

    /// Every convolution with the BatchNorm after it (the shortcut's `downsample.0` with
    /// `downsample.1`), in torchvision's parameter order, then the head `fc`.
    fn gated_layers(&self) -> Vec<GatedLayerSpec> {
        let normed = |conv: String, norm: String| GatedLayerSpec {
            name: conv,
            norm: Some(norm),
        };
        let mut out = vec![normed("conv1".into(), "bn1".into())];
        for (p, cin, cout, stride) in self.blocks() {
            out.push(normed(format!("{p}.conv1"), format!("{p}.bn1")));
            out.push(normed(format!("{p}.conv2"), format!("{p}.bn2")));
            if needs_downsample(cin, cout, stride) {
                out.push(normed(
                    format!("{p}.downsample.0"),
                    format!("{p}.downsample.1"),
                ));
            }
        }
        out.push(GatedLayerSpec {
            name: "fc".into(),
            norm: None,
        });
        out
    }
}

fn needs_downsample(cin: usize, cout: usize, stride: usize) -> bool {
    stride != 1 || cin != cout
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let opts = ConvOpts {
        stride,
        padding: k / 2,
        bias: false,
    };
    layers::conv2d(cin, cout, k, opts, vb)
}

/// torchvision's `BasicBlock`: two 3×3 convolutions with BatchNorm, the shortcut a strided
/// 1×1 convolution with BatchNorm where the shape changes.
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let conv1 = conv(cin, cout, 3, stride, vb.pp("conv1"))?;
        let bn1 = layers::batch_norm(cout, vb.pp("bn1"))?;
        let conv2 = conv(cout, cout, 3, 1, vb.pp("conv2"))?;
        let bn2 = layers::batch_norm(cout, vb.pp("bn2"))?;
        let downsample = if needs_downsample(cin, cout, stride) {
            let vb = vb.pp("downsample");
            Some((
                conv(cin, cout, 1, stride, vb.pp("0"))?,
                layers::batch_norm(cout, vb.pp("1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1,
            bn1,
            conv2,
            bn2,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let h = self
            .bn1
            .forward_act(&self.conv1.forward(x)?, mode, Act::Relu)?;
        let h = self
            .bn2
            .forward_act(&self.conv2.forward(&h)?, mode, Act::Identity)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_act(&conv.forward(x)?, mode, Act::Identity)?,
            None => x.clone(),
        };
        ffw_kernels::relu(&(h + shortcut)?)
    }
}

pub struct ResNet18 {
    stem: Stem,
    conv1: Conv2d,
    bn1: BatchNorm,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet18 {
    // Parameters are created in torchvision's order (stem, blocks, fc), so a seed draws them
    // in the same sequence as the state dict lists them.
    pub fn new(spec: &ResNet18Spec, vb: VarBuilder) -> Result<Self> {
        let (k, stride) = match spec.stem {
            Stem::Imagenet => (7, 2),
            Stem::Cifar => (3, 1),
        };
        let conv1 = conv(3, spec.width, k, stride, vb.pp("conv1"))?;
        let bn1 = layers::batch_norm(spec.width, vb.pp("bn1"))?;
        let blocks = spec
            .blocks()
            .into_iter()
            .map(|(p, cin, cout, stride)| BasicBlock::new(cin, cout, stride, vb.pp(p)))
            .collect::<Result<Vec<_>>>()?;
        let fc = layers::linear(spec.feature_dim(), spec.n_classes, vb.pp("fc"))?;
        Ok(Self {
            stem: spec.stem,
            conv1,
            bn1,
            blocks,
            fc,
        })
    }
}

impl Backbone for ResNet18 {
    /// The globally average-pooled output of `layer4`.
    fn features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut h = self
            .bn1
            .forward_act(&self.conv1.forward(x)?, mode, Act::Relu)?;
        if self.stem == Stem::Imagenet {
            h = ffw_kernels::max_pool2d(&h, 3, 2, 1)?;
        }
        for block in &self.blocks {
            h = block.forward(&h, mode)?;
        }
        h.mean((2, 3))
    }

    fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.fc.forward(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Arch, ParamStore};
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn spec(stem: Stem) -> ResNet18Spec {
        ResNet18Spec {
            n_classes: 10,
            stem,
            width: 64,
        }
    }

    #[test]
    fn parameters_have_torchvision_names_and_counts() -> NnResult<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        spec(Stem::Imagenet).build(store.var_builder())?;
        let vars = store.vars();
        let trainable: usize = vars
            .iter()
            .filter(|(n, _)| !crate::params::is_running_stat(n))
            .map(|(_, v)| v.elem_count())
            .sum();
        // torchvision's resnet18 has 11,689,512 parameters with fc → 1000: 512·990 + 990
        // fewer with fc → 10.
        assert_eq!(trainable, 11_689_512 - 512 * 990 - 990);
        let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "conv1.weight");
        for name in [
            "layer1.0.conv1.weight",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_var",
            "layer4.1.bn2.bias",
            "fc.weight",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert!(!names.contains(&"layer1.0.downsample.0.weight"));
        assert!(!names
            .iter()
            .any(|n| n.contains("conv") && n.ends_with("bias")));
        // Every gated layer's weight and norm exist: 1 stem + 16 block convs + 3 shortcuts + fc.
        let gated = spec(Stem::Imagenet).gated_layers();
        assert_eq!(gated.len(), 21);
        for g in &gated {
            assert!(names.contains(&format!("{}.weight", g.name).as_str()));
            if let Some(norm) = &g.norm {
                assert!(names.contains(&format!("{norm}.weight").as_str()));
            }
        }
        Ok(())
    }

    #[test]
    fn both_stems_give_pooled_features_and_logits() -> NnResult<()> {
        for (stem, side) in [(Stem::Imagenet, 32), (Stem::Cifar, 8)] {
            let s = ResNet18Spec {
                width: 4,
                ..spec(stem)
            };
            let store = ParamStore::new(1, &Device::Cpu);
            let model = Arch::Resnet18(s.clone()).build(store.var_builder())?;
            let x = Tensor::randn(0f32, 1., (2, 3, side, side), &Device::Cpu)?;
            let f = model.features(&x, Mode::Train)?;
            assert_eq!(f.dims(), [2, s.feature_dim()]);
            assert_eq!(model.head(&f)?.dims(), [2, 10]);
            // After the final ReLU and pooling every feature is non-negative.
            let min = f.min_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            assert!(min >= 0.0);
        }
        Ok(())
    }

    /// The shortcut's 1×1 convolution and its BatchNorm are one gated pair: a pruned unit
    /// is exactly zero after `downsample.1`, kept units are unchanged.
    #[test]
    fn a_pruned_shortcut_unit_is_zero_after_its_batch_norm() -> NnResult<()> {
        use crate::gate::{GateMode, GateSet};
        let dev = Device::Cpu;
        let s = ResNet18Spec {
            n_classes: 10,
            stem: Stem::Cifar,
            width: 2,
        };
        let store = ParamStore::new(2, &dev);
        s.build(store.var_builder())?;
        let mut base = store.snapshot()?;
        for (k, lo, hi) in [
            ("weight", 0.5, 1.5),
            ("bias", -1.0, 1.0),
            ("running_mean", -1.0, 1.0),
            ("running_var", 0.5, 2.0),
        ] {
            let t = Tensor::rand(lo as f32, hi as f32, 4, &dev)?;
            base.insert(format!("layer2.0.downsample.1.{k}"), t);
        }
        let gates = GateSet::zeros(&s, &base, crate::Variant::Structured, true, &dev)?;
        let layer = gates
            .layers
            .iter()
            .find(|l| l.name == "layer2.0.downsample.0")
            .expect("the shortcut is gated");
        assert_eq!(layer.norm.as_deref(), Some("layer2.0.downsample.1"));
        layer
            .m
            .set(&Tensor::new(&[0.5f32, -0.5, 0.5, 0.5], &dev)?)?;
        let x = Tensor::randn(0f32, 1., (2, 2, 6, 6), &dev)?;
        let shortcut = |params: HashMap<String, Tensor>| -> NnResult<Tensor> {
            let vb = VarBuilder::from_tensors(params, DType::F32, &dev);
            let vb = vb.pp("layer2.0.downsample");
            let conv = conv(2, 4, 1, 2, vb.pp("0"))?;
            let bn = layers::batch_norm(4, vb.pp("1"))?;
            Ok(bn.forward_act(&conv.forward(&x)?, Mode::Eval, Act::Identity)?)
        };
        let (kept, pruned) = (
            shortcut(base.clone())?,
            shortcut(gates.effective_params(&base, GateMode::Hard)?)?,
        );
        for c in 0..4 {
            let v = |t: &Tensor| -> NnResult<Vec<f32>> {
                Ok(t.narrow(1, c, 1)?.flatten_all()?.to_vec1::<f32>()?)
            };
            if c == 1 {
                assert!(v(&pruned)?.iter().all(|x| *x == 0.0));
                assert!(v(&kept)?.iter().any(|x| *x != 0.0));
            } else {
                assert_eq!(v(&pruned)?, v(&kept)?, "channel {c}");
            }
        }
        Ok(())
    }

    #[test]
    fn bad_settings_are_named() {
        let s = ResNet18Spec {
            n_classes: 1,
            ..spec(Stem::Cifar)
        };
        assert!(s.validate().unwrap_err().to_string().contains("n_classes"));
    }
}
