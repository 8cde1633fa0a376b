//! A sweep's results flattened into one record per scored model: its job's coordinates
//! from `sweep.json` (with the vanilla job's dataset, seed and epochs filled in for the jobs
//! built on it), the studies the job belongs to, and its scores, or none when `result.json`
//! is absent or damaged (not run, failed, still running, or to be rerun). A vanilla job
//! gives one record for its final model and one per training checkpoint (`at`), since
//! Table 6 compares FFW with the vanilla model at that checkpoint.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ffw_results::{
    BasePoint, DataPoint, DeviceInfo, FfwResult, JobEntry, JobKind, MagnitudeResult, Manifest,
    MaskReport, ResultFile, VanillaResult, Variant,
};
use serde::de::DeserializeOwned;

use crate::error::{ReportError, Result};

/// What produced a scored model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Vanilla,
    /// Global magnitude pruning of the final vanilla model.
    Magnitude,
    Ffw(Variant),
}

impl Method {
    /// The paper's names: "FFW" is the unstructured variant.
    pub fn label(self) -> &'static str {
        match self {
            Method::Vanilla => "vanilla",
            Method::Magnitude => "magnitude pruning",
            Method::Ffw(Variant::Unstructured) => "FFW",
            Method::Ffw(Variant::Structured) => "FFW-structured",
        }
    }

    /// The job kind as `spec.json` spells it.
    pub fn kind(self) -> &'static str {
        match self {
            Method::Vanilla => "vanilla",
            Method::Magnitude => "magnitude",
            Method::Ffw(_) => "ffw",
        }
    }

    pub fn variant(self) -> Option<&'static str> {
        match self {
            Method::Ffw(Variant::Unstructured) => Some("unstructured"),
            Method::Ffw(Variant::Structured) => Some("structured"),
            _ => None,
        }
    }

    /// Row order in the tables: the baseline first, FFW last, as in the paper.
    pub fn order(self) -> u8 {
        match self {
            Method::Vanilla => 0,
            Method::Magnitude => 1,
            Method::Ffw(Variant::Unstructured) => 2,
            Method::Ffw(Variant::Structured) => 3,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Record {
    pub job: String,
    pub method: Method,
    /// The studies of `sweep.json` that list the job.
    pub studies: Vec<String>,
    /// The dataset: the benchmark's name and its varied settings (ρ).
    pub data: DataPoint,
    /// The vanilla job's seed (the replicate), for every job built on it too.
    pub seed: u64,
    /// Epochs of the vanilla run.
    pub vanilla_epochs: usize,
    pub lambda: Option<f64>,
    /// Vanilla checkpoint (epochs) the model is, or FFW started from; none = the final model.
    pub at: Option<f64>,
    pub magnitude_target: Option<f64>,
    pub scores: Option<Scores>,
}

#[derive(Clone, Debug)]
pub struct Scores {
    /// The final mask for FFW; the model itself otherwise.
    pub report: MaskReport,
    pub best_intermediate: Option<(usize, MaskReport)>,
    /// None for vanilla checkpoints, which are timed with their job.
    pub wall_secs: Option<f64>,
    /// Where the job ran; none in results written before devices were recorded.
    pub device: Option<DeviceInfo>,
}

impl Record {
    pub fn in_study(&self, study: &str) -> bool {
        self.studies.iter().any(|s| s == study)
    }

    /// Epochs of vanilla training behind the model.
    pub fn epochs_trained(&self) -> f64 {
        self.at.unwrap_or(self.vanilla_epochs as f64)
    }

    /// The value of the dataset setting `name` (ρ), if the dataset has it.
    pub fn param(&self, name: &str) -> Option<f64> {
        self.data.params.get(name).copied()
    }
}

/// An axis a table or figure lets vary away from the base point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// The dataset's settings (ρ).
    Data,
    Lambda,
    /// The vanilla checkpoint (epochs of training) a model is or starts from.
    At,
}

/// The same dataset: one benchmark, the same attributes, every setting equal up to rounding.
pub fn same_data(a: &DataPoint, b: &DataPoint) -> bool {
    a.name == b.name
        && a.attributes == b.attributes
        && a.params.len() == b.params.len()
        && a.params
            .iter()
            .zip(&b.params)
            .all(|((ka, va), (kb, vb))| ka == kb && same(*va, *vb))
}

/// Whether the record sits at the base point on every axis but the `free` ones: a study
/// inherits `[sweep]`'s axes, so its jobs may also spread over values its table does not
/// show (those stay in jobs.csv).
pub fn at_base(base: &BasePoint, r: &Record, free: &[Axis]) -> bool {
    let free = |a| free.contains(&a);
    (free(Axis::Data) || same_data(&r.data, &base.data))
        && (free(Axis::Lambda) || r.lambda.is_none_or(|l| same(l, base.lambda)))
        && (free(Axis::At) || r.at.is_none())
        && r.vanilla_epochs == base.vanilla_epochs
}

/// Equal up to rounding: axis values come from TOML and JSON round trips.
pub fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

pub struct Sweep {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub records: Vec<Record>,
}

impl Sweep {
    /// Every job of `manifest` (the sweep in `dir`) with its `result.json`, if it has one.
    pub fn load(dir: &Path, manifest: Manifest) -> Result<Sweep> {
        let entry = |id: &str| {
            manifest
                .jobs
                .get(id)
                .ok_or_else(|| ReportError::UnknownJob {
                    id: id.to_string(),
                    manifest: Manifest::path(dir),
                })
        };

        // Jobs in manifest order, each once, with every study that lists it.
        let mut order: Vec<&str> = Vec::new();
        let mut membership: HashMap<&str, Vec<String>> = HashMap::new();
        for (study, s) in &manifest.studies {
            for id in &s.jobs {
                let studies = membership.entry(id.as_str()).or_insert_with(|| {
                    order.push(id);
                    Vec::new()
                });
                studies.push(study.clone());
            }
        }

        let mut records = Vec::new();
        for id in order {
            let job: &JobEntry = entry(id)?;
            let record = |method| Record {
                job: id.to_string(),
                method,
                studies: membership[id].clone(),
                data: job.data.clone(),
                seed: job.seed,
                vanilla_epochs: job.vanilla_epochs,
                lambda: job.lambda,
                at: job.at,
                magnitude_target: job.magnitude_target,
                scores: None,
            };
            match (job.kind, job.variant) {
                (JobKind::Vanilla, _) => {
                    let result: Option<VanillaResult> = read_result(dir, id)?;
                    records.push(Record {
                        scores: result.as_ref().map(|r| Scores {
                            report: r.report.clone(),
                            best_intermediate: None,
                            wall_secs: Some(r.wall_secs.values().sum()),
                            device: r.device.clone(),
                        }),
                        ..record(Method::Vanilla)
                    });
                    for &at in &job.checkpoints {
                        let report = result
                            .as_ref()
                            .and_then(|r| r.checkpoints.iter().find(|c| same(c.epoch, at)));
                        records.push(Record {
                            at: Some(at),
                            scores: report.map(|c| Scores {
                                report: c.report.clone(),
                                best_intermediate: None,
                                wall_secs: None,
                                device: result.as_ref().and_then(|r| r.device.clone()),
                            }),
                            ..record(Method::Vanilla)
                        });
                    }
                }
                (JobKind::Ffw, variant) => {
                    let variant = variant.ok_or_else(|| ReportError::File {
                        path: Manifest::path(dir),
                        reason: format!("FFW job {id} has no variant"),
                    })?;
                    let result: Option<FfwResult> = read_result(dir, id)?;
                    records.push(Record {
                        scores: result.map(|r| Scores {
                            report: r.final_mask,
                            best_intermediate: r.best_intermediate,
                            wall_secs: Some(r.wall_secs),
                            device: r.device,
                        }),
                        ..record(Method::Ffw(variant))
                    });
                }
                (JobKind::Magnitude, _) => {
                    let result: Option<MagnitudeResult> = read_result(dir, id)?;
                    records.push(Record {
                        scores: result.map(|r| Scores {
                            report: r.report,
                            best_intermediate: None,
                            wall_secs: Some(r.wall_secs),
                            device: r.device,
                        }),
                        ..record(Method::Magnitude)
                    });
                }
            }
        }
        Ok(Sweep {
            dir: dir.to_path_buf(),
            manifest,
            records,
        })
    }

    /// The point `study` holds fixed; the config's own for a study the sweep lacks.
    pub fn base(&self, study: &str) -> &BasePoint {
        self.manifest
            .studies
            .get(study)
            .map_or(&self.manifest.base, |s| &s.base)
    }

    /// Whether the job has a result (the final model's record is scored).
    pub fn is_done(&self, job: &str) -> bool {
        self.records
            .iter()
            .any(|r| r.job == job && r.scores.is_some())
    }

    /// The distinct jobs of `sweep.json`.
    pub fn jobs(&self) -> std::collections::BTreeSet<&str> {
        self.manifest
            .studies
            .values()
            .flat_map(|s| &s.jobs)
            .map(String::as_str)
            .collect()
    }

    pub fn has_study(&self, study: &str) -> bool {
        self.manifest.studies.contains_key(study)
    }
}

/// The job's result; none while `result.json` is absent, or damaged (the sweep reruns it).
/// A result of a newer schema than this ffw reads is an error naming the file and both
/// versions; older ones read.
fn read_result<T: DeserializeOwned>(dir: &Path, id: &str) -> Result<Option<T>> {
    let path = dir.join("jobs").join(id).join("result.json");
    match ffw_results::check_result(&path, id) {
        ResultFile::Valid => Ok(Some(ffw_results::read_result(&path)?)),
        newer @ ResultFile::Newer { .. } => Err(newer
            .newer_error(&path)
            .expect("a newer result has its error")
            .into()),
        ResultFile::Missing | ResultFile::Damaged(_) => Ok(None),
    }
}
