//! Running jobs: one job in its directory (its kind's pipeline, the failure-injection test
//! hook; panics and errors become a failed job, never a dead sweep), and the
//! single-process loop over the [`Coordinator`].
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use candle_core::Device;
use ffw_placement::{Group, Solo};
use ffw_surgery::SurgeryError;
use serde::{Deserialize, Serialize};

use crate::coordinator::Coordinator;
use crate::error::{Result, SweepError};
use crate::grid::{Job, JobSpec, VanillaSpec};
use crate::pipeline::{run_ffw_job, run_magnitude_job, run_vanilla};
use crate::scheduler::Counts;
use crate::store::{write_json_atomic, Store, RESULT_JOB_KEY};

/// Test hook: job ids starting with any of these comma-separated prefixes fail on purpose,
/// so the failure, retry and skip paths can be exercised end to end; `prefix@r` fails only
/// on rank `r` of the job's group, as a rank that cannot read a file would.
pub const FAIL_ENV: &str = "FFW_FAIL_JOBS";

/// Whether [`FAIL_ENV`] asks `id` to fail on `rank` of its group.
fn failure_injected(id: &str, rank: usize) -> bool {
    let Ok(list) = std::env::var(FAIL_ENV) else {
        return false;
    };
    list.split(',').any(|entry| {
        let (prefix, only) = match entry.split_once('@') {
            Some((p, r)) => (p, r.parse::<usize>().ok()),
            None => (entry, None),
        };
        !prefix.is_empty() && id.starts_with(prefix) && only.is_none_or(|r| r == rank)
    })
}

/// The vanilla job `id` that `job` builds on, and its spec.
fn vanilla_of<'a>(job: &Job, id: &str, jobs: &'a [Job]) -> Result<(&'a Job, &'a VanillaSpec)> {
    let parent = jobs
        .iter()
        .find(|j| j.id == id)
        .ok_or_else(|| SweepError::Job {
            job: job.id.clone(),
            reason: format!("vanilla job {id} is not in the grid"),
        })?;
    match &parent.spec {
        JobSpec::Vanilla(v) => Ok((parent, v)),
        _ => Err(SweepError::Job {
            job: job.id.clone(),
            reason: "dependency is not a vanilla job".into(),
        }),
    }
}

/// Runs `job` on `group` (its first rank alone writes files; vanilla and FFW jobs run
/// data-parallel on the whole group, magnitude pruning on a group of one).
fn execute(store: &Store, job: &Job, jobs: &[Job], device: &Device, group: &Group) -> Result<()> {
    // A job handed out just as the stop came does not start.
    ffw_surgery::interrupt::check_in(group.as_ref())?;
    if failure_injected(&job.id, group.rank()) {
        return Err(SweepError::Job {
            job: job.id.clone(),
            reason: format!("failure injected by {FAIL_ENV}"),
        });
    }
    let dir = store.job_dir(&job.id);
    let leader = group.rank() == 0;
    if leader {
        std::fs::create_dir_all(&dir).map_err(|e| SweepError::io(&dir, e))?;
        write_json_atomic(
            &dir.join("spec.json"),
            &serde_json::to_value(&job.spec).expect("specs serialise"),
        )?;
    }
    let mut value = match &job.spec {
        JobSpec::Vanilla(spec) => match run_vanilla(spec, job.seed(), &dir, device, group)? {
            Some(result) => serde_json::to_value(result),
            // A group's other ranks only trained: the first rank writes everything.
            None => return Ok(()),
        },
        JobSpec::Ffw(spec) => {
            let (parent, vspec) = vanilla_of(job, &spec.vanilla, jobs)?;
            let r = run_ffw_job(
                spec,
                vspec,
                parent.seed(),
                &store.job_dir(&parent.id),
                job.seed(),
                &dir,
                device,
                group.as_ref(),
            )?;
            match r {
                Some(result) => serde_json::to_value(result),
                None => return Ok(()),
            }
        }
        JobSpec::Magnitude(spec) => {
            let (parent, vspec) = vanilla_of(job, &spec.vanilla, jobs)?;
            let r = run_magnitude_job(
                spec,
                vspec,
                parent.seed(),
                &store.job_dir(&parent.id),
                job.seed(),
                device,
            )?;
            serde_json::to_value(r)
        }
    }
    .expect("results serialise");
    if let serde_json::Value::Object(m) = &mut value {
        m.insert(RESULT_JOB_KEY.into(), job.id.clone().into());
    }
    write_json_atomic(&store.result_path(&job.id), &value)
}

/// How one attempt at a job ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Wall seconds, and the threads of the process that ran it.
    Finished { secs: f64, threads: usize },
    /// The error text (panics included).
    Failed { error: String },
    /// Stopped by SIGTERM/SIGINT ([`ffw_surgery::interrupt`]): it runs again next time.
    Interrupted,
}

/// Runs one job on `group` ([`Solo`] but for jobs of several ranks); the per-job log is the
/// first rank's.
pub fn run_job(store: &Store, job: &Job, jobs: &[Job], device: &Device, group: &Group) -> Outcome {
    let t = Instant::now();
    let dir = store.job_dir(&job.id);
    if group.rank() == 0 {
        if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|_| crate::joblog::start(&dir.join("log.txt")))
        {
            tracing::warn!(job = %job.id, error = %e, "no per-job log");
        }
    }
    tracing::info!(job = %job.id, what = %job.describe(jobs), ranks = group.size(), "job start");
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        execute(store, job, jobs, device, group)
    }));
    // Where one rank failed, the others learn it here or in their next collective.
    let failed = !matches!(outcome, Ok(Ok(_)));
    if let Err(e) = group.conclude(failed) {
        if !failed {
            tracing::warn!(job = %job.id, error = %e, "after this rank's part ended");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let result = match outcome {
        Ok(Ok(_)) => Outcome::Finished {
            secs,
            threads: rayon::current_num_threads(),
        },
        Ok(Err(SweepError::Surgery(SurgeryError::Interrupted))) => Outcome::Interrupted,
        Ok(Err(e)) => Outcome::Failed {
            error: e.to_string(),
        },
        Err(panic) => Outcome::Failed {
            error: format!(
                "panic: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
        },
    };
    match &result {
        Outcome::Finished { secs, .. } => tracing::info!(job = %job.id, secs, "job finished"),
        Outcome::Failed { error } => tracing::error!(job = %job.id, secs, error, "job failed"),
        Outcome::Interrupted => tracing::warn!(job = %job.id, secs, "job interrupted"),
    }
    crate::joblog::stop();
    result
}

/// World size 1: the coordinator runs every job itself.
pub fn run_local(store: &Store, jobs: Vec<Job>, retries: usize, device: &Device) -> Result<Counts> {
    let all = jobs.clone();
    let mut coord = Coordinator::new(store, jobs, retries)?;
    let solo: Group = std::sync::Arc::new(Solo);
    while !ffw_surgery::interrupt::requested() {
        let Some(job) = coord.next(1) else { break };
        coord.started(&job, 0)?;
        let outcome = run_job(store, &job, &all, device, &solo);
        coord.finished(&job.id, 0, outcome)?;
    }
    Ok(coord.close())
}
