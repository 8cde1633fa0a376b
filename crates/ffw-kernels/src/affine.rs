//! Per-channel affine maps with an optional ReLU, `y = act(x·scale[c] + shift[c])` on
//! `[N, C, …]`, and ReLU itself, as single ops with a single backward pass. Composed from
//! candle ops, a bias add, an inference-mode BatchNorm and a ReLU cost a full pass each
//! forward and, backward, several more (a zero-filled mask, a compare, a cast, a product, a
//! broadcast reduction), every one into a freshly allocated buffer.
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

use crate::storage::{contiguous_f32, output_f32, sum_f64};

/// What follows the affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
}

fn on_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// `max(x, 0)`; the gradient passes where the output is positive (PyTorch's convention).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if on_cpu(x) {
        x.contiguous()?.apply_op1(Relu)
    } else {
        x.relu()
    }
}

/// `act(x·scale[c] + shift[c])` for `x` `[N, C, …]` and `scale`, `shift` `[C]`; a missing
/// `scale` is 1. Gradients reach all three inputs.
pub fn channel_affine(
    x: &Tensor,
    scale: Option<&Tensor>,
    shift: &Tensor,
    act: Act,
) -> Result<Tensor> {
    let scale = match scale {
        Some(s) => s.clone(),
        None => Tensor::ones(shift.shape(), shift.dtype(), shift.device())?,
    };
    if on_cpu(x) && x.rank() >= 2 {
        x.contiguous()?.apply_op3(
            &scale.contiguous()?,
            &shift.contiguous()?,
            ChannelAffine { act },
        )
    } else {
        reference(x, &scale, shift, act)
    }
}

/// The same map from candle ops, for other devices and as the tests' reference.
pub fn reference(x: &Tensor, scale: &Tensor, shift: &Tensor, act: Act) -> Result<Tensor> {
    let mut shape = vec![1; x.rank()];
    shape[1] = x.dim(1)?;
    let y = x
        .broadcast_mul(&scale.reshape(shape.as_slice())?)?
        .broadcast_add(&shift.reshape(shape.as_slice())?)?;
    match act {
        Act::Identity => Ok(y),
        Act::Relu => y.relu(),
    }
}

/// Chunk of elements per rayon task for purely elementwise passes.
const CHUNK: usize = 1 << 14;

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "ffw-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "relu")?;
        let mut y = output_f32(x.len());
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(o, &v)| *o = v.max(0.0)));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(y, &ReluGrad)?))
    }
}

