//! What Redis carries per master when tickshard runs on a Redis Cluster
//! (own harness, `cargo bench --bench redis_cluster`).
//!
//! For 1 and for 3 masters (no replicas, so every figure is the masters'
//! own work), interleaved: a private Redis Cluster
//! (`tickshard::redis_cluster`), 3 `tickshard processor`s given every node
//! as seeds, and `feed-sim` in round-robin mode at a fixed rate for a
//! fixed time (default 250,000 ticks/s for 30 s: long enough to be past
//! every buffer). A run counts only when every stored symbol then equals
//! the feed's ground truth. Reported per master, as deltas over the run
//! from its own `INFO`: CPU seconds (`used_cpu_sys` + `used_cpu_user`),
//! network bytes in and out, `SPUBLISH` and `EVALSHA` calls; and the
//! pub/sub bytes it carried: the inbox payload bytes the processors
//! received (`tickshard_cluster_inbox_bytes_total`), each inbox counted on
//! the master serving its slot. Plus the per-second applied rates over
//! the processors. These are the inputs of the capacity estimate in
//! BENCHMARKS.md.
//!
//! Options (environment): `TICKSHARD_BENCH_RATE` (ticks/s),
//! `TICKSHARD_BENCH_SECS` (seconds of feeding), `TICKSHARD_BENCH_REPEAT`
//! (runs per master count, default 1), `TICKSHARD_BENCH_QUICK=1` (5 s at
//! 50,000/s, 1 and 3 masters: a check that it works, figures not
//! claimed). Output: a table on stdout and one JSON line per run in
//! `target/bench-results/redis_cluster.jsonl` (rewritten each
//! invocation). Binaries come from the bench's own profile directory:
//! `cargo build --release --workspace --bins` first.
#![allow(clippy::unwrap_used)]

mod common;
#[allow(dead_code)]
#[path = "harness/http.rs"]
mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use tickshard::cluster::{ConnOptions, RedisConn};
use tickshard::keys::Keys;
use tickshard::redis_cluster::RedisCluster;
use tickshard::redis_conn::RedisConfig;
use tickshard::redis_server::free_port;
use tickshard::truth::{read_stored, TruthRecord};
use tickshard_testkit::exposition::counter;

const PROCESSORS: usize = 3;
const SYMBOLS: usize = 500;
const PARTITIONS: u32 = tickshard::partition::DEFAULT_PARTITIONS;
const NAMESPACE: &str = tickshard::keys::DEFAULT_NAMESPACE;

/// A child process killed when dropped.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Kid {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    Kid(child)
}

/// One master's counters (from its `INFO`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct MasterCounters {
    cpu_s: f64,
    net_in: u64,
    net_out: u64,
    spublish: u64,
    evalsha: u64,
}

fn info_value<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    tickshard::cluster::eviction::info_field(info, name)
}

