//! Direct convolution (stride 1, "same" padding, k = 5 or 7) on AVX-512 or AVX2 + FMA:
//! forward, input gradient and weight gradient.
//!
//! Why: at k = 7 an im2col buffer repeats every input pixel 49 times (9.8 MB per image at
//! SimpleConvNet's last layer, ten times the L2 cache) and the GEMM over it ran at ~75% of the
//! FMA peak, while PyTorch (oneDNN) convolves directly. Here output channels are the lanes of
//! a vector: a register tile holds a run of output pixels × 2 vectors of channels (AVX-512:
//! 14 pixels × 32 channels in 28 of its 32 registers; AVX2: 6 × 16 in 12 of 16), each input
//! pixel is broadcast from a zero-padded copy of the image that stays in cache, and nothing of
//! size `k²` is ever materialised. Every output sums its products in a fixed order, so results
//! do not depend on the number of threads. Shapes it does not cover return `None` and take
//! the im2col path (as does k = 3, where im2col + GEMM is already ahead of PyTorch).
use super::Geometry;

/// Channels per lane block: kernels and gradients are laid out in blocks of 16 channels (one
/// AVX-512 vector, two AVX2 vectors).
const BLOCK: usize = 16;

/// The vector instructions the kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// The best the CPU has, if any, unless `FFW_DIRECT_CONV` (`avx512`, `avx2` or `off`)
    /// narrows the choice, e.g. to time the AVX2 kernels or the im2col path on an AVX-512
    /// machine.
    fn detect() -> Option<Isa> {
        #[cfg(test)]
        if let Some(isa) = FORCED.with(|f| f.get()) {
            return isa.supported().then_some(isa);
        }
        static CHOICE: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let all = &[Isa::Avx512, Isa::Avx2];
            let allowed: &[Isa] = match std::env::var("FFW_DIRECT_CONV").as_deref() {
                Ok("avx512") => &[Isa::Avx512],
                Ok("avx2") => &[Isa::Avx2],
                Ok("off") => &[],
                Ok(other) => {
                    eprintln!("FFW_DIRECT_CONV={other:?} is not avx512, avx2 or off: ignored");
                    all
                }
                Err(_) => all,
            };
            allowed.iter().copied().find(|i| i.supported())
        })
    }

    pub(super) fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Isa::Avx512 => has!("avx512f"),
                Isa::Avx2 => has!("avx2") && has!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }

    /// Lane blocks per forward tile and weight-gradient task (two vectors each).
    fn blocks_per_task(self) -> usize {
        match self {
            Isa::Avx512 => 2,
            Isa::Avx2 => 1,
        }
    }

    /// Output pixels per forward tile.
    fn tile(self) -> usize {
        match self {
            Isa::Avx512 => 14,
            Isa::Avx2 => 6,
        }
    }
}

#[cfg(test)]
thread_local! {
    static FORCED: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the kernels restricted to `isa` on this thread (where the ops dispatch).
#[cfg(test)]
pub(super) fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    FORCED.with(|c| c.set(Some(isa)));
    let r = f();
    FORCED.with(|c| c.set(None));
    r
}

/// The instruction set that covers `g` with `lanes` (the channels that become vector lanes).
pub(super) fn applies(g: &Geometry, lanes: usize) -> Option<Isa> {
    let shape = g.stride == 1
        && matches!(g.k, 5 | 7)
        && 2 * g.pad + 1 == g.k
        && lanes.is_multiple_of(BLOCK);
    shape.then(Isa::detect).flatten()
}

/// `y = conv(x, w)`: `x` `[n, c, h, w]`, `w` `[o, c, k, k]`, `y` `[n, o, h, w]`.
pub(super) fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    let isa = applies(g, g.o)?;
    // wp[ob][c][kh][kw][j] = w[ob·16 + j][c][kh][kw]
    let wp = pack(g.o, g.c, g.k, |o, c, kk| w[(o * g.c + c) * g.k * g.k + kk]);
    Some(simd::conv_same(isa, g, g.c, g.o, x, &wp))
}

