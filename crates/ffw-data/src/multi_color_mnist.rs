//! Multi-Color MNIST (DebiAN protocol, PROTOCOL §5): the background's left and right halves
//! each carry a colour, each correlated with the digit at its own strength, so a model has two
//! shortcuts of different strength. Two bias attributes: the left and the right colour.
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::biased_mnist::sample;
use crate::coloured_mnist::ColouredMnist;
use crate::dataset::{unbiased_splits, validate_fractions, Dataset, Splits};
use crate::error::{DataError, Result};
use crate::milestones;
use crate::mnist::{Mnist, MnistSplit, N_CLASSES};
use crate::seeds::stream_seed;

/// Mean colours (RGB in [0, 1]) of the left half; the right half uses `1 - colour`.
pub const LEFT_COLOURS: [[f32; 3]; 10] = [
    [0.983682, 0.312519, 0.168575],
    [0.990530, 0.915605, 0.351512],
    [0.672964, 0.461070, 0.579808],
    [0.783252, 0.831556, 0.601329],
    [0.088016, 0.777963, 0.981808],
    [0.321393, 0.961055, 0.446450],
    [0.024616, 0.235650, 0.758666],
    [0.555247, 0.101580, 0.761763],
    [0.207723, 0.392949, 0.018702],
    [0.833658, 0.202409, 0.266943],
];

/// Standard deviation of the per-image colour noise for severity 1..=5.
pub const SEVERITY_STD: [f32; 5] = [0.05, 0.02, 0.01, 0.005, 0.002];

/// The two bias attributes, in the order of `Dataset::biases`.
pub const ATTRIBUTES: [&str; 2] = ["left_colour", "right_colour"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiColorMnistConfig {
    /// Directory with the four MNIST IDX files (raw or .gz).
    pub dir: PathBuf,
    /// Fraction of training samples whose left colour is *not* the digit's (ρ_L = 1 − skew).
    pub left_skew: f64,
    /// The same for the right half (ρ_R = 1 − skew).
    pub right_skew: f64,
    /// Colour noise level, 1..=5 (see [`SEVERITY_STD`]).
    pub severity: usize,
    /// Use only this many MNIST train images (a seeded sample) for biased training.
    pub n_train: Option<usize>,
    /// Fractions of the balanced set (from MNIST test) that become the unbiased train,
    /// test and val splits, in that order.
    pub unbiased_fractions: [f64; 3],
}

impl Default for MultiColorMnistConfig {
    /// DebiAN's and the paper's setting: skews 0.01 / 0.05, severity 4, 60/20/20.
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/mnist"),
            left_skew: 0.01,
            right_skew: 0.05,
            severity: 4,
            n_train: None,
            unbiased_fractions: [0.6, 0.2, 0.2],
        }
    }
}

impl ColouredMnist for MultiColorMnistConfig {
    const NAME: &'static str = "multi_color_mnist";

    fn digits_dir(&self) -> &Path {
        &self.dir
    }

    fn colour_splits(&self, mnist: &Mnist, seed: u64) -> Result<Splits> {
        build_splits(mnist, self, seed)
    }

    fn check_settings(&self) -> Result<()> {
        for (key, skew) in [
            ("left_skew", self.left_skew),
            ("right_skew", self.right_skew),
        ] {
            if !(0.0..=1.0).contains(&skew) {
                return Err(DataError::Invalid(format!(
                    "data.{key}: must be in [0, 1], got {skew}"
                )));
            }
        }
        if !(1..=SEVERITY_STD.len()).contains(&self.severity) {
            return Err(DataError::Invalid(format!(
                "data.severity: must be in 1..=5, got {}",
                self.severity
            )));
        }
        if self.n_train == Some(0) {
            return Err(DataError::Invalid("data.n_train: must be > 0".into()));
        }
        validate_fractions(&self.unbiased_fractions)
    }
}

/// Per-class joint (left, right) colour labels (DebiAN's `make_attr_labels`): the class's
/// probability of the pair (l, r) is `p_L(l) · p_R(r)`, where each side gives its aligned
/// ratio to the class's own colour and spreads the rest evenly over the others. The class's
/// samples, in dataset order, are cut at the cumulative milestones `round(n_c · Σ p)` over
/// the pairs in row-major order (numpy rounds half to even).
pub fn assign_colours(
    labels: &[u8],
    n_classes: usize,
    left_aligned: f64,
    right_aligned: f64,
) -> Result<(Vec<u32>, Vec<u32>)> {
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= n_classes) {
        return Err(DataError::Invalid(format!(
            "label {l} is not below {n_classes} classes"
        )));
    }
    let side = |aligned: f64, class: usize, colour: usize| {
        if class == colour {
            aligned
        } else {
            (1.0 - aligned) / (n_classes - 1) as f64
        }
    };
    let (mut left, mut right) = (vec![0u32; labels.len()], vec![0u32; labels.len()]);
    for class in 0..n_classes {
        let members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == class)
            .collect();
        let pairs = milestones::cut(
            members.len(),
            (0..n_classes * n_classes).map(|pair| {
                side(left_aligned, class, pair / n_classes)
                    * side(right_aligned, class, pair % n_classes)
            }),
        );
        for (&i, pair) in members.iter().zip(pairs) {
            left[i] = (pair / n_classes) as u32;
            right[i] = (pair % n_classes) as u32;
        }
    }
    Ok((left, right))
}

