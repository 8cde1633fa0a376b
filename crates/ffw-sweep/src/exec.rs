//! Running jobs: one job in its directory (panics and errors become a failed job, never a
//! dead sweep), the dependency-aware scheduler, and the single-process loop.
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use candle_core::Device;
use ffw_surgery::SurgeryError;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::grid::{Job, JobSpec, VanillaSpec};
use crate::pipeline::{run_ffw_job, run_magnitude_job, run_vanilla};
use crate::store::{
    write_json_atomic, Event, EventKind, JobState, ResultFile, Store, RESULT_JOB_KEY,
};

/// Test hook: job ids starting with any of these comma-separated prefixes fail on purpose,
/// so the failure, retry and skip paths can be exercised end to end.
pub const FAIL_ENV: &str = "FFW_FAIL_JOBS";

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

fn execute(store: &Store, job: &Job, jobs: &[Job], device: &Device) -> Result<serde_json::Value> {
    // A job handed out just as the stop came does not start.
    ffw_surgery::interrupt::check()?;
    if let Ok(list) = std::env::var(FAIL_ENV) {
        if list
            .split(',')
            .any(|p| !p.is_empty() && job.id.starts_with(p))
        {
            return Err(SweepError::Job {
                job: job.id.clone(),
                reason: format!("failure injected by {FAIL_ENV}"),
            });
        }
    }
    let dir = store.job_dir(&job.id);
    std::fs::create_dir_all(&dir).map_err(|e| SweepError::io(&dir, e))?;
    write_json_atomic(
        &dir.join("spec.json"),
        &serde_json::to_value(&job.spec).expect("specs serialise"),
    )?;
    let mut value = match &job.spec {
        JobSpec::Vanilla(spec) => {
            serde_json::to_value(run_vanilla(spec, job.seed(), &dir, device)?)
        }
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
            )?;
            serde_json::to_value(r)
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
    write_json_atomic(&store.result_path(&job.id), &value)?;
    Ok(value)
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

/// Runs one job.
pub fn run_job(store: &Store, job: &Job, jobs: &[Job], device: &Device) -> Outcome {
    let t = Instant::now();
    let dir = store.job_dir(&job.id);
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|_| crate::joblog::start(&dir.join("log.txt")))
    {
        tracing::warn!(job = %job.id, error = %e, "no per-job log");
    }
    tracing::info!(job = %job.id, what = %job.describe(jobs), "job start");
    let outcome = catch_unwind(AssertUnwindSafe(|| execute(store, job, jobs, device)));
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

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Pending { attempts: usize },
    Running { attempts: usize },
    Done,
    Failed,
    Skipped,
}

/// Which job may run next: pending, with every dependency done. A failed job is retried up to
/// `retries` more times in one invocation; jobs depending on one that failed for good are
/// skipped.
pub struct Scheduler {
    jobs: Vec<Job>,
    status: HashMap<String, Status>,
    retries: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub done: usize,
    pub running: usize,
    pub failed: usize,
    pub skipped: usize,
    pub pending: usize,
    /// Attempts stopped by SIGTERM/SIGINT in this invocation.
    pub interrupted: usize,
}

impl Scheduler {
    pub fn new(jobs: Vec<Job>, states: &HashMap<String, JobState>, retries: usize) -> Self {
        let status = jobs
            .iter()
            .map(|j| {
                let s = match &states[&j.id] {
                    JobState::Done => Status::Done,
                    // Each invocation gives unfinished jobs, failed ones included, a fresh
                    // budget of attempts: a restart is the user's request to try again.
                    JobState::Failed { .. }
                    | JobState::Incomplete
                    | JobState::NotStarted
                    | JobState::Damaged { .. } => Status::Pending { attempts: 0 },
                };
                (j.id.clone(), s)
            })
            .collect();
        let mut s = Self {
            jobs,
            status,
            retries,
        };
        s.propagate_skips();
        s
    }

