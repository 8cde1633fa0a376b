//! The sweep's directory: `jobs/<id>/` per job (spec, result, checkpoint, log) and the
//! append-only `journal.jsonl` of events. A job is done iff its `result.json` parses and
//! names the job (and, for a vanilla job, the checkpoints and heads its dependants read are
//! readable); every file is written through [`ffw_data::atomic`], so neither an interrupted
//! sweep nor a crashed node leaves a half result, and a damaged one is rerun, not trusted.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::grid::{Job, JobSpec};
pub use ffw_results::{ResultFile, RESULT_JOB_KEY};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Started,
    Finished,
    Failed,
    Skipped,
    /// A damaged result found at start-up and set aside (`error` says where and why).
    Damaged,
    /// Stopped by SIGTERM/SIGINT; the job runs again on the next invocation.
    Interrupted,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub job: String,
    pub event: EventKind,
    pub rank: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secs: Option<f64>,
    /// Threads of the rank that ran a finished job: its cost in core-seconds is
    /// `secs * threads` (for `--dry-run`'s estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

impl Event {
    pub fn now(job: &str, event: EventKind, rank: i32) -> Self {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self {
            time,
            job: job.to_string(),
            event,
            rank,
            error: None,
            secs: None,
            threads: None,
        }
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(secs: f64) -> String {
    let secs = secs.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    Done,
    /// Failed `attempts` times; the last error.
    Failed {
        attempts: usize,
        error: String,
    },
    /// Started but neither finished nor failed (the process died).
    Incomplete,
    NotStarted,
    /// Has a result or checkpoint that cannot be trusted (unreadable, or another job's):
    /// it runs again.
    Damaged {
        reason: String,
    },
}

pub struct Store {
    root: PathBuf,
}

pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| SweepError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    ffw_data::atomic::write(path, text.as_bytes()).map_err(|e| SweepError::io(path, e))
}

impl Store {
    /// The store at `root`, created if needed, for a sweep that writes.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("jobs")).map_err(|e| SweepError::io(root, e))?;
        Ok(Self::at(root))
    }

    /// The store at `root` as it is, for reading only (`--dry-run`, `ffw status`): creates
    /// nothing; a directory that does not exist reads as a sweep that has not started.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }

    pub fn result_path(&self, id: &str) -> PathBuf {
        self.job_dir(id).join("result.json")
    }

    /// Whether the job has a result that can be trusted (see [`Store::result_file`]).
    pub fn is_done(&self, id: &str) -> bool {
        self.result_file(id) == ResultFile::Valid
    }

    /// A result is valid if it is a JSON object naming this job, of a schema this ffw reads.
    /// Results written before results named their job carry no name and are accepted, so
    /// finished sweeps stay done.
    pub fn result_file(&self, id: &str) -> ResultFile {
        ffw_results::check_result(&self.result_path(id), id)
    }

    /// Renames a damaged `result.json` to `result.json.damaged-<unix seconds>`, so the job
    /// reruns and nothing is deleted; returns the new path.
    pub fn set_aside(&self, id: &str) -> Result<PathBuf> {
        let path = self.result_path(id);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = path.with_extension(format!("json.damaged-{secs}"));
        std::fs::rename(&path, &aside).map_err(|e| SweepError::io(&path, e))?;
        Ok(aside)
    }

    pub fn read_result(&self, id: &str) -> Result<serde_json::Value> {
        let path = self.result_path(id);
        let text = std::fs::read_to_string(&path).map_err(|e| SweepError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| SweepError::File {
            path,
            reason: e.to_string(),
        })
    }

    fn journal_path(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }

    /// Appends one event (one line, synced): only the coordinator calls this. After a torn
    /// last line (a writer killed mid-line) the event starts a line of its own, so the
    /// fragment does not swallow it.
    pub fn append(&self, event: &Event) -> Result<()> {
        let path = self.journal_path();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| SweepError::io(&path, e))?;
        let mut line = serde_json::to_string(event).expect("events serialise");
        line.push('\n');
        let len = f.metadata().map_err(|e| SweepError::io(&path, e))?.len();
        if len > 0 {
            let mut last = [0u8];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut last, len - 1)
                .map_err(|e| SweepError::io(&path, e))?;
            if last[0] != b'\n' {
                line.insert(0, '\n');
            }
        }
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| SweepError::io(&path, e))
    }

    /// All journal events. The journal is read as bytes, line by line: a line that is not an
    /// event (a torn write, a bad byte) is skipped and counted, with one warning per read.
    pub fn events(&self) -> Result<Vec<Event>> {
        let path = self.journal_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(SweepError::io(&path, e)),
        };
        let mut events = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(line) {
                Ok(e) => events.push(e),
                Err(_) => bad.push(i + 1),
            }
        }
        if !bad.is_empty() {
            tracing::warn!(
                "{}: skipped {} unreadable line(s) (line {:?}); the other events are used",
                path.display(),
                bad.len(),
                bad
            );
        }
        Ok(events)
    }

    /// Why a job that has a valid result is not done after all: a vanilla job's checkpoints
    /// or privacy heads, which its dependants read, are missing or unreadable.
    fn damage(&self, job: &Job) -> Option<String> {
        match (self.result_file(&job.id), &job.spec) {
            (ResultFile::Damaged(why), _) => {
                Some(format!("{}: {why}", self.result_path(&job.id).display()))
            }
            (ResultFile::Valid, JobSpec::Vanilla(spec)) => {
                crate::vanilla_files::vanilla_artifacts_unusable(spec, &self.job_dir(&job.id))
            }
            _ => None,
        }
    }

    /// Each job's state from its files and the journal; a result of a newer schema is an
    /// error naming the file and both versions (this ffw can neither use nor replace it).
    pub fn states(&self, jobs: &[Job]) -> Result<HashMap<String, JobState>> {
        for j in jobs {
            let path = self.result_path(&j.id);
            if let Some(e) = ffw_results::check_result(&path, &j.id).newer_error(&path) {
                return Err(e.into());
            }
        }
        let events = self.events()?;
        let mut failures: HashMap<&str, (usize, String)> = HashMap::new();
        let mut started: HashMap<&str, bool> = HashMap::new();
        for e in &events {
            match e.event {
                EventKind::Failed => {
                    let f = failures.entry(&e.job).or_default();
                    f.0 += 1;
                    f.1 = e.error.clone().unwrap_or_default();
                }
                EventKind::Started => {
                    started.insert(&e.job, true);
                }
                _ => {}
            }
        }
        Ok(jobs
            .iter()
            .map(|j| {
                let state = if let Some(reason) = self.damage(j) {
                    JobState::Damaged { reason }
                } else if self.is_done(&j.id) {
                    JobState::Done
                } else if let Some((attempts, error)) = failures.get(j.id.as_str()) {
                    JobState::Failed {
                        attempts: *attempts,
                        error: error.clone(),
                    }
                } else if started.contains_key(j.id.as_str()) {
                    JobState::Incomplete
                } else {
                    JobState::NotStarted
                };
                (j.id.clone(), state)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_results_and_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let job = |id: &str| Job {
            id: id.into(),
            spec: crate::grid::JobSpec::Ffw(crate::grid::FfwSpec {
                vanilla: "v".into(),
                at: None,
                ffw: Default::default(),
            }),
            ranks: 1,
        };
        let jobs = vec![job("a"), job("b"), job("c"), job("d")];
        store
            .append(&Event::now("b", EventKind::Started, 1))
            .unwrap();
        store
            .append(&Event::now("c", EventKind::Started, 1))
            .unwrap();
        let mut failed = Event::now("c", EventKind::Failed, 1);
        failed.error = Some("boom".into());
        store.append(&failed).unwrap();
        std::fs::create_dir_all(store.job_dir("a")).unwrap();
        write_json_atomic(&store.result_path("a"), &serde_json::json!({"ok": true})).unwrap();
        // A torn line from a killed writer is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(tmp.path().join("journal.jsonl"))
            .unwrap()
            .write_all(b"{\"time\": 1")
            .unwrap();
        let s = store.states(&jobs).unwrap();
        assert_eq!(s["a"], JobState::Done);
        assert_eq!(s["b"], JobState::Incomplete);
        assert_eq!(
            s["c"],
            JobState::Failed {
                attempts: 1,
                error: "boom".into()
            }
        );
        assert_eq!(s["d"], JobState::NotStarted);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_662_461.9), "2025-12-02 08:01:01 UTC");
    }

    #[test]
    fn bad_bytes_and_a_torn_line_lose_no_other_event() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .append(&Event::now("a", EventKind::Started, 1))
            .unwrap();
        let journal = tmp.path().join("journal.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        // Not UTF-8, then a line cut mid-write without its newline.
        f.write_all(b"{\"job\": \"\xff\xfe\"}\n{\"time\": 1, \"jo")
            .unwrap();
        store
            .append(&Event::now("a", EventKind::Finished, 1))
            .unwrap();
        store
            .append(&Event::now("b", EventKind::Started, 1))
            .unwrap();
        let events = store.events().unwrap();
        let seen: Vec<(&str, &EventKind)> =
            events.iter().map(|e| (e.job.as_str(), &e.event)).collect();
        assert_eq!(
            seen,
            vec![
                ("a", &EventKind::Started),
                ("a", &EventKind::Finished),
                ("b", &EventKind::Started)
            ]
        );
    }

    #[test]
    fn damaged_results_are_not_done_and_are_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        for (id, text) in [
            ("empty", ""),
            ("garbage", "\u{0}\u{ff}{"),
            ("array", "[1]"),
            ("other", r#"{"job": "someone-else"}"#),
            ("mine", r#"{"job": "mine"}"#),
            ("legacy", r#"{"report": {}}"#),
        ] {
            std::fs::create_dir_all(store.job_dir(id)).unwrap();
            std::fs::write(store.result_path(id), text).unwrap();
        }
        for id in ["empty", "garbage", "array", "other"] {
            assert!(
                matches!(store.result_file(id), ResultFile::Damaged(_)),
                "{id}"
            );
            assert!(!store.is_done(id), "{id}");
        }
        assert!(store.is_done("mine") && store.is_done("legacy"));
        assert_eq!(store.result_file("absent"), ResultFile::Missing);
        let aside = store.set_aside("other").unwrap();
        assert!(aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("result.json.damaged-"));
        assert_eq!(
            std::fs::read_to_string(aside).unwrap(),
            r#"{"job": "someone-else"}"#
        );
        assert_eq!(store.result_file("other"), ResultFile::Missing);
    }

    #[test]
    fn a_result_of_a_newer_schema_stops_the_sweep_naming_both_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let job = Job {
            id: "mine".into(),
            spec: crate::grid::JobSpec::Ffw(crate::grid::FfwSpec {
                vanilla: "v".into(),
                at: None,
                ffw: Default::default(),
            }),
            ranks: 1,
        };
        std::fs::create_dir_all(store.job_dir("mine")).unwrap();
        let newer = ffw_results::SCHEMA_VERSION + 1;
        let text = format!(r#"{{"job": "mine", "schema": {newer}}}"#);
        std::fs::write(store.result_path("mine"), &text).unwrap();
        assert!(!store.is_done("mine"));
        let msg = store.states(&[job]).unwrap_err().to_string();
        assert!(
            msg.contains(&store.result_path("mine").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains(&format!("version {newer}")), "{msg}");
        assert!(
            msg.contains(&format!("up to {}", ffw_results::SCHEMA_VERSION)),
            "{msg}"
        );
        // Left as it was: not set aside, not overwritten.
        assert_eq!(
            std::fs::read_to_string(store.result_path("mine")).unwrap(),
            text
        );
    }
}