/// `calls=` of one `cmdstat_<name>` line.
fn calls(info: &str, name: &str) -> u64 {
    info_value(info, &format!("cmdstat_{name}"))
        .and_then(|v| v.split(',').find_map(|f| f.strip_prefix("calls=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn read_counters(url: &str) -> MasterCounters {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("stats")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let f = |n: &str| {
        info_value(&info, n)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let u = |n: &str| {
        info_value(&info, n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    MasterCounters {
        cpu_s: f("used_cpu_sys") + f("used_cpu_user"),
        net_in: u("total_net_input_bytes"),
        net_out: u("total_net_output_bytes"),
        spublish: calls(&info, "spublish"),
        evalsha: calls(&info, "evalsha"),
    }
}

/// What one master did during a run.
#[derive(Debug, Clone, Serialize)]
struct MasterReport {
    port: u16,
    /// Processors whose inbox is a shard channel on this master.
    inboxes: Vec<String>,
    cpu_s: f64,
    /// Share of one core over the feeding time.
    cpu_share: f64,
    net_in_bytes: u64,
    net_out_bytes: u64,
    /// Inbox payload bytes received from this master's shard channels.
    pubsub_bytes: u64,
    spublish_calls: u64,
    evalsha_calls: u64,
}

#[derive(Debug, Clone, Serialize)]
struct RunReport {
    kind: &'static str,
    masters: usize,
    run: usize,
    processors: usize,
    symbols: usize,
    rate: u64,
    secs: f64,
    ticks: u64,
    exact: bool,
    /// Ticks applied per second over the processors, each second of feeding.
    applied_per_s: Vec<u64>,
    /// Ticks forwarded between instances (received on inboxes).
    forwarded: u64,
    per_master: Vec<MasterReport>,
}

/// Sum of a counter over the processors' `/metrics`.
async fn sum_counter(https: &[String], name: &str) -> u64 {
    let mut sum = 0;
    for h in https {
        if let Ok((200, body)) = http::get(h, "/metrics", Duration::from_secs(2)).await {
            sum += counter(&body, name, &[]);
        }
    }
    sum
}

async fn run_once(masters: usize, run: usize, rate: u64, secs: f64, bins: &Path) -> RunReport {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(masters, 0)
        .unwrap_or_else(|e| panic!("this bench needs redis-server and redis-cli: {e}"));
    let seeds = cluster.seed_urls();
    let conn = RedisConn::connect(&RedisConfig::new(&seeds), &ConnOptions::default())
        .await
        .unwrap();
    let feed_port = free_port().unwrap();
    let mut kids = Vec::new();
    let mut https = Vec::new();
    for i in 1..=PROCESSORS {
        let http = format!("127.0.0.1:{}", free_port().unwrap());
        let args = [
            "processor",
            "--redis",
            &seeds,
            "--feed",
            &format!("ws://127.0.0.1:{feed_port}"),
            "--id",
            &format!("p{i}"),
            "--http",
            &http,
        ]
        .map(str::to_owned);
        kids.push(spawn(
            &format!("p{i}"),
            &bins.join("tickshard"),
            &args,
            dir.path(),
        ));
        https.push(http);
    }
    let leases = Keys::new(NAMESPACE).all_leases(PARTITIONS);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owners: Vec<Option<String>> = conn.mget(&leases).await.unwrap_or_default();
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for o in owners.iter().flatten() {
            *per.entry(o.rsplit_once(':').map_or(o.clone(), |(i, _)| i.to_owned()))
                .or_default() += 1;
        }
        let balanced = owners.len() == leases.len()
            && owners.iter().all(Option::is_some)
            && per.len() == PROCESSORS
            && per
                .values()
                .all(|n| *n + 1 >= PARTITIONS as usize / PROCESSORS);
        if balanced {
            break;
        }
        assert!(Instant::now() < deadline, "the processors did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let master_nodes = cluster.masters().unwrap();
    let before: Vec<MasterCounters> = master_nodes
        .iter()
        .map(|&m| read_counters(&cluster.nodes()[m].url()))
        .collect();
    let inbox_bytes_before: Vec<u64> = {
        let mut v = Vec::new();
        for h in &https {
            v.push(
                sum_counter(
                    std::slice::from_ref(h),
                    "tickshard_cluster_inbox_bytes_total",
                )
                .await,
            );
        }
        v
    };
    let truth_path = dir.path().join("truth.json");
    let feed_args = [
        "--listen".to_owned(),
        format!("127.0.0.1:{feed_port}"),
        "--mode".to_owned(),
        "round-robin".to_owned(),
        "--symbols".to_owned(),
        SYMBOLS.to_string(),
        "--rate".to_owned(),
        rate.to_string(),
        "--duration".to_owned(),
        secs.to_string(),
        "--record".to_owned(),
        truth_path.display().to_string(),
        "--wait-clients".to_owned(),
        PROCESSORS.to_string(),
    ];
    let feed = spawn("feed", &bins.join("feed-sim"), &feed_args, dir.path());
    let started = Instant::now();
    let mut applied_per_s = Vec::new();
    let mut last = sum_counter(&https, "tickshard_applied_total").await;
    let mut next = started + Duration::from_secs(1);
    let truth = loop {
        tokio::time::sleep_until(next.into()).await;
        next += Duration::from_secs(1);
        let now = sum_counter(&https, "tickshard_applied_total").await;
        applied_per_s.push(now.saturating_sub(last));
        last = now;
        if let Some(t) = TruthRecord::read_if_complete(&truth_path) {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs_f64(secs * 3.0 + 30.0),
            "the feed did not finish"
        );
    };
    let fed_s = started.elapsed().as_secs_f64();
    let after: Vec<MasterCounters> = master_nodes
        .iter()
        .map(|&m| read_counters(&cluster.nodes()[m].url()))
        .collect();
    // Settle: the run counts only when the store equals the truth.
    let mut reader = conn.clone();
    let settle = Instant::now() + Duration::from_secs(60);
    let exact = loop {
        let stored = read_stored(&mut reader, &Keys::new(NAMESPACE))
            .await
            .unwrap();
        let cmp = truth.compare(&stored);
        if cmp.is_exact() {
            break true;
        }
        if Instant::now() >= settle {
            eprintln!("not exact: {}", cmp.summary());
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let keys = Keys::new(NAMESPACE);
    let mut per_master: Vec<MasterReport> = master_nodes
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(&m, (b, a))| MasterReport {
            port: cluster.nodes()[m].port(),
            inboxes: Vec::new(),
            cpu_s: a.cpu_s - b.cpu_s,
            cpu_share: (a.cpu_s - b.cpu_s) / fed_s,
            net_in_bytes: a.net_in - b.net_in,
            net_out_bytes: a.net_out - b.net_out,
            pubsub_bytes: 0,
            spublish_calls: a.spublish - b.spublish,
            evalsha_calls: a.evalsha - b.evalsha,
        })
        .collect();
    for (i, h) in https.iter().enumerate() {
        let id: tickshard::tick::InstanceId = format!("p{}", i + 1).parse().unwrap();
        let inbox = keys.cluster().inbox(&id);
        let slot = cluster.slot_of(&inbox).unwrap();
        let Some(m) = cluster.master_of(slot).unwrap() else {
            continue;
        };
        let port = cluster.nodes()[m].port();
        let bytes = sum_counter(
            std::slice::from_ref(h),
            "tickshard_cluster_inbox_bytes_total",
        )
        .await
        .saturating_sub(inbox_bytes_before[i]);
        if let Some(r) = per_master.iter_mut().find(|r| r.port == port) {
            r.inboxes.push(id.to_string());
            r.pubsub_bytes += bytes;
        }
    }
    let forwarded = sum_counter(&https, "tickshard_forwarded_in_total").await;
    drop(feed);
    drop(kids);
    RunReport {
        kind: "redis_cluster",
        masters,
        run,
        processors: PROCESSORS,
        symbols: SYMBOLS,
        rate,
        secs: fed_s,
        ticks: truth.ticks,
        exact,
        applied_per_s,
        forwarded,
        per_master,
    }
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn print(r: &RunReport) {
    let mid: Vec<u64> = r
        .applied_per_s
        .iter()
        .copied()
        .skip(1)
        .take(r.applied_per_s.len().saturating_sub(2))
        .collect();
    let (lo, hi) = (
        mid.iter().min().copied().unwrap_or(0),
        mid.iter().max().copied().unwrap_or(0),
    );
    println!(
        "masters={} run={} ticks={} in {:.1}s exact={} applied/s {lo}..{hi} (whole seconds, first and last left out) forwarded={}",
        r.masters, r.run, r.ticks, r.secs, r.exact, r.forwarded
    );
    for m in &r.per_master {
        println!(
            "  master :{} inboxes {:?}: cpu {:.2}s ({:.0}% of a core) net in {:.1} MB out {:.1} MB pub/sub {:.1} MB spublish {} evalsha {}",
            m.port,
            m.inboxes,
            m.cpu_s,
            m.cpu_share * 100.0,
            m.net_in_bytes as f64 / 1e6,
            m.net_out_bytes as f64 / 1e6,
            m.pubsub_bytes as f64 / 1e6,
            m.spublish_calls,
            m.evalsha_calls
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from argv.
    let quick = std::env::var("TICKSHARD_BENCH_QUICK").is_ok_and(|v| v == "1")
        || std::env::args().any(|a| a == "--quick");
    let rate: u64 = env_num("TICKSHARD_BENCH_RATE").unwrap_or(if quick { 50_000 } else { 250_000 });
    let secs: f64 = env_num("TICKSHARD_BENCH_SECS").unwrap_or(if quick { 5.0 } else { 30.0 });
    let repeat: usize = env_num("TICKSHARD_BENCH_REPEAT").unwrap_or(1);
    let bins: PathBuf = common::profile_dir();
    for b in ["tickshard", "feed-sim"] {
        assert!(
            bins.join(b).is_file(),
            "{} not found: build the binaries first (`cargo build --release --workspace --bins`)",
            bins.join(b).display()
        );
    }
    let out = common::results_dir().join("redis_cluster.jsonl");
    let _ = std::fs::remove_file(&out);
    let rt = common::runtime(2);
    let mut failed = false;
    for run in 1..=repeat {
        for masters in [1, 3] {
            let r = rt.block_on(run_once(masters, run, rate, secs, &bins));
            print(&r);
            failed |= !r.exact;
            common::append_result("redis_cluster", &r);
        }
    }
    println!("results: {}", out.display());
    if failed {
        eprintln!("a run did not end exact");
        std::process::exit(1);
    }
}
