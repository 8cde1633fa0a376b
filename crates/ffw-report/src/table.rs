//! One table model, rendered as Markdown and as a LaTeX (booktabs) fragment.
use crate::aggregate::Stat;

/// Shown for a cell without a value (no finished job, or nothing published): never zero.
const MISSING: &str = "–";

pub enum Cell {
    Text(String),
    /// Ours: mean ± std (seeds).
    Ours(Option<Stat>),
    /// The paper's published value.
    Paper(Option<f64>),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Ours(None) | Cell::Paper(None) => MISSING.to_string(),
            Cell::Ours(Some(Stat { mean, std, n })) => match std {
                Some(sd) => format!("{mean:.2} ± {sd:.2} ({n})"),
                None => format!("{mean:.2} ({n})"),
            },
            Cell::Paper(Some(v)) => format!("{v:.2}"),
        }
    }
}

pub struct Column {
    pub header: String,
    /// Right-aligned.
    pub numeric: bool,
}

impl Column {
    pub fn text(header: &str) -> Self {
        Column {
            header: header.to_string(),
            numeric: false,
        }
    }

    pub fn number(header: &str) -> Self {
        Column {
            header: header.to_string(),
            numeric: true,
        }
    }
}

pub struct Table {
    /// File stem, e.g. `table2_rho`.
    pub stem: &'static str,
    pub title: String,
    /// One line for the index: what the table shows.
    pub summary: String,
    pub notes: Vec<String>,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn markdown(&self) -> String {
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        let escape = |s: String| s.replace('|', "\\|");
        let mut out = format!("# {}\n\n", self.title);
        out += &line(
            self.columns
                .iter()
                .map(|c| escape(c.header.clone()))
                .collect(),
        );
        out += &line(
            self.columns
                .iter()
                .map(|c| if c.numeric { "---:" } else { "---" }.to_string())
                .collect(),
        );
        for row in &self.rows {
            out += &line(row.iter().map(|c| escape(c.text())).collect());
        }
        if !self.notes.is_empty() {
            out += "\n";
            for note in &self.notes {
                out += &format!("- {note}\n");
            }
        }
        out
    }

    /// A `table` float for `\input` into a document that loads booktabs.
    pub fn latex(&self) -> String {
        let align: String = self
            .columns
            .iter()
            .map(|c| if c.numeric { 'r' } else { 'l' })
            .collect();
        let line = |cells: Vec<String>| format!("{} \\\\\n", cells.join(" & "));
        let mut out = format!(
            "% {} (written by `ffw report`; needs \\usepackage{{booktabs}})\n\
             \\begin{{table}}[htbp]\n\\centering\n\\small\n\\caption{{{}}}\n\
             \\label{{tab:{}}}\n\\begin{{tabular}}{{{align}}}\n\\toprule\n",
            self.stem,
            tex(&self.title),
            self.stem
        );
        out += &line(self.columns.iter().map(|c| tex(&c.header)).collect());
        out += "\\midrule\n";
        for row in &self.rows {
            out += &line(row.iter().map(|c| tex(&c.text())).collect());
        }
        out += "\\bottomrule\n\\end{tabular}\n";
        if !self.notes.is_empty() {
            out += "\\par\\smallskip\n\\begin{minipage}{0.9\\linewidth}\\footnotesize\n";
            for note in &self.notes {
                out += &format!("{}\\par\n", tex(note));
            }
            out += "\\end{minipage}\n";
        }
        out += "\\end{table}\n";
        out
    }
}

/// A small document that inputs every table fragment (compile it in the report directory).
pub fn latex_document(tables: &[Table]) -> String {
    let mut out = String::from(
        "% All tables of the report: pdflatex tables.tex (in this directory).\n\
         \\documentclass{article}\n\
         \\usepackage[a4paper,landscape,margin=1.5cm]{geometry}\n\
         \\usepackage{booktabs}\n\
         \\begin{document}\n",
    );
    for t in tables {
        out += &format!("\\input{{{}}}\n", t.stem);
    }
    out += "\\end{document}\n";
    out
}

/// Text to LaTeX: special characters escaped, the Unicode the tables use spelled in ASCII
/// (so the fragments need no inputenc or font setup).
fn tex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out += "\\textbackslash{}",
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out += "\\textasciitilde{}",
            '^' => out += "\\textasciicircum{}",
            '<' => out += "\\textless{}",
            '>' => out += "\\textgreater{}",
            '±' => out += "$\\pm$",
            '–' => out += "--",
            '—' => out += "---",
            'ρ' => out += "$\\rho$",
            'λ' => out += "$\\lambda$",
            '·' => out += "$\\cdot$",
            '×' => out += "$\\times$",
            '≥' => out += "$\\geq$",
            '…' => out += "\\ldots{}",
            '`' => out += "\\textasciigrave{}",
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            stem: "t",
            title: "Table 9: ρ & λ".into(),
            summary: String::new(),
            notes: vec!["50% of runs".into()],
            columns: vec![Column::text("ρ"), Column::number("Task %")],
            rows: vec![
                vec![
                    Cell::Text("0.99".into()),
                    Cell::Ours(Stat::of(&[97.0, 98.0])),
                ],
                vec![Cell::Text("0.995".into()), Cell::Ours(None)],
                vec![Cell::Text("0.997".into()), Cell::Ours(Stat::of(&[12.5]))],
            ],
        }
    }

    #[test]
    fn cells_show_mean_std_and_seeds_and_missing_as_a_dash() {
        let md = table().markdown();
        assert!(md.contains("| 0.99 | 97.50 ± 0.71 (2) |"), "{md}");
        assert!(md.contains("| 0.995 | – |"), "{md}");
        assert!(md.contains("| 0.997 | 12.50 (1) |"), "{md}");
        assert!(md.contains("| --- | ---: |"), "{md}");
    }

    #[test]
    fn latex_escapes_specials_and_unicode() {
        let tex = table().latex();
        assert!(
            tex.contains("\\caption{Table 9: $\\rho$ \\& $\\lambda$}"),
            "{tex}"
        );
        assert!(tex.contains("0.99 & 97.50 $\\pm$ 0.71 (2) \\\\"), "{tex}");
        assert!(tex.contains("0.995 & -- \\\\"), "{tex}");
        assert!(tex.contains("50\\% of runs"), "{tex}");
        assert!(tex.contains("\\begin{tabular}{lr}"), "{tex}");
        assert!(tex.is_ascii(), "{tex}");
    }
}
