//! Training-time augmentation of vanilla batches (PROTOCOL §5, Corrupted CIFAR-10): a random
//! crop of the original size from the image padded on every side, then a random horizontal
//! flip, as torchvision's `RandomCrop(size, padding)` + `RandomHorizontalFlip()`. Each draw
//! comes from a stream keyed by the run's seed, the epoch and the batch, so a run is
//! reproducible and independent of the thread count.
use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// `[vanilla.augment]`; the default does nothing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Pixels of padding around each image before the random crop; 0 = no crop.
    pub crop_padding: usize,
    /// Flip each image left–right with probability ½.
    pub hflip: bool,
    /// Per-channel value of the padding in the dataset's (normalised) units: torchvision pads
    /// the raw image with black, which is `−mean/std` after normalisation (CIFAR-10:
    /// −2.4291, −2.4183, −2.2214). Empty = 0.
    pub fill: Vec<f32>,
}

impl AugmentConfig {
    pub fn is_off(&self) -> bool {
        self.crop_padding == 0 && !self.hflip
    }

    /// `x` `[b, c, h, w]` augmented with the draws of `(seed, epoch, batch)`.
    pub fn apply(&self, x: &Tensor, seed: u64, epoch: usize, batch: usize) -> Result<Tensor> {
        if self.is_off() {
            return Ok(x.clone());
        }
        let (b, c, _, _) = x.dims4()?;
        if !self.fill.is_empty() && self.fill.len() != c {
            candle_core::bail!(
                "vanilla.augment.fill has {} values for {c} channels",
                self.fill.len()
            );
        }
        let draws = self.draws(b, seed, epoch, batch);
        if x.device().is_cpu() {
            self.on_host(x, &draws)
        } else {
            self.on_device(x, &draws)
        }
    }

    /// Per image, the crop's offsets in the padded image and the flip, as torchvision draws
    /// them.
    fn draws(&self, images: usize, seed: u64, epoch: usize, batch: usize) -> Vec<Draw> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(((epoch as u64) << 32) | batch as u64);
        let p = self.crop_padding;
        (0..images)
            .map(|_| {
                let (dy, dx) = (rng.gen_range(0..=2 * p), rng.gen_range(0..=2 * p));
                let flip = self.hflip && rng.gen_bool(0.5);
                Draw { dy, dx, flip }
            })
            .collect()
    }

    fn on_host(&self, x: &Tensor, draws: &[Draw]) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let src = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; src.len()];
        let p = self.crop_padding;
        for ((img, dst), &Draw { dy, dx, flip }) in src
            .chunks_exact(c * h * w)
            .zip(out.chunks_exact_mut(c * h * w))
            .zip(draws)
        {
            for ch in 0..c {
                let fill = self.fill.get(ch).copied().unwrap_or(0.0);
                let plane = &img[ch * h * w..(ch + 1) * h * w];
                for r in 0..h {
                    let row = &mut dst[(ch * h + r) * w..(ch * h + r + 1) * w];
                    // Source row and column in the unpadded image, if inside it.
                    let sr = (r + dy).checked_sub(p).filter(|&v| v < h);
                    for (col, v) in row.iter_mut().enumerate() {
                        let col = if flip { w - 1 - col } else { col };
                        let sc = (col + dx).checked_sub(p).filter(|&v| v < w);
                        *v = match (sr, sc) {
                            (Some(sr), Some(sc)) => plane[sr * w + sc],
                            _ => fill,
                        };
                    }
                }
            }
        }
        Tensor::from_vec(out, (b, c, h, w), x.device())
    }

    /// The same crop and flip as two gathers from the padded batch on its device: the images
    /// never travel to the host, only the per-image row and column indices travel there.
    fn on_device(&self, x: &Tensor, draws: &[Draw]) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (p, dev) = (self.crop_padding, x.device());
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let fill: Vec<f32> = (0..c)
            .map(|ch| self.fill.get(ch).copied().unwrap_or(0.0))
            .collect();
        let padded = Tensor::from_vec(fill, (1, c, 1, 1), dev)?
            .broadcast_as((b, c, hp, wp))?
            .contiguous()?
            .slice_assign(&[0..b, 0..c, p..p + h, p..p + w], x)?;
        // Output row r of an image is padded row r + dy; column col is padded column
        // col + dx, or (w − 1 − col) + dx when the image is flipped.
        let rows: Vec<u32> = draws
            .iter()
            .flat_map(|d| (0..h).map(move |r| (r + d.dy) as u32))
            .collect();
        let cols: Vec<u32> = draws
            .iter()
            .flat_map(|d| {
                (0..w).map(move |col| (if d.flip { w - 1 - col } else { col } + d.dx) as u32)
            })
            .collect();
        let rows = Tensor::from_vec(rows, (b, 1, h, 1), dev)?
            .broadcast_as((b, c, h, wp))?
            .contiguous()?;
        let cols = Tensor::from_vec(cols, (b, 1, 1, w), dev)?
            .broadcast_as((b, c, h, w))?
            .contiguous()?;
        padded.gather(&rows, 2)?.gather(&cols, 3)
    }
}

