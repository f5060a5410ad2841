//! Text tables (docs/CLI.md, "Output"): upper-case headers with Kafka's column names,
//! columns padded with spaces and separated by two, no box drawing, `-` for "none/unknown",
//! no trailing spaces.
//! Every cell is one word-free token or `-`, so `awk '{print $4}'` keeps working; an empty
//! cell would shift the columns, so it is printed as `-` too.
//!
//! rpk's describe output puts several tables under titled sections (`SUMMARY`, `CONFIGS`,
//! `PARTITIONS`); [`section`] prints such a title.

use std::fmt::{self, Display};

/// The placeholder for a missing value.
pub const NONE: &str = "-";

/// A table under construction: a header row (or none, for key-value blocks) and rows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with the given upper-case column names.
    pub fn new<I, S>(headers: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// A headerless two-column block of `KEY  value` lines (rpk's SUMMARY style).
    pub fn key_value() -> Table {
        Table::default()
    }

    /// Adds a row; empty cells become `-`.
    pub fn row<I, S>(&mut self, cells: I) -> &mut Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let cells = cells
            .into_iter()
            .map(Into::into)
            .map(|cell: String| {
                if cell.is_empty() {
                    NONE.to_owned()
                } else {
                    cell
                }
            })
            .collect();
        self.rows.push(cells);
        self
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate() {
                let width = cell.chars().count();
                match widths.get_mut(index) {
                    Some(current) => *current = (*current).max(width),
                    None => widths.push(width),
                }
            }
        }
        widths
    }
}

impl Display for Table {
    /// The rendered table, one line per row, each ending in `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        let header = (!self.headers.is_empty()).then_some(&self.headers);
        for row in header.into_iter().chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate() {
                if index + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let width = widths.get(index).copied().unwrap_or(0);
                    line.push_str(&format!("{cell:<width$}  "));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// A cell for an optional value: the value, or `-`.
pub fn cell<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| NONE.to_owned(), |value| value.to_string())
}

/// A list cell (`1,2,3`), or `-` when empty.
pub fn list_cell<T: Display>(values: &[T]) -> String {
    if values.is_empty() {
        return NONE.to_owned();
    }
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A section title with an underline, as rpk prints before each table of a describe.
pub fn section(title: &str) -> String {
    format!("{title}\n{}\n", "=".repeat(title.chars().count()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn columns_are_space_aligned_without_trailing_spaces() {
        let mut table = Table::new(["NAME", "PARTITIONS", "REPLICAS"]);
        table.row(["orders", "6", "3"]);
        table.row(["a-much-longer-topic", "12", "1"]);
        assert_eq!(
            table.to_string(),
            "NAME                 PARTITIONS  REPLICAS\n\
             orders               6           3\n\
             a-much-longer-topic  12          1\n"
        );
    }

    #[test]
    fn empty_cells_become_dashes_so_awk_columns_stay_put() {
        let mut table = Table::new(["A", "B", "C"]);
        table.row(["x", "", "z"]);
        let text = table.to_string();
        let fields: Vec<_> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(fields, ["x", "-", "z"]);
        assert_eq!(text.lines().nth(1).unwrap(), "x  -  z");
    }

    #[test]
    fn key_value_blocks_have_no_header() {
        let mut table = Table::key_value();
        table.row(["NAME", "orders"]).row(["PARTITIONS", "6"]);
        assert_eq!(table.to_string(), "NAME        orders\nPARTITIONS  6\n");
    }

    #[test]
    fn helpers_print_dash_for_none() {
        assert_eq!(cell(None::<i64>), "-");
        assert_eq!(cell(Some(7)), "7");
        assert_eq!(list_cell::<i32>(&[]), "-");
        assert_eq!(list_cell(&[1, 2, 3]), "1,2,3");
        assert_eq!(section("SUMMARY"), "SUMMARY\n=======\n");
    }

    #[test]
    fn an_empty_table_prints_only_its_header() {
        let table = Table::new(["TOPIC", "STATUS"]);
        assert_eq!(table.to_string(), "TOPIC  STATUS\n");
    }
}
