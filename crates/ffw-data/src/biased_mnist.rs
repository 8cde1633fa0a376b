//! Biased MNIST (ReBias `ColourBiasedMNIST`): each digit class is tied to a background
//! colour with probability rho; the rest of the class is spread over the other colours.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::coloured_mnist::ColouredMnist;
use crate::dataset::{Dataset, Splits};
use crate::error::{DataError, Result};
use crate::idx::Images;
use crate::mnist::{Mnist, MnistSplit, N_CLASSES};
use crate::seeds::stream_seed;

/// Background colour (RGB) of each bias class; colour `d` is aligned with digit `d`.
pub const COLOUR_MAP: [[u8; 3]; 10] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [225, 225, 0],
    [225, 0, 225],
    [0, 255, 255],
    [255, 128, 0],
    [255, 0, 128],
    [128, 0, 255],
    [128, 128, 128],
];

/// Assigns a colour (the bias label) to each sample with the ReBias arithmetic: per
/// class of n samples (shuffled), the first `floor(n * rho)` take the class's own
/// colour; the rest are cut in order into chunks of `ceil(rest / n_confusing_labels)`,
/// chunk `i` taking `other[i]`, where `other` = the next `n_confusing_labels` labels
/// (mod 10) shuffled. There may be fewer chunks than other labels.
pub fn assign_colours<R: Rng + ?Sized>(
    labels: &[u8],
    rho: f64,
    n_confusing_labels: usize,
    rng: &mut R,
) -> Result<Vec<u8>> {
    if !(0.0..=1.0).contains(&rho) {
        return Err(DataError::Invalid(format!("rho {rho} is not in [0, 1]")));
    }
    if !(1..N_CLASSES).contains(&n_confusing_labels) {
        return Err(DataError::Invalid(format!(
            "n_confusing_labels {n_confusing_labels} is not in 1..=9"
        )));
    }
    if let Some(pos) = labels.iter().position(|&l| l as usize >= N_CLASSES) {
        return Err(DataError::Invalid(format!(
            "label {} at index {pos} is not a digit 0..9",
            labels[pos]
        )));
    }
    let mut colours = vec![0u8; labels.len()];
    for label in 0..N_CLASSES {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == label)
            .collect();
        if members.is_empty() {
            continue;
        }
        members.shuffle(rng);
        let n = members.len();
        // Same as Python's int(n * rho): truncation of the f64 product.
        let n_correlated = (n as f64 * rho).floor() as usize;
        for &i in &members[..n_correlated] {
            colours[i] = label as u8;
        }
        let mut others: Vec<u8> = (1..=n_confusing_labels)
            .map(|k| ((label + k) % N_CLASSES) as u8)
            .collect();
        others.shuffle(rng);
        let rest = &members[n_correlated..];
        if rest.is_empty() {
            continue;
        }
        let chunk = rest.len().div_ceil(n_confusing_labels);
        // ceil(rest / chunk) <= n_confusing_labels, so `others` never runs out.
        for (part, &colour) in rest.chunks(chunk).zip(&others) {
            for &i in part {
                colours[i] = colour;
            }
        }
    }
    Ok(colours)
}

/// Colours `images` as `[n, 3, rows, cols]` (CHW), normalised by `(v/255 - 0.5)/0.5`:
/// non-zero pixels become foreground 255 in all channels, zero pixels the background
/// colour `COLOUR_MAP[colours[i]]`.
pub fn colourise(images: &Images, colours: &[u8]) -> Result<Vec<f32>> {
    if colours.len() != images.n {
        return Err(DataError::Invalid(format!(
            "{} colours for {} images",
            colours.len(),
            images.n
        )));
    }
    if let Some(&c) = colours.iter().find(|&&c| c as usize >= COLOUR_MAP.len()) {
        return Err(DataError::Invalid(format!("colour {c} is not in 0..9")));
    }
    let len = images.image_len();
    let foreground = normalise(255);
    let mut out = Vec::with_capacity(images.n * 3 * len);
    for (i, &colour) in colours.iter().enumerate() {
        let image = images.image(i);
        for &channel in &COLOUR_MAP[colour as usize] {
            let background = normalise(channel);
            out.extend(
                image
                    .iter()
                    .map(|&p| if p != 0 { foreground } else { background }),
            );
        }
    }
    Ok(out)
}

