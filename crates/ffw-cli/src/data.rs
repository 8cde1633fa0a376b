//! `ffw check-data`, `ffw example-data` and `ffw bench-loader`: the data side on its own.
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use ffw_data::image_files::{ImageFiles, Preparation};
use ffw_data::{Dataset, Inputs};
use ffw_sweep::RunConfig;

/// Prints every problem of the config's data; an error if there is any.
pub fn check_data(config: &Path) -> Result<()> {
    let cfg = RunConfig::load(config)?;
    let data = cfg.data.benchmark();
    let problems = data
        .problems()
        .with_context(|| format!("{}: data", config.display()))?;
    for p in &problems {
        println!("{p}");
    }
    if !problems.is_empty() {
        bail!(
            "{} unusable row(s) in the data of {}",
            problems.len(),
            config.display()
        );
    }
    println!(
        "{}: the data of {} is usable",
        data.name(),
        config.display()
    );
    Ok(())
}

pub fn example_data(out: &Path, n: usize, aligned: f64, seed: u64) -> Result<()> {
    ffw_data::example::write(out, n, aligned, seed)
        .with_context(|| format!("writing the example dataset into {}", out.display()))?;
    println!("{n} images and labels.csv written to {}", out.display());
    Ok(())
}

/// Images/second through the on-demand loader (decode, resize, normalise, prefetch), over
/// every JPEG/PNG file of `dir`; one untimed pass first so both passes read from the page
/// cache, as repeated epochs do.
/// With `cache`, the images come from the resized-image cache there (built first if absent).
pub fn bench_loader(
    dir: &Path,
    size: u32,
    batch: usize,
    limit: Option<usize>,
    cache: Option<&Path>,
) -> Result<()> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    paths.truncate(limit.unwrap_or(usize::MAX));
    if paths.is_empty() {
        bail!("{}: no .jpg/.jpeg/.png files", dir.display());
    }
    let n = paths.len();
    let prep = Preparation::imagenet(size);
    let mut files = ImageFiles {
        paths,
        prep: prep.clone(),
        flip: false,
        cached: None,
    };
    if let Some(c) = cache {
        let t = Instant::now();
        files = ffw_data::image_cache::cached(vec![files], c)?.remove(0);
        println!("cache ready in {:.1} s", t.elapsed().as_secs_f64());
    }
    let data = Dataset {
        sample_shape: prep.sample_shape(),
        x: Inputs::Files(Arc::new(files)),
        y: vec![0; n],
        n_classes: 1,
        biases: vec![],
        n_bias_classes: vec![],
        aligned: vec![],
    };
    let order: Vec<usize> = (0..n).collect();
    let pass = || -> Result<f64> {
        let t = Instant::now();
        for b in data.batches(&order, batch, None, &Device::Cpu) {
            b?;
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    };
    pass()?;
    let rate = pass()?;
    println!(
        "{n} images from {}{} to {size}x{size}, batch {batch}, threads {}: {rate:.0} images/s",
        dir.display(),
        if cache.is_some() { " (cached)" } else { "" },
        rayon::current_num_threads()
    );
    println!("peak RSS {:.0} MiB", crate::bench::peak_rss_mib());
    Ok(())
}
