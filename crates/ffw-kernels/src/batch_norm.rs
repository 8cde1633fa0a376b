//! Training-mode batch normalisation as one fused op with its own backward. Composed from
//! candle ops it needs reductions over (N, H, W), which candle runs element by element; this
//! was the largest cost of a vanilla step after the convolutions.
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{contiguous_f32, output_f32, sum_f64};

/// Sums per-channel values over the ranks of a data-parallel group, in a fixed order, the same
/// result on every rank. Given one, training-mode BatchNorm normalises with the statistics of
/// the group's whole global batch and back-propagates through them (synchronised BatchNorm).
pub trait GroupSum: Send + Sync {
    fn sum(&self, values: &[f64]) -> Result<Vec<f64>>;
}

/// `y = (x − μ_B) / sqrt(σ²_B + eps) · weight + bias` with batch statistics over (N, H, W) of
/// `x` `[N, C, H, W]`, or over the global batch of `sync`'s group. Returns `y`, the
/// (detached) mean and biased variance `[C]` it normalised with, and the number of values per
/// channel they are over.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    sync: Option<&Arc<dyn GroupSum>>,
) -> Result<(Tensor, Tensor, Tensor, usize)> {
    if !(x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4) {
        return reference(x, weight, bias, eps, sync);
    }
    let x = x.contiguous()?;
    let c = x.dim(1)?;
    // The statistics once, in f64, for the forward and the backward pass alike.
    let stats = x.apply_op1_no_bwd(&Stats {
        sync: sync.cloned(),
    })?;
    let all = stats.to_vec1::<f64>()?;
    let (mean, var, count) = (
        all[..c].to_vec(),
        all[c..2 * c].to_vec(),
        all[2 * c] as usize,
    );
    let y = x.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        BatchNormTrain {
            eps,
            mean,
            var,
            count,
            sync: sync.cloned(),
        },
    )?;
    let stats = stats.to_dtype(DType::F32)?;
    Ok((y, stats.narrow(0, 0, c)?, stats.narrow(0, c, c)?, count))
}

/// The same computation from candle ops, for other devices (GPUs, synchronised ones too) and
/// as the tests' reference.
pub fn reference(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    sync: Option<&Arc<dyn GroupSum>>,
) -> Result<(Tensor, Tensor, Tensor, usize)> {
    let dims = [0, 2, 3];
    let local = x.elem_count() / x.dim(1)?;
    // Per-channel means over the batch, or over the group's global batch.
    type MeanOf<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;
    let (mean_of, count): (MeanOf, f64) = match sync {
        None => (
            Box::new(|t: &Tensor| t.mean_keepdim(dims.as_slice())),
            local as f64,
        ),
        Some(g) => {
            let count = g.sum(&[local as f64])?[0];
            (
                Box::new(move |t: &Tensor| {
                    sum_over_group(&t.sum_keepdim(dims.as_slice())?, g)? / count
                }),
                count,
            )
        }
    };
    let mean = mean_of(x)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = mean_of(&centred.sqr()?)?;
    let shape = (1, (), 1, 1);
    let y = centred
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&weight.reshape(shape)?)?
        .broadcast_add(&bias.reshape(shape)?)?;
    Ok((
        y,
        mean.flatten_all()?.detach(),
        var.flatten_all()?.detach(),
        count as usize,
    ))
}

/// `t` summed over `group`'s ranks, on `t`'s device, and differentiable: the gradient that
/// reaches `t` is the group's sum of the gradients of the total, as every rank's loss depends
/// on every rank's `t` through it.
fn sum_over_group(t: &Tensor, group: &Arc<dyn GroupSum>) -> Result<Tensor> {
    let total = host_group_sum(&t.detach(), group.as_ref())?;
    let through = t.apply_op1(GradSumOverGroup(group.clone()))?;
    // `through − through` is exactly 0, so the value is exactly `total`, the same bits on
    // every rank; the gradient flows through the identity op.
    (&through - through.detach())? + total
}

/// `t`'s sum over the group, added on the host in f64, in `t`'s dtype and on its device.
fn host_group_sum(t: &Tensor, group: &dyn GroupSum) -> Result<Tensor> {
    let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Tensor::from_vec(group.sum(&values)?, t.shape(), &candle_core::Device::Cpu)?
        .to_dtype(t.dtype())?
        .to_device(t.device())
}

