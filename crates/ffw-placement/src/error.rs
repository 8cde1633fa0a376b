//! Placement errors: each one line a user can act on (candle's own text names no flag).
#[derive(thiserror::Error, Debug)]
pub enum PlacementError {
    #[error("--device {given:?}: expected cpu, cuda, cuda:N or auto")]
    BadDevice { given: String },
    #[error(
        "--device {choice}: this ffw was built without CUDA; rebuild it with \
         `cargo build --release --features cuda` (docs/GPU.md)"
    )]
    NoCudaBuild { choice: String },
    #[error(
        "--device {choice}: no CUDA GPU is visible on {host} (CUDA_VISIBLE_DEVICES={visible})"
    )]
    NoGpu {
        choice: String,
        host: String,
        visible: String,
    },
    #[error("--device {choice}: {host} has {count} GPU(s), numbered from 0")]
    NoSuchGpu {
        choice: String,
        host: String,
        count: usize,
    },
    #[error(
        "{host}: {workers} workers share {gpus} GPU(s), more than [sweep] workers_per_gpu = \
         {per_gpu} each; start at most {} workers per node or raise workers_per_gpu",
        gpus * per_gpu
    )]
    Oversubscribed {
        host: String,
        workers: usize,
        gpus: usize,
        per_gpu: usize,
    },
    #[error("opening {device}: {source}")]
    Open {
        device: String,
        source: candle_core::Error,
    },
    #[error(
        "rank(s) {ranks:?} of this job's {size} ranks failed (their errors are in their own \
         standard error)"
    )]
    PeerFailed { ranks: Vec<usize>, size: usize },
    #[error("collective {op}: {reason}")]
    Collective { op: &'static str, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, PlacementError>;

/// This node's name, for errors about its GPUs.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this node".into())
}
