//! Snow, frost and fog.
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::filters::{clipped_zoom, gaussian, Border};
use super::{grey, Planes, PLANE, SIDE};

/// Snow: (flake mean, flake std, zoom, threshold, blur radius, blur sigma, image weight).
const SNOW: [(f32, f32, f64, f32, f64, f64, f32); 5] = [
    (0.1, 0.2, 1.0, 0.6, 8.0, 3.0, 0.95),
    (0.1, 0.2, 1.0, 0.5, 10.0, 4.0, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10.0, 4.0, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12.0, 6.0, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14.0, 12.0, 0.8),
];

/// Frost: (image weight, frost weight).
const FROST: [(f32, f32); 5] = [
    (1.0, 0.2),
    (1.0, 0.3),
    (0.9, 0.4),
    (0.85, 0.4),
    (0.75, 0.45),
];

/// Fog: (fog strength, fractal wibble decay).
const FOG: [(f32, f64); 5] = [(0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)];

/// Flakes (a thresholded, zoomed Gaussian layer) streaked by a motion blur at an angle drawn
/// in [-135°, -45°], added twice (the second copy turned half a turn) to an image brightened
/// towards its grey level.
pub fn snow(x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (mean, std, zoom, threshold, radius, sigma, keep) = SNOW[s];
    let normal = Normal::new(mean, std).expect("a positive std");
    let layer: Vec<f32> = (0..PLANE).map(|_| normal.sample(rng)).collect();
    let mut layer = clipped_zoom(&layer, zoom);
    for v in &mut layer {
        if *v < threshold {
            *v = 0.0;
        }
    }
    // The reference goes through an 8-bit PNG on both sides of ImageMagick.
    let layer: Vec<f32> = layer
        .iter()
        .map(|v| ((v.clamp(0.0, 1.0) * 255.0) as u8) as f32)
        .collect();
    let angle = rng.gen_range(-135.0..-45.0);
    let layer: Vec<f32> = motion_blur(&layer, radius, sigma, angle)
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) / 255.0)
        .collect();
    let g = grey(&x);
    x.map(|plane| {
        (0..PLANE)
            .map(|p| {
                let v = keep * plane[p] + (1.0 - keep) * plane[p].max(g[p] * 1.5 + 0.5);
                (v + layer[p] + layer[PLANE - 1 - p]).clamp(0.0, 1.0)
            })
            .collect()
    })
}

/// ImageMagick's `MotionBlurImage`: a one-sided Gaussian of `2·ceil(radius) + 1` taps along
/// `angle` (degrees), pixels beyond the edge repeating the edge.
fn motion_blur(plane: &[f32], radius: f64, sigma: f64, angle: f64) -> Vec<f32> {
    let width = 2 * radius.ceil() as usize + 1;
    let kernel: Vec<f64> = (0..width)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    let (sin, cos) = angle.to_radians().sin_cos();
    let offsets: Vec<(i64, i64)> = (0..width)
        .map(|i| {
            let i = i as f64;
            ((i * cos - 0.5).ceil() as i64, (i * sin - 0.5).ceil() as i64)
        })
        .collect();
    let mut out = vec![0.0; PLANE];
    for y in 0..SIDE as i64 {
        for x in 0..SIDE as i64 {
            let v: f64 = kernel
                .iter()
                .zip(&offsets)
                .map(|(k, (dx, dy))| {
                    let yy = Border::Nearest.index(y + dy, SIDE);
                    let xx = Border::Nearest.index(x + dx, SIDE);
                    k * plane[yy * SIDE + xx] as f64
                })
                .sum();
            out[y as usize * SIDE + x as usize] = (v / total) as f32;
        }
    }
    out
}

/// `c0 · image + c1 · frost` on the 0..255 scale, the frost a 32×32 RGB texture.
pub fn frost(x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (keep, weight) = FROST[s];
    let texture = frost_texture(rng);
    std::array::from_fn(|c| {
        (0..PLANE)
            .map(|p| (keep * x[c][p] * 255.0 + weight * texture[c][p]).clamp(0.0, 255.0) / 255.0)
            .collect()
    })
}

/// A stand-in for a 32×32 crop of CIFAR-10-C's frost photographs (ice crystals on glass,
/// scaled to a fifth): a pale fractal haze under bright, thin, branching crystal needles,
/// tinted blue-white, on the 0..255 scale. The photographs are not redistributable; this
/// texture has their role (a bright, structured, mostly colourless overlay), not their pixels.
fn frost_texture(rng: &mut ChaCha8Rng) -> Planes {
    let haze = plasma_fractal(2.0, rng);
    let mut ice: Vec<f64> = haze.iter().map(|h| 0.3 + 0.3 * h).collect();
    let needles = rng.gen_range(6..10);
    for _ in 0..needles {
        let mut stack = vec![(
            rng.gen_range(0.0..SIDE as f64),
            rng.gen_range(0.0..SIDE as f64),
            rng.gen_range(0.0..std::f64::consts::TAU),
            rng.gen_range(10..24),
        )];
        while let Some((mut y, mut x, mut dir, len)) = stack.pop() {
            let bright = rng.gen_range(0.6..1.0);
            for _ in 0..len {
                let (yy, xx) = (y.round() as i64, x.round() as i64);
                if !(0..SIDE as i64).contains(&yy) || !(0..SIDE as i64).contains(&xx) {
                    break;
                }
                let p = yy as usize * SIDE + xx as usize;
                ice[p] = ice[p].max(bright);
                if len > 4 && rng.gen_bool(0.15) {
                    let side = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                    stack.push((y, x, dir + side * std::f64::consts::FRAC_PI_3, len / 2));
                }
                dir += rng.gen_range(-0.15..0.15);
                y += dir.sin();
                x += dir.cos();
            }
        }
    }
    let ice = gaussian(&ice, 0.5, 4.0, Border::Nearest);
    let tint = [0.86, 0.93, 1.0];
    tint.map(|t| {
        ice.iter()
            .map(|v| (t * v.min(1.0) * 255.0) as f32)
            .collect()
    })
}

