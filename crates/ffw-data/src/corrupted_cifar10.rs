//! Corrupted CIFAR-10 (LfF's "type 0", PROTOCOL §5): each class is tied to one corruption of
//! CIFAR-10-C ([`TYPE0`]); a share ρ of each class's train images carries the class's own
//! corruption and the rest is spread over the nine others by LfF's milestones; the test batch,
//! every corruption equally often per class, is the balanced set FFW cuts 60/20/20. The bias
//! attribute is the corruption's index. Built from CIFAR-10's official files (`source =
//! "generate"`), or read from the widely shared pre-built folders (`source = "prebuilt"`).
//! Built sets are cached beside the data, so the jobs of a sweep build each one once.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::benchmark::Benchmark;
use crate::cifar10::{self, Cifar10Split, IMAGE_LEN, N_CLASSES, SIDE};
use crate::cifar10c_folders;
use crate::corruptions::{SEVERITIES, TYPE0};
use crate::dataset::{unbiased_splits, validate_fractions, Dataset, Splits};
use crate::error::{DataError, Result};
use crate::milestones::aligned_labels;
use crate::seeds::{fnv1a, stream_seed};

/// The per-channel mean and standard deviation the protocol normalises with.
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const STD: [f32; 3] = [0.2023, 0.1994, 0.2010];

/// Where the images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Corrupt CIFAR-10's official files (binary or python distribution) here.
    Generate,
    /// Read the pre-built `<0.5pct|1pct|2pct|5pct>/{align,conflict}/` and `test/` folders.
    Prebuilt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorruptedCifar10Config {
    /// `generate`: the CIFAR-10 directory (`cifar-10-batches-bin/` or `cifar-10-batches-py/`,
    /// or the folder holding one); `prebuilt`: the folder holding `0.5pct/` … `5pct/` and
    /// `test/` (the release's `cifar10c/`), or the folder holding that.
    pub dir: PathBuf,
    pub source: Source,
    /// Share of each class's train images carrying the class's own corruption. The pre-built
    /// folders exist for 0.995, 0.99, 0.98 and 0.95 only.
    pub rho: f64,
    /// CIFAR-10-C severity 1..=5 of every corruption (`generate` only).
    pub severity: usize,
    /// Use only this many train images (a seeded sample), before corrupting.
    pub n_train: Option<usize>,
    /// Use only this many test images (a seeded sample) for the balanced set.
    pub n_test: Option<usize>,
    /// Fractions of the balanced set that become the unbiased train, test and val splits.
    pub unbiased_fractions: [f64; 3],
}

impl Default for CorruptedCifar10Config {
    /// ρ 0.99 at severity 5, LfF's "Severity4" (its `make_dataset.py` passes `severity + 1`
    /// to the CIFAR-10-C functions), which the shared pre-built folders were made with.
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/cifar10"),
            source: Source::Generate,
            rho: 0.99,
            severity: 5,
            n_train: None,
            n_test: None,
            unbiased_fractions: [0.6, 0.2, 0.2],
        }
    }
}

