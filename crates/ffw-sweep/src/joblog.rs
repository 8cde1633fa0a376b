//! Per-job log files: while a job runs, every log line of this process also goes to the job's
//! `log.txt`. A process runs one job at a time (one per MPI rank), so one slot suffices; its
//! helper threads (rank 0's coordinator, the status line) keep out of it.
use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

static CURRENT: Mutex<Option<File>> = Mutex::new(None);

thread_local! {
    static KEPT_OUT: Cell<bool> = const { Cell::new(false) };
}

/// This thread's lines go to standard error only, never into a job's log.
pub fn keep_this_thread_out() {
    KEPT_OUT.with(|k| k.set(true));
}

/// Starts copying log lines to `path` (appending: a retried job keeps its earlier attempts).
pub fn start(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

pub fn stop() {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Standard error, plus the current job's log file if a job is running.
pub struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if KEPT_OUT.with(Cell::get) {
            return std::io::stderr().write_all(buf).map(|_| buf.len());
        }
        if let Some(f) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            // A full disk must not kill the job: the line still reaches stderr.
            let _ = f.write_all(buf);
        }
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The writer factory for `tracing_subscriber::fmt().with_writer(...)`.
pub fn writer() -> Tee {
    Tee
}
