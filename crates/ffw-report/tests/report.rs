//! The report on hand-made sweeps: result files built from the real result types (so the
//! schema stays in sync) with known numbers, written into a temporary directory.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ffw_report::{
    read_manifest, write_report, write_report_with, ReportError, ReportOptions, ReportSummary,
};
use ffw_results::{
    CheckpointReport, DeviceInfo, DeviceKind, FfwResult, LayerSparsity, MagnitudeResult,
    MaskReport, ResultsError, Sparsity, SplitScores, VanillaResult, SCHEMA_VERSION,
};
use ffw_sweep::grid::{expand, JobSpec};
use ffw_sweep::manifest::SweepManifest;
use ffw_sweep::store::{write_json_atomic, Store};
use ffw_sweep::RunConfig;

const BASE: &str = r#"
seed = 0
[data]
kind = "biased_mnist"
dir = "unused"
rho = 0.99
[model]
kernel = 3
[vanilla]
epochs = 4
milestones = [3]
checkpoints = [0.5, 2.0]
[ffw]
variants = ["unstructured"]
[sweep]
seeds = [0, 1, 2]
"#;

const STUDIES: &str = r#"
[studies.lambda]
lambda = [2.0, 10.0, 50.0]
[studies.epochs]
at = [0.5, 2.0]
[studies.magnitude]
magnitude = [0.5, 0.9]
"#;

fn mask(task: f64, bias: f64, sparsity: Option<f64>) -> MaskReport {
    let split = SplitScores {
        task_acc: task,
        bias_acc: vec![bias],
        mi: vec![0.01],
        aligned_acc: vec![Some(0.99)],
        conflicting_acc: vec![Some(task)],
        groups: vec![Some(0.99), Some(task)],
        unbiased_acc: Some((0.99 + task) / 2.0),
    };
    // Two layers: conv1 pruned at `s`, fc at half of it.
    let layers = |s: f64| {
        vec![
            LayerSparsity {
                layer: "conv1".into(),
                pruned: (s * 1000.0).round() as usize,
                total: 1000,
            },
            LayerSparsity {
                layer: "fc".into(),
                pruned: (s * 500.0).round() as usize,
                total: 1000,
            },
        ]
    };
    MaskReport {
        // As `evaluate_params` decides it (val = test here; 10 classes).
        collapsed: (task - 0.1).abs() <= 0.02,
        val: split.clone(),
        test: split,
        sparsity: sparsity.map(|s| Sparsity {
            global: s,
            per_layer: layers(s),
        }),
        probe_epochs: vec![7],
    }
}

/// The known numbers of each job (none = no result.json):
/// vanilla task 30/31/32 %, bias 100 %; its checkpoint at e: task 10 + 10e %, bias 95 %;
/// FFW λ=2: task 90/92/94 %, bias 50 %, sparsity 40/45/50 %; FFW λ=10: seeds 0 and 1 only,
/// task 96/98 %, bias 20 %, sparsity 46 %; FFW λ=50: never ran; FFW from checkpoint e: task
/// 50 + 10e %, bias 30 %, sparsity 50 %; magnitude 0.5: task 25 %, bias 90 %; magnitude 0.9:
/// seed 0 only, task 10 %, bias 80 %.
fn result(spec: &JobSpec, seed: u64) -> Option<serde_json::Value> {
    let s = seed as f64;
    let value = match spec {
        JobSpec::Vanilla(v) => serde_json::to_value(VanillaResult {
            schema: SCHEMA_VERSION,
            data_sizes: BTreeMap::new(),
            labels: BTreeMap::new(),
            history: vec![],
            report: mask(0.30 + 0.01 * s, 1.0, None),
            checkpoints: v
                .vanilla
                .checkpoints
                .iter()
                .map(|&e| CheckpointReport {
                    epoch: e,
                    report: mask(0.1 + 0.1 * e, 0.95, None),
                })
                .collect(),
            wall_secs: BTreeMap::from([("vanilla".to_string(), 10.0)]),
            device: Some(cpu()),
        }),
        JobSpec::Ffw(f) => {
            let final_mask = match (f.at, f.ffw.lambda as u32) {
                (Some(e), _) => mask(0.5 + 0.1 * e, 0.3, Some(0.5)),
                (None, 2) => mask(0.90 + 0.02 * s, 0.5, Some(0.40 + 0.05 * s)),
                (None, 10) if seed < 2 => mask(0.96 + 0.02 * s, 0.2, Some(0.46)),
                _ => return None,
            };
            serde_json::to_value(FfwResult {
                schema: SCHEMA_VERSION,
                variant: f.ffw.variant,
                lambda: f.ffw.lambda,
                at: f.at,
                best_intermediate: Some((3, final_mask.clone())),
                final_mask,
                epochs: vec![],
                temperature_changes: vec![],
                wall_secs: 5.0,
                // As results written before devices were recorded.
                device: None,
            })
        }
        JobSpec::Magnitude(m) => {
            let report = match (m.sparsity, seed) {
                (0.5, _) => mask(0.25, 0.9, Some(0.5)),
                (_, 0) => mask(0.1, 0.8, Some(0.9)),
                _ => return None,
            };
            serde_json::to_value(MagnitudeResult {
                schema: SCHEMA_VERSION,
                sparsity_target: m.sparsity,
                report,
                wall_secs: 1.0,
                device: None,
            })
        }
    };
    Some(value.unwrap())
}

