//! The ground-truth record (`feed-sim --record FILE`) and the exact check of
//! a store against it.
//!
//! [`GroundTruth`] folds every tick sent into the same [`SymbolTotals`] the
//! engine uses, so the two are computed by the same arithmetic.
//! [`TruthRecord`] is the file's one type: feed-sim writes it, and the tests
//! and benches read it back to compare, field for field, with what the
//! processors stored in `{ns}:{p<p>}:sym:{SYMBOL}`. A run is exact when every
//! recorded symbol matches and no symbol the feed never sent was stored.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::cluster::RedisConn;
use crate::keys::Keys;
use crate::tick::{Symbol, Tick};
use crate::totals::SymbolTotals;

/// Totals per symbol of the ticks folded in.
#[derive(Debug, Default, Clone)]
pub struct GroundTruth {
    ticks: u64,
    symbols: FxHashMap<Symbol, SymbolTotals>,
}

impl GroundTruth {
    /// The truth of `ticks`, folded in order.
    pub fn of<'a>(ticks: impl IntoIterator<Item = &'a Tick>) -> Self {
        let mut truth = Self::default();
        for t in ticks {
            truth.apply(t);
        }
        truth
    }

    /// Folds one tick in.
    pub fn apply(&mut self, tick: &Tick) {
        self.ticks += 1;
        self.symbols.entry(tick.symbol).or_default().apply(tick);
    }

    /// Ticks folded in.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// The record, as written.
    pub fn record(&self) -> TruthRecord {
        TruthRecord {
            ticks: self.ticks,
            symbols: self
                .symbols
                .iter()
                .map(|(s, t)| (s.as_str().to_owned(), SymbolRecord::from(t)))
                .collect(),
        }
    }
}

/// One symbol in the record: the fields the store holds, as it writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub first_ts_ns: u64,
    /// Exchange time of the last tick.
    #[serde(default)]
    pub last_ts_ns: u64,
}

impl From<&SymbolTotals> for SymbolRecord {
    fn from(t: &SymbolTotals) -> Self {
        Self {
            count: t.count,
            volume: t.volume,
            last_seq: t.last_seq,
            last_px: t.last_px.to_string(),
            vwap_px: t.vwap().map(|p| p.to_string()).unwrap_or_default(),
            first_ts_ns: t.first_ts_ns,
            last_ts_ns: t.last_ts_ns,
        }
    }
}

impl SymbolRecord {
    /// The compared fields as the store writes them, in [`COMPARED`] order.
    fn compared_values(&self) -> [String; 5] {
        [
            self.count.to_string(),
            self.volume.to_string(),
            self.last_seq.to_string(),
            self.last_px.clone(),
            self.vwap_px.clone(),
        ]
    }
}

/// The record file: every tick sent, per symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRecord {
    /// Ticks in total.
    pub ticks: u64,
    /// Per symbol, sorted.
    pub symbols: BTreeMap<String, SymbolRecord>,
}

/// The fields compared, in the stored hash's names.
pub const COMPARED: [&str; 5] = ["count", "volume", "last_seq", "last_px", "vwap_px"];

/// Stored state: symbol → the fields of its hash.
pub type StoredState = BTreeMap<String, HashMap<String, String>>;

impl TruthRecord {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads the file; `None` while it does not exist or is still being
    /// written (does not parse yet).
    pub fn read_if_complete(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        Self::parse(&text).ok()
    }

    /// Writes the record to `path` through a temp file in the same
    /// directory and a rename, so a reader never sees half a file.
    pub fn write_atomic(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
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

    /// Compares the record with `stored`, field for field. Pure.
    pub fn compare(&self, stored: &StoredState) -> Comparison {
        let mut out = Comparison::default();
        for (sym, want) in &self.symbols {
            let hash = stored.get(sym);
            let before = out.mismatches.len();
            for (field, expected) in COMPARED.iter().zip(want.compared_values()) {
                let got = hash.and_then(|h| h.get(*field)).cloned();
                if got.as_deref() != Some(expected.as_str()) {
                    out.mismatches.push(Mismatch {
                        symbol: sym.clone(),
                        field,
                        expected,
                        stored: got,
                    });
                }
            }
            if out.mismatches.len() == before {
                out.matched += 1;
            }
        }
        out.extra = stored
            .iter()
            .filter(|(s, h)| !h.is_empty() && !self.symbols.contains_key(*s))
            .map(|(s, _)| s.clone())
            .collect();
        out
    }
}

/// One difference between the record and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The symbol.
    pub symbol: String,
    /// The field, one of [`COMPARED`].
    pub field: &'static str,
    /// What the record says.
    pub expected: String,
    /// What the store holds, if anything.
    pub stored: Option<String>,
}

