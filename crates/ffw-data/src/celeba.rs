//! CelebA (PROTOCOL §5) from its official files: `img_align_celeba/` (JPEG), the 40 ±1
//! attributes (`list_attr_celeba.txt`, or the `.csv` common mirrors ship) and the partition
//! (`list_eval_partition.txt` / `.csv`: 0 train, 1 valid, 2 test). Target and bias are
//! attributes named in the config (BlondHair / Male by default). The biased train set is the
//! whole train partition; valid and test are made group-balanced over (target, bias), seed 42;
//! the balanced valid set is cut 60/40 into unbiased train / val, the balanced test set is the
//! unbiased test set. Images are read on demand, resized to `image_size`, ImageNet-normalised,
//! and flipped at random in training.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::benchmark::Benchmark;
use crate::dataset::{random_split, Dataset, Inputs, Splits};
use crate::error::{DataError, Result};
use crate::groups::{aligned_bias, balanced, BALANCE_SEED};
use crate::image_cache::cache_splits;
use crate::image_files::{ImageFiles, Preparation};
use crate::seeds::stream_seed;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CelebaConfig {
    /// Holds `img_align_celeba/` and the attribute and partition files.
    pub dir: PathBuf,
    /// Task attribute (`Blond_Hair`; `BlondHair` works too: case and `_` are ignored).
    pub target: String,
    /// Bias attribute.
    pub bias: String,
    /// Side of the square model input the images are resized to.
    pub image_size: u32,
    /// Random horizontal flip of the biased train images in training.
    pub flip: bool,
    /// Use only this many train-partition images (a seeded sample), for quick runs.
    pub n_train: Option<usize>,
    /// Fraction of the balanced valid set that is unbiased train (the rest: unbiased val).
    pub unbiased_train_fraction: f64,
    /// A directory for a one-time cache of the resized images (RGB bytes, memory-mapped):
    /// later runs skip decoding. About `3·image_size²` bytes per image.
    pub cache: Option<PathBuf>,
}

impl Default for CelebaConfig {
    fn default() -> Self {
        CelebaConfig {
            dir: PathBuf::from("data/celeba"),
            target: "Blond_Hair".into(),
            bias: "Male".into(),
            image_size: 224,
            flip: true,
            n_train: None,
            unbiased_train_fraction: 0.6,
            cache: None,
        }
    }
}

/// One image's row: file name, target and bias (0/1), partition (0 train, 1 valid, 2 test).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub file: String,
    pub target: u32,
    pub bias: u32,
    pub partition: u8,
}

const ATTR_FILES: [&str; 2] = ["list_attr_celeba.txt", "list_attr_celeba.csv"];
const PARTITION_FILES: [&str; 2] = ["list_eval_partition.txt", "list_eval_partition.csv"];

/// The first of `names` present in `dir`.
fn find(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::Missing {
            dir: dir.to_path_buf(),
            what: format!("none of {} found", names.join(", ")),
        })
}

/// The image directory: `img_align_celeba/`, or the doubled `img_align_celeba/img_align_celeba/`
/// some archives unpack to.
pub fn image_dir(dir: &Path) -> Result<PathBuf> {
    let top = dir.join("img_align_celeba");
    let nested = top.join("img_align_celeba");
    [nested, top]
        .into_iter()
        .find(|p| p.is_dir())
        .ok_or_else(|| DataError::Missing {
            dir: dir.to_path_buf(),
            what: "img_align_celeba/ not found".into(),
        })
}

