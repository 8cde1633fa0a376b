//! `ffw report`: the tables, figures and index of a sweep's results directory.
use std::path::Path;

use anyhow::{Context, Result};
use ffw_sweep::manifest::SweepManifest;

pub fn report(results: &Path, mixed_devices: bool) -> Result<()> {
    let context = || format!("writing the report of {}", results.display());
    // Through the sweep's reader: it completes a `sweep.json` written by an older ffw.
    let manifest = SweepManifest::read(results).with_context(context)?;
    let options = ffw_report::ReportOptions { mixed_devices };
    let summary =
        ffw_report::write_report_with(results, manifest.report, options).with_context(context)?;
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
