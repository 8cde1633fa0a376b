//! The paper's figures as data (series of mean ± std points over seeds), each with the
//! reason it is not drawn when its study has no results.
use std::collections::BTreeMap;

use ffw_results::BasePoint;

use crate::aggregate::{group, Group, Metric, Stat, NO_DESIGN};
use crate::labels::{data_label, num, params_label};
use crate::records::{at_base, Axis, Method, Record, Sweep};

/// How a series is drawn: the colour tells the method, the line the metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Look {
    /// Index into the plot's colours ([`Method::order`]).
    pub colour: usize,
    pub line: Line,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Line {
    Solid,
    Dashed,
    Dotted,
}

impl Look {
    fn of(method: Method, metric: Metric) -> Look {
        Look {
            colour: method.order() as usize,
            line: match metric {
                Metric::TaskAcc => Line::Solid,
                Metric::BiasAcc => Line::Dashed,
                Metric::Sparsity => Line::Dotted,
            },
        }
    }
}

pub struct Series {
    pub label: String,
    pub look: Look,
    /// (x, y over seeds), x ascending.
    pub points: Vec<(f64, Stat)>,
    /// A curve through the points; else separate markers (a single configuration).
    pub joined: bool,
}

pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    /// Not empty, and none without points.
    pub series: Vec<Series>,
}

/// One bar per (category, series), e.g. per (layer, FFW variant).
pub struct BarPlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// (label, colour, one value per category).
    pub series: Vec<(String, usize, Vec<Option<Stat>>)>,
}

pub enum Figure {
    Lines(LinePlot),
    Bars(BarPlot),
}

pub struct PlannedFigure {
    /// File stem of the .svg and .png.
    pub stem: String,
    pub name: &'static str,
    /// One line for the index: what the figure shows.
    pub summary: &'static str,
    /// The figure, or why it is not drawn.
    pub figure: Result<Figure, String>,
}

pub fn all(sweep: &Sweep) -> Vec<PlannedFigure> {
    let per_layer_fig = |stem: String, base: &BasePoint| PlannedFigure {
        stem,
        name: "Fig. 4",
        summary: "proportion of each layer's weights FFW prunes, per variant, at the base point",
        figure: per_layer(sweep, base),
    };
    let main = &sweep.manifest.base;
    // The paper's Fig. 4 has a panel per benchmark: one per study on a benchmark of its own.
    let other_benchmarks = sweep
        .manifest
        .studies
        .iter()
        .filter(|(_, s)| s.base.data.name != main.data.name)
        .map(|(name, s)| per_layer_fig(format!("fig4_per_layer_{name}"), &s.base));
    std::iter::once(per_layer_fig("fig4_per_layer".into(), main))
        .chain(other_benchmarks)
        .chain(others(sweep))
        .collect()
}

fn others(sweep: &Sweep) -> [PlannedFigure; 3] {
    [
        PlannedFigure {
            stem: "fig5_lambda".into(),
            name: "Fig. 5",
            summary: "FFW's task and bias accuracy and sparsity against λ",
            figure: lambda(sweep),
        },
        PlannedFigure {
            stem: "fig6_magnitude".into(),
            name: "Fig. 6",
            summary: "task and bias accuracy of global magnitude pruning against sparsity, FFW \
                      and vanilla as points",
            figure: magnitude(sweep),
        },
        PlannedFigure {
            stem: "fig7_epochs".into(),
            name: "Fig. 7",
            summary: "task and bias accuracy of the vanilla model and of FFW started from it, \
                      against epochs of vanilla training",
            figure: epochs(sweep),
        },
    ]
}

