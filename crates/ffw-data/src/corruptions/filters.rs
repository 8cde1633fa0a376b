//! The image filters the corruptions share, each with the border rule of the library the
//! reference calls: scipy/skimage Gaussian filters, scipy's linear zoom and interpolation,
//! OpenCV's 3×3 box blur.
use super::{PLANE, SIDE};

/// How an index outside `0..n` is brought back inside.
#[derive(Clone, Copy)]
pub enum Border {
    /// Repeat the edge pixel (scipy `nearest`, OpenCV `BORDER_REPLICATE`).
    Nearest,
    /// Mirror including the edge, `d c b a | a b c d` (scipy `reflect`).
    Reflect,
    /// Mirror about the edge, `d c b | a b c d` (OpenCV's default `BORDER_REFLECT_101`).
    Reflect101,
}

impl Border {
    pub fn index(self, i: i64, n: usize) -> usize {
        let n = n as i64;
        let r = match self {
            Border::Nearest => i.clamp(0, n - 1),
            Border::Reflect => {
                let m = i.rem_euclid(2 * n);
                if m < n {
                    m
                } else {
                    2 * n - 1 - m
                }
            }
            Border::Reflect101 if n == 1 => 0,
            Border::Reflect101 => {
                let m = i.rem_euclid(2 * n - 2);
                if m < n {
                    m
                } else {
                    2 * n - 2 - m
                }
            }
        };
        r as usize
    }
}

/// scipy's `gaussian_filter` on one 32×32 plane (what `skimage.filters.gaussian` calls):
/// a separable kernel of radius `int(truncate·σ + 0.5)`, in f64.
pub fn gaussian(plane: &[f64], sigma: f64, truncate: f64, border: Border) -> Vec<f64> {
    if sigma <= 0.0 {
        return plane.to_vec();
    }
    let radius = (truncate * sigma + 0.5) as i64;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k * k) as f64 / (sigma * sigma)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let pass = |input: &[f64], along_rows: bool| -> Vec<f64> {
        let mut out = vec![0.0; PLANE];
        for y in 0..SIDE {
            for x in 0..SIDE {
                out[y * SIDE + x] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        let d = k as i64 - radius;
                        let (yy, xx) = if along_rows {
                            (border.index(y as i64 + d, SIDE), x)
                        } else {
                            (y, border.index(x as i64 + d, SIDE))
                        };
                        w * input[yy * SIDE + xx]
                    })
                    .sum();
            }
        }
        out
    };
    pass(&pass(plane, true), false)
}

/// OpenCV's `blur(x, (3, 3))`: the mean of each 3×3 neighbourhood, `BORDER_REFLECT_101`.
pub fn box3(plane: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; PLANE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let mut s = 0.0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let yy = Border::Reflect101.index(y as i64 + dy, SIDE);
                    let xx = Border::Reflect101.index(x as i64 + dx, SIDE);
                    s += plane[yy * SIDE + xx];
                }
            }
            out[y * SIDE + x] = s / 9.0;
        }
    }
    out
}

/// Bilinear interpolation of `plane` (`h`×`w`) at (`y`, `x`), neighbours outside the plane
/// brought back by `border`.
pub fn bilinear(plane: &[f32], h: usize, w: usize, y: f32, x: f32, border: Border) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let (y0, x0) = (y0 as i64, x0 as i64);
    let at = |yy: i64, xx: i64| plane[border.index(yy, h) * w + border.index(xx, w)];
    (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
        + fy * ((1.0 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1))
}

/// CIFAR-10-C's `clipped_zoom` on one plane: the central `ceil(32 / z)` square, enlarged by
/// scipy's `zoom(order=1)` (corners aligned, output side `round(side · z)`), its centre cut
/// back to 32×32.
pub fn clipped_zoom(plane: &[f32], z: f64) -> Vec<f32> {
    let ch = (SIDE as f64 / z).ceil() as usize;
    let top = (SIDE - ch) / 2;
    let crop: Vec<f32> = (0..ch * ch)
        .map(|p| plane[(top + p / ch) * SIDE + top + p % ch])
        .collect();
    let out_side = (ch as f64 * z).round_ties_even() as usize;
    let trim = (out_side - SIDE) / 2;
    let scale = if out_side > 1 {
        (ch - 1) as f32 / (out_side - 1) as f32
    } else {
        0.0
    };
    let mut out = vec![0.0; PLANE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (sy, sx) = ((y + trim) as f32 * scale, (x + trim) as f32 * scale);
            out[y * SIDE + x] = bilinear(&crop, ch, ch, sy, sx, Border::Nearest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_follow_scipy_and_opencv() {
        let idx = |b: Border| (-3..7).map(|i| b.index(i, 4)).collect::<Vec<_>>();
        assert_eq!(idx(Border::Nearest), [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(idx(Border::Reflect), [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(idx(Border::Reflect101), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn filters_keep_constants_and_zoom_one_is_the_identity() {
        let flat = vec![0.25f64; PLANE];
        for g in gaussian(&flat, 1.5, 4.0, Border::Reflect) {
            assert!((g - 0.25).abs() < 1e-12);
        }
        let ramp: Vec<f32> = (0..PLANE).map(|p| (p % SIDE) as f32).collect();
        assert_eq!(clipped_zoom(&ramp, 1.0), ramp);
        // Zoom 2 around the centre: columns 8..24 spread over 32, still increasing.
        let z = clipped_zoom(&ramp, 2.0);
        assert!(z[..SIDE].windows(2).all(|w| w[0] <= w[1]));
        assert!((z[0] - 8.0).abs() < 1e-5 && (z[SIDE - 1] - 23.0).abs() < 1e-5);
        assert_eq!(box3(&ramp)[SIDE + 5], 5.0);
    }
}