fn cpu() -> DeviceInfo {
    DeviceInfo {
        kind: DeviceKind::Cpu,
        index: None,
        name: "test CPU".into(),
    }
}

/// Writes the sweep of `config` as `ffw sweep` would have left it. Jobs that never ran have
/// neither spec.json nor result.json.
fn sweep_dir(config: &str) -> tempfile::TempDir {
    let cfg: RunConfig = toml::from_str(config).unwrap();
    cfg.validate().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let jobs = expand(&cfg);
    let seed_of = |id: &str| {
        jobs.iter()
            .find_map(|j| match &j.spec {
                JobSpec::Vanilla(v) if j.id == id => Some(v.seed),
                _ => None,
            })
            .unwrap()
    };
    for job in &jobs {
        let seed = match &job.spec {
            JobSpec::Vanilla(v) => v.seed,
            JobSpec::Ffw(f) => seed_of(&f.vanilla),
            JobSpec::Magnitude(m) => seed_of(&m.vanilla),
        };
        let never_ran = matches!(&job.spec, JobSpec::Ffw(f) if f.ffw.lambda == 50.0);
        if never_ran {
            continue;
        }
        let dir = store.job_dir(&job.id);
        std::fs::create_dir_all(&dir).unwrap();
        write_json_atomic(&dir.join("spec.json"), &job.spec).unwrap();
        if let Some(r) = result(&job.spec, seed) {
            write_json_atomic(&store.result_path(&job.id), &r).unwrap();
        }
    }
    SweepManifest::new(&cfg).unwrap().write(&store).unwrap();
    tmp
}

/// `ffw report` on the sweep in `dir`.
fn report(dir: &Path) -> Result<ReportSummary, ReportError> {
    write_report(dir, read_manifest(dir)?)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join("report").join(file)).unwrap()
}

fn row<'a>(table: &'a str, start: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row starting {start:?} in\n{table}"))
}

