//! The optimiser updates (SGD with momentum, Adam) in place. As candle ops each update is up
//! to thirteen allocating passes over every parameter, a third of the MLP's FFW step; here it
//! is two or three streaming passes that allocate nothing. The arithmetic is candle's, op for
//! op (`x * c` is `x·c + 0`, `x / c` is `x·(1/c) + 0` in f32), so both paths agree bit for bit.
use candle_core::{CpuStorage, DType, InplaceOp3, Layout, Result, Tensor, Var};

use crate::storage::{contiguous_f32, contiguous_f32_mut};

/// `s ← a·s + b·f(g + wd·p)`, with `f` the identity or the square: SGD's momentum buffer
/// (`a` = momentum, `b` = 1) and Adam's first and second moments.
#[derive(Clone, Copy, Debug)]
pub struct Moment {
    pub a: f64,
    pub b: f64,
    pub weight_decay: f64,
    pub square: bool,
}

/// Updates `state` from the gradient `g` of the parameter `p`.
pub fn moment(state: &Var, g: &Tensor, p: &Tensor, m: Moment) -> Result<()> {
    if fast(&[state.as_tensor(), g, p]) {
        return state.as_tensor().inplace_op3(g, p, &m);
    }
    // Weight decay as candle computes it: `g + p·wd`.
    let d = if m.weight_decay != 0.0 {
        (g + (p * m.weight_decay)?)?
    } else {
        g.clone()
    };
    let d = if m.square { d.sqr()? } else { d };
    state.set(&((state.as_tensor() * m.a)? + (d * m.b)?)?)
}

impl InplaceOp3 for Moment {
    fn name(&self) -> &'static str {
        "moment"
    }

    fn cpu_fwd(
        &self,
        s: &mut CpuStorage,
        sl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
        p: &CpuStorage,
        pl: &Layout,
    ) -> Result<()> {
        let (g, p) = (
            contiguous_f32(g, gl, "moment")?,
            contiguous_f32(p, pl, "moment")?,
        );
        let s = contiguous_f32_mut(s, sl, "moment")?;
        let (a, b, wd) = (self.a as f32, self.b as f32, self.weight_decay as f32);
        let decay = self.weight_decay != 0.0;
        for ((s, &g), &p) in s.iter_mut().zip(g).zip(p) {
            let d = if decay { g + (p * wd + 0.0) } else { g };
            let d = if self.square { d * d } else { d };
            *s = (*s * a + 0.0) + (d * b + 0.0);
        }
        Ok(())
    }
}

/// `p ← p − lr·buf`: the SGD step from its momentum buffer.
pub fn sgd_apply(p: &Var, buf: &Tensor, lr: f64) -> Result<()> {
    let step = Apply::Sgd { lr };
    if fast(&[p.as_tensor(), buf]) {
        // The third operand is unused by SGD; `buf` stands in for it.
        return p.as_tensor().inplace_op3(buf, buf, &step);
    }
    p.set(&(p.as_tensor() - (buf * lr)?)?)
}

/// `p ← p − c·m / (√v·(1/√bc2) + eps)` with `c` = lr / bc1: Adam's step from its moments.
pub fn adam_apply(
    p: &Var,
    m: &Tensor,
    v: &Tensor,
    lr_over_bc1: f64,
    sqrt_bc2: f64,
    eps: f64,
) -> Result<()> {
    let step = Apply::Adam {
        c: lr_over_bc1,
        sqrt_bc2,
        eps,
    };
    if fast(&[p.as_tensor(), m, v]) {
        return p.as_tensor().inplace_op3(m, v, &step);
    }
    let denom = ((v.sqrt()? / sqrt_bc2)? + eps)?;
    p.set(&(p.as_tensor() - ((m / denom)? * lr_over_bc1)?)?)
}

#[derive(Clone, Copy, Debug)]
enum Apply {
    Sgd { lr: f64 },
    Adam { c: f64, sqrt_bc2: f64, eps: f64 },
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "optimizer-step"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let (m, v) = (
            contiguous_f32(m, ml, "step")?,
            contiguous_f32(v, vl, "step")?,
        );
        let p = contiguous_f32_mut(p, pl, "step")?;
        match *self {
            Apply::Sgd { lr } => {
                let lr = lr as f32;
                for (p, &b) in p.iter_mut().zip(m) {
                    *p -= b * lr + 0.0;
                }
            }
            Apply::Adam { c, sqrt_bc2, eps } => {
                let (c, inv, eps) = (c as f32, (1.0 / sqrt_bc2) as f32, eps as f32);
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    let denom = (v.sqrt() * inv + 0.0) * 1.0 + eps;
                    *p -= (m / denom) * c + 0.0;
                }
            }
        }
        Ok(())
    }
}

/// The in-place path: contiguous f32 tensors of one shape on the CPU.
fn fast(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| {
        t.device().is_cpu()
            && t.dtype() == DType::F32
            && t.is_contiguous()
            && t.shape() == ts[0].shape()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn randn(seed: u64, n: usize) -> Tensor {
        let vals: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 2001) as f32 / 1000.0) - 1.0)
            .collect();
        Tensor::from_vec(vals, n, &Device::Cpu).unwrap()
    }

    /// The reference: the same update as candle ops on non-contiguous views (so `fast` is
    /// false and the candle path runs).
    fn strided(t: &Tensor) -> Tensor {
        Tensor::stack(&[t, t], 1)
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
    }

    #[test]
    fn in_place_updates_equal_candle_ops_bit_for_bit() {
        let n = 1003;
        for (square, wd) in [(false, 1e-4), (true, 1e-4), (false, 0.0)] {
            let (g, p) = (randn(1, n), randn(2, n));
            let fused = Var::from_tensor(&randn(3, n)).unwrap();
            let reference = Var::from_tensor(&strided(&randn(3, n))).unwrap();
            assert!(!fast(&[&strided(&g)]), "the reference takes candle's path");
            let m = Moment {
                a: 0.9,
                b: 0.1,
                weight_decay: wd,
                square,
            };
            for _ in 0..3 {
                moment(&fused, &g, &p, m).unwrap();
                moment(&reference, &strided(&g), &strided(&p), m).unwrap();
            }
            let (a, b): (Vec<f32>, Vec<f32>) = (
                fused.as_tensor().to_vec1().unwrap(),
                reference.as_tensor().to_vec1().unwrap(),
            );
            assert_eq!(a, b, "square {square}, wd {wd}");
        }

        let (m, v) = (randn(4, n), randn(5, n).abs().unwrap());
        let fused = Var::from_tensor(&randn(6, n)).unwrap();
        let reference = Var::from_tensor(&strided(&randn(6, n))).unwrap();
        adam_apply(&fused, &m, &v, 1e-3 / 0.19, 0.0019f64.sqrt(), 1e-8).unwrap();
        adam_apply(
            &reference,
            &strided(&m),
            &strided(&v),
            1e-3 / 0.19,
            0.0019f64.sqrt(),
            1e-8,
        )
        .unwrap();
        sgd_apply(&fused, &m, 0.1).unwrap();
        sgd_apply(&reference, &strided(&m), 0.1).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            fused.as_tensor().to_vec1().unwrap(),
            reference.as_tensor().to_vec1().unwrap(),
        );
        assert_eq!(a, b);
    }
}