/// The identity, whose backward sums the gradient over the group.
struct GradSumOverGroup(Arc<dyn GroupSum>);

/// The op's input must be a whole buffer: the identity copies storage as it is.
fn whole(l: &Layout) -> Result<()> {
    if !(l.is_contiguous() && l.start_offset() == 0) {
        candle_core::bail!("sum over the group: expected a fresh contiguous tensor");
    }
    Ok(())
}

impl CustomOp1 for GradSumOverGroup {
    fn name(&self) -> &'static str {
        "ffw-grad-sum-over-group"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        whole(l)?;
        Ok((s.try_clone(l)?, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        whole(l)?;
        Ok((s.try_clone(l)?, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(host_group_sum(grad, self.0.as_ref())?))
    }
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

/// Per-channel mean and biased variance of `x` `[n, c, hw]`, over the group's global batch
/// with `sync` (the mean first, then the squares about it: no cancellation); and the values
/// per channel they are over.
fn mean_var(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    sync: Option<&dyn GroupSum>,
) -> Result<(Vec<f64>, Vec<f64>, f64)> {
    let total = |sums: Vec<f64>| match sync {
        Some(g) => g.sum(&sums),
        None => Ok(sums),
    };
    let mut sums = channel_sums(x, x, (n, c, hw), |_, a, _| a as f64);
    sums.push((n * hw) as f64);
    let sums = total(sums)?;
    let m = sums[c];
    let mean: Vec<f64> = sums[..c].iter().map(|s| s / m).collect();
    let squares = channel_sums(x, x, (n, c, hw), |ch, a, _| (a as f64 - mean[ch]).powi(2));
    let var = total(squares)?.iter().map(|s| s / m).collect();
    Ok((mean, var, m))
}

fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    Ok((n, c, h * w))
}

/// `x → [2·C + 1]`: batch mean and biased variance (of the group's global batch with `sync`),
/// then the values per channel.
struct Stats {
    sync: Option<Arc<dyn GroupSum>>,
}

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        "ffw-bn-stats"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = dims(l)?;
        let x = contiguous_f32(s, l, "batch_norm")?;
        let (mean, var, count) = mean_var(x, (n, c, hw), self.sync.as_deref())?;
        Ok((
            CpuStorage::F64([mean, var, vec![count]].concat()),
            Shape::from(2 * c + 1),
        ))
    }
}

struct BatchNormTrain {
    eps: f64,
    mean: Vec<f64>,
    var: Vec<f64>,
    /// Values per channel of the statistics (the global batch's with `sync`).
    count: usize,
    sync: Option<Arc<dyn GroupSum>>,
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
            count: self.count,
            sync: self.sync.clone(),
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

/// `(x, weight, dy) → [dweight; dbias; dx]` flattened. With `sync`, dweight and dbias are
/// this rank's (the group sums parameter gradients afterwards) and dx takes the group's sums
/// of dy and dy·(x − μ): every rank's loss depends on every rank's samples through μ and σ².
struct BatchNormBackward {
    eps: f64,
    mean: Vec<f64>,
    var: Vec<f64>,
    count: usize,
    sync: Option<Arc<dyn GroupSum>>,
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
        let mut out = output_f32(2 * c + x.len());
        let (head, dx) = out.split_at_mut(2 * c);
        for ch in 0..c {
            head[ch] = (sum_dy_xc[ch] * invstd[ch]) as f32;
            head[c + ch] = sum_dy[ch] as f32;
        }
        let (sum_dy, sum_dy_xc) = match &self.sync {
            Some(g) => {
                let all = g.sum(&[sum_dy, sum_dy_xc].concat())?;
                (all[..c].to_vec(), all[c..].to_vec())
            }
            None => (sum_dy, sum_dy_xc),
        };
        let m = self.count as f64;
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
        let ours =
            batch_norm_train(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5, None).unwrap();
        let refr = reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5, None).unwrap();
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

    /// Two threads sharing sums: the ranks of a data-parallel group.
    struct Pair {
        slots: std::sync::Mutex<[Vec<f64>; 2]>,
        barrier: std::sync::Barrier,
    }

    struct Rank(Arc<Pair>, usize);

