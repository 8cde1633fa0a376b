//! The one GEMM entry point of the kernels (the `gemm` crate candle itself uses).

/// Who parallelises: the caller (over the batch) or the GEMM itself.
#[derive(Clone, Copy, Debug)]
pub enum Threads {
    One,
    All,
}

/// `D (+)= A·B` for `D` m×n, `A` m×k, `B` k×n, each given with its (row, column) strides:
/// `D(i,j) = dst[i·drs + j·dcs]`, `A(i,l) = a[i·ars + l·acs]`, `B(l,j) = b[l·brs + j·bcs]`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    threads: Threads,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (drs, dcs): (usize, usize),
    acc: bool,
    a: &[f32],
    (ars, acs): (usize, usize),
    b: &[f32],
    (brs, bcs): (usize, usize),
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: every index the strides describe lies inside the slices (checked by the callers'
    // geometry: a is m×k, b is k×n, dst is m×n).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dcs as isize,
            drs as isize,
            acc,
            a.as_ptr(),
            acs as isize,
            ars as isize,
            b.as_ptr(),
            bcs as isize,
            brs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            match threads {
                Threads::One => gemm::Parallelism::None,
                Threads::All => gemm::Parallelism::Rayon(rayon::current_num_threads()),
            },
        )
    }
}
