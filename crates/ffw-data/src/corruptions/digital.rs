//! JPEG compression (a real encoder: the `image` crate's) and pixelation (PIL's box resize
//! down and back up).
use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::{ExtendedColorType, ImageDecoder};

use super::{PLANE, SIDE};

/// JPEG quality per severity.
const QUALITY: [u8; 5] = [80, 65, 58, 50, 40];
/// Pixelate: the side of the small image is `int(32 · c)`.
const PIXELATE: [f64; 5] = [0.95, 0.9, 0.85, 0.75, 0.65];

/// Planar RGB to interleaved and back.
fn interleave(image: &[u8]) -> Vec<u8> {
    (0..PLANE)
        .flat_map(|p| [image[p], image[PLANE + p], image[2 * PLANE + p]])
        .collect()
}

fn planar(rgb: &[u8]) -> Vec<u8> {
    (0..3)
        .flat_map(|c| (0..PLANE).map(move |p| rgb[3 * p + c]))
        .collect()
}

/// Encoded at the severity's quality and decoded again.
pub fn jpeg(image: &[u8], s: usize) -> Vec<u8> {
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(&mut encoded, QUALITY[s])
        .encode(
            &interleave(image),
            SIDE as u32,
            SIDE as u32,
            ExtendedColorType::Rgb8,
        )
        .expect("encoding a 32×32 RGB image in memory cannot fail");
    let decoder =
        JpegDecoder::new(std::io::Cursor::new(&encoded)).expect("the encoder's own output decodes");
    let mut rgb = vec![0u8; decoder.total_bytes() as usize];
    decoder
        .read_image(&mut rgb)
        .expect("the encoder's own output decodes");
    planar(&rgb)
}

/// `resize((n, n), BOX)` then `resize((32, 32), BOX)` with `n = int(32 · c)`.
pub fn pixelate(image: &[u8], s: usize) -> Vec<u8> {
    let small = (SIDE as f64 * PIXELATE[s]) as usize;
    (0..3)
        .flat_map(|c| {
            let plane = &image[c * PLANE..(c + 1) * PLANE];
            let down = resize_box(plane, SIDE, small);
            resize_box(&down, small, SIDE)
        })
        .collect()
}

/// PIL's `resize` with the BOX filter on a square plane: horizontal pass then vertical, each
/// output pixel the normalised sum of the inputs whose centres fall in its box, rounded to a
/// byte after each pass.
fn resize_box(plane: &[u8], from: usize, to: usize) -> Vec<u8> {
    let weights = box_weights(from, to);
    let mut rows = vec![0u8; from * to];
    for y in 0..from {
        for (x, (start, w)) in weights.iter().enumerate() {
            let v: f64 = w
                .iter()
                .enumerate()
                .map(|(k, wk)| wk * plane[y * from + start + k] as f64)
                .sum();
            rows[y * to + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    let mut out = vec![0u8; to * to];
    for (y, (start, w)) in weights.iter().enumerate() {
        for x in 0..to {
            let v: f64 = w
                .iter()
                .enumerate()
                .map(|(k, wk)| wk * rows[(start + k) * to + x] as f64)
                .sum();
            out[y * to + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// PIL's `precompute_coeffs` for the box filter (`1` on `(-0.5, 0.5]`): per output pixel,
/// its first input and normalised weights.
fn box_weights(from: usize, to: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = from as f64 / to as f64;
    let filter_scale = scale.max(1.0);
    let support = 0.5 * filter_scale;
    (0..to)
        .map(|xx| {
            let centre = (xx as f64 + 0.5) * scale;
            let xmin = ((centre - support + 0.5) as i64).max(0) as usize;
            let xmax = ((centre + support + 0.5) as i64).min(from as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = (x as f64 - centre + 0.5) / filter_scale;
                    if t > -0.5 && t <= 0.5 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = w.iter().sum();
            (xmin, w.iter().map(|v| v / total).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_resize_averages_pairs_and_repeats_back() {
        // 4 → 2: each output is the mean of two inputs; 2 → 4: each input twice.
        let w = box_weights(4, 2);
        assert_eq!(w, vec![(0, vec![0.5, 0.5]), (2, vec![0.5, 0.5])]);
        let up = box_weights(2, 4);
        assert_eq!(up.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 0, 1, 1]);
        let plane: Vec<u8> = (0..16).map(|v| v * 10).collect();
        let down = resize_box(&plane, 4, 2);
        assert_eq!(down, vec![25, 45, 105, 125]);
        assert_eq!(
            resize_box(&down, 2, 4),
            vec![25, 25, 45, 45, 25, 25, 45, 45, 105, 105, 125, 125, 105, 105, 125, 125]
        );
    }

    #[test]
    fn jpeg_keeps_a_flat_image_nearly_flat() {
        let flat = vec![128u8; 3 * PLANE];
        let out = jpeg(&flat, 4);
        assert!(out.iter().all(|&v| v.abs_diff(128) <= 2));
    }
}
