//! End-to-end tests of `ffw sweep` on generated MNIST-format data: every job done exactly once
//! with the vanilla checkpoint shared, identical results on 1 and 3 MPI ranks, resume after
//! SIGKILL and SIGTERM, one sweep per directory, failures recorded and retried, damaged results and
//! checkpoints rerun, a damaged journal read past, bad configs rejected before any work.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
use common::{count, events, ffw, ok, read_stripped, write_mnist};

/// 2 seeds × 1 ρ → 2 vanilla jobs; × 2 λ × 1 variant → 4 FFW jobs.
fn config(data: &Path) -> String {
    format!(
        r#"
[data]
kind = "biased_mnist"
dir = "{}"
rho = 0.9
n_train = 200
n_unbiased_train = 60
n_unbiased_val = 60
n_test = 60
[model]
kernel = 3
[vanilla]
epochs = 1
batch_size = 50
milestones = []
[ffw]
max_epochs = 2
temperature_patience = 0
batch_size = 30
[ffw.probe]
max_epochs = 3
[sweep]
seeds = [0, 1]
lambda = [2.0, 10.0]
retries = 1
"#,
        data.display()
    )
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cfg: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    write_mnist(&root.join("mnist"), 300, 120);
    let cfg = root.join("sweep.toml");
    std::fs::write(&cfg, config(&root.join("mnist"))).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        cfg,
    }
}

