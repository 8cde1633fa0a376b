//! The paper's Tables 1–7, and a table of every configuration for a sweep without studies,
//! each built from the records of its study (PROTOCOL §6) and the paper's values (§5).
use std::iter::once;

use ffw_results::{MaskReport, Variant};

use crate::aggregate::{group, Group, Key, Metric, Stat, NO_DESIGN};
use crate::labels::{data_label, epochs_label, num, param_name};
use crate::paper::{self, Published};
use crate::records::{at_base, same, Axis, Method, Record, Sweep};
use crate::table::{Cell, Column, Table};

const FFW: Method = Method::Ffw(Variant::Unstructured);
const FFW_STRUCTURED: Method = Method::Ffw(Variant::Structured);

const CELLS: &str = "Unbiased test split, in %. Ours: mean ± sample std over seeds (number of \
                     seeds with results); – : no finished job, or no published value. \
                     \"(k of n collapsed)\": k seeds' models lost the task (validation task \
                     accuracy within 2 points of chance); their numbers are in the cells.";
const UNPUBLISHED: &str = "PROTOCOL §5 gives no published values for this table: ours only.";

pub fn all(sweep: &Sweep) -> Vec<Table> {
    let mut tables = vec![
        lambda(sweep),
        rho(sweep),
        celeba(sweep),
        corrupted_cifar10(sweep),
        multi_color_mnist(sweep),
        epochs(sweep),
        magnitude(sweep),
    ];
    if sweep.has_study("grid") {
        tables.push(grid(sweep));
    }
    tables
}

fn or_missing(x: Option<f64>, show: impl Fn(f64) -> String) -> String {
    x.map_or("–".to_string(), show)
}

/// `x` as `show` writes it, with `(mark)` after it where it is `at` (the base λ, the final
/// epoch).
fn marked(x: f64, at: f64, show: impl Fn(f64) -> String, mark: &str) -> String {
    if same(x, at) {
        format!("{} ({mark})", show(x))
    } else {
        show(x)
    }
}

/// The records of a study at the base point on every axis but `free`.
fn study<'a>(
    sweep: &'a Sweep,
    name: &'a str,
    free: &'a [Axis],
) -> impl Iterator<Item = &'a Record> {
    let base = sweep.base(name);
    sweep
        .records
        .iter()
        .filter(move |r| r.in_study(name) && at_base(base, r, free))
}

fn absent_note(sweep: &Sweep, name: &str) -> Option<String> {
    (!sweep.has_study(name)).then(|| {
        format!(
            "This sweep declares no {name} study (configs/paper.toml does): our cells are \
             missing."
        )
    })
}

/// The common layout: the key's columns, the method, then task, bias and sparsity, each
/// followed by the paper's value when the table has any published value.
fn comparison(
    groups: &[Group],
    key_headers: &[&str],
    label: impl Fn(&Key) -> Vec<String>,
    paper: impl Fn(&Key, Method) -> Published,
) -> (Vec<Column>, Vec<Vec<Cell>>) {
    let with_paper = groups
        .iter()
        .any(|g| paper(&g.key, g.method) != Published::NONE);
    let mut columns: Vec<Column> = key_headers.iter().map(|h| Column::text(h)).collect();
    columns.push(Column::text("Method"));
    for m in Metric::REPORTED {
        columns.push(Column::number(m.header()));
        if with_paper {
            columns.push(Column::number(&format!("{} (paper)", m.header())));
        }
    }
    let rows = groups
        .iter()
        .map(|g| {
            let published = paper(&g.key, g.method);
            let mut row: Vec<Cell> = label(&g.key).into_iter().map(Cell::Text).collect();
            row.push(Cell::Text(g.method_label()));
            for m in Metric::REPORTED {
                row.push(Cell::Ours(g.stat(m)));
                if with_paper {
                    row.push(Cell::Paper(published.get(m)));
                }
            }
            row
        })
        .collect();
    (columns, rows)
}

fn lambda(sweep: &Sweep) -> Table {
    let base = sweep.base("lambda");
    let keyed = study(sweep, "lambda", &[Axis::Lambda])
        .filter(|r| r.method != Method::Magnitude)
        .map(|r| (vec![r.lambda], r));
    let expected = once((vec![None], Method::Vanilla))
        .chain(paper::LAMBDAS.iter().map(|&l| (vec![Some(l)], FFW)));
    let groups = group(keyed, expected);
    let label = |k: &Key| vec![or_missing(k[0], |l| marked(l, base.lambda, num, "base"))];
    let (columns, rows) = comparison(&groups, &["λ"], label, |_, _| Published::NONE);
    Table {
        stem: "table1_lambda",
        title: format!("Table 1: FFW across λ ({})", data_label(&base.data)),
        summary: "task and bias accuracy and sparsity of FFW for each λ, beside the vanilla \
                  model"
            .into(),
        notes: [Some(CELLS.to_string()), Some(UNPUBLISHED.to_string())]
            .into_iter()
            .chain(once(absent_note(sweep, "lambda")))
            .flatten()
            .collect(),
        columns,
        rows,
    }
}

