//! A small biased image dataset in the user-dataset layout (`ffw example-data`): PNG images of
//! a circle or a square (the task, labels `circle` / `square`) drawn in red or blue (the bias,
//! column `colour`), the colour agreeing with the shape (circle red, square blue) in a
//! fraction `aligned` of the images; `labels.csv` lists `path,shape,colour`. For the README's
//! worked example and the end-to-end tests.
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// Side of the generated images, in pixels.
pub const SIDE: u32 = 32;

/// Writes `n` images and `labels.csv` into `dir` (created if needed).
pub fn write(dir: &Path, n: usize, aligned: f64, seed: u64) -> Result<()> {
    if !(0.0..=1.0).contains(&aligned) {
        return Err(DataError::Invalid(format!(
            "aligned fraction {aligned} is not in [0, 1]"
        )));
    }
    let images = dir.join("images");
    std::fs::create_dir_all(&images).map_err(|e| DataError::io(&images, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut csv = String::from("path,shape,colour\n");
    for k in 0..n {
        let square = k % 2 == 1;
        let blue = square == rng.gen_bool(aligned);
        let (cx, cy) = (rng.gen_range(10.0..22.0f32), rng.gen_range(10.0..22.0f32));
        let r = rng.gen_range(5.0..9.0f32);
        let noise: u8 = rng.gen_range(0..40);
        let img = image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = if square {
                dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85
            } else {
                dx * dx + dy * dy <= r * r
            };
            match (inside, blue) {
                (true, true) => image::Rgb([30, 60, 220]),
                (true, false) => image::Rgb([220, 40, 30]),
                (false, _) => image::Rgb([200 + noise, 200 + noise, 190 + noise]),
            }
        });
        let file = format!("images/{k:05}.png");
        let path = dir.join(&file);
        img.save(&path)
            .map_err(|e| DataError::format(&path, e.to_string()))?;
        let shape = if square { "square" } else { "circle" };
        let colour = if blue { "blue" } else { "red" };
        csv.push_str(&format!("{file},{shape},{colour}\n"));
    }
    let path = dir.join("labels.csv");
    crate::atomic::write(&path, csv.as_bytes()).map_err(|e| DataError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colour_agrees_with_the_shape_at_the_asked_rate() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 400, 0.9, 1).unwrap();
        let text = std::fs::read_to_string(dir.path().join("labels.csv")).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), 400);
        let agree = rows
            .iter()
            .filter(|r| r.ends_with("circle,red") || r.ends_with("square,blue"))
            .count();
        assert!((340..=380).contains(&agree), "{agree}");
        assert!(dir.path().join("images/00399.png").is_file());
        assert!(write(dir.path(), 1, 1.5, 0).is_err());
    }
}
