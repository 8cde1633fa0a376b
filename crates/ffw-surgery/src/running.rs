//! Running sums of per-minibatch scalars kept on the device: reading a loss back after every
//! step would stall a GPU's queue once per minibatch; a sum is read once, when the epoch
//! ends. The arithmetic is the host's (f32 values widened to f64, then `x·w` and `+`), so
//! the CPU's numbers do not change.
use candle_core::{DType, Tensor};

use crate::error::Result;

#[derive(Default)]
pub struct RunningSum {
    total: Option<Tensor>,
}

impl RunningSum {
    /// Adds `weight · x` for a scalar tensor `x`. Detached: a loss keeps its whole
    /// computation graph (every activation of the step) alive otherwise, epoch after epoch.
    pub fn add(&mut self, x: &Tensor, weight: f64) -> Result<()> {
        let term = (x.detach().to_dtype(DType::F64)? * weight)?;
        self.total = Some(match self.total.take() {
            Some(total) => (total + term)?,
            None => term,
        });
        Ok(())
    }

    /// The sum so far (0 before anything was added): the one read back to the host.
    pub fn value(&self) -> Result<f64> {
        match &self.total {
            Some(t) => Ok(t.to_scalar::<f64>()?),
            None => Ok(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Bit for bit what `sum += x as f64 * w` on the host gives.
    #[test]
    fn sums_like_the_host() {
        let xs = [0.1f32, 2.345_678, -7.25e-3, 1e7, 3.0];
        let ws = [1.0, 3.0, 100.0, 0.5, 1.0];
        let mut sum = RunningSum::default();
        let mut host = 0.0f64;
        for (&x, &w) in xs.iter().zip(&ws) {
            sum.add(&Tensor::new(x, &Device::Cpu).unwrap(), w).unwrap();
            host += x as f64 * w;
        }
        assert_eq!(sum.value().unwrap().to_bits(), host.to_bits());
        // A tracked loss leaves nothing tracked behind (its graph would be kept alive).
        let w = candle_core::Var::new(2f32, &Device::Cpu).unwrap();
        let loss = (w.as_tensor() * 3.0).unwrap();
        assert!(loss.track_op());
        sum.add(&loss, 1.0).unwrap();
        assert!(!sum.total.as_ref().unwrap().track_op());
        assert_eq!(RunningSum::default().value().unwrap(), 0.0);
    }
}
