//! The coordinator's bookkeeping, shared by the local and MPI loops: damaged results set
//! aside, every start and end in the journal, and the progress bar.
use crate::error::Result;
use crate::exec::Outcome;
use crate::grid::Job;
use crate::scheduler::{Counts, Scheduler};
use crate::store::{Event, EventKind, JobState, ResultFile, Store};

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

    /// The next ready job that `idle` workers can run (its state becomes running); the
    /// caller then names its first rank with [`Self::started`].
    pub fn next(&mut self, idle: usize) -> Option<Job> {
        self.sched.next_ready(idle)
    }

    /// Journals and logs that `job` started on `rank` (its first rank).
    pub fn started(&mut self, job: &Job, rank: i32) -> Result<()> {
        self.store
            .append(&Event::now(&job.id, EventKind::Started, rank))?;
        tracing::info!(job = %job.id, rank, ranks = job.ranks, what = %job.describe(self.sched.jobs()), "started");
        self.refresh();
        Ok(())
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