/// Vanilla and both FFW variants of one benchmark for each training ρ, beside the paper's
/// values (`published`) at the paper's ρs.
fn across_rho<'a>(
    records: impl Iterator<Item = &'a Record>,
    rhos: &[f64],
    published: fn(f64, Method) -> Published,
) -> (Vec<Column>, Vec<Vec<Cell>>) {
    let keyed = records
        .filter(|r| r.method != Method::Magnitude)
        .map(|r| (vec![r.param("rho")], r));
    let expected = rhos
        .iter()
        .flat_map(|&rho| [Method::Vanilla, FFW, FFW_STRUCTURED].map(|m| (vec![Some(rho)], m)));
    comparison(
        &group(keyed, expected),
        &["ρ"],
        |k| vec![or_missing(k[0], num)],
        |k, m| k[0].map_or(Published::NONE, |rho| published(rho, m)),
    )
}

fn rho(sweep: &Sweep) -> Table {
    let base = sweep.base("rho");
    let records = study(sweep, "rho", &[Axis::Data]).filter(|r| r.data.name == "biased_mnist");
    let (columns, rows) = across_rho(records, &paper::RHOS, paper::biased_mnist);
    Table {
        stem: "table2_rho",
        title: format!(
            "Table 2: Biased MNIST across ρ (λ = {}, both FFW variants)",
            num(base.lambda)
        ),
        summary: "vanilla and FFW (unstructured and structured) for each training ρ, with the \
                  paper's values"
            .into(),
        notes: once(CELLS.to_string())
            .chain(absent_note(sweep, "rho"))
            .collect(),
        columns,
        rows,
    }
}

/// A benchmark ffw cannot run: the paper's rows, our cells missing.
/// CelebA attribute names are matched as the data crate matches them: case and `_` ignored.
fn same_attribute(a: &str, b: &str) -> bool {
    let canonical = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    canonical(a) == canonical(b)
}

/// Table 3 from the sweep's CelebA models (the final models and masks at the base λ and
/// epochs), one row group per target attribute, with the paper's values (bias: Male).
/// Records without attributes (manifests written before they were recorded) have no
/// target and stay out.
fn celeba(sweep: &Sweep) -> Table {
    let base = sweep.base("celeba");
    let attribute = |r: &Record, key: &str| r.data.attributes.get(key).cloned();
    let records: Vec<&Record> = sweep
        .records
        .iter()
        .filter(|r| r.data.name == "celeba" && r.method != Method::Magnitude)
        .filter(|r| attribute(r, "bias").is_some_and(|b| same_attribute(&b, "Male")))
        .filter(|r| at_base(base, r, &[Axis::Data]))
        .collect();
    // The key indexes the targets: the paper's, then the sweep's others in order of finding.
    let mut targets: Vec<String> = Vec::new();
    let paper_targets = paper::CELEBA.iter().map(|(t, _, _)| t.to_string());
    for t in paper_targets.chain(records.iter().filter_map(|r| attribute(r, "target"))) {
        if !targets.iter().any(|k| same_attribute(k, &t)) {
            targets.push(t);
        }
    }
    let index = |t: &str| targets.iter().position(|k| same_attribute(k, t));
    let keyed = records.iter().filter_map(|r| {
        let i = index(&attribute(r, "target")?)?;
        Some((vec![Some(i as f64)], *r))
    });
    let expected = paper::CELEBA
        .iter()
        .filter_map(|(t, m, _)| Some((vec![Some(index(t)? as f64)], *m)));
    let groups = group(keyed, expected);
    let target = |k: &Key| k[0].map_or("–", |i| targets[i as usize].as_str());
    let (columns, rows) = comparison(
        &groups,
        &["Target"],
        |k| vec![target(k).to_string()],
        |k, m| {
            paper::CELEBA
                .iter()
                .find(|(t, pm, _)| *pm == m && same_attribute(t, target(k)))
                .map_or(Published::NONE, |(_, _, p)| *p)
        },
    );
    let none = records.is_empty().then(|| {
        "This sweep has no CelebA job with bias Male (`[data] kind = \"celeba\"`): only the \
         paper's values."
            .to_string()
    });
    Table {
        stem: "table3_celeba",
        title: format!("Table 3: CelebA (bias: Male, λ = {})", num(base.lambda)),
        summary: "CelebA: vanilla and FFW for each target attribute, with the paper's values \
                  (a sweep trains one target: configs/celeba.toml, and a copy with target = \
                  \"Eyeglasses\" for the second row)"
            .into(),
        notes: once(CELLS.to_string()).chain(none).collect(),
        columns,
        rows,
    }
}

