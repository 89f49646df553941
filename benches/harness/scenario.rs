//! One measured cluster run: a private redis-server, `feed-sim` and N
//! `tickshard processor` processes on loopback; drive M ticks, wait until
//! the stored state equals the feed's ground truth exactly, then report
//! throughput, CPU per tick over every process (Redis included), peak RSS,
//! and latency percentiles from the merged `{ns}:stats` histograms.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tickshard::keys::Keys;
use tickshard::redis_server::RedisServer;
use tickshard::stats::LatencyKind;
use tokio_util::sync::CancellationToken;

use super::cpu::{self, CpuSample};
use super::procs::{self, Binaries, FeedSpec, Proc};
use super::stats::{self, StatsCollector};
use super::truth::{self, GroundTruth};
use crate::common::Percentiles;

/// Cluster namespace of every bench run: the default one, so `feed-sim
/// --mode owner-aware` finds the leases without extra options (each run
/// has its own private Redis, so runs never share keys).
pub(crate) const NAMESPACE: &str = tickshard::keys::DEFAULT_NAMESPACE;
/// Partitions of a default cluster (all must be leased before we measure).
pub(crate) const PARTITIONS: usize = tickshard::partition::DEFAULT_PARTITIONS as usize;

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Scenario {
    /// `round-robin` or `owner-aware`.
    pub(crate) mode: String,
    pub(crate) processors: usize,
    pub(crate) symbols: usize,
    pub(crate) ticks: u64,
    /// Feed rate in ticks/s; `None` = unthrottled.
    pub(crate) rate: Option<u64>,
}

impl Scenario {
    pub(crate) fn label(&self) -> String {
        let rate = self.rate.map_or("max".to_string(), |r| format!("{r}/s"));
        format!(
            "{} N={} symbols={} ticks={} rate={rate}",
            self.mode, self.processors, self.symbols, self.ticks
        )
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// Stored state equals the ground truth: the figures count.
    Exact,
    /// The state never matched within the deadline: figures do not count.
    Inexact,
    /// A process failed or a step timed out.
    Failed,
    /// Not run (binaries missing, or an earlier run showed it cannot work).
    Skipped,
}

/// One line of `cluster.jsonl` for a scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioResult {
    pub(crate) kind: &'static str,
    pub(crate) scenario: Scenario,
    pub(crate) status: Status,
    pub(crate) reason: Option<String>,
    /// Seconds from cluster ready (or the first stats interval in which
    /// ticks were applied, if earlier) to stored state exact.
    pub(crate) elapsed_s: f64,
    /// `ticks / elapsed_s`: includes the final flush and settle.
    pub(crate) ticks_per_s: f64,
    /// Median of the per-second applied rates from the stats counters.
    pub(crate) sustained_ticks_per_s: f64,
    /// CPU seconds per process name over the run.
    pub(crate) cpu_s: BTreeMap<String, f64>,
    /// Sum of `cpu_s` / ticks, in nanoseconds.
    pub(crate) cpu_ns_per_tick: f64,
    /// Peak RSS per process, MiB.
    pub(crate) rss_peak_mib: BTreeMap<String, f64>,
    pub(crate) e2e_us: Percentiles,
    pub(crate) forward_us: Percentiles,
    pub(crate) flush_us: Percentiles,
    /// Stats messages received.
    pub(crate) stats_messages: usize,
    /// The processors' counters at the end (summed; zeros left out):
    /// forwarded, gaps, replays... say why a run was slow.
    pub(crate) counters: BTreeMap<String, u64>,
    /// The binaries came from `$TICKSHARD_BENCH_BIN_DIR` (e.g. the
    /// stand-ins that test the harness): not a measurement of tickshard.
    pub(crate) stand_ins: bool,
}

