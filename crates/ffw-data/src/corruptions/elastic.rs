//! Elastic transform: a random affine warp (three control points moved by up to `c2` pixels)
//! then a smooth random displacement field (uniform noise blurred by σ = `c1`, scaled by `c0`).
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::filters::{bilinear, gaussian, Border};
use super::{Planes, PLANE, SIDE};

/// (displacement scale, displacement smoothness σ, affine jitter), in pixels of a 32-pixel
/// side: CIFAR-10-C's `IMSIZE · (0, 0, .08)`, `(.05, .2, .07)`, `(.08, .06, .06)`,
/// `(.1, .04, .05)`, `(.1, .03, .03)`.
const ELASTIC: [(f32, f64, f32); 5] = [
    (0.0, 0.0, 2.56),
    (1.6, 6.4, 2.24),
    (2.56, 1.92, 1.92),
    (3.2, 1.28, 1.6),
    (3.2, 0.96, 0.96),
];

pub fn elastic(x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (alpha, sigma, jitter) = ELASTIC[s];
    // Control points (x, y) around the centre, as in the reference.
    let from = [[26.0f32, 26.0], [26.0, 6.0], [6.0, 6.0]];
    let to = from.map(|[px, py]| {
        [
            px + rng.gen_range(-jitter..jitter),
            py + rng.gen_range(-jitter..jitter),
        ]
    });
    let inverse = invert(affine_from_points(&from, &to));
    let warped = x.map(|plane| {
        (0..PLANE)
            .map(|p| {
                let (yo, xo) = ((p / SIDE) as f32, (p % SIDE) as f32);
                let sx = inverse[0][0] * xo + inverse[0][1] * yo + inverse[0][2];
                let sy = inverse[1][0] * xo + inverse[1][1] * yo + inverse[1][2];
                bilinear(&plane, SIDE, SIDE, sy, sx, Border::Reflect101)
            })
            .collect::<Vec<f32>>()
    });
    let mut field = || -> Vec<f32> {
        let noise: Vec<f64> = (0..PLANE).map(|_| rng.gen_range(-1.0..1.0)).collect();
        gaussian(&noise, sigma, 3.0, Border::Reflect)
            .iter()
            .map(|v| (v * alpha as f64) as f32)
            .collect()
    };
    let dx = field();
    let dy = field();
    warped.map(|plane| {
        (0..PLANE)
            .map(|p| {
                let (y, x) = ((p / SIDE) as f32 + dy[p], (p % SIDE) as f32 + dx[p]);
                bilinear(&plane, SIDE, SIDE, y, x, Border::Reflect).clamp(0.0, 1.0)
            })
            .collect()
    })
}

/// OpenCV's `getAffineTransform`: the 2×3 map taking each `from` point to its `to` point.
fn affine_from_points(from: &[[f32; 2]; 3], to: &[[f32; 2]; 3]) -> [[f32; 3]; 2] {
    let a: [[f64; 3]; 3] = from.map(|[x, y]| [x as f64, y as f64, 1.0]);
    let det3 = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det3(&a);
    std::array::from_fn(|row| {
        // Cramer's rule for the row's three coefficients.
        std::array::from_fn(|col| {
            let mut m = a;
            for (k, r) in m.iter_mut().enumerate() {
                r[col] = to[k][row] as f64;
            }
            (det3(&m) / d) as f32
        })
    })
}

/// The inverse of a 2×3 affine map.
fn invert(m: [[f32; 3]; 2]) -> [[f32; 3]; 2] {
    let [[a, b, c], [d, e, f]] = m.map(|r| r.map(|v| v as f64));
    let det = a * e - b * d;
    let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
    [
        [ia as f32, ib as f32, (-(ia * c + ib * f)) as f32],
        [id as f32, ie as f32, (-(id * c + ie * f)) as f32],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_affine_map_takes_points_to_points_and_inverts() {
        let from = [[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]];
        let to = [[27.0, 25.0], [25.5, 7.0], [6.5, 4.0]];
        let m = affine_from_points(&from, &to);
        for k in 0..3 {
            let [x, y] = from[k];
            let u = m[0][0] * x + m[0][1] * y + m[0][2];
            let v = m[1][0] * x + m[1][1] * y + m[1][2];
            assert!((u - to[k][0]).abs() < 1e-4 && (v - to[k][1]).abs() < 1e-4);
        }
        let back = invert(m);
        let [x, y] = to[1];
        let u = back[0][0] * x + back[0][1] * y + back[0][2];
        assert!((u - from[1][0]).abs() < 1e-4);
    }
}