/// The points of one method and metric, x taken from each group; none if no group has one.
fn series(
    groups: &[Group],
    method: Method,
    metric: Metric,
    x: impl Fn(&Group) -> Option<f64>,
    joined: bool,
) -> Option<Series> {
    let mut points: Vec<(f64, Stat)> = groups
        .iter()
        .filter(|g| g.method == method)
        .filter_map(|g| Some((x(g)?, g.stat(metric)?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let what = match metric {
        Metric::TaskAcc => "task",
        Metric::BiasAcc => "bias",
        Metric::Sparsity => "sparsity",
    };
    (!points.is_empty()).then(|| Series {
        label: format!("{} {what}", method.label()),
        look: Look::of(method, metric),
        points,
        joined,
    })
}

/// The methods among the groups, in table order.
fn methods(groups: &[Group]) -> Vec<Method> {
    let mut m: Vec<Method> = Vec::new();
    for g in groups {
        if !m.contains(&g.method) {
            m.push(g.method);
        }
    }
    m.sort_by_key(|m| m.order());
    m
}

fn study_records<'a>(
    sweep: &'a Sweep,
    name: &str,
    free: &[Axis],
) -> Result<Vec<&'a Record>, String> {
    if !sweep.has_study(name) {
        return Err(format!("the sweep declares no \"{name}\" study"));
    }
    let base = sweep.base(name);
    Ok(sweep
        .records
        .iter()
        .filter(|r| r.in_study(name) && at_base(base, r, free))
        .collect())
}

fn lambda(sweep: &Sweep) -> Result<Figure, String> {
    let records = study_records(sweep, "lambda", &[Axis::Lambda])?;
    let keyed = records
        .into_iter()
        .filter(|r| matches!(r.method, Method::Ffw(_)))
        .map(|r| (vec![r.lambda], r));
    let groups = group(keyed, NO_DESIGN);
    let series: Vec<Series> = methods(&groups)
        .into_iter()
        .flat_map(|m| Metric::REPORTED.map(|metric| (m, metric)))
        .filter_map(|(m, metric)| series(&groups, m, metric, |g| g.key[0], true))
        .collect();
    if series.is_empty() {
        return Err("no FFW job of the \"lambda\" study has a result".into());
    }
    Ok(Figure::Lines(LinePlot {
        title: match params_label(&sweep.base("lambda").data) {
            Some(data) => format!("FFW across λ ({data})"),
            None => "FFW across λ".into(),
        },
        x_label: "λ (log scale)".into(),
        y_label: "% (accuracies on unbiased test)".into(),
        log_x: true,
        series,
    }))
}

fn magnitude(sweep: &Sweep) -> Result<Figure, String> {
    let records = study_records(sweep, "magnitude", &[])?;
    let groups = group(
        records.into_iter().map(|r| (vec![r.magnitude_target], r)),
        NO_DESIGN,
    );
    if !groups
        .iter()
        .any(|g| g.method == Method::Magnitude && g.has_results())
    {
        return Err("no magnitude-pruning job of the \"magnitude\" study has a result".into());
    }
    // x: the sparsity each configuration reached (mean over seeds); vanilla prunes nothing.
    let reached = |g: &Group| match g.method {
        Method::Vanilla => Some(0.0),
        _ => g.stat(Metric::Sparsity).map(|s| s.mean),
    };
    let series = methods(&groups)
        .into_iter()
        .flat_map(|m| [(m, Metric::TaskAcc), (m, Metric::BiasAcc)])
        .filter_map(|(m, metric)| series(&groups, m, metric, reached, m == Method::Magnitude))
        .collect();
    Ok(Figure::Lines(LinePlot {
        title: "Magnitude pruning versus FFW".into(),
        x_label: "sparsity reached %".into(),
        y_label: "% on unbiased test".into(),
        log_x: false,
        series,
    }))
}

fn epochs(sweep: &Sweep) -> Result<Figure, String> {
    let records = study_records(sweep, "epochs", &[Axis::At])?;
    let keyed = records
        .into_iter()
        .filter(|r| r.method != Method::Magnitude)
        .map(|r| (vec![Some(r.epochs_trained())], r));
    let groups = group(keyed, NO_DESIGN);
    let series: Vec<Series> = methods(&groups)
        .into_iter()
        .flat_map(|m| [(m, Metric::TaskAcc), (m, Metric::BiasAcc)])
        .filter_map(|(m, metric)| series(&groups, m, metric, |g| g.key[0], true))
        .collect();
    if series.is_empty() {
        return Err("no job of the \"epochs\" study has a result".into());
    }
    Ok(Figure::Lines(LinePlot {
        title: "Vanilla and FFW along vanilla training".into(),
        x_label: "epochs of vanilla training (log scale)".into(),
        y_label: "% on unbiased test".into(),
        log_x: true,
        series,
    }))
}

/// Every FFW mask at the base point `base` (any study): per variant and layer, the pruned
/// fraction over seeds.
fn per_layer(sweep: &Sweep, base: &BasePoint) -> Result<Figure, String> {
    let masks: Vec<(&Record, &ffw_results::Sparsity)> = sweep
        .records
        .iter()
        .filter(|r| matches!(r.method, Method::Ffw(_)) && at_base(base, r, &[]))
        .filter_map(|r| Some((r, r.scores.as_ref()?.report.sparsity.as_ref()?)))
        .collect();
    let Some((_, first)) = masks.first() else {
        return Err("no FFW job at the base point (dataset, λ, final model) has a result".into());
    };
    let categories: Vec<String> = first.per_layer.iter().map(|l| l.layer.clone()).collect();
    let mut by_variant: BTreeMap<u8, (Method, Vec<Vec<f64>>)> = BTreeMap::new();
    for (r, sparsity) in &masks {
        let (_, values) = by_variant
            .entry(r.method.order())
            .or_insert_with(|| (r.method, vec![Vec::new(); categories.len()]));
        for l in &sparsity.per_layer {
            if let Some(i) = categories.iter().position(|c| *c == l.layer) {
                if l.total > 0 {
                    values[i].push(100.0 * l.pruned as f64 / l.total as f64);
                }
            }
        }
    }
    Ok(Figure::Bars(BarPlot {
        title: format!(
            "Pruned weights per layer (FFW, {}, λ = {})",
            data_label(&base.data),
            num(base.lambda)
        ),
        x_label: "layer".into(),
        y_label: "% of the layer's weights pruned".into(),
        categories,
        series: by_variant
            .into_values()
            .map(|(m, values)| {
                let stats = values.iter().map(|v| Stat::of(v)).collect();
                (m.label().to_string(), m.order() as usize, stats)
            })
            .collect(),
    }))
}
