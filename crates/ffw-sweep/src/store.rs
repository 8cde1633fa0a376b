//! The sweep's directory: `jobs/<id>/` per job (spec, result, checkpoint, log) and the
//! append-only `journal.jsonl` of events. A job is done iff its `result.json` exists, and
//! results are written atomically, so an interrupted sweep never leaves a half result.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::grid::Job;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Started,
    Finished,
    Failed,
    Skipped,
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
        }
    }
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
}

/// `sweep.json`: the config a sweep ran and the jobs of each of its studies, so a report can
/// be built from the directory alone.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Manifest {
    pub config: crate::RunConfig,
    pub studies: std::collections::BTreeMap<String, Vec<String>>,
}

pub struct Store {
    root: PathBuf,
}

pub const MANIFEST: &str = "sweep.json";

pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| SweepError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp, text).map_err(|e| SweepError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| SweepError::io(path, e))
}

impl Store {
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("jobs")).map_err(|e| SweepError::io(root, e))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }

    pub fn result_path(&self, id: &str) -> PathBuf {
        self.job_dir(id).join("result.json")
    }

    pub fn is_done(&self, id: &str) -> bool {
        self.result_path(id).exists()
    }

    pub fn read_result(&self, id: &str) -> Result<serde_json::Value> {
        let path = self.result_path(id);
        let text = std::fs::read_to_string(&path).map_err(|e| SweepError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| SweepError::File {
            path,
            reason: e.to_string(),
        })
    }

    pub fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        write_json_atomic(&self.root.join(MANIFEST), manifest)
    }

    pub fn read_manifest(&self) -> Result<Manifest> {
        let path = self.root.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| SweepError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| SweepError::File {
            path,
            reason: e.to_string(),
        })
    }

    fn journal_path(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }

    /// Appends one event (one line, flushed): only the coordinator calls this.
    pub fn append(&self, event: &Event) -> Result<()> {
        let path = self.journal_path();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| SweepError::io(&path, e))?;
        let line = serde_json::to_string(event).expect("events serialise");
        writeln!(f, "{line}")
            .and_then(|_| f.sync_data())
            .map_err(|e| SweepError::io(&path, e))
    }

    /// All journal events; a torn last line (the writer was killed mid-write) is ignored.
    pub fn events(&self) -> Result<Vec<Event>> {
        let path = self.journal_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(SweepError::io(&path, e)),
        }
    }

    /// Each job's state from its result file and the journal.
    pub fn states(&self, jobs: &[Job]) -> Result<HashMap<String, JobState>> {
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
                let state = if self.is_done(&j.id) {
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
}
