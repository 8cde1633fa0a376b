//! The corruptions of CIFAR-10-C (Hendrycks & Dietterich, `make_cifar_c.py`, as copied into
//! LfF's `data/corrupted_cifar10_protocol.py`) that LfF's "type 0" Corrupted CIFAR-10 ties
//! to the ten classes, with CIFAR-10-C's per-severity parameters. Each works on one 32×32
//! image in CIFAR-10's planar layout (R, G, B planes) and returns the same layout; every
//! random draw comes from the generator it is given. Where the reference calls a library
//! (ImageMagick's motion blur, OpenCV's Canny, PIL's box resize), the operation is written
//! out here following that library; the frost photographs are replaced by a procedural
//! texture (docs/DEVIATIONS.md).
mod colour;
mod digital;
mod elastic;
mod filters;
mod spatter;
mod weather;

use rand_chacha::ChaCha8Rng;

use crate::cifar10::{IMAGE_LEN, SIDE};

/// Pixels of one plane.
const PLANE: usize = SIDE * SIDE;

/// Severities of CIFAR-10-C.
pub const SEVERITIES: std::ops::RangeInclusive<usize> = 1..=5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    Snow,
    Frost,
    Fog,
    Brightness,
    Contrast,
    Spatter,
    Elastic,
    Jpeg,
    Pixelate,
    Saturate,
}

/// LfF's "type 0" list: corruption `k` is the one aligned with class `k`.
pub const TYPE0: [Corruption; 10] = [
    Corruption::Snow,
    Corruption::Frost,
    Corruption::Fog,
    Corruption::Brightness,
    Corruption::Contrast,
    Corruption::Spatter,
    Corruption::Elastic,
    Corruption::Jpeg,
    Corruption::Pixelate,
    Corruption::Saturate,
];

/// One image as three planes of `[0, 1]` values, the reference's `np.array(x) / 255.`.
type Planes = [Vec<f32>; 3];

impl Corruption {
    pub fn name(self) -> &'static str {
        match self {
            Corruption::Snow => "snow",
            Corruption::Frost => "frost",
            Corruption::Fog => "fog",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
            Corruption::Spatter => "spatter",
            Corruption::Elastic => "elastic_transform",
            Corruption::Jpeg => "jpeg_compression",
            Corruption::Pixelate => "pixelate",
            Corruption::Saturate => "saturate",
        }
    }

    /// `image` (planar RGB, [`IMAGE_LEN`] bytes) corrupted at `severity` (1..=5).
    /// Panics on another length or severity: callers validate both.
    pub fn apply(self, image: &[u8], severity: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
        assert_eq!(image.len(), IMAGE_LEN, "a CIFAR-10 image");
        assert!(SEVERITIES.contains(&severity), "severity {severity}");
        let s = severity - 1;
        match self {
            Corruption::Jpeg => return digital::jpeg(image, s),
            Corruption::Pixelate => return digital::pixelate(image, s),
            _ => {}
        }
        let x = planes(image);
        let out = match self {
            Corruption::Snow => weather::snow(x, s, rng),
            Corruption::Frost => weather::frost(x, s, rng),
            Corruption::Fog => weather::fog(x, s, rng),
            Corruption::Brightness => colour::brightness(x, s),
            Corruption::Contrast => colour::contrast(x, s),
            Corruption::Spatter => spatter::spatter(x, s, rng),
            Corruption::Elastic => elastic::elastic(x, s, rng),
            Corruption::Saturate => colour::saturate(x, s),
            Corruption::Jpeg | Corruption::Pixelate => unreachable!("returned above"),
        };
        to_bytes(&out)
    }
}

fn planes(image: &[u8]) -> Planes {
    std::array::from_fn(|c| {
        image[c * PLANE..(c + 1) * PLANE]
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect()
    })
}

/// `np.clip(x, 0, 1) * 255` then `astype(np.uint8)`: truncation, as LfF stores the images.
fn to_bytes(x: &Planes) -> Vec<u8> {
    x.iter()
        .flat_map(|p| p.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8))
        .collect()
}

