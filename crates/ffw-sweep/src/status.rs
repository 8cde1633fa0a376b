//! A sweep's progress from its journal alone: what `ffw status DIR` prints at any time (also
//! while the sweep runs, from another shell), and the line the coordinator logs at a fixed
//! interval, since under mpirun/srun stderr is no terminal and shows no progress bar.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::grid::{Job, JobSpec};
use crate::store::{utc, Event, EventKind, JobState, Store};

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn kind(job: &Job) -> &'static str {
    match job.spec {
        JobSpec::Vanilla(_) => "vanilla",
        JobSpec::Ffw(_) => "ffw",
        JobSpec::Magnitude(_) => "magnitude",
    }
}

/// Wall and core seconds of the finished jobs of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Times {
    pub jobs: usize,
    pub secs: f64,
    pub core_secs: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub total: usize,
    pub done: usize,
    /// (job, rank, started at) of each job whose last event is its start.
    pub running: Vec<(String, i32, f64)>,
    pub failed: usize,
    pub skipped: usize,
    /// Neither done, running, failed nor skipped.
    pub left: usize,
    /// Finished jobs' times per kind (every attempt in the journal).
    pub times: BTreeMap<&'static str, Times>,
    /// Wall seconds the unfinished jobs need at the finished ones' mean per kind, and the
    /// number of them of a kind that has no finished job yet (not counted).
    pub secs_left: f64,
    pub core_secs_left: f64,
    pub unknown: usize,
    /// Each rank's last event: (time, what).
    pub ranks: BTreeMap<i32, (f64, String)>,
}

impl Summary {
    /// `done` says which jobs have a valid result (the journal alone would miss results
    /// written by a sweep whose journal was lost, and trust damaged ones).
    pub fn new(jobs: &[Job], events: &[Event], done: impl Fn(&str) -> bool) -> Self {
        let kinds: HashMap<&str, &'static str> =
            jobs.iter().map(|j| (j.id.as_str(), kind(j))).collect();
        let mut last: HashMap<&str, &Event> = HashMap::new();
        let mut s = Summary {
            total: jobs.len(),
            ..Default::default()
        };
        for e in events {
            if !kinds.contains_key(e.job.as_str()) {
                continue;
            }
            last.insert(&e.job, e);
            let what = format!("{:?} {}", e.event, e.job).to_lowercase();
            s.ranks.insert(e.rank, (e.time, what));
            if let (EventKind::Finished, Some(secs)) = (&e.event, e.secs) {
                let t = s.times.entry(kinds[e.job.as_str()]).or_default();
                t.jobs += 1;
                t.secs += secs;
                t.core_secs += secs * e.threads.unwrap_or(1) as f64;
            }
        }
        for j in jobs {
            if done(&j.id) {
                s.done += 1;
                continue;
            }
            match last.get(j.id.as_str()).map(|e| (&e.event, e.rank, e.time)) {
                Some((EventKind::Started, rank, time)) => {
                    s.running.push((j.id.clone(), rank, time))
                }
                Some((EventKind::Failed, ..)) => s.failed += 1,
                Some((EventKind::Skipped, ..)) => s.skipped += 1,
                _ => s.left += 1,
            }
            match s.times.get(kind(j)) {
                Some(t) => {
                    s.secs_left += t.secs / t.jobs as f64;
                    s.core_secs_left += t.core_secs / t.jobs as f64;
                }
                None => s.unknown += 1,
            }
        }
        s
    }

    /// Of the sweep in `store`: done as [`Store::states`] decides, which a rerun follows.
    pub fn of(store: &Store, jobs: &[Job]) -> crate::Result<Self> {
        let states = store.states(jobs)?;
        Ok(Self::new(jobs, &store.events()?, |id| {
            states.get(id) == Some(&JobState::Done)
        }))
    }

    /// The expected rest of the sweep at the pace of the jobs now running (as many at once).
    pub fn eta_secs(&self) -> Option<f64> {
        (self.unknown == 0 && self.done < self.total)
            .then(|| self.secs_left / self.running.len().max(1) as f64)
    }

