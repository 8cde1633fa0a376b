//! Direct convolution (stride 1, "same" padding, k = 5 or 7) on AVX-512: forward, input
//! gradient and weight gradient.
//!
//! Why: at k = 7 an im2col buffer repeats every input pixel 49 times (9.8 MB per image at
//! SimpleConvNet's last layer, ten times the L2 cache) and the GEMM over it ran at ~75% of the
//! FMA peak, while PyTorch (oneDNN) convolves directly. Here 16 output channels are the lanes of
//! a vector: a tile of 14 output pixels × 32 channels lives in 28 registers, each input pixel
//! is broadcast from a zero-padded copy of the image that stays in cache, and nothing of size
//! `k²` is ever materialised. Every output sums its products in a fixed order, so results do
//! not depend on the number of threads. Shapes it does not cover return `None` and take the
//! im2col path (as does k = 3, where im2col + GEMM is already ahead of PyTorch).
use super::Geometry;

/// Channels per vector.
const LANES: usize = 16;
/// Output pixels per register tile (half of a 28-pixel row).
const TILE: usize = 14;

/// Whether the kernels cover `g` with `lanes` (the channels that become vector lanes).
pub(super) fn applies(g: &Geometry, lanes: usize) -> bool {
    cfg!(target_arch = "x86_64")
        && g.stride == 1
        && matches!(g.k, 5 | 7)
        && 2 * g.pad + 1 == g.k
        && lanes.is_multiple_of(LANES)
        && avx512()
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y = conv(x, w)`: `x` `[n, c, h, w]`, `w` `[o, c, k, k]`, `y` `[n, o, h, w]`.
pub(super) fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    if !applies(g, g.o) {
        return None;
    }
    // wp[ob][c][kh][kw][j] = w[ob·16 + j][c][kh][kw]
    let wp = pack(g.o, g.c, g.k, |o, c, kk| w[(o * g.c + c) * g.k * g.k + kk]);
    Some(simd::conv_same(g, g.c, g.o, x, &wp))
}

/// `dx = conv(dy, w')` with `w'[c][o][kh][kw] = w[o][c][k−1−kh][k−1−kw]`: for stride 1 and
/// same padding, the transposed convolution is a convolution with the flipped kernel.
pub(super) fn input_grad(g: &Geometry, dy: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    if !applies(g, g.c) {
        return None;
    }
    let kk_last = g.k * g.k - 1;
    let wp = pack(g.c, g.o, g.k, |c, o, kk| {
        w[(o * g.c + c) * g.k * g.k + kk_last - kk]
    });
    Some(simd::conv_same(g, g.o, g.c, dy, &wp))
}

/// `dw[o][c][kh][kw] = Σₙ Σ_pixels dy[n][o][p] · x[n][c][p + (kh, kw) − pad]`.
pub(super) fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    if !applies(g, g.o) {
        return None;
    }
    let packed = simd::weight_grad(g, x, dy);
    // packed[group][c][kk][b][j] for o = 32·group + 16·b + j, groups of two lane blocks and
    // a last single one where the block count is odd.
    let kk = g.k * g.k;
    let mut dw = crate::storage::output_f32(g.o * g.c * kk);
    for (o, row) in dw.chunks_exact_mut(g.c * kk).enumerate() {
        let (group, b, j) = (o / (2 * LANES), o % (2 * LANES) / LANES, o % LANES);
        let nb = (g.o / LANES - 2 * group).min(2);
        let base = group * 2 * g.c * kk * LANES;
        for (ckk, v) in row.iter_mut().enumerate() {
            *v = packed[base + (ckk * nb + b) * LANES + j];
        }
    }
    Some(dw)
}

/// Kernel in lane blocks: `out[lb][i][kk][j] = get(lb·16 + j, i, kk)` for `lanes` × `inner`
/// channels and `kk < k²`.
fn pack(
    lanes: usize,
    inner: usize,
    k: usize,
    get: impl Fn(usize, usize, usize) -> f32,
) -> Vec<f32> {
    let kk = k * k;
    let mut out = crate::storage::output_f32(lanes * inner * kk);
    for (i, v) in out.iter_mut().enumerate() {
        let (j, rest) = (i % LANES, i / LANES);
        let (q, rest) = (rest % kk, rest / kk);
        let (c, lb) = (rest % inner, rest / inner);
        *v = get(lb * LANES + j, c, q);
    }
    out
}

/// The zero-padded image: `ch` planes of `hp × wp`, with room right of the image for the last
/// tile's extra columns.
#[derive(Clone, Copy)]
struct Padded {
    h: usize,
    w: usize,
    pad: usize,
    hp: usize,
    wp: usize,
}

impl Padded {
    fn new(g: &Geometry) -> Self {
        Self {
            h: g.h,
            w: g.w,
            pad: g.pad,
            hp: g.h + 2 * g.pad,
            wp: g.w.div_ceil(TILE) * TILE + 2 * g.pad,
        }
    }
    fn plane(&self) -> usize {
        self.hp * self.wp
    }
    /// Copies `ch` planes of `src` into `dst` (`ch · plane()` long) inside a zero border.
    fn fill(&self, src: &[f32], dst: &mut [f32]) {
        dst.fill(0.0);
        for (s, d) in src
            .chunks_exact(self.h * self.w)
            .zip(dst.chunks_exact_mut(self.plane()))
        {
            for (r, row) in s.chunks_exact(self.w).enumerate() {
                let at = (r + self.pad) * self.wp + self.pad;
                d[at..at + self.w].copy_from_slice(row);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
// Indexed loops over constant bounds: each index is a register the compiler unrolls to.
#[allow(clippy::needless_range_loop)]
mod simd {
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use super::{Geometry, Padded, LANES, TILE};
    use crate::storage::output_f32;

    /// `out[n][lb·16 + j][y][x] = Σ_{i, kh, kw} wp[lb][i][kh][kw][j] · src[n][i][y + kh − p][x + kw − p]`.
    pub fn conv_same(g: &Geometry, cin: usize, cout: usize, src: &[f32], wp: &[f32]) -> Vec<f32> {
        let pd = Padded::new(g);
        let (in_len, out_len) = (cin * g.h * g.w, cout * g.h * g.w);
        let mut out = output_f32(g.n * out_len);
        out.par_chunks_mut(out_len)
            .zip(src.par_chunks(in_len))
            .for_each_init(
                || vec![0f32; cin * pd.plane()],
                |xp, (y, x)| {
                    pd.fill(x, xp);
                    // SAFETY: `applies` checked AVX-512F; the slices have the sizes the
                    // geometry gives (image `cin` planes padded, kernel `cout × cin × k²`).
                    unsafe { image(&pd, g.k, cin, cout, xp, wp, y) }
                },
            );
        out
    }

    /// One image, in tiles of 14 pixels of a row × 32 (or 16) output channels; the kernel
    /// block of a channel pair (≤ 400 KB) and the padded image stay in L2 across the tiles.
    #[target_feature(enable = "avx512f")]
    unsafe fn image(
        pd: &Padded,
        k: usize,
        cin: usize,
        cout: usize,
        xp: &[f32],
        wp: &[f32],
        y: &mut [f32],
    ) {
        let block = cin * k * k * LANES;
        let mut lb = 0;
        while lb < cout / LANES {
            let pair = cout / LANES - lb >= 2;
            for row in 0..pd.h {
                // Kernel rows that fall on the zero border add nothing: skipped (6% of the
                // taps at 28×28, k = 7).
                let kh = pd.pad.saturating_sub(row)..k.min(pd.h + pd.pad - row);
                for x0 in (0..pd.w).step_by(TILE) {
                    let t = Tile {
                        xp: xp.as_ptr().add(row * pd.wp + x0),
                        w: wp.as_ptr().add(lb * block),
                        block,
                        cin,
                        kh: kh.clone(),
                        left: x0 == 0,
                        right: x0 + TILE == pd.w,
                    };
                    match (pair, k) {
                        (true, 5) => store(&t.run::<2, 5>(pd), pd, lb, row, x0, y),
                        (true, _) => store(&t.run::<2, 7>(pd), pd, lb, row, x0, y),
                        (false, 5) => store(&t.run::<1, 5>(pd), pd, lb, row, x0, y),
                        (false, _) => store(&t.run::<1, 7>(pd), pd, lb, row, x0, y),
                    }
                }
            }
            lb += if pair { 2 } else { 1 };
        }
    }

    /// One register tile: 14 output pixels of a row from `xp` (the padded input at the tile's
    /// first tap), lane blocks of `block` floats from `w`.
    struct Tile {
        xp: *const f32,
        w: *const f32,
        block: usize,
        cin: usize,
        kh: std::ops::Range<usize>,
        /// The tile starts (ends) at the image's left (right) edge.
        left: bool,
        right: bool,
    }

    impl Tile {
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn run<const OB: usize, const K: usize>(&self, pd: &Padded) -> [[__m512; TILE]; OB] {
            match (self.left, self.right) {
                (false, false) => self.taps::<OB, K, false, false>(pd),
                (true, false) => self.taps::<OB, K, true, false>(pd),
                (false, true) => self.taps::<OB, K, false, true>(pd),
                (true, true) => self.taps::<OB, K, true, true>(pd),
            }
        }

        /// `OB` lane blocks × 14 pixels: per kernel tap, `OB` weight loads and 14 broadcasts
        /// feed `14·OB` FMAs into accumulators that never leave the registers. At an image
        /// edge, the (pixel, tap) pairs that read the zero border are left out at compile time
        /// (another 6% of the taps at 28×28, k = 7).
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn taps<const OB: usize, const K: usize, const LEFT: bool, const RIGHT: bool>(
            &self,
            pd: &Padded,
        ) -> [[__m512; TILE]; OB] {
            let pad = K / 2;
            let mut acc = [[_mm512_setzero_ps(); TILE]; OB];
            let mut wv = [_mm512_setzero_ps(); OB];
            for i in 0..self.cin {
                for kh in self.kh.clone() {
                    let row = self.xp.add(i * pd.plane() + kh * pd.wp);
                    let taps = self.w.add((i * K + kh) * K * LANES);
                    for kw in 0..K {
                        for b in 0..OB {
                            wv[b] = _mm512_loadu_ps(taps.add(b * self.block + kw * LANES));
                        }
                        for r in 0..TILE {
                            if (LEFT && r + kw < pad) || (RIGHT && r + kw >= TILE + pad) {
                                continue;
                            }
                            let xv = _mm512_set1_ps(*row.add(kw + r));
                            for b in 0..OB {
                                acc[b][r] = _mm512_fmadd_ps(wv[b], xv, acc[b][r]);
                            }
                        }
                    }
                }
            }
            acc
        }
    }

    /// Writes a tile's lanes back to their channel planes (dropping columns past the image).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store<const OB: usize>(
        acc: &[[__m512; TILE]; OB],
        pd: &Padded,
        lb: usize,
        row: usize,
        x0: usize,
        y: &mut [f32],
    ) {
        let valid = TILE.min(pd.w - x0);
        let mut buf = [[0f32; LANES]; TILE];
        for (b, lanes) in acc.iter().enumerate() {
            for (r, v) in lanes.iter().enumerate() {
                _mm512_storeu_ps(buf[r].as_mut_ptr(), *v);
            }
            for j in 0..LANES {
                let ch = (lb + b) * LANES + j;
                let dst = &mut y[(ch * pd.h + row) * pd.w + x0..][..valid];
                for (r, d) in dst.iter_mut().enumerate() {
                    *d = buf[r][j];
                }
            }
        }
    }

    /// Images per pass of the weight gradient: bounds its padded inputs and transposed
    /// gradients (~11 MB at SimpleConvNet's last layer).
    const CHUNK: usize = 16;

    /// The kernel gradient in lane-block groups (see `super::weight_grad`); every entry sums
    /// the images in order, so the result is the same on any number of threads.
    pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let pd = Padded::new(g);
        let (kk, hw, blocks) = (g.k * g.k, g.h * g.w, g.o / LANES);
        let (in_len, out_len) = (g.c * hw, g.o * hw);
        let mut packed = vec![0f32; blocks * g.c * kk * LANES];
        let mut xp = vec![0f32; CHUNK.min(g.n) * g.c * pd.plane()];
        let mut dyt = vec![0f32; CHUNK.min(g.n) * out_len];
        for first in (0..g.n).step_by(CHUNK) {
            let m = CHUNK.min(g.n - first);
            let (xs, dys) = (
                &x[first * in_len..(first + m) * in_len],
                &dy[first * out_len..(first + m) * out_len],
            );
            xp.par_chunks_mut(g.c * pd.plane())
                .zip(dyt.par_chunks_mut(out_len))
                .zip(xs.par_chunks(in_len).zip(dys.par_chunks(out_len)))
                .for_each(|((xp, dyt), (x, dy))| {
                    pd.fill(x, xp);
                    // dyt[ob][p][j] = dy[ob·16 + j][p]: the gradient of 16 channels at a
                    // pixel is one vector load.
                    for (o, plane) in dy.chunks_exact(hw).enumerate() {
                        let (ob, j) = (o / LANES, o % LANES);
                        for (p, v) in plane.iter().enumerate() {
                            dyt[(ob * hw + p) * LANES + j] = *v;
                        }
                    }
                });
            let (xp, dyt) = (&xp[..m * g.c * pd.plane()], &dyt[..m * out_len]);
            // One task per (group of two lane blocks, or a last single block) × input channel,
            // each summing the chunk's images in order after the earlier chunks.
            let (paired, single) = packed.split_at_mut(blocks / 2 * 2 * g.c * kk * LANES);
            paired
                .par_chunks_mut(2 * kk * LANES)
                .chain(single.par_chunks_mut(kk * LANES))
                .enumerate()
                .for_each(|(task, dst)| {
                    let (lb, c) = (task / g.c * 2, task % g.c);
                    for i in 0..m {
                        let xc = &xp[(i * g.c + c) * pd.plane()..][..pd.plane()];
                        let dyb = &dyt[i * out_len + lb * hw * LANES..];
                        // SAFETY: `applies` checked AVX-512F and k ∈ {5, 7}; `xc` is one
                        // padded plane, `dyb` holds the group's blocks of `hw × 16` gradients,
                        // `dst` is `k² × blocks × 16`.
                        unsafe {
                            match (dst.len() / (kk * LANES), g.k) {
                                (2, 5) => taps::<2, 5>(xc, &pd, dyb, dst),
                                (2, _) => taps::<2, 7>(xc, &pd, dyb, dst),
                                (_, 5) => taps::<1, 5>(xc, &pd, dyb, dst),
                                (_, _) => taps::<1, 7>(xc, &pd, dyb, dst),
                            }
                        }
                    }
                });
        }
        packed
    }

    /// One image's contribution to the kernel gradient of `OB` lane blocks and one input
    /// channel, kernel row by kernel row over the output rows that see the image there: per
    /// pixel `OB` gradient loads and `K` broadcasts feed `OB·K` register accumulators.
    #[target_feature(enable = "avx512f")]
    unsafe fn taps<const OB: usize, const K: usize>(
        xc: &[f32],
        pd: &Padded,
        dyb: &[f32],
        dst: &mut [f32],
    ) {
        let block = pd.h * pd.w * LANES;
        debug_assert!(dyb.len() >= OB * block && dst.len() == K * K * OB * LANES);
        let mut d = [_mm512_setzero_ps(); OB];
        for kh in 0..K {
            let mut acc = [[_mm512_setzero_ps(); K]; OB];
            for row in pd.pad.saturating_sub(kh)..(pd.h + pd.pad).saturating_sub(kh).min(pd.h) {
                let px_row = xc.as_ptr().add((row + kh) * pd.wp);
                let dy_row = dyb.as_ptr().add(row * pd.w * LANES);
                for col in 0..pd.w {
                    for b in 0..OB {
                        d[b] = _mm512_loadu_ps(dy_row.add(b * block + col * LANES));
                    }
                    let px = px_row.add(col);
                    for kw in 0..K {
                        let xv = _mm512_set1_ps(*px.add(kw));
                        for b in 0..OB {
                            acc[b][kw] = _mm512_fmadd_ps(d[b], xv, acc[b][kw]);
                        }
                    }
                }
            }
            for (b, acc_b) in acc.iter().enumerate() {
                for (kw, a) in acc_b.iter().enumerate() {
                    let at = dst.as_mut_ptr().add(((kh * K + kw) * OB + b) * LANES);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), *a));
                }
            }
        }
    }
}

/// Never called: `applies` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::Geometry;

    pub fn conv_same(_: &Geometry, _: usize, _: usize, _: &[f32], _: &[f32]) -> Vec<f32> {
        unreachable!("direct convolution needs x86-64")
    }

    pub fn weight_grad(_: &Geometry, _: &[f32], _: &[f32]) -> Vec<f32> {
        unreachable!("direct convolution needs x86-64")
    }
}