    /// Marks pending jobs whose dependency failed or was skipped; returns them.
    fn propagate_skips(&mut self) -> Vec<String> {
        let mut skipped = Vec::new();
        loop {
            let next = self.jobs.iter().find(|j| {
                matches!(self.status[&j.id], Status::Pending { .. })
                    && j.deps().iter().any(|d| {
                        matches!(self.status.get(*d), Some(Status::Failed | Status::Skipped))
                    })
            });
            let Some(j) = next else { break };
            let id = j.id.clone();
            self.status.insert(id.clone(), Status::Skipped);
            skipped.push(id);
        }
        skipped
    }

    pub fn next_ready(&mut self) -> Option<Job> {
        let job = self.jobs.iter().find(|j| {
            matches!(self.status[&j.id], Status::Pending { .. })
                && j.deps()
                    .iter()
                    .all(|d| self.status.get(*d) == Some(&Status::Done))
        })?;
        let attempts = match self.status[&job.id] {
            Status::Pending { attempts } => attempts,
            _ => unreachable!("filtered above"),
        };
        self.status
            .insert(job.id.clone(), Status::Running { attempts });
        Some(job.clone())
    }

    /// Records a finished attempt; returns the jobs skipped because this one failed for good.
    pub fn finish(&mut self, id: &str, ok: bool) -> Vec<String> {
        let attempts = match self.status.get(id) {
            Some(Status::Running { attempts }) => *attempts,
            _ => return vec![],
        };
        if ok {
            self.status.insert(id.to_string(), Status::Done);
            return vec![];
        }
        if attempts + 1 > self.retries {
            self.status.insert(id.to_string(), Status::Failed);
            self.propagate_skips()
        } else {
            self.status.insert(
                id.to_string(),
                Status::Pending {
                    attempts: attempts + 1,
                },
            );
            vec![]
        }
    }

