//! Listings as `gh` prints them: on a terminal, aligned columns under a header row;
//! piped, one tab-separated line per row and no header, so `cut -f2` and `awk -F'\t'`
//! read them as they are. No colour either way.

use std::io::{IsTerminal, Write};

/// Rows under a header.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as the header has columns).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table to stdout: for a person when stdout is a terminal, else for a
    /// program.
    pub fn print(&self) -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let mut out = stdout.lock();
        if terminal {
            self.write_aligned(&mut out)
        } else {
            self.write_tab_separated(&mut out)
        }
    }

    fn write_aligned(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(one_line(cell).chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                text.push_str(cell);
                if index < last {
                    let pad = width.saturating_sub(cell.chars().count()) + 2;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            text
        };
        writeln!(
            out,
            "{}",
            line(self.header.iter().map(|h| (*h).to_owned()).collect())
        )?;
        for row in &self.rows {
            writeln!(out, "{}", line(row.iter().map(|c| one_line(c)).collect()))?;
        }
        Ok(())
    }

    fn write_tab_separated(&self, out: &mut impl Write) -> std::io::Result<()> {
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| one_line(c)).collect();
            writeln!(out, "{}", cells.join("\t"))?;
        }
        Ok(())
    }
}

/// A cell on one line, with no tab in it: line breaks and tabs become spaces.
fn one_line(cell: &str) -> String {
    cell.replace(['\t', '\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(&["ID", "NAME", "TYPE"]);
        table.row(vec!["1".into(), "CI deploy".into(), "read-only".into()]);
        table.row(vec!["22".into(), "x\ty".into(), "custom".into()]);
        table
    }

    #[test]
    fn a_terminal_gets_aligned_columns_under_a_header() {
        let mut out = Vec::new();
        sample().write_aligned(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID  NAME       TYPE\n1   CI deploy  read-only\n22  x y        custom\n"
        );
    }

    #[test]
    fn a_pipe_gets_tab_separated_rows_without_a_header() {
        let mut out = Vec::new();
        sample().write_tab_separated(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1\tCI deploy\tread-only\n22\tx y\tcustom\n"
        );
    }
}
