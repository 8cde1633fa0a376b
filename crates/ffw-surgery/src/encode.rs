//! Forward passes over a whole split: bottleneck features and task logits, computed once
//! per parameter map and reused by every probe epoch and metric (the encoder is fixed then).
use candle_core::{DType, Device, Tensor};
use ffw_data::{Dataset, DeviceSplit};
use ffw_nn::Model;

use crate::error::Result;

/// Forward-only batch size: large batches amortise per-op overhead.
pub const EVAL_BATCH: usize = 500;
/// Input values of one forward-only batch at most: 224×224 images go 111 at a time instead
/// of 500 (the batch's input and activations, with a few prefetched, stay a few hundred MB).
const EVAL_BATCH_VALUES: usize = 1 << 24;

pub struct Encoded {
    pub features: Tensor,
    pub logits: Tensor,
    pub labels: Tensor,
    pub biases: Vec<Tensor>,
    /// Per bias attribute, per sample: bias-aligned (see `Dataset::aligned`).
    pub aligned: Vec<Vec<bool>>,
}

/// Features and logits of every sample, BatchNorm in inference mode.
pub fn encode(model: &Model, data: &Dataset, device: &Device) -> Result<Encoded> {
    let all: Vec<usize> = (0..data.len()).collect();
    let split = DeviceSplit::new(data, device)?;
    let mut feats = Vec::new();
    let mut logits = Vec::new();
    let batch = EVAL_BATCH
        .min(EVAL_BATCH_VALUES / data.sample_len().max(1))
        .max(1);
    for item in split.pass(&all, batch, None) {
        let (_, b) = item?;
        let f = model.features(&b.x, ffw_nn::Mode::Eval)?.detach();
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
        aligned: (0..data.biases.len())
            .map(|a| (0..data.len()).map(|i| data.is_aligned(a, i)).collect())
            .collect(),
    })
}

/// Fraction of rows whose arg-max equals the label.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    if labels.dim(0)? == 0 {
        return Ok(f64::NAN);
    }
    Ok(accuracy_on_device(logits, labels)?.to_scalar::<f64>()?)
}

/// [`accuracy`] as an f64 scalar tensor left on the device (no read-back): the hit count in
/// f32, widened, divided by the row count.
pub fn accuracy_on_device(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let n = Tensor::new(labels.dim(0)? as f64, labels.device())?;
    let hits = logits
        .argmax(1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_dtype(DType::F64)?;
    Ok(hits.div(&n)?)
}

/// Task accuracy of the predictions `pred` on the samples `select` picks; `None` for a group
/// without samples (small splits can have no aligned sample at all).
fn accuracy_where(pred: &[u32], labels: &[u32], select: impl Fn(usize) -> bool) -> Option<f64> {
    let (mut hits, mut n) = (0usize, 0usize);
    for (i, (p, y)) in pred.iter().zip(labels).enumerate() {
        if select(i) {
            n += 1;
            hits += usize::from(p == y);
        }
    }
    (n > 0).then(|| hits as f64 / n as f64)
}

/// Task accuracy on the samples that are bias-aligned for one attribute (the shortcut gives
/// the right answer) and on the others ("conflicting").
pub fn aligned_conflicting(
    pred: &[u32],
    labels: &[u32],
    aligned: &[bool],
) -> (Option<f64>, Option<f64>) {
    (
        accuracy_where(pred, labels, |i| aligned[i]),
        accuracy_where(pred, labels, |i| !aligned[i]),
    )
}

/// Task accuracy per group of samples sharing one aligned/conflicting pattern over every
/// attribute (`aligned[a][i]`), attribute 0 most significant and aligned first: for two
/// attributes (aligned, aligned), (aligned, conflicting), (conflicting, aligned),
/// (conflicting, conflicting).
pub fn group_accuracies(pred: &[u32], labels: &[u32], aligned: &[Vec<bool>]) -> Vec<Option<f64>> {
    let k = aligned.len();
    (0..1usize << k)
        .map(|group| {
            accuracy_where(pred, labels, |i| {
                (0..k).all(|a| aligned[a][i] == (group >> (k - 1 - a) & 1 == 0))
            })
        })
        .collect()
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
        let pred = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap();
        let y = labels.to_vec1::<u32>().unwrap();
        assert_eq!(
            aligned_conflicting(&pred, &y, &[true, true, false, false]),
            (Some(1.0), Some(0.0))
        );
        assert_eq!(
            aligned_conflicting(&pred, &y, &[true; 4]),
            (Some(0.5), None)
        );
        // Two attributes: rows (A,A) right, (A,C) right, (C,A) wrong, (C,C) wrong.
        let two = [
            vec![true, true, false, false],
            vec![true, false, true, false],
        ];
        assert_eq!(
            group_accuracies(&pred, &y, &two),
            vec![Some(1.0), Some(1.0), Some(0.0), Some(0.0)]
        );
        // One attribute: the groups are (aligned, conflicting).
        assert_eq!(
            group_accuracies(&pred, &y, &two[..1]),
            vec![Some(1.0), Some(0.0)]
        );
    }
}
