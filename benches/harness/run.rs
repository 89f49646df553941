//! One measured cluster run: a private redis-server, `feed-sim` and N
//! `tickshard processor` processes of one build on loopback; drive the
//! feed, wait until the stored state equals the feed's ground truth
//! exactly, then report throughput, the per-second applied rates and the
//! CPU busy share while feeding, CPU per tick over every process (Redis
//! included), peak RSS, drops / duplicates / replays, lease moves while
//! feeding, latency percentiles from the merged `{ns}:stats` histograms,
//! the run-queue wait of every process, Redis's slow log, and for lag
//! runs the stored-state lag.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tickshard::clock::now_ms;
use tickshard::keys::Keys;
use tickshard::redis_server::RedisServer;
use tickshard::stats::{LatencyKind, StatsSnapshot};
use tokio_util::sync::CancellationToken;

use super::builds::Build;
use super::cmdline::{self, FeedLength, FeedSpec, ProcessorSpec};
use super::cpu::{self, CpuSample};
use super::feed_summary::FeedFigures;
use super::lag::{LagProbe, LagStats};
use super::leases;
use super::procs::{self, Proc};
use super::result::{self, Flow, ScenarioResult, Status};
use super::scenario::{self, Scenario, NAMESPACE, PARTITIONS};
use super::slowlog;
use super::stats::{self, StatsCollector};
use super::window::{self, RateStats, Window};
use tickshard::truth::{read_stored, TruthRecord};

