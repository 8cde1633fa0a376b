//! The dataset every model consumes (pixels in memory or image files read on demand, labels
//! in memory), its batches as candle tensors, and the seeded index orders and splits used by
//! training.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::image_files::ImageFiles;
use crate::prefetch::Batches;

/// Where a dataset's inputs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// `n * sample_len()` values, sample after sample, already normalised.
    Memory(Vec<f32>),
    /// One image file per sample, decoded, resized and normalised when a batch asks for it.
    Files(Arc<ImageFiles>),
}

impl From<Vec<f32>> for Inputs {
    fn from(x: Vec<f32>) -> Self {
        Inputs::Memory(x)
    }
}

impl FromIterator<f32> for Inputs {
    fn from_iter<I: IntoIterator<Item = f32>>(values: I) -> Self {
        Inputs::Memory(values.into_iter().collect())
    }
}

impl Inputs {
    /// The values, if they are held in memory.
    pub fn in_memory(&self) -> Option<&[f32]> {
        match self {
            Inputs::Memory(x) => Some(x),
            Inputs::Files(_) => None,
        }
    }
}

/// Normalised inputs with task labels and one or more bias labels per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub x: Inputs,
    /// Shape of one sample, e.g. `[3, 28, 28]`.
    pub sample_shape: Vec<usize>,
    /// Task labels, `0..n_classes`.
    pub y: Vec<u32>,
    pub n_classes: usize,
    /// One vector per bias attribute (Biased MNIST: one, the colour), each of length n.
    pub biases: Vec<Vec<u32>>,
    /// Number of classes of each bias attribute.
    pub n_bias_classes: Vec<usize>,
    /// Per bias attribute, the bias class aligned with each task class (`aligned[a][y]`): a
    /// sample is bias-aligned for attribute `a` when its bias is `aligned[a][y]`. Biased MNIST:
    /// the class's own colour; CelebA BlondHair/Male: blond ↔ female.
    pub aligned: Vec<Vec<u32>>,
}

/// The biased train set and the unbiased sets FFW uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    pub train: Dataset,
    pub unbiased_train: Dataset,
    pub unbiased_val: Dataset,
    pub test: Dataset,
}

