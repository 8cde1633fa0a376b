//! `ffw status`: a sweep's progress from its journal, at any time, taking no lock.
use std::path::Path;

use anyhow::{Context, Result};
use ffw_sweep::manifest::SweepManifest;
use ffw_sweep::status::{now, report, Summary};
use ffw_sweep::store::{utc, Store};

pub fn status(dir: &Path) -> Result<()> {
    let manifest = SweepManifest::read(dir)
        .with_context(|| format!("{} is not a sweep's output directory", dir.display()))?;
    let jobs = ffw_sweep::grid::expand(&manifest.config);
    let summary = Summary::of(&Store::at(dir), &jobs)?;
    print!("{}: {}", dir.display(), report(&summary, &jobs, now()));
    match ffw_sweep::lock::holder(dir) {
        Some(h) if h.is_dead_here() => println!(
            "  no sweep running (the last, pid {} on {}, has ended)",
            h.pid, h.host
        ),
        Some(h) => println!(
            "  lock: pid {} on host {}, since {}",
            h.pid,
            h.host,
            utc(h.started as f64)
        ),
        None => println!("  no sweep has run here yet"),
    }
    Ok(())
}