/// One image's augmentation: crop offsets in the padded image, and the flip.
#[derive(Clone, Copy, Debug)]
struct Draw {
    dy: usize,
    dx: usize,
    flip: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn image() -> Tensor {
        let v: Vec<f32> = (0..2 * 3 * 5 * 6).map(|i| i as f32).collect();
        Tensor::from_vec(v, (2, 3, 5, 6), &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn off_by_default() {
        let x = image();
        let y = AugmentConfig::default().apply(&x, 1, 0, 0).unwrap();
        assert_eq!(values(&x), values(&y));
    }

    #[test]
    fn deterministic_per_seed_epoch_and_batch() {
        let cfg = AugmentConfig {
            crop_padding: 2,
            hflip: true,
            fill: vec![-1., -2., -3.],
        };
        let x = image();
        let run = |seed, epoch, batch| values(&cfg.apply(&x, seed, epoch, batch).unwrap());
        assert_eq!(run(3, 1, 2), run(3, 1, 2));
        assert_ne!(run(3, 1, 2), run(4, 1, 2));
        assert_ne!(run(3, 1, 2), run(3, 2, 2));
        assert_ne!(run(3, 1, 2), run(3, 1, 3));
    }

    /// Every output row is a shifted (and maybe mirrored) input row with fill at the ends,
    /// shifted by at most the padding; the crop and flip are shared by an image's channels.
    #[test]
    fn rows_are_shifted_or_mirrored_input_rows_or_fill() {
        let cfg = AugmentConfig {
            crop_padding: 2,
            hflip: true,
            fill: vec![-1., -2., -3.],
        };
        let x = image();
        let (mut flips, mut shifts) = (0, 0);
        for batch in 0..20 {
            let y = values(&cfg.apply(&x, 9, 0, batch).unwrap());
            for img in 0..2 {
                let mut seen = None;
                for ch in 0..3 {
                    let fill = -(ch as f32) - 1.0;
                    for r in 0..5 {
                        let row = &y[((img * 3 + ch) * 5 + r) * 6..][..6];
                        let inside: Vec<(usize, f32)> = row
                            .iter()
                            .copied()
                            .enumerate()
                            .filter(|(_, v)| *v != fill)
                            .collect();
                        let Some(&(c0, v0)) = inside.first() else {
                            continue;
                        };
                        // Input value v = ((img·3 + ch)·5 + sr)·6 + sc.
                        let (sr, sc) = ((v0 as usize / 6) % 5, v0 as usize % 6);
                        let flip = inside.len() > 1 && inside[1].1 < v0;
                        let shift = (r as isize - sr as isize, c0 as isize - sc as isize);
                        assert!(shift.0.abs() <= 2 && (flip || shift.1.abs() <= 2));
                        for (c, v) in &inside {
                            let step = if flip { -1.0 } else { 1.0 };
                            assert_eq!(*v, v0 + step * (*c - c0) as f32);
                        }
                        let key = (flip, shift.0);
                        assert_eq!(*seen.get_or_insert(key), key, "image {img}");
                        flips += flip as usize;
                        shifts += (shift != (0, 0)) as usize;
                    }
                }
            }
        }
        assert!(flips > 0 && shifts > 0);
    }

    /// The gathers a GPU runs give the host loop's values exactly (checked here on the CPU).
    #[test]
    fn the_device_path_equals_the_host_path() {
        let cfg = AugmentConfig {
            crop_padding: 2,
            hflip: true,
            fill: vec![-1., -2., -3.],
        };
        let x = image();
        for batch in 0..10 {
            let draws = cfg.draws(2, 5, 1, batch);
            let host = values(&cfg.on_host(&x, &draws).unwrap());
            assert_eq!(values(&cfg.on_device(&x, &draws).unwrap()), host);
            assert_eq!(values(&cfg.apply(&x, 5, 1, batch).unwrap()), host);
        }
    }

    #[test]
    fn a_fill_per_channel_is_checked() {
        let cfg = AugmentConfig {
            crop_padding: 1,
            hflip: false,
            fill: vec![0.0],
        };
        let err = cfg.apply(&image(), 0, 0, 0).unwrap_err().to_string();
        assert!(err.contains("vanilla.augment.fill"), "{err}");
    }
}
