//! CIFAR-10 from either official distribution: the binary one (`cifar-10-batches-bin/`,
//! `data_batch_1..5.bin` and `test_batch.bin`, records of a label byte and 3,072 pixel bytes,
//! red plane, green plane, blue plane, each 32×32 row-major) or the python one
//! (`cifar-10-batches-py/`, the same batches as pickled dicts, see [`crate::pickle`]).
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

pub const N_CLASSES: usize = 10;
/// Side of a CIFAR-10 image.
pub const SIDE: usize = 32;
/// Bytes of one image: three 32×32 planes (R, G, B).
pub const IMAGE_LEN: usize = 3 * SIDE * SIDE;
/// Bytes of one record of the binary distribution: the label, then the image.
pub const RECORD_LEN: usize = 1 + IMAGE_LEN;
/// Images in each official batch file.
pub const BATCH_LEN: usize = 10_000;
const TRAIN_BATCHES: usize = 5;

/// Images (planar RGB, [`IMAGE_LEN`] bytes each) and their class labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cifar10Split {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Cifar10Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_LEN..(i + 1) * IMAGE_LEN]
    }

    /// The samples at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Cifar10Split {
        let mut out = Cifar10Split {
            pixels: Vec::with_capacity(indices.len() * IMAGE_LEN),
            labels: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            out.pixels.extend_from_slice(self.image(i));
            out.labels.push(self.labels[i]);
        }
        out
    }

    fn append(&mut self, other: Cifar10Split) {
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cifar10 {
    pub train: Cifar10Split,
    pub test: Cifar10Split,
}

/// Which distribution a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Binary,
    Pickle,
}

impl Format {
    fn file_name(self, batch: &str) -> String {
        match self {
            Format::Binary => format!("{batch}.bin"),
            Format::Pickle => batch.to_string(),
        }
    }
}

fn batch_names() -> impl Iterator<Item = String> {
    (1..=TRAIN_BATCHES).map(|k| format!("data_batch_{k}"))
}

/// The directory holding the batches and their format: `dir` itself, or its
/// `cifar-10-batches-bin/` or `cifar-10-batches-py/` (as the archives unpack).
pub fn locate(dir: &Path) -> Result<(PathBuf, Format)> {
    let candidates = [
        dir.to_path_buf(),
        dir.join("cifar-10-batches-bin"),
        dir.join("cifar-10-batches-py"),
    ];
    for d in &candidates {
        for format in [Format::Binary, Format::Pickle] {
            if d.join(format.file_name("data_batch_1")).is_file() {
                return Ok((d.clone(), format));
            }
        }
    }
    Err(DataError::Missing {
        dir: dir.to_path_buf(),
        what: "no CIFAR-10 batches: expected data_batch_1..5.bin and test_batch.bin (binary \
               distribution) or data_batch_1..5 and test_batch (python distribution), here or \
               in cifar-10-batches-bin/ or cifar-10-batches-py/"
            .into(),
    })
}

/// Every batch file of the distribution in `dir`, train batches first.
fn files(dir: &Path, format: Format) -> Result<(Vec<PathBuf>, PathBuf)> {
    let train: Vec<PathBuf> = batch_names()
        .map(|b| dir.join(format.file_name(&b)))
        .collect();
    let test = dir.join(format.file_name("test_batch"));
    for f in train.iter().chain(std::iter::once(&test)) {
        if !f.is_file() {
            return Err(DataError::Missing {
                dir: dir.to_path_buf(),
                what: format!(
                    "{} is missing",
                    f.file_name().unwrap_or_default().to_string_lossy()
                ),
            });
        }
    }
    Ok((train, test))
}

/// Checks that every batch file is present and whole (binary: a whole number of records;
/// python: the file unpickles to `data` and `labels` of matching lengths).
pub fn check_dir(dir: &Path) -> Result<()> {
    let (dir, format) = locate(dir)?;
    let (train, test) = files(&dir, format)?;
    for f in train.iter().chain(std::iter::once(&test)) {
        match format {
            Format::Binary => {
                let len = std::fs::metadata(f).map_err(|e| DataError::io(f, e))?.len();
                check_record_count(f, len as usize)?;
            }
            Format::Pickle => {
                read_batch(f, format)?;
            }
        }
    }
    Ok(())
}

/// The batch files of the distribution in `dir`.
pub fn source_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let (dir, format) = locate(dir)?;
    let (mut all, test) = files(&dir, format)?;
    all.push(test);
    Ok(all)
}

/// The 50,000 train and 10,000 test images of the distribution in `dir`.
pub fn load_dir(dir: &Path) -> Result<Cifar10> {
    let (dir, format) = locate(dir)?;
    let (train_files, test_file) = files(&dir, format)?;
    let mut train = Cifar10Split::default();
    for f in &train_files {
        train.append(read_batch(f, format)?);
    }
    Ok(Cifar10 {
        train,
        test: read_batch(&test_file, format)?,
    })
}

fn read_batch(path: &Path, format: Format) -> Result<Cifar10Split> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    match format {
        Format::Binary => parse_binary(path, &bytes),
        Format::Pickle => crate::pickle::parse_cifar_batch(path, &bytes),
    }
}