impl Benchmark for CorruptedCifar10Config {
    fn name(&self) -> &'static str {
        "corrupted_cifar10"
    }

    fn validate(&self) -> Result<()> {
        if !(self.rho > 0.0 && self.rho < 1.0) {
            return Err(DataError::Invalid(format!(
                "data.rho: must be in (0, 1), got {}",
                self.rho
            )));
        }
        if self.source == Source::Prebuilt && cifar10c_folders::percent_folder(self.rho).is_none() {
            return Err(DataError::Invalid(format!(
                "data.rho: the pre-built folders exist for ρ = {} only, got {}",
                cifar10c_folders::FOLDERS
                    .map(|(rho, _)| rho.to_string())
                    .join(", "),
                self.rho
            )));
        }
        if !SEVERITIES.contains(&self.severity) {
            return Err(DataError::Invalid(format!(
                "data.severity: must be in 1..=5, got {}",
                self.severity
            )));
        }
        for (key, n) in [("n_train", self.n_train), ("n_test", self.n_test)] {
            if n == Some(0) {
                return Err(DataError::Invalid(format!("data.{key}: must be > 0")));
            }
        }
        validate_fractions(&self.unbiased_fractions)
    }

    fn check_files(&self) -> Result<()> {
        match self.source {
            Source::Generate => cifar10::check_dir(&self.dir),
            Source::Prebuilt => cifar10c_folders::check(&self.dir, self.rho),
        }
    }

    fn splits(&self, seed: u64) -> Result<Splits> {
        self.validate()?;
        let built = cached(&self.dir, &cache_key(self, seed)?, || self.build(seed))?;
        let train = to_dataset(&built.train);
        let balanced = to_dataset(&built.test);
        unbiased_splits(
            train,
            &balanced,
            &self.unbiased_fractions,
            stream_seed(seed, 5),
            "test images",
        )
    }

    fn n_classes(&self) -> usize {
        N_CLASSES
    }

    fn input_len(&self) -> usize {
        IMAGE_LEN
    }

    fn params(&self) -> BTreeMap<String, f64> {
        BTreeMap::from([("rho".to_string(), self.rho)])
    }

    fn set_param(&mut self, name: &str, value: f64) -> bool {
        let known = name == "rho";
        if known {
            self.rho = value;
        }
        known
    }
}

/// Images with their class and corruption labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Corrupted {
    pub images: Cifar10Split,
    pub corruption: Vec<u8>,
}

/// The biased train set and the balanced test set, as bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub train: Corrupted,
    pub test: Corrupted,
}

impl CorruptedCifar10Config {
    /// The two sets, before caching and normalisation.
    pub fn build(&self, seed: u64) -> Result<Built> {
        let (train, test) = match self.source {
            Source::Generate => {
                let cifar = cifar10::load_dir(&self.dir)?;
                let train = sample(&cifar.train, self.n_train, stream_seed(seed, 1), "n_train")?;
                let test = sample(&cifar.test, self.n_test, stream_seed(seed, 2), "n_test")?;
                (
                    corrupt(train, self.rho, self.severity, stream_seed(seed, 3))?,
                    corrupt(test, 0.1, self.severity, stream_seed(seed, 4))?,
                )
            }
            Source::Prebuilt => {
                let train = cifar10c_folders::read_train(&self.dir, self.rho)?;
                let test = cifar10c_folders::read_test(&self.dir)?;
                (
                    sample_corrupted(train, self.n_train, stream_seed(seed, 1), "n_train")?,
                    sample_corrupted(test, self.n_test, stream_seed(seed, 2), "n_test")?,
                )
            }
        };
        Ok(Built { train, test })
    }
}