    impl GroupSum for Rank {
        fn sum(&self, values: &[f64]) -> Result<Vec<f64>> {
            self.0.slots.lock().unwrap()[self.1] = values.to_vec();
            self.0.barrier.wait();
            let sum = {
                let s = self.0.slots.lock().unwrap();
                s[0].iter().zip(&s[1]).map(|(a, b)| a + b).collect()
            };
            self.0.barrier.wait();
            Ok(sum)
        }
    }

    /// Each half of a batch normalised on its own rank with synchronised statistics gives the
    /// whole batch's output, statistics and input gradient; the halves' weight and bias
    /// gradients sum to the whole batch's.
    #[test]
    fn two_synchronised_halves_normalise_like_the_whole_batch() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut v = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
            (0..n).map(|_| rng.gen_range(lo..hi)).collect()
        };
        let (x, proj) = (v(6 * 3 * 16, -2.0, 3.0), v(6 * 3 * 16, -1.0, 1.0));
        let (w, b) = (v(3, 0.5, 1.5), v(3, -1.0, 1.0));
        let whole = normalise(&x, &proj, &w, &b, 0..6, None, true);
        // The fused CPU op, then the candle-op path that GPUs take.
        for kernel in [true, false] {
            let pair = Arc::new(Pair {
                slots: Default::default(),
                barrier: std::sync::Barrier::new(2),
            });
            let halves: Vec<Normalised> = [0..2, 2..6]
                .into_iter()
                .enumerate()
                .map(|(r, rows)| {
                    let sync: Arc<dyn GroupSum> = Arc::new(Rank(pair.clone(), r));
                    let (x, proj, w, b) = (x.clone(), proj.clone(), w.clone(), b.clone());
                    std::thread::spawn(move || {
                        normalise(&x, &proj, &w, &b, rows, Some(sync), kernel)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect();
            let close = |a: &[f32], b: &[f32]| {
                assert_eq!(a.len(), b.len());
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0., f32::max);
                assert!(d < 1e-5, "kernel {kernel}: differs by {d}");
            };
            let joined = |f: fn(&Normalised) -> &[f32]| -> Vec<f32> {
                halves.iter().flat_map(|h| f(h).to_vec()).collect()
            };
            close(&joined(|h| &h.y), &whole.y);
            close(&joined(|h| &h.grads[0]), &whole.grads[0]);
            for h in &halves {
                close(&h.mean, &whole.mean);
                close(&h.var, &whole.var);
                assert_eq!(h.count, 6 * 16);
            }
            for p in 1..3 {
                let sum: Vec<f32> = halves[0].grads[p]
                    .iter()
                    .zip(&halves[1].grads[p])
                    .map(|(a, b)| a + b)
                    .collect();
                close(&sum, &whole.grads[p]);
            }
        }
    }

    struct Normalised {
        y: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        count: usize,
        /// Of ⟨y, proj⟩, for x, weight and bias.
        grads: [Vec<f32>; 3],
    }

    /// BatchNorm of the samples `rows` of `x` `[6, 3, 4, 4]`, on the fused op (`kernel`) or
    /// the candle-op path.
    fn normalise(
        x: &[f32],
        proj: &[f32],
        w: &[f32],
        b: &[f32],
        rows: std::ops::Range<usize>,
        sync: Option<Arc<dyn GroupSum>>,
        kernel: bool,
    ) -> Normalised {
        let cut = |a: &[f32]| {
            let per = 3 * 16;
            Tensor::from_slice(
                &a[rows.start * per..rows.end * per],
                (rows.len(), 3, 4, 4),
                &Device::Cpu,
            )
            .unwrap()
        };
        let x = Var::from_tensor(&cut(x)).unwrap();
        let w = Var::from_slice(w, 3, &Device::Cpu).unwrap();
        let b = Var::from_slice(b, 3, &Device::Cpu).unwrap();
        let (y, mean, var, count) = if kernel {
            batch_norm_train(&x, &w, &b, 1e-5, sync.as_ref()).unwrap()
        } else {
            reference(&x, &w, &b, 1e-5, sync.as_ref()).unwrap()
        };
        let g = y
            .mul(&cut(proj))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let grad = |v: &Var| flat(g.get(v.as_tensor()).unwrap());
        Normalised {
            y: flat(&y),
            mean: flat(&mean),
            var: flat(&var),
            count,
            grads: [grad(&x), grad(&w), grad(&b)],
        }
    }
}
