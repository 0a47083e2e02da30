//! A `waitbench` run as a results file: a Markdown page (the book includes
//! it as it is) that `chart` reads back to draw the same run.
//!
//! The file holds one table, nanoseconds per call at each N with the two
//! ratios, and lines that say what ran where: `- machine: ...`,
//! `- date: ...`, the load, the command, and any size or call skipped.

use std::fmt::Write as _;

use crate::waitbench::Call;

/// One N of a run: nanoseconds per call, in [`Call::ALL`] order (`None`:
/// not measured).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub n: usize,
    pub ns: [Option<f64>; 5],
}

impl Row {
    /// Nanoseconds per `call`, if measured.
    pub fn ns(&self, call: Call) -> Option<f64> {
        self.ns[call.index()]
    }

    /// How many times `over` costs what `under` costs, at this N.
    pub fn ratio(&self, over: Call, under: Call) -> Option<f64> {
        Some(self.ns(over)? / self.ns(under)?)
    }
}

/// A run: its rows and what the caption needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub rows: Vec<Row>,
    /// CPU model, cores and kernel (see [`crate::machine::description`]).
    pub machine: String,
    /// When it ran (UTC).
    pub date: String,
    /// Lines about the run (load, command, what was skipped), shown as a
    /// list under the table.
    pub notes: Vec<String>,
}

/// `12,345` for 12345.4; one decimal below 100 (`87.5`).
pub fn format_ns(ns: f64) -> String {
    if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        thousands(ns.round() as u64)
    }
}

/// `4.9x` below 10, `463x` and `14,012x` above.
pub fn format_ratio(ratio: f64) -> String {
    if ratio < 10.0 {
        format!("{ratio:.1}x")
    } else {
        format!("{}x", thousands(ratio.round() as u64))
    }
}

/// `19,000` for 19000.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A Markdown table whose columns are padded to line up, so it reads as
/// text in a terminal too. `right` says which columns align right.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    out.push_str(&line(header.iter().map(|h| h.to_string()).collect()));
    let rule: Vec<String> = widths
        .iter()
        .map(|w| format!("{}:", "-".repeat(w + 1)))
        .collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// The column headers of a run's table.
pub const HEADER: [&str; 8] = [
    "N",
    "select",
    "poll",
    "epoll_wait",
    "ctl ADD+DEL",
    "getppid",
    "poll/epoll",
    "select/epoll",
];

/// The table's cells for one row.
fn cells(row: &Row) -> Vec<String> {
    let dash = || "-".to_string();
    let mut cells = vec![thousands(row.n as u64)];
    for call in Call::ALL {
        cells.push(row.ns(call).map_or_else(dash, format_ns));
    }
    cells.push(
        row.ratio(Call::Poll, Call::EpollWait)
            .map_or_else(dash, format_ratio),
    );
    cells.push(
        row.ratio(Call::Select, Call::EpollWait)
            .map_or_else(dash, format_ratio),
    );
    cells
}

impl Table {
    /// The results file: a heading line, the table, and the notes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "Nanoseconds per call with one of N watched descriptors ready \
             (median of interleaved blocks); the ratios divide by epoll_wait.\n\n",
        );
        let rows: Vec<Vec<String>> = self.rows.iter().map(cells).collect();
        out.push_str(&markdown_table(&HEADER, &rows));
        out.push('\n');
        let _ = writeln!(out, "- machine: {}", self.machine);
        let _ = writeln!(out, "- date: {}", self.date);
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        out
    }

    /// Reads a results file back (what [`Table::render`] wrote).
    pub fn parse(text: &str) -> Result<Table, String> {
        let mut table = Table::default();
        for line in text.lines() {
            if let Some(machine) = line.strip_prefix("- machine: ") {
                table.machine = machine.to_string();
            } else if let Some(date) = line.strip_prefix("- date: ") {
                table.date = date.to_string();
            } else if let Some(note) = line.strip_prefix("- ") {
                table.notes.push(note.to_string());
            } else if line.starts_with('|') {
                let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
                // The header and the rule have no number in the first cell.
                let Ok(n) = cells[0].replace(',', "").parse::<usize>() else {
                    continue;
                };
                if cells.len() != HEADER.len() {
                    return Err(format!(
                        "a table row has {} cells, not {}: {line}",
                        cells.len(),
                        HEADER.len()
                    ));
                }
                let mut row = Row { n, ns: [None; 5] };
                for (i, cell) in cells[1..=5].iter().enumerate() {
                    if *cell != "-" {
                        let value = cell.replace(',', "").parse::<f64>().map_err(|_| {
                            format!("not a number of nanoseconds: {cell:?} in {line}")
                        })?;
                        row.ns[i] = Some(value);
                    }
                }
                table.rows.push(row);
            }
        }
        if table.rows.is_empty() {
            return Err(
                "no table rows (| N | select | ... |) found: is this a file \
                        `waitbench --save` wrote?"
                    .to_string(),
            );
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(14_012_345), "14,012,345");
        assert_eq!(format_ns(87.54), "87.5");
        assert_eq!(format_ns(12_345.6), "12,346");
        assert_eq!(format_ratio(4.94), "4.9x");
        assert_eq!(format_ratio(14_012.4), "14,012x");
    }

    #[test]
    fn a_rendered_table_parses_back() {
        let table = Table {
            rows: vec![
                Row {
                    n: 10,
                    ns: [
                        Some(650.0),
                        Some(590.0),
                        Some(320.4),
                        Some(900.0),
                        Some(80.5),
                    ],
                },
                Row {
                    n: 10_000,
                    ns: [None, Some(400_123.0), Some(330.0), Some(950.0), Some(81.0)],
                },
            ],
            machine: "Some CPU, 2 cores, Linux 6.1".to_string(),
            date: "2026-11-30 09:00 UTC".to_string(),
            notes: vec!["select at N = 10,000: skipped".to_string()],
        };
        let text = table.render();
        assert!(text.contains("| 10,000 |"), "{text}");
        assert!(text.contains("1,212x"), "poll/epoll at 10,000: {text}");
        let back = Table::parse(&text).unwrap();
        // Rendering rounds to whole nanoseconds above 100.
        assert_eq!(back.rows[1].ns[1], Some(400_123.0));
        assert_eq!(back.rows[0].ns[2], Some(320.0));
        assert_eq!(back.rows[0].ns[4], Some(80.5));
        assert_eq!(back.rows[1].ns[0], None);
        assert_eq!(back.machine, table.machine);
        assert_eq!(back.date, table.date);
        assert_eq!(back.notes, table.notes);
    }

    #[test]
    fn a_file_without_a_table_is_refused() {
        let e = Table::parse("- machine: x\n").unwrap_err();
        assert!(e.contains("no table rows"), "{e}");
    }
}
