//! `jobs.csv`: one row per scored model (a job; a vanilla job adds one per training
//! checkpoint) with every axis value and metric, as stored: accuracies and sparsities are
//! fractions in [0, 1]. An empty field is a missing value (no result, or not applicable).
use std::collections::BTreeSet;

use ffw_results::{MaskReport, SplitScores};

use crate::aggregate::mean;
use crate::records::Record;

/// The columns before the dataset's settings, and after them.
const LEAD: [&str; 5] = ["job", "kind", "variant", "studies", "dataset"];
const TAIL: [&str; TAIL_COLUMNS] = [
    "seed",
    "vanilla_epochs",
    "lambda",
    "at",
    "magnitude_target",
    "has_result",
    "test_task_acc",
    "test_bias_acc",
    "test_bias_acc_by_attribute",
    "test_mi",
    "test_aligned_acc_by_attribute",
    "test_conflicting_acc_by_attribute",
    "val_task_acc",
    "val_bias_acc",
    "val_mi",
    "sparsity",
    "per_layer_pruned",
    "probe_epochs",
    "best_epoch",
    "best_test_task_acc",
    "best_test_bias_acc",
    "best_sparsity",
    "wall_secs",
    "device",
    "device_name",
];

const TAIL_COLUMNS: usize = 25;

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn joined<T: ToString>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(";")
}

/// Per attribute, with an empty entry where the value is missing.
fn joined_opt(items: &[Option<f64>]) -> String {
    items.iter().map(|x| opt(*x)).collect::<Vec<_>>().join(";")
}

fn split(s: Option<&SplitScores>) -> [String; 3] {
    [
        opt(s.map(|s| s.task_acc)),
        opt(s.and_then(|s| mean(&s.bias_acc))),
        opt(s.and_then(|s| mean(&s.mi))),
    ]
}

fn row(r: &Record, params: &[&str]) -> Vec<String> {
    let scores = r.scores.as_ref();
    let report: Option<&MaskReport> = scores.map(|s| &s.report);
    let sparsity = report.and_then(|m| m.sparsity.as_ref());
    let best = scores.and_then(|s| s.best_intermediate.as_ref());
    let device = scores.and_then(|s| s.device.as_ref());
    let [test_task, test_bias, test_mi] = split(report.map(|m| &m.test));
    let [val_task, val_bias, val_mi] = split(report.map(|m| &m.val));
    let lead = [
        r.job.clone(),
        r.method.kind().to_string(),
        r.method.variant().unwrap_or_default().to_string(),
        r.studies.join(";"),
        r.data.name.clone(),
    ];
    let settings = params.iter().map(|p| opt(r.param(p)));
    let tail: [String; TAIL_COLUMNS] = [
        r.seed.to_string(),
        r.vanilla_epochs.to_string(),
        opt(r.lambda),
        opt(r.at),
        opt(r.magnitude_target),
        r.scores.is_some().to_string(),
        test_task,
        test_bias,
        report.map_or(String::new(), |m| joined(&m.test.bias_acc)),
        test_mi,
        report.map_or(String::new(), |m| joined_opt(&m.test.aligned_acc)),
        report.map_or(String::new(), |m| joined_opt(&m.test.conflicting_acc)),
        val_task,
        val_bias,
        val_mi,
        opt(sparsity.map(|s| s.global)),
        sparsity.map_or(String::new(), |s| {
            let layers: Vec<String> = s
                .per_layer
                .iter()
                .map(|l| format!("{}={}/{}", l.layer, l.pruned, l.total))
                .collect();
            joined(&layers)
        }),
        report.map_or(String::new(), |m| joined(&m.probe_epochs)),
        best.map_or(String::new(), |(epoch, _)| epoch.to_string()),
        opt(best.map(|(_, m)| m.test.task_acc)),
        opt(best.and_then(|(_, m)| mean(&m.test.bias_acc))),
        opt(best.and_then(|(_, m)| m.sparsity.as_ref().map(|s| s.global))),
        opt(scores.and_then(|s| s.wall_secs)),
        device.map_or(String::new(), |d| d.to_string()),
        device.map_or(String::new(), |d| d.name.clone()),
    ];
    lead.into_iter().chain(settings).chain(tail).collect()
}

/// RFC 4180 (fields quoted only where needed), `\n` line ends. One column per setting of
/// the dataset (`rho`), between the job's identity and its other coordinates.
pub fn jobs_csv(records: &[Record]) -> String {
    let params: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.data.params.keys().map(String::as_str))
        .collect();
    let params: Vec<&str> = params.into_iter().collect();
    let header = LEAD
        .iter()
        .chain(&params)
        .chain(&TAIL)
        .map(|s| s.to_string())
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let rows = std::iter::once(header).chain(records.iter().map(|r| row(r, &params)));
    for cells in rows {
        w.write_record(&cells)
            .expect("writing to memory cannot fail");
    }
    let bytes = w.into_inner().expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("every field is a String")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_separators_are_quoted() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["a;b", "a,b", "say \"x\"", ""]).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text, "a;b,\"a,b\",\"say \"\"x\"\"\",\n");
        assert!(jobs_csv(&[]).starts_with("job,kind,variant,"));
        assert!(jobs_csv(&[]).ends_with("wall_secs,device,device_name\n"));
    }
}
