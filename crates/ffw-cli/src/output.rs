//! The `ffw run` result: one JSON document combining the run's vanilla job and FFW jobs,
//! written atomically so a failed run never leaves a half-written result.
use ffw_results::{FfwResult, SplitScores, VanillaResult};
use ffw_sweep::RunConfig;
use serde::Serialize;

#[derive(Serialize)]
pub struct Versions {
    pub ffw: &'static str,
    pub candle: &'static str,
}

pub const VERSIONS: Versions = Versions {
    ffw: env!("CARGO_PKG_VERSION"),
    candle: env!("FFW_CANDLE_VERSION"),
};

#[derive(Serialize)]
pub struct RunResult {
    pub config: RunConfig,
    pub seed: u64,
    pub versions: Versions,
    /// Job identities (directories under `jobs/`): the vanilla job, then one per variant.
    pub jobs: Vec<String>,
    pub vanilla: VanillaResult,
    pub ffw: Vec<FfwResult>,
}

pub fn print_summary(r: &RunResult) {
    let pct = |v: f64| format!("{:6.2}", 100.0 * v);
    let bias = |v: &[f64]| v.iter().map(|b| pct(*b)).collect::<Vec<_>>().join("/");
    let group = |v: &[Option<f64>]| {
        v.iter()
            .map(|b| b.map_or("-".into(), pct))
            .collect::<Vec<_>>()
            .join("/")
    };
    println!(
        "{:<34} {:>7} {:>9} {:>11} {:>7} {:>9}",
        "unbiased test", "task %", "aligned %", "conflicting", "bias %", "sparsity"
    );
    let row = |label: &str, s: &SplitScores, sparsity: String| {
        println!(
            "{:<34} {} {:>9} {:>11} {} {:>9}",
            label,
            pct(s.task_acc),
            group(&s.aligned_acc),
            group(&s.conflicting_acc),
            bias(&s.bias_acc),
            sparsity
        );
        // With several bias attributes, every aligned/conflicting combination and their
        // mean (Multi-Color MNIST's "unbiased" accuracy).
        if s.bias_acc.len() > 1 {
            println!(
                "{:<34} {} (mean {})",
                "  groups (aligned first, per attribute)",
                group(&s.groups),
                s.unbiased_acc.map_or("-".into(), pct)
            );
        }
    };
    row(
        if r.vanilla.report.collapsed {
            "vanilla collapsed"
        } else {
            "vanilla"
        },
        &r.vanilla.report.test,
        "-".into(),
    );
    for f in &r.ffw {
        let name = format!("{:?}", f.variant).to_lowercase();
        let rows = std::iter::once((format!("ffw {name} (final)"), &f.final_mask)).chain(
            f.best_intermediate
                .iter()
                .map(|(e, m)| (format!("ffw {name} (best, epoch {e})"), m)),
        );
        for (label, m) in rows {
            let label = if m.collapsed {
                format!("{label} collapsed")
            } else {
                label
            };
            let s = m
                .sparsity
                .as_ref()
                .map(|s| pct(s.global))
                .unwrap_or_default();
            row(&label, &m.test, s);
        }
    }
}