    /// One line: counts, pace and ETA.
    pub fn line(&self) -> String {
        let eta = match self.eta_secs() {
            Some(secs) => format!(
                "ETA {} at {} job(s) at once",
                duration(secs),
                self.running.len().max(1)
            ),
            None if self.done == self.total => "complete".into(),
            None => "ETA unknown until a job of each kind has finished".into(),
        };
        format!(
            "{}/{} done, {} running, {} failed, {} skipped, {} left; {eta}",
            self.done,
            self.total,
            self.running.len(),
            self.failed,
            self.skipped,
            self.left
        )
    }
}

/// `3h05m`, `12m30s`, `45s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// What `ffw status` prints: the line, each running job, each rank's last activity (a
/// hung rank shows an old one), and the time of the last event.
pub fn report(summary: &Summary, jobs: &[Job], now: f64) -> String {
    let mut out = format!("{}\n", summary.line());
    for (id, rank, since) in &summary.running {
        let what = jobs
            .iter()
            .find(|j| &j.id == id)
            .map(|j| j.describe(jobs))
            .unwrap_or_default();
        out += &format!(
            "  running on rank {rank} for {}: {id} {what}\n",
            duration(now - since)
        );
    }
    for (rank, (time, what)) in &summary.ranks {
        out += &format!(
            "  rank {rank}: last {what}, {} ago ({})\n",
            duration(now - time),
            utc(*time)
        );
    }
    for (kind, t) in &summary.times {
        out += &format!(
            "  {kind}: {} finished, {} each on average\n",
            t.jobs,
            duration(t.secs / t.jobs as f64)
        );
    }
    out
}

/// Logs the summary line every `interval` until the returned guard is dropped.
pub fn log_every(dir: &Path, jobs: &[Job], interval: Duration) -> StatusLogger {
    let (stop, stopped) = mpsc::channel::<()>();
    let (dir, jobs) = (dir.to_path_buf(), jobs.to_vec());
    std::thread::spawn(move || {
        crate::joblog::keep_this_thread_out();
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
            match Summary::of(&Store::at(&dir), &jobs) {
                Ok(s) => tracing::info!("sweep status: {}", s.line()),
                Err(e) => tracing::warn!("sweep status: {e}"),
            }
        }
    });
    StatusLogger { _stop: stop }
}

/// Stops the status line when dropped.
pub struct StatusLogger {
    _stop: mpsc::Sender<()>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            spec: JobSpec::Ffw(crate::grid::FfwSpec {
                vanilla: "v".into(),
                at: None,
                ffw: Default::default(),
            }),
            ranks: 1,
        }
    }

    fn event(job: &str, event: EventKind, rank: i32, time: f64, secs: Option<f64>) -> Event {
        Event {
            time,
            job: job.into(),
            event,
            rank,
            error: None,
            secs,
            threads: secs.map(|_| 4),
        }
    }

    #[test]
    fn counts_ranks_and_eta_follow_the_journal() {
        let jobs: Vec<Job> = ["a", "b", "c", "d", "e"].map(job).to_vec();
        let events = vec![
            event("a", EventKind::Started, 1, 10.0, None),
            event("b", EventKind::Started, 2, 11.0, None),
            event("a", EventKind::Finished, 1, 110.0, Some(100.0)),
            event("c", EventKind::Started, 1, 111.0, None),
            event("b", EventKind::Failed, 2, 120.0, None),
            event("b", EventKind::Started, 2, 121.0, None),
        ];
        let s = Summary::new(&jobs, &events, |id| id == "a");
        assert_eq!((s.done, s.running.len(), s.failed, s.left), (1, 2, 0, 2));
        // Four unfinished jobs at 100 s each, two at once.
        assert_eq!(s.eta_secs(), Some(200.0));
        assert_eq!(s.core_secs_left, 1600.0);
        assert_eq!(s.ranks[&1], (111.0, "started c".to_string()));
        assert!(s
            .line()
            .starts_with("1/5 done, 2 running, 0 failed, 0 skipped, 2 left; ETA 3m20s"));
        let text = report(&s, &jobs, 200.0);
        assert!(text.contains("rank 2: last started b, 1m19s ago"), "{text}");
        assert!(text.contains("running on rank 1 for 1m29s: c"), "{text}");
        assert_eq!(duration(3.0 * 3600.0 + 5.0 * 60.0 + 7.0), "3h05m");
    }
}
