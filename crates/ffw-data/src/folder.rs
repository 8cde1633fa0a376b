//! A user's own biased image dataset: a directory of images (JPEG/PNG, any size) and a CSV
//! with one row per image: its path, its task label, one or more bias attributes, and
//! optionally its split (`train`, `unbiased_train`, `unbiased_val`, `test`). Without a split
//! column the sets are built as for CelebA: a seeded part of the rows is held out, made
//! group-balanced over (label, biases), and cut into the unbiased train / val / test sets; the
//! rest is the biased train set. Labels may be any strings; their order is the config's list,
//! or sorted (numerically when every value is a number). Every bad row (missing file, unknown
//! label, undecodable image) is found before training and named ([`FolderConfig::bad_rows`]).
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::benchmark::Benchmark;
use crate::dataset::{random_split, Dataset, Inputs, Splits};
use crate::error::{DataError, Result};
use crate::groups::{aligned_bias, balanced, BALANCE_SEED};
use crate::image_cache::cache_splits;
use crate::image_files::{ImageFiles, Preparation, IMAGENET_MEAN, IMAGENET_STD};
use crate::seeds::stream_seed;

/// The values a split column may hold.
pub const SPLITS: [&str; 4] = ["train", "unbiased_train", "unbiased_val", "test"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FolderConfig {
    /// The images; a relative path in the CSV is relative to it.
    pub dir: PathBuf,
    /// The CSV (default `<dir>/labels.csv`).
    pub csv: Option<PathBuf>,
    pub path_column: String,
    pub target_column: String,
    /// One column per bias attribute (at least one).
    pub bias_columns: Vec<String>,
    /// Column naming each row's split; without it the CelebA-style construction applies.
    pub split_column: Option<String>,
    /// The task labels in class order (default: the CSV's values, sorted).
    pub labels: Option<Vec<String>>,
    /// Per bias column, its values in class order (default: the CSV's values, sorted).
    pub bias_labels: BTreeMap<String, Vec<String>>,
    /// Side of the square model input the images are resized to.
    pub image_size: u32,
    /// Per-channel (RGB) normalisation of values in [0, 1] (default ImageNet's).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Random horizontal flip of the biased train images in training.
    pub flip: bool,
    /// Without a split column: the fraction of rows held out for the unbiased sets.
    pub held_out: f64,
    /// Without a split column: the balanced held-out set's fractions that become the unbiased
    /// train, val and test sets, in that order.
    pub unbiased_fractions: [f64; 3],
    /// A directory for a one-time cache of the resized images (RGB bytes, memory-mapped):
    /// later runs skip decoding. About `3·image_size²` bytes per image.
    pub cache: Option<PathBuf>,
    #[serde(skip)]
    classes: ClassCache,
}

impl Default for FolderConfig {
    fn default() -> Self {
        FolderConfig {
            dir: PathBuf::from("data/my_dataset"),
            csv: None,
            path_column: "path".into(),
            target_column: "label".into(),
            bias_columns: Vec::new(),
            split_column: None,
            labels: None,
            bias_labels: BTreeMap::new(),
            image_size: 64,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            flip: false,
            held_out: 0.3,
            unbiased_fractions: [0.6, 0.2, 0.2],
            cache: None,
            classes: ClassCache::default(),
        }
    }
}

/// Class names of the task column and of each bias column, in class order.
#[derive(Debug, Clone, PartialEq)]
pub struct Classes {
    pub target: Vec<String>,
    pub biases: Vec<Vec<String>>,
}

/// The classes read from the CSV once; not part of the config's identity.
#[derive(Debug, Clone, Default)]
struct ClassCache(OnceLock<Classes>);

impl PartialEq for ClassCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One CSV row, its fields by role.
#[derive(Debug, Clone)]
pub struct Record {
    /// 1-based line in the CSV (the header is line 1).
    pub line: usize,
    pub path: String,
    pub target: String,
    pub biases: Vec<String>,
    pub split: Option<String>,
}

/// A row that cannot be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowProblem {
    pub line: usize,
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} ({}): {}", self.line, self.path, self.reason)
    }
}

