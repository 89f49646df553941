//! Real trades from a CSV file `timestamp,symbol,price,size` (ISO 8601
//! timestamps with an offset, e.g. `2013-09-01T17:00:00.083-05:00`).
//!
//! Rows are parsed one at a time by a pure function; a malformed row becomes
//! a [`BadRow`] with its line number and reason, and the reader skips it.
//! The file is read through a buffered reader, line by line, so its size
//! does not matter.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use tickshard::tick::{Price, Symbol};

use crate::source::NewTick;

/// Why a row was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// Not exactly four columns.
    #[error("expected 4 columns, found {0}")]
    Columns(usize),
    /// Unparseable timestamp.
    #[error("bad timestamp {0:?}")]
    Timestamp(String),
    /// Empty or invalid symbol.
    #[error("bad symbol {0:?}")]
    Symbol(String),
    /// Unparseable, negative or zero price (NaN included).
    #[error("bad price {0:?}")]
    Price(String),
    /// Unparseable, negative or zero size.
    #[error("bad size {0:?}")]
    Size(String),
}

/// A skipped row: its 1-based line number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Line number in the file (the header is line 1).
    pub line: u64,
    /// What was wrong.
    pub error: RowError,
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Parses one data row.
pub fn parse_row(line: &str) -> Result<NewTick, RowError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let cols: Vec<&str> = line.split(',').collect();
    if cols.len() != 4 {
        return Err(RowError::Columns(cols.len()));
    }
    let ts_ns =
        parse_timestamp(cols[0].trim()).ok_or_else(|| RowError::Timestamp(clip(cols[0])))?;
    let sym_text = cols[1].trim();
    let symbol: Symbol = sym_text
        .parse()
        .map_err(|_| RowError::Symbol(clip(sym_text)))?;
    let price: Price = cols[2]
        .trim()
        .parse()
        .map_err(|_| RowError::Price(clip(cols[2])))?;
    if price.units() <= 0 {
        return Err(RowError::Price(clip(cols[2])));
    }
    let size: u32 = cols[3]
        .trim()
        .parse()
        .map_err(|_| RowError::Size(clip(cols[3])))?;
    if size == 0 {
        return Err(RowError::Size(clip(cols[3])));
    }
    Ok(NewTick {
        symbol,
        price,
        size,
        ts_ns,
    })
}

pub use tickshard::tick::parse_timestamp;

/// Streams the rows of a trades CSV, skipping (and remembering) bad ones.
#[derive(Debug)]
pub struct CsvReader {
    lines: std::io::Lines<BufReader<File>>,
    line_no: u64,
}

/// What reading the next row gave.
#[derive(Debug)]
pub enum CsvItem {
    /// A good row.
    Tick(NewTick),
    /// A skipped row.
    Bad(BadRow),
}

/// The file could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read input {path}: {source}")]
pub struct CsvError {
    /// The file.
    pub path: String,
    /// The I/O error.
    pub source: std::io::Error,
}

impl CsvReader {
    /// Opens `path` and checks the header `timestamp,symbol,price,size`.
    pub fn open(path: &Path) -> Result<Self, CsvError> {
        let err = |source| CsvError {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(err)?;
        let mut lines = BufReader::with_capacity(1 << 16, file).lines();
        let header = lines.next().transpose().map_err(err)?.unwrap_or_default();
        let header = header.trim_end_matches('\r').trim_start_matches('\u{feff}');
        if header != "timestamp,symbol,price,size" {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "expected header timestamp,symbol,price,size, found {:?}",
                    clip(header)
                ),
            )));
        }
        Ok(Self { lines, line_no: 1 })
    }

    /// The next row, `Ok(None)` at the end of the file.
    pub fn next_item(&mut self) -> Result<Option<CsvItem>, std::io::Error> {
        loop {
            let Some(line) = self.lines.next().transpose()? else {
                return Ok(None);
            };
            self.line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            return Ok(Some(match parse_row(&line) {
                Ok(t) => CsvItem::Tick(t),
                Err(error) => CsvItem::Bad(BadRow {
                    line: self.line_no,
                    error,
                }),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_offsets() {
        // 2013-09-01T22:00:00.083Z
        let utc = 1_378_072_800_083_000_000;
        assert_eq!(parse_timestamp("2013-09-01T17:00:00.083-05:00"), Some(utc));
        assert_eq!(parse_timestamp("2013-09-01T22:00:00.083Z"), Some(utc));
        assert_eq!(parse_timestamp("2013-09-01T23:00:00.083+0100"), Some(utc));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2024-02-29T12:00:00.123456789Z"),
            Some(1_709_208_000_123_456_789)
        );
        for bad in [
            "2013-09-01T17:00:00",
            "2013-13-01T17:00:00Z",
            "2013-09-01T17:00:00.Z",
            "2013-09-01T25:00:00Z",
            "yesterday",
            "1969-12-31T23:59:59Z",
            "2013-09-01T17:00:00.0830000000Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_parse_and_bad_rows_say_why() {
        let t = parse_row("2013-09-01T17:00:00.083-05:00,ES,1640.25,8").unwrap();
        assert_eq!(t.symbol.as_str(), "ES");
        assert_eq!(t.price.to_string(), "1640.2500");
        assert_eq!(t.size, 8);
        let ts = "2013-09-01T17:00:00.083-05:00";
        let cases = [
            (format!("{ts},ES,1640.25"), RowError::Columns(3)),
            (format!("{ts},ES,1640.25,8,9"), RowError::Columns(5)),
            (format!("{ts},,1640.25,8"), RowError::Symbol(String::new())),
            (format!("{ts},ES,NaN,8"), RowError::Price("NaN".into())),
            (format!("{ts},ES,-1.5,8"), RowError::Price("-1.5".into())),
            (format!("{ts},ES,0,8"), RowError::Price("0".into())),
            (format!("{ts},ES,1640.25,0"), RowError::Size("0".into())),
            (format!("{ts},ES,1640.25,-3"), RowError::Size("-3".into())),
            (format!("{ts},ES,1640.25,x"), RowError::Size("x".into())),
            ("nope,ES,1,1".to_owned(), RowError::Timestamp("nope".into())),
        ];
        for (row, want) in cases {
            assert_eq!(parse_row(&row), Err(want), "{row}");
        }
    }
}