fn seeded_order(n: usize, keep: Option<usize>, seed: u64, key: &str) -> Result<Option<Vec<usize>>> {
    let Some(keep) = keep else {
        return Ok(None);
    };
    if keep > n {
        return Err(DataError::Invalid(format!(
            "data.{key}: {keep} exceeds the {n} images available"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order.truncate(keep);
    Ok(Some(order))
}

/// The whole split, or the first `n` of a seeded permutation of it.
fn sample(split: &Cifar10Split, n: Option<usize>, seed: u64, key: &str) -> Result<Cifar10Split> {
    Ok(match seeded_order(split.len(), n, seed, key)? {
        Some(order) => split.take(&order),
        None => split.clone(),
    })
}

fn sample_corrupted(set: Corrupted, n: Option<usize>, seed: u64, key: &str) -> Result<Corrupted> {
    Ok(match seeded_order(set.images.len(), n, seed, key)? {
        Some(order) => Corrupted {
            images: set.images.take(&order),
            corruption: order.iter().map(|&i| set.corruption[i]).collect(),
        },
        None => set,
    })
}

/// Assigns corruptions by LfF's milestones (own corruption with probability `aligned`) and
/// applies them in parallel; image `i` draws from stream `i` of a ChaCha8 seeded by `seed`,
/// so the result does not depend on the thread count.
pub fn corrupt(
    images: Cifar10Split,
    aligned: f64,
    severity: usize,
    seed: u64,
) -> Result<Corrupted> {
    let corruption: Vec<u8> = aligned_labels(&images.labels, N_CLASSES, aligned)?
        .into_iter()
        .map(|c| c as u8)
        .collect();
    let pixels: Vec<u8> = (0..images.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            TYPE0[corruption[i] as usize].apply(images.image(i), severity, &mut rng)
        })
        .collect();
    Ok(Corrupted {
        images: Cifar10Split {
            pixels,
            labels: images.labels,
        },
        corruption,
    })
}

/// `[3, 32, 32]` samples normalised per channel, the corruption as the one bias attribute.
fn to_dataset(set: &Corrupted) -> Dataset {
    let plane = SIDE * SIDE;
    let x = set
        .images
        .pixels
        .par_chunks(IMAGE_LEN)
        .flat_map_iter(|image| {
            image
                .iter()
                .enumerate()
                .map(move |(p, &v)| (v as f32 / 255.0 - MEAN[p / plane]) / STD[p / plane])
        })
        .collect();
    Dataset {
        x,
        sample_shape: vec![3, SIDE, SIDE],
        y: set.images.labels.iter().map(|&l| l as u32).collect(),
        n_classes: N_CLASSES,
        biases: vec![set.corruption.iter().map(|&c| c as u32).collect()],
        n_bias_classes: vec![TYPE0.len()],
        // Class k's own corruption is corruption k.
        aligned: vec![(0..N_CLASSES as u32).collect()],
    }
}

/// Bumped whenever what a cached file holds for the same settings changes.
const CACHE_VERSION: u32 = 1;
const CACHE_MAGIC: &[u8; 8] = b"FFWCC10\0";

/// Every setting the built sets depend on, the seed where it matters, and the size and
/// modification time of the source files, hashed.
fn cache_key(cfg: &CorruptedCifar10Config, seed: u64) -> Result<String> {
    let sources = match cfg.source {
        Source::Generate => cifar10::source_files(&cfg.dir)?,
        Source::Prebuilt => cifar10c_folders::source_folders(&cfg.dir, cfg.rho),
    };
    let mut text = format!(
        "v{CACHE_VERSION} {:?} rho={} severity={} n_train={:?} n_test={:?} seed={seed}",
        cfg.source, cfg.rho, cfg.severity, cfg.n_train, cfg.n_test
    );
    for path in sources {
        let meta = std::fs::metadata(&path).map_err(|e| DataError::io(&path, e))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        text.push_str(&format!(" {}:{}:{modified}", path.display(), meta.len()));
    }
    Ok(format!(
        "corrupted_cifar10-{:016x}.bin",
        fnv1a(text.as_bytes())
    ))
}

/// The cached sets under `dir/ffw-cache/name`, or `build`'s, written there atomically. The
/// cache is only a shortcut: an unreadable or damaged file is rebuilt, and a data directory
/// that cannot be written to (read-only shared storage) just goes without one.
fn cached(dir: &Path, name: &str, build: impl FnOnce() -> Result<Built>) -> Result<Built> {
    let path = dir.join("ffw-cache").join(name);
    if let Some(built) = std::fs::read(&path).ok().and_then(|b| decode(&b)) {
        return Ok(built);
    }
    let built = build()?;
    let _ = std::fs::create_dir_all(path.parent().expect("a file under ffw-cache"))
        .and_then(|_| crate::atomic::write(&path, &encode(&built)));
    Ok(built)
}

fn encode(built: &Built) -> Vec<u8> {
    let mut out = CACHE_MAGIC.to_vec();
    out.extend(CACHE_VERSION.to_le_bytes());
    for set in [&built.train, &built.test] {
        out.extend((set.images.len() as u64).to_le_bytes());
        out.extend(&set.images.labels);
        out.extend(&set.corruption);
        out.extend(&set.images.pixels);
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Built> {
    let rest = bytes.strip_prefix(CACHE_MAGIC.as_slice())?;
    let (version, mut rest) = rest.split_at_checked(4)?;
    if version != CACHE_VERSION.to_le_bytes() {
        return None;
    }
    let mut set = || -> Option<Corrupted> {
        let (n, r) = rest.split_at_checked(8)?;
        let n = u64::from_le_bytes(n.try_into().ok()?) as usize;
        let (labels, r) = r.split_at_checked(n)?;
        let (corruption, r) = r.split_at_checked(n)?;
        let (pixels, r) = r.split_at_checked(n.checked_mul(IMAGE_LEN)?)?;
        rest = r;
        let valid = |v: &[u8]| v.iter().all(|&c| (c as usize) < N_CLASSES);
        (valid(labels) && valid(corruption)).then(|| Corrupted {
            images: Cifar10Split {
                pixels: pixels.to_vec(),
                labels: labels.to_vec(),
            },
            corruption: corruption.to_vec(),
        })
    };
    let (train, test) = (set()?, set()?);
    rest.is_empty().then_some(Built { train, test })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cifar10::tests::fixture;

    /// A CIFAR-10 binary directory of `per_batch` images per train batch and `n_test` test
    /// images, 10 of each class per 100.
    pub(crate) fn write_cifar(dir: &Path, per_batch: usize, n_test: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for k in 1..=5 {
            let bytes = cifar10::to_binary(&fixture(per_batch, k));
            std::fs::write(dir.join(format!("data_batch_{k}.bin")), bytes).unwrap();
        }
        let test = cifar10::to_binary(&fixture(n_test, 0));
        std::fs::write(dir.join("test_batch.bin"), test).unwrap();
    }

    fn config(dir: &Path, rho: f64) -> CorruptedCifar10Config {
        CorruptedCifar10Config {
            dir: dir.to_path_buf(),
            rho,
            ..Default::default()
        }
    }

    fn count(set: &Corrupted, class: u8, corruption: u8) -> usize {
        (0..set.images.len())
            .filter(|&i| set.images.labels[i] == class && set.corruption[i] == corruption)
            .count()
    }

    /// 200 images per class. Class c's own corruption comes after c others in the milestone
    /// order, so it gets `round(200(c·s + ρ)) − round(200·c·s)` images, s = (1 − ρ)/9, and
    /// the other nine share the rest within one image of each other; the test set is balanced.
    #[test]
    fn group_counts_follow_rho_and_the_test_set_is_balanced() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar(tmp.path(), 400, 300);
        for rho in [0.995, 0.99, 0.98, 0.95] {
            let built = config(tmp.path(), rho).build(1).unwrap();
            assert_eq!(built.train.images.len(), 2000);
            let s = (1.0 - rho) / 9.0;
            for class in 0..10u8 {
                let before = 200.0 * class as f64 * s;
                let aligned =
                    ((before + 200.0 * rho).round_ties_even() - before.round_ties_even()) as usize;
                assert!(aligned.abs_diff((200.0 * rho) as usize) <= 1);
                assert_eq!(count(&built.train, class, class), aligned, "ρ {rho}");
                let conflicting: Vec<usize> = (0..10u8)
                    .filter(|&c| c != class)
                    .map(|c| count(&built.train, class, c))
                    .collect();
                assert_eq!(conflicting.iter().sum::<usize>(), 200 - aligned);
                let (lo, hi) = (
                    conflicting.iter().min().unwrap(),
                    conflicting.iter().max().unwrap(),
                );
                assert!(hi - lo <= 1, "ρ {rho} class {class}: {conflicting:?}");
            }
            for class in 0..10u8 {
                for c in 0..10u8 {
                    assert_eq!(
                        count(&built.test, class, c),
                        3,
                        "class {class} corruption {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_image_carries_its_corruption_and_the_build_is_seeded() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar(tmp.path(), 20, 100);
        let cfg = config(tmp.path(), 0.95);
        let a = cfg.build(3).unwrap();
        assert_eq!(a, cfg.build(3).unwrap());
        assert_ne!(
            a.test.images.pixels,
            cfg.build(4).unwrap().test.images.pixels
        );
        // Test image i is the fixture's image i under its corruption, with stream i.
        let original = fixture(100, 0);
        for i in [0, 37, 99] {
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(3, 4));
            rng.set_stream(i as u64);
            let expected =
                TYPE0[a.test.corruption[i] as usize].apply(original.image(i), 5, &mut rng);
            assert_eq!(a.test.images.image(i), &expected[..]);
        }
    }

    #[test]
    fn splits_are_normalised_cut_and_cached() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar(tmp.path(), 30, 200);
        let cfg = CorruptedCifar10Config {
            n_train: Some(120),
            ..config(tmp.path(), 0.9)
        };
        let s = cfg.splits(2).unwrap();
        assert_eq!(s.train.len(), 120);
        assert_eq!(
            [s.unbiased_train.len(), s.test.len(), s.unbiased_val.len()],
            [120, 40, 40]
        );
        assert_eq!(s.train.sample_shape, vec![3, 32, 32]);
        assert_eq!(s.train.n_bias_classes, vec![10]);
        let built = cfg.build(2).unwrap();
        let v = built.train.images.pixels[1024];
        assert!((s.train.x[1024] - (v as f32 / 255.0 - MEAN[1]) / STD[1]).abs() < 1e-6);

        // One cache file, read back by the next call; another seed, another file.
        let cache = tmp.path().join("ffw-cache");
        let files = || std::fs::read_dir(&cache).unwrap().count();
        assert_eq!(files(), 1);
        assert_eq!(cfg.splits(2).unwrap(), s);
        assert_eq!(files(), 1);
        cfg.splits(3).unwrap();
        assert_eq!(files(), 2);
        // A damaged cache file is rebuilt, not trusted.
        let name = cache_key(&cfg, 2).unwrap();
        std::fs::write(cache.join(&name), b"FFWCC10\0garbage").unwrap();
        assert_eq!(cfg.splits(2).unwrap(), s);
        assert_eq!(
            decode(&std::fs::read(cache.join(&name)).unwrap()),
            Some(built)
        );
    }

    #[test]
    fn the_prebuilt_source_reads_the_release_folders() {
        let tmp = tempfile::tempdir().unwrap();
        crate::cifar10c_folders::tests::write_release(tmp.path());
        let cfg = CorruptedCifar10Config {
            source: Source::Prebuilt,
            ..config(tmp.path(), 0.98)
        };
        cfg.check_files().unwrap();
        let s = cfg.splits(0).unwrap();
        assert_eq!(s.train.len(), 40);
        assert_eq!(
            [s.unbiased_train.len(), s.test.len(), s.unbiased_val.len()],
            [60, 20, 20]
        );
        let conflicting = (0..40).filter(|&i| !s.train.is_aligned(0, i)).count();
        assert_eq!(conflicting, 10);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let tmp = tempfile::tempdir().unwrap();
        for (cfg, key) in [
            (config(tmp.path(), 1.0), "data.rho"),
            (
                CorruptedCifar10Config {
                    source: Source::Prebuilt,
                    ..config(tmp.path(), 0.9)
                },
                "data.rho",
            ),
            (
                CorruptedCifar10Config {
                    severity: 0,
                    ..config(tmp.path(), 0.9)
                },
                "data.severity",
            ),
            (
                CorruptedCifar10Config {
                    n_test: Some(0),
                    ..config(tmp.path(), 0.9)
                },
                "data.n_test",
            ),
        ] {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        write_cifar(tmp.path(), 10, 10);
        let err = CorruptedCifar10Config {
            n_train: Some(51),
            ..config(tmp.path(), 0.9)
        }
        .splits(0)
        .unwrap_err()
        .to_string();
        assert!(err.contains("data.n_train"), "{err}");
    }
}