/// OpenCV's `COLOR_RGB2GRAY`.
fn grey(x: &Planes) -> Vec<f32> {
    (0..PLANE)
        .map(|p| 0.299 * x[0][p] + 0.587 * x[1][p] + 0.114 * x[2][p])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A fixed test image: smooth colour gradients with a bright square and a dark bar.
    fn picture() -> Vec<u8> {
        let mut img = vec![0u8; IMAGE_LEN];
        for y in 0..SIDE {
            for x in 0..SIDE {
                let p = y * SIDE + x;
                let square = (8..20).contains(&x) && (10..22).contains(&y);
                let bar = (24..28).contains(&x);
                let base = [40 + 5 * x, 60 + 4 * y, 150 - 2 * x - y];
                for (c, b) in base.into_iter().enumerate() {
                    img[c * PLANE + p] = if square {
                        (200 + 10 * c) as u8
                    } else if bar {
                        20
                    } else {
                        b as u8
                    };
                }
            }
        }
        img
    }

    fn run(c: Corruption, severity: usize, seed: u64) -> Vec<u8> {
        c.apply(&picture(), severity, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    fn mean(v: &[u8]) -> f64 {
        v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
    }

    fn std(v: &[u8]) -> f64 {
        let m = mean(v);
        (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    /// Mean HSV saturation.
    fn saturation(v: &[u8]) -> f64 {
        (0..PLANE)
            .map(|p| {
                let (r, g, b) = (v[p] as f64, v[PLANE + p] as f64, v[2 * PLANE + p] as f64);
                let max = r.max(g).max(b);
                if max == 0.0 {
                    0.0
                } else {
                    (max - r.min(g).min(b)) / max
                }
            })
            .sum::<f64>()
            / PLANE as f64
    }

    #[test]
    fn every_corruption_is_deterministic_per_seed_and_keeps_the_shape() {
        for c in TYPE0 {
            for severity in SEVERITIES {
                let a = run(c, severity, 11);
                assert_eq!(a.len(), IMAGE_LEN, "{}", c.name());
                assert_eq!(a, run(c, severity, 11), "{} severity {severity}", c.name());
            }
            assert_ne!(
                run(c, 5, 11),
                picture(),
                "{} left the image unchanged",
                c.name()
            );
        }
        // The random ones draw from the generator: another seed, another image.
        for c in [
            Corruption::Snow,
            Corruption::Frost,
            Corruption::Fog,
            Corruption::Spatter,
            Corruption::Elastic,
        ] {
            assert_ne!(run(c, 4, 1), run(c, 4, 2), "{}", c.name());
        }
    }

    /// Each family leaves its own mark on the fixed picture (mean 115, std 59) at the
    /// default severity.
    #[test]
    fn each_family_is_recognisable_by_a_statistic() {
        let original = picture();
        let (m0, s0, sat0) = (mean(&original), std(&original), saturation(&original));
        let at = |c| run(c, 5, 3);
        // Weather adds light: snow and frost brighten, fog brightens and flattens.
        assert!(mean(&at(Corruption::Snow)) > m0 + 15.0);
        assert!(mean(&at(Corruption::Frost)) > m0 + 5.0);
        assert!(std(&at(Corruption::Fog)) < 0.8 * s0);
        assert!(mean(&at(Corruption::Brightness)) > m0 + 40.0);
        assert!(std(&at(Corruption::Contrast)) < 0.2 * s0);
        // Mud spatter darkens some pixels towards brown and leaves the rest alone.
        let spatter = at(Corruption::Spatter);
        let changed = (0..IMAGE_LEN)
            .filter(|&p| spatter[p] != original[p])
            .count();
        assert!(changed > 30 && changed < IMAGE_LEN * 9 / 10, "{changed}");
        // Elastic moves pixels: the mean stays, the square's edges move.
        let elastic = at(Corruption::Elastic);
        assert!((mean(&elastic) - m0).abs() < 10.0);
        let moved = elastic
            .iter()
            .zip(&original)
            .filter(|(a, b)| a.abs_diff(**b) > 40)
            .count();
        assert!(moved > 50, "{moved}");
        // JPEG keeps the mean but not the pixels; pixelate repeats neighbours.
        let jpeg = at(Corruption::Jpeg);
        assert!((mean(&jpeg) - m0).abs() < 3.0);
        assert!(jpeg.iter().zip(&original).any(|(a, b)| a.abs_diff(*b) > 4));
        let repeats = |v: &[u8]| {
            (1..PLANE)
                .filter(|&p| p % SIDE != 0 && v[p] == v[p - 1])
                .count()
        };
        assert!(repeats(&at(Corruption::Pixelate)) > repeats(&original) + 200);
        assert!(saturation(&at(Corruption::Saturate)) > sat0 + 0.1);
        // And no two families give the same image.
        let all: Vec<Vec<u8>> = TYPE0.iter().map(|&c| at(c)).collect();
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j], "{} = {}", TYPE0[i].name(), TYPE0[j].name());
            }
        }
    }

    #[test]
    fn severity_orders_the_simple_families() {
        let contrast: Vec<f64> = SEVERITIES
            .map(|s| std(&run(Corruption::Contrast, s, 0)))
            .collect();
        assert!(contrast.windows(2).all(|w| w[0] > w[1]), "{contrast:?}");
        let bright: Vec<f64> = SEVERITIES
            .map(|s| mean(&run(Corruption::Brightness, s, 0)))
            .collect();
        assert!(bright.windows(2).all(|w| w[0] < w[1]), "{bright:?}");
    }
}
