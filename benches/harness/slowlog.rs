//! Redis's `SLOWLOG` over a run: which commands of the processes under
//! test held the single-threaded Redis for longer than a threshold.
//!
//! [`arm`] sets the threshold and empties the log once the cluster is
//! ready; [`read`] collects the entries at the end. The bench's own
//! connection is named [`BENCH_CLIENT`] (its state reads after the run
//! can be slow by design), and its entries are left out.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;
use serde::Serialize;

/// `CLIENT SETNAME` of the bench's own connection.
pub(crate) const BENCH_CLIENT: &str = "tickshard-bench";

/// Commands slower than this are logged, µs (the goal's limit).
pub(crate) const THRESHOLD_US: u64 = 1_000;

/// Entries Redis keeps (and the bench reads); a full log is reported as
/// [`SlowlogFigures::capped`].
const MAX_LEN: u64 = 4_096;

/// The slow commands of one run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct SlowlogFigures {
    /// The threshold in µs.
    pub(crate) threshold_us: u64,
    /// Entries of the processes under test (the log holds at most
    /// `MAX_LEN`: `capped` says it was full).
    pub(crate) total: u64,
    /// The log was full: there may have been more.
    pub(crate) capped: bool,
    /// The slowest entry: command name and µs.
    pub(crate) slowest: Option<(String, u64)>,
    /// Entries per command name.
    pub(crate) by_command: BTreeMap<String, u64>,
}

/// Names the bench's connection, sets the threshold and empties the log.
pub(crate) async fn arm(conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("CLIENT")
        .arg("SETNAME")
        .arg(BENCH_CLIENT)
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(THRESHOLD_US)
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg(MAX_LEN)
        .ignore()
        .cmd("SLOWLOG")
        .arg("RESET")
        .ignore()
        .query_async(conn)
        .await
}

/// One `SLOWLOG GET` entry: id, unix time, µs, arguments, client address,
/// client name.
type Entry = (i64, i64, u64, Vec<redis::Value>, String, String);

/// The entries logged since [`arm`], without the bench's own.
pub(crate) async fn read(conn: &mut MultiplexedConnection) -> redis::RedisResult<SlowlogFigures> {
    let entries: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(MAX_LEN)
        .query_async(conn)
        .await?;
    Ok(figures(&entries, entries.len() as u64 >= MAX_LEN))
}

fn figures(entries: &[Entry], capped: bool) -> SlowlogFigures {
    let mut out = SlowlogFigures {
        threshold_us: THRESHOLD_US,
        capped,
        ..SlowlogFigures::default()
    };
    for (_, _, us, args, _, client) in entries {
        if client == BENCH_CLIENT {
            continue;
        }
        let name = match args.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).to_uppercase(),
            Some(redis::Value::SimpleString(s)) => s.to_uppercase(),
            _ => "?".to_string(),
        };
        out.total += 1;
        *out.by_command.entry(name.clone()).or_default() += 1;
        if out.slowest.as_ref().is_none_or(|(_, max)| us > max) {
            out.slowest = Some((name, *us));
        }
    }
    out
}

/// Self-check: the bench's entries are left out, the slowest is found.
pub(crate) fn self_check() -> Result<(), String> {
    let arg = |s: &str| vec![redis::Value::BulkString(s.as_bytes().to_vec())];
    let entries: Vec<Entry> = vec![
        (3, 0, 1_500, arg("evalsha"), "a".into(), String::new()),
        (2, 0, 9_000, arg("hgetall"), "b".into(), BENCH_CLIENT.into()),
        (1, 0, 2_500, arg("publish"), "c".into(), String::new()),
    ];
    let f = figures(&entries, false);
    let want_slowest = Some(("PUBLISH".to_string(), 2_500));
    if f.total != 2 || f.slowest != want_slowest || f.by_command.get("EVALSHA") != Some(&1) {
        return Err(format!("slow log figures wrong: {f:?}"));
    }
    Ok(())
}
