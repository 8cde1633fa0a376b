//! A vectorisable `tanh`: libm's scalar `tanhf` (through `expm1f`) was a tenth of a k=3
//! SimpleConvNet step, all of it on the last layer's activations.
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{contiguous_f32, output_f32};

/// `tanh(x)` with the CPU path on [`fast_tanh`]; candle's op elsewhere.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.apply_op1(Tanh)
    } else {
        x.tanh()
    }
}

/// Eigen's rational approximation of tanh for f32 (the one PyTorch's CPU kernels use):
/// accurate to a few ulp, and free of branches the compiler cannot vectorise.
#[inline]
pub fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const B: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let small = x.abs() < 4e-4;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = A[6];
    for a in A[..6].iter().rev() {
        p = p * x2 + a;
    }
    let q = ((B[3] * x2 + B[2]) * x2 + B[1]) * x2 + B[0];
    if small {
        x
    } else {
        x * p / q
    }
}

struct Tanh;

impl CustomOp1 for Tanh {
    fn name(&self) -> &'static str {
        "ffw-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "tanh")?;
        let mut out = output_f32(x.len());
        out.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14))
            .for_each(|(o, x)| {
                o.iter_mut().zip(x).for_each(|(o, &x)| *o = fast_tanh(x));
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((grad * (1.0 - y.sqr()?)?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_the_exact_tanh_across_the_range() {
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            assert!(
                (fast_tanh(x) - x.tanh()).abs() < 5e-7,
                "x = {x}: {} vs {}",
                fast_tanh(x),
                x.tanh()
            );
        }
        assert_eq!(fast_tanh(100.0), 1.0);
        assert_eq!(fast_tanh(-100.0), -1.0);
    }

    #[test]
    fn gradient_is_one_minus_tanh_squared() {
        let x = Var::new(&[-1.5f32, 0.0, 0.3, 2.0], &Device::Cpu).unwrap();
        let g = tanh(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for (gi, xi) in g.iter().zip([-1.5f32, 0.0, 0.3, 2.0]) {
            assert!((gi - (1.0 - xi.tanh().powi(2))).abs() < 1e-6);
        }
    }
}
