//! The feed's ground truth (`feed-sim --record FILE`) and the exact
//! comparison with what the cluster stored in `{ns}:sym:{SYMBOL}`. A run
//! counts only when every symbol matches field for field and no extra
//! symbol was stored.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use tickshard::keys::Keys;
use tickshard::tick::Symbol;

/// One symbol in the ground truth.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct TruthSymbol {
    pub(crate) count: u64,
    pub(crate) volume: u64,
    pub(crate) last_seq: u64,
    pub(crate) last_px: String,
    pub(crate) vwap_px: String,
    #[serde(default)]
    pub(crate) first_ts_ns: u64,
    #[serde(default)]
    pub(crate) last_ts_ns: u64,
}

/// The `--record` file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct GroundTruth {
    pub(crate) ticks: u64,
    pub(crate) symbols: BTreeMap<String, TruthSymbol>,
}

impl GroundTruth {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("ground truth: {e}"))
    }

    /// Reads the file; `Ok(None)` while it does not exist or is still being
    /// written (does not parse yet).
    pub(crate) fn read_if_complete(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        Self::parse(&text).ok()
    }
}

/// The fields compared, in the stored hash's names.
pub(crate) const COMPARED: [&str; 5] = ["count", "volume", "last_seq", "last_px", "vwap_px"];

/// One difference between truth and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub(crate) symbol: String,
    pub(crate) field: &'static str,
    pub(crate) expected: String,
    pub(crate) stored: Option<String>,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Comparison {
    /// Symbols whose every compared field matched.
    pub(crate) matched: usize,
    /// Differences, in symbol order.
    pub(crate) mismatches: Vec<Mismatch>,
    /// Stored symbols the feed never sent.
    pub(crate) extra: Vec<String>,
}

impl Comparison {
    pub(crate) fn is_exact(&self) -> bool {
        self.mismatches.is_empty() && self.extra.is_empty()
    }

    /// A one-line summary with the first few differences.
    pub(crate) fn summary(&self) -> String {
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

/// Compares `truth` with `stored` (symbol → its hash fields). Pure.
pub(crate) fn compare(
    truth: &GroundTruth,
    stored: &BTreeMap<String, HashMap<String, String>>,
) -> Comparison {
    let mut out = Comparison::default();
    for (sym, t) in &truth.symbols {
        let h = stored.get(sym);
        let expected = [
            t.count.to_string(),
            t.volume.to_string(),
            t.last_seq.to_string(),
            t.last_px.clone(),
            t.vwap_px.clone(),
        ];
        let before = out.mismatches.len();
        for (field, want) in COMPARED.iter().zip(expected) {
            let got = h.and_then(|h| h.get(*field)).cloned();
            if got.as_deref() != Some(want.as_str()) {
                out.mismatches.push(Mismatch {
                    symbol: sym.clone(),
                    field,
                    expected: want,
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
        .filter(|(s, h)| !h.is_empty() && !truth.symbols.contains_key(*s))
        .map(|(s, _)| s.clone())
        .collect();
    out
}

/// Hashes read per pipeline: one answer for 100,000 symbols would take
/// longer than a connection's response timeout on a busy machine.
const READ_CHUNK: usize = 2_000;

/// Reads every `{ns}:sym:*` hash (found with SCAN), in pipelines of
/// [`READ_CHUNK`].
pub(crate) async fn read_stored(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) -> redis::RedisResult<BTreeMap<String, HashMap<String, String>>> {
    let prefix = keys.sym_prefix();
    let names = tickshard::keys::scan_matching(conn, &format!("{prefix}*")).await?;
    let mut out = BTreeMap::new();
    for chunk in names.chunks(READ_CHUNK) {
        let mut pipe = redis::pipe();
        for n in chunk {
            pipe.hgetall(n);
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        out.extend(
            chunk
                .iter()
                .zip(hashes)
                .map(|(n, h)| (n[prefix.len()..].to_string(), h)),
        );
    }
    Ok(out)
}

/// Writes the hand-written fixture's state into a real Redis and checks
/// that the comparison finds it exact, then finds one changed field and
/// one extra symbol.
pub(crate) async fn self_check(url: &str) -> Result<(), String> {
    let text = include_str!("../fixtures/truth_small.json");
    let truth = GroundTruth::parse(text)?;
    let keys = Keys::new("selfcheck");
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let hset = |sym: &str, fields: Vec<(&'static str, String)>| {
        let key = keys.sym(&sym.parse::<Symbol>().unwrap());
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fields {
            cmd.arg(f).arg(v);
        }
        cmd
    };
    for (sym, t) in &truth.symbols {
        let fields = vec![
            ("count", t.count.to_string()),
            ("volume", t.volume.to_string()),
            ("last_seq", t.last_seq.to_string()),
            ("last_px", t.last_px.clone()),
            ("vwap_px", t.vwap_px.clone()),
            ("fence", "1".to_string()),
        ];
        let _: () = hset(sym, fields)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    let read = |mut c: redis::aio::MultiplexedConnection| {
        let keys = keys.clone();
        async move { read_stored(&mut c, &keys).await.map_err(|e| e.to_string()) }
    };
    let cmp = compare(&truth, &read(conn.clone()).await?);
    if !cmp.is_exact() || cmp.matched != truth.symbols.len() {
        return Err(format!("identical state not exact: {}", cmp.summary()));
    }
    let _: () = hset("AAPL", vec![("count", "4".to_string())])
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _: () = hset("ZZZ", vec![("count", "1".to_string())])
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let cmp = compare(&truth, &read(conn.clone()).await?);
    let one_field = cmp.mismatches.len() == 1 && cmp.mismatches[0].field == "count";
    if cmp.is_exact() || !one_field || cmp.extra != vec!["ZZZ".to_string()] {
        return Err(format!("differences not found: {}", cmp.summary()));
    }
    Ok(())
}
