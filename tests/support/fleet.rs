//! Real processes for end-to-end tests: a `feed-sim`, `tickshard
//! processor`s, and the check that Redis holds exactly the feed's ground
//! truth.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tickshard::keys::Keys;
use tickshard::truth::read_stored;
pub use tickshard_testkit::cmdline::{FeedArgs, ProcessorArgs};
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

/// `target/<profile>/examples/<name>`, built beside the test's binaries.
pub fn example_bin(name: &str) -> PathBuf {
    let bin = tickshard_bin().with_file_name("examples").join(name);
    assert!(
        bin.is_file(),
        "{} not built: run `cargo build --workspace --examples` (scripts/test does)",
        bin.display()
    );
    bin
}

pub use tickshard::truth::TruthRecord;

/// Waits for `--record` to be written, then reads it.
pub async fn read_truth(path: &Path, timeout: Duration) -> TruthRecord {
    wait_for(timeout, "the feed's ground truth file", || {
        let t = TruthRecord::read_if_complete(path);
        async move { t }
    })
    .await
}

/// Waits until the store under `ns` equals `truth` exactly: every recorded
/// symbol field for field, and no symbol the truth lacks. On timeout, shows
/// the last lines of `procs` (and keeps their full logs) and the
/// differences.
pub async fn assert_exact(
    conn: &mut tickshard::cluster::RedisConn,
    ns: &str,
    truth: &TruthRecord,
    timeout: Duration,
    procs: &[&Proc],
) {
    let keys = Keys::new(ns);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let summary = match read_stored(conn, &keys).await {
            Ok(stored) => {
                let cmp = truth.compare(&stored);
                if cmp.is_exact() {
                    return;
                }
                cmp.summary()
            }
            Err(e) => format!("reading the store: {e}"),
        };
        if std::time::Instant::now() >= deadline {
            for p in procs {
                p.show_log(&format!("tickshard-failed-{ns}"));
            }
            panic!(
                "the store differs from the ground truth ({} symbols) after {timeout:?}: {summary}",
                truth.symbols.len()
            );
        }
        // Each look reads every symbol: not more often than needed.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Spawns `feed-sim` with `args` (plus `--listen 127.0.0.1:{port}`); returns
/// the process and its `ws://` URL.
pub fn spawn_feed(args: &[&str]) -> (Proc, String) {
    let port = tickshard::redis_server::free_port().expect("free port");
    let args = FeedArgs::new(&format!("127.0.0.1:{port}")).raw(args);
    (spawn_feed_with(args), format!("ws://127.0.0.1:{port}"))
}

/// Spawns `feed-sim` with exactly `args`.
pub fn spawn_feed_with(args: FeedArgs) -> Proc {
    Proc::spawn(
        "feed-sim",
        feed_sim_bin(),
        &args.build(),
        &[("RUST_LOG", "info")],
    )
}

/// Spawns one processor in namespace `ns`.
pub fn spawn_processor(redis: &str, feed: Option<&str>, id: &str, ns: &str, lease_ms: u64) -> Proc {
    let mut args = ProcessorArgs::new(redis, id).cluster(ns).lease_ms(lease_ms);
    if let Some(feed) = feed {
        args = args.feed(feed);
    }
    spawn_tickshard(id, args, &[])
}

/// Spawns `tickshard` with `args` and `envs` (`RUST_LOG=info` unless
/// `envs` sets it).
pub fn spawn_tickshard(name: &str, args: ProcessorArgs, envs: &[(&str, &str)]) -> Proc {
    let mut envs = envs.to_vec();
    if !envs.iter().any(|(k, _)| *k == "RUST_LOG") {
        envs.push(("RUST_LOG", "info"));
    }
    Proc::spawn(name, tickshard_bin(), &args.build(), &envs)
}

/// Waits until every one of `partitions` lease keys is held.
pub async fn wait_all_owned(
    conn: &mut tickshard::cluster::RedisConn,
    ns: &str,
    partitions: u32,
    timeout: Duration,
) {
    let keys = Keys::new(ns).all_leases(partitions);
    super::wait_until(timeout, "every partition owned", || {
        let c = conn.clone();
        let keys = keys.clone();
        async move {
            let owners: Vec<Option<String>> = c.mget(&keys).await.unwrap_or_default();
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
    http_request(addr, "GET", path, headers, "").await
}

/// A plain HTTP POST of a JSON body: status code and body.
pub async fn http_post(addr: &str, path: &str, json: &str) -> Option<(u16, String)> {
    http_request(
        addr,
        "POST",
        path,
        "Content-Type: application/json\r\n",
        json,
    )
    .await
    .map(|(status, _, body)| (status, body))
}

/// One HTTP/1.1 request with extra header lines (each ending in `\r\n`)
/// and a body: status code, response head and body; `None` on any failure
/// or after 5 s.
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Option<(u16, String, String)> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let length = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Length: {}\r\n", body.len())
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}{length}\r\n{body}"
        );
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