/// `(dy, y) → dy where y > 0, else 0`.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "ffw-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, y) = (
            contiguous_f32(s1, l1, "relu grad")?,
            contiguous_f32(s2, l2, "relu output")?,
        );
        let mut out = output_f32(g.len());
        out.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
            .for_each(|(o, (g, y))| {
                for ((o, &g), &y) in o.iter_mut().zip(g).zip(y) {
                    *o = if y > 0.0 { g } else { 0.0 };
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `(N, C, inner)` of a `[N, C, …]` layout.
fn dims(l: &Layout) -> (usize, usize, usize) {
    let d = l.dims();
    (d[0], d[1], d[2..].iter().product())
}

struct ChannelAffine {
    act: Act,
}

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "ffw-channel-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, inner) = dims(l1);
        let (x, scale, shift) = (
            contiguous_f32(s1, l1, "channel affine")?,
            contiguous_f32(s2, l2, "channel scale")?,
            contiguous_f32(s3, l3, "channel shift")?,
        );
        if scale.len() != c || shift.len() != c {
            candle_core::bail!(
                "channel affine: {c} channels but {} scales, {} shifts",
                scale.len(),
                shift.len()
            );
        }
        let relu = self.act == Act::Relu;
        let mut y = output_f32(x.len());
        y.par_chunks_mut(c * inner)
            .zip(x.par_chunks(c * inner))
            .for_each(|(yi, xi)| {
                for ch in 0..c {
                    let (s, t) = (scale[ch], shift[ch]);
                    let rows = yi[ch * inner..][..inner]
                        .iter_mut()
                        .zip(&xi[ch * inner..][..inner]);
                    if relu {
                        rows.for_each(|(o, &v)| *o = (v * s + t).max(0.0));
                    } else {
                        rows.for_each(|(o, &v)| *o = v * s + t);
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = match self.act {
            Act::Relu => grad.contiguous()?.apply_op2_no_bwd(y, &ReluGrad)?,
            Act::Identity => grad.contiguous()?,
        };
        let c = scale.dim(0)?;
        let gx = if x.track_op() {
            let scale = scale.to_vec1::<f32>()?;
            Some(grad.apply_op1_no_bwd(&ScaleChannels { scale })?)
        } else {
            None
        };
        // Per-channel sums in a fixed order, so the result does not depend on the threads.
        let gs = if scale.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &ChannelDot)?.reshape(c)?)
        } else {
            None
        };
        let gt = if shift.track_op() {
            Some(grad.apply_op1_no_bwd(&ChannelSum)?.reshape(c)?)
        } else {
            None
        };
        Ok((gx, gs, gt))
    }
}

/// `dy → dy·scale[c]`.
struct ScaleChannels {
    scale: Vec<f32>,
}

impl CustomOp1 for ScaleChannels {
    fn name(&self) -> &'static str {
        "ffw-scale-channels"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, inner) = dims(l);
        let g = contiguous_f32(s, l, "channel affine grad")?;
        let mut out = output_f32(g.len());
        out.par_chunks_mut(c * inner)
            .zip(g.par_chunks(c * inner))
            .for_each(|(o, g)| {
                for (ch, &s) in self.scale.iter().enumerate() {
                    let rows = o[ch * inner..][..inner]
                        .iter_mut()
                        .zip(&g[ch * inner..][..inner]);
                    rows.for_each(|(o, &g)| *o = g * s);
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// Σ over (N, …) per channel of `a` (or of `a·b`), in f64, channels in parallel.
fn channel_sums(a: &[f32], b: Option<&[f32]>, l: &Layout) -> Vec<f32> {
    let (n, c, inner) = dims(l);
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let acc: f64 = (0..n)
                .map(|i| {
                    let a = &a[(i * c + ch) * inner..][..inner];
                    match b {
                        Some(b) => sum_f64(a, &b[(i * c + ch) * inner..][..inner], |u, v| {
                            u as f64 * v as f64
                        }),
                        None => sum_f64(a, a, |u, _| u as f64),
                    }
                })
                .sum();
            acc as f32
        })
        .collect()
}

/// `dy → Σ dy` per channel.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "ffw-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(s, l, "channel sum")?;
        let out = channel_sums(g, None, l);
        let c = out.len();
        Ok((CpuStorage::F32(out), Shape::from(c)))
    }
}

/// `(x, dy) → Σ x·dy` per channel.
struct ChannelDot;

impl CustomOp2 for ChannelDot {
    fn name(&self) -> &'static str {
        "ffw-channel-dot"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "channel dot")?;
        let g = contiguous_f32(s2, l2, "channel dot grad")?;
        let out = channel_sums(x, Some(g), l1);
        let c = out.len();
        Ok((CpuStorage::F32(out), Shape::from(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    fn var(shape: &[usize], rng: &mut rand_chacha::ChaCha8Rng) -> Var {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// Forward and the three gradients against the candle composition, for both
    /// activations, on a conv-shaped and a linear-shaped input.
    #[test]
    fn matches_the_candle_composition_forward_and_backward() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for shape in [vec![3, 4, 5, 6], vec![7, 5]] {
            let c = shape[1];
            let (x, s, t) = (
                var(&shape, &mut rng),
                var(&[c], &mut rng),
                var(&[c], &mut rng),
            );
            let proj = var(&shape, &mut rng);
            for act in [Act::Identity, Act::Relu] {
                let ours =
                    channel_affine(x.as_tensor(), Some(s.as_tensor()), t.as_tensor(), act).unwrap();
                let refr = reference(x.as_tensor(), s.as_tensor(), t.as_tensor(), act).unwrap();
                assert!(max_diff(&ours, &refr) < 1e-6);
                let grads = |y: &Tensor| {
                    (y * proj.as_tensor())
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap()
                };
                let (g1, g2) = (grads(&ours), grads(&refr));
                for v in [&x, &s, &t] {
                    let d = max_diff(
                        g1.get(v.as_tensor()).unwrap(),
                        g2.get(v.as_tensor()).unwrap(),
                    );
                    assert!(d < 1e-4, "{act:?} {shape:?}: gradient differs by {d}");
                }
            }
        }
    }

    #[test]
    fn relu_passes_the_gradient_only_where_the_output_is_positive() {
        let x = Var::new(&[-1.0f32, 0.0, 0.5, 2.0], &Device::Cpu).unwrap();
        let y = relu(x.as_tensor()).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [0.0, 0.0, 0.5, 2.0]);
        let w = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0], &Device::Cpu).unwrap();
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(
            g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            [0.0, 0.0, 3.0, 4.0]
        );
    }

    #[test]
    fn a_missing_scale_is_one_and_untracked_inputs_get_no_gradient() {
        let x = Var::new(&[[1.0f32, -2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let shift = Tensor::new(&[0.5f32, -0.5], &Device::Cpu).unwrap();
        let y = channel_affine(x.as_tensor(), None, &shift, Act::Identity).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), [[1.5, -2.5], [3.5, 3.5]]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(&shift).is_none());
        assert_eq!(
            g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap(),
            [[1.0, 1.0], [1.0, 1.0]]
        );
    }
}
