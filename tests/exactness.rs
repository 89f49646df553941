//! Exactness end to end: real redis-server, real `feed-sim`, real
//! processor processes. After the feed stops and the cluster settles, every
//! `{ns}:*:sym:*` hash equals the feed's `--record` ground truth, whatever the
//! distribution mode and whatever happens to the processors mid-stream.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::fleet::{
    assert_exact, read_truth, spawn_feed_with, spawn_processor, spawn_tickshard, wait_all_owned,
    FeedArgs, ProcessorArgs,
};
use support::procs::Proc;

const SETTLE: Duration = Duration::from_secs(60);

struct Run {
    redis: support::RedisServer,
    conn: tickshard::cluster::RedisConn,
    feed: Proc,
    feed_url: String,
    procs: Vec<Proc>,
    truth_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    ns: String,
}

impl Run {
    /// Redis, `n` processors settled, then the feed with `feed_args`.
    async fn start(ns: &str, n: usize, feed_args: &[&str]) -> Run {
        Self::start_with(ns, n, feed_args, &[], |_| {}).await
    }

    /// As [`Run::start`], with `env` for the processors, and `before_feed`
    /// run once the cluster is settled, just before the feed starts.
    async fn start_with(
        ns: &str,
        n: usize,
        feed_args: &[&str],
        env: &[(&str, &str)],
        before_feed: impl FnOnce(&support::RedisServer),
    ) -> Run {
        let redis = support::redis();
        let mut conn = support::connect(&redis).await;
        let dir = tempfile::tempdir().unwrap();
        let truth_path = dir.path().join("truth.json");
        let url = redis.url();
        // Processors first, so the feed's first batches find a settled cluster.
        let port = tickshard::redis_server::free_port().unwrap();
        let feed_url = format!("ws://127.0.0.1:{port}");
        let procs: Vec<Proc> = (1..=n)
            .map(|i| {
                let id = format!("p{i}");
                let args = ProcessorArgs::new(&url, &id)
                    .cluster(ns)
                    .lease_ms(2000)
                    .feed(&feed_url);
                spawn_tickshard(&id, args, env)
            })
            .collect();
        wait_all_owned(&mut conn, ns, 64, Duration::from_secs(10)).await;
        wait_balanced(&conn, ns, n).await;
        before_feed(&redis);
        let feed = spawn_feed_with(
            FeedArgs::new(&format!("127.0.0.1:{port}"))
                .raw(feed_args)
                .record(&truth_path)
                .owner_aware(&url, ns),
        );
        Run {
            redis,
            conn,
            feed,
            feed_url,
            procs,
            truth_path,
            _dir: dir,
            ns: ns.to_owned(),
        }
    }

    async fn assert_exact(&mut self) -> u64 {
        let truth = read_truth(&self.truth_path, Duration::from_secs(120)).await;
        let mut all: Vec<&Proc> = self.procs.iter().collect();
        all.push(&self.feed);
        assert_exact(&mut self.conn, &self.ns, &truth, SETTLE, &all).await;
        truth.ticks
    }
}

/// Waits until the `n` processors hold ⌊64/n⌋ or ⌈64/n⌉ partitions each:
/// the assignment has settled and no lease moves until something changes.
async fn wait_balanced(conn: &tickshard::cluster::RedisConn, ns: &str, n: usize) {
    support::wait_until(Duration::from_secs(20), "a balanced assignment", || {
        let conn = conn.clone();
        async move {
            let owners = support::chaos::lease_owners(conn, ns).await;
            let mut per: std::collections::BTreeMap<String, usize> = Default::default();
            for o in owners.into_iter().flatten() {
                *per.entry(o).or_default() += 1;
            }
            let (lo, hi) = (64 / n, 64_usize.div_ceil(n));
            per.len() == n && per.values().all(|c| (lo..=hi).contains(c))
        }
    })
    .await;
}

