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
        let (b, c, h, w) = x.dims4()?;
        if !self.fill.is_empty() && self.fill.len() != c {
            candle_core::bail!(
                "vanilla.augment.fill has {} values for {c} channels",
                self.fill.len()
            );
        }
        let src = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; src.len()];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(((epoch as u64) << 32) | batch as u64);
        let p = self.crop_padding;
        for (img, dst) in src
            .chunks_exact(c * h * w)
            .zip(out.chunks_exact_mut(c * h * w))
        {
            // Offsets of the crop in the padded image, then the flip, as torchvision draws them.
            let (dy, dx) = (rng.gen_range(0..=2 * p), rng.gen_range(0..=2 * p));
            let flip = self.hflip && rng.gen_bool(0.5);
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
