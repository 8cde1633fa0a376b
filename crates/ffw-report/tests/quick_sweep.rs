//! The report over the quick sweep's real results: `ffw sweep configs/quick.toml` on the 2-core
//! reference machine, its `sweep.json` and every job's `spec.json` and `result.json` kept in
//! `tests/quick_sweep/` (checkpoints and logs left out; see the README there). Every cell of
//! every study must be the number its job scored.
use std::path::Path;

use ffw_nn::Variant;
use ffw_report::tables::epochs_label;
use ffw_report::write_report;
use ffw_surgery::evaluate::MaskReport;
use ffw_sweep::grid::{expand, Job, JobSpec};
use ffw_sweep::pipeline::{FfwResult, MagnitudeResult, VanillaResult};
use ffw_sweep::store::Manifest;
use ffw_sweep::RunConfig;
use serde::de::DeserializeOwned;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/quick_sweep");
const QUICK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/quick.toml");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn result<T: DeserializeOwned>(dir: &Path, job: &Job) -> T {
    let path = dir.join("jobs").join(&job.id).join("result.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn table(dir: &Path, stem: &str) -> String {
    std::fs::read_to_string(dir.join("report").join(format!("{stem}.md"))).unwrap()
}

/// Asserts that the row of `table` starting with `start` shows the report's task, bias and
/// sparsity as one-seed cells (sparsity missing for an unpruned model).
fn assert_row(table: &str, start: &str, report: &MaskReport) {
    let row = table
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row starting {start:?} in\n{table}"));
    let mut cells = vec![
        format!("| {:.2} (1) |", 100.0 * report.test.task_acc),
        format!("| {:.2} (1) |", 100.0 * report.test.bias_acc[0]),
    ];
    if let Some(s) = &report.sparsity {
        cells.push(format!("| {:.2} (1) |", 100.0 * s.global));
    }
    for cell in cells {
        assert!(row.contains(&cell), "{start}: {cell} missing in {row}");
    }
}

fn rho_of(jobs: &[Job], vanilla: &str) -> f64 {
    jobs.iter()
        .find_map(|j| match &j.spec {
            JobSpec::Vanilla(v) if j.id == vanilla => Some(v.data.rho()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn the_quick_sweeps_report_shows_every_job_it_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(Path::new(FIXTURE), dir);
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let jobs = expand(&manifest.config);
    // The kept results are those of today's quick config: same jobs, same identities.
    let quick = RunConfig::load(Path::new(QUICK)).unwrap();
    let ids = |js: &[Job]| js.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&expand(&quick)),
        ids(&jobs),
        "configs/quick.toml changed: rerun the quick sweep and refresh {FIXTURE}"
    );

    assert_eq!(
        jobs.len(),
        16,
        "2 vanilla, 9 FFW and 5 magnitude-pruning jobs"
    );
    let summary = write_report(dir).unwrap();
    assert_eq!((summary.jobs, summary.jobs_done), (jobs.len(), jobs.len()));
    assert!(
        summary.not_produced.is_empty(),
        "{:?}",
        summary.not_produced
    );
    assert_eq!(summary.figures, 4);

    let base_rho = manifest.config.data.rho();
    let base_lambda = manifest.config.ffw.settings.lambda;
    let (t1, t2, t6, t7) = (
        table(dir, "table1_lambda"),
        table(dir, "table2_rho"),
        table(dir, "table6_epochs"),
        table(dir, "table7_magnitude"),
    );
    for job in &jobs {
        match &job.spec {
            JobSpec::Vanilla(v) => {
                let r: VanillaResult = result(dir, job);
                assert_row(&t2, &format!("| {} | vanilla |", v.data.rho()), &r.report);
                if v.data.rho() == base_rho {
                    assert_row(&t7, "| – | vanilla |", &r.report);
                    let first = &r.checkpoints[0];
                    assert_row(&t6, "| 1/60 | vanilla |", &first.report);
                }
            }
            JobSpec::Ffw(f) => {
                let r: FfwResult = result(dir, job);
                let rho = rho_of(&jobs, &f.vanilla);
                let label = match f.ffw.variant {
                    Variant::Unstructured => "FFW",
                    Variant::Structured => "FFW-structured",
                };
                if f.ffw.lambda == base_lambda && f.at.is_none() {
                    assert_row(&t2, &format!("| {rho} | {label} |"), &r.final_mask);
                }
                if rho == base_rho && f.ffw.variant == Variant::Unstructured {
                    match (f.at, f.ffw.lambda == base_lambda) {
                        (None, true) => {
                            assert_row(
                                &t1,
                                &format!("| {base_lambda} (base) | FFW |"),
                                &r.final_mask,
                            );
                            assert_row(&t7, "| – | FFW |", &r.final_mask);
                        }
                        (None, false) => {
                            assert_row(&t1, &format!("| {} | FFW |", f.ffw.lambda), &r.final_mask)
                        }
                        (Some(at), _) => assert_row(
                            &t6,
                            &format!("| {} | FFW |", epochs_label(at)),
                            &r.final_mask,
                        ),
                    }
                }
            }
            JobSpec::Magnitude(m) => {
                let r: MagnitudeResult = result(dir, job);
                let target = format!("| {} | magnitude pruning |", 100.0 * m.sparsity);
                assert_row(&t7, &target, &r.report);
                // Global magnitude pruning reaches its target sparsity to within one weight.
                let reached = r.report.sparsity.as_ref().unwrap().global;
                assert!((reached - m.sparsity).abs() < 1e-3, "{target}: {reached}");
            }
        }
    }
}
