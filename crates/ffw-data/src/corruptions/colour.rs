//! Brightness, contrast and saturation: the pointwise colour corruptions, in f64 like the
//! reference's numpy and skimage.
use super::{Planes, PLANE};

/// Brightness: added to HSV value.
const BRIGHTNESS: [f64; 5] = [0.05, 0.1, 0.15, 0.2, 0.3];
/// Contrast: the factor on each pixel's distance to its channel's mean.
const CONTRAST: [f32; 5] = [0.75, 0.5, 0.4, 0.3, 0.15];
/// Saturate: (factor, offset) on HSV saturation.
const SATURATE: [(f64, f64); 5] = [(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)];

pub fn brightness(x: Planes, s: usize) -> Planes {
    map_hsv(x, |hsv| hsv[2] = (hsv[2] + BRIGHTNESS[s]).clamp(0.0, 1.0))
}

pub fn saturate(x: Planes, s: usize) -> Planes {
    let (factor, offset) = SATURATE[s];
    map_hsv(x, |hsv| hsv[1] = (hsv[1] * factor + offset).clamp(0.0, 1.0))
}

pub fn contrast(x: Planes, s: usize) -> Planes {
    let c = CONTRAST[s];
    x.map(|plane| {
        let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / PLANE as f64;
        let mean = mean as f32;
        plane
            .iter()
            .map(|&v| ((v - mean) * c + mean).clamp(0.0, 1.0))
            .collect()
    })
}

fn map_hsv(x: Planes, edit: impl Fn(&mut [f64; 3])) -> Planes {
    let mut out: Planes = std::array::from_fn(|_| vec![0.0; PLANE]);
    for p in 0..PLANE {
        let mut hsv = rgb_to_hsv([x[0][p] as f64, x[1][p] as f64, x[2][p] as f64]);
        edit(&mut hsv);
        let rgb = hsv_to_rgb(hsv);
        for c in 0..3 {
            out[c][p] = rgb[c].clamp(0.0, 1.0) as f32;
        }
    }
    out
}

/// skimage's `rgb2hsv`: on ties for the maximum, blue wins over green over red.
fn rgb_to_hsv([r, g, b]: [f64; 3]) -> [f64; 3] {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    if delta == 0.0 {
        return [0.0, 0.0, v];
    }
    let h = if b == v {
        4.0 + (r - g) / delta
    } else if g == v {
        2.0 + (b - r) / delta
    } else {
        (g - b) / delta
    };
    [(h / 6.0).rem_euclid(1.0), delta / v, v]
}

/// skimage's `hsv2rgb`.
fn hsv_to_rgb([h, s, v]: [f64; 3]) -> [f64; 3] {
    let hi = (h * 6.0).floor();
    let f = h * 6.0 - hi;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    match (hi as i64).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_round_trips_and_matches_known_values() {
        assert_eq!(rgb_to_hsv([1.0, 0.0, 0.0]), [0.0, 1.0, 1.0]);
        let hsv = rgb_to_hsv([0.2, 0.4, 0.8]);
        assert!((hsv[0] - 0.6111111).abs() < 1e-6 && (hsv[1] - 0.75).abs() < 1e-12);
        for rgb in [
            [0.1, 0.5, 0.9],
            [0.7, 0.7, 0.2],
            [0.3, 0.3, 0.3],
            [0.9, 0.1, 0.4],
        ] {
            let back = hsv_to_rgb(rgb_to_hsv(rgb));
            for c in 0..3 {
                assert!((back[c] - rgb[c]).abs() < 1e-12, "{rgb:?} → {back:?}");
            }
        }
    }
}