/// A batch on a device: `x` is `[b, ..sample_shape]` f32, `y` and each bias `[b]` u32.
#[derive(Debug, Clone)]
pub struct Batch {
    pub x: Tensor,
    pub y: Tensor,
    pub biases: Vec<Tensor>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of values in one sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The samples at `indices`, in that order (files stay on disk). Panics on an
    /// out-of-range index.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            x: match &self.x {
                Inputs::Memory(all) => {
                    Inputs::Memory(gather_memory(all, self.sample_len(), indices))
                }
                Inputs::Files(f) => Inputs::Files(Arc::new(f.subset(indices))),
            },
            sample_shape: self.sample_shape.clone(),
            y: indices.iter().map(|&i| self.y[i]).collect(),
            n_classes: self.n_classes,
            biases: self
                .biases
                .iter()
                .map(|b| indices.iter().map(|&i| b[i]).collect())
                .collect(),
            n_bias_classes: self.n_bias_classes.clone(),
            aligned: self.aligned.clone(),
        }
    }

    /// The samples at `indices` as tensors on `device` (image files decoded now, unaugmented).
    pub fn batch(&self, indices: &[usize], device: &Device) -> candle_core::Result<Batch> {
        let x = self.gather_x(indices, None)?;
        self.batch_from(indices, x, device)
    }

    /// The batches of `order` cut in `batch_size` chunks, each with its indices. Image files
    /// are decoded on a background thread a few batches ahead of the consumer (memory stays
    /// at those few batches); `augment`, a training pass's seed, turns on the files' random
    /// flip. In-memory inputs are gathered as [`Dataset::batch`] does.
    pub fn batches<'a>(
        &'a self,
        order: &'a [usize],
        batch_size: usize,
        augment: Option<u64>,
        device: &'a Device,
    ) -> Batches<'a> {
        Batches::new(self, order, batch_size, augment, device)
    }

    /// The input values of the samples at `indices`; an error names an out-of-range index or
    /// an unreadable file.
    pub(crate) fn gather_x(
        &self,
        indices: &[usize],
        augment: Option<u64>,
    ) -> candle_core::Result<Vec<f32>> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            candle_core::bail!(
                "batch index {bad} out of range for a dataset of {}",
                self.len()
            );
        }
        match &self.x {
            Inputs::Memory(all) => Ok(gather_memory(all, self.sample_len(), indices)),
            Inputs::Files(f) => f.load(indices, augment).map_err(candle_core::Error::wrap),
        }
    }

    /// A batch of the samples at `indices` whose inputs `x` are already gathered.
    pub(crate) fn batch_from(
        &self,
        indices: &[usize],
        x: Vec<f32>,
        device: &Device,
    ) -> candle_core::Result<Batch> {
        let mut shape = Vec::with_capacity(1 + self.sample_shape.len());
        shape.push(indices.len());
        shape.extend_from_slice(&self.sample_shape);
        let labels = |v: &[u32]| {
            let picked: Vec<u32> = indices.iter().map(|&i| v[i]).collect();
            Tensor::from_vec(picked, indices.len(), device)
        };
        Ok(Batch {
            x: Tensor::from_vec(x, shape, device)?,
            y: labels(&self.y)?,
            biases: self
                .biases
                .iter()
                .map(|b| labels(b))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// Whether sample `i` is bias-aligned for attribute `a`.
    pub fn is_aligned(&self, a: usize, i: usize) -> bool {
        self.biases[a][i] == self.aligned[a][self.y[i] as usize]
    }
}

/// The samples at `indices` of `all`, `len` values each.
fn gather_memory(all: &[f32], len: usize, indices: &[usize]) -> Vec<f32> {
    let mut x = Vec::with_capacity(indices.len() * len);
    for &i in indices {
        x.extend_from_slice(&all[i * len..(i + 1) * len]);
    }
    x
}

/// Deterministic epoch order: a permutation of `0..n` drawn from a ChaCha8 stream
/// seeded by `seed` and `epoch` together.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(crate::seeds::epoch_seed(seed, epoch));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// Shuffles `0..n` with `seed` and cuts it into one part per fraction, part `k` ending
/// at `floor(n * (f_0 + .. + f_k))`. Fractions summing to less than 1 leave the tail
/// out; an error if a fraction is negative or not finite, or if they sum above 1.
pub fn random_split(n: usize, fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>> {
    if let Some(f) = fractions.iter().find(|f| !f.is_finite() || **f < 0.0) {
        return Err(DataError::Invalid(format!(
            "split fraction {f} is not a finite non-negative number"
        )));
    }
    let total: f64 = fractions.iter().sum();
    // Slack for sums like 0.6 + 0.2 + 0.2 that miss 1 by rounding.
    const SUM_EPS: f64 = 1e-9;
    if total > 1.0 + SUM_EPS {
        return Err(DataError::Invalid(format!(
            "split fractions {fractions:?} sum to {total} > 1"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut parts = Vec::with_capacity(fractions.len());
    let (mut start, mut cumulative) = (0usize, 0.0f64);
    for f in fractions {
        cumulative += f;
        let end = if cumulative >= 1.0 - SUM_EPS {
            n
        } else {
            ((n as f64 * cumulative).floor() as usize).min(n)
        };
        parts.push(order[start..end].to_vec());
        start = end;
    }
    Ok(parts)
}

/// Checks `data.unbiased_fractions`: three positive fractions summing to at most 1.
pub fn validate_fractions(fractions: &[f64; 3]) -> Result<()> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !(*f > 0.0)) || total > 1.0 + 1e-9 {
        return Err(DataError::Invalid(format!(
            "data.unbiased_fractions: must be positive and sum to at most 1, got {fractions:?}"
        )));
    }
    Ok(())
}

/// The splits of a benchmark whose unbiased sets all come from one balanced set (DebiAN's and
/// FFW's protocol): `balanced` shuffled with `seed` and cut by `fractions` into unbiased
/// train, test and val, in that order. `what` names the balanced set's source in the error
/// when a part would be empty.
pub fn unbiased_splits(
    train: Dataset,
    balanced: &Dataset,
    fractions: &[f64; 3],
    seed: u64,
    what: &str,
) -> Result<Splits> {
    let parts = random_split(balanced.len(), fractions, seed)?;
    if let Some(empty) = parts.iter().position(Vec::is_empty) {
        return Err(DataError::Invalid(format!(
            "the unbiased {} split is empty: {} {what} cut by {fractions:?}",
            ["train", "test", "val"][empty],
            balanced.len(),
        )));
    }
    Ok(Splits {
        train,
        unbiased_train: balanced.subset(&parts[0]),
        test: balanced.subset(&parts[1]),
        unbiased_val: balanced.subset(&parts[2]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        Dataset {
            x: (0..n * 4).map(|v| v as f32).collect::<Vec<_>>().into(),
            sample_shape: vec![1, 2, 2],
            y: (0..n as u32).map(|i| i % 3).collect(),
            n_classes: 3,
            biases: vec![(0..n as u32).map(|i| i % 2).collect()],
            n_bias_classes: vec![2],
            aligned: vec![vec![0, 1, 2]],
        }
    }

    #[test]
    fn epoch_order_is_a_deterministic_permutation() {
        let a = epoch_order(1000, 42, 3);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(1000, 42, 3));
        assert_ne!(a, epoch_order(1000, 42, 4));
        assert_ne!(a, epoch_order(1000, 43, 3));
        assert!(epoch_order(0, 1, 1).is_empty());
    }

    #[test]
    fn random_split_cuts_at_cumulative_floors() {
        let parts = random_split(101, &[0.6, 0.2, 0.2], 5).unwrap();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        // floor(60.6) = 60, floor(80.8) = 80, then all remaining.
        assert_eq!(sizes, vec![60, 20, 21]);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..101).collect::<Vec<_>>());
        assert_eq!(parts, random_split(101, &[0.6, 0.2, 0.2], 5).unwrap());
        assert_ne!(parts, random_split(101, &[0.6, 0.2, 0.2], 6).unwrap());

        let partial = random_split(10, &[0.5], 0).unwrap();
        assert_eq!(partial[0].len(), 5);
        assert!(random_split(10, &[0.7, 0.7], 0).is_err());
        assert!(random_split(10, &[-0.1], 0).is_err());
        assert!(random_split(10, &[f64::NAN], 0).is_err());
    }

    #[test]
    fn subset_and_batch_pick_the_right_samples() {
        let d = toy(5);
        assert_eq!((d.len(), d.sample_len()), (5, 4));
        let s = d.subset(&[4, 1]);
        assert_eq!(
            s.x.in_memory().unwrap(),
            [16., 17., 18., 19., 4., 5., 6., 7.]
        );
        assert_eq!(s.y, vec![1, 1]);
        assert_eq!(s.biases, vec![vec![0, 1]]);

        let b = d.batch(&[4, 1, 2], &Device::Cpu).unwrap();
        assert_eq!(b.x.dims(), &[3, 1, 2, 2]);
        assert_eq!(b.x.dtype(), candle_core::DType::F32);
        assert_eq!(
            b.x.flatten_all().unwrap().to_vec1::<f32>().unwrap()[..4],
            [16., 17., 18., 19.]
        );
        assert_eq!(b.y.to_vec1::<u32>().unwrap(), vec![1, 1, 2]);
        assert_eq!(b.biases.len(), 1);
        assert_eq!(b.biases[0].to_vec1::<u32>().unwrap(), vec![0, 1, 0]);
        assert!(d.batch(&[5], &Device::Cpu).is_err());
    }
}
