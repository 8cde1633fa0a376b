//! `index.md`: what the report holds, with a link and one line per table and figure, and
//! the reason for every figure not drawn.
use crate::figures::PlannedFigure;
use crate::labels::{data_label, dataset_name, num, params_label};
use crate::records::Sweep;
use crate::table::Table;

pub const INDEX: &str = "index.md";
pub const JOBS_CSV: &str = "jobs.csv";
pub const LATEX_DOCUMENT: &str = "tables.tex";

pub fn markdown(sweep: &Sweep, tables: &[Table], figures: &[PlannedFigure]) -> String {
    let base = &sweep.manifest.base;
    let data = match params_label(&base.data) {
        Some(p) => format!("{} {p}", dataset_name(&base.data.name)),
        None => dataset_name(&base.data.name).to_string(),
    };
    let mut out = format!(
        "# FFW report: {}\n\n\
         Written by `ffw report` from `sweep.json` and `jobs/*/result.json`. Accuracies are on \
         the unbiased test split, in %, as mean ± sample std over seeds with the number of \
         seeds in brackets; – marks a cell without a finished job (or without a published \
         value), never a zero. Rerun `ffw report` as jobs finish.\n\n\
         Base point: {data}, λ = {}, {} vanilla epochs.\n\n\
         | Study | Dataset | Jobs | With results |\n| --- | --- | ---: | ---: |\n",
        sweep.dir.display(),
        num(base.lambda),
        base.vanilla_epochs
    );
    for (study, s) in &sweep.manifest.studies {
        let done = s.jobs.iter().filter(|id| sweep.is_done(id)).count();
        out += &format!(
            "| {study} | {} | {} | {done} |\n",
            data_label(&s.base.data),
            s.jobs.len()
        );
    }
    out += "\n## Tables\n\n";
    for t in tables {
        out += &format!(
            "- **{}** ([Markdown]({stem}.md), [LaTeX]({stem}.tex)): {}.\n",
            t.title,
            t.summary,
            stem = t.stem
        );
    }
    out += &format!(
        "- All tables in one LaTeX document: [{LATEX_DOCUMENT}]({LATEX_DOCUMENT}) \
         (`pdflatex {LATEX_DOCUMENT}` in this directory).\n\
         - Every job: [{JOBS_CSV}]({JOBS_CSV}), one row per scored model (a vanilla job also \
         has one row per training checkpoint, `at`), every axis value and metric as stored \
         (fractions in [0, 1]); an empty field is missing.\n"
    );
    out += "\n## Figures\n\n";
    for f in figures {
        out += &match &f.figure {
            Ok(_) => format!(
                "- **{}** ([SVG]({stem}.svg), [PNG]({stem}.png)): {}; error bars: ± one sample \
                 std over seeds.\n",
                f.name,
                f.summary,
                stem = f.stem
            ),
            Err(reason) => format!(
                "- **{}** ({}): not produced: {reason}.\n",
                f.name, f.summary
            ),
        };
    }
    out
}
