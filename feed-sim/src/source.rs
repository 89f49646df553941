//! Where ticks come from: the generator or a CSV of real trades, behind one
//! interface that fills a batch. Sequence numbers are not assigned here but
//! by the replay store, which is the single record of what was sent.

use tickshard::tick::{Price, Symbol};

use crate::csv_input::{BadRow, CsvItem, CsvReader};
use crate::generator::Generator;

/// A trade before it is numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTick {
    /// Instrument.
    pub symbol: Symbol,
    /// Price.
    pub price: Price,
    /// Size (> 0).
    pub size: u32,
    /// Exchange time, ns since the Unix epoch.
    pub ts_ns: u64,
}

/// Line numbers of bad input rows kept for the summary.
pub const BAD_LINES_KEPT: usize = 20;

/// Malformed input rows seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BadRows {
    /// How many.
    pub count: u64,
    /// The first [`BAD_LINES_KEPT`] line numbers.
    pub first_lines: Vec<u64>,
}

impl BadRows {
    fn record(&mut self, row: &BadRow) {
        self.count += 1;
        if self.first_lines.len() < BAD_LINES_KEPT {
            tracing::warn!(line = row.line, error = %row.error, "input row skipped");
            self.first_lines.push(row.line);
        }
    }
}

/// A tick source.
#[derive(Debug)]
pub enum Source {
    /// Generated ticks; never ends by itself.
    Generate(Box<Generator>),
    /// Rows of a CSV file.
    Csv {
        /// The reader.
        reader: CsvReader,
        /// Rows skipped.
        bad: BadRows,
    },
}

impl Source {
    /// Appends up to `max` ticks to `out`; `Ok(false)` once the source is
    /// exhausted (what it appended before is still valid). `now_ns` stamps
    /// generated ticks.
    pub fn fill(
        &mut self,
        max: usize,
        out: &mut Vec<NewTick>,
        now_ns: u64,
    ) -> Result<bool, std::io::Error> {
        match self {
            Source::Generate(g) => {
                out.extend((0..max).map(|_| g.next_tick(now_ns)));
                Ok(true)
            }
            Source::Csv { reader, bad } => {
                let mut added = 0;
                while added < max {
                    match reader.next_item()? {
                        None => return Ok(false),
                        Some(CsvItem::Tick(t)) => {
                            out.push(t);
                            added += 1;
                        }
                        Some(CsvItem::Bad(row)) => bad.record(&row),
                    }
                }
                Ok(true)
            }
        }
    }

    /// Bad rows so far (always empty for generated ticks).
    pub fn bad_rows(&self) -> BadRows {
        match self {
            Source::Generate(_) => BadRows::default(),
            Source::Csv { bad, .. } => bad.clone(),
        }
    }
}