/// torchvision's `ToTensor` then `Normalize(0.5, 0.5)`, in f32 like PyTorch.
fn normalise(v: u8) -> f32 {
    (v as f32 / 255.0 - 0.5) / 0.5
}

/// Colours `split` with correlation `rho` (nine confusing colours) into a dataset of
/// `[3, rows, cols]` samples with one bias attribute, the colour.
pub fn build(split: &MnistSplit, rho: f64, seed: u64) -> Result<Dataset> {
    let colours = assign_colours(
        &split.labels,
        rho,
        N_CLASSES - 1,
        &mut ChaCha8Rng::seed_from_u64(seed),
    )?;
    to_dataset(split, &colours)
}

fn to_dataset(split: &MnistSplit, colours: &[u8]) -> Result<Dataset> {
    Ok(Dataset {
        x: colourise(&split.images, colours)?,
        sample_shape: vec![3, split.images.rows, split.images.cols],
        y: split.labels.iter().map(|&l| l as u32).collect(),
        n_classes: N_CLASSES,
        biases: vec![colours.iter().map(|&c| c as u32).collect()],
        n_bias_classes: vec![COLOUR_MAP.len()],
        // Class d's own colour is colour d.
        aligned: vec![(0..N_CLASSES as u32).collect()],
    })
}

/// Sizes and correlations of the four Biased MNIST splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BiasedMnistConfig {
    /// Directory with the four MNIST IDX files (raw or .gz).
    pub dir: PathBuf,
    /// Colour-label correlation of the biased train set.
    pub rho: f64,
    /// Use only this many MNIST train images (a seeded sample) for biased training.
    pub n_train: Option<usize>,
    pub n_unbiased_train: usize,
    pub n_unbiased_val: usize,
    /// Use only this many MNIST test images (a seeded sample).
    pub n_test: Option<usize>,
    /// Correlation of the unbiased sets: 0.1 = every colour equally likely.
    pub unbiased_rho: f64,
}

impl Default for BiasedMnistConfig {
    /// The paper's setting at rho = 0.99: 10,000 + 10,000 unbiased images.
    fn default() -> Self {
        BiasedMnistConfig {
            dir: PathBuf::from("data/mnist"),
            rho: 0.99,
            n_train: None,
            n_unbiased_train: 10_000,
            n_unbiased_val: 10_000,
            n_test: None,
            unbiased_rho: 0.1,
        }
    }
}

/// Builds the four splits the authors use:
/// - `train`: MNIST train (or `n_train` of it, seeded sample) coloured with `rho`;
/// - `unbiased_train`, `unbiased_val`: disjoint seeded samples of the MNIST train
///   images coloured with `unbiased_rho`. As in the authors' code the whole train set
///   is recoloured and then sampled, so these may share images with `train`;
/// - `test`: MNIST test (or `n_test` of it) coloured with `unbiased_rho`.
pub fn build_splits(mnist: &Mnist, cfg: &BiasedMnistConfig, seed: u64) -> Result<Splits> {
    let n_avail = mnist.train.len();
    let n_unbiased = cfg.n_unbiased_train.checked_add(cfg.n_unbiased_val);
    if n_unbiased.is_none_or(|n| n > n_avail) {
        return Err(DataError::Invalid(format!(
            "n_unbiased_train {} + n_unbiased_val {} exceeds the {n_avail} MNIST train images",
            cfg.n_unbiased_train, cfg.n_unbiased_val
        )));
    }
    for (name, size) in [
        ("n_train", cfg.n_train),
        ("n_unbiased_train", Some(cfg.n_unbiased_train)),
        ("n_unbiased_val", Some(cfg.n_unbiased_val)),
        ("n_test", cfg.n_test),
    ] {
        if size == Some(0) {
            return Err(DataError::Invalid(format!("{name} must be at least 1")));
        }
    }

    // One independent stream per random choice, so changing one size leaves the
    // other splits' draws untouched.
    let train_split = sample(
        &mnist.train,
        cfg.n_train,
        stream_seed(seed, 1),
        "n_train",
        "train",
    )?;
    let train = build(&train_split, cfg.rho, stream_seed(seed, 2))?;

    let unbiased_colours = assign_colours(
        &mnist.train.labels,
        cfg.unbiased_rho,
        N_CLASSES - 1,
        &mut ChaCha8Rng::seed_from_u64(stream_seed(seed, 3)),
    )?;
    let mut order: Vec<usize> = (0..n_avail).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(stream_seed(seed, 4)));
    let (train_idx, rest) = order.split_at(cfg.n_unbiased_train);
    let val_idx = &rest[..cfg.n_unbiased_val];
    let unbiased = |indices: &[usize]| {
        let colours: Vec<u8> = indices.iter().map(|&i| unbiased_colours[i]).collect();
        to_dataset(&mnist.train.take(indices), &colours)
    };

    let test_split = sample(
        &mnist.test,
        cfg.n_test,
        stream_seed(seed, 5),
        "n_test",
        "test",
    )?;
    Ok(Splits {
        train,
        unbiased_train: unbiased(train_idx)?,
        unbiased_val: unbiased(val_idx)?,
        test: build(&test_split, cfg.unbiased_rho, stream_seed(seed, 6))?,
    })
}

