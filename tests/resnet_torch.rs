//! ResNet-18 against PyTorch: forward logits, gradients, one SGD step (parameters and
//! BatchNorm statistics; why SGD: `tests/fixtures/resnet18/make.py`) and eval-mode logits on fixed weights and inputs, for both stems
//! (fixtures written by `tests/fixtures/resnet18/make.py`). Then FFW (both variants) and
//! magnitude pruning on a tiny ResNet-18, through the model seam unchanged.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ffw_data::Dataset;
use ffw_nn::{Arch, GateMode, ModelSpec, ParamStore, ResNet18Spec, Stem, Variant};
use ffw_placement::Solo;
use ffw_surgery::evaluate::{evaluate_params, UnbiasedSets};
use ffw_surgery::magnitude::magnitude_mask;
use ffw_surgery::optim;
use ffw_surgery::probe::ProbeInit;
use ffw_surgery::surgery::run_ffw;
use ffw_surgery::{FfwConfig, OptimizerConfig};

fn fixture(stem: &str) -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/resnet18")
        .join(format!("{stem}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap()
}

/// The tensors under `prefix.`, without it.
fn section(f: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    f.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect()
}

/// Largest |a − b| over the largest |b| (at least 1).
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scalar = |t: Tensor| t.to_scalar::<f32>().unwrap();
    let d = scalar((a - b).unwrap().abs().unwrap().max_all().unwrap());
    d / scalar(b.abs().unwrap().max_all().unwrap()).max(1.0)
}

fn matches_torch(stem: Stem, name: &str) {
    let f = fixture(name);
    let arch = Arch::Resnet18(ResNet18Spec {
        n_classes: 10,
        stem,
        width: 4,
    });
    let init = section(&f, "init.");
    let store = ParamStore::from_tensors(&init, 0, &Device::Cpu).unwrap();
    let model = arch.build(store.var_builder()).unwrap();
    // Building created no parameter the fixture lacks: the names are torchvision's.
    assert_eq!(store.vars().len(), init.len());
    let (x, y) = (&f["x"], f["y"].to_dtype(DType::U32).unwrap());

    let logits = model
        .head(&model.features(x, ffw_nn::Mode::Train).unwrap())
        .unwrap();
    assert!(
        rel_diff(&logits, &f["train_logits"]) < 1e-4,
        "{name}: logits"
    );
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    assert!(rel_diff(&loss.reshape(1).unwrap(), &f["loss"]) < 1e-4);
    let grads = loss.backward().unwrap();
    let mut opt = optim::build(
        &OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        store.trainable(),
    );
    for (param, var) in store.vars() {
        if let Some(g) = grads.get(var.as_tensor()) {
            let want = &f[&format!("grad.{param}")];
            assert!(rel_diff(g, want) < 1e-4, "{name}: gradient of {param}");
        }
    }
    opt.step(&grads).unwrap();
    for (param, value) in store.snapshot().unwrap() {
        let want = &f[&format!("step.{param}")];
        assert!(
            rel_diff(&value, want) < 1e-4,
            "{name}: {param} after the step"
        );
    }
    let eval = model
        .head(&model.features(x, ffw_nn::Mode::Eval).unwrap())
        .unwrap();
    assert!(
        rel_diff(&eval, &f["eval_logits"]) < 1e-4,
        "{name}: eval logits"
    );
}

#[test]
fn imagenet_stem_matches_torch() {
    matches_torch(Stem::Imagenet, "imagenet");
}

#[test]
fn cifar_stem_matches_torch() {
    matches_torch(Stem::Cifar, "cifar");
}

/// 8×8 images whose task and bias are colours of different quadrants, bias aligned with
/// probability `aligned`.
fn images(n: usize, aligned: f64, seed: u64) -> Dataset {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut x, mut y, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let label = rng.gen_range(0..2u32);
        let bias = if rng.gen_bool(aligned) {
            label
        } else {
            1 - label
        };
        for ch in 0..3 {
            for r in 0..8 {
                for c in 0..8 {
                    let v = match (ch, r < 4, c < 4) {
                        (0, true, true) => label as f32,
                        (1, false, false) => bias as f32,
                        _ => 0.0,
                    };
                    x.push(2.0 * v - 1.0 + rng.gen_range(-0.3..0.3));
                }
            }
        }
        y.push(label);
        b.push(bias);
    }
    Dataset {
        x: x.into(),
        sample_shape: vec![3, 8, 8],
        y,
        n_classes: 2,
        biases: vec![b],
        n_bias_classes: vec![2],
        aligned: vec![vec![0, 1]],
    }
}

#[test]
fn ffw_and_magnitude_pruning_run_on_a_tiny_resnet() {
    let device = Device::Cpu;
    let arch = Arch::Resnet18(ResNet18Spec {
        n_classes: 2,
        stem: Stem::Cifar,
        width: 2,
    });
    let store = ParamStore::new(3, &device);
    arch.build(store.var_builder()).unwrap();
    let base = store.snapshot().unwrap();
    let [utrain, uval, test] = [2, 3, 4].map(|seed| images(40, 0.5, seed));
    let sets = UnbiasedSets {
        train: &utrain,
        val: &uval,
        test: &test,
    };
    let mut cfg = FfwConfig {
        batch_size: 20,
        max_epochs: 2,
        ..Default::default()
    };
    cfg.probe.max_epochs = 3;
    let fresh = ProbeInit::Fresh { seed: 9 };
    let probes: Vec<_> = evaluate_params(&arch, &base, &sets, &cfg.probe, &fresh, 1, &device)
        .unwrap()
        .probes
        .iter()
        .map(|p| p.params().unwrap())
        .collect();
    let n_gated = arch.gated_layers().len();
    for variant in [Variant::Unstructured, Variant::Structured] {
        cfg.variant = variant;
        let out = run_ffw(&arch, &base, &sets, &cfg, &probes, 5, &device, &Solo).unwrap();
        assert_eq!(out.gates.layers.len(), n_gated, "{variant:?}");
        // The gates moved away from their start, and every layer's mask applies.
        let moved = out.gates.layers.iter().any(|l| {
            let m = l.m.as_tensor().abs().unwrap().max_all().unwrap();
            m.to_scalar::<f32>().unwrap() > 0.0
        });
        assert!(moved, "{variant:?}: no gate moved");
        let pruned = out.gates.effective_params(&base, GateMode::Hard).unwrap();
        evaluate_params(&arch, &pruned, &sets, &cfg.probe, &fresh, 1, &device).unwrap();
    }
    let mask = magnitude_mask(&arch, &base, 0.5, &device).unwrap();
    let s = mask.sparsity().unwrap();
    assert_eq!(s.per_layer.len(), n_gated);
    assert!((s.global - 0.5).abs() < 1e-3, "{}", s.global);
    let pruned = mask.effective_params(&base, GateMode::Hard).unwrap();
    let zeros = pruned["layer2.0.downsample.0.weight"]
        .eq(0f32)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(zeros > 0.0, "the shortcut convolution is pruned too");
}
