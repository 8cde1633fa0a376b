//! Which job may run next: dependencies, retries, and the jobs skipped when a dependency
//! fails for good.
use std::collections::HashMap;

use crate::grid::Job;
use crate::store::JobState;

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

    /// The first pending job whose dependencies are done and that needs at most `ranks`
    /// ranks; it becomes running.
    pub fn next_ready(&mut self, ranks: usize) -> Option<Job> {
        let job = self.jobs.iter().find(|j| {
            j.ranks <= ranks
                && matches!(self.status[&j.id], Status::Pending { .. })
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
            ranks: 1,
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
        assert_eq!(s.next_ready(1).unwrap().id, "v");
        assert!(s.next_ready(1).is_none());
        assert!(s.finish("v", false).is_empty()); // first failure: retried
        assert_eq!(s.next_ready(1).unwrap().id, "v");
        assert_eq!(s.finish("v", false), vec!["a".to_string(), "b".to_string()]); // for good
        assert!(s.next_ready(1).is_none());
        let c = s.counts();
        assert_eq!((c.done, c.failed, c.skipped, c.pending), (1, 1, 2, 0));
    }

    /// A job waits until enough workers are idle; smaller ready jobs go ahead meanwhile.
    #[test]
    fn a_job_is_handed_out_once_its_ranks_are_idle() {
        let jobs = vec![
            Job {
                ranks: 2,
                ..job("wide", Some("root"))
            },
            job("narrow", Some("root")),
            job("root", None),
        ];
        let mut states: HashMap<String, JobState> = jobs
            .iter()
            .map(|j| (j.id.clone(), JobState::NotStarted))
            .collect();
        states.insert("root".into(), JobState::Done);
        let mut s = Scheduler::new(jobs, &states, 0);
        assert!(s.next_ready(0).is_none());
        assert_eq!(s.next_ready(1).unwrap().id, "narrow");
        assert!(s.next_ready(1).is_none(), "the wide job needs 2 ranks");
        assert_eq!(s.next_ready(3).unwrap().id, "wide");
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
        assert_eq!(s.next_ready(1).unwrap().id, "v");
        assert_eq!(s.finish("v", false), Vec::<String>::new());
        assert_eq!(s.counts().failed, 1);
    }
}
