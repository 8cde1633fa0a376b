//! End-to-end tests of the `ffw` binary on generated MNIST-format and CIFAR-10 data: a tiny run writes a
//! complete, reproducible result; bad inputs fail with a message naming the problem and leave
//! no result behind.
use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "common/mod.rs"]
mod common;
use common::{count, ffw, read_stripped, write_mnist};

fn config(data: &Path, extra: &str) -> String {
    format!(
        r#"
seed = 7
[data]
kind = "biased_mnist"
dir = "{}"
rho = 0.9
n_train = 300
n_unbiased_train = 100
n_unbiased_val = 100
n_test = 100
[model]
kernel = 3
[vanilla]
epochs = 1
batch_size = 50
milestones = []
[ffw]
variants = ["unstructured", "structured"]
max_epochs = 2
temperature_patience = 0
{extra}
[ffw.probe]
max_epochs = 5
"#,
        data.display()
    )
}

fn run(cfg: &Path, out: &Path) -> Output {
    let (cfg, out) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    ffw()
        .args(["run", "--config", cfg, "--output", out])
        .output()
        .unwrap()
}

fn result(out: &Path) -> serde_json::Value {
    read_stripped(&out.join("result.json"))
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    write_mnist(&data, 400, 150);
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, config(&data, "")).unwrap();
    (tmp, data, cfg)
}

fn started(out: &Path, id: &str) -> usize {
    count(out, id, "started")
}

#[test]
fn a_tiny_run_is_complete_reproducible_and_reuses_its_checkpoint() {
    let (tmp, data, cfg) = setup();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let first = run(&cfg, &a);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("ffw structured (final)"));
    assert!(run(&cfg, &b).status.success());
    let (ra, rb) = (result(&a), result(&b));
    for key in ["vanilla", "ffw", "jobs"] {
        assert_eq!(
            ra[key], rb[key],
            "{key} differs between two runs with the same seed"
        );
    }
    let jobs: Vec<String> = ra["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap().to_string())
        .collect();
    assert_eq!(jobs.len(), 3);
    assert_eq!(ra["ffw"].as_array().unwrap().len(), 2);
    // `--device auto` on a machine without a GPU: every job records the CPU.
    assert_eq!(ra["vanilla"]["device"]["kind"], "cpu");
    assert!(ra["ffw"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["device"]["kind"] == "cpu" && f["device"]["index"].is_null()));
    for v in ra["ffw"].as_array().unwrap() {
        let s = v["final_mask"]["sparsity"]["global"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s));
        assert_eq!(
            v["final_mask"]["sparsity"]["per_layer"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert!(v["final_mask"]["test"]["task_acc"].as_f64().unwrap() >= 0.0);
    }
    assert!(a
        .join("jobs")
        .join(&jobs[0])
        .join("vanilla.safetensors")
        .exists());
    assert!(a
        .join("jobs")
        .join(&jobs[1])
        .join("gates_final.safetensors")
        .exists());

    // The same command again runs nothing and reports the same numbers.
    assert!(run(&cfg, &a).status.success());
    assert_eq!(result(&a)["ffw"], ra["ffw"]);
    assert_eq!(started(&a, &jobs[0]), 1);
    assert_eq!(started(&a, &jobs[1]), 1);

    // Another λ reuses the vanilla checkpoint: only the FFW jobs run.
    std::fs::write(&cfg, config(&data, "lambda = 3.0")).unwrap();
    let third = run(&cfg, &a);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let rc = result(&a);
    assert_eq!(rc["jobs"][0], ra["jobs"][0]);
    assert_eq!(rc["vanilla"], ra["vanilla"]);
    assert_ne!(rc["jobs"][1], ra["jobs"][1]);
    assert_eq!(
        started(&a, &jobs[0]),
        1,
        "the vanilla model was trained again"
    );
}

fn assert_fails_naming(out: &Output, needle: &str, dir: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(
        stderr.contains(needle),
        "stderr does not name {needle:?}:\n{stderr}"
    );
    assert!(
        !dir.join("result.json").exists(),
        "a failed run left a result behind"
    );
}

/// Asked for a GPU it cannot open (a CPU build, or no GPU on this node), `ffw run` says so in
/// one line naming the flag, before it creates anything.
#[test]
fn a_gpu_that_cannot_be_opened_is_one_line_naming_the_flag() {
    let (tmp, _, cfg) = setup();
    let out = tmp.path().join("out");
    let o = ffw()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .args(["--output", out.to_str().unwrap(), "--device", "cuda"])
        // The message itself, without the backtrace a developer's shell may ask for.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("Error: --device cuda: "), "{stderr}");
    assert!(!out.exists(), "nothing is written before the device opens");
}

/// `ffw bench --compare-cpu` (the first check on a GPU node) against the CPU itself: the
/// same start and batches give the same numbers, which it reports and accepts.
#[test]
fn compare_cpu_on_the_cpu_agrees_exactly() {
    let o = ffw()
        .args(["bench", "--device", "cpu", "--compare-cpu", "--only", "mlp"])
        .args(["--steps", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("mlp ")), "{stdout}");
    assert!(stdout.contains("agree to 0e0"), "{stdout}");
}

#[test]
fn a_missing_data_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-mnist");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, config(&missing, "")).unwrap();
    let out = tmp.path().join("out");
    assert_fails_naming(&run(&cfg, &out), "no-such-mnist", &out);
}

