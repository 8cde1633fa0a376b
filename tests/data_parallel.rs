//! Data-parallel training over MPI: under `mpirun -np 2` two ranks that split every global
//! minibatch between them train the model (vanilla steps, an MLP and a model with BatchNorm,
//! its statistics synchronised) and its gates (FFW steps, the MI on the gathered batch) as one
//! process does on the whole batches. The test starts mpirun on its own binary; each rank runs
//! this test again as a child.
//!
//! On a node with two GPUs, `FFW_DATA_PARALLEL_DEVICE=cuda` runs the same on them, the group
//! reducing over NCCL (a build with `--features ffw-cli/cuda,ffw-cli/nccl`; docs/GPU.md).
#![cfg(feature = "mpi")]

use std::process::Command;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use ffw_data::dataset::epoch_order;
use ffw_data::Dataset;
use ffw_nn::{Arch, GateMode, MlpSpec, ModelSpec, ParamStore, SimpleConvNetSpec};
use ffw_placement::mpi_backend::group_on;
use ffw_placement::{Collective, DeviceChoice, Group, Solo, Worker};
use ffw_surgery::data_parallel::{shard, train_step};
use ffw_surgery::probe::Probe;
use ffw_surgery::surgery::Surgery;
use ffw_surgery::{optim, FfwConfig, OptimizerConfig};
use mpi::traits::Communicator;

/// Set for the ranks mpirun starts.
const CHILD: &str = "FFW_DATA_PARALLEL_RANK";
/// `--device` of both ranks (default `cpu`); `cuda` binds each rank its own GPU.
const DEVICE: &str = "FFW_DATA_PARALLEL_DEVICE";
/// Global minibatch: odd, so the ranks' slices differ in size (8 and 7).
const BATCH: usize = 15;
const STEPS: usize = 6;
const N: usize = 90;

/// `N` samples of `sample_shape`.
fn data(sample_shape: &[usize]) -> Dataset {
    let dim: usize = sample_shape.iter().product();
    Dataset {
        x: (0..N * dim)
            .map(|i| ((i * 104729 % 211) as f32 / 105.0) - 1.0)
            .collect(),
        sample_shape: sample_shape.to_vec(),
        y: (0..N).map(|i| (i * 7 % 4) as u32).collect(),
        n_classes: 4,
        biases: vec![(0..N).map(|i| (i % 3) as u32).collect()],
        n_bias_classes: vec![3],
        aligned: vec![vec![0, 1, 2, 0]],
    }
}

fn mlp() -> Arch {
    Arch::Mlp(MlpSpec {
        input: 20,
        hidden: vec![32, 16],
        n_classes: 4,
    })
}

