//! `ffw report`: a sweep's results directory turned into the paper's tables (Markdown,
//! LaTeX, one CSV of every job) and figures (SVG, PNG), with an index.
//!
//! Flow: [`records`] flattens `sweep.json` (an [`ffw_results::Manifest`]) and the jobs'
//! results into one record per scored model; [`aggregate`] groups records into cells (mean ±
//! std over seeds); [`paper_tables`] and [`figures`] build the paper's tables and figures
//! from those cells and the published values in [`paper`]; [`table`], [`csv`] and [`plot`]
//! write them, with the numbers and names of [`labels`]; [`index`] links them.
//!
//! The report reads only result files (`ffw-results`): no training stack.
pub mod aggregate;
pub mod csv;
pub mod devices;
pub mod error;
pub mod figures;
pub mod index;
pub mod labels;
pub mod paper;
pub mod paper_tables;
pub mod plot;
pub mod records;
pub mod table;

use std::path::{Path, PathBuf};

pub use error::{ReportError, Result};
use ffw_results::Manifest;

/// The sub-directory of the results directory the report is written to.
pub const REPORT_DIR: &str = "report";

/// What [`write_report`] wrote.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// `RESULTS_DIR/report`.
    pub dir: PathBuf,
    /// `RESULTS_DIR/report/index.md`, linking everything else.
    pub index: PathBuf,
    /// Every file written, the index included.
    pub files: Vec<PathBuf>,
    pub tables: usize,
    pub figures: usize,
    /// Figures not drawn, with the reason (their study has no results).
    pub not_produced: Vec<NotProduced>,
    /// Jobs listed in `sweep.json`, and those with a `result.json`.
    pub jobs: usize,
    pub jobs_done: usize,
}

#[derive(Clone, Debug)]
pub struct NotProduced {
    pub figure: String,
    pub reason: String,
}

fn write(path: PathBuf, text: &str, files: &mut Vec<PathBuf>) -> Result<()> {
    std::fs::write(&path, text).map_err(|e| ReportError::io(&path, e))?;
    files.push(path);
    Ok(())
}

/// The manifest (`sweep.json`) of the sweep in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    if !Manifest::path(dir).is_file() {
        return Err(ReportError::NoManifest {
            dir: dir.to_path_buf(),
        });
    }
    Ok(Manifest::read(dir)?)
}

/// What the user allows a report to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportOptions {
    /// Put results from CPUs and GPUs in the same tables ([`devices::check_not_mixed`]).
    pub mixed_devices: bool,
}

/// [`write_report_with`] the default options.
pub fn write_report(dir: &Path, manifest: Manifest) -> Result<ReportSummary> {
    write_report_with(dir, manifest, ReportOptions::default())
}

/// Reads the results of the sweep in `dir` that `manifest` lists and writes the report into
/// `dir/report/`, replacing an earlier one's files.
pub fn write_report_with(
    dir: &Path,
    manifest: Manifest,
    options: ReportOptions,
) -> Result<ReportSummary> {
    let sweep = records::Sweep::load(dir, manifest)?;
    devices::check_not_mixed(&sweep, options.mixed_devices)?;
    // Before writing anything: without a font no figure can be drawn.
    plot::register_font()?;
    let out = dir.join(REPORT_DIR);
    std::fs::create_dir_all(&out).map_err(|e| ReportError::io(&out, e))?;
    let mut files = Vec::new();

    let tables = paper_tables::all(&sweep);
    for t in &tables {
        write(
            out.join(format!("{}.md", t.stem)),
            &t.markdown(),
            &mut files,
        )?;
        write(out.join(format!("{}.tex", t.stem)), &t.latex(), &mut files)?;
    }
    write(
        out.join(index::LATEX_DOCUMENT),
        &table::latex_document(&tables),
        &mut files,
    )?;
    write(
        out.join(index::JOBS_CSV),
        &csv::jobs_csv(&sweep.records),
        &mut files,
    )?;

    let figures = figures::all(&sweep);
    let mut not_produced = Vec::new();
    for f in &figures {
        match &f.figure {
            Ok(figure) => files.extend(plot::render(figure, &f.stem, &out)?),
            Err(reason) => {
                plot::remove_stale(&f.stem, &out)?;
                not_produced.push(NotProduced {
                    figure: f.stem.to_string(),
                    reason: reason.clone(),
                });
            }
        }
    }

    let index = out.join(index::INDEX);
    write(
        index.clone(),
        &index::markdown(&sweep, &tables, &figures),
        &mut files,
    )?;
    let jobs = sweep.jobs();
    Ok(ReportSummary {
        dir: out,
        index,
        files,
        tables: tables.len(),
        figures: figures.iter().filter(|f| f.figure.is_ok()).count(),
        not_produced,
        jobs: jobs.len(),
        jobs_done: jobs.iter().filter(|id| sweep.is_done(id)).count(),
    })
}
