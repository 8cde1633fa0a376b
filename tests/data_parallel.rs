//! Data-parallel training over MPI: under `mpirun -np 2` two ranks that split every global
//! minibatch between them train the model one process trains on the whole batches. The test
//! starts mpirun on its own binary; each rank runs this test again as a child.
#![cfg(feature = "mpi")]

use std::process::Command;

use candle_core::Device;
use ffw_data::dataset::epoch_order;
use ffw_data::Dataset;
use ffw_nn::{Arch, MlpSpec, ModelSpec, ParamStore};
use ffw_placement::mpi_backend::MpiCollective;
use ffw_placement::{Collective, Solo};
use ffw_surgery::data_parallel::{shard, train_step};
use ffw_surgery::{optim, OptimizerConfig};
use mpi::traits::Communicator;

/// Set for the ranks mpirun starts.
const CHILD: &str = "FFW_DATA_PARALLEL_RANK";
/// Global minibatch: odd, so the ranks' slices differ in size (8 and 7).
const BATCH: usize = 15;
const STEPS: usize = 6;

/// The parameters after `steps` Adam steps on global minibatches, trained by `group`.
fn train(group: &dyn Collective, steps: usize) -> Vec<f32> {
    let n = 90;
    let data = Dataset {
        x: (0..n * 20)
            .map(|i| ((i * 104729 % 211) as f32 / 105.0) - 1.0)
            .collect(),
        sample_shape: vec![20],
        y: (0..n).map(|i| (i * 7 % 4) as u32).collect(),
        n_classes: 4,
        biases: vec![(0..n).map(|i| (i % 3) as u32).collect()],
        n_bias_classes: vec![3],
        aligned: vec![vec![0, 1, 2, 0]],
    };
    let arch = Arch::Mlp(MlpSpec {
        input: 20,
        hidden: vec![32, 16],
        n_classes: 4,
    });
    let store = ParamStore::new(11, &Device::Cpu);
    let model = arch.build(store.var_builder()).unwrap();
    let adam = OptimizerConfig::Adam {
        lr: 1e-2,
        weight_decay: 1e-4,
    };
    let mut opt = optim::build(&adam, store.trainable());
    for global in epoch_order(n, 5, 0).chunks(BATCH).take(steps) {
        let local = data
            .batch(shard(global, group.rank(), group.size()), &Device::Cpu)
            .unwrap();
        train_step(&model, &store, opt.as_mut(), &local, global.len(), group).unwrap();
    }
    store
        .trainable()
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0., f32::max)
}

/// One rank's part: train on two ranks, compare with one rank's training of the same
/// batches, and check both replicas hold the same parameters.
fn rank() {
    let universe = mpi::initialize().expect("MPI starts");
    let world = universe.world();
    assert_eq!(world.size(), 2, "run under mpirun -np 2");
    let group = MpiCollective::new(world.duplicate());
    let two = train(&group, STEPS);
    let one = train(&Solo, STEPS);
    let diff = max_diff(&one, &two);
    println!("rank {}: max |1-rank - 2-rank| = {diff:e}", world.rank());
    assert!(diff < 1e-5, "rank {}: max difference {diff}", world.rank());
    assert!(
        max_diff(&one, &train(&Solo, 0)) > 1e-3,
        "training moved nothing"
    );
    // Both replicas the same bits: rank 1's parameters as rank 0 sees them.
    let other = group
        .broadcast(
            &candle_core::Tensor::new(two.as_slice(), &Device::Cpu).unwrap(),
            1,
        )
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(other, two, "rank {}: replicas differ", world.rank());
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
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "mpirun failed:\n{out}\n{err}");
    for r in 0..2 {
        assert!(
            out.contains(&format!("rank {r}: max")),
            "rank {r} did not report:\n{out}"
        );
    }
}