#[test]
fn cells_are_mean_std_and_seeds_and_missing_jobs_are_missing() {
    let tmp = sweep_dir(&format!("{BASE}{STUDIES}"));
    let summary = report(tmp.path()).unwrap();
    assert_eq!(summary.index, tmp.path().join("report/index.md"));
    // 3 vanilla, FFW: 3 λ (λ=10 shared) + 2 checkpoints, 2 magnitude sparsities; per seed.
    assert_eq!(summary.jobs, 3 * (1 + 3 + 2 + 2));
    assert_eq!(
        summary.jobs_done,
        summary.jobs - 3 - 1 - 2,
        "λ=50 ×3, λ=10 seed 2, magnitude 0.9 seeds 1 and 2"
    );

    let t1 = read(tmp.path(), "table1_lambda.md");
    assert_eq!(
        row(&t1, "| – | vanilla"),
        "| – | vanilla | 31.00 ± 1.00 (3) | 100.00 ± 0.00 (3) | – |"
    );
    assert_eq!(
        row(&t1, "| 2 | FFW"),
        "| 2 | FFW | 92.00 ± 2.00 (3) | 50.00 ± 0.00 (3) | 45.00 ± 5.00 (3) |"
    );
    assert_eq!(
        row(&t1, "| 10 (base) | FFW"),
        "| 10 (base) | FFW | 97.00 ± 1.41 (2) | 20.00 ± 0.00 (2) | 46.00 ± 0.00 (2) |"
    );
    // Jobs that never ran, and a λ of the paper's design this sweep does not have.
    assert_eq!(row(&t1, "| 50 | FFW"), "| 50 | FFW | – | – | – |");
    assert_eq!(row(&t1, "| 5 | FFW"), "| 5 | FFW | – | – | – |");

    let t6 = read(tmp.path(), "table6_epochs.md");
    assert_eq!(
        row(&t6, "| 1/2 | vanilla"),
        "| 1/2 | vanilla | 15.00 ± 0.00 (3) | 95.00 ± 0.00 (3) | – |"
    );
    assert_eq!(
        row(&t6, "| 2 | FFW"),
        "| 2 | FFW | 70.00 ± 0.00 (3) | 30.00 ± 0.00 (3) | 50.00 ± 0.00 (3) |"
    );
    assert!(row(&t6, "| 4 (final) | FFW").starts_with("| 4 (final) | FFW | 97.00 ± 1.41 (2) |"));
    assert!(row(&t6, "| 1/60 | vanilla").ends_with("| – | – | – |"));
    assert!(
        !t6.contains("| 10 |"),
        "checkpoints past the training length are left out"
    );

    let t7 = read(tmp.path(), "table7_magnitude.md");
    assert_eq!(
        row(&t7, "| 50 | magnitude pruning"),
        "| 50 | magnitude pruning | 25.00 ± 0.00 (3) | 90.00 ± 0.00 (3) | 50.00 ± 0.00 (3) |"
    );
    // 10% task accuracy on 10 classes: chance, so the cell names the collapsed seed.
    assert_eq!(
        row(&t7, "| 90 | magnitude pruning"),
        "| 90 | magnitude pruning (1 of 1 collapsed) | 10.00 (1) | 80.00 (1) | 90.00 (1) |"
    );
    assert!(row(&t7, "| – | FFW").starts_with("| – | FFW | 97.00 ± 1.41 (2) |"));

    // Study grouping: the ρ study is not declared, so Table 2 holds none of the ρ = 0.99 jobs
    // of the other studies, only the paper's values.
    let t2 = read(tmp.path(), "table2_rho.md");
    assert_eq!(
        row(&t2, "| 0.99 | FFW |"),
        "| 0.99 | FFW | – | 97.79 | – | 15.74 | – | 46.50 |"
    );
    assert!(t2.contains("declares no rho study"));
    let t3 = read(tmp.path(), "table3_celeba.md");
    assert!(t3.contains("has no CelebA job"), "{t3}");
    let t4 = read(tmp.path(), "table4_corrupted_cifar10.md");
    assert!(t4.contains("has no Corrupted CIFAR-10 job"), "{t4}");
    assert!(row(&t4, "| 0.995 | FFW |").starts_with("| 0.995 | FFW | – | 51.57 |"));
    let t5 = read(tmp.path(), "table5_multi_color_mnist.md");
    assert!(t5.contains("has no Multi-Color MNIST job"), "{t5}");
    assert!(row(
        &read(tmp.path(), "table3_celeba.md"),
        "| BlondHair | vanilla"
    )
    .ends_with("| – | 80.42 | – | 72.22 | – | – |"));
    assert!(!tmp.path().join("report/table_grid.md").exists());
}

