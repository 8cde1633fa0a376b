//! PyTorch-semantics SGD and Adam: L2 weight decay is added to the gradient (`torch.optim`),
//! which candle-nn's AdamW (decoupled decay) and plain SGD (no momentum) do not provide.
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

use ffw_kernels::optim::{adam_apply, moment, sgd_apply, Moment};

use crate::config::OptimizerConfig;

pub trait Optimizer {
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    fn set_lr(&mut self, lr: f64);
}

pub struct Sgd {
    vars: Vec<Var>,
    bufs: Vec<Option<Var>>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        let bufs = vec![None; vars.len()];
        Self {
            vars,
            bufs,
            lr,
            momentum,
            weight_decay,
        }
    }
}

/// Optimiser state, zero until the first step: `a·0 + b·x` is exactly `b·x`, so the first
/// step is torch's (whose momentum buffer starts as the first gradient).
fn state(slot: &mut Option<Var>, p: &Tensor) -> Result<Var> {
    match slot {
        Some(v) => Ok(v.clone()),
        None => Ok(slot
            .insert(Var::zeros(p.shape(), p.dtype(), p.device())?)
            .clone()),
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, buf) in self.vars.iter().zip(self.bufs.iter_mut()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let buf = state(buf, var.as_tensor())?;
            let momentum = Moment {
                a: self.momentum,
                b: 1.0,
                weight_decay: self.weight_decay,
                square: false,
            };
            moment(&buf, g, var.as_tensor(), momentum)?;
            sgd_apply(var, buf.as_tensor(), self.lr)?;
        }
        Ok(())
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

pub struct Adam {
    vars: Vec<Var>,
    moments: Vec<(Option<Var>, Option<Var>)>,
    lr: f64,
    weight_decay: f64,
    t: i32,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Self {
        let moments = vec![(None, None); vars.len()];
        Self {
            vars,
            moments,
            lr,
            weight_decay,
            t: 0,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - Self::BETA1.powi(self.t);
        let bc2 = 1.0 - Self::BETA2.powi(self.t);
        for (var, (m, v)) in self.vars.iter().zip(self.moments.iter_mut()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let p = var.as_tensor();
            let (m, v) = (state(m, p)?, state(v, p)?);
            for (s, beta, square) in [(&m, Self::BETA1, false), (&v, Self::BETA2, true)] {
                let update = Moment {
                    a: beta,
                    b: 1.0 - beta,
                    weight_decay: self.weight_decay,
                    square,
                };
                moment(s, g, p, update)?;
            }
            adam_apply(
                var,
                m.as_tensor(),
                v.as_tensor(),
                self.lr / bc1,
                bc2.sqrt(),
                Self::EPS,
            )?;
        }
        Ok(())
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

pub fn build(cfg: &OptimizerConfig, vars: Vec<Var>) -> Box<dyn Optimizer> {
    match *cfg {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            weight_decay,
        } => Box::new(Sgd::new(vars, lr, momentum, weight_decay)),
        OptimizerConfig::Adam { lr, weight_decay } => Box::new(Adam::new(vars, lr, weight_decay)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One parameter, loss = p²/2 so grad = p; values checked against torch.optim by hand.
    fn run(opt: &mut dyn Optimizer, p: &Var, steps: usize) -> f32 {
        for _ in 0..steps {
            let loss = (p.as_tensor().sqr().unwrap() * 0.5)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        p.as_tensor().to_vec1::<f32>().unwrap()[0]
    }

    #[test]
    fn sgd_momentum_and_weight_decay_follow_torch() {
        let p = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let mut opt = Sgd::new(vec![p.clone()], 0.1, 0.9, 0.1);
        // step 1: d = 1 + 0.1 = 1.1, buf = 1.1, p = 1 - 0.11 = 0.89
        assert!((run(&mut opt, &p, 1) - 0.89).abs() < 1e-6);
        // step 2: d = 0.89*1.1 = 0.979, buf = 0.99 + 0.979 = 1.969, p = 0.89 - 0.1969
        assert!((run(&mut opt, &p, 1) - (0.89 - 0.1969)).abs() < 1e-5);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let p = Var::new(&[3.0f32], &Device::Cpu).unwrap();
        let mut opt = Adam::new(vec![p.clone()], 1e-3, 0.0);
        // Bias-corrected first step is lr * g/|g| whatever the gradient's size.
        assert!((run(&mut opt, &p, 1) - 2.999).abs() < 1e-6);
    }
}
