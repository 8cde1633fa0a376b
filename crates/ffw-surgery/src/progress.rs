//! Progress for the long loops: bars on a terminal (indicatif hides them when stderr is
//! not one) and log lines, which a cluster log shows.
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(len: u64, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

/// Says when a loop whose iterations are too many to log each is due its next log line: once
/// `every` has passed since the start or the last line, so a short loop logs nothing.
pub struct Heartbeat {
    every: Duration,
    last: Instant,
}

impl Heartbeat {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Instant::now(),
        }
    }

    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        let due = now.duration_since(self.last) >= self.every;
        if due {
            self.last = now;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_due_once_per_interval() {
        let mut slow = Heartbeat::new(Duration::from_secs(3600));
        assert!(!slow.due());
        let mut fast = Heartbeat::new(Duration::ZERO);
        assert!(fast.due() && fast.due());
    }
}
