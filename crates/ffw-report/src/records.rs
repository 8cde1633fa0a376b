//! A sweep's results flattened into one record per scored model: its job's spec (with the
//! vanilla job's ρ, seed and epochs filled in for the jobs built on it), the studies the job
//! belongs to, and its scores, or none when `result.json` is absent (not run, failed, or
//! still running). A vanilla job gives one record for its final model and one per training
//! checkpoint (`at`), since Table 6 compares FFW with the vanilla model at that checkpoint.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ffw_results::{DeviceInfo, FfwResult, MagnitudeResult, MaskReport, VanillaResult, Variant};
use ffw_sweep::grid::{expand, JobSpec, VanillaSpec};
use ffw_sweep::store::{Store, MANIFEST};
use ffw_sweep::RunConfig;
use serde::de::DeserializeOwned;

use crate::aggregate::same;
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
    /// The benchmark's name (`biased_mnist`, `multi_color_mnist`).
    pub dataset: &'static str,
    /// The benchmark's ρ; NaN for one without (it then matches no ρ of any table).
    pub rho: f64,
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
}

/// An axis a table or figure lets vary away from the base point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    Rho,
    Lambda,
    /// The vanilla checkpoint (epochs of training) a model is or starts from.
    At,
}

/// The base point of the sweep's config: the value of every axis a study does not vary.
#[derive(Clone, Copy, Debug)]
pub struct Base {
    pub rho: f64,
    pub lambda: f64,
    pub vanilla_epochs: usize,
}

impl Base {
    /// Whether the record sits at the base point on every axis but the `free` ones: a study
    /// inherits `[sweep]`'s axes, so its jobs may also spread over values its table does not
    /// show (those stay in jobs.csv).
    pub fn holds(&self, r: &Record, free: &[Axis]) -> bool {
        let free = |a| free.contains(&a);
        (free(Axis::Rho) || same(r.rho, self.rho))
            && (free(Axis::Lambda) || r.lambda.is_none_or(|l| same(l, self.lambda)))
            && (free(Axis::At) || r.at.is_none())
            && r.vanilla_epochs == self.vanilla_epochs
    }
}

pub struct Sweep {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub studies: BTreeMap<String, Vec<String>>,
    pub records: Vec<Record>,
}

impl Sweep {
    /// Reads `sweep.json`, every job's spec (from `jobs/<id>/spec.json`, else from the
    /// recorded config's grid, so jobs that never started still get their missing cells) and
    /// every `result.json` there is.
    pub fn load(dir: &Path) -> Result<Sweep> {
        let manifest_path = dir.join(MANIFEST);
        if !manifest_path.is_file() {
            return Err(ReportError::NoManifest {
                dir: dir.to_path_buf(),
            });
        }
        let store = Store::open(dir)?;
        let manifest = store.read_manifest()?;
        let planned: HashMap<String, JobSpec> = expand(&manifest.config)
            .into_iter()
            .map(|j| (j.id, j.spec))
            .collect();
        let spec_of = |id: &str| -> Result<JobSpec> {
            let path = store.job_dir(id).join("spec.json");
            if path.is_file() {
                return read_json(&path);
            }
            planned
                .get(id)
                .cloned()
                .ok_or_else(|| ReportError::UnknownJob {
                    id: id.to_string(),
                    manifest: manifest_path.clone(),
                })
        };
        let vanilla_of = |id: &str| -> Result<VanillaSpec> {
            match spec_of(id)? {
                JobSpec::Vanilla(v) => Ok(v),
                _ => Err(ReportError::File {
                    path: store.job_dir(id).join("spec.json"),
                    reason: "a job builds on it, but it is not a vanilla job".into(),
                }),
            }
        };

        // Jobs in manifest order, each once, with every study that lists it.
        let mut order: Vec<&str> = Vec::new();
        let mut membership: HashMap<&str, Vec<String>> = HashMap::new();
        for (study, ids) in &manifest.studies {
            for id in ids {
                let studies = membership.entry(id.as_str()).or_insert_with(|| {
                    order.push(id);
                    Vec::new()
                });
                studies.push(study.clone());
            }
        }

        let mut records = Vec::new();
        for id in order {
            let studies = membership.remove(id).unwrap_or_default();
            let record = |method, v: &VanillaSpec| Record {
                job: id.to_string(),
                method,
                studies: studies.clone(),
                dataset: v.data.benchmark().name(),
                rho: v.data.benchmark().rho().unwrap_or(f64::NAN),
                seed: v.seed,
                vanilla_epochs: v.vanilla.epochs,
                lambda: None,
                at: None,
                magnitude_target: None,
                scores: None,
            };
            match spec_of(id)? {
                JobSpec::Vanilla(v) => {
                    let result: Option<VanillaResult> = read_result(&store, id)?;
                    records.push(Record {
                        scores: result.as_ref().map(|r| Scores {
                            report: r.report.clone(),
                            best_intermediate: None,
                            wall_secs: Some(r.wall_secs.values().sum()),
                            device: r.device.clone(),
                        }),
                        ..record(Method::Vanilla, &v)
                    });
                    for &at in &v.vanilla.checkpoints {
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
                            ..record(Method::Vanilla, &v)
                        });
                    }
                }
                JobSpec::Ffw(f) => {
                    let v = vanilla_of(&f.vanilla)?;
                    let result: Option<FfwResult> = read_result(&store, id)?;
                    records.push(Record {
                        lambda: Some(f.ffw.lambda),
                        at: f.at,
                        scores: result.map(|r| Scores {
                            report: r.final_mask,
                            best_intermediate: r.best_intermediate,
                            wall_secs: Some(r.wall_secs),
                            device: r.device,
                        }),
                        ..record(Method::Ffw(f.ffw.variant), &v)
                    });
                }
                JobSpec::Magnitude(m) => {
                    let v = vanilla_of(&m.vanilla)?;
                    let result: Option<MagnitudeResult> = read_result(&store, id)?;
                    records.push(Record {
                        magnitude_target: Some(m.sparsity),
                        scores: result.map(|r| Scores {
                            report: r.report,
                            best_intermediate: None,
                            wall_secs: Some(r.wall_secs),
                            device: r.device,
                        }),
                        ..record(Method::Magnitude, &v)
                    });
                }
            }
        }
        Ok(Sweep {
            dir: dir.to_path_buf(),
            config: manifest.config,
            studies: manifest.studies,
            records,
        })
    }

    pub fn base(&self) -> Base {
        Base {
            rho: self.config.data.benchmark().rho().unwrap_or(f64::NAN),
            lambda: self.config.ffw.settings.lambda,
            vanilla_epochs: self.config.vanilla.epochs,
        }
    }

    /// Whether the job has a result (the final model's record is scored).
    pub fn is_done(&self, job: &str) -> bool {
        self.records
            .iter()
            .any(|r| r.job == job && r.scores.is_some())
    }

    /// The distinct jobs of `sweep.json`.
    pub fn jobs(&self) -> std::collections::BTreeSet<&str> {
        self.studies
            .values()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    pub fn has_study(&self, study: &str) -> bool {
        self.studies.contains_key(study)
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ReportError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The job's result, or none while `result.json` is absent (the job is done iff it exists);
/// a result of a newer schema than this ffw reads is an error naming both versions.
fn read_result<T: DeserializeOwned>(store: &Store, id: &str) -> Result<Option<T>> {
    if store.is_done(id) {
        Ok(Some(ffw_results::read_result(&store.result_path(id))?))
    } else {
        Ok(None)
    }
}
