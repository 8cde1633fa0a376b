//! Forward passes over a whole split: bottleneck features and task logits, computed once
//! per parameter map and reused by every probe epoch and metric (the encoder is fixed then).
use candle_core::{Device, Tensor};
use ffw_data::Dataset;
use ffw_nn::Model;

use crate::error::Result;

/// Forward-only batch size: large batches amortise per-op overhead.
pub const EVAL_BATCH: usize = 500;

pub struct Encoded {
    pub features: Tensor,
    pub logits: Tensor,
    pub labels: Tensor,
    pub biases: Vec<Tensor>,
}

/// Features and logits of every sample, BatchNorm in inference mode.
pub fn encode(model: &Model, data: &Dataset, device: &Device) -> Result<Encoded> {
    let all: Vec<usize> = (0..data.len()).collect();
    let mut feats = Vec::new();
    let mut logits = Vec::new();
    for chunk in all.chunks(EVAL_BATCH) {
        let b = data.batch(chunk, device)?;
        let f = model.features(&b.x, false)?.detach();
        logits.push(model.head(&f)?.detach());
        feats.push(f);
    }
    Ok(Encoded {
        features: Tensor::cat(&feats, 0)?,
        logits: Tensor::cat(&logits, 0)?,
        labels: Tensor::new(data.y.as_slice(), device)?,
        biases: data
            .biases
            .iter()
            .map(|b| Tensor::new(b.as_slice(), device))
            .collect::<candle_core::Result<_>>()?,
    })
}

/// Fraction of rows whose arg-max equals the label.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let n = labels.dim(0)?;
    if n == 0 {
        return Ok(f64::NAN);
    }
    let hits = logits
        .argmax(1)?
        .eq(labels)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(hits as f64 / n as f64)
}

/// Task accuracy on the samples whose bias label equals the task label ("aligned": the
/// shortcut gives the right answer) and on the others ("conflicting"), for one attribute;
/// `None` for a group without samples (small splits can have no aligned sample at all).
pub fn aligned_conflicting(
    logits: &Tensor,
    labels: &Tensor,
    bias: &Tensor,
) -> Result<(Option<f64>, Option<f64>)> {
    let pred = logits.argmax(1)?.to_vec1::<u32>()?;
    let (y, b) = (labels.to_vec1::<u32>()?, bias.to_vec1::<u32>()?);
    let mut hits = [0usize; 2];
    let mut n = [0usize; 2];
    for ((p, y), b) in pred.iter().zip(&y).zip(&b) {
        let group = usize::from(b != y);
        n[group] += 1;
        hits[group] += usize::from(p == y);
    }
    let frac = |g: usize| (n[g] > 0).then(|| hits[g] as f64 / n[g] as f64);
    Ok((frac(0), frac(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_argmax_hits() {
        let d = Device::Cpu;
        let logits = Tensor::new(&[[0.1f32, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], &d).unwrap();
        let labels = Tensor::new(&[1u32, 0, 0, 1], &d).unwrap();
        assert_eq!(accuracy(&logits, &labels).unwrap(), 0.5);
        // Predictions 1, 0, 1, 0: rows 0 and 1 aligned (both right), rows 2 and 3 not (both wrong).
        let bias = Tensor::new(&[1u32, 0, 1, 0], &d).unwrap();
        assert_eq!(
            aligned_conflicting(&logits, &labels, &bias).unwrap(),
            (Some(1.0), Some(0.0))
        );
        let all_aligned = Tensor::new(&[1u32, 0, 0, 1], &d).unwrap();
        assert_eq!(
            aligned_conflicting(&logits, &labels, &all_aligned).unwrap(),
            (Some(0.5), None)
        );
    }
}
