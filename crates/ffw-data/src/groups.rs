//! Groups of samples sharing a task label and bias labels, for datasets whose bias comes as
//! an attribute column (CelebA, a user's folder): the group-balanced unbiased sets (every
//! group cut to the smallest one's size, PROTOCOL §5 CelebA) and which bias class goes with
//! which task class.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// The seed of the group-balanced sampling (the authors' code fixes it at 42).
pub const BALANCE_SEED: u64 = 42;

/// Indices into `columns` (each of the same length; column `c` has classes `0..classes[c]`)
/// keeping the same number of samples from every combination of classes: the size of the
/// smallest combination, drawn with `seed`. Sorted ascending. An error if some combination
/// has no sample, naming it by `names`.
pub fn balanced(
    columns: &[&[u32]],
    classes: &[usize],
    names: &[&str],
    seed: u64,
) -> Result<Vec<usize>> {
    let n = columns.first().map_or(0, |c| c.len());
    let n_groups: usize = classes.iter().product();
    let group_of = |i: usize| {
        columns
            .iter()
            .zip(classes)
            .fold(0usize, |g, (col, &k)| g * k + col[i] as usize)
    };
    let mut groups = vec![Vec::new(); n_groups];
    for i in 0..n {
        groups[group_of(i)].push(i);
    }
    if let Some(empty) = groups.iter().position(Vec::is_empty) {
        let mut rest = empty;
        let mut labels: Vec<String> = classes
            .iter()
            .rev()
            .map(|&k| {
                let v = rest % k;
                rest /= k;
                v.to_string()
            })
            .collect();
        labels.reverse();
        let which: Vec<String> = names
            .iter()
            .zip(&labels)
            .map(|(n, v)| format!("{n} = {v}"))
            .collect();
        return Err(DataError::Invalid(format!(
            "no sample with {} among {n}: a balanced set needs every combination",
            which.join(", ")
        )));
    }
    let size = groups.iter().map(Vec::len).min().unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut keep = Vec::with_capacity(size * n_groups);
    for mut g in groups {
        g.shuffle(&mut rng);
        keep.extend_from_slice(&g[..size]);
    }
    keep.sort_unstable();
    Ok(keep)
}

/// Per task class, the bias class most over-represented in it relative to its overall
/// frequency (largest `P(bias | class) / P(bias)`): CelebA's blond hair goes with female,
/// not-blond with male, though most non-blond people are female too.
pub fn aligned_bias(y: &[u32], bias: &[u32], n_classes: usize, n_bias: usize) -> Vec<u32> {
    let mut joint = vec![vec![0usize; n_bias]; n_classes];
    let mut marginal = vec![0usize; n_bias];
    for (&t, &b) in y.iter().zip(bias) {
        joint[t as usize][b as usize] += 1;
        marginal[b as usize] += 1;
    }
    joint
        .iter()
        .map(|row| {
            (0..n_bias)
                .max_by(|&a, &b| {
                    let lift = |k: usize| row[k] as f64 / marginal[k].max(1) as f64;
                    lift(a).total_cmp(&lift(b)).then(b.cmp(&a))
                })
                .unwrap_or(0) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_is_cut_to_the_smallest() {
        // Groups (y, b): (0,0) x6, (0,1) x2, (1,0) x3, (1,1) x5.
        let y = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
        let b = [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1];
        let keep = balanced(&[&y, &b], &[2, 2], &["y", "b"], 42).unwrap();
        assert_eq!(keep.len(), 8);
        for group in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let n = keep.iter().filter(|&&i| (y[i], b[i]) == group).count();
            assert_eq!(n, 2, "{group:?}");
        }
        assert!(keep.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keep, balanced(&[&y, &b], &[2, 2], &["y", "b"], 42).unwrap());
        assert_ne!(keep, balanced(&[&y, &b], &[2, 2], &["y", "b"], 7).unwrap());
        let err = balanced(&[&y[..8], &[0u32; 8]], &[2, 2], &["Blond", "Male"], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Blond = 0, Male = 1"), "{err}");
    }

    #[test]
    fn the_aligned_bias_is_the_most_over_represented() {
        // Blond (1): 9 female (0), 1 male; not blond: 50 female, 40 male. Most of both
        // classes are female, but male is over-represented among the non-blond.
        let mut y = vec![1u32; 10];
        y.extend(vec![0u32; 90]);
        let mut b = vec![0u32; 9];
        b.push(1);
        b.extend(vec![0u32; 50]);
        b.extend(vec![1u32; 40]);
        assert_eq!(aligned_bias(&y, &b, 2, 2), vec![1, 0]);
    }
}