#[test]
fn jobs_csv_has_every_job_its_studies_and_empty_fields_when_missing() {
    let tmp = sweep_dir(&format!("{BASE}{STUDIES}"));
    report(tmp.path()).unwrap();
    let csv = read(tmp.path(), "jobs.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    // 24 jobs, and each vanilla job's 2 checkpoints.
    assert_eq!(rows.len(), 24 + 3 * 2);
    let lambda_of = |r: &Vec<&str>, l: &str| r[col("kind")] == "ffw" && r[col("lambda")] == l;
    let base_ffw: Vec<_> = rows
        .iter()
        .filter(|r| lambda_of(r, "10") && r[col("at")].is_empty())
        .collect();
    assert_eq!(base_ffw.len(), 3);
    assert!(base_ffw
        .iter()
        .all(|r| r[col("studies")] == "epochs;lambda;magnitude"));
    let never: Vec<_> = rows.iter().filter(|r| lambda_of(r, "50")).collect();
    assert_eq!(
        never.len(),
        3,
        "jobs without spec.json come from the manifest"
    );
    assert!(rows
        .iter()
        .all(|r| r[col("dataset")] == "biased_mnist" && r[col("rho")] == "0.99"));
    for r in never {
        assert_eq!(r[col("studies")], "lambda");
        assert_eq!(r[col("has_result")], "false");
        assert_eq!(r[col("test_task_acc")], "", "missing, not zero");
        assert_eq!(r[col("sparsity")], "");
    }
    let seeds: Vec<&str> = rows
        .iter()
        .filter(|r| lambda_of(r, "2"))
        .map(|r| r[col("seed")])
        .collect();
    assert_eq!(
        seeds,
        ["0", "1", "2"],
        "FFW jobs carry their vanilla job's seed"
    );
    let checkpoint = rows
        .iter()
        .find(|r| r[col("kind")] == "vanilla" && r[col("at")] == "0.5")
        .unwrap();
    assert_eq!(checkpoint[col("test_task_acc")], "0.15000000000000002");
    // The device as the result records it; empty where an older result does not.
    assert_eq!(
        (checkpoint[col("device")], checkpoint[col("device_name")]),
        ("cpu", "test CPU")
    );
    assert_eq!(base_ffw[0][col("device")], "");
}

/// One FFW result from a GPU among CPU results: the tables refuse to average them unless
/// the user allows it, and then jobs.csv says which ran where.
#[test]
fn results_from_cpus_and_gpus_are_not_mixed_unless_asked() {
    let config = format!("{BASE}{STUDIES}");
    let tmp = sweep_dir(&config);
    let cfg: RunConfig = toml::from_str(&config).unwrap();
    let ffw = expand(&cfg)
        .into_iter()
        .find(|j| matches!(&j.spec, JobSpec::Ffw(f) if f.ffw.lambda == 2.0))
        .unwrap();
    let path = Store::at(tmp.path()).result_path(&ffw.id);
    let mut gpu: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    gpu["device"] = serde_json::json!({"kind": "cuda", "index": 1, "name": "NVIDIA H100"});
    std::fs::write(&path, gpu.to_string()).unwrap();

    let err = report(tmp.path()).unwrap_err();
    assert!(matches!(err, ReportError::MixedDevices { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("1 on cuda"), "{text}");
    assert!(text.contains("3 on cpu"), "{text}");
    assert!(text.contains("--mixed-devices"), "{text}");
    assert!(!tmp.path().join("report/jobs.csv").exists());

    let options = ReportOptions {
        mixed_devices: true,
    };
    write_report_with(tmp.path(), read_manifest(tmp.path()).unwrap(), options).unwrap();
    let csv = read(tmp.path(), "jobs.csv");
    let row = csv.lines().find(|l| l.starts_with(&ffw.id)).unwrap();
    assert!(row.ends_with(",cuda:1,NVIDIA H100"), "{row}");
}

#[test]
fn figures_are_svg_and_png_of_the_stated_size() {
    let tmp = sweep_dir(&format!("{BASE}{STUDIES}"));
    let summary = report(tmp.path()).unwrap();
    assert!(
        summary.not_produced.is_empty(),
        "{:?}",
        summary.not_produced
    );
    assert_eq!(summary.figures, 4);
    for stem in [
        "fig4_per_layer",
        "fig5_lambda",
        "fig6_magnitude",
        "fig7_epochs",
    ] {
        let svg = read(tmp.path(), &format!("{stem}.svg"));
        assert!(svg.contains("<svg") && svg.contains("<text"), "{stem}.svg");
        let path = tmp.path().join(format!("report/{stem}.png"));
        let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(
            (frame.width, frame.height),
            ffw_report::plot::SIZE,
            "{stem}.png"
        );
        // Drawn on: many pixels are not the white background.
        let inked = pixels[..frame.buffer_size()]
            .chunks(frame.color_type.samples())
            .filter(|p| p.iter().any(|&v| v < 200))
            .count();
        assert!(inked > 2000, "{stem}.png has {inked} drawn pixels");
    }
    let index = read(tmp.path(), "index.md");
    for file in summary.files.iter().filter(|f| !f.ends_with("index.md")) {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            index.contains(&format!("({name})")),
            "index.md does not link {name}"
        );
        assert!(
            std::fs::metadata(file).unwrap().len() > 0,
            "{name} is empty"
        );
    }
}

#[test]
fn a_sweep_without_studies_gets_the_grid_table_and_says_which_figures_are_missing() {
    let tmp = sweep_dir(&BASE.replace("[ffw]\n", "[ffw]\nlambda = 2.0\n"));
    // A figure an earlier report drew must not outlive its data.
    let stale = tmp.path().join("report/fig6_magnitude.png");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"old").unwrap();
    let summary = report(tmp.path()).unwrap();
    assert!(!stale.exists());
    let grid = read(tmp.path(), "table_grid.md");
    assert!(
        row(&grid, "| 0.99 | 2 | – | – | 4 | FFW").contains("92.00 ± 2.00 (3)"),
        "{grid}"
    );
    assert!(row(&grid, "| 0.99 | – | 1/2 | – | 4 | vanilla").contains("15.00 ± 0.00 (3)"));
    let missing: Vec<&str> = summary
        .not_produced
        .iter()
        .map(|n| n.figure.as_str())
        .collect();
    assert_eq!(missing, ["fig5_lambda", "fig6_magnitude", "fig7_epochs"]);
    let index = read(tmp.path(), "index.md");
    assert!(
        index.contains("**Fig. 6** (")
            && index.contains("not produced: the sweep declares no \"magnitude\" study"),
        "{index}"
    );
    assert!(
        index.contains("**Fig. 4** ([SVG](fig4_per_layer.svg), [PNG](fig4_per_layer.png))"),
        "{index}"
    );
    // Each study names its dataset.
    assert!(
        index.contains("| grid | Biased MNIST, ρ = 0.99 | 6 | 6 |"),
        "{index}"
    );
    assert!(grid.contains("Every configuration of the sweep's grid (Biased MNIST, ρ = 0.99)"));
}

#[test]
fn a_directory_without_sweep_json_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = report(tmp.path()).unwrap_err();
    assert!(matches!(err, ReportError::NoManifest { .. }));
    let text = err.to_string();
    assert!(
        text.contains("sweep.json") && text.contains(&tmp.path().display().to_string()),
        "{text}"
    );
    assert!(!tmp.path().join("report").exists(), "nothing is written");
    let corrupt = sweep_dir(&format!("{BASE}{STUDIES}"));
    let manifest = corrupt.path().join("sweep.json");
    let cfg: RunConfig = toml::from_str(&format!("{BASE}{STUDIES}")).unwrap();
    let some_job = &expand(&cfg)[0].id;
    let result = corrupt
        .path()
        .join("jobs")
        .join(some_job)
        .join("result.json");
    std::fs::write(&result, "{\"report\": 1}").unwrap();
    let text = report(corrupt.path()).unwrap_err().to_string();
    assert!(text.contains(&result.display().to_string()), "{text}");
    assert!(manifest.exists());
}

