//! `index.md`: what the report holds, with a link and one line per table and figure, and
//! the reason for every figure not drawn.
use crate::figures::PlannedFigure;
use crate::records::Sweep;
use crate::table::Table;
use crate::tables::num;

pub const INDEX: &str = "index.md";
pub const JOBS_CSV: &str = "jobs.csv";
pub const LATEX_DOCUMENT: &str = "tables.tex";

pub fn markdown(sweep: &Sweep, tables: &[Table], figures: &[PlannedFigure]) -> String {
    let base = sweep.base();
    let mut out = format!(
        "# FFW report: {}\n\n\
         Written by `ffw report` from `sweep.json` and `jobs/*/result.json`. Accuracies are on \
         the unbiased test split, in %, as mean ± sample std over seeds with the number of \
         seeds in brackets; – marks a cell without a finished job (or without a published \
         value), never a zero. Rerun `ffw report` as jobs finish.\n\n\
         Base point: Biased MNIST ρ = {}, λ = {}, {} vanilla epochs.\n\n\
         | Study | Jobs | With results |\n| --- | ---: | ---: |\n",
        sweep.dir.display(),
        num(base.rho),
        num(base.lambda),
        base.vanilla_epochs
    );
    for (study, ids) in &sweep.studies {
        let done = ids.iter().filter(|id| sweep.is_done(id)).count();
        out += &format!("| {study} | {} | {done} |\n", ids.len());
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