/// Colours `split` as `[n, 3, rows, cols]` in [0, 1] (`ToTensor`, no normalisation): every
/// pixel that is not 255 counts as background and gets `255 · colour` added (clamped to 255),
/// the left half's colour in columns `0..cols/2`, the right half's in the others; each image
/// draws its colours as `mean + N(0, std²)` per channel, clamped to [0, 1].
pub fn colourise(
    split: &MnistSplit,
    left: &[u32],
    right: &[u32],
    severity: usize,
    seed: u64,
) -> Result<Vec<f32>> {
    let images = &split.images;
    if left.len() != images.n || right.len() != images.n {
        return Err(DataError::Invalid(format!(
            "{} left and {} right colours for {} images",
            left.len(),
            right.len(),
            images.n
        )));
    }
    let std = SEVERITY_STD[severity - 1];
    let noise = Normal::new(0.0f32, std).expect("a positive standard deviation");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (rows, cols) = (images.rows, images.cols);
    let mut out = Vec::with_capacity(images.n * 3 * rows * cols);
    for i in 0..images.n {
        let mut draw = |mean: [f32; 3]| mean.map(|m| (m + noise.sample(&mut rng)).clamp(0.0, 1.0));
        let l = draw(LEFT_COLOURS[left[i] as usize]);
        let r = draw(LEFT_COLOURS[right[i] as usize].map(|m| 1.0 - m));
        let image = images.image(i);
        for c in 0..3 {
            for (p, &v) in image.iter().enumerate() {
                let colour = if p % cols < cols / 2 { l[c] } else { r[c] };
                let v = v as f32;
                let coloured = if v != 255.0 {
                    (v + 255.0 * colour).min(255.0)
                } else {
                    v
                };
                out.push(coloured / 255.0);
            }
        }
    }
    Ok(out)
}

/// `split` coloured with the given aligned ratios, two bias attributes (left, right).
fn build(
    split: &MnistSplit,
    left_aligned: f64,
    right_aligned: f64,
    severity: usize,
    seed: u64,
) -> Result<Dataset> {
    let (left, right) = assign_colours(&split.labels, N_CLASSES, left_aligned, right_aligned)?;
    Ok(Dataset {
        x: colourise(split, &left, &right, severity, seed)?,
        sample_shape: vec![3, split.images.rows, split.images.cols],
        y: split.labels.iter().map(|&l| l as u32).collect(),
        n_classes: N_CLASSES,
        biases: vec![left, right],
        n_bias_classes: vec![LEFT_COLOURS.len(); 2],
        // On both sides, digit d's own colour is colour d.
        aligned: vec![(0..N_CLASSES as u32).collect(); 2],
    })
}

