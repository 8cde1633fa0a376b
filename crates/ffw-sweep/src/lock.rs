//! One sweep per output directory: the sweep (and `ffw run`) holds an exclusive `flock` on
//! `sweep.lock` while it runs, and writes who holds it (host, pid, start time) into the
//! file, so that a second sweep on the same directory is refused with the holder named. The
//! kernel drops the lock of a process that dies, so a killed sweep leaves no stale lock.
//! Where the file system has no `flock` (some network file systems), the file's content is
//! the lock: a holder that is a dead process on this host is taken over; one on another host
//! must be removed by hand, since its liveness cannot be checked from here.
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};

pub const LOCK_FILE: &str = "sweep.lock";

/// Who holds a sweep's lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started: u64,
}

impl Holder {
    fn me() -> Self {
        Self {
            host: hostname(),
            pid: std::process::id(),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// A process of this host that no longer exists.
    pub fn is_dead_here(&self) -> bool {
        if self.host != hostname() {
            return false;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let rc = unsafe { libc::kill(pid, 0) };
        rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

/// Held until dropped (the process ends).
#[derive(Debug)]
pub struct SweepLock {
    path: PathBuf,
    /// Keeps the `flock`; none where the file system has no `flock`.
    _file: Option<File>,
}

impl Drop for SweepLock {
    fn drop(&mut self) {
        if self._file.is_none() {
            // Only the content locks: remove it, if it is still ours.
            if read_holder(&self.path).is_some_and(|h| h.pid == std::process::id()) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is what we pass.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The last holder written into `root`'s lock file, if any (without taking the lock).
pub fn holder(root: &Path) -> Option<Holder> {
    read_holder(&root.join(LOCK_FILE))
}

fn read_holder(path: &Path) -> Option<Holder> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_holder(file: &mut File, path: &Path) -> Result<()> {
    let text = serde_json::to_string(&Holder::me()).expect("holders serialise");
    file.set_len(0)
        .and_then(|_| file.write_all(text.as_bytes()))
        .and_then(|_| file.sync_data())
        .map_err(|e| SweepError::io(path, e))
}

fn refused(root: &Path, path: &Path, holder: Option<Holder>) -> SweepError {
    let who = match holder {
        Some(h) => format!(
            "the sweep of pid {} on host {}, started {}",
            h.pid,
            h.host,
            crate::store::utc(h.started as f64)
        ),
        None => "another sweep".into(),
    };
    SweepError::Locked(format!(
        "{} is in use by {who}: wait for it to end or stop it; `ffw status {}` shows its \
         progress (lock: {})",
        root.display(),
        root.display(),
        path.display()
    ))
}

/// Takes the exclusive lock of the sweep directory `root` (created if needed), or says who
/// holds it.
pub fn acquire(root: &Path) -> Result<SweepLock> {
    std::fs::create_dir_all(root).map_err(|e| SweepError::io(root, e))?;
    let path = root.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| SweepError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {
            write_holder(&mut file, &path)?;
            Ok(SweepLock {
                path,
                _file: Some(file),
            })
        }
        Err(TryLockError::WouldBlock) => Err(refused(root, &path, read_holder(&path))),
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            drop(file);
            acquire_by_content(root, &path)
        }
        Err(TryLockError::Error(e)) => Err(SweepError::io(&path, e)),
    }
}

/// The lock without `flock`: the holder written in the file, taken over from a dead process
/// of this host.
fn acquire_by_content(root: &Path, path: &Path) -> Result<SweepLock> {
    if let Some(h) = read_holder(path) {
        if h.pid != std::process::id() && !h.is_dead_here() {
            return Err(refused(root, path, Some(h)));
        }
        tracing::warn!(
            "taking over the lock of pid {} on {}, which no longer runs",
            h.pid,
            h.host
        );
    }
    let mut file = File::create(path).map_err(|e| SweepError::io(path, e))?;
    write_holder(&mut file, path)?;
    Ok(SweepLock {
        path: path.to_path_buf(),
        _file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = acquire(tmp.path()).unwrap();
        // flock locks belong to the open file, so a second open in this process conflicts.
        let err = acquire(tmp.path()).unwrap_err().to_string();
        let me = format!("pid {} on host {}", std::process::id(), hostname());
        assert!(err.contains(&me), "{err}");
        drop(first);
        acquire(tmp.path()).unwrap();
    }

    #[test]
    fn without_flock_a_dead_holder_here_is_taken_over_and_a_live_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LOCK_FILE);
        let write = |h: &Holder| std::fs::write(&path, serde_json::to_vec(h).unwrap()).unwrap();
        // Above Linux's largest pid_max: no process has it. (No child is spawned here: a
        // fork in this test would inherit the other test's locked file for a moment.)
        let dead = 4_194_305;
        write(&Holder {
            host: hostname(),
            pid: dead,
            started: 0,
        });
        let lock = acquire_by_content(tmp.path(), &path).unwrap();
        assert_eq!(read_holder(&path).unwrap().pid, std::process::id());
        drop(lock);
        assert!(!path.exists(), "the content lock is removed when released");

        let live = std::os::unix::process::parent_id();
        for (host, pid) in [(hostname(), live), ("elsewhere".into(), dead)] {
            write(&Holder {
                host: host.clone(),
                pid,
                started: 0,
            });
            let err = acquire_by_content(tmp.path(), &path)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("pid {pid} on host {host}")), "{err}");
        }
    }
}