/// Sorted, numerically when every value is a number (so 2 comes before 10).
fn sorted(values: BTreeSet<&str>) -> Vec<String> {
    let mut v: Vec<&str> = values.into_iter().collect();
    if v.iter().all(|s| s.parse::<f64>().is_ok()) {
        v.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap()
                .total_cmp(&b.parse::<f64>().unwrap())
        });
    }
    v.into_iter().map(str::to_string).collect()
}

impl FolderConfig {
    pub fn csv_path(&self) -> PathBuf {
        self.csv
            .clone()
            .unwrap_or_else(|| self.dir.join("labels.csv"))
    }

    fn prep(&self) -> Preparation {
        Preparation {
            size: self.image_size,
            mean: self.mean,
            std: self.std,
        }
    }

    /// Every row of the CSV; an error for an unreadable file or a missing column.
    pub fn records(&self) -> Result<Vec<Record>> {
        let path = self.csv_path();
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(&path)
            .map_err(|e| DataError::format(&path, e.to_string()))?;
        let header = reader
            .headers()
            .map_err(|e| DataError::format(&path, e.to_string()))?
            .clone();
        let col = |name: &str, key: &str| {
            header.iter().position(|h| h == name).ok_or_else(|| {
                DataError::format(
                    &path,
                    format!(
                        "data.{key}: no column {name:?} (columns: {})",
                        header.iter().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
        };
        let p = col(&self.path_column, "path_column")?;
        let t = col(&self.target_column, "target_column")?;
        let bs: Vec<usize> = self
            .bias_columns
            .iter()
            .map(|b| col(b, "bias_columns"))
            .collect::<Result<_>>()?;
        let s = match &self.split_column {
            Some(name) => Some(col(name, "split_column")?),
            None => None,
        };
        let mut out = Vec::new();
        for (k, row) in reader.records().enumerate() {
            let row = row.map_err(|e| DataError::format(&path, e.to_string()))?;
            let field = |i: usize| row.get(i).unwrap_or("").to_string();
            out.push(Record {
                line: row.position().map_or(k + 2, |p| p.line() as usize),
                path: field(p),
                target: field(t),
                biases: bs.iter().map(|&b| field(b)).collect(),
                split: s.map(field),
            });
        }
        Ok(out)
    }

    /// The class names: the config's lists where given, else the CSV's values sorted.
    pub fn classes(&self) -> Result<Classes> {
        if let Some(c) = self.classes.0.get() {
            return Ok(c.clone());
        }
        let listed_biases: Option<Vec<Vec<String>>> = self
            .bias_columns
            .iter()
            .map(|b| self.bias_labels.get(b).cloned())
            .collect();
        let classes = match (&self.labels, listed_biases) {
            (Some(target), Some(biases)) => Classes {
                target: target.clone(),
                biases,
            },
            (listed_target, listed_biases) => {
                let records = self.records()?;
                let distinct = |f: &dyn Fn(&Record) -> &str| {
                    sorted(records.iter().map(f).filter(|v| !v.is_empty()).collect())
                };
                Classes {
                    target: listed_target
                        .clone()
                        .unwrap_or_else(|| distinct(&|r| &r.target)),
                    biases: listed_biases.unwrap_or_else(|| {
                        (0..self.bias_columns.len())
                            .map(|a| distinct(&|r| &r.biases[a]))
                            .collect()
                    }),
                }
            }
        };
        Ok(self.classes.0.get_or_init(|| classes).clone())
    }

    /// Every unusable row, in CSV order: an empty field, a label or bias value not among the
    /// classes, an unknown split, a missing file, an image that does not decode. Checks every
    /// image (in parallel). An error only if the CSV itself cannot be read.
    pub fn bad_rows(&self) -> Result<Vec<RowProblem>> {
        let records = self.records()?;
        let classes = self.classes()?;
        let mut found: Vec<RowProblem> = records
            .par_iter()
            .filter_map(|r| {
                self.row_problem(r, &classes).map(|reason| RowProblem {
                    line: r.line,
                    path: r.path.clone(),
                    reason,
                })
            })
            .collect();
        found.sort_by_key(|p| p.line);
        Ok(found)
    }

    fn row_problem(&self, r: &Record, classes: &Classes) -> Option<String> {
        let mut fields = vec![
            (&self.path_column, &r.path),
            (&self.target_column, &r.target),
        ];
        fields.extend(self.bias_columns.iter().zip(&r.biases));
        if let Some((col, _)) = fields.iter().find(|(_, v)| v.is_empty()) {
            return Some(format!("no value in column {col:?}"));
        }
        if !classes.target.contains(&r.target) {
            return Some(format!(
                "unknown label {:?} in column {:?} (labels: {})",
                r.target,
                self.target_column,
                classes.target.join(", ")
            ));
        }
        for ((col, v), known) in self.bias_columns.iter().zip(&r.biases).zip(&classes.biases) {
            if !known.contains(v) {
                return Some(format!(
                    "unknown value {v:?} in column {col:?} (values: {})",
                    known.join(", ")
                ));
            }
        }
        if let Some(split) = r.split.as_deref().filter(|s| !SPLITS.contains(s)) {
            return Some(format!("split {split:?} is none of {}", SPLITS.join(", ")));
        }
        let file = self.dir.join(&r.path);
        if !file.is_file() {
            return Some(format!("file {} not found", file.display()));
        }
        crate::image_files::decode_resized(&file, 1)
            .err()
            .map(|e| e.to_string())
    }

    /// The rows at `idx` as a dataset of image files.
    fn dataset(
        &self,
        rows: &[(PathBuf, u32, Vec<u32>)],
        idx: &[usize],
        classes: &Classes,
        aligned: &[Vec<u32>],
        flip: bool,
    ) -> Dataset {
        let prep = self.prep();
        Dataset {
            sample_shape: prep.sample_shape(),
            x: Inputs::Files(Arc::new(ImageFiles {
                paths: idx.iter().map(|&i| rows[i].0.clone()).collect(),
                prep,
                flip,
                cached: None,
            })),
            y: idx.iter().map(|&i| rows[i].1).collect(),
            n_classes: classes.target.len(),
            biases: (0..self.bias_columns.len())
                .map(|a| idx.iter().map(|&i| rows[i].2[a]).collect())
                .collect(),
            n_bias_classes: classes.biases.iter().map(Vec::len).collect(),
            aligned: aligned.to_vec(),
        }
    }

    /// The index sets (train, unbiased train, unbiased val, test) into `rows`.
    fn split_indices(
        &self,
        records: &[Record],
        rows: &[(PathBuf, u32, Vec<u32>)],
        classes: &Classes,
    ) -> Result<[Vec<usize>; 4]> {
        if self.split_column.is_some() {
            let of = |name: &str| -> Vec<usize> {
                (0..records.len())
                    .filter(|&i| records[i].split.as_deref() == Some(name))
                    .collect()
            };
            return Ok(SPLITS.map(of));
        }
        let parts = random_split(
            rows.len(),
            &[1.0 - self.held_out, self.held_out],
            BALANCE_SEED,
        )?;
        let held = &parts[1];
        let y: Vec<u32> = held.iter().map(|&i| rows[i].1).collect();
        let biases: Vec<Vec<u32>> = (0..self.bias_columns.len())
            .map(|a| held.iter().map(|&i| rows[i].2[a]).collect())
            .collect();
        let mut columns: Vec<&[u32]> = vec![&y];
        columns.extend(biases.iter().map(Vec::as_slice));
        let mut n_classes = vec![classes.target.len()];
        n_classes.extend(classes.biases.iter().map(Vec::len));
        let mut names = vec![self.target_column.as_str()];
        names.extend(self.bias_columns.iter().map(String::as_str));
        let keep = balanced(&columns, &n_classes, &names, BALANCE_SEED)
            .map_err(|e| DataError::Invalid(format!("the held-out rows (data.held_out): {e}")))?;
        let cut = random_split(
            keep.len(),
            &self.unbiased_fractions,
            stream_seed(BALANCE_SEED, 1),
        )?;
        let pick = |c: &[usize]| -> Vec<usize> {
            let mut v: Vec<usize> = c.iter().map(|&k| held[keep[k]]).collect();
            v.sort_unstable();
            v
        };
        let mut train = parts[0].clone();
        train.sort_unstable();
        Ok([train, pick(&cut[0]), pick(&cut[1]), pick(&cut[2])])
    }
}

impl Benchmark for FolderConfig {
    fn name(&self) -> &'static str {
        "folder"
    }

    fn validate(&self) -> Result<()> {
        self.prep().validate()?;
        if self.bias_columns.is_empty() {
            return Err(DataError::Invalid(
                "data.bias_columns: name at least one bias column".into(),
            ));
        }
        if !(self.held_out > 0.0 && self.held_out < 1.0) {
            return Err(DataError::Invalid(format!(
                "data.held_out: must be in (0, 1), got {}",
                self.held_out
            )));
        }
        let total: f64 = self.unbiased_fractions.iter().sum();
        if self.unbiased_fractions.iter().any(|f| !(*f > 0.0)) || total > 1.0 + 1e-9 {
            return Err(DataError::Invalid(format!(
                "data.unbiased_fractions: must be positive and sum to at most 1, got {:?}",
                self.unbiased_fractions
            )));
        }
        if let Some(col) = self
            .bias_labels
            .keys()
            .find(|k| !self.bias_columns.contains(k))
        {
            return Err(DataError::Invalid(format!(
                "data.bias_labels.{col}: not one of data.bias_columns"
            )));
        }
        // The class counts size the model: they must be known now.
        let classes = self.classes()?;
        for (key, names) in std::iter::once(("labels", &classes.target))
            .chain(std::iter::repeat("bias_labels").zip(&classes.biases))
        {
            if names.len() < 2 {
                return Err(DataError::Invalid(format!(
                    "data.{key}: at least two classes needed, found {names:?}"
                )));
            }
        }
        Ok(())
    }

    fn check_files(&self) -> Result<()> {
        if !self.dir.is_dir() {
            return Err(DataError::Missing {
                dir: self.dir.clone(),
                what: "the image directory (data.dir) does not exist".into(),
            });
        }
        self.records().map(|_| ())
    }

    fn splits(&self, _seed: u64) -> Result<Splits> {
        self.validate()?;
        let problems = self.bad_rows()?;
        if !problems.is_empty() {
            const SHOWN: usize = 20;
            let mut lines: Vec<String> =
                problems.iter().take(SHOWN).map(|p| p.to_string()).collect();
            if problems.len() > SHOWN {
                lines.push(format!(
                    "... and {} more (ffw check-data lists them all)",
                    problems.len() - SHOWN
                ));
            }
            return Err(DataError::format(
                self.csv_path(),
                format!(
                    "{} unusable row(s):\n  {}",
                    problems.len(),
                    lines.join("\n  ")
                ),
            ));
        }
        let records = self.records()?;
        let classes = self.classes()?;
        let index = |names: &[String], v: &str| names.iter().position(|n| n == v).unwrap() as u32;
        let rows: Vec<(PathBuf, u32, Vec<u32>)> = records
            .iter()
            .map(|r| {
                (
                    self.dir.join(&r.path),
                    index(&classes.target, &r.target),
                    r.biases
                        .iter()
                        .zip(&classes.biases)
                        .map(|(v, names)| index(names, v))
                        .collect(),
                )
            })
            .collect();
        let [train, ub_train, ub_val, test] = self.split_indices(&records, &rows, &classes)?;
        for (name, idx) in SPLITS.iter().zip([&train, &ub_train, &ub_val, &test]) {
            if idx.is_empty() {
                return Err(DataError::Invalid(format!(
                    "the {name} split of {} is empty",
                    self.csv_path().display()
                )));
            }
        }
        let aligned: Vec<Vec<u32>> = (0..self.bias_columns.len())
            .map(|a| {
                let y: Vec<u32> = train.iter().map(|&i| rows[i].1).collect();
                let b: Vec<u32> = train.iter().map(|&i| rows[i].2[a]).collect();
                aligned_bias(&y, &b, classes.target.len(), classes.biases[a].len())
            })
            .collect();
        let set = |idx: &[usize], flip| self.dataset(&rows, idx, &classes, &aligned, flip);
        let splits = Splits {
            train: set(&train, self.flip),
            unbiased_train: set(&ub_train, false),
            unbiased_val: set(&ub_val, false),
            test: set(&test, false),
        };
        match &self.cache {
            Some(dir) => cache_splits(splits, dir),
            None => Ok(splits),
        }
    }

    fn n_classes(&self) -> usize {
        self.classes().map_or(0, |c| c.target.len())
    }

    fn input_len(&self) -> usize {
        self.prep().sample_len()
    }

    fn label_names(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let c = self.classes()?;
        let mut names = BTreeMap::from([(self.target_column.clone(), c.target)]);
        names.extend(self.bias_columns.iter().cloned().zip(c.biases));
        Ok(names)
    }

    fn problems(&self) -> Result<Vec<String>> {
        let path = self.csv_path();
        Ok(self
            .bad_rows()?
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(dir: &Path) -> FolderConfig {
        FolderConfig {
            dir: dir.to_path_buf(),
            target_column: "shape".into(),
            bias_columns: vec!["colour".into()],
            image_size: 8,
            ..Default::default()
        }
    }

    #[test]
    fn labels_are_sorted_or_listed_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        crate::example::write(dir.path(), 80, 0.5, 0).unwrap();
        let cfg = config(dir.path());
        cfg.validate().unwrap();
        assert_eq!(cfg.classes().unwrap().target, vec!["circle", "square"]);
        assert_eq!(cfg.classes().unwrap().biases, vec![vec!["blue", "red"]]);
        let listed = FolderConfig {
            labels: Some(vec!["square".into(), "circle".into()]),
            ..config(dir.path())
        };
        assert_eq!(
            listed.label_names().unwrap(),
            BTreeMap::from([
                (
                    "shape".to_string(),
                    vec!["square".to_string(), "circle".to_string()]
                ),
                (
                    "colour".to_string(),
                    vec!["blue".to_string(), "red".to_string()]
                ),
            ])
        );
        let s = listed.splits(0).unwrap();
        // Images k even are circles: class 1 in the listed order.
        let Inputs::Files(f) = &s.train.x else {
            panic!("files")
        };
        for (path, &y) in f.paths.iter().zip(&s.train.y) {
            let k: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            assert_eq!(y, (k % 2 == 0) as u32, "{}", path.display());
        }
        assert_eq!(
            sorted(["10", "9", "2.5"].into_iter().collect()),
            vec!["2.5", "9", "10"]
        );
    }

    #[test]
    fn held_out_rows_become_balanced_unbiased_sets() {
        let dir = tempfile::tempdir().unwrap();
        crate::example::write(dir.path(), 200, 0.8, 3).unwrap();
        let cfg = config(dir.path());
        let s = cfg.splits(9).unwrap();
        assert_eq!(
            s,
            cfg.splits(10).unwrap(),
            "the construction is seeded by 42 alone"
        );
        let n_unbiased = s.unbiased_train.len() + s.unbiased_val.len() + s.test.len();
        assert_eq!(s.train.len(), 140);
        assert!(n_unbiased % 4 == 0 && n_unbiased > 0);
        let mut groups = BTreeMap::new();
        for d in [&s.unbiased_train, &s.unbiased_val, &s.test] {
            for i in 0..d.len() {
                *groups.entry((d.y[i], d.biases[0][i])).or_insert(0) += 1;
            }
        }
        assert_eq!(groups.len(), 4);
        assert!(groups.values().all(|&n| n == n_unbiased / 4), "{groups:?}");
        // circle (0) goes with red (1), square with blue.
        assert_eq!(s.train.aligned, vec![vec![1, 0]]);
        let b = s.test.batch(&[0], &candle_core::Device::Cpu).unwrap();
        assert_eq!(b.x.dims(), &[1, 3, 8, 8]);
    }

    #[test]
    fn a_split_column_is_used_as_given() {
        let dir = tempfile::tempdir().unwrap();
        crate::example::write(dir.path(), 12, 0.5, 0).unwrap();
        let csv = dir.path().join("labels.csv");
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut out = String::from("path,shape,colour,split\n");
        for (k, line) in text.lines().skip(1).enumerate() {
            out.push_str(&format!("{line},{}\n", SPLITS[k % 4]));
        }
        std::fs::write(&csv, out).unwrap();
        let cfg = FolderConfig {
            split_column: Some("split".into()),
            ..config(dir.path())
        };
        let s = cfg.splits(0).unwrap();
        assert_eq!(
            [
                s.train.len(),
                s.unbiased_train.len(),
                s.unbiased_val.len(),
                s.test.len()
            ],
            [3, 3, 3, 3]
        );
    }

    #[test]
    fn every_bad_row_is_listed_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        crate::example::write(dir.path(), 8, 0.5, 0).unwrap();
        std::fs::write(dir.path().join("images/00002.png"), b"not a png").unwrap();
        let csv = dir.path().join("labels.csv");
        let mut text = std::fs::read_to_string(&csv).unwrap();
        text.push_str("images/missing.png,circle,red\n");
        text.push_str("images/00001.png,triangle,red\n");
        text.push_str("images/00001.png,circle,\n");
        std::fs::write(&csv, text).unwrap();
        let cfg = FolderConfig {
            labels: Some(vec!["circle".into(), "square".into()]),
            ..config(dir.path())
        };
        let bad = cfg.bad_rows().unwrap();
        let lines: Vec<usize> = bad.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![4, 10, 11, 12], "{bad:?}");
        assert!(bad[0].reason.contains("00002.png"), "{}", bad[0]);
        assert!(bad[1].reason.contains("not found"), "{}", bad[1]);
        assert!(bad[2].reason.contains("\"triangle\""), "{}", bad[2]);
        assert!(bad[3].reason.contains("\"colour\""), "{}", bad[3]);
        let msg = cfg.splits(0).unwrap_err().to_string();
        assert!(
            msg.contains("4 unusable row(s)") && msg.contains("line 10 (images/missing.png)"),
            "{msg}"
        );
        let listed = Benchmark::problems(&cfg).unwrap();
        assert_eq!(listed.len(), 4);
        assert!(listed[0].starts_with(&csv.display().to_string()));
    }

    #[test]
    fn a_missing_column_or_csv_is_named() {
        let dir = tempfile::tempdir().unwrap();
        crate::example::write(dir.path(), 4, 0.5, 0).unwrap();
        let cfg = FolderConfig {
            bias_columns: vec!["background".into()],
            ..config(dir.path())
        };
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("data.bias_columns") && msg.contains("\"background\""),
            "{msg}"
        );
        let cfg = FolderConfig {
            csv: Some(dir.path().join("nope.csv")),
            ..config(dir.path())
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("nope.csv"));
        assert!(FolderConfig {
            bias_columns: vec![],
            ..config(dir.path())
        }
        .validate()
        .is_err());
    }
}