/// An attribute name compared as written in configs and papers: `BlondHair` = `Blond_Hair`.
fn canonical(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The records of a CelebA list file: `.txt` (whitespace-separated; the attribute file starts
/// with a count line) or `.csv` (comma-separated with a header, as Kaggle ships it). Returns the
/// column names after the image id, and per record its line number, image id and values.
type Records = (Vec<String>, Vec<(usize, String, Vec<String>)>);

fn read_records(path: &Path, has_count_line: bool) -> Result<Records> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let csv = path.extension().is_some_and(|e| e == "csv");
    let split = |line: &str| -> Vec<String> {
        if csv {
            line.split(',').map(|f| f.trim().to_string()).collect()
        } else {
            line.split_whitespace().map(str::to_string).collect()
        }
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let mut expected = None;
    if has_count_line && !csv {
        let (_, count) = lines
            .next()
            .ok_or_else(|| DataError::format(path, "empty file"))?;
        expected = Some(count.trim().parse::<usize>().map_err(|_| {
            DataError::format(
                path,
                format!("line 1: expected the image count, got {count:?}"),
            )
        })?);
    }
    let mut names = Vec::new();
    if has_count_line || csv {
        let (_, header) = lines
            .next()
            .ok_or_else(|| DataError::format(path, "no header line"))?;
        names = split(header);
        if csv {
            names.remove(0); // image_id
        }
    }
    let mut records = Vec::new();
    for (k, line) in lines {
        let mut fields = split(line).into_iter();
        let id = fields.next().unwrap_or_default();
        records.push((k + 1, id, fields.collect()));
    }
    if let Some(n) = expected.filter(|&n| n != records.len()) {
        return Err(DataError::format(
            path,
            format!(
                "line 1 announces {n} images, the file lists {}",
                records.len()
            ),
        ));
    }
    Ok((names, records))
}

/// The column of attribute `name` (by [`canonical`] name), or an error listing them all.
fn column(names: &[String], name: &str, key: &str, path: &Path) -> Result<usize> {
    names
        .iter()
        .position(|n| canonical(n) == canonical(name))
        .ok_or_else(|| {
            DataError::format(
                path,
                format!(
                    "data.{key} = {name:?} is not an attribute here (attributes: {})",
                    names.join(", ")
                ),
            )
        })
}

/// Every image's target, bias and partition, in attribute-file order.
pub fn read_rows(cfg: &CelebaConfig) -> Result<Vec<Row>> {
    let attr_path = find(&cfg.dir, &ATTR_FILES)?;
    let (names, attrs) = read_records(&attr_path, true)?;
    let t = column(&names, &cfg.target, "target", &attr_path)?;
    let b = column(&names, &cfg.bias, "bias", &attr_path)?;

    let part_path = find(&cfg.dir, &PARTITION_FILES)?;
    let (_, parts) = read_records(&part_path, false)?;
    let mut partition = HashMap::with_capacity(parts.len());
    for (line, id, values) in parts {
        let p = match values.first().map(String::as_str) {
            Some("0") => 0u8,
            Some("1") => 1,
            Some("2") => 2,
            other => {
                return Err(DataError::format(
                    &part_path,
                    format!("line {line} ({id}): partition must be 0, 1 or 2, got {other:?}"),
                ))
            }
        };
        partition.insert(id, p);
    }

    let binary = |v: Option<&String>, line: usize, id: &str, attr: &str| match v.map(String::as_str)
    {
        Some("1") => Ok(1u32),
        Some("-1") | Some("0") => Ok(0),
        other => Err(DataError::format(
            &attr_path,
            format!("line {line} ({id}): {attr} must be 1 or -1, got {other:?}"),
        )),
    };
    attrs
        .into_iter()
        .map(|(line, id, values)| {
            let partition = *partition.get(&id).ok_or_else(|| {
                DataError::format(
                    &part_path,
                    format!(
                        "{id} (line {line} of {}) has no partition",
                        attr_path.display()
                    ),
                )
            })?;
            Ok(Row {
                target: binary(values.get(t), line, &id, &names[t])?,
                bias: binary(values.get(b), line, &id, &names[b])?,
                file: id,
                partition,
            })
        })
        .collect()
}

impl CelebaConfig {
    /// The rows as a dataset of image files under `images`.
    fn dataset(&self, rows: &[&Row], images: &Path, flip: bool, aligned: &[u32]) -> Dataset {
        let prep = Preparation::imagenet(self.image_size);
        Dataset {
            sample_shape: prep.sample_shape(),
            x: Inputs::Files(Arc::new(ImageFiles {
                paths: rows.iter().map(|r| images.join(&r.file)).collect(),
                prep,
                flip,
                cached: None,
            })),
            y: rows.iter().map(|r| r.target).collect(),
            n_classes: 2,
            biases: vec![rows.iter().map(|r| r.bias).collect()],
            n_bias_classes: vec![2],
            aligned: vec![aligned.to_vec()],
        }
    }

    /// The group-balanced subset of `rows` (seed 42).
    fn balanced<'r>(&self, rows: &[&'r Row]) -> Result<Vec<&'r Row>> {
        let y: Vec<u32> = rows.iter().map(|r| r.target).collect();
        let b: Vec<u32> = rows.iter().map(|r| r.bias).collect();
        let keep = balanced(
            &[&y, &b],
            &[2, 2],
            &[&self.target, &self.bias],
            BALANCE_SEED,
        )?;
        Ok(keep.into_iter().map(|i| rows[i]).collect())
    }
}

