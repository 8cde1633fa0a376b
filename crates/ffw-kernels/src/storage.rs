//! Access to the CPU storage the custom ops receive.
use candle_core::{bail, CpuStorage, Layout, Result};

/// The f32 data of a contiguous tensor; `op` names the caller in errors.
pub fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: only f32 is supported")
    };
    Ok(&v[offsets(l, op)?])
}

/// The f32 data of a contiguous tensor, to update in place.
pub fn contiguous_f32_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: only f32 is supported")
    };
    Ok(&mut v[offsets(l, op)?])
}

fn offsets(l: &Layout, op: &str) -> Result<std::ops::Range<usize>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(a..b),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// An output buffer for an op that writes every element before anything reads it, zeroed:
/// `vec![0.0; n]` is `calloc`, whose large blocks come from the kernel already zero. Handing
/// out uninitialised memory instead (`set_len`, as candle's `alloc_uninit_vec` does) is
/// undefined behaviour in Rust, and measured no faster (docs/PERFORMANCE.md).
pub fn output_f32(len: usize) -> Vec<f32> {
    vec![0.0; len]
}

/// `Σ f(aᵢ, bᵢ)` in f64 over eight interleaved partial sums: one running sum is a chain of
/// dependent adds (a few cycles per element), eight vectorise; the order is still fixed, so
/// the result does not depend on threads.
#[inline]
pub fn sum_f64(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += f(x[l], y[l]);
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).sum();
    acc.iter().sum::<f64>() + tail
}