#[test]
fn a_truncated_idx_file_is_named() {
    let (tmp, data, cfg) = setup();
    let images = data.join("train-images-idx3-ubyte.gz");
    std::fs::remove_file(&images).unwrap();
    let raw = data.join("train-images-idx3-ubyte");
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 1, 144, 0, 0, 0, 28, 0, 0, 0, 28];
    bytes.extend(vec![0u8; 1000]); // far fewer than 400·784 pixels
    std::fs::write(&raw, bytes).unwrap();
    let out = tmp.path().join("out");
    assert_fails_naming(&run(&cfg, &out), "train-images-idx3-ubyte", &out);
}

#[test]
fn malformed_configs_are_rejected_naming_the_key() {
    let (tmp, data, _) = setup();
    let out = tmp.path().join("out");
    for (name, text, needle) in [
        ("unknown", config(&data, "lambdaa = 2"), "lambdaa"),
        ("range", config(&data, "lambda = -2"), "ffw.lambda"),
        (
            "rho",
            config(&data, "").replace("rho = 0.9", "rho = 2.0"),
            "data.rho",
        ),
        ("syntax", "[data\nkind = ".to_string(), "syntax.toml"),
    ] {
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        assert_fails_naming(&run(&cfg, &out), needle, &out);
    }
    let missing = tmp.path().join("absent.toml");
    assert_fails_naming(&run(&missing, &out), "absent.toml", &out);
}