impl Benchmark for CelebaConfig {
    fn name(&self) -> &'static str {
        "celeba"
    }

    fn attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("target".to_string(), self.target.clone()),
            ("bias".to_string(), self.bias.clone()),
        ])
    }

    fn validate(&self) -> Result<()> {
        Preparation::imagenet(self.image_size).validate()?;
        if canonical(&self.target) == canonical(&self.bias) {
            return Err(DataError::Invalid(format!(
                "data.bias: the bias attribute {:?} is the target",
                self.bias
            )));
        }
        if self.n_train == Some(0) {
            return Err(DataError::Invalid("data.n_train: must be > 0".into()));
        }
        if !(self.unbiased_train_fraction > 0.0 && self.unbiased_train_fraction < 1.0) {
            return Err(DataError::Invalid(format!(
                "data.unbiased_train_fraction: must be in (0, 1), got {}",
                self.unbiased_train_fraction
            )));
        }
        Ok(())
    }

    fn check_files(&self) -> Result<()> {
        image_dir(&self.dir)?;
        let path = find(&self.dir, &ATTR_FILES)?;
        let (names, _) = read_records(&path, true)?;
        column(&names, &self.target, "target", &path)?;
        column(&names, &self.bias, "bias", &path)?;
        find(&self.dir, &PARTITION_FILES)?;
        Ok(())
    }

    fn splits(&self, seed: u64) -> Result<Splits> {
        self.validate()?;
        let images = image_dir(&self.dir)?;
        let rows = read_rows(self)?;
        let part = |p: u8| -> Vec<&Row> { rows.iter().filter(|r| r.partition == p).collect() };
        let mut train = part(0);
        if let Some(n) = self.n_train {
            if n > train.len() {
                return Err(DataError::Invalid(format!(
                    "data.n_train = {n}: the train partition has {} images",
                    train.len()
                )));
            }
            let mut keep = crate::dataset::epoch_order(train.len(), seed, 0);
            keep.truncate(n);
            keep.sort_unstable();
            train = keep.into_iter().map(|i| train[i]).collect();
        }
        let y: Vec<u32> = train.iter().map(|r| r.target).collect();
        let b: Vec<u32> = train.iter().map(|r| r.bias).collect();
        let aligned = aligned_bias(&y, &b, 2, 2);

        let valid = self.balanced(&part(1))?;
        let test = self.balanced(&part(2))?;
        let cut = random_split(
            valid.len(),
            &[
                self.unbiased_train_fraction,
                1.0 - self.unbiased_train_fraction,
            ],
            stream_seed(BALANCE_SEED, 1),
        )?;
        let pick = |idx: &[usize]| -> Vec<&Row> { idx.iter().map(|&i| valid[i]).collect() };
        let splits = Splits {
            train: self.dataset(&train, &images, self.flip, &aligned),
            unbiased_train: self.dataset(&pick(&cut[0]), &images, false, &aligned),
            unbiased_val: self.dataset(&pick(&cut[1]), &images, false, &aligned),
            test: self.dataset(&test, &images, false, &aligned),
        };
        match &self.cache {
            Some(dir) => cache_splits(splits, dir),
            None => Ok(splits),
        }
    }

    fn n_classes(&self) -> usize {
        2
    }

    fn input_len(&self) -> usize {
        Preparation::imagenet(self.image_size).sample_len()
    }
}

