//! im2col + GEMM over groups of images, for small outputs (a ResNet's later stages: 8×8 down
//! to 1×1 on 32×32 inputs). Per image, the GEMM there is thin (as few as one column) and reads
//! the whole kernel once per image: 9.4 MB per image for a 512-channel 3×3 kernel. Here the
//! columns of several images sit side by side, so one GEMM covers a group and reads the kernel
//! once. The group size depends only on the geometry, and where there are fewer groups than
//! threads the GEMM itself splits (bit-identically), so results do not depend on the thread
//! count.
use rayon::prelude::*;

use super::{col2im, im2col, Geometry};
use crate::gemm::{gemm, Threads};
use crate::storage::output_f32;

/// Outputs with fewer pixels than this are grouped, enough images to a group to fill as many
/// GEMM columns.
const COLUMNS: usize = 256;

/// Images per group, if `g` is grouped.
fn per_group(g: &Geometry) -> Option<usize> {
    (g.out_hw() < COLUMNS).then(|| COLUMNS.div_ceil(g.out_hw()).min(g.n))
}

fn threads(g: &Geometry, per: usize) -> Threads {
    if g.n.div_ceil(per) < rayon::current_num_threads() {
        Threads::All
    } else {
        Threads::One
    }
}

/// The im2col columns of images `first..first + imgs`, side by side: `[ckk, imgs · ohw]`.
fn columns(g: &Geometry, x: &[f32], first: usize, imgs: usize) -> Vec<f32> {
    let ld = imgs * g.out_hw();
    let mut cols = output_f32(g.ckk() * ld);
    im2col(
        g,
        &x[first * g.in_len()..][..imgs * g.in_len()],
        &mut cols,
        ld,
    );
    cols
}

/// `dy` of images `first..first + imgs` as `[o, imgs · ohw]`.
fn gather(g: &Geometry, dy: &[f32], first: usize, imgs: usize) -> Vec<f32> {
    let (ohw, ld) = (g.out_hw(), imgs * g.out_hw());
    let mut out = output_f32(g.o * ld);
    for i in 0..imgs {
        for o in 0..g.o {
            out[o * ld + i * ohw..][..ohw]
                .copy_from_slice(&dy[((first + i) * g.o + o) * ohw..][..ohw]);
        }
    }
    out
}

/// `y = conv(x, w)`.
pub(super) fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    let per = per_group(g)?;
    let (ohw, threads) = (g.out_hw(), threads(g, per));
    let mut out = output_f32(g.n * g.out_len());
    out.par_chunks_mut(per * g.out_len())
        .enumerate()
        .for_each(|(grp, y)| {
            let imgs = y.len() / g.out_len();
            let ld = imgs * ohw;
            let cols = columns(g, x, grp * per, imgs);
            let mut yg = output_f32(g.o * ld);
            gemm(
                threads,
                (g.o, ld, g.ckk()),
                &mut yg,
                (ld, 1),
                false,
                w,
                (g.ckk(), 1),
                &cols,
                (ld, 1),
            );
            // [o, imgs, ohw] → [imgs, o, ohw]
            for i in 0..imgs {
                for o in 0..g.o {
                    y[(i * g.o + o) * ohw..][..ohw].copy_from_slice(&yg[o * ld + i * ohw..][..ohw]);
                }
            }
        });
    Some(out)
}

/// `dx = col2im(wᵀ · dy)`.
pub(super) fn input_grad(g: &Geometry, dy: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    let per = per_group(g)?;
    let (ohw, threads) = (g.out_hw(), threads(g, per));
    let mut dx = output_f32(g.n * g.in_len());
    dx.par_chunks_mut(per * g.in_len())
        .enumerate()
        .for_each(|(grp, dxg)| {
            let imgs = dxg.len() / g.in_len();
            let ld = imgs * ohw;
            let dyg = gather(g, dy, grp * per, imgs);
            let mut cols = output_f32(g.ckk() * ld);
            gemm(
                threads,
                (g.ckk(), ld, g.o),
                &mut cols,
                (ld, 1),
                false,
                w,
                (1, g.ckk()),
                &dyg,
                (ld, 1),
            );
            col2im(g, &cols, ld, dxg);
        });
    Some(dx)
}

/// `dwᵀ [ckk, o] = im2col(x) · dyᵀ` per group, one partial sum per group (summed in order by
/// the caller).
pub(super) fn weight_grad_partials(g: &Geometry, x: &[f32], dy: &[f32]) -> Option<Vec<Vec<f32>>> {
    let per = per_group(g)?;
    let threads = threads(g, per);
    Some(
        (0..g.n.div_ceil(per))
            .into_par_iter()
            .map(|grp| {
                let imgs = per.min(g.n - grp * per);
                let ld = imgs * g.out_hw();
                let cols = columns(g, x, grp * per, imgs);
                let dyg = gather(g, dy, grp * per, imgs);
                let mut dwt = output_f32(g.ckk() * g.o);
                gemm(
                    threads,
                    (g.ckk(), g.o, ld),
                    &mut dwt,
                    (g.o, 1),
                    false,
                    &cols,
                    (ld, 1),
                    &dyg,
                    (1, ld),
                );
                dwt
            })
            .collect(),
    )
}
