//! The ground truth of a run (`--record`): per-symbol aggregates of every
//! tick sent, folded with the library's [`SymbolTotals`] so they compare
//! exactly with the processors' state, written atomically (temp file, then
//! rename) so a reader never sees half a file.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use tickshard::tick::{Symbol, Tick};
use tickshard::totals::SymbolTotals;

/// Totals per symbol.
#[derive(Debug, Default, Clone)]
pub struct GroundTruth {
    ticks: u64,
    symbols: FxHashMap<Symbol, SymbolTotals>,
}

/// One symbol in the record file.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SymbolRecord {
    /// Ticks.
    pub count: u64,
    /// Sum of sizes.
    pub volume: u64,
    /// Last seq.
    pub last_seq: u64,
    /// Last price, 4 decimals.
    pub last_px: String,
    /// VWAP, 4 decimals, rounded half up.
    pub vwap_px: String,
    /// Exchange time of the first tick.
    pub first_ts_ns: u64,
    /// Exchange time of the last tick.
    pub last_ts_ns: u64,
}

/// The record file.
#[derive(Debug, Serialize)]
pub struct Record {
    /// Ticks in total.
    pub ticks: u64,
    /// Per symbol, sorted.
    pub symbols: BTreeMap<String, SymbolRecord>,
}

impl GroundTruth {
    /// Folds one sent tick in.
    pub fn apply(&mut self, tick: &Tick) {
        self.ticks += 1;
        self.symbols.entry(tick.symbol).or_default().apply(tick);
    }

    /// Ticks folded in.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// The record, as written.
    pub fn record(&self) -> Record {
        let symbols = self
            .symbols
            .iter()
            .map(|(s, t)| {
                (
                    s.as_str().to_owned(),
                    SymbolRecord {
                        count: t.count,
                        volume: t.volume,
                        last_seq: t.last_seq,
                        last_px: t.last_px.to_string(),
                        vwap_px: t.vwap().map(|p| p.to_string()).unwrap_or_default(),
                        first_ts_ns: t.first_ts_ns,
                        last_ts_ns: t.last_ts_ns,
                    },
                )
            })
            .collect();
        Record {
            ticks: self.ticks,
            symbols,
        }
    }

    /// Writes the record to `path` through a temp file in the same
    /// directory and a rename.
    pub fn write_atomic(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.record()).map_err(std::io::Error::other)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "record".to_owned());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickshard::tick::Price;

    #[test]
    fn record_has_the_contract_shape() {
        let mut g = GroundTruth::default();
        let s: Symbol = "AAPL".parse().unwrap();
        for (seq, px, size) in [(1, "187.25", 100), (2, "187.00", 300)] {
            let mut t = Tick::new(s, seq, px.parse::<Price>().unwrap(), size, seq * 10).unwrap();
            t.sent_ns = Some(5);
            g.apply(&t);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.json");
        g.write_atomic(&path).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ticks":2,"symbols":{"AAPL":{"count":2,"volume":400,
                "last_seq":2,"last_px":"187.0000","vwap_px":"187.0625",
                "first_ts_ns":10,"last_ts_ns":20}}})
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left"
        );
    }
}