/// A tiny CelebA directory: generated JPEGs, attribute and partition files in either format.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    pub const NAMES: [&str; 4] = ["5_o_Clock_Shadow", "Blond_Hair", "Eyeglasses", "Male"];

    /// Per image k: (blond, eyeglasses, male, partition). Train: blond mostly female; valid
    /// and test: every (blond, male) group present, (1, 1) the smallest.
    pub fn rows() -> Vec<(bool, bool, bool, u8)> {
        let mut rows = Vec::new();
        for k in 0..40 {
            rows.push((k % 4 == 0, k % 5 == 0, k % 4 != 0 && k % 3 == 0, 0));
        }
        for part in [1u8, 2] {
            for (blond, male, n) in [
                (false, false, 5),
                (false, true, 4),
                (true, false, 6),
                (true, true, 2),
            ] {
                for k in 0..n {
                    rows.push((blond, k % 2 == 0, male, part));
                }
            }
        }
        rows
    }

    pub fn write(dir: &Path, csv: bool, nested: bool) {
        let mut images = dir.join("img_align_celeba");
        if nested {
            images = images.join("img_align_celeba");
        }
        std::fs::create_dir_all(&images).unwrap();
        let rows = rows();
        let sign = |b: bool| if b { "1" } else { "-1" };
        let mut attr = String::new();
        let mut part = String::new();
        if csv {
            attr.push_str(&format!("image_id,{}\n", NAMES.join(",")));
            part.push_str("image_id,partition\n");
        } else {
            attr.push_str(&format!("{}\n{} \n", rows.len(), NAMES.join(" ")));
        }
        for (k, &(blond, glasses, male, p)) in rows.iter().enumerate() {
            let file = format!("{:06}.jpg", k + 1);
            image::RgbImage::from_fn(18, 22, |x, y| {
                image::Rgb([
                    if blond { 230 } else { 40 },
                    (x * 10) as u8,
                    (y * 10 + k as u32) as u8,
                ])
            })
            .save(images.join(&file))
            .unwrap();
            let values = [sign(k % 7 == 0), sign(blond), sign(glasses), sign(male)];
            if csv {
                attr.push_str(&format!("{file},{}\n", values.join(",")));
                part.push_str(&format!("{file},{p}\n"));
            } else {
                attr.push_str(&format!("{file}  {}\n", values.join(" ")));
                part.push_str(&format!("{file} {p}\n"));
            }
        }
        let ext = if csv { "csv" } else { "txt" };
        std::fs::write(dir.join(format!("list_attr_celeba.{ext}")), attr).unwrap();
        std::fs::write(dir.join(format!("list_eval_partition.{ext}")), part).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> CelebaConfig {
        CelebaConfig {
            dir: dir.to_path_buf(),
            image_size: 8,
            ..Default::default()
        }
    }

    #[test]
    fn both_file_formats_parse_to_the_same_rows() {
        let txt = tempfile::tempdir().unwrap();
        let csv = tempfile::tempdir().unwrap();
        fixture::write(txt.path(), false, false);
        fixture::write(csv.path(), true, true);
        let a = read_rows(&config(txt.path())).unwrap();
        let b = read_rows(&config(csv.path())).unwrap();
        assert_eq!(a, b);
        let want = fixture::rows();
        assert_eq!(a.len(), want.len());
        for (row, &(blond, _, male, p)) in a.iter().zip(&want) {
            assert_eq!(
                (row.target, row.bias, row.partition),
                (blond as u32, male as u32, p)
            );
        }
        assert_eq!(a[0].file, "000001.jpg");
        assert_eq!(
            image_dir(csv.path()).unwrap(),
            csv.path().join("img_align_celeba/img_align_celeba")
        );
    }

    #[test]
    fn attributes_are_picked_by_name_in_either_spelling() {
        let dir = tempfile::tempdir().unwrap();
        fixture::write(dir.path(), false, false);
        let cfg = CelebaConfig {
            target: "eyeglasses".into(),
            ..config(dir.path())
        };
        let rows = read_rows(&cfg).unwrap();
        for (row, &(_, glasses, _, _)) in rows.iter().zip(&fixture::rows()) {
            assert_eq!(row.target, glasses as u32);
        }
        let blond = CelebaConfig {
            target: "BlondHair".into(),
            ..config(dir.path())
        };
        assert_eq!(read_rows(&blond).unwrap()[0].target, 1);
        let bad = CelebaConfig {
            bias: "Beard".into(),
            ..config(dir.path())
        };
        let msg = read_rows(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("list_attr_celeba.txt") && msg.contains("\"Beard\""),
            "{msg}"
        );
        assert!(msg.contains("Blond_Hair"), "{msg}");
        assert!(bad.check_files().is_err());
    }

    #[test]
    fn a_malformed_value_or_count_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        fixture::write(dir.path(), false, false);
        let path = dir.path().join("list_attr_celeba.txt");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replacen("000003.jpg  -1 -1", "000003.jpg  -1 x", 1),
        )
        .unwrap();
        let msg = read_rows(&config(dir.path())).unwrap_err().to_string();
        assert!(
            msg.contains("line 5 (000003.jpg)") && msg.contains("Blond_Hair"),
            "{msg}"
        );
        std::fs::write(&path, text.replacen("74\n", "75\n", 1)).unwrap();
        let msg = read_rows(&config(dir.path())).unwrap_err().to_string();
        assert!(msg.contains("announces 75"), "{msg}");
    }

    #[test]
    fn splits_balance_valid_and_test_and_cut_valid_60_40() {
        let dir = tempfile::tempdir().unwrap();
        fixture::write(dir.path(), false, false);
        let cfg = config(dir.path());
        cfg.check_files().unwrap();
        let s = cfg.splits(3).unwrap();
        assert_eq!(s.train.len(), 40);
        // The smallest (blond, male) group has 2 images: 4 groups x 2.
        assert_eq!(s.test.len(), 8);
        assert_eq!((s.unbiased_train.len(), s.unbiased_val.len()), (4, 4));
        for d in [&s.test] {
            for group in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let n = (0..d.len())
                    .filter(|&i| (d.y[i], d.biases[0][i]) == group)
                    .count();
                assert_eq!(n, 2);
            }
        }
        // Blond goes with female (0), not blond with male (1).
        assert_eq!(s.train.aligned, vec![vec![1, 0]]);
        // The balanced sets do not depend on the run seed; only the train set flips.
        assert_eq!(cfg.splits(4).unwrap().test, s.test);
        let Inputs::Files(f) = &s.train.x else {
            panic!("files")
        };
        assert!(f.flip);
        let b = s.test.batch(&[0, 1], &candle_core::Device::Cpu).unwrap();
        assert_eq!(b.x.dims(), &[2, 3, 8, 8]);
        // With a cache of the resized images: the same inputs.
        let cached = CelebaConfig {
            cache: Some(dir.path().join("cache")),
            ..config(dir.path())
        }
        .splits(3)
        .unwrap();
        let inputs = |d: &Dataset| {
            let all: Vec<usize> = (0..d.len()).collect();
            let b = d.batch(&all, &candle_core::Device::Cpu).unwrap();
            b.x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(inputs(&cached.test), inputs(&s.test));
        assert_eq!(inputs(&cached.train), inputs(&s.train));
        let few = CelebaConfig {
            n_train: Some(10),
            ..config(dir.path())
        };
        let f = few.splits(3).unwrap();
        assert_eq!(f.train.len(), 10);
        assert_eq!(f.test, s.test);
        assert!(CelebaConfig {
            n_train: Some(41),
            ..config(dir.path())
        }
        .splits(3)
        .is_err());
    }
}
