//! Image files read on demand: decoded (JPEG/PNG), resized to the model's square input with a
//! SIMD convolution resizer, and normalised per channel, a batch at a time in parallel. Only
//! the paths stay in memory, so a split of any size costs a few batches of pixels.
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::image_cache::ImageCache;

/// ImageNet's per-channel mean and std (RGB), as torchvision's pretrained models expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How a file becomes a model input: resized to `size`×`size` RGB, then
/// `(value / 255 - mean[c]) / std[c]` per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preparation {
    pub size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preparation {
    /// ImageNet normalisation at `size`×`size`.
    pub fn imagenet(size: u32) -> Self {
        Preparation {
            size,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// `[3, size, size]`.
    pub fn sample_shape(&self) -> Vec<usize> {
        vec![3, self.size as usize, self.size as usize]
    }

    pub fn sample_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Checks the size and std; an error names `data.<key>`.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 || self.size > 4096 {
            return Err(DataError::Invalid(format!(
                "data.image_size = {}: must be in 1..=4096",
                self.size
            )));
        }
        if let Some(s) = self.std.iter().find(|s| !s.is_finite() || **s <= 0.0) {
            return Err(DataError::Invalid(format!(
                "data.std: {s} is not a positive number"
            )));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::Invalid(format!("data.mean: {m} is not finite")));
        }
        Ok(())
    }
}

/// The images of a split, one file per sample, read when a batch asks for them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFiles {
    pub paths: Vec<PathBuf>,
    pub prep: Preparation,
    /// In augmented (training) passes, mirror each image left-right with probability 1/2.
    pub flip: bool,
    /// The resized images already in a cache, and each sample's row in it
    /// ([`crate::image_cache::cached`]); `None`: decode the files.
    pub cached: Option<(Arc<ImageCache>, Vec<usize>)>,
}