/// Table 4 from the sweep's Corrupted CIFAR-10 models at every ρ (the final models and
/// masks at the base point otherwise), with the paper's values.
fn corrupted_cifar10(sweep: &Sweep) -> Table {
    let base = sweep.base("corrupted_cifar10");
    let records: Vec<&Record> = sweep
        .records
        .iter()
        .filter(|r| r.data.name == "corrupted_cifar10" && at_base(base, r, &[Axis::Data]))
        .collect();
    let none = records.is_empty().then(|| {
        "This sweep has no Corrupted CIFAR-10 job (`[data] kind = \"corrupted_cifar10\"`): \
         only the paper's values."
            .to_string()
    });
    let (columns, rows) = across_rho(
        records.into_iter(),
        &paper::CIFAR_RHOS,
        paper::corrupted_cifar10,
    );
    Table {
        stem: "table4_corrupted_cifar10",
        title: format!(
            "Table 4: Corrupted CIFAR-10 across ρ (λ = {})",
            num(base.lambda)
        ),
        summary: "Corrupted CIFAR-10 (LfF's type 0 corruptions): vanilla and FFW for each \
                  training ρ, with the paper's values"
            .into(),
        notes: once(CELLS.to_string()).chain(none).collect(),
        columns,
        rows,
    }
}

/// Table 5 from the sweep's Multi-Color MNIST models (final masks, at the base λ), if any.
fn multi_color_mnist(sweep: &Sweep) -> Table {
    let base = sweep.base("multi_color_mnist");
    let ours = |method: Method| -> Vec<&MaskReport> {
        sweep
            .records
            .iter()
            .filter(|r| r.data.name == "multi_color_mnist" && r.method == method)
            .filter(|r| r.at.is_none())
            .filter(|r| r.lambda.is_none_or(|l| same(l, base.lambda)))
            .filter_map(|r| r.scores.as_ref().map(|s| &s.report))
            .collect()
    };
    let have_ours = !ours(Method::Vanilla).is_empty();
    let mut columns = vec![Column::text("Method"), Column::text("Source")];
    let headers = paper::MULTI_COLOR_GROUPS.into_iter().chain([
        "Unbiased %",
        "Bias left %",
        "Bias right %",
        "Sparsity %",
    ]);
    columns.extend(headers.map(Column::number));
    let mut rows = Vec::new();
    for r in paper::MULTI_COLOR_MNIST {
        let values: Vec<Option<f64>> = r
            .groups
            .iter()
            .copied()
            .map(Some)
            .chain([r.unbiased, r.bias[0], r.bias[1], r.sparsity])
            .collect();
        let lead = |source: &str| {
            vec![
                Cell::Text(r.method.label().to_string()),
                Cell::Text(source.to_string()),
            ]
        };
        rows.push(
            lead("paper")
                .into_iter()
                .chain(values.iter().map(|v| Cell::Paper(*v)))
                .collect(),
        );
        let reports = ours(r.method);
        let stat = |f: &dyn Fn(&MaskReport) -> Option<f64>| {
            Cell::Ours(Stat::of(
                &reports
                    .iter()
                    .filter_map(|m| f(m))
                    .map(|v| 100.0 * v)
                    .collect::<Vec<_>>(),
            ))
        };
        let mut cells = lead("ours");
        cells.extend((0..4).map(|g| stat(&|m| m.test.groups.get(g).copied().flatten())));
        cells.push(stat(&|m| m.test.unbiased_acc));
        cells.extend((0..2).map(|a| stat(&|m| m.test.bias_acc.get(a).copied())));
        cells.push(stat(&|m| m.sparsity.as_ref().map(|s| s.global)));
        rows.push(cells);
    }
    Table {
        stem: "table5_multi_color_mnist",
        title: "Table 5: Multi-Color MNIST".into(),
        summary: "Multi-Color MNIST task accuracy per colour group, bias accuracy per side, \
                  sparsity"
            .into(),
        notes: vec![
            CELLS.to_string(),
            "Groups: left (L) and right (R) background colour aligned (A) or conflicting (C) \
             with the digit; Unbiased = their mean."
                .into(),
            if have_ours {
                "Ours: the final masks of this sweep's Multi-Color MNIST jobs at the base λ.".into()
            } else {
                "This sweep has no Multi-Color MNIST job (configs/multi_color_quick.toml runs \
                 one): our cells are missing."
                    .into()
            },
        ],
        columns,
        rows,
    }
}