fn check_record_count(path: &Path, len: usize) -> Result<usize> {
    if len == 0 || len % RECORD_LEN != 0 {
        return Err(DataError::format(
            path,
            format!(
                "not a CIFAR-10 binary batch: {len} bytes is not a whole number of \
                 {RECORD_LEN}-byte records (record {} is cut short)",
                len / RECORD_LEN
            ),
        ));
    }
    Ok(len / RECORD_LEN)
}

/// Records of the binary distribution; a label above 9 is an error naming the record.
pub fn parse_binary(path: &Path, bytes: &[u8]) -> Result<Cifar10Split> {
    let n = check_record_count(path, bytes.len())?;
    let mut out = Cifar10Split {
        pixels: Vec::with_capacity(n * IMAGE_LEN),
        labels: Vec::with_capacity(n),
    };
    for (k, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        check_label(path, k, record[0] as i64)?;
        out.labels.push(record[0]);
        out.pixels.extend_from_slice(&record[1..]);
    }
    Ok(out)
}

pub(crate) fn check_label(path: &Path, record: usize, label: i64) -> Result<u8> {
    if !(0..N_CLASSES as i64).contains(&label) {
        return Err(DataError::format(
            path,
            format!("record {record}: label {label} is not a CIFAR-10 class 0..9"),
        ));
    }
    Ok(label as u8)
}

/// The binary distribution's bytes for `split` (fixtures and tools).
pub fn to_binary(split: &Cifar10Split) -> Vec<u8> {
    let mut out = Vec::with_capacity(split.len() * RECORD_LEN);
    for i in 0..split.len() {
        out.push(split.labels[i]);
        out.extend_from_slice(split.image(i));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` images whose pixels encode their index, channel and position.
    pub(crate) fn fixture(n: usize, label_offset: usize) -> Cifar10Split {
        let mut split = Cifar10Split::default();
        for i in 0..n {
            split.labels.push(((i + label_offset) % N_CLASSES) as u8);
            split
                .pixels
                .extend((0..IMAGE_LEN).map(|p| ((i * 7 + p * 3) % 256) as u8));
        }
        split
    }

    #[test]
    fn binary_records_parse_to_labels_and_planar_pixels() {
        let split = fixture(4, 3);
        let bytes = to_binary(&split);
        assert_eq!(bytes.len(), 4 * RECORD_LEN);
        // Record 1: its label byte, then red (1024), green, blue.
        assert_eq!(bytes[RECORD_LEN], 4);
        let parsed = parse_binary(Path::new("b.bin"), &bytes).unwrap();
        assert_eq!(parsed, split);
        assert_eq!(parsed.image(2)[1024], ((2 * 7 + 1024 * 3) % 256) as u8);
    }

    #[test]
    fn truncated_or_foreign_binary_files_are_named_with_the_record() {
        let bytes = to_binary(&fixture(3, 0));
        let err = parse_binary(
            Path::new("data_batch_2.bin"),
            &bytes[..2 * RECORD_LEN + 100],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("data_batch_2.bin") && err.contains("record 2"),
            "{err}"
        );
        let mut bad = bytes.clone();
        bad[RECORD_LEN] = 11;
        let err = parse_binary(Path::new("test_batch.bin"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch.bin") && err.contains("record 1") && err.contains("11"),
            "{err}"
        );
    }

    fn write_dir(dir: &Path, format: Format, per_batch: usize) -> Cifar10 {
        std::fs::create_dir_all(dir).unwrap();
        let mut all = Cifar10 {
            train: Cifar10Split::default(),
            test: fixture(per_batch, 5),
        };
        for (k, name) in batch_names().enumerate() {
            let batch = fixture(per_batch, k);
            let bytes = match format {
                Format::Binary => to_binary(&batch),
                Format::Pickle => crate::pickle::cifar_batch_bytes(&batch, &name),
            };
            std::fs::write(dir.join(format.file_name(&name)), bytes).unwrap();
            all.train.append(batch);
        }
        let test = match format {
            Format::Binary => to_binary(&all.test),
            Format::Pickle => crate::pickle::cifar_batch_bytes(&all.test, "test_batch"),
        };
        std::fs::write(dir.join(format.file_name("test_batch")), test).unwrap();
        all
    }

    #[test]
    fn either_distribution_is_found_and_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        for (sub, format) in [
            ("cifar-10-batches-bin", Format::Binary),
            ("cifar-10-batches-py", Format::Pickle),
        ] {
            let root = tmp.path().join(format!("{format:?}"));
            let written = write_dir(&root.join(sub), format, 6);
            check_dir(&root).unwrap();
            assert_eq!(locate(&root).unwrap().1, format);
            let read = load_dir(&root).unwrap();
            assert_eq!(read, written);
            assert_eq!((read.train.len(), read.test.len()), (30, 6));
        }
        let err = check_dir(&tmp.path().join("nothing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_batch_1"), "{err}");
    }

    #[test]
    fn a_missing_or_truncated_batch_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        write_dir(tmp.path(), Format::Binary, 2);
        let f = tmp.path().join("data_batch_4.bin");
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..RECORD_LEN + 7]).unwrap();
        let err = check_dir(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("data_batch_4.bin") && err.contains("record 1"),
            "{err}"
        );
        std::fs::remove_file(tmp.path().join("test_batch.bin")).unwrap();
        std::fs::remove_file(&f).unwrap();
        let err = load_dir(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("data_batch_4.bin is missing"), "{err}");
    }
}