/// The real S&P 500 universe shipped with feed-sim, when present (it is,
/// in a checkout); the stand-in binaries do not take it.
fn universe() -> Option<std::path::PathBuf> {
    if stand_ins() {
        return None;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("feed-sim/data/sp500_universe.csv");
    path.is_file().then_some(path)
}

fn stand_ins() -> bool {
    std::env::var_os(super::procs::BIN_DIR_ENV).is_some()
}

impl ScenarioResult {
    pub(crate) fn not_run(scenario: &Scenario, status: Status, reason: String) -> Self {
        Self {
            kind: "cluster",
            scenario: scenario.clone(),
            status,
            reason: Some(reason),
            elapsed_s: 0.0,
            ticks_per_s: 0.0,
            sustained_ticks_per_s: 0.0,
            cpu_s: BTreeMap::new(),
            cpu_ns_per_tick: 0.0,
            rss_peak_mib: BTreeMap::new(),
            e2e_us: Percentiles::default(),
            forward_us: Percentiles::default(),
            flush_us: Percentiles::default(),
            stats_messages: 0,
            counters: BTreeMap::new(),
            stand_ins: stand_ins(),
        }
    }
}

/// Polls `check` every 50 ms until it returns `Ok(Some(v))`, an error, or
/// the deadline passes; `alive` is consulted each round (a dead child ends
/// the wait with its reason).
async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    procs: &mut [Proc],
    mut check: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        for p in procs.iter_mut() {
            if let Some(reason) = p.exited() {
                return Err(format!("while waiting for {what}: {reason}"));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs one scenario to the end. Never panics: failures are a `Failed`
/// result with the reason (and the failing process's log tail).
pub(crate) async fn run(bins: &Binaries, sc: &Scenario, dir: &Path) -> ScenarioResult {
    match run_inner(bins, sc, dir).await {
        Ok(r) => r,
        Err(reason) => ScenarioResult::not_run(sc, Status::Failed, reason),
    }
}

async fn run_inner(bins: &Binaries, sc: &Scenario, dir: &Path) -> Result<ScenarioResult, String> {
    let server = RedisServer::start().map_err(|e| e.to_string())?;
    let url = server.url();
    let keys = Keys::new(NAMESPACE);
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let shutdown = CancellationToken::new();
    let _stop_collector = shutdown.clone().drop_guard();
    let collector = StatsCollector::start(&url, &keys, shutdown.clone())
        .await
        .map_err(|e| e.to_string())?;

    let feed_addr = procs::free_addr()?;
    let record = dir.join("truth.json");
    let spec = FeedSpec {
        listen: feed_addr.clone(),
        symbols: sc.symbols,
        ticks: sc.ticks,
        rate: sc.rate,
        mode: sc.mode.clone(),
        redis: url.clone(),
        record: record.clone(),
        universe: universe(),
        wait_clients: sc.processors,
    };
    let mut children = vec![Proc::spawn(
        "feed",
        procs::feed_command(&bins.feed_sim, &spec),
        dir,
    )?];
    let addr = feed_addr.clone();
    wait_for(
        "the feed to listen",
        Duration::from_secs(10),
        &mut children,
        || {
            let addr = addr.clone();
            async move { Ok(tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())) }
        },
    )
    .await?;
    for i in 1..=sc.processors {
        let id = format!("p{i}");
        let http = procs::free_addr()?;
        let cmd =
            procs::processor_command(&bins.tickshard, &url, &feed_addr, &id, &http, NAMESPACE);
        children.push(Proc::spawn(&id, cmd, dir)?);
    }
    let mut pids: Vec<(String, u32)> = children.iter().map(|p| (p.name.clone(), p.pid())).collect();
    if let Some(pid) = server.pid() {
        pids.push(("redis".to_string(), pid));
    }
    let cpu_start = CpuSample::take(&pids);

    // Ready: every processor is a member and every partition is leased.
    let (members, lease_pattern) = (keys.members(), format!("{}*", keys.lease_prefix()));
    let c2 = conn.clone();
    wait_for(
        "the cluster to be ready",
        Duration::from_secs(30),
        &mut children,
        || {
            let (mut c, members, pattern) = (c2.clone(), members.clone(), lease_pattern.clone());
            let want = sc.processors;
            async move {
                let n: usize = redis::cmd("ZCARD")
                    .arg(&members)
                    .query_async(&mut c)
                    .await
                    .unwrap_or(0);
                let leased = tickshard::keys::scan_matching(&mut c, &pattern)
                    .await
                    .map_or(0, |k| k.len());
                Ok((n == want && leased == PARTITIONS).then_some(()))
            }
        },
    )
    .await?;
    let ready_ms = tickshard::stats::now_ms();

    // The feed writes the ground truth once its last tick is sent.
    let send_budget = Duration::from_secs(30 + sc.ticks / 20_000);
    let truth = wait_for(
        "the feed's ground truth",
        send_budget,
        &mut children,
        || {
            let record = record.clone();
            async move { Ok(GroundTruth::read_if_complete(&record)) }
        },
    )
    .await?;
    if truth.ticks != sc.ticks {
        return Err(format!(
            "feed recorded {} ticks, asked for {}",
            truth.ticks, sc.ticks
        ));
    }

    // Settle: the run counts only once the store equals the truth.
    let settle = Duration::from_secs(30);
    let deadline = Instant::now() + settle;
    let last = loop {
        let stored = truth::read_stored(&mut conn, &keys)
            .await
            .map_err(|e| format!("reading state: {e}"))?;
        let cmp = truth::compare(&truth, &stored);
        if cmp.is_exact() || Instant::now() >= deadline {
            break cmp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let exact = last.is_exact();
    let exact_ms = tickshard::stats::now_ms();
    let cpu_end = CpuSample::take(&pids);
    let rss: BTreeMap<String, f64> = pids
        .iter()
        .filter_map(|(n, pid)| cpu::peak_rss_bytes(*pid).map(|b| (n.clone(), b as f64 / 1048576.0)))
        .collect();
    // Let the last stats interval arrive before stopping.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for p in children.iter_mut().rev() {
        p.stop(Duration::from_secs(5));
    }
    let cpu_s = cpu_start.seconds_until(&cpu_end, cpu::clock_ticks_per_s());
    let snaps = collector.snapshots();
    // The clock starts when the cluster is ready, or earlier if a
    // processor already applied ticks before (the feed may start sending
    // at its first client): the start of the first interval with work.
    let first_work_ms = snaps
        .iter()
        .filter(|s| s.counters.get("applied").unwrap_or(0) > 0)
        .map(|s| s.ts_ms.saturating_sub(s.interval_ms))
        .min()
        .unwrap_or(ready_ms);
    let elapsed = exact_ms.saturating_sub(ready_ms.min(first_work_ms)) as f64 / 1000.0;
    let mut rates = stats::applied_rates(&snaps);
    rates.sort_by(f64::total_cmp);
    let sustained = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    Ok(ScenarioResult {
        kind: "cluster",
        scenario: sc.clone(),
        status: if exact {
            Status::Exact
        } else {
            Status::Inexact
        },
        reason: (!exact).then(|| last.summary()),
        elapsed_s: elapsed,
        ticks_per_s: sc.ticks as f64 / elapsed.max(1e-9),
        sustained_ticks_per_s: sustained,
        cpu_ns_per_tick: cpu_s.values().sum::<f64>() * 1e9 / sc.ticks.max(1) as f64,
        cpu_s,
        rss_peak_mib: rss,
        e2e_us: stats::percentiles(&snaps, LatencyKind::E2e),
        forward_us: stats::percentiles(&snaps, LatencyKind::Forward),
        flush_us: stats::percentiles(&snaps, LatencyKind::Flush),
        stats_messages: snaps.len(),
        counters: stats::final_counters(&snaps),
        stand_ins: stand_ins(),
    })
}