fn epochs(sweep: &Sweep) -> Table {
    let base = sweep.base("epochs");
    let keyed = study(sweep, "epochs", &[Axis::At])
        .filter(|r| r.method != Method::Magnitude)
        .map(|r| (vec![Some(r.epochs_trained())], r));
    let final_epoch = base.vanilla_epochs as f64;
    let points: Vec<f64> = paper::CHECKPOINTS
        .into_iter()
        .filter(|&c| c < final_epoch)
        .chain(once(final_epoch))
        .collect();
    let expected = points
        .iter()
        .flat_map(|&e| [Method::Vanilla, FFW].map(|m| (vec![Some(e)], m)));
    let groups = group(keyed, expected);
    let label = |k: &Key| {
        vec![or_missing(k[0], |e| {
            marked(e, final_epoch, epochs_label, "final")
        })]
    };
    let (columns, rows) = comparison(&groups, &["Epochs"], label, |_, _| Published::NONE);
    Table {
        stem: "table6_epochs",
        title: format!(
            "Table 6: FFW from vanilla checkpoints during training ({}, λ = {})",
            data_label(&base.data),
            num(base.lambda)
        ),
        summary: "the vanilla model after each amount of training, and FFW started from it".into(),
        notes: [
            Some(CELLS.to_string()),
            Some(
                "Epochs: of vanilla training (1/60 = a sixtieth of the first epoch); vanilla \
                 rows score the model at that point, FFW rows the mask FFW finds on it."
                    .to_string(),
            ),
            Some(UNPUBLISHED.to_string()),
            absent_note(sweep, "epochs"),
        ]
        .into_iter()
        .flatten()
        .collect(),
        columns,
        rows,
    }
}

fn magnitude(sweep: &Sweep) -> Table {
    let base = sweep.base("magnitude");
    let keyed = study(sweep, "magnitude", &[]).map(|r| (vec![r.magnitude_target], r));
    let expected = [(vec![None], Method::Vanilla), (vec![None], FFW)]
        .into_iter()
        .chain(
            paper::MAGNITUDE_SPARSITIES
                .iter()
                .map(|&s| (vec![Some(s)], Method::Magnitude)),
        );
    let groups = group(keyed, expected);
    let (columns, rows) = comparison(
        &groups,
        &["Target sparsity %"],
        |k| vec![or_missing(k[0], |s| num(100.0 * s))],
        |_, _| Published::NONE,
    );
    Table {
        stem: "table7_magnitude",
        title: format!(
            "Table 7: global magnitude pruning versus FFW ({}, λ = {})",
            data_label(&base.data),
            num(base.lambda)
        ),
        summary: "global magnitude pruning of the vanilla model at each target sparsity, \
                  beside vanilla and FFW"
            .into(),
        notes: [
            Some(CELLS.to_string()),
            Some(
                "Sparsity is the one reached; magnitude pruning removes the smallest |w| \
                 over all gated layers at once."
                    .to_string(),
            ),
            Some(UNPUBLISHED.to_string()),
            absent_note(sweep, "magnitude"),
        ]
        .into_iter()
        .flatten()
        .collect(),
        columns,
        rows,
    }
}

/// A sweep without studies: one row per configuration of its grid, the dataset's varied
/// settings first.
fn grid(sweep: &Sweep) -> Table {
    let records: Vec<&Record> = sweep
        .records
        .iter()
        .filter(|r| r.in_study("grid"))
        .collect();
    let params: std::collections::BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.data.params.keys().map(String::as_str))
        .collect();
    let keyed = records.iter().map(|&r| {
        let key = params
            .iter()
            .map(|p| r.param(p))
            .chain([
                r.lambda,
                r.at,
                r.magnitude_target,
                Some(r.vanilla_epochs as f64),
            ])
            .collect();
        (key, r)
    });
    let groups = group(keyed, NO_DESIGN);
    let n = params.len();
    let label = |k: &Key| {
        k[..n]
            .iter()
            .map(|v| or_missing(*v, num))
            .chain([
                or_missing(k[n], num),
                or_missing(k[n + 1], epochs_label),
                or_missing(k[n + 2], |s| num(100.0 * s)),
                or_missing(k[n + 3], num),
            ])
            .collect()
    };
    let headers: Vec<&str> = params
        .iter()
        .map(|p| param_name(p))
        .chain(["λ", "From epoch", "Target sparsity %", "Vanilla epochs"])
        .collect();
    let (columns, rows) = comparison(&groups, &headers, label, |_, _| Published::NONE);
    let data = data_label(&sweep.base("grid").data);
    Table {
        stem: "table_grid",
        title: format!("Every configuration of the sweep's grid ({data})"),
        summary: "every configuration of the [sweep] grid (the config declares no studies)".into(),
        notes: vec![
            CELLS.to_string(),
            "From epoch: the vanilla checkpoint scored (vanilla) or started from (FFW); – = \
             the final model."
                .into(),
        ],
        columns,
        rows,
    }
}
