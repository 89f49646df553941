//! Real processes for end-to-end tests: a `feed-sim`, `tickshard
//! processor`s, and the check that Redis holds exactly the feed's ground
//! truth.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::procs::Proc;
use super::wait_for;

/// The `feed-sim` binary built beside the test's `tickshard`.
pub fn feed_sim_bin() -> PathBuf {
    let tickshard = PathBuf::from(env!("CARGO_BIN_EXE_tickshard"));
    let bin = tickshard.with_file_name("feed-sim");
    assert!(
        bin.is_file(),
        "{} not built: run `cargo build --workspace` (scripts/test does)",
        bin.display()
    );
    bin
}

pub fn tickshard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tickshard"))
}

/// Arguments of one processor.
pub fn processor_args(
    redis: &str,
    feed: Option<&str>,
    id: &str,
    ns: &str,
    lease_ms: u64,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "processor",
        "--redis",
        redis,
        "--id",
        id,
        "--cluster",
        ns,
        "--lease-ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(lease_ms.to_string());
    args.extend(["--http".to_owned(), "127.0.0.1:0".to_owned()]);
    if let Some(feed) = feed {
        args.extend(["--feed".to_owned(), feed.to_owned()]);
    }
    args
}

/// One symbol of the feed's ground truth.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TruthSymbol {
    pub count: u64,
    pub volume: u64,
    pub last_seq: u64,
    pub last_px: String,
    pub vwap_px: String,
}

#[derive(Debug, Deserialize)]
pub struct GroundTruth {
    pub ticks: u64,
    pub symbols: BTreeMap<String, TruthSymbol>,
}

/// Waits for `--record` to be written, then reads it.
pub async fn read_truth(path: &Path, timeout: Duration) -> GroundTruth {
    let text = wait_for(timeout, "the feed's ground truth file", || {
        let t = std::fs::read_to_string(path).ok();
        async move { t }
    })
    .await;
    serde_json::from_str(&text).expect("ground truth parses")
}

/// What Redis holds for every symbol of `truth`, in the same shape.
pub async fn stored(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    truth: &GroundTruth,
) -> BTreeMap<String, Option<TruthSymbol>> {
    let mut pipe = redis::pipe();
    for sym in truth.symbols.keys() {
        pipe.hgetall(format!("{ns}:sym:{sym}"));
    }
    let maps: Vec<HashMap<String, String>> = pipe.query_async(conn).await.unwrap_or_default();
    truth
        .symbols
        .keys()
        .zip(maps)
        .map(|(sym, m)| {
            let parse = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok());
            let s = (|| {
                Some(TruthSymbol {
                    count: parse("count")?,
                    volume: parse("volume")?,
                    last_seq: parse("last_seq")?,
                    last_px: m.get("last_px")?.clone(),
                    vwap_px: m.get("vwap_px")?.clone(),
                })
            })();
            (sym.clone(), s)
        })
        .collect()
}

/// The symbols whose stored state differs from the truth (at most 5 shown).
pub fn mismatches(
    truth: &GroundTruth,
    stored: &BTreeMap<String, Option<TruthSymbol>>,
) -> Vec<String> {
    truth
        .symbols
        .iter()
        .filter(|(sym, want)| stored.get(*sym).and_then(|s| s.as_ref()) != Some(want))
        .map(|(sym, want)| format!("{sym}: want {want:?}, stored {:?}", stored.get(sym)))
        .collect()
}

/// Waits until every symbol's stored state equals the ground truth.
pub async fn assert_exact(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    truth: &GroundTruth,
    timeout: Duration,
    procs: &[&Proc],
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let now = stored(conn, ns, truth).await;
        let bad = mismatches(truth, &now);
        if bad.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            for p in procs {
                let log = p.log();
                let keep =
                    std::env::temp_dir().join(format!("tickshard-failed-{ns}-{}.log", p.name));
                let _ = std::fs::write(&keep, &log);
                eprintln!("full log of {} kept at {}", p.name, keep.display());
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {} (last lines) ----", p.name);
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
            panic!(
                "{} of {} symbols differ from the ground truth after {timeout:?}; first: {:#?}",
                bad.len(),
                truth.symbols.len(),
                &bad[..bad.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Spawns `feed-sim` with `args` (plus `--listen 127.0.0.1:{port}`); returns
/// the process and its `ws://` URL.
pub fn spawn_feed(args: &[&str]) -> (Proc, String) {
    let port = tickshard::redis_server::free_port().expect("free port");
    let mut all: Vec<String> = vec!["--listen".into(), format!("127.0.0.1:{port}")];
    all.extend(args.iter().map(|s| s.to_string()));
    let bin = feed_sim_bin();
    let proc = Proc::spawn(
        "feed-sim",
        bin.to_str().expect("utf-8 path"),
        &all,
        &[("RUST_LOG", "info")],
    );
    (proc, format!("ws://127.0.0.1:{port}"))
}

/// Spawns one processor.
pub fn spawn_processor(redis: &str, feed: Option<&str>, id: &str, ns: &str, lease_ms: u64) -> Proc {
    let bin = tickshard_bin();
    Proc::spawn(
        id,
        bin.to_str().expect("utf-8 path"),
        &processor_args(redis, feed, id, ns, lease_ms),
        &[("RUST_LOG", "info")],
    )
}

/// Waits until every one of `partitions` lease keys is held.
pub async fn wait_all_owned(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    partitions: u32,
    timeout: Duration,
) {
    let keys: Vec<String> = (0..partitions).map(|p| format!("{ns}:lease:{p}")).collect();
    super::wait_until(timeout, "every partition owned", || {
        let mut c = conn.clone();
        let keys = keys.clone();
        async move {
            let owners: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            owners.len() == keys.len() && owners.iter().all(Option::is_some)
        }
    })
    .await;
}

/// A plain HTTP GET: status code and body.
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_get_with(addr, path, "")
        .await
        .map(|(status, _, body)| (status, body))
}

/// An HTTP GET with extra header lines (each ending in `\r\n`): status
/// code, response head and body; `None` on any failure or after 5 s.
pub async fn http_get_with(addr: &str, path: &str, headers: &str) -> Option<(u16, String, String)> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8(buf).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, head.to_owned(), body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()
        .flatten()
}
