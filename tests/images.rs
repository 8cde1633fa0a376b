//! End-to-end tests of image datasets read from disk: a user's folder + CSV through vanilla,
//! FFW and the report with `ffw sweep`; `ffw check-data` listing every bad row; memory that
//! stays bounded over a long pass of the on-demand loader.
use std::path::Path;

#[path = "common/mod.rs"]
mod common;
use common::{ffw, ok, read_stripped};

fn folder_config(data: &Path) -> String {
    format!(
        r#"
seed = 3
[data]
kind = "folder"
dir = "{}"
target_column = "shape"
bias_columns = ["colour"]
image_size = 16
flip = true
[model]
kernel = 3
[vanilla]
epochs = 2
batch_size = 32
milestones = []
[ffw]
variants = ["unstructured"]
max_epochs = 2
temperature_patience = 0
batch_size = 16
[ffw.probe]
max_epochs = 3
"#,
        data.display()
    )
}

fn example(dir: &Path, n: usize, extra: &[&str]) {
    ok(&ffw()
        .args(["example-data", dir.to_str().unwrap(), "--n", &n.to_string()])
        .args(extra)
        .output()
        .unwrap());
}

#[test]
fn a_folder_dataset_runs_through_vanilla_ffw_and_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shapes");
    example(&data, 240, &["--aligned", "0.85"]);
    let cfg = tmp.path().join("shapes.toml");
    std::fs::write(&cfg, folder_config(&data)).unwrap();

    let check = ffw()
        .args(["check-data", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    ok(&check);
    assert!(String::from_utf8_lossy(&check.stdout).contains("usable"));

    let out = tmp.path().join("out");
    let o = ffw()
        .args([
            "sweep",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    ok(&o);
    let jobs: Vec<_> = std::fs::read_dir(out.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(jobs.len(), 2, "one vanilla and one FFW job");
    let results: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| read_stripped(&j.join("result.json")))
        .collect();
    let vanilla = results
        .iter()
        .find(|r| r.get("history").is_some() && r.get("variant").is_none())
        .unwrap();
    // The labels' order is recorded: sorted, as the config lists none.
    assert_eq!(
        vanilla["labels"]["shape"],
        serde_json::json!(["circle", "square"])
    );
    assert_eq!(
        vanilla["labels"]["colour"],
        serde_json::json!(["blue", "red"])
    );
    // 240 rows: 168 biased train (70%), the rest balanced over (shape, colour).
    assert_eq!(vanilla["data_sizes"]["train"], 168);
    assert_eq!(vanilla["history"].as_array().unwrap().len(), 2);
    let ffw_result = results.iter().find(|r| r.get("variant").is_some()).unwrap();
    let sparsity = ffw_result["final_mask"]["sparsity"]["global"]
        .as_f64()
        .unwrap();
    assert!(sparsity > 0.0 && sparsity < 1.0, "{sparsity}");

    let index = std::fs::read_to_string(out.join("report/index.md")).unwrap();
    assert!(index.contains("jobs.csv"), "{index}");
    let csv = std::fs::read_to_string(out.join("report/jobs.csv")).unwrap();
    assert!(csv.lines().count() >= 3, "{csv}");

    // Same config, same numbers (flips and orders are seeded).
    let again = tmp.path().join("again");
    ok(&ffw()
        .args([
            "sweep",
            cfg.to_str().unwrap(),
            "--output",
            again.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    for j in &jobs {
        let id = j.file_name().unwrap();
        assert_eq!(
            read_stripped(&j.join("result.json")),
            read_stripped(&again.join("jobs").join(id).join("result.json"))
        );
    }
}

#[test]
fn check_data_lists_every_bad_row_and_runs_refuse_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shapes");
    example(&data, 40, &[]);
    std::fs::write(data.join("images/00005.png"), b"\x89PNG truncated").unwrap();
    std::fs::remove_file(data.join("images/00007.png")).unwrap();
    let csv = data.join("labels.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("images/00001.png,triangle,red\n");
    std::fs::write(&csv, text).unwrap();
    let cfg = tmp.path().join("shapes.toml");
    let listed = folder_config(&data).replace(
        "bias_columns = [\"colour\"]",
        "bias_columns = [\"colour\"]\nlabels = [\"circle\", \"square\"]",
    );
    std::fs::write(&cfg, listed).unwrap();

    let o = ffw()
        .args(["check-data", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].contains("line 7 (images/00005.png)"), "{stdout}");
    assert!(
        lines[1].contains("line 9 (images/00007.png)") && lines[1].contains("not found"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("line 42") && lines[2].contains("\"triangle\""),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 unusable row(s)"));

    // A run stops on them before any training, naming them.
    let out = tmp.path().join("out");
    let o = ffw()
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("3 unusable row(s)") && stderr.contains("images/00005.png"),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_image_stops_a_pass_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    for k in 0..200u32 {
        image::RgbImage::from_pixel(12, 9, image::Rgb([k as u8, 3, 4]))
            .save(tmp.path().join(format!("{k:03}.png")))
            .unwrap();
    }
    std::fs::write(tmp.path().join("037.png"), b"\x89PNG\r\n cut short").unwrap();
    // One pool thread: the pass must stop (its decoder thread joined) without a deadlock.
    let o = ffw()
        .args([
            "--threads",
            "1",
            "bench-loader",
            tmp.path().to_str().unwrap(),
        ])
        .args(["--size", "16", "--batch", "8"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("037.png"), "{stderr}");
}

/// Peak resident memory of `ffw bench-loader` over the first `n` images.
fn loader_peak_mib(dir: &Path, n: usize) -> f64 {
    let o = ffw()
        .args(["--threads", "2", "bench-loader", dir.to_str().unwrap()])
        .args(["--size", "96", "--batch", "32", "--limit", &n.to_string()])
        .output()
        .unwrap();
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().find(|l| l.starts_with("peak RSS")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn the_loaders_memory_does_not_grow_with_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    for k in 0..3000u32 {
        image::RgbImage::from_fn(10, 8, |x, y| {
            image::Rgb([(k % 256) as u8, x as u8 * 20, y as u8 * 30])
        })
        .save(tmp.path().join(format!("{k:05}.png")))
        .unwrap();
    }
    // 3000 images at 96x96 are 316 MiB of f32 inputs held in memory; 300 are 32 MiB.
    let small = loader_peak_mib(tmp.path(), 300);
    let large = loader_peak_mib(tmp.path(), 3000);
    assert!(
        large < small + 24.0,
        "peak RSS {small:.0} MiB over 300 images, {large:.0} MiB over 3000"
    );
}
