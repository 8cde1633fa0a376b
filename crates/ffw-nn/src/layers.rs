//! Layer constructors with PyTorch's default initialisations, so that a model built here
//! starts from the same distribution as the authors' PyTorch models.
use std::sync::Arc;

use candle_core::{Module, Result, Tensor, Var};
use candle_nn::init::{FanInOut, Init, NonLinearity, NormalOrUniform};
use candle_nn::VarBuilder;
use ffw_kernels::batch_norm::GroupSum;
use ffw_kernels::{channel_affine, Act};

/// `nn.Linear`: weight and bias uniform in ±1/sqrt(fan_in) (kaiming_uniform with a = √5).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let bound = 1. / (in_dim as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let w = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let b = vb.get_with_hints(out_dim, "bias", init)?;
    Ok(Linear { weight: w, bias: b })
}

/// A linear layer with bias whose CPU path runs on [`ffw_kernels::matmul_t`] (no gradient
/// for inputs nobody tracks).
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// `act(x·Wᵀ + b)`, the bias and activation in one pass.
    pub fn forward_act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        channel_affine(
            &ffw_kernels::matmul_t(x, &self.weight)?,
            None,
            &self.bias,
            act,
        )
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Act::Identity)
    }
}

/// `nn.Conv2d` (stride 1, same padding) re-initialised as the authors do:
/// `kaiming_normal_(mode='fan_out', nonlinearity='relu')`, default bias init.
pub fn conv2d_same(in_c: usize, out_c: usize, kernel: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d(
        in_c,
        out_c,
        kernel,
        ConvOpts {
            stride: 1,
            padding: kernel / 2,
            bias: true,
        },
        vb,
    )
}

/// Stride, padding and whether the convolution has a bias (torchvision's ResNets have none:
/// a BatchNorm follows every convolution).
#[derive(Clone, Copy, Debug)]
pub struct ConvOpts {
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

/// `nn.Conv2d` with torchvision's (and the authors') initialisation: kaiming-normal weights
/// (fan_out, ReLU gain), the default uniform bias.
pub fn conv2d(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    opts: ConvOpts,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let w_init = Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanOut,
        non_linearity: NonLinearity::ReLU,
    };
    let w = vb.get_with_hints((out_c, in_c, kernel, kernel), "weight", w_init)?;
    let bias = if opts.bias {
        let bound = 1. / ((in_c * kernel * kernel) as f64).sqrt();
        Some(vb.get_with_hints(
            out_c,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?)
    } else {
        None
    };
    Ok(Conv2d {
        weight: w,
        bias,
        stride: opts.stride,
        padding: opts.padding,
    })
}

/// A convolution whose CPU path runs on [`ffw_kernels::conv2d`].
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ffw_kernels::conv2d(x, &self.weight, self.stride, self.padding)?;
        match &self.bias {
            Some(b) => channel_affine(&y, None, b, Act::Identity),
            None => Ok(y),
        }
    }
}

/// How a forward pass treats BatchNorm.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// Running statistics: evaluation, and FFW, which gates a frozen model.
    Eval,
    /// The batch's statistics, which update the running ones: vanilla training.
    Train,
    /// The statistics of the global batch a data-parallel group shares, on every rank alike
    /// (synchronised BatchNorm).
    TrainSynced(&'a Arc<dyn GroupSum>),
}

/// `nn.BatchNorm2d` (eps 1e-5, momentum 0.1, weight 1, bias 0); training mode runs on the
/// fused [`ffw_kernels::batch_norm_train`].
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

pub fn batch_norm(features: usize, vb: VarBuilder) -> Result<BatchNorm> {
    Ok(BatchNorm {
        weight: vb.get_with_hints(features, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(features, "bias", Init::Const(0.0))?,
        // The same Var as the store's when training, so the update below persists.
        running_mean: Var::from_tensor(&vb.get_with_hints(
            features,
            "running_mean",
            Init::Const(0.0),
        )?)?,
        running_var: Var::from_tensor(&vb.get_with_hints(
            features,
            "running_var",
            Init::Const(1.0),
        )?)?,
    })
}

impl BatchNorm {
    /// `act(BatchNorm(x))`; in inference mode normalisation and activation are one pass.
    pub fn forward_act(&self, x: &Tensor, mode: Mode, act: Act) -> Result<Tensor> {
        let sync = match mode {
            Mode::Eval => None,
            Mode::Train => Some(None),
            Mode::TrainSynced(group) => Some(Some(group)),
        };
        if let Some(sync) = sync {
            let (y, mean, var, n) =
                ffw_kernels::batch_norm_train(x, &self.weight, &self.bias, BN_EPS, sync)?;
            let n = n as f64;
            // PyTorch keeps the unbiased variance in its running estimate.
            let update = |run: &Var, stat: &Tensor| -> Result<()> {
                run.set(&((run.as_tensor() * (1.0 - BN_MOMENTUM))? + (stat * BN_MOMENTUM)?)?)
            };
            update(&self.running_mean, &mean)?;
            update(&self.running_var, &(&var * (n / (n - 1.0).max(1.0)))?)?;
            return match act {
                Act::Identity => Ok(y),
                Act::Relu => ffw_kernels::relu(&y),
            };
        }
        let mean = self.running_mean.as_detached_tensor();
        let var = self.running_var.as_detached_tensor();
        let scale = (&self.weight / (var + BN_EPS)?.sqrt()?)?;
        let shift = (&self.bias - (&mean * &scale)?)?;
        channel_affine(x, Some(&scale), &shift, act)
    }
}