/// Fog: a plasma fractal added to the image, rescaled by `max / (max + c0)`.
pub fn fog(x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (strength, decay) = FOG[s];
    let max = x.iter().flatten().fold(0.0f32, |m, &v| m.max(v));
    let fractal = plasma_fractal(decay, rng);
    x.map(|plane| {
        plane
            .iter()
            .zip(&fractal)
            .map(|(&v, &f)| ((v + strength * f as f32) * max / (max + strength)).clamp(0.0, 1.0))
            .collect()
    })
}

/// CIFAR-10-C's `plasma_fractal` (diamond-square on a 32×32 torus, `wibble` starting at 100
/// and divided by `decay` per level, each new point its neighbours' mean plus
/// `wibble · U(-wibble, wibble)`), normalised to [0, 1].
pub(super) fn plasma_fractal(decay: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = SIDE;
    let mut m = vec![0.0f64; n * n];
    let mut step = n;
    let mut wibble = 100.0f64;
    let at = |i: usize, j: usize| i * n + j;
    while step >= 2 {
        let half = step / 2;
        let k = n / step;
        let noisy =
            |sum: f64, rng: &mut ChaCha8Rng| sum / 4.0 + wibble * rng.gen_range(-wibble..wibble);
        // Squares: each centre from its four corners.
        for i in 0..k {
            for j in 0..k {
                let (i1, j1) = ((i + 1) % k, (j + 1) % k);
                let sum = m[at(i * step, j * step)]
                    + m[at(i1 * step, j * step)]
                    + m[at(i * step, j1 * step)]
                    + m[at(i1 * step, j1 * step)];
                m[at(i * step + half, j * step + half)] = noisy(sum, rng);
            }
        }
        // Diamonds: edge midpoints from the two centres and two corners beside them.
        let centre = |m: &[f64], i: usize, j: usize| m[at(i * step + half, j * step + half)];
        let corner = |m: &[f64], i: usize, j: usize| m[at(i * step, j * step)];
        let mut top = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                let sum = centre(&m, i, j)
                    + centre(&m, (i + k - 1) % k, j)
                    + corner(&m, i, j)
                    + corner(&m, i, (j + 1) % k);
                top[i * k + j] = noisy(sum, rng);
            }
        }
        let mut left = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                let sum = centre(&m, i, j)
                    + centre(&m, i, (j + k - 1) % k)
                    + corner(&m, i, j)
                    + corner(&m, (i + 1) % k, j);
                left[i * k + j] = noisy(sum, rng);
            }
        }
        for i in 0..k {
            for j in 0..k {
                m[at(i * step, j * step + half)] = top[i * k + j];
                m[at(i * step + half, j * step)] = left[i * k + j];
            }
        }
        step /= 2;
        wibble /= decay;
    }
    let min = m.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = m.iter().map(|v| v - min).fold(0.0, f64::max);
    m.iter().map(|v| (v - min) / max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_fractal_spans_zero_to_one_and_is_smoother_with_more_decay() {
        let rough = plasma_fractal(1.5, &mut ChaCha8Rng::seed_from_u64(1));
        let smooth = plasma_fractal(3.0, &mut ChaCha8Rng::seed_from_u64(1));
        for f in [&rough, &smooth] {
            let (lo, hi) = f
                .iter()
                .fold((1.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
            assert_eq!((lo, hi), (0.0, 1.0));
        }
        let step = |f: &[f64]| (1..PLANE).map(|p| (f[p] - f[p - 1]).abs()).sum::<f64>();
        assert!(step(&smooth) < step(&rough));
    }

    #[test]
    fn motion_blur_smears_a_point_along_one_side() {
        let mut dot = vec![0.0f32; PLANE];
        dot[16 * SIDE + 16] = 255.0;
        // Angle 0: taps at x, x+1, ..., so the dot shows up at and to the left of itself.
        let out = motion_blur(&dot, 3.0, 2.0, 0.0);
        assert!(out[16 * SIDE + 13] > 0.0 && out[16 * SIDE + 19] == 0.0);
        assert!(out[15 * SIDE + 16] == 0.0);
        let total: f32 = out.iter().sum();
        assert!((total - 255.0).abs() < 1e-3, "{total}");
    }
}
