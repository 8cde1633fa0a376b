//! The report over the quick sweep's real results: `ffw sweep configs/quick.toml` on the 2-core
//! reference machine, its `sweep.json` and every job's `spec.json` and `result.json` kept in
//! `tests/quick_sweep/` (checkpoints and logs left out; see the README there). Every cell of
//! every study must be the number its job scored.
use std::path::Path;

use ffw_report::write_report;
use ffw_results::{read_result, FfwResult, MagnitudeResult, MaskReport, VanillaResult, Variant};
use ffw_sweep::grid::{expand, Job, JobSpec};
use ffw_sweep::manifest::SweepManifest;
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
    // Written before results carried a schema version: they read as version 1.
    read_result(&dir.join("jobs").join(&job.id).join("result.json"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn table(dir: &Path, stem: &str) -> String {
    std::fs::read_to_string(dir.join("report").join(format!("{stem}.md"))).unwrap()
}

/// The report's cell for these per-seed values (in %): mean ± sample std (seeds).
fn cell(values: &[f64]) -> String {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    format!("| {mean:.2} ± {sd:.2} ({}) |", values.len())
}

/// Asserts that the row of `table` starting with `start` shows the task, bias and sparsity of
/// these reports (one per seed) as mean ± std cells (sparsity missing for unpruned models).
fn refs(v: &[MaskReport]) -> Vec<&MaskReport> {
    v.iter().collect()
}

fn assert_row(table: &str, start: &str, reports: &[&MaskReport]) {
    let row = table
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row starting {start:?} in\n{table}"));
    let of = |f: &dyn Fn(&MaskReport) -> f64| -> Vec<f64> {
        reports.iter().map(|r| 100.0 * f(r)).collect()
    };
    let mut cells = vec![
        cell(&of(&|r| r.test.task_acc)),
        cell(&of(&|r| r.test.bias_acc[0])),
    ];
    if reports[0].sparsity.is_some() {
        cells.push(cell(&of(&|r| r.sparsity.as_ref().unwrap().global)));
    }
    for c in cells {
        assert!(row.contains(&c), "{start}: {c} missing in {row}");
    }
}

#[test]
fn the_quick_sweeps_report_shows_every_job_it_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(Path::new(FIXTURE), dir);
    // Written before sweep.json held the report's part: the sweep's reader completes it.
    let manifest = SweepManifest::read(dir).unwrap();
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
        24,
        "3 seeds × (1 vanilla, 2 FFW and 5 magnitude-pruning jobs)"
    );
    let summary = write_report(dir, manifest.report).unwrap();
    assert_eq!((summary.jobs, summary.jobs_done), (jobs.len(), jobs.len()));
    assert_eq!(
        summary.figures, 2,
        "Fig. 4 and Fig. 6: {:?}",
        summary.not_produced
    );
    let t7 = table(dir, "table7_magnitude");

    // Group the jobs' results by what Table 7 shows in a row; each row is over 3 seeds.
    let (mut vanilla, mut ffw, mut structured) = (vec![], vec![], vec![]);
    let mut magnitude: Vec<(f64, Vec<MaskReport>)> = vec![];
    for job in &jobs {
        match &job.spec {
            JobSpec::Vanilla(_) => vanilla.push(result::<VanillaResult>(dir, job).report),
            JobSpec::Ffw(f) => {
                let r: FfwResult = result(dir, job);
                match f.ffw.variant {
                    Variant::Unstructured => ffw.push(r.final_mask),
                    Variant::Structured => structured.push(r.final_mask),
                }
            }
            JobSpec::Magnitude(m) => {
                let r: MagnitudeResult = result(dir, job);
                // Global magnitude pruning reaches its target sparsity to within one weight.
                let reached = r.report.sparsity.as_ref().unwrap().global;
                assert!(
                    (reached - m.sparsity).abs() < 1e-3,
                    "{}: {reached}",
                    m.sparsity
                );
                match magnitude.iter_mut().find(|(s, _)| *s == m.sparsity) {
                    Some((_, rs)) => rs.push(r.report),
                    None => magnitude.push((m.sparsity, vec![r.report])),
                }
            }
        }
    }
    assert_row(&t7, "| – | vanilla |", &refs(&vanilla));
    assert_row(&t7, "| – | FFW |", &refs(&ffw));
    assert_row(&t7, "| – | FFW-structured |", &refs(&structured));
    assert_eq!(magnitude.len(), 5);
    for (sparsity, reports) in &magnitude {
        assert_eq!(reports.len(), 3);
        let collapsed = reports.iter().filter(|r| r.collapsed).count();
        let label = match collapsed {
            0 => "magnitude pruning".to_string(),
            k => format!("magnitude pruning ({k} of 3 collapsed)"),
        };
        assert_row(
            &t7,
            &format!("| {} | {label} |", 100.0 * sparsity),
            &refs(reports),
        );
    }
}
