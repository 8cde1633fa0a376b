//! End to end on a tiny, strongly biased synthetic problem: vanilla training learns the
//! shortcut, and FFW must cut the bias out of the bottleneck (lower probe accuracy).
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use ffw_data::Dataset;
use ffw_nn::{Arch, GateMode, ModelSpec, Variant};
use ffw_placement::Solo;
use ffw_surgery::evaluate::{evaluate_params, UnbiasedSets};
use ffw_surgery::probe::ProbeInit;
use ffw_surgery::surgery::run_ffw;
use ffw_surgery::vanilla::train_vanilla;
use ffw_surgery::{
    AugmentConfig, FfwConfig, LrSchedule, OptimizerConfig, PlateauConfig, ProbeConfig,
    VanillaConfig,
};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const DIM: usize = 16;

/// Dimensions 0..4 carry the task label weakly, dimension 4 the bias label strongly, the rest is noise.
/// `aligned` is the probability that the bias equals the label (0.5 = unbiased).
fn synthetic(n: usize, aligned: f64, seed: u64) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 1.0).unwrap();
    let (mut x, mut y, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let label = rng.gen_range(0..2u32);
        let bias = if rng.gen_bool(aligned) {
            label
        } else {
            1 - label
        };
        for d in 0..DIM {
            let signal = match d {
                0..4 => (2.0 * label as f32 - 1.0) * 0.7,
                4 => 2.0 * bias as f32 - 1.0,
                _ => 0.0,
            };
            x.push(
                signal
                    + noise.sample(&mut rng) as f32 * if (4..8).contains(&d) { 0.3 } else { 1.0 },
            );
        }
        y.push(label);
        b.push(bias);
    }
    Dataset {
        x: x.into(),
        sample_shape: vec![DIM],
        y,
        n_classes: 2,
        biases: vec![b],
        n_bias_classes: vec![2],
        aligned: vec![vec![0, 1]],
    }
}

/// A biased train set and three small unbiased sets (train, val, test).
fn small_problem() -> (Dataset, [Dataset; 3]) {
    (
        synthetic(400, 0.95, 1),
        [2, 3, 4].map(|seed| synthetic(200, 0.5, seed)),
    )
}

/// The privacy heads trained to plateau on the vanilla model, which FFW starts from.
fn vanilla_heads(
    spec: &dyn ModelSpec,
    params: &HashMap<String, Tensor>,
    sets: &UnbiasedSets,
    probe: &ProbeConfig,
) -> Vec<HashMap<String, Tensor>> {
    let fresh = ProbeInit::Fresh { seed: 9 };
    evaluate_params(spec, params, sets, probe, &fresh, 1, &Device::Cpu)
        .unwrap()
        .probes
        .iter()
        .map(|p| p.params().unwrap())
        .collect()
}

/// Two epochs of the paper's vanilla SGD, batch 50.
const SHORT_VANILLA: VanillaConfig = VanillaConfig {
    epochs: 2,
    batch_size: 50,
    optimizer: OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-4,
    },
    milestones: vec![],
    gamma: 0.1,
    checkpoints: vec![],
    schedule: LrSchedule::MultiStep,
    augment: AugmentConfig {
        crop_padding: 0,
        hflip: false,
        fill: vec![],
    },
    plateau: None,
};

/// The plateau schedule lowers the rate on the monitored loss and stops below `min_lr`:
/// with a 90% relative threshold no epoch improves on the first, and patience 0 reduces
/// after every later one: 0.1, 0.1, 0.01, 0.001, then 1e-4 < 1e-3 stops after epoch 4.
#[test]
fn the_plateau_schedule_stops_training_below_min_lr() {
    let arch = Arch::Mlp(ffw_nn::MlpSpec {
        input: DIM,
        hidden: vec![8],
        n_classes: 2,
    });
    let (train, val) = (synthetic(200, 0.98, 1), synthetic(100, 0.5, 2));
    let cfg = VanillaConfig {
        epochs: 50,
        schedule: LrSchedule::Plateau,
        plateau: Some(PlateauConfig {
            factor: 0.1,
            patience: 0,
            cooldown: 0,
            threshold: 0.9,
            min_lr: 1e-3,
        }),
        ..SHORT_VANILLA
    };
    cfg.validate().unwrap();
    let out = train_vanilla(&arch, None, &train, Some(&val), &cfg, 0, &Device::Cpu).unwrap();
    let lrs: Vec<f64> = out.history.iter().map(|e| e.lr).collect();
    assert_eq!(lrs.len(), 4, "{lrs:?}");
    for (got, want) in lrs.iter().zip([0.1, 0.1, 0.01, 0.001]) {
        assert!((got - want).abs() < 1e-12, "{lrs:?}");
    }
    assert!(out
        .history
        .iter()
        .all(|e| e.monitor_loss.is_some_and(f64::is_finite)));
    let no_monitor = train_vanilla(&arch, None, &train, None, &cfg, 0, &Device::Cpu);
    assert!(no_monitor.is_err());
}