fn sweep(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    let (cfg, out) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    // Info level: the per-job logs are checked for the training lines.
    ffw()
        .args(["sweep", cfg, "--output", out])
        .args(extra)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// (id, state, description) per job, from `--dry-run`.
fn listing(cfg: &Path, out: &Path) -> (Vec<(String, String)>, String) {
    let o = sweep(cfg, out, &["--dry-run"]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let jobs = text
        .lines()
        .filter(|l| {
            l.len() > 17
                && l.as_bytes()[16] == b' '
                && l[..16].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|l| (l[..16].to_string(), l[16..].trim().to_string()))
        .collect();
    (jobs, text.lines().last().unwrap_or_default().to_string())
}

/// Every job's result with wall-clock fields removed.
fn results(out: &Path, ids: &[String]) -> Vec<serde_json::Value> {
    ids.iter()
        .map(|id| read_stripped(&out.join("jobs").join(id).join("result.json")))
        .collect()
}

#[test]
fn every_job_runs_once_sharing_the_vanilla_checkpoint_and_a_rerun_does_nothing() {
    let f = fixture();
    let out = f.root.join("out");
    let (jobs, totals) = listing(&f.cfg, &out);
    assert!(!out.exists(), "--dry-run created the output directory");
    assert_eq!(jobs.len(), 6);
    assert_eq!(
        totals,
        format!(
            "6 jobs: 0 done, 0 incomplete, 0 failed, 6 not started ({})",
            f.cfg.display()
        )
    );
    ok(&sweep(&f.cfg, &out, &[]));
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.clone()).collect();
    for id in &ids {
        assert_eq!(count(&out, id, "started"), 1, "job {id}");
        assert_eq!(count(&out, id, "finished"), 1, "job {id}");
    }
    let vanilla: Vec<_> = jobs.iter().filter(|(_, d)| !d.contains("<-")).collect();
    assert_eq!(vanilla.len(), 2);
    for (id, d) in &vanilla {
        let what = &d[d.find("vanilla").unwrap()..];
        let users = jobs
            .iter()
            .filter(|(_, d)| d.contains("<-") && d.ends_with(what))
            .count();
        assert_eq!(users, 2, "FFW jobs sharing {what}");
        assert!(out
            .join("jobs")
            .join(id)
            .join("vanilla.safetensors")
            .exists());
    }
    let (_, totals) = listing(&f.cfg, &out);
    assert!(totals.starts_with("6 jobs: 6 done"), "{totals}");
    ok(&sweep(&f.cfg, &out, &[]));
    assert_eq!(
        events(&out)
            .iter()
            .filter(|e| e["event"] == "started")
            .count(),
        6,
        "a rerun ran jobs again"
    );
}

#[test]
fn a_sweep_killed_midway_resumes_to_the_uninterrupted_results() {
    let f = fixture();
    let (whole, cut) = (f.root.join("whole"), f.root.join("cut"));
    ok(&sweep(&f.cfg, &whole, &[]));
    let ids: Vec<String> = listing(&f.cfg, &whole)
        .0
        .into_iter()
        .map(|(id, _)| id)
        .collect();

    let log = f.root.join("cut.log");
    let mut child = ffw()
        .args([
            "sweep",
            f.cfg.to_str().unwrap(),
            "--output",
            cut.to_str().unwrap(),
            "--status-secs",
            "1",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while events(&cut)
        .iter()
        .filter(|e| e["event"] == "finished")
        .count()
        < 2
    {
        assert!(t.elapsed() < Duration::from_secs(300), "no job finished");
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // `ffw status` shows the running sweep: its counts, running job, ranks and holder.
    let status = ffw()
        .args(["status", cut.to_str().unwrap()])
        .output()
        .unwrap();
    ok(&status);
    let text = String::from_utf8_lossy(&status.stdout);
    for needle in [
        "/6 done, 1 running",
        "running on rank 0 for",
        "rank 0: last started",
        &format!("lock: pid {} on host", child.id()),
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // A second sweep on the same directory is refused, naming the running one.
    let second = sweep(&f.cfg, &cut, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {} on host", child.id())),
        "{stderr}"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("sweep status: "), "{logged}");
    // Its lock is stale now: the rerun below takes it over.
    let (_, totals) = listing(&f.cfg, &cut);
    assert!(
        !totals.starts_with("6 jobs: 6 done"),
        "the sweep ended before it was killed: {totals}"
    );
    ok(&sweep(&f.cfg, &cut, &[]));
    assert_eq!(results(&cut, &ids), results(&whole, &ids));
}

#[test]
fn a_failing_job_is_recorded_retried_and_its_dependants_skipped() {
    let f = fixture();
    let out = f.root.join("out");
    let jobs = listing(&f.cfg, &out).0;
    let (ffw_id, _) = jobs.iter().find(|(_, d)| d.contains("lambda=2")).unwrap();
    let (vanilla_id, _) = jobs
        .iter()
        .find(|(_, d)| !d.contains("<-") && !d.contains("seed=0"))
        .unwrap();
    let o = ffw()
        .args([
            "sweep",
            f.cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .env("FFW_FAIL_JOBS", format!("{ffw_id},{vanilla_id}"))
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a sweep with failed jobs must exit non-zero"
    );
    assert_eq!(
        count(&out, ffw_id, "failed"),
        2,
        "one attempt plus one retry"
    );
    assert_eq!(count(&out, vanilla_id, "failed"), 2);
    let skipped: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| e["event"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 2, "the failed vanilla job's two FFW jobs");
    assert!(skipped
        .iter()
        .all(|e| e["error"].as_str().unwrap().contains(vanilla_id.as_str())));
    let failed = events(&out)
        .into_iter()
        .find(|e| e["event"] == "failed")
        .unwrap();
    assert!(failed["error"].as_str().unwrap().contains("injected"));
    let (_, totals) = listing(&f.cfg, &out);
    assert!(totals.contains("2 failed"), "{totals}");

    // Without the fault the same command finishes the sweep.
    ok(&sweep(&f.cfg, &out, &[]));
    assert!(listing(&f.cfg, &out).1.starts_with("6 jobs: 6 done"));
}

#[test]
fn bad_configs_are_rejected_before_any_work() {
    let f = fixture();
    let base = config(&f.root.join("mnist"));
    write_mnist(&f.root.join("empty-mnist"), 300, 0);
    for (name, text, needle) in [
        (
            "dataset",
            base.replace("biased_mnist", "imagenet"),
            "imagenet",
        ),
        (
            "key",
            base.replace("lambda = [2.0, 10.0]", "lambdas = [2.0]"),
            "lambdas",
        ),
        (
            "range",
            base.replace("lambda = [2.0, 10.0]", "lambda = [-2.0]"),
            "sweep.lambda",
        ),
        (
            "probe",
            base.replace(
                "[ffw.probe]\nmax_epochs = 3",
                "[ffw.probe]\nmax_epochs = \"3\"",
            ),
            "ffw.probe.max_epochs (line 21)",
        ),
        (
            "empty",
            config(&f.root.join("empty-mnist")),
            "t10k-images-idx3-ubyte.gz: holds no images",
        ),
        (
            "finite",
            base.replace("[ffw]\n", "[ffw]\nlr = inf\n"),
            "ffw.lr: must be finite and > 0, got inf",
        ),
        (
            "ranks",
            base.replace("retries = 1", "retries = 1\nranks_per_job = 1000"),
            "sweep.ranks_per_job (sweep): larger than the smallest minibatch",
        ),
    ] {
        let cfg = f.root.join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let out = f.root.join(format!("out-{name}"));
        let o = sweep(&cfg, &out, &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            stderr.contains(needle) && stderr.contains(&format!("{name}.toml")),
            "{stderr}"
        );
        assert!(!out.exists(), "work started for a bad config");
    }
}

/// Under `mpirun -np 3`: a coordinator and two workers produce exactly the single-rank results,
/// each rank on its share of the cores.
#[cfg(feature = "mpi")]
#[test]
fn three_mpi_ranks_reproduce_the_single_rank_sweep() {
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun not found (install openmpi-bin)");
        return;
    }
    let f = fixture();
    let (single, multi) = (f.root.join("single"), f.root.join("multi"));
    ok(&sweep(&f.cfg, &single, &[]));
    let o = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "3",
            env!("CARGO_BIN_EXE_ffw"),
            "sweep",
        ])
        .args([f.cfg.to_str().unwrap(), "--output", multi.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    ok(&o);
    let cores = std::thread::available_parallelism().unwrap().get();
    let share = format!("threads={}", (cores / 3).max(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let ready: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("rank ready"))
        .collect();
    assert_eq!(ready.len(), 3, "{stderr}");
    assert!(
        ready.iter().all(|l| l.contains(&share)),
        "{share}: {ready:?}"
    );
    let ids: Vec<String> = listing(&f.cfg, &single)
        .0
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(results(&multi, &ids), results(&single, &ids));
    let ranks: std::collections::BTreeSet<i64> = events(&multi)
        .iter()
        .filter(|e| e["event"] == "finished")
        .map(|e| e["rank"].as_i64().unwrap())
        .collect();
    // Rank 0 coordinates from a thread of its own and runs jobs like the others.
    assert!(ranks.contains(&0), "rank 0 ran no job: {ranks:?}");
    for id in &ids {
        assert_eq!(
            count(&multi, id, "started"),
            1,
            "job {id} ran more than once"
        );
        // Rank 0's coordinator thread logs about other jobs while this one runs: none of
        // it belongs in this job's log.
        let log = std::fs::read_to_string(multi.join("jobs").join(id).join("log.txt")).unwrap();
        let foreign: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("job=") && !l.contains(&format!("job={id}")))
            .collect();
        assert!(foreign.is_empty(), "job {id}'s log: {foreign:?}");
    }
}

/// `mpirun` with `--timeout`, so that a deadlock fails the test instead of hanging it.
#[cfg(feature = "mpi")]
fn mpi_sweep(ranks: usize, cfg: &Path, out: &Path, fail: &str) -> Output {
    Command::new("timeout")
        .args([
            "300",
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
        ])
        .arg(ranks.to_string())
        .args([env!("CARGO_BIN_EXE_ffw"), "sweep", cfg.to_str().unwrap()])
        .args(["--output", out.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("FFW_FAIL_JOBS", fail)
        .output()
        .unwrap()
}

/// Jobs of 2 ranks (the Biased MNIST grid with `ranks_per_job = 2`, on an MLP) mixed with
/// jobs of 1 (a Multi-Color MNIST study with `ranks_per_job = 1`, magnitude pruning) on 3
/// ranks, rank 0 among the workers: a 2-rank vanilla job that fails on one of its ranks ends
/// on both without stalling the sweep, and its dependants are skipped; the rerun on 2 ranks
/// finishes every job, each once; every attempt ran on as many ranks as its job needs, and
/// 2-rank jobs train the model and run the FFW that one rank does. A world too small for a
/// job is refused at the start.
#[cfg(feature = "mpi")]
#[test]
fn jobs_of_one_and_two_ranks_mix_and_a_failed_sweep_resumes() {
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun not found (install openmpi-bin)");
        return;
    }
    let f = fixture();
    let cfg = f.root.join("gangs.toml");
    let mnist = f.root.join("mnist");
    let text = config(&mnist)
        .replace(
            "[model]\nkernel = 3",
            "[model]\nname = \"mlp\"\nhidden = [16]",
        )
        .replace(
            "retries = 1",
            "retries = 1\nranks_per_job = 2\nmagnitude = [0.5]",
        )
        + &format!(
            r#"
[studies.lambda]
[studies.multi_color_mnist]
ranks_per_job = 1
[studies.multi_color_mnist.data]
kind = "multi_color_mnist"
dir = "{}"
[studies.multi_color_mnist.model]
name = "mlp"
hidden = [16]
[studies.multi_color_mnist.vanilla]
epochs = 1
batch_size = 50
milestones = []
[studies.multi_color_mnist.axes]
seeds = [0]
lambda = [2.0]
"#,
            mnist.display()
        );
    std::fs::write(&cfg, text).unwrap();
    let out = f.root.join("out");
    let jobs = listing(&cfg, &out).0;
    let ranks_of = |d: &str| if d.ends_with("[2 ranks]") { 2 } else { 1 };
    let vanilla_id = &jobs
        .iter()
        .find(|(_, d)| !d.contains("<-") && ranks_of(d) == 2)
        .expect("a vanilla job on 2 ranks")
        .0;
    assert!(
        jobs.iter()
            .any(|(_, d)| !d.contains("<-") && ranks_of(d) == 1),
        "a vanilla job on 1 rank"
    );

    let o = mpi_sweep(1, &cfg, &out, "");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && o.status.code() != Some(124),
        "{stderr}"
    );
    assert!(
        stderr.contains("sweep.ranks_per_job: 2 ranks per job, but the sweep has 1"),
        "{stderr}"
    );
    assert!(events(&out).is_empty(), "a job started");

    // The failure is injected on the job's second rank only: its first rank learns of it
    // in its next collective and reports it.
    let o = mpi_sweep(3, &cfg, &out, &format!("{vanilla_id}@1"));
    let mut logs = String::from_utf8_lossy(&o.stderr).to_string();
    let stderr = &logs;
    assert_ne!(o.status.code(), Some(124), "the sweep stalled:\n{stderr}");
    assert!(!o.status.success(), "{stderr}");
    assert_eq!(
        count(&out, vanilla_id, "failed"),
        2,
        "one attempt plus one retry"
    );
    let errors: Vec<String> = events(&out)
        .iter()
        .filter(|e| e["job"] == vanilla_id.as_str() && e["event"] == "failed")
        .map(|e| e["error"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        errors
            .iter()
            .all(|e| e.contains("rank(s) [1] of this job's 2 ranks failed")),
        "{errors:?}"
    );
    assert!(
        stderr.contains("failure injected by FFW_FAIL_JOBS"),
        "{stderr}"
    );
    // The failed model's 2 FFW jobs and its magnitude job are skipped.
    assert!(
        listing(&cfg, &out).1.starts_with("11 jobs: 7 done"),
        "{stderr}"
    );

    let o = mpi_sweep(2, &cfg, &out, "");
    ok(&o);
    logs.push_str(&String::from_utf8_lossy(&o.stderr));
    let stderr = &logs;
    assert!(
        listing(&cfg, &out).1.starts_with("11 jobs: 11 done"),
        "{stderr}"
    );
    for (id, d) in &jobs {
        let done: Vec<_> = events(&out)
            .into_iter()
            .filter(|e| e["job"] == id.as_str() && e["event"] == "finished")
            .collect();
        assert_eq!(done.len(), 1, "job {id}");
        let start = format!("job start job={id}");
        let lines = stderr.lines().filter(|l| l.contains(&start)).count();
        let attempts = count(&out, id, "started");
        assert_eq!(
            lines,
            ranks_of(d) * attempts,
            "ranks that ran {id}:\n{stderr}"
        );
        assert!(out.join("jobs").join(id).join("result.json").exists());
    }

    // The 2 ranks trained the model one rank trains, up to the order of float sums.
    let single = f.root.join("single");
    let one = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("ranks_per_job = 2", "");
    std::fs::write(&cfg, one).unwrap();
    ok(&sweep(&cfg, &single, &[]));
    let history = |out: &Path| {
        read_stripped(&out.join("jobs").join(vanilla_id).join("result.json"))["history"].clone()
    };
    let (two, one) = (history(&out), history(&single));
    assert_eq!(two.as_array().unwrap().len(), 1, "{two}");
    for (t, o) in two.as_array().unwrap().iter().zip(one.as_array().unwrap()) {
        let loss = |e: &serde_json::Value| e["loss"].as_f64().unwrap();
        assert!((loss(t) - loss(o)).abs() < 1e-5, "{two} vs {one}");
        assert_eq!(t["train_acc"], o["train_acc"], "{two} vs {one}");
    }
    let ffw: Vec<&String> = jobs
        .iter()
        .filter(|(_, d)| d.contains(" ffw ") && ranks_of(d) == 2)
        .map(|(id, _)| id)
        .collect();
    assert!(!ffw.is_empty(), "{jobs:?}");
    for id in ffw {
        let epochs = |out: &Path| {
            read_stripped(&out.join("jobs").join(id).join("result.json"))["epochs"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|e| {
                    [
                        e["train_ce"].as_f64().unwrap(),
                        e["val_mi"].as_f64().unwrap(),
                    ]
                })
                .collect::<Vec<f64>>()
        };
        let (two, one) = (epochs(&out), epochs(&single));
        assert_eq!(two.len(), one.len(), "FFW job {id}: {two:?} vs {one:?}");
        // The CE to 1e-5; the validation MI, read through privacy heads trained to plateau
        // on the gated model (which magnifies the gates' last-bit differences), to 1e-4.
        for (i, (t, o)) in two.iter().zip(&one).enumerate() {
            let tolerance = if i % 2 == 0 { 1e-5 } else { 1e-4 };
            assert!(
                (t - o).abs() < tolerance,
                "FFW job {id}: {two:?} vs {one:?}"
            );
        }
    }
}

/// Under `mpirun -np 3 … --device cuda` where no worker can open a GPU (a CPU build, or no
/// GPU): every rank stops with an error before any job starts, none waits for the others.
#[cfg(feature = "mpi")]
#[test]
fn workers_that_cannot_open_their_gpu_stop_every_rank() {
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun not found (install openmpi-bin)");
        return;
    }
    let f = fixture();
    let out = f.root.join("out");
    let o = Command::new("timeout")
        .args([
            "120",
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "3",
        ])
        .args([env!("CARGO_BIN_EXE_ffw"), "sweep", f.cfg.to_str().unwrap()])
        .args(["--output", out.to_str().unwrap(), "--device", "cuda"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert_ne!(
        o.status.code(),
        Some(124),
        "a rank waited for another:\n{stderr}"
    );
    // Every rank is a worker here, so each names its own failure.
    assert_eq!(stderr.matches("--device cuda: ").count(), 3, "{stderr}");
    assert!(
        !events(&out).iter().any(|e| e["event"] == "started"),
        "a job started"
    );
}

#[test]
fn studies_run_checkpoint_and_magnitude_jobs_and_record_their_members() {
    let f = fixture();
    let cfg = f.root.join("studies.toml");
    let text = config(&f.root.join("mnist"))
        .replace("epochs = 1\n", "epochs = 2\ncheckpoints = [0.25, 1]\n")
        .replace("seeds = [0, 1]\nlambda = [2.0, 10.0]\n", "seeds = [0]\n")
        + "[studies.epochs]\nat = [0.25, 1]\n[studies.magnitude]\nmagnitude = [0.5, 0.9]\n";
    std::fs::write(&cfg, text).unwrap();
    let out = f.root.join("out");
    let (jobs, _) = listing(&cfg, &out);
    // 1 vanilla, FFW from the final model and 2 checkpoints, 2 magnitude jobs.
    assert_eq!(jobs.len(), 6, "{jobs:?}");
    let run = sweep(&cfg, &out, &[]);
    ok(&run);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    let members = |s: &str| manifest["studies"][s]["jobs"].as_array().unwrap().len();
    assert_eq!((members("epochs"), members("magnitude")), (4, 4));
    let mut ats = Vec::new();
    for (id, what) in &jobs {
        let dir = out.join("jobs").join(id);
        let r = read_stripped(&dir.join("result.json"));
        if !what.contains("<-") {
            let epochs: Vec<f64> = r["checkpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["epoch"].as_f64().unwrap())
                .collect();
            assert_eq!(epochs, vec![0.25, 1.0]);
            for stem in ["vanilla-at-0_25", "vanilla-at-1", "vanilla"] {
                assert!(dir.join(format!("{stem}.safetensors")).exists(), "{stem}");
            }
        } else if what.contains("magnitude sparsity") {
            let target = r["sparsity_target"].as_f64().unwrap();
            let reached = r["report"]["sparsity"]["global"].as_f64().unwrap();
            assert!((reached - target).abs() < 1e-3, "{reached} vs {target}");
        } else {
            ats.push(r["at"].as_f64());
        }
    }
    ats.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(ats, vec![None, Some(0.25), Some(1.0)]);

    // The sweep ends with its report: the studies' tables and figures, linked from the index.
    let report = out.join("report");
    let index = std::fs::read_to_string(report.join("index.md")).unwrap_or_else(|e| {
        panic!(
            "no index.md ({e}):\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    for stem in [
        "table6_epochs",
        "table7_magnitude",
        "fig6_magnitude",
        "fig7_epochs",
    ] {
        assert!(index.contains(stem), "{stem} not in index.md:\n{index}");
    }
    for file in [
        "fig6_magnitude.png",
        "fig7_epochs.png",
        "fig6_magnitude.svg",
        "jobs.csv",
    ] {
        let len = std::fs::metadata(report.join(file)).unwrap().len();
        assert!(len > 1000, "{file} has {len} bytes");
    }
    let table = std::fs::read_to_string(report.join("table7_magnitude.md")).unwrap();
    assert!(table.contains("50"), "no 50% sparsity row:\n{table}");
    // `ffw report` rewrites the same report from the results alone.
    std::fs::remove_dir_all(&report).unwrap();
    let o = ffw()
        .args(["report", out.to_str().unwrap()])
        .output()
        .unwrap();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("6 of 6 jobs"));
    assert_eq!(
        std::fs::read_to_string(report.join("index.md")).unwrap(),
        index
    );
}

#[test]
fn a_journal_with_a_bad_byte_and_a_torn_line_resumes_keeping_every_event() {
    let f = fixture();
    let out = f.root.join("out");
    ok(&sweep(&f.cfg, &out, &[]));
    let ids: Vec<String> = listing(&f.cfg, &out)
        .0
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let journal = out.join("journal.jsonl");
    let mut bytes = std::fs::read(&journal).unwrap();
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    bytes.extend_from_slice(b"{\"job\": \"\xff\"}\n{\"time\": 17, \"job\": \"");
    std::fs::write(&journal, bytes).unwrap();
    let last = &ids[ids.len() - 1];
    std::fs::remove_file(out.join("jobs").join(last).join("result.json")).unwrap();
    let o = sweep(&f.cfg, &out, &[]);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("skipped 2 unreadable line(s)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Every earlier event, and the rerun's own two, are read back.
    assert_eq!(events(&out).len(), lines + 2);
    assert_eq!(count(&out, last, "started"), 2);
    assert_eq!(count(&out, last, "finished"), 2);
    assert!(listing(&f.cfg, &out).1.starts_with("6 jobs: 6 done"));
}

#[test]
fn damaged_results_and_checkpoints_are_rerun_to_the_same_numbers() {
    let f = fixture();
    let out = f.root.join("out");
    ok(&sweep(&f.cfg, &out, &[]));
    let jobs = listing(&f.cfg, &out).0;
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.clone()).collect();
    let before = results(&out, &ids);
    let dir = |id: &str| out.join("jobs").join(id);
    let vanilla: Vec<&String> = jobs
        .iter()
        .filter(|(_, d)| !d.contains("<-"))
        .map(|(id, _)| id)
        .collect();
    let users = |v: &str| -> Vec<String> {
        let what = &jobs.iter().find(|(id, _)| id == v).unwrap().1;
        let what = &what[what.find("vanilla").unwrap()..];
        jobs.iter()
            .filter(|(_, d)| d.contains("<-") && d.ends_with(what))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (v0, v1) = (vanilla[0].as_str(), vanilla[1].as_str());
    let (emptied, garbled) = (&users(v0)[0], &users(v1)[0]);
    // A node crash's empty result, a garbled one, a lost checkpoint of a finished vanilla
    // job, and a garbled checkpoint card of one without a result.
    std::fs::write(dir(emptied).join("result.json"), b"").unwrap();
    std::fs::write(dir(garbled).join("result.json"), b"{\"final_mask\": \xff").unwrap();
    std::fs::remove_file(dir(v0).join("vanilla.safetensors")).unwrap();
    std::fs::write(dir(v1).join("vanilla.json"), b"{not json").unwrap();
    std::fs::remove_file(dir(v1).join("result.json")).unwrap();

    let (states, totals) = listing(&f.cfg, &out);
    assert!(
        totals.ends_with(&format!("3 damaged ({})", f.cfg.display())),
        "{totals}"
    );
    for id in [emptied, garbled, &v0.to_string()] {
        let (_, state) = states.iter().find(|(i, _)| i == id).unwrap();
        assert!(state.starts_with("damaged"), "{id}: {state}");
    }
    ok(&sweep(&f.cfg, &out, &[]));
    assert_eq!(results(&out, &ids), before);
    assert!(listing(&f.cfg, &out).1.starts_with("6 jobs: 6 done"));
    for id in [emptied, garbled] {
        let kept: Vec<_> = std::fs::read_dir(dir(id))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("result.json.damaged-"))
            .collect();
        assert_eq!(kept.len(), 1, "{id}: the damaged result is kept aside");
        assert_eq!(count(&out, id, "damaged"), 1);
        assert_eq!(count(&out, id, "started"), 2);
    }
    // Both vanilla jobs ran again (one reusing nothing it could not read); the dependants
    // with intact results did not.
    for v in [v0, v1] {
        assert_eq!(count(&out, v, "started"), 2, "{v}");
    }
    for id in ids.iter().filter(|id| ![emptied, garbled].contains(id)) {
        if !vanilla.contains(&id) {
            assert_eq!(count(&out, id, "started"), 1, "{id}");
        }
    }
    assert!(dir(v0).join("vanilla.safetensors").exists());
}

#[test]
fn sigterm_mid_job_records_it_interrupted_and_a_rerun_gives_the_uninterrupted_numbers() {
    let f = fixture();
    // One long vanilla job (the signal lands mid-training) and one FFW job on it.
    let cfg = f.root.join("long.toml");
    let text = config(&f.root.join("mnist"))
        .replace("epochs = 1\n", "epochs = 8\n")
        .replace("seeds = [0, 1]\nlambda = [2.0, 10.0]\n", "");
    std::fs::write(&cfg, text).unwrap();
    let (whole, cut) = (f.root.join("whole"), f.root.join("cut"));
    ok(&sweep(&cfg, &whole, &[]));
    let jobs = listing(&cfg, &whole).0;
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.clone()).collect();
    let vanilla = &jobs.iter().find(|(_, d)| !d.contains("<-")).unwrap().0;

    let child = ffw()
        .args([
            "sweep",
            cfg.to_str().unwrap(),
            "--output",
            cut.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = cut.join("jobs").join(vanilla).join("log.txt");
    let t = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("vanilla epoch")
    {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{stderr}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        t.elapsed()
    );
    assert!(
        stderr.contains("1 running job(s) recorded as interrupted"),
        "{stderr}"
    );
    assert_eq!(count(&cut, vanilla, "interrupted"), 1);
    assert_eq!(count(&cut, vanilla, "finished"), 0);
    assert!(!cut.join("jobs").join(vanilla).join("result.json").exists());

    ok(&sweep(&cfg, &cut, &[]));
    assert_eq!(results(&cut, &ids), results(&whole, &ids));
}
