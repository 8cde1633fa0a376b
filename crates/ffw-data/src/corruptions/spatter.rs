//! Spatter: water drops (severities 1–3: pale turquoise, shaded from the drops' edges) or mud
//! (4–5: opaque brown blots), both grown from a blurred, thresholded Gaussian layer.
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::filters::{box3, gaussian, Border};
use super::{Planes, PLANE, SIDE};

/// (layer mean, layer std, layer blur σ, threshold, drop strength or mud blur σ, mud?).
const SPATTER: [(f64, f64, f64, f64, f64, bool); 5] = [
    (0.62, 0.1, 0.7, 0.7, 0.5, false),
    (0.65, 0.1, 0.8, 0.7, 0.5, false),
    (0.65, 0.3, 1.0, 0.69, 0.5, false),
    (0.65, 0.1, 0.7, 0.69, 0.6, true),
    (0.65, 0.1, 0.5, 0.68, 0.6, true),
];

const WATER: [f32; 3] = [175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0];
const MUD: [f32; 3] = [63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0];

pub fn spatter(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (mean, std, sigma, threshold, strength, mud) = SPATTER[s];
    let normal = Normal::new(mean, std).expect("a positive std");
    let layer: Vec<f64> = (0..PLANE).map(|_| normal.sample(rng)).collect();
    let mut liquid = gaussian(&layer, sigma, 4.0, Border::Nearest);
    for v in &mut liquid {
        if *v < threshold {
            *v = 0.0;
        }
    }
    if mud {
        let blots: Vec<f64> = liquid
            .iter()
            .map(|&v| if v > threshold { 1.0 } else { 0.0 })
            .collect();
        let m: Vec<f32> = gaussian(&blots, strength, 4.0, Border::Nearest)
            .iter()
            .map(|&v| if v < 0.8 { 0.0 } else { v as f32 })
            .collect();
        for (c, plane) in x.iter_mut().enumerate() {
            for p in 0..PLANE {
                plane[p] = (plane[p] * (1.0 - m[p]) + MUD[c] * m[p]).clamp(0.0, 1.0);
            }
        }
        return x;
    }
    let shade = drop_shading(&liquid);
    let m: Vec<f32> = liquid
        .iter()
        .zip(&shade)
        .map(|(&l, &d)| l as f32 * d)
        .collect();
    let max = m.iter().cloned().fold(0.0f32, f32::max);
    let scale = if max > 0.0 {
        strength as f32 / max
    } else {
        0.0
    };
    for (c, plane) in x.iter_mut().enumerate() {
        for p in 0..PLANE {
            plane[p] = (plane[p] + m[p] * scale * WATER[c]).clamp(0.0, 1.0);
        }
    }
    x
}

/// The reference's OpenCV chain on the drop layer: distance to the nearest Canny edge,
/// truncated at 20, box-blurred, histogram-equalised, embossed, box-blurred again.
fn drop_shading(liquid: &[f64]) -> Vec<f32> {
    let bytes: Vec<u8> = liquid
        .iter()
        .map(|v| (v * 255.0).clamp(0.0, 255.0) as u8)
        .collect();
    let edges = canny(&bytes, 50, 150);
    let edge_points: Vec<(f32, f32)> = (0..PLANE)
        .filter(|&p| edges[p])
        .map(|p| ((p / SIDE) as f32, (p % SIDE) as f32))
        .collect();
    // Exact Euclidean distance (OpenCV's DIST_L2 with a 5×5 mask approximates it).
    let dist: Vec<f32> = (0..PLANE)
        .map(|p| {
            let (y, x) = ((p / SIDE) as f32, (p % SIDE) as f32);
            edge_points
                .iter()
                .map(|(ey, ex)| ((y - ey).powi(2) + (x - ex).powi(2)).sqrt())
                .fold(20.0f32, f32::min)
        })
        .collect();
    let dist: Vec<u8> = box3(&dist).iter().map(|&v| v as u8).collect();
    let dist = equalise(&dist);
    const EMBOSS: [[f32; 3]; 3] = [[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]];
    let mut embossed = vec![0.0f32; PLANE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let mut s = 0.0;
            for (dy, row) in EMBOSS.iter().enumerate() {
                for (dx, k) in row.iter().enumerate() {
                    let yy = Border::Reflect101.index(y as i64 + dy as i64 - 1, SIDE);
                    let xx = Border::Reflect101.index(x as i64 + dx as i64 - 1, SIDE);
                    s += k * dist[yy * SIDE + xx] as f32;
                }
            }
            embossed[y * SIDE + x] = s.round().clamp(0.0, 255.0);
        }
    }
    box3(&embossed).iter().map(|v| v.round()).collect()
}

