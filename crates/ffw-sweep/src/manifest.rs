//! `sweep.json`: the config a sweep ran, and beside it what the report reads
//! ([`ffw_results::Manifest`]): each study's jobs and base point, each job's coordinates.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ffw_results::{BasePoint, DataPoint, JobEntry, JobKind, Manifest, Study, MANIFEST};
use serde::{Deserialize, Serialize};

use ffw_data::DataConfig;
use ffw_surgery::VanillaConfig;

use crate::config::RunConfig;
use crate::error::{Result, SweepError};
use crate::grid::{expand, expand_grid, JobSpec, VanillaSpec};
use crate::store::{write_json_atomic, Store};
use crate::studies::Grid;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SweepManifest {
    pub config: RunConfig,
    #[serde(flatten)]
    pub report: Manifest,
}

/// `sweep.json` as written before it held the report's part: the config and each study's
/// job identities.
#[derive(Deserialize)]
struct Legacy {
    config: RunConfig,
    studies: BTreeMap<String, Vec<String>>,
}

fn data_point(data: &DataConfig) -> DataPoint {
    let data = data.benchmark();
    DataPoint {
        name: data.name().to_string(),
        params: data.params(),
        attributes: data.attributes(),
    }
}

/// The point a grid on `data` with `vanilla` training holds fixed.
fn base_point(cfg: &RunConfig, data: &DataConfig, vanilla: &VanillaConfig) -> BasePoint {
    BasePoint {
        data: data_point(data),
        lambda: cfg.ffw.settings.lambda,
        vanilla_epochs: vanilla.epochs,
    }
}

fn grid_base(cfg: &RunConfig, grid: &Grid) -> BasePoint {
    base_point(cfg, grid.data, grid.vanilla)
}

/// Each job's entry, from the specs by identity (a job's vanilla job must be among them).
fn entries(
    specs: &HashMap<String, JobSpec>,
    ids: &[&String],
) -> Result<BTreeMap<String, JobEntry>> {
    let vanilla_of = |id: &str| match specs.get(id) {
        Some(JobSpec::Vanilla(v)) => Ok(v),
        _ => Err(SweepError::Job {
            job: id.to_string(),
            reason: "a job builds on it, but it is not a known vanilla job".into(),
        }),
    };
    let entry = |id: &str| -> Result<JobEntry> {
        let spec = specs.get(id).ok_or_else(|| SweepError::Job {
            job: id.to_string(),
            reason: "no jobs/<id>/spec.json and not in the grid of the recorded config".into(),
        })?;
        let on = |v: &VanillaSpec, kind| JobEntry {
            kind,
            variant: None,
            data: data_point(&v.data),
            seed: v.seed,
            vanilla_epochs: v.vanilla.epochs,
            checkpoints: vec![],
            lambda: None,
            at: None,
            magnitude_target: None,
        };
        Ok(match spec {
            JobSpec::Vanilla(v) => JobEntry {
                checkpoints: v.vanilla.checkpoints.clone(),
                ..on(v, JobKind::Vanilla)
            },
            JobSpec::Ffw(f) => JobEntry {
                variant: Some(f.ffw.variant),
                lambda: Some(f.ffw.lambda),
                at: f.at,
                ..on(vanilla_of(&f.vanilla)?, JobKind::Ffw)
            },
            JobSpec::Magnitude(m) => JobEntry {
                magnitude_target: Some(m.sparsity),
                ..on(vanilla_of(&m.vanilla)?, JobKind::Magnitude)
            },
        })
    };
    ids.iter()
        .map(|id| Ok((id.to_string(), entry(id)?)))
        .collect()
}

