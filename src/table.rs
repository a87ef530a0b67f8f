//! A terminal table that lines up Japanese text (double-width characters) and cuts long cells
//! visibly with `…`.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use unicode_width::UnicodeWidthStr;

/// Widest cell shown; longer values end in `…` (the data itself is untouched).
const MAX_CELL: usize = 60;

pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<String>) -> Self {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    pub(crate) fn push_row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub(crate) fn push_batch(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let opts = FormatOptions::default().with_null("NULL");
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            self.rows
                .push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
        Ok(())
    }

    pub(crate) fn render(&self) -> String {
        let cells: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| cell(c)).collect())
            .collect();
        let n = self.header.len();
        let widths: Vec<usize> = (0..n)
            .map(|j| {
                cells
                    .iter()
                    .map(|r| r.get(j).map_or(0, |c| c.width()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |l: char, m: char, r: char| {
            let mut s = String::from(l);
            for (j, w) in widths.iter().enumerate() {
                s.push_str(&"─".repeat(w + 2));
                s.push(if j + 1 == n { r } else { m });
            }
            s.push('\n');
            s
        };
        let mut out = line('┌', '┬', '┐');
        for (i, row) in cells.iter().enumerate() {
            out.push('│');
            for (j, w) in widths.iter().enumerate() {
                let c = row.get(j).map_or("", String::as_str);
                out.push(' ');
                out.push_str(c);
                out.push_str(&" ".repeat(w - c.width() + 1));
                out.push('│');
            }
            out.push('\n');
            if i == 0 {
                out.push_str(&line('├', '┼', '┤'));
            }
        }
        out.push_str(&line('└', '┴', '┘'));
        out
    }
}

/// One line, at most [`MAX_CELL`] columns wide.
fn cell(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| {
            if c == '\n' {
                '⏎'
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    if flat.width() <= MAX_CELL {
        return flat;
    }
    let mut out = String::new();
    let mut w = 0;
    for c in flat.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw > MAX_CELL - 1 {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}
