//! How one model (vanilla, pruned or gated) scores: task and bias accuracy per unbiased split,
//! and how much of it is pruned.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SplitScores {
    pub task_acc: f64,
    /// One entry per bias attribute: accuracy of the privacy head.
    pub bias_acc: Vec<f64>,
    /// One entry per bias attribute: mean minibatch MI between bias and the head's output.
    pub mi: Vec<f64>,
    /// One entry per bias attribute: task accuracy where the bias agrees with the label, and
    /// where it does not (how much the model leans on the shortcut); `None` where the split
    /// has no such sample.
    #[serde(default)]
    pub aligned_acc: Vec<Option<f64>>,
    #[serde(default)]
    pub conflicting_acc: Vec<Option<f64>>,
    /// Task accuracy per aligned/conflicting pattern over all attributes (see
    /// `ffw_surgery::encode::group_accuracies` for the order); `None` for an empty group.
    #[serde(default)]
    pub groups: Vec<Option<f64>>,
    /// Mean accuracy of the non-empty groups: Multi-Color MNIST's "unbiased" accuracy.
    #[serde(default)]
    pub unbiased_acc: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MaskReport {
    pub val: SplitScores,
    pub test: SplitScores,
    pub sparsity: Option<Sparsity>,
    /// Epochs the privacy heads took to plateau (one entry per head; they stop together).
    pub probe_epochs: Vec<usize>,
    /// The model's validation task accuracy is within [`COLLAPSE_MARGIN`] of chance: it
    /// has lost the task (typically it answers one class), whatever its bias accuracy says.
    #[serde(default)]
    pub collapsed: bool,
}

/// How close to chance (1 / classes) validation task accuracy must be to call a model
/// collapsed: 2 points.
pub const COLLAPSE_MARGIN: f64 = 0.02;

impl MaskReport {
    /// Mean validation bias accuracy over attributes (the best-intermediate criterion).
    pub fn val_bias_acc(&self) -> f64 {
        self.val.bias_acc.iter().sum::<f64>() / self.val.bias_acc.len().max(1) as f64
    }
}

/// Pruned and total gated weights of one layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LayerSparsity {
    pub layer: String,
    pub pruned: usize,
    pub total: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Sparsity {
    /// Zeroed weights / all gated weights.
    pub global: f64,
    pub per_layer: Vec<LayerSparsity>,
}

impl Sparsity {
    pub fn from_layers(per_layer: Vec<LayerSparsity>) -> Self {
        let pruned: usize = per_layer.iter().map(|l| l.pruned).sum();
        let total: usize = per_layer.iter().map(|l| l.total).sum();
        let global = if total == 0 {
            0.0
        } else {
            pruned as f64 / total as f64
        };
        Self { global, per_layer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(pruned: usize, total: usize) -> LayerSparsity {
        LayerSparsity {
            layer: "l".into(),
            pruned,
            total,
        }
    }

    #[test]
    fn global_sparsity_weighs_layers_by_their_size() {
        // 1/4 and 9/12 pruned: 10/16 of all weights, not the mean of the two fractions.
        let s = Sparsity::from_layers(vec![layer(1, 4), layer(9, 12)]);
        assert_eq!(s.global, 10.0 / 16.0);
        // No gated weight: nothing pruned rather than NaN.
        assert_eq!(Sparsity::from_layers(vec![]).global, 0.0);
    }
}
