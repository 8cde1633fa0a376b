//! Access to the CPU storage the custom ops receive.
use candle_core::{bail, CpuStorage, Layout, Result};

/// The f32 data of a contiguous tensor; `op` names the caller in errors.
pub fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: only f32 is supported")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}
