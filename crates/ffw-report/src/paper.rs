//! The paper's published numbers (PROTOCOL §5) and the design of its studies (PROTOCOL §6),
//! so every table shows the paper's value beside ours and the paper's full grid of cells,
//! ours missing where this sweep has not run them.
use ffw_results::Variant;

use crate::aggregate::Metric;
use crate::records::Method;

/// Published task / bias accuracy and sparsity, in percent; none where not published.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Published {
    pub task: Option<f64>,
    pub bias: Option<f64>,
    pub sparsity: Option<f64>,
}

impl Published {
    pub const NONE: Published = Published {
        task: None,
        bias: None,
        sparsity: None,
    };

    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::TaskAcc => self.task,
            Metric::BiasAcc => self.bias,
            Metric::Sparsity => self.sparsity,
        }
    }
}

const fn task(task: f64) -> Published {
    Published {
        task: Some(task),
        bias: None,
        sparsity: None,
    }
}

const fn task_bias(task: f64, bias: f64) -> Published {
    Published {
        task: Some(task),
        bias: Some(bias),
        sparsity: None,
    }
}

const fn all(task: f64, bias: f64, sparsity: f64) -> Published {
    Published {
        task: Some(task),
        bias: Some(bias),
        sparsity: Some(sparsity),
    }
}

const VANILLA: Method = Method::Vanilla;
const FFW: Method = Method::Ffw(Variant::Unstructured);
const FFW_STRUCTURED: Method = Method::Ffw(Variant::Structured);

/// Table 2: Biased MNIST, by training ρ.
pub const BIASED_MNIST: &[(f64, Method, Published)] = &[
    (0.99, VANILLA, task_bias(88.46, 98.45)),
    (0.99, FFW, all(97.79, 15.74, 46.50)),
    (0.99, FFW_STRUCTURED, all(97.63, 16.89, 45.78)),
    (0.995, VANILLA, task(74.23)),
    (0.995, FFW, task(97.30)),
    (0.997, VANILLA, task(46.04)),
    (0.997, FFW, task(89.36)),
    (0.999, VANILLA, task(10.02)),
    (0.999, FFW, task(22.29)),
];

/// Table 3: CelebA, by target attribute (bias: Male).
pub const CELEBA: &[(&str, Method, Published)] = &[
    ("BlondHair", VANILLA, task_bias(80.42, 72.22)),
    ("BlondHair", FFW, all(87.08, 50.00, 49.11)),
    ("BlondHair", FFW_STRUCTURED, all(86.95, 48.00, 49.11)),
    ("Eyeglasses", VANILLA, task_bias(98.42, 50.00)),
    ("Eyeglasses", FFW, all(98.58, 48.66, 46.58)),
];

/// Table 4: Corrupted CIFAR-10, by training ρ.
pub const CORRUPTED_CIFAR10: &[(f64, Method, Published)] = &[
    (0.995, VANILLA, task_bias(20.50, 89.67)),
    (0.995, FFW, all(51.57, 10.03, 6.93)),
    (0.99, VANILLA, task(23.90)),
    (0.99, FFW, task(58.25)),
    (0.98, VANILLA, task(29.92)),
    (0.98, FFW, task(58.80)),
    (0.95, VANILLA, task(43.03)),
    (0.95, FFW, task(61.48)),
];

/// Table 5: Multi-Color MNIST, task accuracy per group of (left, right) background colour
/// aligned (A) or conflicting (C) with the digit, their mean, the bias accuracy of each
/// side's privacy head, and sparsity.
pub struct MultiColorRow {
    pub method: Method,
    /// LA·RA, LA·RC, LC·RA, LC·RC.
    pub groups: [f64; 4],
    pub unbiased: Option<f64>,
    /// Left, right.
    pub bias: [Option<f64>; 2],
    pub sparsity: Option<f64>,
}

pub const MULTI_COLOR_GROUPS: [&str; 4] = ["LA·RA %", "LA·RC %", "LC·RA %", "LC·RC %"];

pub const MULTI_COLOR_MNIST: &[MultiColorRow] = &[
    MultiColorRow {
        method: VANILLA,
        groups: [100.0, 97.7, 30.37, 7.68],
        unbiased: Some(58.9),
        bias: [None, None],
        sparsity: None,
    },
    MultiColorRow {
        method: FFW,
        groups: [34.57, 35.17, 39.86, 36.37],
        unbiased: None,
        bias: [Some(20.27), Some(16.55)],
        sparsity: Some(16.95),
    },
];

/// The paper's study designs (PROTOCOL §6).
pub const LAMBDAS: [f64; 6] = [2.0, 5.0, 10.0, 20.0, 50.0, 200.0];
pub const RHOS: [f64; 4] = [0.99, 0.995, 0.997, 0.999];
/// Table 4's training ρ (Corrupted CIFAR-10).
pub const CIFAR_RHOS: [f64; 4] = [0.95, 0.98, 0.99, 0.995];
/// Vanilla checkpoints FFW starts from, besides the final model.
pub const CHECKPOINTS: [f64; 4] = [1.0 / 60.0, 1.0, 10.0, 40.0];
pub const MAGNITUDE_SPARSITIES: [f64; 5] = [0.5, 0.75, 0.9, 0.95, 0.975];

/// Table 2's published values at (ρ, method).
pub fn biased_mnist(rho: f64, method: Method) -> Published {
    at_rho(BIASED_MNIST, rho, method)
}

/// Table 4's published values at (ρ, method).
pub fn corrupted_cifar10(rho: f64, method: Method) -> Published {
    at_rho(CORRUPTED_CIFAR10, rho, method)
}

fn at_rho(table: &[(f64, Method, Published)], rho: f64, method: Method) -> Published {
    table
        .iter()
        .find(|(r, m, _)| crate::records::same(*r, rho) && *m == method)
        .map_or(Published::NONE, |(_, _, p)| *p)
}