/// The real S&P 500 universe shipped with feed-sim, when the scenario
/// wants it and it is present (it is, in a checkout); the stand-in
/// binaries do not take it.
fn universe(sc: &Scenario) -> Option<std::path::PathBuf> {
    if result::stand_ins() || !sc.real_universe {
        return None;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("feed-sim/data/sp500_universe.csv");
    path.is_file().then_some(path)
}

/// Polls `check` every 50 ms until it returns `Ok(Some(v))`, an error, or
/// the deadline passes; a dead child ends the wait with its reason.
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

/// Samples the CPU time of `pids` twice a second until `stop`:
/// (ms since the epoch, CPU seconds summed over the processes).
fn spawn_cpu_sampler(
    pids: Vec<(String, u32)>,
    stop: CancellationToken,
) -> Arc<Mutex<Vec<(u64, f64)>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let samples = out.clone();
    let hz = cpu::clock_ticks_per_s() as f64;
    tokio::spawn(async move {
        loop {
            let s = CpuSample::take(&pids);
            let total: u64 = s.by_process.values().map(|t| t.total()).sum();
            samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((now_ms(), total as f64 / hz));
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
    out
}

/// The result of one run, and whether the build's processes could not
/// even start (then they will not start in the next run either).
pub(crate) struct Outcome {
    pub(crate) result: ScenarioResult,
    pub(crate) could_not_start: bool,
}

/// Runs one scenario with one build. Never panics: failures are a
/// `Failed` (or `Skipped`) result with the reason (and the failing
/// process's log tail).
pub(crate) async fn run(build: &Build, sc: &Scenario, dir: &Path) -> Outcome {
    let bin_dir = build.bins.dir.display().to_string();
    let not_run =
        |status, reason| ScenarioResult::not_run(sc, build.name, &bin_dir, status, reason);
    let (result, could_not_start) = match run_inner(build, sc, dir).await {
        Ok(r) => (r, false),
        Err(Refused(reason)) => (not_run(Status::Skipped, reason), false),
        Err(NoStart(reason)) => (not_run(Status::Failed, reason), true),
        Err(Broke(reason)) => (not_run(Status::Failed, reason), false),
    };
    Outcome {
        result,
        could_not_start,
    }
}

/// Why a run did not produce figures.
enum RunError {
    /// The build cannot run this scenario (an option it does not know).
    Refused(String),
    /// The processes did not start or the cluster never became ready.
    NoStart(String),
    /// Something failed later.
    Broke(String),
}
use RunError::{Broke, NoStart, Refused};

impl From<String> for RunError {
    fn from(s: String) -> Self {
        Broke(s)
    }
}

async fn run_inner(build: &Build, sc: &Scenario, dir: &Path) -> Result<ScenarioResult, RunError> {
    let server = RedisServer::start().map_err(|e| e.to_string())?;
    let url = server.url();
    let keys = Keys::new(NAMESPACE);
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    // Reading 100,000 stored symbols on a busy machine outlasts the default.
    conn.set_response_timeout(Duration::from_secs(10));
    let mut store_reader = tickshard::cluster::RedisConn::connect(
        &tickshard::redis_conn::RedisConfig::new(url.as_str()),
        &tickshard::cluster::ConnOptions::default().with_response_timeout(Duration::from_secs(10)),
    )
    .await
    .map_err(|e| e.to_string())?;
    let shutdown = CancellationToken::new();
    let _stop_tasks = shutdown.clone().drop_guard();
    let collector = StatsCollector::start(&url, &keys, shutdown.clone())
        .await
        .map_err(|e| e.to_string())?;

    // Command lines first: a build that cannot run the scenario is skipped
    // before anything starts.
    // The feed starts last (see below), on a port below the ephemeral
    // range, which no outgoing socket takes meanwhile.
    let feed_addr = procs::free_addr()?;
    let record = dir.join("truth.json");
    let spec = FeedSpec {
        listen: feed_addr.clone(),
        symbols: sc.symbols,
        length: match (sc.ticks, sc.secs) {
            (Some(t), _) => FeedLength::Ticks(t),
            (None, Some(s)) => FeedLength::Secs(s),
            (None, None) => return Err(Broke("scenario without ticks or secs".to_string())),
        },
        rate: sc.rate,
        mode: sc.mode.clone(),
        redis: url.clone(),
        record: record.clone(),
        universe: universe(sc),
        wait_clients: sc.processors,
    };
    let feed_cmd = cmdline::feed(&build.bins.feed_sim, &spec, &build.caps).map_err(Refused)?;
    let mut http_of = BTreeMap::new();
    let mut proc_cmds = Vec::new();
    for i in 1..=sc.processors {
        let id = format!("p{i}");
        let http = procs::free_addr()?;
        let p = ProcessorSpec {
            redis: &url,
            feed: &feed_addr,
            id: &id,
            http: &http,
            cluster: NAMESPACE,
        };
        proc_cmds.push((
            id.clone(),
            cmdline::processor(&build.bins.tickshard, &p, &build.caps).map_err(Refused)?,
        ));
        http_of.insert(id, http);
    }
    let mut options_dropped = feed_cmd.dropped.clone();
    for (_, b) in &proc_cmds {
        for d in &b.dropped {
            if !options_dropped.contains(d) {
                options_dropped.push(d.clone());
            }
        }
    }

    // Processors first: the feed starts only once the assignment has
    // settled (every partition leased, each processor holding its share),
    // so no lease moves while it sends. The processors retry the feed's
    // address until it listens.
    let mut children = Vec::new();
    for (id, b) in proc_cmds {
        children.push(procs::spawn(&id, b.cmd, dir).map_err(NoStart)?);
    }
    let mut pids: Vec<(String, u32)> = children.iter().map(|p| (p.name.clone(), p.pid())).collect();
    if let Some(pid) = server.pid() {
        pids.push(("redis".to_string(), pid));
    }

    // Ready: every partition leased, each processor holding its share
    // (which it does only as a member). Read from the lease keys alone,
    // whose names every build since key schema 2 shares, so a previous
    // build runs here too (`TICKSHARD_BENCH_COMPARE_BINS`).
    let lease_keys = keys.all_leases(PARTITIONS as u32);
    let c2 = conn.clone();
    wait_for(
        "the cluster to be ready",
        Duration::from_secs(30),
        &mut children,
        || {
            let (mut c, lease_keys) = (c2.clone(), lease_keys.clone());
            let want = sc.processors;
            async move {
                let owners: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&lease_keys)
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                Ok(leases_balanced(&owners, want).then_some(()))
            }
        },
    )
    .await
    .map_err(NoStart)?;

    slowlog::arm(&mut conn)
        .await
        .map_err(|e| format!("arming SLOWLOG: {e}"))?;
    let feed = procs::spawn("feed", feed_cmd.cmd, dir).map_err(NoStart)?;
    pids.push((feed.name.clone(), feed.pid()));
    children.insert(0, feed);
    let cpu_start = CpuSample::take(&pids);
    let wall_start = Instant::now();
    let cpu_samples = spawn_cpu_sampler(pids.clone(), shutdown.clone());
    let ready_ms = now_ms();

    // The lag probe samples while the feed sends.
    let stop_probe = shutdown.child_token();
    let probe = sc.probes_lag().then(|| {
        let probe = LagProbe {
            conn: conn.clone(),
            keys: keys.clone(),
            partitions: NonZeroU32::new(PARTITIONS as u32).unwrap_or(NonZeroU32::MIN),
            http: http_of.clone(),
            collector: collector.clone(),
        };
        tokio::spawn(probe.run(stop_probe.clone()))
    });

    // The feed writes the ground truth once its last tick is sent.
    let truth = wait_for(
        "the feed's ground truth",
        sc.send_budget(),
        &mut children,
        || {
            let record = record.clone();
            async move { Ok(TruthRecord::read_if_complete(&record)) }
        },
    )
    .await?;
    let feed_end_ms = file_mtime_ms(&record).unwrap_or_else(now_ms);
    stop_probe.cancel();
    if let Some(t) = sc.ticks.filter(|t| *t != truth.ticks) {
        return Err(Broke(format!(
            "feed recorded {} ticks, asked for {t}",
            truth.ticks
        )));
    }
    let lag: Option<LagStats> = match probe {
        Some(h) => Some(h.await.map_err(|e| format!("lag probe: {e}"))?),
        None => None,
    };

    // Settle: the run counts only once the store equals the truth.
    let settle = Duration::from_secs(30);
    let deadline = Instant::now() + settle;
    let last = loop {
        let read_start = Instant::now();
        let stored = read_stored(&mut store_reader, &keys)
            .await
            .map_err(|e| format!("reading state: {e}"))?;
        let cmp = truth.compare(&stored);
        if cmp.is_exact() || Instant::now() >= deadline {
            break cmp;
        }
        // Every 50 ms, but never reading more than half the time: reading
        // 100,000 symbols must not starve the processors' flushes.
        tokio::time::sleep(read_start.elapsed().max(Duration::from_millis(50))).await;
    };
    let exact = last.is_exact();
    let exact_ms = now_ms();
    let cpu_end = CpuSample::take(&pids);
    let slow = slowlog::read(&mut conn)
        .await
        .map_err(|e| format!("reading SLOWLOG: {e}"))?;
    let wall_s = wall_start.elapsed().as_secs_f64();
    let rss: BTreeMap<String, f64> = pids
        .iter()
        .filter_map(|(n, pid)| cpu::peak_rss_bytes(*pid).map(|b| (n.clone(), b as f64 / 1048576.0)))
        .collect();
    // Let the last stats interval arrive before stopping.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for p in children.iter_mut().rev() {
        p.shut_down(Duration::from_secs(5));
    }
    let feed_stdout = children.first().map(Proc::stdout).unwrap_or_default();
    let feed = FeedFigures::parse(&feed_stdout, sc.rate);
    let cpu_s = cpu_start.seconds_until(&cpu_end, cpu::clock_ticks_per_s());
    let runq_wait_s = cpu_start.wait_seconds_until(&cpu_end);
    let snaps = collector.snapshots();
    let events = collector.events();
    // Kept with the logs (TICKSHARD_BENCH_KEEP_LOGS) for a closer look.
    let lines: Vec<String> = events.iter().map(|e| e.to_json()).collect();
    let _ = std::fs::write(dir.join("events.jsonl"), lines.join("\n"));
    let samples = cpu_samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();

    // The clock starts when the cluster is ready, or earlier if a
    // processor already applied ticks before (the feed may start sending
    // at its first client): the start of the first interval with work.
    let first_work_ms = first_interval_with(&snaps, "applied").unwrap_or(ready_ms);
    let elapsed = exact_ms.saturating_sub(ready_ms.min(first_work_ms)) as f64 / 1000.0;
    // The feeding window: the feed's last tick (the truth file's time)
    // back by its own seconds of sending; without its summary, from the
    // first interval in which ticks arrived.
    let feed_start_ms = match feed.send_s {
        Some(s) => feed_end_ms.saturating_sub((s * 1000.0).round() as u64),
        None => first_interval_with(&snaps, "ticks_in").unwrap_or(ready_ms),
    };
    let window = Window {
        start_ms: feed_start_ms.min(feed_end_ms),
        end_ms: feed_end_ms,
    };
    let cores = result::cores();
    let cpu_total: f64 = cpu_s.values().sum();
    let counters = stats::final_counters(&snaps);
    let send_s = feed.send_s.or(Some(window.secs()));
    Ok(ScenarioResult {
        kind: "cluster",
        build: build.name,
        bin_dir: build.bins.dir.display().to_string(),
        label: sc.label(),
        scenario: sc.clone(),
        status: if exact {
            Status::Exact
        } else {
            Status::Inexact
        },
        reason: (!exact).then(|| last.summary()),
        sustained: scenario::is_sustained(truth.ticks, send_s),
        options_dropped,
        ticks: truth.ticks,
        symbols_with_ticks: truth.symbols.len(),
        elapsed_s: elapsed,
        ticks_per_s: truth.ticks as f64 / elapsed.max(1e-9),
        feed,
        feed_window: Some(window),
        applied_per_s: RateStats::of(&window::per_second_rates(
            &snaps,
            "applied",
            window,
            sc.processors,
        )),
        cpu_ns_per_tick: cpu_total * 1e9 / truth.ticks.max(1) as f64,
        cpu_busy: cpu_total / (wall_s.max(1e-9) * cores as f64),
        cpu_busy_feeding: window::busy_share(&samples, window, cores),
        cores,
        cpu_s,
        runq_wait_s,
        processor_rss_peak_mib: rss
            .iter()
            .filter(|(n, _)| n.starts_with('p'))
            .map(|(_, v)| *v)
            .fold(0.0, f64::max),
        rss_peak_mib: rss,
        e2e_us: stats::percentiles(&snaps, LatencyKind::E2e),
        forward_us: stats::percentiles(&snaps, LatencyKind::Forward),
        flush_us: stats::percentiles(&snaps, LatencyKind::Flush),
        flow: Flow::of(&counters),
        leases: leases::figures(&events, window, sc.processors, PARTITIONS),
        lag,
        slowlog: Some(slow),
        stats_messages: snaps.len(),
        counters,
        loadavg_1m: result::loadavg_1m(),
        stand_ins: result::stand_ins(),
    })
}

/// Start (ms) of the first stats interval in which `counter` was non-zero.
fn first_interval_with(snaps: &[StatsSnapshot], counter: &str) -> Option<u64> {
    snaps
        .iter()
        .filter(|s| s.counters.get(counter).unwrap_or(0) > 0)
        .map(|s| s.ts_ms.saturating_sub(s.interval_ms))
        .min()
}

/// A file's modification time in ms since the Unix epoch.
fn file_mtime_ms(path: &Path) -> Option<u64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// Every partition's lease value (`{instance}:{epoch}`) is present and the
/// `n` instances hold ⌊P/n⌋ or ⌈P/n⌉ partitions each.
fn leases_balanced(owners: &[Option<String>], n: usize) -> bool {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for v in owners {
        let Some(owner) = v
            .as_deref()
            .and_then(|v| v.rsplit_once(':'))
            .map(|(o, _)| o)
        else {
            return false;
        };
        *per.entry(owner).or_default() += 1;
    }
    let p = owners.len();
    owners.len() == PARTITIONS
        && per.len() == n
        && per.values().all(|c| (p / n..=p.div_ceil(n)).contains(c))
}
