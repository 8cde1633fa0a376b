//! Times the convolution ops on SimpleConvNet's layer shapes (batch 100, 28×28), one line
//! per layer, medians of 5 after a warm-up:
//! `cargo run --release -p ffw-kernels --example conv_ops -- 7` (the kernel size).
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over 5 calls after one warm-up.
fn time(mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let mut ts = vec![];
    for _ in 0..5 {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    Ok(median(ts))
}

fn main() -> candle_core::Result<()> {
    let k: usize = match std::env::args().nth(1) {
        None => 7,
        Some(a) => a
            .parse()
            .map_err(|_| candle_core::Error::Msg(format!("kernel size, got {a}")))?,
    };
    let (n, hw, pad) = (100, 28, k / 2);
    println!("layer      forward            input+weight grad  weight grad only   (ms, GFLOP/s)");
    for (c, o) in [(3, 16), (16, 32), (32, 64), (64, 128)] {
        let x = Var::randn(0f32, 1., (n, c, hw, hw), &Device::Cpu)?;
        let w = Var::randn(0f32, 0.1, (o, c, k, k), &Device::Cpu)?;
        let proj = Tensor::randn(0f32, 1., (n, o, hw, hw), &Device::Cpu)?;
        let x_data = x.as_tensor().detach();
        // The cost of the backward graph around the convolution, subtracted below.
        let y0 = Var::zeros((n, o, hw, hw), DType::F32, &Device::Cpu)?;
        let base = time(|| (y0.as_tensor() * &proj)?.sum_all()?.backward().map(|_| ()))?;
        let fwd = time(|| ffw_kernels::conv2d(x.as_tensor(), w.as_tensor(), 1, pad).map(|_| ()))?;
        let both = time(|| {
            let y = ffw_kernels::conv2d(x.as_tensor(), w.as_tensor(), 1, pad)?;
            (y * &proj)?.sum_all()?.backward().map(|_| ())
        })? - fwd
            - base;
        let wgrad = time(|| {
            let y = ffw_kernels::conv2d(&x_data, w.as_tensor(), 1, pad)?;
            (y * &proj)?.sum_all()?.backward().map(|_| ())
        })? - fwd
            - base;
        let flop = 2. * (n * o * hw * hw * c * k * k) as f64;
        let show = |s: f64, f: f64| format!("{:7.1} ({:4.0})", s * 1e3, f / s / 1e9);
        println!(
            "{c:>3}->{o:<3}   {}     {}     {}",
            show(fwd, flop),
            show(both, 2. * flop),
            show(wgrad, flop)
        );
    }
    Ok(())
}
