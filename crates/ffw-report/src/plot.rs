//! Drawing the figures with plotters, once as SVG and once as PNG. Text is laid out with a
//! TrueType font read at run time (pure Rust, no fontconfig or freetype).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::error::{ReportError, Result};
use crate::figures::{BarPlot, Figure, Line, LinePlot, Look};

/// Pixels of the PNG (and the SVG's view box): the plot, and the legend on its right.
pub const SIZE: (u32, u32) = (1000, 600);
const LEGEND_WIDTH: u32 = 250;
/// Environment variable naming another TrueType font file.
pub const FONT_ENV: &str = "FFW_REPORT_FONT";
/// From the Debian/Ubuntu package fonts-dejavu-core.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FAMILY: &str = "sans-serif";

type Drawn<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

pub fn font_path() -> PathBuf {
    std::env::var_os(FONT_ENV).map_or_else(|| PathBuf::from(DEFAULT_FONT), PathBuf::from)
}

/// Registers the font with plotters, once per process: plotters only draws text in fonts
/// registered with it when built without its system-font support.
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), (PathBuf, String)>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = font_path();
            let bytes = std::fs::read(&path).map_err(|e| (path.clone(), e.to_string()))?;
            // plotters keeps a 'static reference; the font lives as long as the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
                .map_err(|_| (path, "not a TrueType or OpenType font".to_string()))
        })
        .clone()
        .map_err(|(path, reason)| ReportError::Font {
            path,
            reason: format!(
                "{reason}; install the Debian/Ubuntu package fonts-dejavu-core or set \
                 {FONT_ENV} to a TrueType font file"
            ),
        })
}

fn files(stem: &str, dir: &Path) -> [PathBuf; 2] {
    [
        dir.join(format!("{stem}.svg")),
        dir.join(format!("{stem}.png")),
    ]
}

/// Writes `dir/<stem>.svg` and `dir/<stem>.png`.
pub fn render(figure: &Figure, stem: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let [svg, png] = files(stem, dir);
    let failed = |path: &Path, reason: String| ReportError::Figure {
        path: path.to_path_buf(),
        reason,
    };
    draw(figure, SVGBackend::new(&svg, SIZE).into_drawing_area())
        .map_err(|e| failed(&svg, e.to_string()))?;
    draw(figure, BitMapBackend::new(&png, SIZE).into_drawing_area())
        .map_err(|e| failed(&png, e.to_string()))?;
    Ok(vec![svg, png])
}

/// Removes the files of a figure an earlier report drew and this one does not, so the
/// directory never shows a figure the index does not vouch for.
pub fn remove_stale(stem: &str, dir: &Path) -> Result<()> {
    for path in files(stem, dir) {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ReportError::io(&path, e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// By [`crate::records::Method::order`]: vanilla grey, magnitude pruning orange, FFW blue,
/// FFW-structured green.
fn colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 4] = [
        RGBColor(100, 100, 100),
        RGBColor(230, 120, 20),
        RGBColor(30, 100, 200),
        RGBColor(40, 160, 70),
    ];
    COLOURS.get(i).copied().unwrap_or(BLACK)
}

/// A point's marker: circle for task accuracy, triangle for bias accuracy, square for
/// sparsity (the metric, like the line), so unjoined points read without colour too.
fn marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    look: Look,
) -> Drawn<DB::ErrorType> {
    let style = colour(look.colour).filled();
    match look.line {
        Line::Solid => area.draw(&Circle::new(at, 4, style)),
        Line::Dashed => area.draw(&TriangleMarker::new(at, 6, style)),
        Line::Dotted => {
            area.draw(&(EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], style)))
        }
    }
}

/// A polyline in the series' line style.
fn path<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    points: Vec<CT::From>,
    look: Look,
) -> Drawn<DB::ErrorType>
where
    CT::From: Clone,
{
    let style = colour(look.colour).stroke_width(2);
    match look.line {
        Line::Solid => area.draw(&PathElement::new(points, style)),
        Line::Dashed => area.draw(&DashedPathElement::new(points, 8, 5, style)),
        Line::Dotted => area.draw(&DashedPathElement::new(points, 2, 4, style)),
    }
}