/// The whole split, or the first `n` of a seeded permutation of it.
pub(crate) fn sample(
    split: &MnistSplit,
    n: Option<usize>,
    seed: u64,
    name: &str,
    what: &str,
) -> Result<MnistSplit> {
    let Some(n) = n else {
        return Ok(split.clone());
    };
    if n > split.len() {
        return Err(DataError::Invalid(format!(
            "{name} {n} exceeds the {} MNIST {what} images",
            split.len()
        )));
    }
    let mut order: Vec<usize> = (0..split.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    Ok(split.take(&order[..n]))
}

impl ColouredMnist for BiasedMnistConfig {
    const NAME: &'static str = "biased_mnist";

    fn digits_dir(&self) -> &Path {
        &self.dir
    }

    fn check_settings(&self) -> Result<()> {
        for (key, rho) in [("rho", self.rho), ("unbiased_rho", self.unbiased_rho)] {
            if !(0.0..=1.0).contains(&rho) {
                return Err(DataError::Invalid(format!(
                    "data.{key}: must be in [0, 1], got {rho}"
                )));
            }
        }
        for (key, v) in [
            ("n_unbiased_train", Some(self.n_unbiased_train)),
            ("n_unbiased_val", Some(self.n_unbiased_val)),
            ("n_train", self.n_train),
            ("n_test", self.n_test),
        ] {
            if v == Some(0) {
                return Err(DataError::Invalid(format!("data.{key}: must be > 0")));
            }
        }
        Ok(())
    }

    fn colour_splits(&self, mnist: &Mnist, seed: u64) -> Result<Splits> {
        build_splits(mnist, self, seed)
    }

    fn varied(&self) -> BTreeMap<String, f64> {
        BTreeMap::from([("rho".to_string(), self.rho)])
    }

    fn vary(&mut self, name: &str, value: f64) -> bool {
        let known = name == "rho";
        if known {
            self.rho = value;
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels: `counts[d]` samples of digit d, interleaved.
    fn labels_with_counts(counts: &[usize]) -> Vec<u8> {
        let mut labels = Vec::new();
        let max = counts.iter().copied().max().unwrap_or(0);
        for k in 0..max {
            for (d, &c) in counts.iter().enumerate() {
                if k < c {
                    labels.push(d as u8);
                }
            }
        }
        labels
    }

    /// (own-colour count, sorted non-zero counts of the other colours) for `label`.
    fn class_counts(labels: &[u8], colours: &[u8], label: u8) -> (usize, Vec<usize>) {
        let mut per = [0usize; 10];
        for (&l, &c) in labels.iter().zip(colours) {
            if l == label {
                per[c as usize] += 1;
            }
        }
        let own = per[label as usize];
        per[label as usize] = 0;
        let mut others: Vec<usize> = per.into_iter().filter(|&c| c > 0).collect();
        others.sort_unstable();
        (own, others)
    }

    fn counts_for(n: usize, rho: f64, n_confusing: usize, seed: u64) -> (usize, Vec<usize>) {
        let labels = labels_with_counts(&[n, 7, 3]);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let colours = assign_colours(&labels, rho, n_confusing, &mut rng).unwrap();
        class_counts(&labels, &colours, 0)
    }

    #[test]
    fn per_class_colour_counts_follow_the_rebias_arithmetic() {
        // 1000 * 0.99 = 990; 10 left in chunks of ceil(10/9) = 2: five colours get 2.
        assert_eq!(counts_for(1000, 0.99, 9, 0), (990, vec![2; 5]));
        // floor(90.9) = 90; 11 left, chunks of 2: 2,2,2,2,2,1.
        assert_eq!(counts_for(101, 0.9, 9, 1), (90, vec![1, 2, 2, 2, 2, 2]));
        // 1000 * 0.995 is 995.0 in f64 (Python: int(1000*0.995) == 995); 5 chunks of 1.
        assert_eq!(counts_for(1000, 0.995, 9, 2), (995, vec![1; 5]));
        // 100 * 0.29 is 28.999999999999996 in f64: Python's int() gives 28.
        assert_eq!(counts_for(100, 0.29, 9, 3), (28, vec![8; 9]));
        // MNIST train digit 0: 5923 * 0.99 -> 5863; 60 left in chunks of 7: 8x7 + 4.
        assert_eq!(
            counts_for(5923, 0.99, 9, 4),
            (5863, vec![4, 7, 7, 7, 7, 7, 7, 7, 7])
        );
        // 1000 * 0.997 -> 997: 3 chunks of 1; 1000 * 0.999 -> 999: one chunk.
        assert_eq!(counts_for(1000, 0.997, 9, 5), (997, vec![1; 3]));
        assert_eq!(counts_for(1000, 0.999, 9, 5), (999, vec![1]));
        // Unbiased rho 0.1 on 1000: 100 own, 900 in nine chunks of 100.
        assert_eq!(counts_for(1000, 0.1, 9, 6), (100, vec![100; 9]));
        // Extremes.
        assert_eq!(counts_for(50, 1.0, 9, 7), (50, vec![]));
        assert_eq!(counts_for(90, 0.0, 9, 7), (0, vec![10; 9]));
    }

    #[test]
    fn fewer_confusing_labels_use_the_next_labels_only() {
        let labels = labels_with_counts(&[3, 5, 4, 100]);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let colours = assign_colours(&labels, 0.5, 3, &mut rng).unwrap();
        // Class 3: 50 own, 50 in chunks of ceil(50/3) = 17 over colours 4, 5, 6.
        assert_eq!(class_counts(&labels, &colours, 3), (50, vec![16, 17, 17]));
        for (&l, &c) in labels.iter().zip(&colours) {
            if l == 3 {
                assert!([3, 4, 5, 6].contains(&c), "colour {c}");
            }
        }
    }

    #[test]
    fn every_class_uses_its_own_count_and_is_deterministic() {
        let counts = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
        let labels = labels_with_counts(&counts);
        let colour =
            |seed| assign_colours(&labels, 0.99, 9, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let a = colour(11);
        for (d, &n) in counts.iter().enumerate() {
            let (own, others) = class_counts(&labels, &a, d as u8);
            assert_eq!(own, (n as f64 * 0.99).floor() as usize, "digit {d}");
            assert_eq!(own + others.iter().sum::<usize>(), n);
        }
        assert_eq!(a, colour(11));
        assert_ne!(a, colour(12));
    }

    #[test]
    fn bad_parameters_are_invalid() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (rho, k) in [(1.5, 9), (-0.1, 9), (f64::NAN, 9), (0.5, 0), (0.5, 10)] {
            let err = assign_colours(&[0, 1], rho, k, &mut rng).unwrap_err();
            assert!(matches!(err, DataError::Invalid(_)), "{rho} {k}: {err:?}");
        }
        assert!(assign_colours(&[0, 10], 0.5, 9, &mut rng).is_err());
    }

    #[test]
    fn colourise_sets_foreground_white_and_background_to_the_colour() {
        let images = Images {
            n: 2,
            rows: 2,
            cols: 2,
            pixels: vec![0, 255, 7, 0, 1, 0, 0, 0],
        };
        let x = colourise(&images, &[6, 2]).unwrap();
        assert_eq!(x.len(), 2 * 3 * 4);
        let mid = (128.0f32 / 255.0 - 0.5) / 0.5;
        // Image 0, colour 6 = (255, 128, 0).
        assert_eq!(&x[0..4], &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(&x[4..8], &[mid, 1.0, 1.0, mid]);
        assert_eq!(&x[8..12], &[-1.0, 1.0, 1.0, -1.0]);
        // Image 1, colour 2 = (0, 0, 255); pixel value 1 already counts as foreground.
        assert_eq!(&x[12..16], &[1.0, -1.0, -1.0, -1.0]);
        assert_eq!(&x[16..20], &[1.0, -1.0, -1.0, -1.0]);
        assert_eq!(&x[20..24], &[1.0, 1.0, 1.0, 1.0]);
        assert!((mid - 0.003_921_6).abs() < 1e-6);
        assert!(colourise(&images, &[1]).is_err());
        assert!(colourise(&images, &[1, 10]).is_err());
    }

    /// Image `i` has the bits of `i + 1` as its foreground pattern (so it can be
    /// recognised after colouring); label `i % 10`.
    fn coded_split(n: usize, offset: usize) -> MnistSplit {
        let (rows, cols) = (4, 4);
        let pixels = (0..n)
            .flat_map(|i| {
                (0..rows * cols).map(move |p| {
                    if (i + offset + 1) >> p & 1 == 1 {
                        200
                    } else {
                        0
                    }
                })
            })
            .collect();
        MnistSplit {
            images: Images {
                n,
                rows,
                cols,
                pixels,
            },
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        }
    }

    /// The image ids (`i + offset`) of a coloured dataset built from `coded_split`s.
    fn decode_ids(d: &Dataset) -> Vec<usize> {
        let plane = d.sample_shape[1] * d.sample_shape[2];
        (0..d.len())
            .map(|k| {
                let s = &d.x[k * 3 * plane..(k + 1) * 3 * plane];
                // Foreground iff white in all three channels; no background colour is white.
                (0..plane)
                    .filter(|&p| (0..3).all(|c| s[c * plane + p] == 1.0))
                    .map(|p| 1 << p)
                    .sum::<usize>()
                    - 1
            })
            .collect()
    }

    fn coded_mnist() -> Mnist {
        Mnist {
            train: coded_split(300, 0),
            test: coded_split(80, 1000),
        }
    }

    #[test]
    fn build_keeps_labels_and_colours_aligned() {
        let split = coded_split(200, 0);
        let d = build(&split, 0.9, 3).unwrap();
        assert_eq!(d.sample_shape, vec![3, 4, 4]);
        assert_eq!(
            (d.len(), d.n_classes, d.n_bias_classes.clone()),
            (200, 10, vec![10])
        );
        assert_eq!(decode_ids(&d), (0..200).collect::<Vec<_>>());
        assert_eq!(
            d.y,
            split.labels.iter().map(|&l| l as u32).collect::<Vec<_>>()
        );
        let own = d.y.iter().zip(&d.biases[0]).filter(|(y, b)| y == b).count();
        assert_eq!(own, 10 * 18); // floor(20 * 0.9) per class
        assert_eq!(d, build(&split, 0.9, 3).unwrap());
    }

    #[test]
    fn build_splits_sizes_sources_and_determinism() {
        let mnist = coded_mnist();
        let cfg = BiasedMnistConfig {
            dir: PathBuf::new(),
            rho: 0.9,
            n_train: Some(250),
            n_unbiased_train: 120,
            n_unbiased_val: 100,
            n_test: Some(50),
            unbiased_rho: 0.1,
        };
        let s = build_splits(&mnist, &cfg, 17).unwrap();
        assert_eq!(
            [
                s.train.len(),
                s.unbiased_train.len(),
                s.unbiased_val.len(),
                s.test.len()
            ],
            [250, 120, 100, 50]
        );
        let distinct = |ids: &[usize]| {
            let mut v = ids.to_vec();
            v.sort_unstable();
            v.dedup();
            v.len() == ids.len()
        };
        let ids: Vec<Vec<usize>> = [&s.train, &s.unbiased_train, &s.unbiased_val, &s.test]
            .iter()
            .map(|d| decode_ids(d))
            .collect();
        for (d, id) in [&s.train, &s.unbiased_train, &s.unbiased_val, &s.test]
            .iter()
            .zip(&ids)
        {
            assert!(distinct(id));
            // Each sample keeps its own image's label.
            assert!(id.iter().zip(&d.y).all(|(&i, &y)| (i % 10) as u32 == y));
        }
        assert!(
            ids[0]
                .iter()
                .chain(&ids[1])
                .chain(&ids[2])
                .all(|&i| i < 300),
            "train sets from MNIST train"
        );
        assert!(
            ids[3].iter().all(|&i| (1000..1080).contains(&i)),
            "test from MNIST test"
        );
        let unbiased: Vec<usize> = ids[1].iter().chain(&ids[2]).copied().collect();
        assert!(distinct(&unbiased), "unbiased train and val are disjoint");

        // Biased train coloured after sampling: exact floor(n_c * rho) per class.
        for c in 0..10u32 {
            let n_c = s.train.y.iter().filter(|&&y| y == c).count();
            let own = s
                .train
                .y
                .iter()
                .zip(&s.train.biases[0])
                .filter(|(&y, &b)| y == c && b == c)
                .count();
            assert_eq!(own, (n_c as f64 * 0.9).floor() as usize);
        }
        // rho 0.1 makes the unbiased sets far from aligned.
        let aligned = s
            .unbiased_train
            .y
            .iter()
            .zip(&s.unbiased_train.biases[0])
            .filter(|(y, b)| y == b)
            .count();
        assert!(aligned < 40, "{aligned} aligned of 120");

        assert_eq!(s, build_splits(&mnist, &cfg, 17).unwrap());
        let other = build_splits(&mnist, &cfg, 18).unwrap();
        assert_ne!(s.train, other.train);
        assert_ne!(s.unbiased_train, other.unbiased_train);

        let full = build_splits(
            &mnist,
            &BiasedMnistConfig {
                n_train: None,
                n_test: None,
                ..cfg.clone()
            },
            17,
        )
        .unwrap();
        assert_eq!((full.train.len(), full.test.len()), (300, 80));
        assert_eq!(decode_ids(&full.train), (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn build_splits_rejects_impossible_sizes() {
        let mnist = coded_mnist();
        let base = BiasedMnistConfig {
            n_unbiased_train: 100,
            n_unbiased_val: 100,
            ..Default::default()
        };
        for (cfg, needle) in [
            (
                BiasedMnistConfig {
                    n_train: Some(301),
                    ..base.clone()
                },
                "n_train 301 exceeds the 300",
            ),
            (
                BiasedMnistConfig {
                    n_unbiased_val: 201,
                    ..base.clone()
                },
                "100 + n_unbiased_val 201 exceeds the 300",
            ),
            (
                BiasedMnistConfig {
                    n_test: Some(81),
                    ..base.clone()
                },
                "n_test 81 exceeds the 80",
            ),
            (
                BiasedMnistConfig {
                    n_unbiased_train: 0,
                    ..base.clone()
                },
                "n_unbiased_train must be at least 1",
            ),
            (
                BiasedMnistConfig {
                    rho: 2.0,
                    ..base.clone()
                },
                "rho 2",
            ),
        ] {
            let err = build_splits(&mnist, &cfg, 0).unwrap_err();
            assert!(matches!(err, DataError::Invalid(_)), "{err:?}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
