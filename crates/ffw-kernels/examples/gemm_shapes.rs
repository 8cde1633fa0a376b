//! GFLOP/s of the `gemm` crate, one thread, for the products of one convolution layer in
//! each orientation the conv ops could use (which operand is the GEMM's row side changes
//! the microkernel's efficiency by up to ~25% here):
//! `cargo run --release -p ffw-kernels --example gemm_shapes -- 128 784 3136`
//! (output channels O, output pixels P, C·k·k; the default is SimpleConvNet k=7's last layer).
use std::time::Instant;

/// `dst (m×n) = A (m×k) · B (k×n)`, each given by (row stride, column stride).
fn run(
    name: &str,
    (m, n, k): (usize, usize, usize),
    a_s: (usize, usize),
    b_s: (usize, usize),
    d_s: (usize, usize),
) {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let mut ts = vec![];
    for _ in 0..7 {
        let t = Instant::now();
        // SAFETY: every stride pair describes a dense m×k, k×n or m×n matrix in its buffer.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                d_s.1 as isize,
                d_s.0 as isize,
                false,
                a.as_ptr(),
                a_s.1 as isize,
                a_s.0 as isize,
                b.as_ptr(),
                b_s.1 as isize,
                b_s.0 as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    println!(
        "{name:<40} {:6.1} GFLOP/s",
        2.0 * (m * n * k) as f64 / ts[3] / 1e9
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (o, p, q) = match args[..] {
        [o, p, q] => (o, p, q),
        _ => (128, 784, 3136),
    };
    // cols = im2col(x) is q×p, w is o×q, dy is o×p, all row-major.
    run(
        "forward  w·cols          (o×p)",
        (o, p, q),
        (q, 1),
        (p, 1),
        (p, 1),
    );
    run(
        "forward  colsᵀ·wᵀ        (p×o)",
        (p, o, q),
        (1, p),
        (1, q),
        (o, 1),
    );
    run(
        "wgrad    dy·colsᵀ        (o×q)",
        (o, q, p),
        (p, 1),
        (1, p),
        (q, 1),
    );
    run(
        "wgrad    cols·dyᵀ        (q×o, used)",
        (q, o, p),
        (p, 1),
        (1, p),
        (o, 1),
    );
    run(
        "igrad    wᵀ·dy           (q×p, used)",
        (q, p, o),
        (1, q),
        (p, 1),
        (p, 1),
    );
    run(
        "igrad    dyᵀ·w           (p×q)",
        (p, q, o),
        (1, p),
        (q, 1),
        (q, 1),
    );
}