#[test]
fn a_result_of_a_newer_schema_is_refused_naming_the_file_and_both_versions() {
    let config = format!("{BASE}{STUDIES}");
    let tmp = sweep_dir(&config);
    let cfg: RunConfig = toml::from_str(&config).unwrap();
    let result = Store::at(tmp.path()).result_path(&expand(&cfg)[0].id);
    let mut newer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    newer["schema"] = (SCHEMA_VERSION + 1).into();
    std::fs::write(&result, newer.to_string()).unwrap();
    let err = report(tmp.path()).unwrap_err();
    assert!(
        matches!(err, ReportError::Results(ResultsError::NewerSchema { .. })),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&result.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("version {}", SCHEMA_VERSION + 1))
            && text.contains(&format!("up to {SCHEMA_VERSION}")),
        "{text}"
    );
}

/// The first TeX engine on PATH.
fn tex_engine() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["pdflatex", "lualatex"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

#[test]
fn the_latex_tables_compile() {
    let Some(engine) = tex_engine() else {
        println!("note: no pdflatex or lualatex on PATH; the LaTeX tables were not compiled");
        return;
    };
    let tmp = sweep_dir(&format!("{BASE}{STUDIES}"));
    report(tmp.path()).unwrap();
    let dir = tmp.path().join("report");
    let out = Command::new(&engine)
        .args(["-interaction=nonstopmode", "-halt-on-error", "tables.tex"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        engine.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(std::fs::metadata(dir.join("tables.pdf")).unwrap().len() > 0);
}

/// A study on a benchmark of its own fills its table and gets its own Fig. 4 panel.
#[test]
fn a_benchmark_study_fills_its_table_and_gets_its_own_per_layer_figure() {
    let cifar = "[studies.corrupted_cifar10.data]\nkind = \"corrupted_cifar10\"\n\
                 [studies.corrupted_cifar10.model]\nname = \"resnet18\"\n\
                 [studies.corrupted_cifar10.axes]\nrho = [0.99, 0.95]\n";
    let tmp = sweep_dir(&format!("{BASE}{STUDIES}{cifar}"));
    let summary = report(tmp.path()).unwrap();
    assert!(
        summary.not_produced.is_empty(),
        "{:?}",
        summary.not_produced
    );
    assert_eq!(summary.figures, 5);
    let svg = read(tmp.path(), "fig4_per_layer_corrupted_cifar10.svg");
    assert!(svg.contains("Corrupted CIFAR-10, ρ = 0.99"), "{svg}");
    assert!(!read(tmp.path(), "fig4_per_layer.svg").contains("CIFAR"));
    let t4 = read(tmp.path(), "table4_corrupted_cifar10.md");
    for rho in ["0.99", "0.95"] {
        let vanilla = row(&t4, &format!("| {rho} | vanilla"));
        assert!(
            vanilla.starts_with(&format!("| {rho} | vanilla | 31.00 ± 1.00 (3) |")),
            "{t4}"
        );
    }
}

/// A CelebA sweep fills Table 3's row of its target attribute (from the manifest's
/// attributes), beside the paper's values; the other target's row stays missing.
#[test]
fn a_celeba_sweep_fills_the_row_of_its_target() {
    let celeba = BASE.replace(
        "kind = \"biased_mnist\"\ndir = \"unused\"\nrho = 0.99",
        "kind = \"celeba\"\ndir = \"unused\"\ntarget = \"Eye_glasses\"\nbias = \"Male\"",
    );
    let tmp = sweep_dir(&celeba.replace(
        "variants = [\"unstructured\"]",
        "variants = [\"unstructured\", \"structured\"]",
    ));
    report(tmp.path()).unwrap();
    let t3 = read(tmp.path(), "table3_celeba.md");
    let vanilla = row(&t3, "| Eyeglasses | vanilla |");
    assert!(
        vanilla.starts_with("| Eyeglasses | vanilla | 31.00 ± 1.00 (3) | 98.42 |"),
        "{t3}"
    );
    let ffw = row(&t3, "| Eyeglasses | FFW |");
    assert!(ffw.contains("97.00 ± 1.41 (2) | 98.58"), "{t3}");
    let blond = row(&t3, "| BlondHair | vanilla |");
    assert!(
        blond.starts_with("| BlondHair | vanilla | – | 80.42 |"),
        "{t3}"
    );
    assert!(!t3.contains("no CelebA job"), "{t3}");
}