thread_local! {
    // The resizer keeps scratch buffers between calls: one per decoding thread.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// The file at `path` decoded to RGB and resized to `size`×`size` (HWC, u8). Antialiased
/// bilinear, as PIL's (and so torchvision's) `Resize` on images.
pub fn decode_resized(path: &Path, size: u32) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let rgb = image::load_from_memory(&bytes)
        .map_err(|e| DataError::format(path, format!("not a readable JPEG/PNG image: {e}")))?
        .into_rgb8();
    let (w, h) = rgb.dimensions();
    if (w, h) == (size, size) {
        return Ok(rgb.into_raw());
    }
    let src = Image::from_vec_u8(w, h, rgb.into_raw(), PixelType::U8x3)
        .map_err(|e| DataError::format(path, e.to_string()))?;
    let mut dst = Image::new(size, size, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
        .map_err(|e| DataError::format(path, format!("resizing to {size}x{size}: {e}")))?;
    Ok(dst.into_vec())
}

/// Resized RGB (HWC u8) into `out` as normalised CHW f32, mirrored left-right if `flip`.
pub fn normalise(rgb: &[u8], prep: &Preparation, flip: bool, out: &mut [f32]) {
    let side = prep.size as usize;
    let plane = side * side;
    for c in 0..3 {
        let scale = 1.0 / (255.0 * prep.std[c]);
        let shift = prep.mean[c] / prep.std[c];
        for row in 0..side {
            for col in 0..side {
                let src_col = if flip { side - 1 - col } else { col };
                let v = rgb[(row * side + src_col) * 3 + c] as f32;
                out[c * plane + row * side + col] = v * scale - shift;
            }
        }
    }
}

/// Whether sample `i` is mirrored in the augmented pass seeded `augment`: one SplitMix64
/// draw per (pass, sample), so the choice never depends on batch order or thread timing.
fn flipped(augment: u64, i: usize) -> bool {
    crate::seeds::sub_seed(
        augment ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        "flip",
    ) & 1
        == 1
}

impl ImageFiles {
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The files at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageFiles {
        ImageFiles {
            paths: indices.iter().map(|&i| self.paths[i].clone()).collect(),
            prep: self.prep.clone(),
            flip: self.flip,
            cached: self
                .cached
                .as_ref()
                .map(|(c, rows)| (c.clone(), indices.iter().map(|&i| rows[i]).collect())),
        }
    }

    /// The samples at `indices` as normalised CHW f32, sample after sample, decoded in
    /// parallel. `augment` (a training pass's seed) enables the random flip.
    pub fn load(&self, indices: &[usize], augment: Option<u64>) -> Result<Vec<f32>> {
        let len = self.prep.sample_len();
        let mut x = vec![0f32; indices.len() * len];
        x.par_chunks_mut(len)
            .zip(indices.par_iter())
            .try_for_each(|(out, &i)| {
                let flip = self.flip && augment.is_some_and(|s| flipped(s, i));
                match &self.cached {
                    Some((cache, rows)) => normalise(cache.image(rows[i]), &self.prep, flip, out),
                    None => {
                        let rgb = decode_resized(&self.paths[i], self.prep.size)?;
                        normalise(&rgb, &self.prep, flip, out)
                    }
                }
                Ok(())
            })?;
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
            .save(path)
            .unwrap();
    }

    #[test]
    fn a_constant_image_resizes_to_its_colour_and_normalises_per_channel() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("c.png");
        write_png(&png, 37, 23, |_, _| [255, 0, 51]);
        let files = ImageFiles {
            paths: vec![png],
            prep: Preparation::imagenet(8),
            flip: false,
            cached: None,
        };
        let x = files.load(&[0], None).unwrap();
        assert_eq!(x.len(), 3 * 64);
        for (c, v) in [1.0f32, 0.0, 0.2].iter().enumerate() {
            let want = (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            for got in &x[c * 64..(c + 1) * 64] {
                assert!((got - want).abs() < 1e-5, "channel {c}: {got} vs {want}");
            }
        }
    }

    /// PIL's antialiased bilinear resize (what torchvision's `Resize` runs), in f64 on one
    /// channel: per output pixel a triangle filter stretched by the scale, clipped to the
    /// image and renormalised; horizontal pass, then vertical.
    fn pil_bilinear(src: &[f64], w: usize, h: usize, size: usize) -> Vec<f64> {
        let weights = |n_in: usize, out: usize| -> Vec<(usize, f64)> {
            let scale = n_in as f64 / size as f64;
            let support = scale.max(1.0);
            let center = (out as f64 + 0.5) * scale;
            let lo = (center - support + 0.5).floor().max(0.0) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(n_in);
            let ws: Vec<(usize, f64)> = (lo..hi)
                .map(|i| {
                    (
                        i,
                        (1.0 - ((i as f64 - center + 0.5) / support).abs()).max(0.0),
                    )
                })
                .collect();
            let total: f64 = ws.iter().map(|w| w.1).sum();
            ws.into_iter().map(|(i, w)| (i, w / total)).collect()
        };
        let mut mid = vec![0.0; h * size];
        for y in 0..h {
            for x in 0..size {
                mid[y * size + x] = weights(w, x).iter().map(|&(i, k)| k * src[y * w + i]).sum();
            }
        }
        let mut out = vec![0.0; size * size];
        for y in 0..size {
            for x in 0..size {
                out[y * size + x] = weights(h, y)
                    .iter()
                    .map(|&(i, k)| k * mid[i * size + x])
                    .sum();
            }
        }
        out
    }

    fn pattern(x: u32, y: u32) -> [u8; 3] {
        [
            ((x * 37 + y * 11) % 256) as u8,
            ((x * x + 3 * y) % 256) as u8,
            (128 + (x as i32 - y as i32) * 2).clamp(0, 255) as u8,
        ]
    }

    #[test]
    fn decode_and_resize_match_pils_bilinear() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h, size) = (53u32, 41u32, 16usize);
        let png = dir.path().join("p.png");
        write_png(&png, w, h, pattern);
        let got = decode_resized(&png, size as u32).unwrap();
        for c in 0..3 {
            let src: Vec<f64> = (0..h)
                .flat_map(|y| (0..w).map(move |x| pattern(x, y)[c] as f64))
                .collect();
            let want = pil_bilinear(&src, w as usize, h as usize, size);
            for (k, want) in want.iter().enumerate() {
                let got = got[k * 3 + c] as f64;
                assert!(
                    (got - want).abs() <= 1.0,
                    "channel {c} pixel {k}: {got} vs {want}"
                );
            }
        }
        // A JPEG of a smooth image decodes to within a few levels of what was encoded.
        let smooth = |x: u32, y: u32| [(x * 4) as u8, (y * 4) as u8, 100];
        let jpg = dir.path().join("s.jpg");
        image::RgbImage::from_fn(48, 48, |x, y| image::Rgb(smooth(x, y)))
            .save(&jpg)
            .unwrap();
        let got = decode_resized(&jpg, 48).unwrap();
        for (k, px) in got.chunks(3).enumerate() {
            let want = smooth(k as u32 % 48, k as u32 / 48);
            for c in 0..3 {
                assert!(
                    (px[c] as i32 - want[c] as i32).abs() <= 6,
                    "{k}: {px:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn flips_mirror_rows_and_depend_only_on_the_pass_seed() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..16)
            .map(|k| {
                let p = dir.path().join(format!("{k}.png"));
                write_png(&p, 4, 4, |x, _| [(x * 60) as u8, 0, 0]);
                p
            })
            .collect();
        let files = ImageFiles {
            paths,
            prep: Preparation {
                size: 4,
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            flip: true,
            cached: None,
        };
        let all: Vec<usize> = (0..16).collect();
        let plain = files.load(&all, None).unwrap();
        let a = files.load(&all, Some(7)).unwrap();
        assert_eq!(a, files.load(&all, Some(7)).unwrap());
        let first_red = |x: &[f32], k: usize| x[k * 48];
        let n_flipped = (0..16)
            .filter(|&k| first_red(&a, k) != first_red(&plain, k))
            .count();
        assert!((3..=13).contains(&n_flipped), "{n_flipped} of 16 flipped");
        // A flipped sample is the mirror image of the plain one.
        let k = (0..16)
            .find(|&k| first_red(&a, k) != first_red(&plain, k))
            .unwrap();
        let row = |x: &[f32]| x[k * 48..k * 48 + 4].to_vec();
        let mut mirrored = row(&plain);
        mirrored.reverse();
        assert_eq!(row(&a), mirrored);
        // The same sample in another batch position flips the same way.
        assert_eq!(
            files.load(&[k], Some(7)).unwrap()[..48],
            a[k * 48..(k + 1) * 48]
        );
        assert_ne!(a, files.load(&all, Some(8)).unwrap());
    }

    #[test]
    fn a_missing_or_corrupt_image_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.jpg");
        std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
        let missing = dir.path().join("gone.png");
        for path in [bad, missing] {
            let files = ImageFiles {
                paths: vec![path.clone()],
                prep: Preparation::imagenet(4),
                flip: false,
                cached: None,
            };
            let msg = files.load(&[0], None).unwrap_err().to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
    }
}
