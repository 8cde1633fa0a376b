//! Mean ± sample std over seeds, and the grouping of records into the cells of a table or
//! the points of a figure.
use ffw_results::MaskReport;

use crate::records::{same, Method, Record};

/// Summary of one cell over seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (n - 1); none with a single seed.
    pub std: Option<f64>,
    pub n: usize,
}

impl Stat {
    /// None for no values: a cell without results is missing, never zero.
    pub fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        Some(Stat { mean, std, n })
    }
}

/// The paper's three reported numbers, in percent on unbiased test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    TaskAcc,
    /// Accuracy of the privacy head, averaged over the bias attributes.
    BiasAcc,
    /// Global sparsity (none for an unpruned model).
    Sparsity,
}

impl Metric {
    pub const REPORTED: [Metric; 3] = [Metric::TaskAcc, Metric::BiasAcc, Metric::Sparsity];

    pub fn of(self, report: &MaskReport) -> Option<f64> {
        match self {
            Metric::TaskAcc => Some(100.0 * report.test.task_acc),
            Metric::BiasAcc => mean(&report.test.bias_acc).map(|b| 100.0 * b),
            Metric::Sparsity => report.sparsity.as_ref().map(|s| 100.0 * s.global),
        }
    }

    pub fn header(self) -> &'static str {
        match self {
            Metric::TaskAcc => "Task %",
            Metric::BiasAcc => "Bias %",
            Metric::Sparsity => "Sparsity %",
        }
    }
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The coordinates of a cell: one value (or none) per axis a table or figure shows.
pub type Key = Vec<Option<f64>>;

fn same_key(a: &Key, b: &Key) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => same(*x, *y),
            (None, None) => true,
            _ => false,
        })
}

/// None before any value, then ascending.
fn cmp_key(a: &Key, b: &Key) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => x.total_cmp(y),
            _ => x.is_some().cmp(&y.is_some()),
        })
        .find(|o| o.is_ne())
        .unwrap_or(a.len().cmp(&b.len()))
}

/// For tables and figures that show only what ran.
pub const NO_DESIGN: [(Key, Method); 0] = [];

/// One cell group: the records (one per seed) of one method at one key.
pub struct Group<'a> {
    pub key: Key,
    pub method: Method,
    pub records: Vec<&'a Record>,
}

impl Group<'_> {
    pub fn stat(&self, metric: Metric) -> Option<Stat> {
        let values: Vec<f64> = self
            .records
            .iter()
            .filter_map(|r| r.scores.as_ref())
            .filter_map(|s| metric.of(&s.report))
            .collect();
        Stat::of(&values)
    }

    /// Seeds whose model collapsed (validation task accuracy at chance), and seeds scored.
    pub fn collapsed(&self) -> (usize, usize) {
        let scored: Vec<_> = self
            .records
            .iter()
            .filter_map(|r| r.scores.as_ref())
            .collect();
        let collapsed = scored.iter().filter(|s| s.report.collapsed).count();
        (collapsed, scored.len())
    }

    /// The method's label, naming the seeds whose model collapsed (their numbers are in the
    /// cells all the same: the mean over seeds hides nothing).
    pub fn method_label(&self) -> String {
        match self.collapsed() {
            (0, _) => self.method.label().to_string(),
            (k, n) => format!("{} ({k} of {n} collapsed)", self.method.label()),
        }
    }

    pub fn has_results(&self) -> bool {
        self.records.iter().any(|r| r.scores.is_some())
    }
}

/// Groups keyed records by (key, method), adding an empty group for every `expected` cell
/// that has no record (so the paper's design shows as missing cells), ordered by key, then
/// method.
pub fn group<'a>(
    keyed: impl IntoIterator<Item = (Key, &'a Record)>,
    expected: impl IntoIterator<Item = (Key, Method)>,
) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut find = |key: Key, method: Method| -> usize {
        match groups
            .iter()
            .position(|g| g.method == method && same_key(&g.key, &key))
        {
            Some(i) => i,
            None => {
                groups.push(Group {
                    key,
                    method,
                    records: Vec::new(),
                });
                groups.len() - 1
            }
        }
    };
    let mut members = Vec::new();
    for (key, record) in keyed {
        members.push((find(key, record.method), record));
    }
    for (key, method) in expected {
        find(key, method);
    }
    for (i, record) in members {
        groups[i].records.push(record);
    }
    groups.sort_by(|a, b| cmp_key(&a.key, &b.key).then(a.method.order().cmp(&b.method.order())));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std_over_seeds() {
        let s = Stat::of(&[90.0, 92.0, 94.0]).unwrap();
        assert!((s.mean - 92.0).abs() < 1e-12);
        assert!(
            (s.std.unwrap() - 2.0).abs() < 1e-12,
            "n - 1 in the denominator"
        );
        assert_eq!(s.n, 3);
        let one = Stat::of(&[50.0]).unwrap();
        assert_eq!((one.mean, one.std, one.n), (50.0, None, 1));
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn keys_order_none_first_and_match_up_to_rounding() {
        assert!(same_key(
            &vec![Some(1.0 / 60.0)],
            &vec![Some(0.016666666666666666)]
        ));
        assert!(!same_key(&vec![Some(0.99)], &vec![Some(0.995)]));
        assert!(!same_key(&vec![None], &vec![Some(0.0)]));
        let mut keys = vec![vec![Some(2.0)], vec![None], vec![Some(0.5)]];
        keys.sort_by(cmp_key);
        assert_eq!(keys, vec![vec![None], vec![Some(0.5)], vec![Some(2.0)]]);
    }
}