    /// Puts an interrupted job back: it did not fail, so the attempt does not count.
    pub fn requeue(&mut self, id: &str) {
        if let Some(Status::Running { attempts }) = self.status.get(id) {
            let attempts = *attempts;
            self.status
                .insert(id.to_string(), Status::Pending { attempts });
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in self.status.values() {
            match s {
                Status::Done => c.done += 1,
                Status::Running { .. } => c.running += 1,
                Status::Failed => c.failed += 1,
                Status::Skipped => c.skipped += 1,
                Status::Pending { .. } => c.pending += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.jobs.len()
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }
}

/// The coordinator's bookkeeping shared by the local and MPI loops: journal and progress.
pub struct Coordinator<'a> {
    pub store: &'a Store,
    pub sched: Scheduler,
    bar: indicatif::ProgressBar,
    interrupted: usize,
}

impl<'a> Coordinator<'a> {
    /// Reads the jobs' states; reports every damaged job (log and journal) and sets its
    /// damaged result aside, so that it reruns.
    pub fn new(store: &'a Store, jobs: Vec<Job>, retries: usize) -> Result<Self> {
        let states = store.states(&jobs)?;
        for j in &jobs {
            let JobState::Damaged { reason } = &states[&j.id] else {
                continue;
            };
            let mut reason = reason.clone();
            if let ResultFile::Damaged(_) = store.result_file(&j.id) {
                let aside = store.set_aside(&j.id)?;
                reason = format!("{reason}; kept as {}", aside.display());
            }
            tracing::warn!(job = %j.id, "damaged, runs again: {reason}");
            let mut e = Event::now(&j.id, EventKind::Damaged, 0);
            e.error = Some(reason);
            store.append(&e)?;
        }
        let sched = Scheduler::new(jobs, &states, retries);
        let bar = ffw_surgery::progress::bar(sched.total() as u64, "sweep");
        let mut c = Self {
            store,
            sched,
            bar,
            interrupted: 0,
        };
        c.refresh();
        Ok(c)
    }

    fn refresh(&mut self) {
        let c = self.sched.counts();
        self.bar
            .set_position((c.done + c.failed + c.skipped) as u64);
        self.bar.set_message(format!(
            "done {} running {} failed {} skipped {}",
            c.done, c.running, c.failed, c.skipped
        ));
    }

    pub fn next(&mut self, rank: i32) -> Result<Option<Job>> {
        let job = self.sched.next_ready();
        if let Some(j) = &job {
            self.store
                .append(&Event::now(&j.id, EventKind::Started, rank))?;
            tracing::info!(job = %j.id, rank, what = %j.describe(self.sched.jobs()), "started");
            self.refresh();
        }
        Ok(job)
    }

    pub fn finished(&mut self, id: &str, rank: i32, outcome: Outcome) -> Result<()> {
        let mut e = Event::now(id, EventKind::Finished, rank);
        match outcome {
            Outcome::Finished { secs, threads } => {
                e.secs = Some(secs);
                e.threads = Some(threads);
            }
            Outcome::Failed { error } => {
                tracing::warn!(job = %id, rank, error, "job failed");
                e.event = EventKind::Failed;
                e.error = Some(error);
            }
            Outcome::Interrupted => {
                tracing::warn!(job = %id, rank, "job interrupted: it runs again next time");
                e.event = EventKind::Interrupted;
                self.interrupted += 1;
                self.sched.requeue(id);
                self.store.append(&e)?;
                self.refresh();
                return Ok(());
            }
        }
        let ok = e.event == EventKind::Finished;
        self.store.append(&e)?;
        for skipped in self.sched.finish(id, ok) {
            let mut s = Event::now(&skipped, EventKind::Skipped, rank);
            s.error = Some(format!("dependency {id} failed"));
            self.store.append(&s)?;
        }
        self.refresh();
        Ok(())
    }

    pub fn close(self) -> Counts {
        self.bar.finish_and_clear();
        Counts {
            interrupted: self.interrupted,
            ..self.sched.counts()
        }
    }
}

/// World size 1: the coordinator runs every job itself.
pub fn run_local(store: &Store, jobs: Vec<Job>, retries: usize, device: &Device) -> Result<Counts> {
    let all = jobs.clone();
    let mut coord = Coordinator::new(store, jobs, retries)?;
    while !ffw_surgery::interrupt::requested() {
        let Some(job) = coord.next(0)? else { break };
        let outcome = run_job(store, &job, &all, device);
        coord.finished(&job.id, 0, outcome)?;
    }
    Ok(coord.close())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{FfwSpec, JobSpec};

    fn job(id: &str, dep: Option<&str>) -> Job {
        let spec = JobSpec::Ffw(FfwSpec {
            vanilla: dep.unwrap_or_default().into(),
            at: None,
            ffw: Default::default(),
        });
        Job {
            id: id.into(),
            spec,
        }
    }

    #[test]
    fn dependencies_retries_and_skips() {
        // "v" has the empty dependency "", which is not a job: give it one that is done.
        let jobs = vec![
            job("root", None),
            job("v", Some("root")),
            job("a", Some("v")),
            job("b", Some("v")),
        ];
        let mut states: HashMap<String, JobState> = jobs
            .iter()
            .map(|j| (j.id.clone(), JobState::NotStarted))
            .collect();
        states.insert("root".into(), JobState::Done);
        let mut s = Scheduler::new(jobs, &states, 1);
        // Only the root's dependant is ready; its dependants wait for it.
        assert_eq!(s.next_ready().unwrap().id, "v");
        assert!(s.next_ready().is_none());
        assert!(s.finish("v", false).is_empty()); // first failure: retried
        assert_eq!(s.next_ready().unwrap().id, "v");
        assert_eq!(s.finish("v", false), vec!["a".to_string(), "b".to_string()]); // for good
        assert!(s.next_ready().is_none());
        let c = s.counts();
        assert_eq!((c.done, c.failed, c.skipped, c.pending), (1, 1, 2, 0));
    }

    #[test]
    fn a_restart_retries_failed_jobs() {
        let jobs = vec![job("root", None), job("v", Some("root"))];
        let mut states = HashMap::new();
        states.insert("root".to_string(), JobState::Done);
        states.insert(
            "v".to_string(),
            JobState::Failed {
                attempts: 2,
                error: "x".into(),
            },
        );
        let mut s = Scheduler::new(jobs, &states, 0);
        assert_eq!(s.next_ready().unwrap().id, "v");
        assert_eq!(s.finish("v", false), Vec::<String>::new());
        assert_eq!(s.counts().failed, 1);
    }
}
