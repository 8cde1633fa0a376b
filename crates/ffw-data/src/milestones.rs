//! Bias labels by cumulative rounded milestones, LfF's and DebiAN's `make_attr_labels`: a
//! class's samples, in dataset order, are cut at `round(n · Σ p)` (numpy rounds half to even)
//! over the probabilities of the bias values in order, so each value gets its share up to
//! rounding and no randomness is involved.
use crate::error::{DataError, Result};

/// For `n` samples in order, the index of the bias value (the position in `probabilities`)
/// each falls to.
pub fn cut(n: usize, probabilities: impl IntoIterator<Item = f64>) -> Vec<usize> {
    let mut cumulative = 0.0f64;
    let milestones: Vec<usize> = probabilities
        .into_iter()
        .map(|p| {
            cumulative += p;
            (n as f64 * cumulative).round_ties_even() as usize
        })
        .collect();
    let mut value = 0;
    (0..n)
        .map(|k| {
            // The first value whose milestone lies beyond this sample.
            while value + 1 < milestones.len() && milestones[value] <= k {
                value += 1;
            }
            value
        })
        .collect()
}

/// One bias attribute with as many values as classes: a class's own value with probability
/// `aligned`, the other values sharing the rest evenly (LfF's Corrupted CIFAR-10 and Colored
/// MNIST).
pub fn aligned_labels(labels: &[u8], n_classes: usize, aligned: f64) -> Result<Vec<u32>> {
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= n_classes) {
        return Err(DataError::Invalid(format!(
            "label {l} is not below {n_classes} classes"
        )));
    }
    let mut bias = vec![0u32; labels.len()];
    for class in 0..n_classes {
        let members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == class)
            .collect();
        let share = (1.0 - aligned) / (n_classes - 1) as f64;
        let values = cut(
            members.len(),
            (0..n_classes).map(|v| if v == class { aligned } else { share }),
        );
        for (&i, v) in members.iter().zip(values) {
            bias[i] = v as u32;
        }
    }
    Ok(bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_round_half_to_even_and_cover_every_sample() {
        // 5 samples at (0.5, 0.5): milestones 2.5 → 2 and 5.
        assert_eq!(cut(5, [0.5, 0.5]), vec![0, 0, 1, 1, 1]);
        // Values with a zero share get nobody.
        assert_eq!(cut(3, [0.0, 1.0, 0.0]), vec![1, 1, 1]);
        assert!(cut(0, [1.0]).is_empty());
    }

    /// LfF's arithmetic for ρ = 0.95 on 1,000 samples of a class: 950 aligned, and the 50
    /// others spread 6, 5, 6, 5, 6, 5, 6, 5, 6 by the rounded milestones.
    #[test]
    fn the_conflicting_share_is_spread_over_the_other_values() {
        let labels = vec![3u8; 1000];
        let bias = aligned_labels(&labels, 10, 0.95).unwrap();
        let count = |v: u32| bias.iter().filter(|&&b| b == v).count();
        assert_eq!(count(3), 950);
        let others: Vec<usize> = (0..10).filter(|&v| v != 3).map(|v| count(v)).collect();
        assert_eq!(others.iter().sum::<usize>(), 50);
        assert!(others.iter().all(|&c| c == 5 || c == 6), "{others:?}");
        assert!(aligned_labels(&[10], 10, 0.9).is_err());
    }
}
