//! The MNIST dataset as four IDX files in one directory (raw or gzipped).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::idx::{self, Images};

/// Number of digit classes; labels must be below it.
pub const N_CLASSES: usize = 10;

/// Standard file names: images and labels of the train and test splits.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Images with their digit labels (`labels.len() == images.n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistSplit {
    pub images: Images,
    pub labels: Vec<u8>,
}

/// The train and test splits of MNIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    pub train: MnistSplit,
    pub test: MnistSplit,
}

impl MnistSplit {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `indices`, in that order. Panics on an out-of-range index.
    pub fn take(&self, indices: &[usize]) -> MnistSplit {
        let len = self.images.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            pixels.extend_from_slice(self.images.image(i));
        }
        MnistSplit {
            images: Images {
                n: indices.len(),
                rows: self.images.rows,
                cols: self.images.cols,
                pixels,
            },
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Loads MNIST from `dir`, which holds the four standard files, each raw or with a
/// `.gz` suffix; the `train-images.idx3-ubyte` dot spelling is accepted too.
pub fn load_dir(dir: &Path) -> Result<Mnist> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            what: "MNIST directory does not exist".into(),
        });
    }
    Ok(Mnist {
        train: load_split(dir, TRAIN_IMAGES, TRAIN_LABELS)?,
        test: load_split(dir, TEST_IMAGES, TEST_LABELS)?,
    })
}

/// Checks, from the files' headers alone, that both splits in `dir` hold images, each with
/// its label: what a run needs before it starts, found in a fraction of a second.
pub fn check_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            what: "MNIST directory does not exist".into(),
        });
    }
    for (images_name, labels_name) in [(TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)] {
        let images_path = find_file(dir, images_name)?;
        let labels_path = find_file(dir, labels_name)?;
        let n = idx::count(&images_path, true)?;
        let labels = idx::count(&labels_path, false)?;
        check_counts(&images_path, n, &labels_path, labels)?;
    }
    Ok(())
}

/// One label per image, and at least one image: an empty split fails every later step
/// with an obscure message (`cat` of no tensors), so the empty file is named instead.
fn check_counts(images_path: &Path, n: usize, labels_path: &Path, labels: usize) -> Result<()> {
    if n == 0 {
        return Err(DataError::format(
            images_path,
            "holds no images: this split is empty (imported with --test-fraction 0 or 1?)",
        ));
    }
    if labels != n {
        return Err(DataError::format(
            labels_path,
            format!(
                "{labels} labels but {} holds {n} images",
                images_path.display()
            ),
        ));
    }
    Ok(())
}

fn load_split(dir: &Path, images_name: &str, labels_name: &str) -> Result<MnistSplit> {
    let images_path = find_file(dir, images_name)?;
    let labels_path = find_file(dir, labels_name)?;
    let images = idx::read_images(&images_path)?;
    let labels = idx::read_labels(&labels_path)?;
    check_counts(&images_path, images.n, &labels_path, labels.len())?;
    if let Some(pos) = labels.iter().position(|&l| l as usize >= N_CLASSES) {
        return Err(DataError::format(
            &labels_path,
            format!("label {} at index {pos} is not a digit 0..9", labels[pos]),
        ));
    }
    Ok(MnistSplit { images, labels })
}

