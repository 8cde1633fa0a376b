//! `ffw bench`: training throughput (images/second) of the steps the paper's runs repeat
//! thousands of times: a vanilla step, an FFW gate step, and forward-only evaluation.
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use ffw_data::{Batch, Dataset};
use ffw_nn::{Arch, GateMode, ModelSpec, ParamStore};
use ffw_placement::{DeviceChoice, Worker};
use ffw_surgery::evaluate::frozen_model;
use ffw_surgery::optim;
use ffw_surgery::probe::Probe;
use ffw_surgery::surgery::Surgery;
use ffw_surgery::vanilla::train_step;
use ffw_surgery::{FfwConfig, OptimizerConfig, VanillaConfig};

pub(crate) struct Case {
    pub name: &'static str,
    pub arch: Arch,
    pub batch: usize,
    /// Side of the square 3-channel input.
    pub side: usize,
    /// The vanilla optimiser of the model's benchmark.
    pub optimizer: OptimizerConfig,
}

/// The protocol's vanilla optimiser for Corrupted CIFAR-10 (PROTOCOL §5).
const ADAM: OptimizerConfig = OptimizerConfig::Adam {
    lr: 1e-3,
    weight_decay: 1e-4,
};

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "simpleconv-k7",
            arch: Arch::SimpleConvNet(ffw_nn::SimpleConvNetSpec {
                kernel: 7,
                n_classes: 10,
            }),
            batch: 100,
            side: 28,
            optimizer: VanillaConfig::default().optimizer,
        },
        Case {
            name: "simpleconv-k3",
            arch: Arch::SimpleConvNet(ffw_nn::SimpleConvNetSpec {
                kernel: 3,
                n_classes: 10,
            }),
            batch: 100,
            side: 28,
            optimizer: VanillaConfig::default().optimizer,
        },
        Case {
            name: "mlp",
            arch: Arch::Mlp(ffw_nn::MlpSpec {
                input: 2352,
                hidden: vec![100, 100, 100],
                n_classes: 10,
            }),
            batch: 256,
            side: 28,
            optimizer: VanillaConfig::default().optimizer,
        },
        Case {
            // The authors' torchvision ResNet-18 (ImageNet stem) on 32×32 Corrupted CIFAR-10.
            name: "resnet18",
            arch: Arch::Resnet18(ffw_nn::ResNet18Spec {
                n_classes: 10,
                stem: ffw_nn::Stem::Imagenet,
                width: 64,
            }),
            batch: 128,
            side: 32,
            optimizer: ADAM,
        },
    ]
}

/// Random `3 × side × side` inputs with 10 task and 10 bias classes.
pub(crate) fn synthetic(n: usize, side: usize) -> Dataset {
    let x = (0..n * 3 * side * side)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect::<Vec<f32>>();
    Dataset {
        x: x.into(),
        sample_shape: vec![3, side, side],
        y: (0..n).map(|i| (i % 10) as u32).collect(),
        n_classes: 10,
        biases: vec![(0..n).map(|i| ((i / 10) % 10) as u32).collect()],
        n_bias_classes: vec![10],
        aligned: vec![(0..10).collect()],
    }
}

/// Median images/second over `steps` timed calls of `step` (one warm-up call first), each
/// waiting for the device to finish its work.
fn measure(
    device: &Device,
    batch: usize,
    steps: usize,
    mut step: impl FnMut() -> Result<()>,
) -> Result<f64> {
    step()?;
    device.synchronize()?;
    let mut rates: Vec<f64> = (0..steps)
        .map(|_| {
            let t = Instant::now();
            step()?;
            device.synchronize()?;
            Ok(batch as f64 / t.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

pub fn bench(steps: usize, only: &[String], device: DeviceChoice, compare_cpu: bool) -> Result<()> {
    if steps == 0 {
        bail!("--steps must be > 0");
    }
    let known: Vec<&str> = cases().iter().map(|c| c.name).collect();
    if let Some(bad) = only.iter().find(|o| !known.contains(&o.as_str())) {
        bail!("--only {bad}: unknown case (known: {})", known.join(", "));
    }
    let device = ffw_placement::open(device, Worker::SOLO, 1)?;
    if compare_cpu {
        let selected: Vec<Case> = cases()
            .into_iter()
            .filter(|c| only.is_empty() || only.iter().any(|o| o == c.name))
            .collect();
        return crate::compare::compare(&selected, &device, steps);
    }
    let on = ffw_placement::describe(&device);
    let threads = candle_core::utils::get_num_threads();
    println!(
        "{:<14} {:>6} {:>14} {:>14} {:>14}   ({on} {}, threads {threads}, median of {steps} steps)",
        "case", "batch", "vanilla img/s", "ffw img/s", "eval img/s", on.name
    );
    for case in cases()
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| o == c.name))
    {
        let data = synthetic(case.batch.max(1000), case.side);
        let idx: Vec<usize> = (0..case.batch).collect();
        let b: Batch = data.batch(&idx, &device)?;

        let store = ParamStore::new(0, &device);
        let model = case.arch.build(store.var_builder())?;
        let mut opt = optim::build(&case.optimizer, store.trainable());
        let vanilla = measure(&device, case.batch, steps, || {
            train_step(&model, opt.as_mut(), &b)?;
            Ok(())
        })?;

        let base = store.snapshot()?;
        let cfg = FfwConfig::default();
        let probes = vec![Probe::new(
            case.arch.feature_dim(),
            10,
            &cfg.probe,
            1,
            &device,
        )?];
        let mut surgery = Surgery::new(&case.arch, &base, &cfg, probes, &device)?;
        let mode = GateMode::Soft { temperature: 1.0 };
        let ffw = measure(&device, case.batch, steps, || {
            surgery.gate_step(&b, mode)?;
            Ok(())
        })?;

        let eval_idx: Vec<usize> = (0..1000).collect();
        let eb = data.batch(&eval_idx, &device)?;
        // Forward only, as every evaluation runs (and torch under no_grad): no graph.
        let frozen = frozen_model(&case.arch, &base, &device)?;
        let eval = measure(&device, 1000, steps, || {
            let logits: Tensor = frozen.head(&frozen.features(&eb.x, ffw_nn::Mode::Eval)?)?;
            logits.sum_all()?.to_scalar::<f32>()?;
            Ok(())
        })?;
        println!(
            "{:<14} {:>6} {:>14.1} {:>14.1} {:>14.1}",
            case.name, case.batch, vanilla, ffw, eval
        );
    }
    // Peak resident memory of the whole process (run one case with --only to compare a step).
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}

pub(crate) fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0 // kilobytes on Linux
}