/// Multi-Color MNIST end to end on a tiny generated MNIST: the MLP, two bias attributes (two
/// privacy heads, stopping together), the four left/right aligned/conflicting groups and
/// their mean, in `result.json`.
#[test]
fn a_tiny_multi_color_mnist_run_scores_two_attributes_and_four_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    write_mnist(&data, 300, 200);
    let cfg = tmp.path().join("mc.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
seed = 3
[data]
kind = "multi_color_mnist"
dir = "{}"
[model]
name = "mlp"
hidden = [16, 16]
[vanilla]
epochs = 2
batch_size = 50
milestones = []
optimizer = {{ name = "adam", lr = 1e-3, weight_decay = 1e-4 }}
[ffw]
variants = ["unstructured"]
max_epochs = 2
temperature_patience = 0
[ffw.probe]
max_epochs = 5
"#,
            data.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run(&cfg, &out);
    common::ok(&o);
    let r = result(&out);
    let vanilla = &r["vanilla"];
    // 200 test digits, balanced, cut 60/20/20.
    assert_eq!(vanilla["data_sizes"]["unbiased_train"], 120);
    assert_eq!(vanilla["data_sizes"]["test"], 40);
    for report in [&vanilla["report"], &r["ffw"][0]["final_mask"]] {
        let test = &report["test"];
        assert_eq!(test["bias_acc"].as_array().unwrap().len(), 2, "{test}");
        assert_eq!(test["groups"].as_array().unwrap().len(), 4, "{test}");
        let present: Vec<f64> = test["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g.as_f64())
            .collect();
        let mean = present.iter().sum::<f64>() / present.len() as f64;
        assert!((test["unbiased_acc"].as_f64().unwrap() - mean).abs() < 1e-12);
        // One stop for both heads.
        let epochs = report["probe_epochs"].as_array().unwrap();
        assert_eq!(epochs.len(), 2);
        assert_eq!(epochs[0], epochs[1]);
    }
    let ffw = &r["ffw"][0];
    assert_eq!(ffw["epochs"].as_array().unwrap().len(), 2);

    // Table 5's "ours" rows are this run's numbers (one seed): a sweep of the same config
    // reuses the run's jobs and writes the report.
    let (cfg, out_s) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    common::ok(
        &common::ffw()
            .args(["sweep", cfg, "--output", out_s])
            .output()
            .unwrap(),
    );
    let t5 = std::fs::read_to_string(out.join("report/table5_multi_color_mnist.md")).unwrap();
    for (method, report) in [("vanilla", &vanilla["report"]), ("FFW", &ffw["final_mask"])] {
        let row = t5
            .lines()
            .find(|l| l.starts_with(&format!("| {method} | ours |")))
            .unwrap_or_else(|| panic!("no ours row for {method} in\n{t5}"));
        let unbiased = 100.0 * report["test"]["unbiased_acc"].as_f64().unwrap();
        assert!(row.contains(&format!("| {unbiased:.2} (1) |")), "{row}");
    }
    assert_eq!(
        ffw["epochs"][0]["soft_val"]["bias_acc"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Corrupted CIFAR-10 end to end on a tiny generated CIFAR-10 binary directory: the
/// corrupted sets are built once and cached beside the data, the paper's ResNet-18 recipe
/// (cosine schedule, crop + flip) and FFW run on them,
/// and a sweep of the same config fills Table 4's cells with this run's numbers.
#[test]
fn a_tiny_corrupted_cifar10_run_builds_caches_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-10-batches-bin");
    common::write_cifar10(&data, 40, 100);
    let cfg = tmp.path().join("cc.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
seed = 1
[data]
kind = "corrupted_cifar10"
dir = "{}"
rho = 0.95
[model]
name = "resnet18"
[vanilla]
epochs = 2
batch_size = 50
milestones = []
schedule = "cosine"
optimizer = {{ name = "adam", lr = 1e-3, weight_decay = 1e-4 }}
augment = {{ crop_padding = 4, hflip = true }}
[ffw]
variants = ["unstructured"]
max_epochs = 2
temperature_patience = 0
[ffw.probe]
max_epochs = 5
"#,
            tmp.path().display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    common::ok(&run(&cfg, &out));
    let r = result(&out);
    let vanilla = &r["vanilla"];
    // 200 train images; the 100 test images, balanced, cut 60/20/20.
    assert_eq!(vanilla["data_sizes"]["train"], 200);
    assert_eq!(vanilla["data_sizes"]["unbiased_train"], 60);
    assert_eq!(vanilla["data_sizes"]["test"], 20);
    let ffw = &r["ffw"][0]["final_mask"];
    assert_eq!(
        ffw["test"]["bias_acc"].as_array().unwrap().len(),
        1,
        "{ffw}"
    );
    let sparsity = ffw["sparsity"]["global"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&sparsity));
    // One cache file for the one data seed, next to the data.
    let cache: Vec<_> = std::fs::read_dir(tmp.path().join("ffw-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(cache.len(), 1, "{cache:?}");

    // The sweep reuses the run's jobs; Table 4 shows them at ρ 0.95 beside the paper's values.
    let (cfg, out_s) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    common::ok(
        &common::ffw()
            .args(["sweep", cfg, "--output", out_s])
            .output()
            .unwrap(),
    );
    let t4 = std::fs::read_to_string(out.join("report/table4_corrupted_cifar10.md")).unwrap();
    for (method, report) in [("vanilla", &vanilla["report"]), ("FFW", ffw)] {
        let task = 100.0 * report["test"]["task_acc"].as_f64().unwrap();
        let row = t4
            .lines()
            // The label may carry "(1 of 1 collapsed)": the tiny model is near chance.
            .find(|l| l.starts_with(&format!("| 0.95 | {method} ")))
            .unwrap_or_else(|| panic!("no ρ 0.95 row for {method} in\n{t4}"));
        assert!(row.contains(&format!("| {task:.2} (1) |")), "{row}");
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ffw-cache"))
            .unwrap()
            .count(),
        1,
        "the sweep built the data again"
    );
}