/// The initial parameters of `arch` on `device`, and the model built on them.
fn start(arch: Arch, device: &Device) -> (Arch, ParamStore, ffw_nn::Model) {
    let store = ParamStore::new(11, device);
    let model = arch.build(store.var_builder()).unwrap();
    (arch, store, model)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// This rank's slice of each of the first `steps` global minibatches of an epoch order.
fn slices(
    d: &Dataset,
    group: &dyn Collective,
    device: &Device,
    seed: u64,
    steps: usize,
) -> Vec<(ffw_data::Batch, usize)> {
    epoch_order(N, seed, 0)
        .chunks(BATCH)
        .take(steps)
        .map(|global| {
            let local = shard(global, group.rank(), group.size());
            (d.batch(local, device).unwrap(), global.len())
        })
        .collect()
}

/// The parameters (running statistics included) after `steps` steps of `optimizer` on `arch`
/// on global minibatches of `d`, trained by `group`.
fn vanilla(
    arch: Arch,
    optimizer: &OptimizerConfig,
    d: &Dataset,
    (group, device): (&Group, &Device),
    steps: usize,
) -> Vec<f32> {
    let (_, store, model) = start(arch, device);
    let mut opt = optim::build(optimizer, store.trainable());
    for (local, global_len) in slices(d, group.as_ref(), device, 5, steps) {
        train_step(&model, &store, opt.as_mut(), &local, global_len, group).unwrap();
    }
    let mut vars = store.vars();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.iter().flat_map(|(_, v)| flat(v)).collect()
}

fn vanilla_mlp(on: (&Group, &Device), steps: usize) -> Vec<f32> {
    let adam = OptimizerConfig::Adam {
        lr: 1e-2,
        weight_decay: 1e-4,
    };
    vanilla(mlp(), &adam, &data(&[20]), on, steps)
}

/// SimpleConvNet: a BatchNorm after every convolution. With SGD: Adam divides each gradient
/// by its own running size, which turns the last-bit differences of near-zero convolution
/// gradients (one rank sums the batch in another order than two) into parameter differences
/// of ~7e-5 after these six steps; SGD keeps them at ~1e-7.
fn vanilla_batch_norm(on: (&Group, &Device), steps: usize) -> Vec<f32> {
    let arch = Arch::SimpleConvNet(SimpleConvNetSpec {
        kernel: 3,
        n_classes: 4,
    });
    let sgd = OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    vanilla(arch, &sgd, &data(&[3, 5, 5]), on, steps)
}

/// The gates and the privacy head after `steps` FFW gate steps from the initial parameters,
/// run by `group`, at the paper's λ = 10: without the MI's gradient through the gathered batch
/// the two runs differ by ~1e-3.
fn ffw((group, device): (&Group, &Device), steps: usize) -> Vec<f32> {
    let (arch, store, _) = start(mlp(), device);
    let base = store.snapshot().unwrap();
    let cfg = FfwConfig {
        alpha: 1.0,
        lambda: 10.0,
        ..FfwConfig::default()
    };
    let probe = Probe::new(16, 3, &cfg.probe, 2, device).unwrap();
    let mut surgery = Surgery::new(&arch, &base, &cfg, vec![probe], device).unwrap();
    let mode = GateMode::Soft { temperature: 1.0 };
    for (local, global_len) in slices(&data(&[20]), group.as_ref(), device, 6, steps) {
        surgery
            .gate_step_in(&local, global_len, mode, group.as_ref())
            .unwrap();
    }
    let mut out: Vec<f32> = surgery.gates.vars().iter().flat_map(|v| flat(v)).collect();
    let heads = surgery.heads().unwrap();
    let mut names: Vec<&String> = heads[0].keys().collect();
    names.sort();
    out.extend(names.into_iter().flat_map(|n| flat(&heads[0][n])));
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0., f32::max)
}

type Run = fn((&Group, &Device), usize) -> Vec<f32>;
const RUNS: [(&str, Run); 3] = [
    ("vanilla", vanilla_mlp),
    ("vanilla-batch-norm", vanilla_batch_norm),
    ("ffw", ffw),
];

/// One rank's part, for vanilla and FFW steps: run on two ranks, compare with one rank's run
/// of the same batches, and check both replicas hold the same parameters.
fn rank() {
    let universe = mpi::initialize().expect("MPI starts");
    let world = universe.world();
    assert_eq!(world.size(), 2, "run under mpirun -np 2");
    let choice: DeviceChoice = std::env::var(DEVICE)
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .unwrap();
    let worker = Worker {
        index: world.rank() as usize,
        count: 2,
    };
    let device = ffw_placement::open(choice, worker, 1).unwrap();
    let group = group_on(world.duplicate(), &device).unwrap();
    let solo: Group = Arc::new(Solo);
    for (what, run) in RUNS {
        let two = run((&group, &device), STEPS);
        let one = run((&solo, &device), STEPS);
        let diff = max_diff(&one, &two);
        let r = world.rank();
        println!("rank {r} {what}: max |1-rank - 2-rank| = {diff:e}");
        assert!(diff < 1e-5, "rank {r} {what}: max difference {diff}");
        assert!(
            max_diff(&one, &run((&solo, &device), 0)) > 1e-3,
            "{what}: training moved nothing"
        );
        // Both replicas the same bits: rank 1's parameters as every rank sees them.
        let other = group
            .broadcast(&Tensor::new(two.as_slice(), &device).unwrap(), 1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(other, two, "rank {r} {what}: replicas differ");
    }
}

#[test]
fn two_mpi_ranks_train_like_one_on_the_same_global_batches() {
    if std::env::var_os(CHILD).is_some() {
        return rank();
    }
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun not found (install openmpi-bin)");
        return;
    }
    let me = std::env::current_exe().unwrap();
    let o = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "2",
            "-x",
            CHILD,
            "-x",
            DEVICE,
        ])
        .arg(&me)
        .args([
            "two_mpi_ranks_train_like_one_on_the_same_global_batches",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, "1")
        .env(
            DEVICE,
            std::env::var(DEVICE).unwrap_or_else(|_| "cpu".into()),
        )
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "mpirun failed:\n{out}\n{err}");
    for r in 0..2 {
        for (what, _) in RUNS {
            let line = format!("rank {r} {what}: max");
            assert!(
                out.contains(&line),
                "rank {r} did not report {what}:\n{out}"
            );
        }
    }
}
