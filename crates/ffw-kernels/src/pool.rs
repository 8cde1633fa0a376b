//! Max-pooling with padding (torchvision ResNet's stem: 3×3, stride 2, padding 1), which
//! candle's `max_pool2d` lacks. Padding counts as −∞: it is never the maximum.
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{contiguous_f32, output_f32};

/// `y[n, c, i, j] = max` of `x[n, c]` over the `k × k` window at `(i·s − p, j·s − p)`.
pub fn max_pool2d(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(MaxPool { k, stride, padding })
    } else if padding == 0 {
        x.max_pool2d_with_stride(k, stride)
    } else {
        bail!("max_pool2d: padding is only implemented on the CPU in f32")
    }
}

#[derive(Clone, Copy)]
struct MaxPool {
    k: usize,
    stride: usize,
    padding: usize,
}

/// Planes (`n·c`), input and output sides.
struct Geometry {
    planes: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

impl MaxPool {
    fn geometry(&self, dims: &[usize]) -> Result<Geometry> {
        let &[n, c, h, w] = dims else {
            bail!("max_pool2d: expected a 4-d input, got {dims:?}")
        };
        if self.stride == 0 || self.k == 0 || 2 * self.padding >= self.k + 1 {
            bail!(
                "max_pool2d: kernel {} stride {} padding {}: need stride > 0 and padding <= k/2",
                self.k,
                self.stride,
                self.padding
            );
        }
        if h + 2 * self.padding < self.k || w + 2 * self.padding < self.k {
            bail!(
                "max_pool2d: kernel {} larger than padded input {h}x{w}",
                self.k
            );
        }
        Ok(Geometry {
            planes: n * c,
            h,
            w,
            ho: (h + 2 * self.padding - self.k) / self.stride + 1,
            wo: (w + 2 * self.padding - self.k) / self.stride + 1,
        })
    }

    /// The input index of the maximum of output pixel `(i, j)` in `plane` (the first one in
    /// row-major order on ties, as PyTorch). `padding <= k/2` keeps every window non-empty.
    fn argmax(&self, g: &Geometry, plane: &[f32], i: usize, j: usize) -> usize {
        let span = |o: usize, size: usize| {
            let lo = (o * self.stride).saturating_sub(self.padding);
            let hi = (o * self.stride + self.k - self.padding).min(size);
            lo..hi
        };
        let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
        for r in span(i, g.h) {
            for c in span(j, g.w) {
                let v = plane[r * g.w + c];
                if v > best || at == usize::MAX {
                    (best, at) = (v, r * g.w + c);
                }
            }
        }
        at
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "ffw-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(l.dims())?;
        let x = contiguous_f32(s, l, "max_pool2d input")?;
        let mut y = output_f32(g.planes * g.ho * g.wo);
        y.par_chunks_mut(g.ho * g.wo)
            .zip(x.par_chunks(g.h * g.w))
            .for_each(|(yp, xp)| {
                for (o, v) in yp.iter_mut().enumerate() {
                    *v = xp[self.argmax(&g, xp, o / g.wo, o % g.wo)];
                }
            });
        let d = l.dims();
        Ok((CpuStorage::F32(y), Shape::from((d[0], d[1], g.ho, g.wo))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPoolGrad(*self),
        )?))
    }
}

/// `(x, dy) → dx`: each output's gradient goes to the input pixel that was its maximum.
struct MaxPoolGrad(MaxPool);

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "ffw-max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.0.geometry(l1.dims())?;
        let d = l1.dims();
        if l2.dims() != [d[0], d[1], g.ho, g.wo] {
            bail!("max_pool2d grad: gradient {:?} for input {d:?}", l2.dims());
        }
        let x = contiguous_f32(s1, l1, "max_pool2d input")?;
        let dy = contiguous_f32(s2, l2, "max_pool2d grad")?;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(g.h * g.w)
            .zip(x.par_chunks(g.h * g.w).zip(dy.par_chunks(g.ho * g.wo)))
            .for_each(|(dxp, (xp, dyp))| {
                for (o, v) in dyp.iter().enumerate() {
                    dxp[self.0.argmax(&g, xp, o / g.wo, o % g.wo)] += v;
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_diff, projected_grads};
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    /// Max-pooling from candle ops: the max over the `k²` strided views of the input padded
    /// by a value below every entry (candle's own `max_pool2d` has no padding and no backward
    /// for overlapping windows).
    fn reference(x: &Tensor, k: usize, s: usize, p: usize) -> Tensor {
        let (n, c, h, w) = x.dims4().unwrap();
        let low = |shape: (usize, usize, usize, usize)| {
            Tensor::full(-1e9f32, shape, &Device::Cpu).unwrap()
        };
        let rows = Tensor::cat(&[&low((n, c, p, w)), x, &low((n, c, p, w))], 2).unwrap();
        let hp = h + 2 * p;
        let padded = Tensor::cat(&[&low((n, c, hp, p)), &rows, &low((n, c, hp, p))], 3).unwrap();
        let (ho, wo) = ((hp - k) / s + 1, (w + 2 * p - k) / s + 1);
        let at = |off: usize, len: usize| {
            let idx: Vec<u32> = (0..len).map(|i| (i * s + off) as u32).collect();
            Tensor::new(idx, &Device::Cpu).unwrap()
        };
        let views: Vec<Tensor> = (0..k * k)
            .map(|q| {
                padded
                    .index_select(&at(q / k, ho), 2)
                    .unwrap()
                    .index_select(&at(q % k, wo), 3)
                    .unwrap()
            })
            .collect();
        Tensor::stack(&views, 0).unwrap().max(0).unwrap()
    }

    /// Forward and gradient against [`reference`].
    fn check(n: usize, c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((h * 31 + w * 7 + k + s + p) as u64);
        let v: Vec<f32> = (0..n * c * h * w)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let x = Var::from_vec(v, (n, c, h, w), &Device::Cpu).unwrap();
        let ours = max_pool2d(x.as_tensor(), k, s, p).unwrap();
        let reference = reference(x.as_tensor(), k, s, p);
        assert_eq!(ours.dims(), reference.dims());
        assert_eq!(
            max_diff(&ours, &reference),
            0.0,
            "forward {h}x{w} k{k} s{s} p{p}"
        );
        let proj = Tensor::rand(-1f32, 1., ours.dims(), &Device::Cpu).unwrap();
        let (g1, g2) = projected_grads(&ours, &reference, &proj);
        let (a, b) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
        assert!(max_diff(a, b) < 1e-6, "grad {h}x{w} k{k} s{s} p{p}");
    }

    #[test]
    fn matches_candle_with_and_without_padding() {
        check(2, 3, 16, 16, 3, 2, 1); // the ResNet stem on a 32×32 image
        check(1, 2, 7, 9, 3, 2, 1); // odd sides: the last window hangs over the padding
        check(2, 2, 8, 8, 2, 2, 0);
        check(1, 1, 5, 5, 3, 1, 1); // overlapping windows: gradients accumulate
    }

    #[test]
    fn a_window_of_padding_only_is_rejected() {
        let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(max_pool2d(&x, 3, 2, 2).is_err());
    }
}
