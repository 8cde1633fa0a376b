//! `ffw run`: data → vanilla (trained or reused) → FFW per variant → one JSON result.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use ffw_nn::GateMode;
use ffw_surgery::checkpoint::{self, CheckpointCard};
use ffw_surgery::evaluate::{evaluate_params, UnbiasedSets};
use ffw_surgery::probe::ProbeInit;
use ffw_surgery::seeds::sub_seed;
use ffw_surgery::surgery::run_ffw;
use ffw_surgery::vanilla::train_vanilla;

use crate::config::RunConfig;
use crate::output::{write_json_atomic, RunResult, VariantResult, VERSIONS};

pub fn output_dir(config_path: &Path, cfg: &RunConfig, cli: Option<PathBuf>) -> PathBuf {
    cli.or_else(|| cfg.output.clone()).unwrap_or_else(|| {
        let stem = config_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        PathBuf::from("results").join(stem)
    })
}

pub fn run(config_path: &Path, output: Option<PathBuf>, seed: Option<u64>) -> Result<()> {
    let mut cfg = RunConfig::load(config_path)?;
    if let Some(s) = seed {
        cfg.seed = s;
    }
    let out = output_dir(config_path, &cfg, output);
    let device = Device::Cpu;
    let arch = cfg.arch();
    let mut wall = BTreeMap::new();

    let t = Instant::now();
    let (dir, data_cfg) = cfg.data.biased_mnist();
    let mnist = ffw_data::mnist::load_dir(&dir)
        .with_context(|| format!("loading MNIST (data.dir in {})", config_path.display()))?;
    let splits =
        ffw_data::biased_mnist::build_splits(&mnist, &data_cfg, sub_seed(cfg.seed, "data"))
            .with_context(|| {
                format!(
                    "building Biased MNIST (data section of {})",
                    config_path.display()
                )
            })?;
    let sets = UnbiasedSets {
        train: &splits.unbiased_train,
        val: &splits.unbiased_val,
        test: &splits.test,
    };
    let data_sizes = BTreeMap::from([
        ("train", splits.train.len()),
        ("unbiased_train", splits.unbiased_train.len()),
        ("unbiased_val", splits.unbiased_val.len()),
        ("test", splits.test.len()),
    ]);
    tracing::info!(?data_sizes, rho = data_cfg.rho, "data ready");
    wall.insert("data".to_string(), t.elapsed().as_secs_f64());
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating output directory {}", out.display()))?;

    // The vanilla model is reused only if everything that determined it is unchanged.
    let t = Instant::now();
    let provenance = serde_json::json!({ "data": cfg.data, "arch": arch, "vanilla": cfg.vanilla, "seed": cfg.seed });
    let stem = out.join("vanilla");
    let cached = checkpoint::load(&stem, &device)
        .with_context(|| format!("reading checkpoint {}", stem.display()))?;
    let (base, history, trained) = match cached {
        Some((params, card)) if card.provenance == provenance => {
            tracing::info!(checkpoint = %stem.display(), "reusing vanilla checkpoint");
            (params, card.history, false)
        }
        other => {
            if other.is_some() {
                tracing::warn!(checkpoint = %stem.display(), "checkpoint was made with another configuration; retraining");
            }
            let outcome = train_vanilla(
                &arch,
                &splits.train,
                Some(&splits.unbiased_val),
                &cfg.vanilla,
                cfg.seed,
                &device,
            )?;
            let card = CheckpointCard {
                arch: arch.clone(),
                provenance,
                epochs: cfg.vanilla.epochs,
                history: outcome.history.clone(),
                ffw_version: VERSIONS.ffw.to_string(),
            };
            checkpoint::save(&stem, &outcome.params, &card)?;
            (outcome.params, outcome.history, true)
        }
    };
    wall.insert("vanilla".to_string(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let fresh = ProbeInit::Fresh {
        seed: sub_seed(cfg.seed, "probe"),
    };
    let probe_cfg = &cfg.ffw.settings.probe;
    let vanilla_eval = evaluate_params(
        &arch,
        &base,
        &sets,
        probe_cfg,
        &fresh,
        sub_seed(cfg.seed, "eval-vanilla"),
        &device,
    )?;
    let vanilla_probes = vanilla_eval
        .probes
        .iter()
        .map(|p| p.params())
        .collect::<ffw_surgery::Result<Vec<_>>>()?;
    let vanilla = vanilla_eval.report;
    tracing::info!(task_acc = vanilla.test.task_acc, bias_acc = ?vanilla.test.bias_acc, "vanilla on unbiased test");
    wall.insert("vanilla_eval".to_string(), t.elapsed().as_secs_f64());

    let mut ffw = Vec::new();
    for &variant in &cfg.ffw.variants {
        let t = Instant::now();
        let mut settings = cfg.ffw.settings.clone();
        settings.variant = variant;
        let name = serde_json::to_value(variant)?
            .as_str()
            .unwrap_or("variant")
            .to_string();
        tracing::info!(variant = %name, lambda = settings.lambda, "FFW");
        let outcome = run_ffw(
            &arch,
            &base,
            &sets,
            &settings,
            &vanilla_probes,
            sub_seed(cfg.seed, &name),
            &device,
        )?;
        let score =
            |gates: &ffw_nn::GateSet, tag: &str| -> Result<ffw_surgery::evaluate::MaskReport> {
                let params = gates.effective_params(&base, GateMode::Hard)?;
                let mut r = evaluate_params(
                    &arch,
                    &params,
                    &sets,
                    probe_cfg,
                    &fresh,
                    sub_seed(cfg.seed, tag),
                    &device,
                )?
                .report;
                r.sparsity = Some(gates.sparsity()?);
                Ok(r)
            };
        let final_mask = score(&outcome.gates, &format!("eval-final-{name}"))?;
        outcome
            .gates
            .save(&out.join(format!("gates_{name}_final.safetensors")))?;
        let best_intermediate = match &outcome.best {
            Some((epoch, gates)) => {
                gates.save(&out.join(format!("gates_{name}_best.safetensors")))?;
                Some((*epoch, score(gates, &format!("eval-best-{name}"))?))
            }
            None => None,
        };
        tracing::info!(
            variant = %name,
            task_acc = final_mask.test.task_acc,
            bias_acc = ?final_mask.test.bias_acc,
            sparsity = final_mask.sparsity.as_ref().map(|s| s.global),
            "FFW final mask on unbiased test"
        );
        let secs = t.elapsed().as_secs_f64();
        wall.insert(format!("ffw_{name}"), secs);
        ffw.push(VariantResult {
            variant,
            final_mask,
            best_intermediate,
            epochs: outcome.history,
            temperature_changes: outcome.checkpoints,
            wall_secs: secs,
        });
    }

    let result = RunResult {
        seed: cfg.seed,
        config: cfg,
        versions: VERSIONS,
        data_sizes,
        vanilla_trained: trained,
        vanilla_history: history,
        vanilla,
        ffw,
        wall_secs: wall,
    };
    let path = out.join("result.json");
    write_json_atomic(&path, &result)?;
    print_summary(&result);
    println!("result: {}", path.display());
    Ok(())
}

fn print_summary(r: &RunResult) {
    let pct = |v: f64| format!("{:6.2}", 100.0 * v);
    let bias = |v: &[f64]| v.iter().map(|b| pct(*b)).collect::<Vec<_>>().join("/");
    println!(
        "{:<28} {:>7} {:>7} {:>9}",
        "unbiased test", "task %", "bias %", "sparsity"
    );
    println!(
        "{:<28} {} {} {:>9}",
        "vanilla",
        pct(r.vanilla.test.task_acc),
        bias(&r.vanilla.test.bias_acc),
        "-"
    );
    for v in &r.ffw {
        let name = format!("{:?}", v.variant).to_lowercase();
        let rows = std::iter::once((format!("ffw {name} (final)"), &v.final_mask)).chain(
            v.best_intermediate
                .iter()
                .map(|(e, m)| (format!("ffw {name} (best, ep {e})"), m)),
        );
        for (label, m) in rows {
            let s = m
                .sparsity
                .as_ref()
                .map(|s| pct(s.global))
                .unwrap_or_default();
            println!(
                "{:<28} {} {} {:>9}",
                label,
                pct(m.test.task_acc),
                bias(&m.test.bias_acc),
                s
            );
        }
    }
}
