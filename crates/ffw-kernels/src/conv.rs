//! 2-D convolution (groups 1, dilation 1, square kernel): a direct AVX-512/AVX2 kernel for
//! the large "same" kernels ([`direct`]), im2col + GEMM over groups of images for small
//! outputs ([`grouped`]), im2col + GEMM per image for everything else.
mod direct;
mod grouped;

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::gemm::{gemm, Threads};
use crate::storage::{contiguous_f32, output_f32};

/// Convolution of `x` `[N, C, H, W]` with `w` `[O, C, k, k]`, no bias. On the CPU with f32
/// this uses the ops below; elsewhere it defers to candle's `conv2d`.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, kh, kw) = w.dims4()?;
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 && kh == kw {
        x.contiguous()?
            .apply_op2(&w.contiguous()?, Conv2dOp { stride, padding })
    } else {
        x.conv2d(w, padding, stride, 1, 1)
    }
}

#[derive(Clone, Copy, Debug)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], stride: usize, pad: usize) -> Result<Self> {
        let (&[n, c, h, wd], &[o, cw, k, k2]) = (x, w) else {
            bail!("conv2d: expected 4-d input and kernel")
        };
        if c != cw || k != k2 || stride == 0 {
            bail!("conv2d: input {x:?} and kernel {w:?} do not match (stride {stride})");
        }
        if h + 2 * pad < k || wd + 2 * pad < k {
            bail!("conv2d: kernel {k} larger than padded input {h}x{wd}");
        }
        let ho = (h + 2 * pad - k) / stride + 1;
        let wo = (wd + 2 * pad - k) / stride + 1;
        Ok(Self {
            n,
            c,
            h,
            w: wd,
            o,
            k,
            stride,
            pad,
            ho,
            wo,
        })
    }
    fn ckk(&self) -> usize {
        self.c * self.k * self.k
    }
    fn out_hw(&self) -> usize {
        self.ho * self.wo
    }
    fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.o * self.out_hw()
    }
    /// The output columns `lo..hi` whose input column `ow·s + kj − p` lies inside a row of `w`
    /// pixels, so a row copies as one (strided) run without a bounds test per pixel (the hot
    /// loop of small kernels).
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let lo = self
            .pad
            .saturating_sub(kj)
            .div_ceil(self.stride)
            .min(self.wo);
        let hi = match (self.w + self.pad).checked_sub(kj + 1) {
            Some(last) => (last / self.stride + 1).clamp(lo, self.wo),
            None => lo,
        };
        (lo, hi)
    }
    /// Input row of output row `out` at kernel offset `kern`, if inside the image.
    fn src(&self, out: usize, kern: usize, size: usize) -> Option<usize> {
        (out * self.stride + kern)
            .checked_sub(self.pad)
            .filter(|&i| i < size)
    }
}

