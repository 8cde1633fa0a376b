//! `[model]`: the model family and its sizes, and the model it names for a benchmark.
use ffw_data::DataConfig;
use ffw_nn::Arch;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub name: ModelName,
    /// SimpleConvNet kernel size (the paper uses 7).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// MLP hidden layer widths (the paper's Multi-Color MNIST MLP: 100, 100, 100).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// ResNet-18's stem: `imagenet` (torchvision's, the authors' on every benchmark) or
    /// `cifar` (3×3, no max-pool).
    #[serde(default)]
    pub stem: ffw_nn::Stem,
    /// A safetensors file of parameters with the model's (torchvision's) names to start
    /// vanilla training from, e.g. ImageNet weights; absent = the seeded initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<std::path::PathBuf>,
}

/// The model family; each has its module in ffw-nn and its arm in [`arch`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelName {
    #[default]
    SimpleConvNet,
    Mlp,
    Resnet18,
}

fn default_kernel() -> usize {
    7
}

fn default_hidden() -> Vec<usize> {
    vec![100, 100, 100]
}

/// The model `model` names, sized for the benchmark `data`.
pub fn arch(model: &ModelConfig, data: &DataConfig) -> Arch {
    let data = data.benchmark();
    match model.name {
        ModelName::SimpleConvNet => Arch::SimpleConvNet(ffw_nn::SimpleConvNetSpec {
            kernel: model.kernel,
            n_classes: data.n_classes(),
        }),
        ModelName::Mlp => Arch::Mlp(ffw_nn::MlpSpec {
            input: data.input_len(),
            hidden: model.hidden.clone(),
            n_classes: data.n_classes(),
        }),
        ModelName::Resnet18 => Arch::Resnet18(ffw_nn::ResNet18Spec {
            n_classes: data.n_classes(),
            stem: model.stem,
            width: 64,
        }),
    }
}
