//! A cooperative stop: the `ffw` binary's SIGTERM/SIGINT handler calls [`request`], and long
//! loops call [`check`] between steps, so a preempted job ends within one step with
//! [`SurgeryError::Interrupted`] instead of being killed mid-write; the sweep then records
//! it as interrupted, and a rerun runs it again from its start (same seeds, same numbers).
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Result, SurgeryError};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every loop to stop; returns whether a stop was already requested. Only an atomic
/// swap, so it is safe inside a signal handler.
pub fn request() -> bool {
    REQUESTED.swap(true, Ordering::SeqCst)
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a stop was requested.
pub fn check() -> Result<()> {
    if requested() {
        Err(SurgeryError::Interrupted)
    } else {
        Ok(())
    }
}

/// [`check`] agreed over a data-parallel group (all ranks call it together): the signal
/// reaches ranks at different steps, and a rank that stopped alone would leave the others
/// waiting in their next collective.
pub fn check_in(group: &dyn ffw_placement::Collective) -> Result<()> {
    if group.sum_host(&[f32::from(u8::from(requested()))])?[0] > 0.0 {
        Err(SurgeryError::Interrupted)
    } else {
        Ok(())
    }
}
