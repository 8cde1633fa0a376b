//! `ffw report`: the tables, figures and index of a sweep's results directory.
use std::path::Path;

use anyhow::{Context, Result};

pub fn report(results: &Path) -> Result<()> {
    let summary = ffw_report::write_report(results)
        .with_context(|| format!("writing the report of {}", results.display()))?;
    println!(
        "report: {} ({} tables, {} figures; {} of {} jobs have results)",
        summary.index.display(),
        summary.tables,
        summary.figures,
        summary.jobs_done,
        summary.jobs
    );
    for n in &summary.not_produced {
        println!("  not produced: {}: {}", n.figure, n.reason);
    }
    Ok(())
}