/// `dx = conv(dy, w')` with `w'[c][o][kh][kw] = w[o][c][k−1−kh][k−1−kw]`: for stride 1 and
/// same padding, the transposed convolution is a convolution with the flipped kernel.
pub(super) fn input_grad(g: &Geometry, dy: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    let isa = applies(g, g.c)?;
    let kk_last = g.k * g.k - 1;
    let wp = pack(g.c, g.o, g.k, |c, o, kk| {
        w[(o * g.c + c) * g.k * g.k + kk_last - kk]
    });
    Some(simd::conv_same(isa, g, g.o, g.c, dy, &wp))
}

/// `dw[o][c][kh][kw] = Σₙ Σ_pixels dy[n][o][p] · x[n][c][p + (kh, kw) − pad]`.
pub(super) fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    let isa = applies(g, g.o)?;
    let packed = simd::weight_grad(isa, g, x, dy);
    // packed[task group][c][kk][b][j] for o = 16·(group·per + b) + j: groups of `per` lane
    // blocks, the last one smaller where the block count is not a multiple of `per`.
    let (kk, per) = (g.k * g.k, isa.blocks_per_task());
    let mut dw = crate::storage::output_f32(g.o * g.c * kk);
    for (o, row) in dw.chunks_exact_mut(g.c * kk).enumerate() {
        let (group, b, j) = (o / (per * BLOCK), o % (per * BLOCK) / BLOCK, o % BLOCK);
        let nb = (g.o / BLOCK - per * group).min(per);
        let base = group * per * g.c * kk * BLOCK;
        for (ckk, v) in row.iter_mut().enumerate() {
            *v = packed[base + (ckk * nb + b) * BLOCK + j];
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
        let (j, rest) = (i % BLOCK, i / BLOCK);
        let (q, rest) = (rest % kk, rest / kk);
        let (c, lb) = (rest % inner, rest / inner);
        *v = get(lb * BLOCK + j, c, q);
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
    fn new(g: &Geometry, tile: usize) -> Self {
        Self {
            h: g.h,
            w: g.w,
            pad: g.pad,
            hp: g.h + 2 * g.pad,
            wp: g.w.div_ceil(tile) * tile + 2 * g.pad,
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

    use super::{Geometry, Isa, Padded, BLOCK};
    use crate::storage::output_f32;

    /// A vector of `N` floats. The kernels below are written once over it and inlined into
    /// one entry point per instruction set, compiled with that set enabled.
    trait Vector: Copy {
        const N: usize;
        unsafe fn zero() -> Self;
        unsafe fn load(p: *const f32) -> Self;
        unsafe fn splat(p: *const f32) -> Self;
        /// `a · b + c`.
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
        unsafe fn add(a: Self, b: Self) -> Self;
        unsafe fn store(self, p: *mut f32);
    }

    /// `Vector` for an intrinsic type from its six operations.
    macro_rules! vector {
        ($t:ty, $n:expr, $zero:ident, $load:ident, $set1:ident, $fma:ident, $add:ident, $store:ident) => {
            impl Vector for $t {
                const N: usize = $n;
                #[inline(always)]
                unsafe fn zero() -> Self {
                    $zero()
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> Self {
                    $load(p)
                }
                #[inline(always)]
                unsafe fn splat(p: *const f32) -> Self {
                    $set1(*p)
                }
                #[inline(always)]
                unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
                    $fma(a, b, c)
                }
                #[inline(always)]
                unsafe fn add(a: Self, b: Self) -> Self {
                    $add(a, b)
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut f32) {
                    $store(p, self)
                }
            }
        };
    }
    #[rustfmt::skip]
    vector!(__m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps);
    #[rustfmt::skip]
    vector!(__m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps);

    /// Offset of a task's vector `b` inside lane-blocked data whose blocks are `block` apart.
    #[inline(always)]
    fn lanes_at<V: Vector>(b: usize, block: usize) -> usize {
        b * V::N / BLOCK * block + b * V::N % BLOCK
    }

    /// `out[n][lb·16 + j][y][x] = Σ_{i, kh, kw} wp[lb][i][kh][kw][j] · src[n][i][y + kh − p][x + kw − p]`.
    pub fn conv_same(
        isa: Isa,
        g: &Geometry,
        cin: usize,
        cout: usize,
        src: &[f32],
        wp: &[f32],
    ) -> Vec<f32> {
        let pd = Padded::new(g, isa.tile());
        let (in_len, out_len) = (cin * g.h * g.w, cout * g.h * g.w);
        let mut out = output_f32(g.n * out_len);
        out.par_chunks_mut(out_len)
            .zip(src.par_chunks(in_len))
            .for_each_init(
                || vec![0f32; cin * pd.plane()],
                |xp, (y, x)| {
                    pd.fill(x, xp);
                    // SAFETY: `applies` checked the instruction set; the slices have the sizes
                    // the geometry gives (image `cin` planes padded, kernel `cout × cin × k²`).
                    unsafe {
                        match isa {
                            Isa::Avx512 => image_avx512(&pd, g.k, cin, cout, xp, wp, y),
                            Isa::Avx2 => image_avx2(&pd, g.k, cin, cout, xp, wp, y),
                        }
                    }
                },
            );
        out
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn image_avx512(
        pd: &Padded,
        k: usize,
        cin: usize,
        cout: usize,
        xp: &[f32],
        wp: &[f32],
        y: &mut [f32],
    ) {
        image::<__m512, 14>(pd, k, cin, cout, xp, wp, y)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn image_avx2(
        pd: &Padded,
        k: usize,
        cin: usize,
        cout: usize,
        xp: &[f32],
        wp: &[f32],
        y: &mut [f32],
    ) {
        image::<__m256, 6>(pd, k, cin, cout, xp, wp, y)
    }

    /// One image, in tiles of `TILE` pixels of a row × 2 vectors of output channels (1 for a
    /// last odd AVX-512 block); the kernel block of the tile's channels (≤ 400 KB) and the
    /// padded image stay in L2 across the tiles.
    #[inline(always)]
    unsafe fn image<V: Vector, const TILE: usize>(
        pd: &Padded,
        k: usize,
        cin: usize,
        cout: usize,
        xp: &[f32],
        wp: &[f32],
        y: &mut [f32],
    ) {
        let block = cin * k * k * BLOCK;
        let mut ch = 0;
        while ch < cout {
            let ob = ((cout - ch) / V::N).min(2);
            for row in 0..pd.h {
                // Kernel rows that fall on the zero border add nothing: skipped (6% of the
                // taps at 28×28, k = 7).
                let kh = pd.pad.saturating_sub(row)..k.min(pd.h + pd.pad - row);
                for x0 in (0..pd.w).step_by(TILE) {
                    let t = Tile {
                        xp: xp.as_ptr().add(row * pd.wp + x0),
                        w: wp.as_ptr().add(ch / BLOCK * block),
                        block,
                        cin,
                        kh: kh.clone(),
                        left: x0 == 0,
                        right: x0 + TILE == pd.w,
                    };
                    match (ob, k) {
                        (2, 5) => store(&t.run::<V, 2, TILE, 5>(pd), pd, ch, row, x0, y),
                        (2, _) => store(&t.run::<V, 2, TILE, 7>(pd), pd, ch, row, x0, y),
                        (_, 5) => store(&t.run::<V, 1, TILE, 5>(pd), pd, ch, row, x0, y),
                        (_, _) => store(&t.run::<V, 1, TILE, 7>(pd), pd, ch, row, x0, y),
                    }
                }
            }
            ch += ob * V::N;
        }
    }

    /// One register tile: output pixels of a row from `xp` (the padded input at the tile's
    /// first tap), the kernel's lane blocks (`block` floats apart) from `w`.
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
        #[inline(always)]
        unsafe fn run<V: Vector, const OB: usize, const TILE: usize, const K: usize>(
            &self,
            pd: &Padded,
        ) -> [[V; TILE]; OB] {
            match (self.left, self.right) {
                (false, false) => self.taps::<V, OB, TILE, K, false, false>(pd),
                (true, false) => self.taps::<V, OB, TILE, K, true, false>(pd),
                (false, true) => self.taps::<V, OB, TILE, K, false, true>(pd),
                (true, true) => self.taps::<V, OB, TILE, K, true, true>(pd),
            }
        }

        /// `OB` vectors × `TILE` pixels: per kernel tap, `OB` weight loads and `TILE`
        /// broadcasts feed `TILE·OB` FMAs into accumulators that never leave the registers.
        /// At an image edge, the (pixel, tap) pairs that read the zero border are left out at
        /// compile time (another 6% of the taps at 28×28, k = 7).
        #[inline(always)]
        unsafe fn taps<
            V: Vector,
            const OB: usize,
            const TILE: usize,
            const K: usize,
            const LEFT: bool,
            const RIGHT: bool,
        >(
            &self,
            pd: &Padded,
        ) -> [[V; TILE]; OB] {
            let pad = K / 2;
            // Input pixel `kw + r` is read as `kw·one + r`: LLVM cannot see that taps of
            // different `kw` share pixels, so it does not keep every broadcast alive across the
            // unrolled taps (which spilled them to the stack and cost 15% at k = 7).
            let one = std::hint::black_box(1);
            let mut acc = [[V::zero(); TILE]; OB];
            let mut wv = [V::zero(); OB];
            for i in 0..self.cin {
                for kh in self.kh.clone() {
                    let row = self.xp.add(i * pd.plane() + kh * pd.wp);
                    let taps = self.w.add((i * K + kh) * K * BLOCK);
                    for kw in 0..K {
                        for b in 0..OB {
                            wv[b] = V::load(taps.add(lanes_at::<V>(b, self.block) + kw * BLOCK));
                        }
                        for r in 0..TILE {
                            if (LEFT && r + kw < pad) || (RIGHT && r + kw >= TILE + pad) {
                                continue;
                            }
                            let xv = V::splat(row.add(kw * one + r));
                            for b in 0..OB {
                                acc[b][r] = V::fma(wv[b], xv, acc[b][r]);
                            }
                        }
                    }
                }
            }
            acc
        }
    }

    /// Writes a tile's lanes back to their channel planes (dropping columns past the image).
    #[inline(always)]
    unsafe fn store<V: Vector, const OB: usize, const TILE: usize>(
        acc: &[[V; TILE]; OB],
        pd: &Padded,
        ch0: usize,
        row: usize,
        x0: usize,
        y: &mut [f32],
    ) {
        let valid = TILE.min(pd.w - x0);
        let mut buf = [[0f32; BLOCK]; TILE];
        for (b, lanes) in acc.iter().enumerate() {
            for (r, v) in lanes.iter().enumerate() {
                v.store(buf[r].as_mut_ptr());
            }
            for j in 0..V::N {
                let ch = ch0 + b * V::N + j;
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
    pub fn weight_grad(isa: Isa, g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let pd = Padded::new(g, isa.tile());
        let (kk, hw, blocks, per) = (g.k * g.k, g.h * g.w, g.o / BLOCK, isa.blocks_per_task());
        let (in_len, out_len) = (g.c * hw, g.o * hw);
        let mut packed = vec![0f32; blocks * g.c * kk * BLOCK];
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
                    // pixel is one AVX-512 (two AVX2) vector load.
                    for (o, plane) in dy.chunks_exact(hw).enumerate() {
                        let (ob, j) = (o / BLOCK, o % BLOCK);
                        for (p, v) in plane.iter().enumerate() {
                            dyt[(ob * hw + p) * BLOCK + j] = *v;
                        }
                    }
                });
            let (xp, dyt) = (&xp[..m * g.c * pd.plane()], &dyt[..m * out_len]);
            // One task per (group of `per` lane blocks, or a smaller last group) × input
            // channel, each summing the chunk's images in order after the earlier chunks.
            let (grouped, rest) = packed.split_at_mut(blocks / per * per * g.c * kk * BLOCK);
            grouped
                .par_chunks_mut(per * kk * BLOCK)
                .chain(rest.par_chunks_mut(kk * BLOCK))
                .enumerate()
                .for_each(|(task, dst)| {
                    let (lb, c) = (task / g.c * per, task % g.c);
                    for i in 0..m {
                        let xc = &xp[(i * g.c + c) * pd.plane()..][..pd.plane()];
                        let dyb = &dyt[i * out_len + lb * hw * BLOCK..];
                        // SAFETY: `applies` checked the instruction set and k ∈ {5, 7}; `xc` is
                        // one padded plane, `dyb` holds the task's blocks of `hw × 16`
                        // gradients, `dst` is `k² × blocks × 16`.
                        unsafe {
                            match isa {
                                Isa::Avx512 => wgrad_avx512(g.k, xc, &pd, dyb, dst),
                                Isa::Avx2 => wgrad_avx2(g.k, xc, &pd, dyb, dst),
                            }
                        }
                    }
                });
        }
        packed
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn wgrad_avx512(k: usize, xc: &[f32], pd: &Padded, dyb: &[f32], dst: &mut [f32]) {
        match (dst.len() / (k * k * BLOCK), k) {
            (2, 5) => wgrad::<__m512, 2, 5, 0, 5>(xc, pd, dyb, dst),
            (2, _) => wgrad::<__m512, 2, 7, 0, 7>(xc, pd, dyb, dst),
            (_, 5) => wgrad::<__m512, 1, 5, 0, 5>(xc, pd, dyb, dst),
            (_, _) => wgrad::<__m512, 1, 7, 0, 7>(xc, pd, dyb, dst),
        }
    }

    /// AVX2 has 16 registers: two vectors × at most 5 kernel columns per pass.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn wgrad_avx2(k: usize, xc: &[f32], pd: &Padded, dyb: &[f32], dst: &mut [f32]) {
        if k == 5 {
            wgrad::<__m256, 2, 5, 0, 5>(xc, pd, dyb, dst);
        } else {
            wgrad::<__m256, 2, 7, 0, 4>(xc, pd, dyb, dst);
            wgrad::<__m256, 2, 7, 4, 3>(xc, pd, dyb, dst);
        }
    }

    /// One image's contribution to kernel columns `KW0 .. KW0 + KWN` of the gradient of `OB`
    /// vectors of output channels and one input channel, kernel row by kernel row over the
    /// output rows that see the image there: per pixel `OB` gradient loads and `KWN`
    /// broadcasts feed `OB·KWN` register accumulators.
    #[inline(always)]
    unsafe fn wgrad<
        V: Vector,
        const OB: usize,
        const K: usize,
        const KW0: usize,
        const KWN: usize,
    >(
        xc: &[f32],
        pd: &Padded,
        dyb: &[f32],
        dst: &mut [f32],
    ) {
        let block = pd.h * pd.w * BLOCK;
        let width = OB * V::N;
        debug_assert!(dst.len() == K * K * width);
        let mut d = [V::zero(); OB];
        for kh in 0..K {
            let mut acc = [[V::zero(); KWN]; OB];
            for row in pd.pad.saturating_sub(kh)..(pd.h + pd.pad).saturating_sub(kh).min(pd.h) {
                let px_row = xc.as_ptr().add((row + kh) * pd.wp + KW0);
                let dy_row = dyb.as_ptr().add(row * pd.w * BLOCK);
                for col in 0..pd.w {
                    for b in 0..OB {
                        d[b] = V::load(dy_row.add(lanes_at::<V>(b, block) + col * BLOCK));
                    }
                    let px = px_row.add(col);
                    for kw in 0..KWN {
                        let xv = V::splat(px.add(kw));
                        for b in 0..OB {
                            acc[b][kw] = V::fma(d[b], xv, acc[b][kw]);
                        }
                    }
                }
            }
            for (b, acc_b) in acc.iter().enumerate() {
                for (kw, a) in acc_b.iter().enumerate() {
                    let at = dst.as_mut_ptr().add((kh * K + KW0 + kw) * width + b * V::N);
                    V::add(V::load(at), *a).store(at);
                }
            }
        }
    }
}

/// Never called: `applies` finds no instruction set off x86-64.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::{Geometry, Isa};

    pub fn conv_same(_: Isa, _: &Geometry, _: usize, _: usize, _: &[f32], _: &[f32]) -> Vec<f32> {
        unreachable!("direct convolution needs x86-64")
    }

    pub fn weight_grad(_: Isa, _: &Geometry, _: &[f32], _: &[f32]) -> Vec<f32> {
        unreachable!("direct convolution needs x86-64")
    }
}