#[test]
fn ffw_lowers_the_probes_bias_accuracy_below_vanillas() {
    let device = Device::Cpu;
    let arch = Arch::Mlp(ffw_nn::MlpSpec {
        input: DIM,
        hidden: vec![32, 32],
        n_classes: 2,
    });
    let train = synthetic(2000, 0.98, 1);
    let (utrain, uval, test) = (
        synthetic(600, 0.5, 2),
        synthetic(600, 0.5, 3),
        synthetic(1000, 0.5, 4),
    );
    let sets = UnbiasedSets {
        train: &utrain,
        val: &uval,
        test: &test,
    };
    let vanilla_cfg = VanillaConfig {
        epochs: 10,
        batch_size: 50,
        optimizer: OptimizerConfig::Adam {
            lr: 1e-3,
            weight_decay: 1e-4,
        },
        milestones: vec![],
        gamma: 0.1,
        checkpoints: vec![],
        ..SHORT_VANILLA
    };
    let vanilla = train_vanilla(&arch, None, &train, None, &vanilla_cfg, 0, &device).unwrap();
    // The paper's schedule and optimiser; only the minibatch is smaller, for more steps.
    let mut cfg = FfwConfig {
        batch_size: 50,
        ..Default::default()
    };
    cfg.probe.max_epochs = 50;
    let fresh = ProbeInit::Fresh { seed: 9 };
    let before = evaluate_params(
        &arch,
        &vanilla.params,
        &sets,
        &cfg.probe,
        &fresh,
        1,
        &device,
    )
    .unwrap();
    let probes: Vec<_> = before.probes.iter().map(|p| p.params().unwrap()).collect();
    assert!(
        before.report.test.bias_acc[0] > 0.9,
        "the vanilla bottleneck must encode the bias: {:?}",
        before.report.test
    );

    for variant in [Variant::Unstructured, Variant::Structured] {
        cfg.variant = variant;
        let out = run_ffw(
            &arch,
            &vanilla.params,
            &sets,
            &cfg,
            &probes,
            5,
            &device,
            &Solo,
        )
        .unwrap();
        let pruned = out
            .gates
            .effective_params(&vanilla.params, GateMode::Hard)
            .unwrap();
        let after = evaluate_params(&arch, &pruned, &sets, &cfg.probe, &fresh, 1, &device)
            .unwrap()
            .report;
        assert!(!out.history.is_empty());
        assert!(
            after.test.bias_acc[0] < before.report.test.bias_acc[0] - 0.1,
            "{variant:?}: probe bias accuracy {} not below vanilla's {}",
            after.test.bias_acc[0],
            before.report.test.bias_acc[0]
        );
        let s = out.gates.sparsity().unwrap();
        assert!(
            s.global > 0.0 && s.global < 1.0,
            "{variant:?} sparsity {}",
            s.global
        );
    }
}

/// A temperature cut that does not end the run is followed by a re-fit of the heads at the
/// new temperature (PROTOCOL §4): recorded in the history, and the heads differ from those of
/// the same run stopped at that cut.
#[test]
fn a_temperature_cut_is_followed_by_a_head_refit() {
    let device = Device::Cpu;
    let arch = Arch::Mlp(ffw_nn::MlpSpec {
        input: DIM,
        hidden: vec![16],
        n_classes: 2,
    });
    let (train, [utrain, uval, test]) = small_problem();
    let sets = UnbiasedSets {
        train: &utrain,
        val: &uval,
        test: &test,
    };
    let vanilla = train_vanilla(&arch, None, &train, None, &SHORT_VANILLA, 0, &device).unwrap();
    let mut cfg = FfwConfig {
        batch_size: 50,
        max_epochs: 2,
        // Every epoch after the first counts as "no improvement", and one is too many: the
        // temperature drops after epoch 2.
        temperature_patience: 0,
        temperature_threshold: 0.99,
        ..Default::default()
    };
    cfg.probe.max_epochs = 20;
    let probes = vanilla_heads(&arch, &vanilla.params, &sets, &cfg.probe);
    let run = |cfg: &FfwConfig| {
        run_ffw(
            &arch,
            &vanilla.params,
            &sets,
            cfg,
            &probes,
            5,
            &device,
            &Solo,
        )
        .unwrap()
    };

    let refit = run(&cfg);
    let h = &refit.history;
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].temperature, h[1].temperature), (1.0, 1.0));
    assert_eq!(refit.temperature_changes.len(), 1);
    assert_eq!(refit.temperature_changes[0].epoch, 2);
    assert_eq!(h[0].refit_probe_epochs, None);
    let epochs = h[1].refit_probe_epochs.expect("a re-fit after the cut");
    assert!(epochs >= 1 && h[0].probe_epochs >= 1, "{h:?}");
    // Soft scores on val and test every epoch, one bias accuracy per attribute.
    for e in h {
        assert_eq!(e.soft_val.as_ref().unwrap().bias_acc.len(), 1);
        assert!(e.soft_test.as_ref().unwrap().task_acc > 0.0);
    }

    // The same run, told to stop at that cut: identical up to the re-fit.
    cfg.min_temperature = 0.5;
    let stopped = run(&cfg);
    assert_eq!(stopped.history[1].refit_probe_epochs, None);
    assert_eq!(stopped.history[1].val_mi, h[1].val_mi);
    let moved = refit.heads[0]
        .iter()
        .map(|(name, t)| {
            (t - &stopped.heads[0][name])
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        })
        .fold(0f32, f32::max);
    assert!(moved > 0.0, "the re-fit left the head unchanged");
}