async fn total_counter(procs: &[Proc], name: &str) -> u64 {
    let mut sum = 0;
    for p in procs {
        let addr = p.http_addr(Duration::from_secs(5)).await;
        if let Some((_, body)) = support::fleet::http_get(&addr, "/metrics").await {
            sum += tickshard_testkit::exposition::counter(&body, name, &[]);
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_million_ticks_are_exact_and_mostly_forwarded() {
    let started = Instant::now();
    let mut run = Run::start(
        "rr",
        3,
        &[
            "--mode",
            "round-robin",
            "--symbols",
            "500",
            "--ticks",
            "1000000",
            "--seed",
            "7",
        ],
    )
    .await;
    let ticks = run.assert_exact().await;
    assert_eq!(ticks, 1_000_000);
    eprintln!("round-robin: 1M ticks exact after {:?}", started.elapsed());
    // About (N-1)/N of the ticks reach a non-owner and are forwarded.
    let forwarded = total_counter(&run.procs, "tickshard_forwarded_out_total").await;
    let ratio = forwarded as f64 / ticks as f64;
    assert!((0.5..0.8).contains(&ratio), "forwarded ratio {ratio}");
    let _ = &run.redis;
}

/// Sustained overload: an unthrottled feed of 5M ticks against three
/// processors on a 2-core machine is far more than they can apply as it
/// arrives. Flow control must slow the intake instead of dropping: no tick
/// is dropped, no lease moves while feeding, and the result is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unthrottled_overload_drops_nothing_and_moves_no_lease() {
    let mut run = Run::start(
        "overload",
        3,
        &[
            "--mode",
            "round-robin",
            "--symbols",
            "500",
            "--ticks",
            "5000000",
            "--seed",
            "12",
        ],
    )
    .await;
    // The assignment settled before the feed started: from here on, no
    // lease may move.
    let acquired_before = total_counter(&run.procs, "tickshard_leases_acquired_total").await;
    assert_eq!(run.assert_exact().await, 5_000_000);
    let procs = &run.procs;
    assert_eq!(total_counter(procs, "tickshard_dropped_total").await, 0);
    assert_eq!(
        total_counter(procs, "tickshard_forward_undelivered_total").await,
        0
    );
    assert_eq!(
        total_counter(procs, "tickshard_leases_acquired_total").await,
        acquired_before,
        "a lease moved while feeding"
    );
    assert_eq!(total_counter(procs, "tickshard_leases_lost_total").await, 0);
    assert_eq!(
        total_counter(procs, "tickshard_gaps_skipped_total").await,
        0
    );
    let paused = total_counter(procs, "tickshard_intake_paused_credit_total").await
        + total_counter(procs, "tickshard_intake_paused_held_total").await;
    eprintln!(
        "overload: exact; intake paused {paused} times; duplicates {}",
        total_counter(procs, "tickshard_duplicates_total").await
    );
}

/// Every flush script writes at most `--flush-chunk` symbols: read off
/// Redis's own MONITOR stream while 500 symbols are flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_flush_script_writes_more_than_the_chunk() {
    // Below the default, so the option itself is what cuts the flushes.
    const CHUNK: usize = 5;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut run = Run::start_with(
        "chunk",
        2,
        &[
            "--mode",
            "round-robin",
            "--symbols",
            "500",
            "--ticks",
            "200000",
            "--rate",
            "50000",
            "--seed",
            "13",
        ],
        &[("TICKSHARD_FLUSH_CHUNK", &CHUNK.to_string())],
        |redis| {
            let _ = tx.send(redis.url());
        },
    )
    .await;
    let url = rx.recv().unwrap();
    let monitor = redis::Client::open(url)
        .unwrap()
        .get_async_monitor()
        .await
        .unwrap();
    let sizes = tokio::spawn(async move {
        let mut sizes = Vec::new();
        let mut lines = monitor.into_on_message::<String>();
        while let Some(line) = lines.next().await {
            if let Some(n) = flush_script_symbols(&line) {
                sizes.push(n);
            }
        }
        sizes
    });
    assert_eq!(run.assert_exact().await, 200_000);
    drop(run);
    let sizes = tokio::time::timeout(Duration::from_secs(10), sizes)
        .await
        .expect("the monitor stream ends with its server")
        .unwrap();
    assert!(!sizes.is_empty(), "no flush script seen");
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(largest <= CHUNK, "a flush script wrote {largest} symbols");
    assert_eq!(largest, CHUNK, "flushes were never cut at the chunk");
}

/// Symbols written by the flush script in one MONITOR line, if it is one:
/// `... "EVALSHA" "<sha>" "<numkeys>" "<ns>:{p<p>}:lease:<p>"
/// "<ns>:{p<p>}:psyms:<p>" ...`, then one `:sym:` key per symbol (and the
/// output streams) among its keys.
fn flush_script_symbols(line: &str) -> Option<usize> {
    let args: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    let at = args
        .iter()
        .position(|a| a.eq_ignore_ascii_case("evalsha"))?;
    let numkeys: usize = args.get(at + 2)?.parse().ok()?;
    let keys = args.get(at + 3..at + 3 + numkeys)?;
    let flush = keys.first()?.contains(":lease:") && keys.get(1)?.contains(":psyms:");
    flush.then(|| keys.iter().filter(|k| k.contains(":sym:")).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_mode_is_exact() {
    let mut run = Run::start(
        "rnd",
        3,
        &[
            "--mode",
            "random",
            "--symbols",
            "500",
            "--ticks",
            "1000000",
            "--seed",
            "8",
        ],
    )
    .await;
    assert_eq!(run.assert_exact().await, 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_aware_mode_is_exact_and_rarely_forwards() {
    let mut run = Run::start(
        "own",
        3,
        &[
            "--mode",
            "owner-aware",
            "--symbols",
            "500",
            "--ticks",
            "1000000",
            "--seed",
            "9",
        ],
    )
    .await;
    let ticks = run.assert_exact().await;
    let forwarded = total_counter(&run.procs, "tickshard_forwarded_out_total").await;
    assert!(
        forwarded * 20 < ticks,
        "owner-aware forwarded {forwarded} of {ticks}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_es_trades_are_exact() {
    let data = support::es_trades_file();
    let mut run = Run::start("es", 2, &["--input", data, "--mode", "round-robin"]).await;
    assert_eq!(run.assert_exact().await, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_mid_stream_stays_exact() {
    let mut run = Run::start(
        "churn",
        3,
        &[
            "--mode",
            "round-robin",
            "--symbols",
            "500",
            "--ticks",
            "600000",
            "--rate",
            "100000",
            "--seed",
            "10",
        ],
    )
    .await;
    let url = run.redis.url();
    let feed = run.feed_url.clone();
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the stream run (not a synchronisation)
                                                           // SIGKILL p1 and restart it under the same id.
    run.procs[0].kill9();
    run.procs[0].wait_exit(Duration::from_secs(5));
    run.procs[0] = spawn_processor(&url, Some(&feed), "p1", "churn", 2000);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // p4 joins.
    run.procs
        .push(spawn_processor(&url, Some(&feed), "p4", "churn", 2000));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // p2 leaves gracefully.
    run.procs[1].term();
    assert!(
        run.procs[1].wait_exit(Duration::from_secs(15)).is_some(),
        "p2 did not stop on SIGTERM"
    );
    assert_eq!(run.assert_exact().await, 600_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_is_fenced_and_results_stay_exact() {
    let mut run = Run::start(
        "fence",
        3,
        &[
            "--mode",
            "round-robin",
            "--symbols",
            "300",
            "--ticks",
            "500000",
            "--rate",
            "100000",
            "--seed",
            "11",
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await; // mid-stream (not a synchronisation)
    run.procs[2].stop();
    tokio::time::sleep(Duration::from_millis(6500)).await; // 3x the lease TTL: the pause under test
    run.procs[2].cont();
    assert_eq!(run.assert_exact().await, 500_000);
}