/// OpenCV's `equalizeHist`.
fn equalise(v: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    v.iter().for_each(|&b| hist[b as usize] += 1);
    let first = hist.iter().position(|&h| h > 0).unwrap_or(0);
    if hist[first] == v.len() {
        return vec![first as u8; v.len()];
    }
    let scale = 255.0 / (v.len() - hist[first]) as f32;
    let mut lut = [0u8; 256];
    let mut sum = 0;
    for i in first + 1..256 {
        sum += hist[i];
        lut[i] = (sum as f32 * scale).round().clamp(0.0, 255.0) as u8;
    }
    v.iter().map(|&b| lut[b as usize]).collect()
}

/// OpenCV's `Canny` (3×3 Sobel with replicated borders, L1 magnitude, non-maximum
/// suppression over four directions, hysteresis between `low` and `high`).
fn canny(img: &[u8], low: i32, high: i32) -> Vec<bool> {
    let at = |y: i64, x: i64| {
        img[Border::Nearest.index(y, SIDE) * SIDE + Border::Nearest.index(x, SIDE)] as i32
    };
    let mut dx = vec![0i32; PLANE];
    let mut dy = vec![0i32; PLANE];
    for y in 0..SIDE as i64 {
        for x in 0..SIDE as i64 {
            let p = y as usize * SIDE + x as usize;
            dx[p] = (at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1))
                - (at(y - 1, x - 1) + 2 * at(y, x - 1) + at(y + 1, x - 1));
            dy[p] = (at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1))
                - (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1));
        }
    }
    let mag: Vec<i32> = (0..PLANE).map(|p| dx[p].abs() + dy[p].abs()).collect();
    let m = |y: i64, x: i64| {
        if (0..SIDE as i64).contains(&y) && (0..SIDE as i64).contains(&x) {
            mag[y as usize * SIDE + x as usize]
        } else {
            0
        }
    };
    const TAN22: f64 = 0.414_213_562_373_095;
    // 0: not an edge, 1: weak, 2: strong.
    let mut class = vec![0u8; PLANE];
    for y in 0..SIDE as i64 {
        for x in 0..SIDE as i64 {
            let p = y as usize * SIDE + x as usize;
            let v = mag[p];
            if v <= low {
                continue;
            }
            let (ax, ay) = (dx[p].abs() as f64, dy[p].abs() as f64);
            let is_max = if ay < ax * TAN22 {
                v > m(y, x - 1) && v >= m(y, x + 1)
            } else if ay > ax * (1.0 / TAN22) {
                v > m(y - 1, x) && v >= m(y + 1, x)
            } else {
                let s = if (dx[p] < 0) != (dy[p] < 0) { -1 } else { 1 };
                v > m(y - 1, x - s) && v > m(y + 1, x + s)
            };
            if is_max {
                class[p] = if v > high { 2 } else { 1 };
            }
        }
    }
    let mut stack: Vec<usize> = (0..PLANE).filter(|&p| class[p] == 2).collect();
    while let Some(p) = stack.pop() {
        let (y, x) = ((p / SIDE) as i64, (p % SIDE) as i64);
        for ny in y - 1..=y + 1 {
            for nx in x - 1..=x + 1 {
                if (0..SIDE as i64).contains(&ny) && (0..SIDE as i64).contains(&nx) {
                    let q = ny as usize * SIDE + nx as usize;
                    if class[q] == 1 {
                        class[q] = 2;
                        stack.push(q);
                    }
                }
            }
        }
    }
    class.iter().map(|&c| c == 2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canny_finds_the_border_of_a_square_and_nothing_on_flat_ground() {
        let mut img = vec![10u8; PLANE];
        for y in 8..24 {
            for x in 8..24 {
                img[y * SIDE + x] = 200;
            }
        }
        let edges = canny(&img, 50, 150);
        assert!(edges[16 * SIDE + 8] || edges[16 * SIDE + 7]);
        assert!(!edges[16 * SIDE + 16] && !edges[2 * SIDE + 2]);
        assert!(canny(&[90u8; PLANE], 50, 150).iter().all(|e| !e));
    }

    #[test]
    fn equalisation_spreads_values_over_the_byte_range() {
        let v: Vec<u8> = (0..PLANE).map(|p| (p % 4) as u8 + 10).collect();
        let e = equalise(&v);
        assert_eq!((e[0], e[1], e[2], e[3]), (0, 85, 170, 255));
        assert_eq!(equalise(&[7u8; 4]), vec![7u8; 4]);
    }
}