/// The biased train set (MNIST train with the configured skews) and the unbiased splits: the
/// balanced "valid" set (MNIST test, aligned ratio 0.1 on both sides) cut by
/// `unbiased_fractions` into unbiased train / test / val.
pub fn build_splits(mnist: &Mnist, cfg: &MultiColorMnistConfig, seed: u64) -> Result<Splits> {
    cfg.check_settings()?;
    let train_split = sample(
        &mnist.train,
        cfg.n_train,
        stream_seed(seed, 1),
        "n_train",
        "train",
    )?;
    let train = build(
        &train_split,
        1.0 - cfg.left_skew,
        1.0 - cfg.right_skew,
        cfg.severity,
        stream_seed(seed, 2),
    )?;
    let balanced_ratio = 1.0 / N_CLASSES as f64;
    let valid = build(
        &mnist.test,
        balanced_ratio,
        balanced_ratio,
        cfg.severity,
        stream_seed(seed, 3),
    )?;
    unbiased_splits(
        train,
        &valid,
        &cfg.unbiased_fractions,
        stream_seed(seed, 4),
        "MNIST test images",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::Images;

    /// Two classes, ten samples each: the pair probabilities and milestones by hand.
    #[test]
    fn colour_pairs_follow_the_cumulative_rounded_milestones() {
        let labels: Vec<u8> = (0..20).map(|i| (i % 2) as u8).collect();
        let (left, right) = assign_colours(&labels, 2, 0.8, 0.6).unwrap();
        let count = |class: u8, l: u32, r: u32| {
            (0..20)
                .filter(|&i| labels[i] == class && left[i] == l && right[i] == r)
                .count()
        };
        // Class 0: p(0,0) .48, p(0,1) .32, p(1,0) .12, p(1,1) .08; cumulative ×10:
        // 4.8 → 5, 8, 9.2 → 9, 10: pairs get 5, 3, 1, 1 samples.
        assert_eq!(
            [
                count(0, 0, 0),
                count(0, 0, 1),
                count(0, 1, 0),
                count(0, 1, 1)
            ],
            [5, 3, 1, 1]
        );
        // Class 1 (own colour 1): .08, .12, .32, .48 → 0.8 → 1, 2, 5.2 → 5, 10: 1, 1, 3, 5.
        assert_eq!(
            [
                count(1, 0, 0),
                count(1, 0, 1),
                count(1, 1, 0),
                count(1, 1, 1)
            ],
            [1, 1, 3, 5]
        );
        // In dataset order: the class's first samples get the first pair.
        assert_eq!((left[0], right[0]), (0, 0));
        assert_eq!((left[18], right[18]), (1, 1));
    }

    #[test]
    fn numpy_rounds_milestones_half_to_even() {
        // One class of 5 with ratio 0.5 on the left, 1 on the right of a 2-class problem:
        // milestones 2.5 → 2 (not 3) and 5.
        let (left, _) = assign_colours(&[0; 5], 2, 0.5, 1.0).unwrap();
        assert_eq!(left, vec![0, 0, 1, 1, 1]);
    }

    fn images(n: usize, pixel: impl Fn(usize, usize) -> u8) -> MnistSplit {
        let mut pixels = Vec::new();
        for i in 0..n {
            pixels.extend((0..28 * 28).map(|p| pixel(i, p)));
        }
        MnistSplit {
            images: Images {
                n,
                rows: 28,
                cols: 28,
                pixels,
            },
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        }
    }

    #[test]
    fn halves_take_their_colour_within_the_severitys_noise() {
        // Background everywhere except one stroke pixel of 255 and one of 100.
        let split = images(20, |_, p| match p {
            0 => 255,
            1 => 100,
            _ => 0,
        });
        let left: Vec<u32> = (0..20).map(|i| (i % 10) as u32).collect();
        let right: Vec<u32> = (0..20).map(|i| ((i + 3) % 10) as u32).collect();
        let severity = 4;
        let x = colourise(&split, &left, &right, severity, 7).unwrap();
        let bound = 5.0 * SEVERITY_STD[severity - 1];
        let plane = 28 * 28;
        for i in 0..20 {
            for c in 0..3 {
                let at = |row: usize, col: usize| x[(i * 3 + c) * plane + row * 28 + col];
                let l = LEFT_COLOURS[left[i] as usize][c];
                let r = 1.0 - LEFT_COLOURS[right[i] as usize][c];
                assert!((at(5, 3) - l).abs() <= bound, "left {} vs {l}", at(5, 3));
                assert!((at(5, 20) - r).abs() <= bound, "right {} vs {r}", at(5, 20));
                // One colour per half and image.
                assert_eq!(at(5, 3), at(27, 13));
                assert_eq!(at(5, 20), at(0, 14));
                // A full stroke stays white; a grey one gets the colour added, clamped.
                assert_eq!(at(0, 0), 1.0);
                assert!((at(0, 1) - (100.0 / 255.0 + at(5, 3)).min(1.0)).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn the_valid_set_is_balanced_and_cut_sixty_twenty_twenty() {
        let mnist = Mnist {
            train: images(300, |i, p| ((i + p) % 7 * 40) as u8),
            test: images(1000, |i, p| ((i * 3 + p) % 5 * 60) as u8),
        };
        let s = build_splits(&mnist, &MultiColorMnistConfig::default(), 1).unwrap();
        assert_eq!(
            [s.unbiased_train.len(), s.test.len(), s.unbiased_val.len()],
            [600, 200, 200]
        );
        // Balanced: the 100 test images of each digit spread 10 per left and per right colour.
        let (left, right) = assign_colours(&mnist.test.labels, 10, 0.1, 0.1).unwrap();
        for digit in 0..10u8 {
            for colour in 0..10u32 {
                let of = |side: &[u32]| {
                    (0..1000)
                        .filter(|&i| mnist.test.labels[i] == digit && side[i] == colour)
                        .count()
                };
                assert_eq!(
                    (of(&left), of(&right)),
                    (10, 10),
                    "digit {digit} colour {colour}"
                );
            }
        }
        // The biased train set: left aligned 99% of the time, right 95% (30 per digit:
        // milestones put 30·0.99·0.95 ≈ 28 samples on the aligned pair).
        let aligned = |a: usize| {
            (0..300)
                .filter(|&i| s.train.biases[a][i] == s.train.y[i])
                .count()
        };
        assert!(
            aligned(0) >= aligned(1) && aligned(1) >= 280,
            "{} {}",
            aligned(0),
            aligned(1)
        );
        assert_eq!(s.train.n_bias_classes, vec![10, 10]);
        assert_eq!(s.train.sample_shape, vec![3, 28, 28]);
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = MultiColorMnistConfig {
            severity: 6,
            ..Default::default()
        };
        assert!(bad
            .check_settings()
            .unwrap_err()
            .to_string()
            .contains("severity"));
        let bad = MultiColorMnistConfig {
            unbiased_fractions: [0.6, 0.3, 0.2],
            ..Default::default()
        };
        assert!(bad
            .check_settings()
            .unwrap_err()
            .to_string()
            .contains("unbiased_fractions"));
    }
}
