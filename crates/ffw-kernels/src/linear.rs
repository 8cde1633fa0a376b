//! `x · wᵀ` for linear layers. candle's matmul backward always computes the gradient of both
//! operands; for the MLP's first layer (2352 inputs) the input gradient of a data batch is a
//! third of the step's work and nobody uses it. This op skips gradients nobody tracks.
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use crate::gemm::{gemm, Threads};
use crate::storage::{contiguous_f32, output_f32};

/// `x [m, k] · wᵀ` with `w [n, k]`: `[m, n]`. On the CPU with f32 this uses the op below;
/// elsewhere candle's matmul.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        x.contiguous()?.apply_op2(&w.contiguous()?, MatmulT)
    } else {
        x.matmul(&w.t()?)
    }
}

fn dims2(l: &Layout, what: &str) -> Result<(usize, usize)> {
    match l.dims() {
        &[a, b] => Ok((a, b)),
        d => bail!("linear: {what} must be 2-d, got {d:?}"),
    }
}

struct MatmulT;

impl CustomOp2 for MatmulT {
    fn name(&self) -> &'static str {
        "ffw-matmul-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((m, k), (n, k2)) = (dims2(l1, "input")?, dims2(l2, "weight")?);
        if k != k2 {
            bail!("linear: input [{m}, {k}] does not match weight [{n}, {k2}]");
        }
        let (x, w) = (
            contiguous_f32(s1, l1, "linear input")?,
            contiguous_f32(s2, l2, "linear weight")?,
        );
        let mut y = output_f32(m * n);
        gemm(
            Threads::All,
            (m, n, k),
            &mut y,
            (n, 1),
            false,
            x,
            (k, 1),
            w,
            (1, k),
        );
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &Product::GradInput)?)
        } else {
            None
        };
        let gw = if w.track_op() {
            Some(grad.apply_op2_no_bwd(x, &Product::GradWeight)?)
        } else {
            None
        };
        Ok((gx, gw))
    }
}

/// The two backward products, both of the output gradient `g [m, n]` with a forward operand.
enum Product {
    /// `g · w` → `[m, k]`.
    GradInput,
    /// `gᵀ · x` → `[n, k]`.
    GradWeight,
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        match self {
            Product::GradInput => "ffw-matmul-t-grad-input",
            Product::GradWeight => "ffw-matmul-t-grad-weight",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n) = dims2(l1, "gradient")?;
        let (rows, k) = dims2(l2, "operand")?;
        let g = contiguous_f32(s1, l1, "linear gradient")?;
        let b = contiguous_f32(s2, l2, "linear operand")?;
        let (shape, out) = match self {
            Product::GradInput if rows == n => {
                let mut dx = vec![0f32; m * k];
                gemm(
                    Threads::All,
                    (m, k, n),
                    &mut dx,
                    (k, 1),
                    false,
                    g,
                    (n, 1),
                    b,
                    (k, 1),
                );
                ((m, k), dx)
            }
            Product::GradWeight if rows == m => {
                let mut dw = vec![0f32; n * k];
                gemm(
                    Threads::All,
                    (n, k, m),
                    &mut dw,
                    (k, 1),
                    false,
                    g,
                    (1, n),
                    b,
                    (k, 1),
                );
                ((n, k), dw)
            }
            _ => bail!("linear backward: gradient [{m}, {n}] does not match operand [{rows}, {k}]"),
        };
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
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

    #[test]
    fn forward_and_gradients_match_candles_matmul() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (m, k, n) in [(1, 1, 1), (7, 13, 5), (256, 300, 100), (33, 100, 10)] {
            let x = Var::from_tensor(&random(&[m, k], &mut rng)).unwrap();
            let w = Var::from_tensor(&random(&[n, k], &mut rng)).unwrap();
            let up = random(&[m, n], &mut rng);
            let ours = matmul_t(&x, &w).unwrap();
            let reference = x.matmul(&w.t().unwrap()).unwrap();
            assert!(max_diff(&ours, &reference) < 1e-4, "forward {m}x{k}x{n}");
            let (g1, g2) = projected_grads(&ours, &reference, &up);
            for v in [&x, &w] {
                let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert_eq!(a.dims(), b.dims());
                assert!(max_diff(a, b) < 1e-3, "grad {m}x{k}x{n}");
            }
        }
    }

    #[test]
    fn an_untracked_input_gets_no_gradient() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let x = random(&[4, 6], &mut rng);
        let w = Var::from_tensor(&random(&[3, 6], &mut rng)).unwrap();
        let grads = matmul_t(&x, &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(&w).is_some());
    }
}