/// `cols[(c, ki, kj)·ld + i·ohw + (oh, ow)] = x[i, c, oh·s + ki − p, ow·s + kj − p]` (0
/// outside) for the images `i` that `x` holds: one row per kernel tap, the images' columns side
/// by side in it, rows `ld` apart. Rows are written in order, each image's plane read once per
/// tap while it is still in cache.
fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32], ld: usize) {
    let (ohw, plane_len) = (g.out_hw(), g.h * g.w);
    let imgs = x.len() / g.in_len();
    for c in 0..g.c {
        for ki in 0..g.k {
            for kj in 0..g.k {
                let row = &mut cols[((c * g.k + ki) * g.k + kj) * ld..][..imgs * ohw];
                // Per tap, not per output row: on a ResNet's small maps the rows are 1–8
                // pixels long and this arithmetic would cost more than the copy.
                let (lo, hi) = g.valid_cols(kj);
                let first = (lo * g.stride + kj).wrapping_sub(g.pad);
                for (i, out) in row.chunks_exact_mut(ohw).enumerate() {
                    let plane = &x[i * g.in_len() + c * plane_len..][..plane_len];
                    for (oh, dst) in out.chunks_exact_mut(g.wo).enumerate() {
                        let Some(ih) = g.src(oh, ki, g.h) else {
                            dst.fill(0.0);
                            continue;
                        };
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if lo == hi {
                            continue;
                        }
                        let src = &plane[ih * g.w + first..];
                        if g.stride == 1 {
                            dst[lo..hi].copy_from_slice(&src[..hi - lo]);
                        } else {
                            let src = src.iter().step_by(g.stride);
                            dst[lo..hi].iter_mut().zip(src).for_each(|(d, v)| *d = *v);
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: accumulates every column entry back into its input pixel, for
/// the images `dx` holds.
fn col2im(g: &Geometry, cols: &[f32], ld: usize, dx: &mut [f32]) {
    let (ohw, plane_len) = (g.out_hw(), g.h * g.w);
    let imgs = dx.len() / g.in_len();
    dx.fill(0.0);
    for c in 0..g.c {
        for ki in 0..g.k {
            for kj in 0..g.k {
                let row = &cols[((c * g.k + ki) * g.k + kj) * ld..][..imgs * ohw];
                let (lo, hi) = g.valid_cols(kj);
                if lo == hi {
                    continue;
                }
                let first = lo * g.stride + kj - g.pad;
                for (i, out) in row.chunks_exact(ohw).enumerate() {
                    let plane = &mut dx[i * g.in_len() + c * plane_len..][..plane_len];
                    for (oh, src) in out.chunks_exact(g.wo).enumerate() {
                        let Some(ih) = g.src(oh, ki, g.h) else {
                            continue;
                        };
                        let dst = &mut plane[ih * g.w + first..];
                        if g.stride == 1 {
                            let src = &src[lo..hi];
                            dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                        } else {
                            let dst = dst.iter_mut().step_by(g.stride);
                            dst.zip(&src[lo..hi]).for_each(|(d, v)| *d += v);
                        }
                    }
                }
            }
        }
    }
}

/// Forward: `(x, w) → y`.
struct Conv2dOp {
    stride: usize,
    padding: usize,
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "ffw-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1.dims(), l2.dims(), self.stride, self.padding)?;
        let (x, w) = (
            contiguous_f32(s1, l1, "conv2d input")?,
            contiguous_f32(s2, l2, "conv2d kernel")?,
        );
        let shape = Shape::from((g.n, g.o, g.ho, g.wo));
        if let Some(out) = direct::forward(&g, x, w).or_else(|| grouped::forward(&g, x, w)) {
            return Ok((CpuStorage::F32(out), shape));
        }
        let mut out = output_f32(g.n * g.out_len());
        out.par_chunks_mut(g.out_len()).enumerate().for_each_init(
            || vec![0f32; g.ckk() * g.out_hw()],
            |cols, (i, y)| {
                im2col(
                    &g,
                    &x[i * g.in_len()..(i + 1) * g.in_len()],
                    cols,
                    g.out_hw(),
                );
                gemm(
                    Threads::One,
                    (g.o, g.out_hw(), g.ckk()),
                    y,
                    (g.out_hw(), 1),
                    false,
                    w,
                    (g.ckk(), 1),
                    cols,
                    (g.out_hw(), 1),
                );
            },
        );
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (_, _, h, wd) = x.dims4()?;
        // Data inputs need no gradient: skipping it saves a third of the first layer's work.
        let gx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(
                w,
                &InputGradOp {
                    stride: self.stride,
                    padding: self.padding,
                    h,
                    w: wd,
                },
            )?)
        } else {
            None
        };
        let gw = if w.track_op() {
            Some(x.apply_op2_no_bwd(
                &grad,
                &WeightGradOp {
                    stride: self.stride,
                    padding: self.padding,
                    k: w.dim(2)?,
                },
            )?)
        } else {
            None
        };
        Ok((gx, gw))
    }
}

/// `(dy, w) → dx`: `dx = col2im(wᵀ · dy)` per image.
struct InputGradOp {
    stride: usize,
    padding: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for InputGradOp {
    fn name(&self) -> &'static str {
        "ffw-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, o, _, _) = l1.shape().dims4()?;
        let c = l2.dims()[1];
        let g = Geometry::new(
            &[n, c, self.h, self.w],
            l2.dims(),
            self.stride,
            self.padding,
        )?;
        if l1.dims() != [n, o, g.ho, g.wo] {
            bail!(
                "conv2d input grad: gradient shape {:?} does not match {:?}",
                l1.dims(),
                g
            );
        }
        let (dy, w) = (
            contiguous_f32(s1, l1, "conv2d grad")?,
            contiguous_f32(s2, l2, "conv2d kernel")?,
        );
        let shape = Shape::from((n, c, self.h, self.w));
        if let Some(dx) = direct::input_grad(&g, dy, w).or_else(|| grouped::input_grad(&g, dy, w)) {
            return Ok((CpuStorage::F32(dx), shape));
        }
        let mut dx = vec![0f32; n * g.in_len()];
        dx.par_chunks_mut(g.in_len()).enumerate().for_each_init(
            || vec![0f32; g.ckk() * g.out_hw()],
            |cols, (i, dxi)| {
                let dyi = &dy[i * g.out_len()..(i + 1) * g.out_len()];
                gemm(
                    Threads::One,
                    (g.ckk(), g.out_hw(), g.o),
                    cols,
                    (g.out_hw(), 1),
                    false,
                    w,
                    (1, g.ckk()),
                    dyi,
                    (g.out_hw(), 1),
                );
                col2im(&g, cols, g.out_hw(), dxi);
            },
        );
        Ok((CpuStorage::F32(dx), shape))
    }
}

/// `(x, dy) → dw`: `dw = Σₙ dyₙ · im2col(xₙ)ᵀ`.
struct WeightGradOp {
    stride: usize,
    padding: usize,
    k: usize,
}

impl CustomOp2 for WeightGradOp {
    fn name(&self) -> &'static str {
        "ffw-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, _, _) = l1.shape().dims4()?;
        let o = l2.dims()[1];
        let g = Geometry::new(
            l1.dims(),
            &[o, c, self.k, self.k],
            self.stride,
            self.padding,
        )?;
        if l2.dims() != [g.n, o, g.ho, g.wo] {
            bail!(
                "conv2d weight grad: gradient shape {:?} does not match {:?}",
                l2.dims(),
                g
            );
        }
        let (x, dy) = (
            contiguous_f32(s1, l1, "conv2d input")?,
            contiguous_f32(s2, l2, "conv2d grad")?,
        );
        let shape = Shape::from((o, c, self.k, self.k));
        if let Some(dw) = direct::weight_grad(&g, x, dy) {
            return Ok((CpuStorage::F32(dw), shape));
        }
        let partials = grouped::weight_grad_partials(&g, x, dy)
            .unwrap_or_else(|| per_image_weight_grad_partials(&g, x, dy));
        let mut partials = partials.into_iter();
        let mut dwt = partials.next().expect("a batch has at least one image");
        for p in partials {
            dwt.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        // dw = dwtᵀ in 32×32 tiles: row by row, the writes to a 512-channel kernel gradient
        // would each touch a new cache line.
        const TILE: usize = 32;
        let mut dw = output_f32(g.o * g.ckk());
        for r0 in (0..g.ckk()).step_by(TILE) {
            for j0 in (0..g.o).step_by(TILE) {
                for r in r0..(r0 + TILE).min(g.ckk()) {
                    for j in j0..(j0 + TILE).min(g.o) {
                        dw[j * g.ckk() + r] = dwt[r * g.o + j];
                    }
                }
            }
        }
        Ok((CpuStorage::F32(dw), shape))
    }
}

/// `dwᵀ [ckk, o]` summed over fixed groups of images, one partial sum per group.
fn per_image_weight_grad_partials(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<Vec<f32>> {
    // Fixed groups of images, summed in order: the result does not depend on the number
    // of threads, so a sweep gives the same numbers on any rank layout.
    const GROUP: usize = 4;
    // Each group sums `dwᵀ [ckk, o] += im2col(x) · dyᵀ`: with the long `ckk` side as the
    // GEMM's rows the microkernel runs ~25% faster than `dy · im2col(x)ᵀ` (measured with
    // `examples/gemm_shapes.rs` on SimpleConvNet's shapes), and sums the same products in
    // the same order, so the results are bit-identical.
    (0..g.n.div_ceil(GROUP))
        .into_par_iter()
        .map(|grp| {
            // Both written before read: im2col fills every column, the first GEMM overwrites.
            let mut dwt = output_f32(g.ckk() * g.o);
            let mut cols = output_f32(g.ckk() * g.out_hw());
            for i in grp * GROUP..((grp + 1) * GROUP).min(g.n) {
                im2col(
                    g,
                    &x[i * g.in_len()..(i + 1) * g.in_len()],
                    &mut cols,
                    g.out_hw(),
                );
                let dyi = &dy[i * g.out_len()..(i + 1) * g.out_len()];
                gemm(
                    Threads::One,
                    (g.ckk(), g.o, g.out_hw()),
                    &mut dwt,
                    (g.o, 1),
                    i > grp * GROUP,
                    &cols,
                    (g.out_hw(), 1),
                    dyi,
                    (1, g.out_hw()),
                );
            }
            dwt
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_diff, projected_grads};
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    fn random(shape: &[usize], rng: &mut rand_chacha::ChaCha8Rng) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Forward and both gradients against candle's reference convolution.
    #[allow(clippy::too_many_arguments)] // one argument per shape dimension
    fn check(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        o: usize,
        k: usize,
        stride: usize,
        pad: usize,
        seed: u64,
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let x = Var::from_tensor(&random(&[n, c, h, w], &mut rng)).unwrap();
        let wt = Var::from_tensor(&random(&[o, c, k, k], &mut rng)).unwrap();
        let ours = conv2d(x.as_tensor(), wt.as_tensor(), stride, pad).unwrap();
        let reference = x
            .as_tensor()
            .conv2d(wt.as_tensor(), pad, stride, 1, 1)
            .unwrap();
        assert_eq!(ours.dims(), reference.dims());
        let tol = 1e-4 * (c * k * k) as f32;
        assert!(
            max_diff(&ours, &reference) < tol,
            "forward {n} {c} {h} {w} {o} {k} s{stride} p{pad}"
        );
        // A random projection of the output makes every gradient entry distinct.
        let proj = random(ours.dims(), &mut rng);
        let (g1, g2) = projected_grads(&ours, &reference, &proj);
        for (name, v) in [("input", &x), ("kernel", &wt)] {
            let (a, b) = (
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            let scale = b
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .max(1.0);
            assert!(
                max_diff(a, b) < 1e-4 * scale * (n * o) as f32,
                "{name} grad {n} {c} {h} {w} {o} {k} s{stride} p{pad}"
            );
        }
    }

    #[test]
    fn matches_candle_on_the_models_shapes() {
        check(3, 3, 28, 28, 16, 7, 1, 3, 1); // SimpleConvNet k=7, first layer
        check(2, 16, 28, 28, 32, 3, 1, 1, 2); // SimpleConvNet k=3
        check(2, 8, 16, 16, 8, 3, 2, 1, 3); // ResNet downsampling 3x3
        check(2, 4, 9, 9, 6, 1, 2, 0, 4); // ResNet 1x1 shortcut
        check(5, 32, 2, 2, 32, 3, 1, 1, 5); // ResNet layer4 on 32×32 inputs: 2×2 images …
        check(3, 16, 2, 2, 32, 3, 2, 1, 6); // … and 1×1 outputs, grouped over the batch
        check(40, 8, 6, 6, 8, 3, 1, 1, 7); // several groups of 8 images, the last one short
    }

    /// The direct kernels, on each instruction set the CPU has: pairs and single lane blocks,
    /// images narrower and wider than a tile, tiles at one edge and at both, k = 5 and 7,
    /// batches that span several weight-gradient chunks.
    #[test]
    fn direct_kernels_match_candle() {
        let g = |c, o| Geometry::new(&[1, c, 8, 8], &[o, c, 7, 7], 1, 3).unwrap();
        for isa in [direct::Isa::Avx512, direct::Isa::Avx2] {
            if !isa.supported() {
                eprintln!("no {isa:?} here: its direct kernels are not exercised");
                continue;
            }
            direct::with_isa(isa, || {
                assert_eq!(direct::applies(&g(16, 16), 16), Some(isa));
                assert_eq!(direct::applies(&g(16, 24), 24), None);
                // SimpleConvNet k=7, second layer.
                check(2, 16, 28, 28, 32, 7, 1, 3, 11);
                // A pair and a single block; 17 columns.
                check(3, 32, 9, 17, 48, 7, 1, 3, 12);
                check(2, 16, 5, 30, 16, 5, 1, 2, 13);
                // 14 columns; fewer rows than taps.
                check(2, 16, 2, 14, 16, 7, 1, 3, 15);
                // 6 columns: one AVX2 tile, at both edges.
                check(2, 16, 3, 6, 16, 5, 1, 2, 16);
                // 35 images: three weight-gradient chunks; 3 input channels: no direct input
                // gradient.
                check(35, 3, 6, 6, 16, 7, 1, 3, 14);
            });
        }
    }

    /// Forward and both gradients, bit for bit, on 1 and 3 threads: a sweep's numbers must not
    /// depend on the ranks' core counts. Direct (k = 7), im2col and grouped (k = 3) paths.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let run = |threads: usize, k: usize, side: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
                let x = Var::from_tensor(&random(&[5, 16, side, side], &mut rng)).unwrap();
                let w = Var::from_tensor(&random(&[32, 16, k, k], &mut rng)).unwrap();
                let y = conv2d(x.as_tensor(), w.as_tensor(), 1, k / 2).unwrap();
                let proj = random(y.dims(), &mut rng);
                let grads = (&y * &proj).unwrap().sum_all().unwrap().backward().unwrap();
                [&y, grads.get(&x).unwrap(), grads.get(&w).unwrap()]
                    .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                    .map(|v| v.into_iter().map(f32::to_bits).collect::<Vec<_>>())
            })
        };
        // k = 3 on 12×12: groups of 2 images; on 3×3, one group whose GEMM splits.
        for (k, side) in [(7, 12), (3, 12), (3, 3)] {
            assert_eq!(run(1, k, side), run(3, k, side), "k = {k}, {side}×{side}");
        }
    }

    #[test]
    fn matches_candle_on_random_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        for case in 0..12 {
            let k = [1, 3, 5, 7][rng.gen_range(0..4)];
            let stride = rng.gen_range(1..=3);
            let pad = rng.gen_range(0..=k / 2);
            // candle's reference backward mis-shapes the input gradient when the stride does
            // not divide (size + 2·pad − k), so the sizes are drawn from exact output sizes.
            let size = |rng: &mut rand_chacha::ChaCha8Rng| {
                (rng.gen_range(2..6) - 1) * stride + k - 2 * pad
            };
            let (h, w) = (size(&mut rng), size(&mut rng));
            check(
                rng.gen_range(1..4),
                rng.gen_range(1..5),
                h,
                w,
                rng.gen_range(1..6),
                k,
                stride,
                pad,
                100 + case,
            );
        }
    }

    #[test]
    fn a_constant_input_needs_no_gradient() {
        let x = Tensor::ones((1, 2, 5, 5), DType::F32, &Device::Cpu).unwrap();
        let w = Var::ones((3, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let grads = conv2d(&x, w.as_tensor(), 1, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_none());
        // Interior output pixels see all 18 inputs; the kernel gradient sums the input window.
        let gw = grads.get(w.as_tensor()).unwrap();
        assert_eq!(gw.dims(), &[3, 2, 3, 3]);
        assert_eq!(gw.flatten_all().unwrap().to_vec1::<f32>().unwrap()[4], 25.0);
    }
}
