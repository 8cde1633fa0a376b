//! End-to-end tests of the `ffw` binary on generated MNIST-format data: a tiny run writes a
//! complete, reproducible result; bad inputs fail with a message naming the problem and leave
//! no result behind.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ffw_data::idx::{write_images, write_labels, Images};
use rand::{Rng, SeedableRng};

/// Digit-like images: class d draws a bar at a class-specific column, plus sparse noise.
fn write_mnist(dir: &Path, n_train: usize, n_test: usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for (images, labels, n) in [
        (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            n_train,
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            n_test,
        ),
    ] {
        let mut pixels = vec![0u8; n * 784];
        let mut ys = Vec::with_capacity(n);
        for i in 0..n {
            let d = (i % 10) as u8;
            for r in 4..24 {
                pixels[i * 784 + r * 28 + 3 + 2 * d as usize] = 255;
            }
            for _ in 0..20 {
                pixels[i * 784 + rng.gen_range(0..784)] = rng.gen_range(1..=255);
            }
            ys.push(d);
        }
        write_images(
            &dir.join(images),
            &Images {
                n,
                rows: 28,
                cols: 28,
                pixels,
            },
        )
        .unwrap();
        write_labels(&dir.join(labels), &ys).unwrap();
    }
}

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

fn ffw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ffw"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn run(cfg: &Path, out: &Path) -> Output {
    ffw(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ])
}

/// The run's result with wall-clock fields removed (the only ones allowed to differ).
fn result(out: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| k != "secs" && k != "wall_secs");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    strip(&mut v);
    v
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_mnist(&data, 400, 150);
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, config(&data, "")).unwrap();
    (tmp, data, cfg)
}

fn journal(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn started(out: &Path, id: &str) -> usize {
    journal(out)
        .iter()
        .filter(|e| e["job"] == id && e["event"] == "started")
        .count()
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