impl SweepManifest {
    /// The manifest of a sweep of `cfg`: every job of every study, run or not.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let specs: HashMap<String, JobSpec> =
            expand(cfg).into_iter().map(|j| (j.id, j.spec)).collect();
        let studies = cfg
            .grids()
            .iter()
            .map(|grid| {
                let jobs = expand_grid(cfg, grid).into_iter().map(|j| j.id).collect();
                let base = grid_base(cfg, grid);
                (grid.name.to_string(), Study { base, jobs })
            })
            .collect();
        Self::with_studies(cfg.clone(), studies, &specs)
    }

    fn with_studies(
        config: RunConfig,
        studies: BTreeMap<String, Study>,
        specs: &HashMap<String, JobSpec>,
    ) -> Result<Self> {
        let ids: Vec<&String> = studies.values().flat_map(|s| &s.jobs).collect();
        let jobs = entries(specs, &ids)?;
        Ok(Self {
            report: Manifest {
                base: base_point(&config, &config.data, &config.vanilla),
                studies,
                jobs,
            },
            config,
        })
    }

    pub fn write(&self, store: &Store) -> Result<()> {
        write_json_atomic(&store.root().join(MANIFEST), self)
    }

    /// The manifest of the sweep in `dir`. One written before `sweep.json` held the report's
    /// part is completed from its config and the jobs' `spec.json`, so finished sweeps still
    /// report.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SweepError::File {
                path: path.clone(),
                reason: "not found: not the output directory of `ffw sweep`".into(),
            },
            _ => SweepError::io(&path, e),
        })?;
        let bad = |e: serde_json::Error| SweepError::File {
            path: path.clone(),
            reason: e.to_string(),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(bad)?;
        if value.get("jobs").is_some() {
            return serde_json::from_value(value).map_err(bad);
        }
        let legacy: Legacy = serde_json::from_value(value).map_err(bad)?;
        let mut specs: HashMap<String, JobSpec> = expand(&legacy.config)
            .into_iter()
            .map(|j| (j.id, j.spec))
            .collect();
        let store = Store::at(dir);
        for id in legacy.studies.values().flatten() {
            let spec = store.job_dir(id).join("spec.json");
            if !specs.contains_key(id) && spec.is_file() {
                let text = std::fs::read(&spec).map_err(|e| SweepError::io(&spec, e))?;
                let parsed = serde_json::from_slice(&text).map_err(|e| SweepError::File {
                    path: spec.clone(),
                    reason: e.to_string(),
                })?;
                specs.insert(id.clone(), parsed);
            }
        }
        let grids = legacy.config.grids();
        let studies = legacy
            .studies
            .into_iter()
            .map(|(name, jobs)| {
                let base = match grids.iter().find(|g| g.name == name) {
                    Some(grid) => grid_base(&legacy.config, grid),
                    None => base_point(&legacy.config, &legacy.config.data, &legacy.config.vanilla),
                };
                (name, Study { base, jobs })
            })
            .collect();
        Self::with_studies(legacy.config.clone(), studies, &specs).map_err(|e| SweepError::File {
            path,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str =
        "[data]\nkind = \"biased_mnist\"\ndir = \"d\"\nrho = 0.99\n[model]\nkernel = 3\n\
        [vanilla]\nepochs = 4\nmilestones = [3]\ncheckpoints = [0.5]\n[sweep]\nseeds = [0, 1]\n\
        [studies.rho]\nrho = [0.99, 0.995]\n[studies.epochs]\nat = [0.5]\n\
        [studies.multi_color_mnist.data]\nkind = \"multi_color_mnist\"\ndir = \"m\"\n\
        [studies.multi_color_mnist.model]\nname = \"mlp\"\n";

    #[test]
    fn every_job_has_its_coordinates_and_each_study_its_dataset() {
        let cfg = RunConfig::parse(CONFIG).unwrap();
        let m = SweepManifest::new(&cfg).unwrap().report;
        let rho = |d: &DataPoint| d.params.get("rho").copied();
        assert_eq!(rho(&m.studies["rho"].base.data), Some(0.99));
        let colour = &m.studies["multi_color_mnist"].base.data;
        assert_eq!(
            (colour.name.as_str(), colour.params.len()),
            ("multi_color_mnist", 0)
        );
        // Per seed: ρ 0.99 and 0.995 vanilla + FFW, FFW from 0.5 epochs, and a
        // Multi-Color MNIST vanilla + FFW.
        assert_eq!(m.jobs.len(), 2 * (2 * 2 + 1 + 2));
        for id in &m.studies["multi_color_mnist"].jobs {
            assert_eq!(m.jobs[id].data.name, "multi_color_mnist");
        }
        let from_checkpoint = m.jobs.values().filter(|j| j.at == Some(0.5)).count();
        assert_eq!(from_checkpoint, 2);
        let vanilla = m.jobs.values().filter(|j| j.kind == JobKind::Vanilla);
        assert!(vanilla
            .filter(|j| j.data.name == "biased_mnist")
            .all(|j| j.checkpoints == vec![0.5]));
    }

    #[test]
    fn a_manifest_from_before_the_report_part_is_completed_from_its_config() {
        let cfg = RunConfig::parse(CONFIG).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let now = SweepManifest::new(&cfg).unwrap();
        let legacy = serde_json::json!({
            "config": cfg,
            "studies": now.report.studies.iter()
                .map(|(name, s)| (name.clone(), s.jobs.clone()))
                .collect::<BTreeMap<_, _>>(),
        });
        std::fs::write(tmp.path().join(MANIFEST), legacy.to_string()).unwrap();
        assert_eq!(SweepManifest::read(tmp.path()).unwrap().report, now.report);
        now.write(&Store::open(tmp.path()).unwrap()).unwrap();
        assert_eq!(SweepManifest::read(tmp.path()).unwrap().report, now.report);
        // The report's own reader reads what the sweep writes.
        assert_eq!(Manifest::read(tmp.path()).unwrap(), now.report);
    }
}
