//! Training-mode batch normalisation as one fused op with its own backward. Composed from
//! candle ops it needs reductions over (N, H, W), which candle runs element by element; this
//! was the largest cost of a vanilla step after the convolutions.
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{contiguous_f32, output_f32, sum_f64};

/// `y = (x − μ_B) / sqrt(σ²_B + eps) · weight + bias` with batch statistics over (N, H, W) of
/// `x` `[N, C, H, W]`. Returns `y` and the (detached) batch mean and biased variance `[C]`.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !(x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4) {
        return reference(x, weight, bias, eps);
    }
    let x = x.contiguous()?;
    // The statistics once, in f64, for the forward and the backward pass alike.
    let stats = x.apply_op1_no_bwd(&Stats)?;
    let [mean, var]: [Vec<f64>; 2] = stats
        .to_vec2::<f64>()?
        .try_into()
        .map_err(|_| candle_core::Error::Msg("batch_norm: statistics are not [2, C]".into()))?;
    let y = x.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        BatchNormTrain { eps, mean, var },
    )?;
    let stats = stats.to_dtype(DType::F32)?;
    Ok((y, stats.get(0)?, stats.get(1)?))
}

/// The same computation from candle ops, for other devices and as the tests' reference.
pub fn reference(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dims = [0, 2, 3];
    let mean = x.mean_keepdim(dims.as_slice())?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(dims.as_slice())?;
    let shape = (1, (), 1, 1);
    let y = centred
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&weight.reshape(shape)?)?
        .broadcast_add(&bias.reshape(shape)?)?;
    Ok((y, mean.flatten_all()?.detach(), var.flatten_all()?.detach()))
}

/// Per-channel sums of `f(aᵢ, bᵢ)` over (N, H, W) of two `[N, C, H, W]` buffers.
fn channel_sums(
    a: &[f32],
    b: &[f32],
    (n, c, hw): (usize, usize, usize),
    f: impl Fn(usize, f32, f32) -> f64 + Sync,
) -> Vec<f64> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n)
                .map(|i| {
                    let off = (i * c + ch) * hw;
                    sum_f64(&a[off..off + hw], &b[off..off + hw], |u, v| f(ch, u, v))
                })
                .sum()
        })
        .collect()
}

fn mean_var(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
    let m = (n * hw) as f64;
    let mean: Vec<f64> = channel_sums(x, x, (n, c, hw), |_, a, _| a as f64)
        .iter()
        .map(|s| s / m)
        .collect();
    let var = channel_sums(x, x, (n, c, hw), |ch, a, _| (a as f64 - mean[ch]).powi(2))
        .iter()
        .map(|s| s / m)
        .collect();
    (mean, var)
}

fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    Ok((n, c, h * w))
}

/// `x → [2, C]`: batch mean and biased variance.
struct Stats;

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        "ffw-bn-stats"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = dims(l)?;
        let (mean, var) = mean_var(contiguous_f32(s, l, "batch_norm")?, n, c, hw);
        Ok((CpuStorage::F64([mean, var].concat()), Shape::from((2, c))))
    }
}

