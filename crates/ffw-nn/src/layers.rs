//! Layer constructors with PyTorch's default initialisations, so that a model built here
//! starts from the same distribution as the authors' PyTorch models.
use candle_core::Result;
use candle_nn::init::{FanInOut, Init, NonLinearity, NormalOrUniform};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Linear, VarBuilder};

/// `nn.Linear`: weight and bias uniform in ±1/sqrt(fan_in) (kaiming_uniform with a = √5).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let bound = 1. / (in_dim as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let w = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let b = vb.get_with_hints(out_dim, "bias", init)?;
    Ok(Linear::new(w, Some(b)))
}

/// `nn.Conv2d` (stride 1, same padding) re-initialised as the authors do:
/// `kaiming_normal_(mode='fan_out', nonlinearity='relu')`, default bias init.
pub fn conv2d_same(in_c: usize, out_c: usize, kernel: usize, vb: VarBuilder) -> Result<Conv2d> {
    let w_init = Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanOut,
        non_linearity: NonLinearity::ReLU,
    };
    let w = vb.get_with_hints((out_c, in_c, kernel, kernel), "weight", w_init)?;
    let bound = 1. / ((in_c * kernel * kernel) as f64).sqrt();
    let b = vb.get_with_hints(
        out_c,
        "bias",
        Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?;
    let cfg = Conv2dConfig {
        padding: kernel / 2,
        ..Default::default()
    };
    Ok(Conv2d::new(w, Some(b), cfg))
}

/// `nn.BatchNorm2d` defaults: eps 1e-5, momentum 0.1, weight 1, bias 0.
pub fn batch_norm(features: usize, vb: VarBuilder) -> Result<BatchNorm> {
    let cfg = BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    candle_nn::batch_norm(features, cfg, vb)
}
