//! One table, one kind of device: CPU and GPU kernels round differently, so a cell averaging
//! both would hide which numbers it holds. Mixing needs the user's word (`--mixed-devices`).
use std::collections::BTreeMap;

use ffw_results::DeviceKind;

use crate::error::{ReportError, Result};
use crate::records::Sweep;

/// Refuses a sweep whose results come from more than one kind of device, unless `allow`.
/// Results that do not record their device (written before ffw recorded it) count as none.
pub fn check_not_mixed(sweep: &Sweep, allow: bool) -> Result<()> {
    let mut kinds: BTreeMap<DeviceKind, Vec<&str>> = BTreeMap::new();
    for r in &sweep.records {
        if let Some(d) = r.scores.as_ref().and_then(|s| s.device.as_ref()) {
            let jobs = kinds.entry(d.kind).or_default();
            if jobs.last() != Some(&r.job.as_str()) {
                jobs.push(&r.job);
            }
        }
    }
    if kinds.len() < 2 || allow {
        return Ok(());
    }
    let counts = kinds
        .iter()
        .map(|(kind, jobs)| format!("{} on {} (e.g. {})", jobs.len(), kind.as_str(), jobs[0]))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ReportError::MixedDevices {
        dir: sweep.dir.clone(),
        counts,
    })
}