struct BatchNormTrain {
    eps: f64,
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "ffw-bn-train"
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
        let (_, c, hw) = dims(l1)?;
        let (x, w, b) = (
            contiguous_f32(s1, l1, "batch_norm")?,
            contiguous_f32(s2, l2, "batch_norm")?,
            contiguous_f32(s3, l3, "batch_norm")?,
        );
        let (mean, var) = (&self.mean, &self.var);
        let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
            .map(|ch| {
                let s = w[ch] as f64 / (var[ch] + self.eps).sqrt();
                (s as f32, (b[ch] as f64 - mean[ch] * s) as f32)
            })
            .unzip();
        let mut y = output_f32(x.len());
        y.par_chunks_mut(c * hw)
            .zip(x.par_chunks(c * hw))
            .for_each(|(yi, xi)| {
                for ch in 0..c {
                    for (o, &v) in yi[ch * hw..][..hw].iter_mut().zip(&xi[ch * hw..][..hw]) {
                        *o = v * scale[ch] + shift[ch];
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // [2 + N·C·H·W]: dweight and dbias per channel, then dx.
        let backward = BatchNormBackward {
            eps: self.eps,
            mean: self.mean.clone(),
            var: self.var.clone(),
        };
        let packed = x.apply_op3_no_bwd(w, &grad, &backward)?;
        let c = w.dim(0)?;
        let dw = packed.narrow(0, 0, c)?;
        let db = packed.narrow(0, c, c)?;
        let dx = packed
            .narrow(0, 2 * c, x.elem_count())?
            .reshape(x.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `(x, weight, dy) → [dweight; dbias; dx]` flattened.
struct BatchNormBackward {
    eps: f64,
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "ffw-bn-train-backward"
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
        let (n, c, hw) = dims(l1)?;
        let (x, w, dy) = (
            contiguous_f32(s1, l1, "batch_norm")?,
            contiguous_f32(s2, l2, "batch_norm")?,
            contiguous_f32(s3, l3, "batch_norm")?,
        );
        let mean = &self.mean;
        let invstd: Vec<f64> = self
            .var
            .iter()
            .map(|v| 1.0 / (v + self.eps).sqrt())
            .collect();
        let sum_dy = channel_sums(dy, dy, (n, c, hw), |_, g, _| g as f64);
        // Σ dy·(x − μ) per channel.
        let sum_dy_xc = channel_sums(x, dy, (n, c, hw), |ch, a, g| {
            (a as f64 - mean[ch]) * g as f64
        });
        let m = (n * hw) as f64;
        let mut out = output_f32(2 * c + x.len());
        let (head, dx) = out.split_at_mut(2 * c);
        for ch in 0..c {
            head[ch] = (sum_dy_xc[ch] * invstd[ch]) as f32;
            head[c + ch] = sum_dy[ch] as f32;
        }
        // dx = w·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))
        let coef: Vec<(f32, f32, f32, f32)> = (0..c)
            .map(|ch| {
                let k = w[ch] as f64 * invstd[ch];
                let a = sum_dy[ch] / m;
                let b = sum_dy_xc[ch] * invstd[ch] * invstd[ch] / m;
                (k as f32, a as f32, b as f32, mean[ch] as f32)
            })
            .collect();
        dx.par_chunks_mut(c * hw).enumerate().for_each(|(i, dxi)| {
            for (ch, &(k, a, b, mu)) in coef.iter().enumerate() {
                let off = (i * c + ch) * hw;
                for ((o, &g), &v) in dxi[ch * hw..][..hw]
                    .iter_mut()
                    .zip(&dy[off..off + hw])
                    .zip(&x[off..off + hw])
                {
                    *o = k * (g - a - (v - mu) * b);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(2 * c + x.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_diff, projected_grads};
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    #[test]
    fn forward_statistics_and_gradients_match_the_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut rand = |shape: &[usize], lo: f32, hi: f32| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
            Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
        };
        let (x, w, b) = (
            rand(&[4, 3, 5, 6], -2.0, 3.0),
            rand(&[3], 0.5, 1.5),
            rand(&[3], -1.0, 1.0),
        );
        let proj = rand(&[4, 3, 5, 6], -1.0, 1.0);
        let ours = batch_norm_train(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let refr = reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        assert!(max_diff(&ours.0, &refr.0) < 1e-5);
        assert!(max_diff(&ours.1, &refr.1) < 1e-5);
        assert!(max_diff(&ours.2, &refr.2) < 1e-5);
        let (g1, g2) = projected_grads(&ours.0, &refr.0, proj.as_tensor());
        for v in [&x, &w, &b] {
            let d = max_diff(
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-4, "gradient differs by {d}");
        }
    }
}
