//! FFW's gate `g(x) = min(2σ(x), 1)` with the straight-through gradient of `2σ(x)`
//! (PROTOCOL §2), and the gated weight `w · g(m / T)` fused into one pass each way: as a
//! chain of candle ops it is fourteen allocating passes over every gated weight per step,
//! which dominated the FFW step of the MLP.
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{contiguous_f32, output_f32};

/// `g(x)` on any device: forward `min(2σ(x), 1)`, backward that of the unclamped `2σ(x)`.
pub fn gate(x: &Tensor) -> Result<Tensor> {
    let y = (candle_nn::ops::sigmoid(x)? * 2.0)?;
    let excess = (&y - 1.0)?.relu()?.detach();
    y - excess
}

/// `w · g(m / T)` where each entry of `m` gates `w.elem_count() / m.elem_count()` consecutive
/// weights (1: one gate per weight; a unit's fan-in: one gate per output unit). Gradients
/// reach `m` (and `w`, if tracked).
pub fn gated_weight(w: &Tensor, m: &Tensor, temperature: f64) -> Result<Tensor> {
    let (nw, nm) = (w.elem_count(), m.elem_count());
    if nm == 0 || nw % nm != 0 {
        bail!("gated weight: {nm} gates cannot split {nw} weights evenly");
    }
    if w.device().is_cpu() && w.dtype() == DType::F32 && m.dtype() == DType::F32 {
        w.contiguous()?
            .apply_op2(&m.contiguous()?, GatedWeight { temperature })
    } else {
        let mut shape = vec![1usize; w.rank()];
        shape[0] = nm;
        let g = gate(&(m / temperature)?)?;
        let g = if nm == nw { g } else { g.reshape(shape)? };
        w.broadcast_mul(&g)
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

struct GatedWeight {
    temperature: f64,
}

impl CustomOp2 for GatedWeight {
    fn name(&self) -> &'static str {
        "ffw-gated-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let w = contiguous_f32(s1, l1, "gated weight")?;
        let m = contiguous_f32(s2, l2, "gate")?;
        let per = w.len() / m.len();
        let inv_t = (1.0 / self.temperature) as f32;
        // Whole gate units per parallel chunk, ~4k weights each.
        let units = (4096 / per).max(1);
        let mut out = output_f32(w.len());
        out.par_chunks_mut(units * per)
            .zip(w.par_chunks(units * per))
            .enumerate()
            .for_each(|(chunk, (o, w))| {
                let first = chunk * units;
                for (u, (o, w)) in o.chunks_mut(per).zip(w.chunks(per)).enumerate() {
                    let g = (2.0 * sigmoid(m[first + u] * inv_t)).min(1.0);
                    o.iter_mut().zip(w).for_each(|(o, w)| *o = w * g);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        w: &Tensor,
        m: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gw = if w.track_op() {
            let g = gate(&(m.detach() / self.temperature)?)?;
            let g = if g.elem_count() == w.elem_count() {
                g.reshape(w.shape())?
            } else {
                let mut shape = vec![1usize; w.rank()];
                shape[0] = g.elem_count();
                g.reshape(shape)?
            };
            Some(grad.broadcast_mul(&g)?)
        } else {
            None
        };
        let gm = if m.track_op() {
            let prod = (&grad * w)?;
            Some(prod.apply_op2_no_bwd(
                &m.detach(),
                &GateGrad {
                    temperature: self.temperature,
                },
            )?)
        } else {
            None
        };
        Ok((gw, gm))
    }
}

/// `(grad · w, m) → dm`: `dm_i = Σ_{j in gate i} (grad · w)_j · 2σ(1 − σ) / T`, σ = σ(m_i/T).
struct GateGrad {
    temperature: f64,
}

impl CustomOp2 for GateGrad {
    fn name(&self) -> &'static str {
        "ffw-gated-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gw = contiguous_f32(s1, l1, "gated weight grad")?;
        let m = contiguous_f32(s2, l2, "gate")?;
        let per = gw.len() / m.len();
        let inv_t = (1.0 / self.temperature) as f32;
        let dm: Vec<f32> = m
            .par_iter()
            .zip(gw.par_chunks(per))
            .map(|(m, gw)| {
                let s = sigmoid(m * inv_t);
                gw.iter().sum::<f32>() * 2.0 * s * (1.0 - s) * inv_t
            })
            .collect();
        Ok((CpuStorage::F32(dm), l2.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_diff, projected_grads};
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    fn random(shape: &[usize], scale: f32, rng: &mut rand_chacha::ChaCha8Rng) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The fused op against the chain of candle ops, per weight and per unit, at several
    /// temperatures (gates past the clamp included: |m/T| up to 30).
    #[test]
    fn fused_gate_matches_candle_ops() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (w_shape, m_shape) in [
            (vec![16, 3, 3, 3], vec![16, 3, 3, 3]),
            (vec![16, 3, 3, 3], vec![16]),
            (vec![100, 2352], vec![100, 2352]),
            (vec![10, 100], vec![10]),
        ] {
            for t in [1.0, 0.1, 1e-3] {
                let w = Var::from_tensor(&random(&w_shape, 1.0, &mut rng)).unwrap();
                let m = Var::from_tensor(&random(&m_shape, 0.03, &mut rng)).unwrap();
                let up = random(&w_shape, 1.0, &mut rng);
                let fused = gated_weight(&w, &m, t).unwrap();
                let mut shape = vec![1usize; w_shape.len()];
                shape[0] = m_shape[0];
                let g = gate(&(m.as_tensor() / t).unwrap()).unwrap();
                let g = if m_shape.len() == 1 {
                    g.reshape(shape).unwrap()
                } else {
                    g
                };
                let reference = w.broadcast_mul(&g).unwrap();
                assert!(max_diff(&fused, &reference) < 1e-6, "forward T={t}");
                let (g1, g2) = projected_grads(&fused, &reference, &up);
                for v in [&w, &m] {
                    let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                    let scale = b
                        .abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    assert!(
                        max_diff(a, b) <= 1e-4 * scale.max(1.0),
                        "grad {w_shape:?}/{m_shape:?} T={t}"
                    );
                }
            }
        }
    }

    #[test]
    fn frozen_weights_get_no_gradient() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let w = random(&[4, 5], 1.0, &mut rng);
        let m = Var::zeros((4, 5), DType::F32, &Device::Cpu).unwrap();
        let y = gated_weight(&w, &m, 1.0).unwrap();
        assert!(max_diff(&y, &w) == 0.0, "g(0) = 1: the vanilla weights");
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&w).is_none());
        // d/dm of w·g(m) at m = 0: w · 2σ(0)(1 − σ(0)) = w / 2.
        let expected = (&w * 0.5).unwrap();
        assert!(max_diff(grads.get(&m).unwrap(), &expected) < 1e-7);
    }
}