#[test]
fn a_checkpoint_is_the_model_after_that_many_steps() {
    let device = Device::Cpu;
    let arch = Arch::Mlp(ffw_nn::MlpSpec {
        input: DIM,
        hidden: vec![8],
        n_classes: 2,
    });
    let train = synthetic(200, 0.9, 1);
    let cfg = |epochs: usize, checkpoints: Vec<f64>| VanillaConfig {
        epochs,
        batch_size: 50,
        optimizer: OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        milestones: vec![],
        gamma: 0.1,
        checkpoints,
        ..SHORT_VANILLA
    };
    // 4 steps per epoch: 0.25 epochs = after step 1, 1.0 = after the first epoch.
    let long = train_vanilla(
        &arch,
        None,
        &train,
        None,
        &cfg(3, vec![0.25, 1.0]),
        7,
        &device,
    )
    .unwrap();
    let one = train_vanilla(&arch, None, &train, None, &cfg(1, vec![]), 7, &device).unwrap();
    assert_eq!(long.checkpoints.len(), 2);
    let (at, early) = &long.checkpoints[0];
    assert_eq!(*at, 0.25);
    let (at, after_one) = &long.checkpoints[1];
    assert_eq!(*at, 1.0);
    for (name, t) in &one.params {
        let same = |a: &candle_core::Tensor| {
            (a - t)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(same(&after_one[name]), 0.0, "{name} after one epoch");
        if name.ends_with("weight") {
            assert!(same(&early[name]) > 0.0, "{name} moved after step 1");
            assert!(same(&long.params[name]) > 0.0, "{name} moved in epochs 2-3");
        }
    }
}

/// A model added in a few lines, through the model seam alone (`ModelSpec` + `Backbone`):
/// vanilla training, both FFW variants, magnitude pruning and the per-layer sparsity run on
/// it without any change to the crates.
#[test]
fn a_model_added_through_the_seam_runs_vanilla_ffw_and_pruning() {
    use candle_core::Module;
    use ffw_nn::{Backbone, GatedLayerSpec, Model};

    struct Toy;
    struct ToyNet {
        hidden: candle_nn::Linear,
        head: candle_nn::Linear,
    }
    impl Backbone for ToyNet {
        fn features(&self, x: &Tensor, _mode: ffw_nn::Mode) -> candle_core::Result<Tensor> {
            self.hidden.forward(x)?.relu()
        }
        fn head(&self, f: &Tensor) -> candle_core::Result<Tensor> {
            self.head.forward(f)
        }
    }
    impl ModelSpec for Toy {
        fn validate(&self) -> ffw_nn::Result<()> {
            Ok(())
        }
        fn build(&self, vb: candle_nn::VarBuilder) -> ffw_nn::Result<Model> {
            Ok(Box::new(ToyNet {
                hidden: candle_nn::linear(DIM, 8, vb.pp("hidden"))?,
                head: candle_nn::linear(8, 2, vb.pp("head"))?,
            }))
        }
        fn feature_dim(&self) -> usize {
            8
        }
        fn gated_layers(&self) -> Vec<GatedLayerSpec> {
            ["hidden", "head"]
                .map(|name| GatedLayerSpec {
                    name: name.into(),
                    norm: None,
                })
                .to_vec()
        }
    }

    let device = Device::Cpu;
    let (train, [utrain, uval, test]) = small_problem();
    let sets = UnbiasedSets {
        train: &utrain,
        val: &uval,
        test: &test,
    };
    let vanilla = train_vanilla(&Toy, None, &train, None, &SHORT_VANILLA, 0, &device).unwrap();
    let mut cfg = FfwConfig {
        batch_size: 50,
        max_epochs: 3,
        ..Default::default()
    };
    cfg.probe.max_epochs = 10;
    let probes = vanilla_heads(&Toy, &vanilla.params, &sets, &cfg.probe);
    for variant in [Variant::Unstructured, Variant::Structured] {
        cfg.variant = variant;
        let out = run_ffw(
            &Toy,
            &vanilla.params,
            &sets,
            &cfg,
            &probes,
            5,
            &device,
            &Solo,
        )
        .unwrap();
        assert_eq!(out.history.len(), 3);
        let layers: Vec<String> = out
            .gates
            .sparsity()
            .unwrap()
            .per_layer
            .into_iter()
            .map(|l| l.layer)
            .collect();
        assert_eq!(layers, ["hidden", "head"]);
    }
    let mask = ffw_surgery::magnitude::magnitude_mask(&Toy, &vanilla.params, 0.5, &device).unwrap();
    assert!((mask.sparsity().unwrap().global - 0.5).abs() < 0.01);
}
