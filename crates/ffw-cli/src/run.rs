//! `ffw run`: the config's base point as a one-vanilla sweep (so it shares the sweep's job
//! directories, checkpoint reuse and resume), then one combined `result.json`.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ffw_placement::{DeviceChoice, Worker};
use ffw_sweep::exec::run_local;
use ffw_sweep::grid::expand;
use ffw_sweep::store::{write_json_atomic, JobState, Store};
use ffw_sweep::studies::{Studies, SweepSection};
use ffw_sweep::RunConfig;

use crate::output::{print_summary, RunResult, VERSIONS};

pub fn run(
    config_path: &Path,
    output: Option<PathBuf>,
    seed: Option<u64>,
    device: DeviceChoice,
) -> Result<()> {
    let mut cfg = RunConfig::load(config_path)?;
    if let Some(s) = seed {
        cfg.seed = s;
    }
    // A run is the base point of the grid; `ffw sweep` expands the axes.
    cfg.sweep = SweepSection {
        retries: 0,
        ..SweepSection::default()
    };
    cfg.studies = Studies::default();
    cfg.check_data()
        .with_context(|| config_path.display().to_string())?;
    let device = ffw_placement::open(device, Worker::SOLO, 1)?;
    let out = cfg.output_dir(config_path, output);
    let jobs = expand(&cfg);
    let store = Store::open(&out)?;
    let _lock = ffw_sweep::lock::acquire(&out)?;
    let counts = run_local(&store, jobs.clone(), 0, &device)?;
    if counts.interrupted > 0 || ffw_surgery::interrupt::requested() {
        return Err(crate::Interrupted {
            jobs: counts.interrupted,
        }
        .into());
    }
    if counts.done != jobs.len() {
        let states = store.states(&jobs)?;
        let why: Vec<String> = jobs
            .iter()
            .filter_map(|j| match &states[&j.id] {
                JobState::Failed { error, .. } => Some(format!("{}: {error}", j.describe(&jobs))),
                JobState::Done => None,
                _ => Some(format!(
                    "{}: not run (a job it depends on failed)",
                    j.describe(&jobs)
                )),
            })
            .collect();
        bail!(
            "the run did not complete (config {}):\n  {}",
            config_path.display(),
            why.join("\n  ")
        );
    }
    let read = |id: &str| {
        store
            .read_result(id)
            .with_context(|| format!("reading the result of job {id}"))
    };
    let vanilla = serde_json::from_value(read(&jobs[0].id)?)?;
    let ffw = jobs[1..]
        .iter()
        .map(|j| Ok(serde_json::from_value(read(&j.id)?)?))
        .collect::<Result<Vec<_>>>()?;
    let result = RunResult {
        seed: cfg.seed,
        config: cfg,
        versions: VERSIONS,
        jobs: jobs.iter().map(|j| j.id.clone()).collect(),
        vanilla,
        ffw,
    };
    let path = out.join("result.json");
    write_json_atomic(&path, &result)?;
    print_summary(&result);
    println!("result: {}", path.display());
    Ok(())
}