/// The first existing spelling of `name` in `dir`: `name`, `name.gz`, and the same
/// with the dash before `idx` written as a dot (`train-images.idx3-ubyte`).
fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let dotted = name.replacen("-idx", ".idx", 1);
    let candidates = [
        name.to_string(),
        format!("{name}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ];
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::Missing {
            dir: dir.to_path_buf(),
            what: format!("no {name}[.gz] (nor {dotted}[.gz])"),
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::idx::{write_images, write_labels};

    /// A small MNIST-like split: image `i` has pixel value `i % 251` at every other
    /// position, labels cycle through the digits.
    pub(crate) fn fake_split(n: usize, rows: usize, cols: usize) -> MnistSplit {
        let mut pixels = Vec::with_capacity(n * rows * cols);
        for i in 0..n {
            for p in 0..rows * cols {
                pixels.push(if p % 2 == 0 { (i % 251) as u8 + 1 } else { 0 });
            }
        }
        MnistSplit {
            images: Images {
                n,
                rows,
                cols,
                pixels,
            },
            labels: (0..n).map(|i| (i % N_CLASSES) as u8).collect(),
        }
    }

    fn write_split(dir: &Path, split: &MnistSplit, images: &str, labels: &str) {
        write_images(&dir.join(images), &split.images).unwrap();
        write_labels(&dir.join(labels), &split.labels).unwrap();
    }

    #[test]
    fn load_dir_reads_mixed_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let train = fake_split(30, 4, 3);
        let test = fake_split(12, 4, 3);
        write_split(
            dir.path(),
            &train,
            "train-images-idx3-ubyte.gz",
            "train-labels.idx1-ubyte",
        );
        write_split(
            dir.path(),
            &test,
            "t10k-images.idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte",
        );
        let mnist = load_dir(dir.path()).unwrap();
        assert_eq!(mnist.train, train);
        assert_eq!(mnist.test, test);
    }

    #[test]
    fn missing_dir_and_missing_file_are_named() {
        let err = load_dir(Path::new("/nonexistent/ffw-mnist")).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/ffw-mnist"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), &fake_split(5, 2, 2), TRAIN_IMAGES, TRAIN_LABELS);
        write_images(&dir.path().join(TEST_IMAGES), &fake_split(5, 2, 2).images).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(TEST_LABELS) && msg.contains(&*dir.path().to_string_lossy()),
            "{msg}"
        );
    }

    #[test]
    fn count_mismatch_is_a_format_error() {
        let dir = tempfile::tempdir().unwrap();
        let split = fake_split(6, 2, 2);
        write_split(dir.path(), &split, TRAIN_IMAGES, TRAIN_LABELS);
        write_images(&dir.path().join(TEST_IMAGES), &split.images).unwrap();
        write_labels(&dir.path().join(TEST_LABELS), &split.labels[..5]).unwrap();
        for err in [load_dir(dir.path()).map(drop), check_dir(dir.path())].map(|r| r.unwrap_err()) {
            assert!(matches!(err, DataError::Format { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains("5 labels") && msg.contains("6 images"),
                "{msg}"
            );
        }
    }

    #[test]
    fn an_empty_split_is_named_from_the_header_and_when_loading() {
        let dir = tempfile::tempdir().unwrap();
        write_split(
            dir.path(),
            &fake_split(6, 2, 2),
            "train-images-idx3-ubyte.gz",
            TRAIN_LABELS,
        );
        check_dir(dir.path()).unwrap_err(); // no test files yet
        write_split(
            dir.path(),
            &fake_split(0, 2, 2),
            TEST_IMAGES,
            "t10k-labels-idx1-ubyte.gz",
        );
        for err in [load_dir(dir.path()).map(drop), check_dir(dir.path())].map(|r| r.unwrap_err()) {
            let msg = err.to_string();
            assert!(
                msg.contains(TEST_IMAGES) && msg.contains("holds no images"),
                "{msg}"
            );
        }
        write_split(
            dir.path(),
            &fake_split(3, 2, 2),
            TEST_IMAGES,
            "t10k-labels-idx1-ubyte.gz",
        );
        check_dir(dir.path()).unwrap();
    }

    #[test]
    fn labels_beyond_nine_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut split = fake_split(4, 2, 2);
        write_split(dir.path(), &split, TEST_IMAGES, TEST_LABELS);
        split.labels[2] = 12;
        write_split(dir.path(), &split, TRAIN_IMAGES, TRAIN_LABELS);
        let msg = load_dir(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("label 12 at index 2"), "{msg}");
    }

    #[test]
    fn take_selects_images_and_labels_in_order() {
        let split = fake_split(10, 2, 3);
        let sub = split.take(&[7, 2, 7]);
        assert_eq!(sub.len(), 3);
        assert_eq!(sub.labels, vec![7, 2, 7]);
        assert_eq!(sub.images.image(0), split.images.image(7));
        assert_eq!(sub.images.image(1), split.images.image(2));
        assert_eq!(sub.images.pixels.len(), 3 * 6);
    }
}