/// The outcome of [`TruthRecord::compare`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Symbols whose every compared field matched.
    pub matched: usize,
    /// Differences, in symbol order.
    pub mismatches: Vec<Mismatch>,
    /// Stored symbols the feed never sent.
    pub extra: Vec<String>,
}

impl Comparison {
    /// Every recorded symbol matched and nothing else was stored.
    pub fn is_exact(&self) -> bool {
        self.mismatches.is_empty() && self.extra.is_empty()
    }

    /// A one-line summary with the first few differences.
    pub fn summary(&self) -> String {
        let first: Vec<String> = self
            .mismatches
            .iter()
            .take(3)
            .map(|m| {
                format!(
                    "{}.{}: expected {} stored {}",
                    m.symbol,
                    m.field,
                    m.expected,
                    m.stored.as_deref().unwrap_or("nothing")
                )
            })
            .chain(self.extra.iter().take(3).map(|s| format!("{s} not sent")))
            .collect();
        format!(
            "{} matched, {} mismatched fields, {} extra symbols; {}",
            self.matched,
            self.mismatches.len(),
            self.extra.len(),
            first.join("; ")
        )
    }
}

/// Hashes read per pipeline: one answer for 100,000 symbols would take
/// longer than a connection's response timeout on a busy machine.
const READ_CHUNK: usize = 2_000;

/// Reads every symbol state hash (`{ns}:*:sym:*`, found with SCAN on
/// every master), in pipelines of up to 2,000 hashes of one hash slot.
pub async fn read_stored(conn: &mut RedisConn, keys: &Keys) -> redis::RedisResult<StoredState> {
    let mut names = conn.scan_matching(&keys.sym_pattern()).await?;
    // Grouped by partition (one slot each), so each pipeline keeps to one.
    names.sort_by_key(|n| hash_tag(n).map(str::to_owned));
    let mut out = BTreeMap::new();
    let groups = names.chunk_by(|a, b| hash_tag(a) == hash_tag(b));
    for chunk in groups.flat_map(|g| g.chunks(READ_CHUNK)) {
        let mut pipe = redis::pipe();
        for n in chunk {
            pipe.hgetall(n);
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        out.extend(
            chunk
                .iter()
                .zip(hashes)
                .filter_map(|(n, h)| Some((keys.symbol_of(n)?.to_string(), h))),
        );
    }
    Ok(out)
}

/// The hash tag of a key name (between its first `{` and the next `}`).
fn hash_tag(name: &str) -> Option<&str> {
    let open = name.find('{')?;
    let len = name[open + 1..].find('}')?;
    Some(&name[open + 1..open + 1 + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TruthRecord {
        TruthRecord::parse(
            r#"{"ticks":3,"symbols":{"AAPL":{"count":3,"volume":600,"last_seq":3,
                "last_px":"187.0000","vwap_px":"187.1000"}}}"#,
        )
        .unwrap()
    }

    fn stored(count: &str) -> StoredState {
        let fields = [
            ("count", count),
            ("volume", "600"),
            ("last_seq", "3"),
            ("last_px", "187.0000"),
            ("vwap_px", "187.1000"),
            ("fence", "1"),
        ];
        let hash = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BTreeMap::from([("AAPL".to_string(), hash)])
    }

    #[test]
    fn identical_state_is_exact() {
        let cmp = record().compare(&stored("3"));
        assert!(cmp.is_exact(), "{}", cmp.summary());
        assert_eq!(cmp.matched, 1);
    }

    #[test]
    fn a_changed_field_and_an_extra_symbol_are_found() {
        let mut s = stored("4");
        s.insert("ZZZ".into(), HashMap::from([("count".into(), "1".into())]));
        let cmp = record().compare(&s);
        assert!(!cmp.is_exact());
        assert_eq!(cmp.mismatches.len(), 1);
        assert_eq!(cmp.mismatches[0].field, "count");
        assert_eq!(cmp.extra, vec!["ZZZ".to_string()]);
        assert!(cmp.summary().contains("ZZZ not sent"), "{}", cmp.summary());
    }

    #[test]
    fn record_has_the_contract_shape() {
        let s: Symbol = "AAPL".parse().unwrap();
        let ticks: Vec<Tick> = [(1, "187.25", 100), (2, "187.00", 300)]
            .into_iter()
            .map(|(seq, px, size)| Tick::new(s, seq, px.parse().unwrap(), size, seq * 10).unwrap())
            .collect();
        let v = serde_json::to_value(GroundTruth::of(&ticks).record()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ticks":2,"symbols":{"AAPL":{"count":2,"volume":400,
                "last_seq":2,"last_px":"187.0000","vwap_px":"187.0625",
                "first_ts_ns":10,"last_ts_ns":20}}})
        );
    }

    #[test]
    fn write_then_read_round_trips_without_leaving_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.json");
        let r = record();
        r.write_atomic(&path).unwrap();
        assert_eq!(TruthRecord::read_if_complete(&path), Some(r));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