fn draw<DB: DrawingBackend>(figure: &Figure, root: DrawingArea<DB, Shift>) -> Drawn<DB::ErrorType> {
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    // (label, look, drawn as a bar).
    let entries: Vec<(&str, Look, bool)> = match figure {
        Figure::Lines(p) => {
            let xs = distinct_xs(p);
            let (lo, hi) = x_range(&xs, p.log_x);
            if p.log_x {
                // Ticks at the values the sweep ran (λ, epochs), not at every power of ten.
                lines(&plot, p, (lo..hi).log_scale().with_key_points(xs))?;
            } else {
                lines(&plot, p, lo..hi)?;
            }
            p.series
                .iter()
                .map(|s| (s.label.as_str(), s.look, false))
                .collect()
        }
        Figure::Bars(b) => {
            bars(&plot, b)?;
            let solid = |colour| Look {
                colour,
                line: Line::Solid,
            };
            b.series
                .iter()
                .map(|(l, c, _)| (l.as_str(), solid(*c), true))
                .collect()
        }
    };
    for (i, (label, look, bar)) in entries.into_iter().enumerate() {
        let y = 60 + 26 * i as i32;
        let c = colour(look.colour);
        if bar {
            legend.draw(&Rectangle::new([(8, y - 7), (30, y + 7)], c.filled()))?;
        } else {
            path(&legend, vec![(4, y), (34, y)], look)?;
            marker(&legend, (19, y), look)?;
        }
        legend.draw(&Text::new(
            label.to_string(),
            (42, y - 8),
            (FAMILY, 15).into_font().color(&BLACK),
        ))?;
    }
    root.present()
}

fn percent(y: &f64) -> String {
    format!("{y:.0}")
}

/// The x values of all points, ascending, each once.
fn distinct_xs(p: &LinePlot) -> Vec<f64> {
    let mut xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|(x, _)| *x))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup_by(|a, b| crate::records::same(*a, *b));
    xs
}

/// The data's x extent with some room: a factor each side on a log axis. A plot has a point
/// at least ([`crate::figures`] gives the reason instead of an empty figure).
fn x_range(xs: &[f64], log: bool) -> (f64, f64) {
    let (lo, hi) = (xs[0], xs[xs.len() - 1]);
    if log {
        (lo / 2.0, hi * 2.0)
    } else {
        let pad = ((hi - lo) * 0.05).max(1.0);
        (lo - pad, hi + pad)
    }
}

fn lines<DB: DrawingBackend, X>(
    area: &DrawingArea<DB, Shift>,
    plot: &LinePlot,
    x: X,
) -> Drawn<DB::ErrorType>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&plot.title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x, 0f64..100f64)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|x| crate::labels::epochs_label(*x))
        .y_label_formatter(&percent)
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    for s in &plot.series {
        let c = colour(s.look.colour);
        // One sample std each side, where two seeds or more give one.
        chart.draw_series(s.points.iter().filter_map(|&(x, st)| {
            let sd = st.std?;
            Some(ErrorBar::new_vertical(
                x,
                st.mean - sd,
                st.mean,
                st.mean + sd,
                c.stroke_width(1),
                10,
            ))
        }))?;
        let points: Vec<(f64, f64)> = s.points.iter().map(|(x, st)| (*x, st.mean)).collect();
        if s.joined {
            path(chart.plotting_area(), points.clone(), s.look)?;
        }
        for p in points {
            marker(chart.plotting_area(), p, s.look)?;
        }
    }
    Ok(())
}

fn bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, plot: &BarPlot) -> Drawn<DB::ErrorType> {
    let n = plot.categories.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&plot.title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0f64..100f64)?;
    let name = |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            plot.categories.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .y_label_formatter(&percent)
        // At most one label per category: the ticks fall on the integers, the centres.
        .x_labels(n)
        .x_label_formatter(&name)
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    // The series share each category's slot side by side.
    let width = 0.8 / plot.series.len().max(1) as f64;
    for (s, (_, c, values)) in plot.series.iter().enumerate() {
        let c = colour(*c);
        for (i, stat) in values.iter().enumerate() {
            let Some(st) = stat else { continue };
            let left = i as f64 - 0.4 + width * s as f64;
            let mid = left + width / 2.0;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(left, 0.0), (left + width, st.mean)],
                c.filled(),
            )))?;
            if let Some(sd) = st.std {
                chart.draw_series(std::iter::once(ErrorBar::new_vertical(
                    mid,
                    st.mean - sd,
                    st.mean,
                    st.mean + sd,
                    BLACK.stroke_width(1),
                    8,
                )))?;
            }
        }
    }
    Ok(())
}
