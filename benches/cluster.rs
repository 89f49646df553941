//! Cluster load benchmark (own harness, `cargo bench --bench cluster`).
//!
//! For every scenario (mode × processors × symbols × rate) it starts a
//! private redis-server, `feed-sim` and N `tickshard processor` processes
//! on loopback, drives M ticks, waits until every stored `{ns}:sym:*` hash
//! equals the feed's `--record` ground truth (a run counts only when
//! exact), and reports throughput, CPU per tick over all processes (Redis
//! included, from `/proc`), peak RSS and the merged latency histograms of
//! the processors' `{ns}:stats` messages. The two baselines run in the same
//! invocation against their own private Redis so the ratios are fair.
//!
//! Options (after `--`, or as environment variables):
//! - `--quick` / `TICKSHARD_BENCH_QUICK=1`: one small scenario and small
//!   baselines, under a minute;
//! - `--no-baselines`, `--no-cluster`: skip a section;
//! - `TICKSHARD_BENCH_REPEAT=K`: run every scenario K times (default 3, 1
//!   with `--quick`) so the report can show min / median / max;
//! - `TICKSHARD_BENCH_ALLOW_FAIL=1`: exit 0 even when a scenario failed;
//! - `TICKSHARD_BENCH_TICKS=M`: ticks per scenario of the full matrix
//!   (default 2,000,000 unthrottled, half that at a fixed rate), for a
//!   shorter full run on a busy machine;
//! - `TICKSHARD_BENCH_ONLY=TEXT`: run only the scenarios whose label
//!   (`round-robin N=3 symbols=500 ticks=... rate=max`) contains TEXT;
//! - `TICKSHARD_BENCH_KEEP_LOGS=1`: keep each run's directory (process
//!   logs, ground truth) and print its path.
//!
//! Output: a table on stdout and one JSON object per line in
//! `target/bench-results/cluster.jsonl` (rewritten each run): `kind` is
//! `selfcheck`, `baseline` (see `baseline/mod.rs`) or `cluster`
//! (`harness/scenario.rs`), then `ratio` lines (ours ÷ baseline).
//! Binaries come from the bench's own profile directory (`target/release`),
//! so build them first: `cargo build --release --workspace --bins`.
#![allow(clippy::unwrap_used)]

mod baseline;
mod common;
mod harness;

use serde::Serialize;
use tickshard::keys::Keys;
use tickshard::tick::Symbol;

use baseline::{run_lock_per_tick, run_original, BaselineReport, LockConfig, OriginalConfig};
use harness::procs::Binaries;
use harness::scenario::{self, Scenario, ScenarioResult, Status};
use harness::truth::{self, GroundTruth};

#[derive(Debug, Clone, Copy)]
struct Options {
    quick: bool,
    baselines: bool,
    cluster: bool,
    allow_fail: bool,
    repeat: usize,
}

impl Options {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |a: &str| args.iter().any(|x| x == a);
        let env = |v: &str| std::env::var(v).is_ok_and(|x| x == "1" || x == "true");
        let quick = has("--quick") || env("TICKSHARD_BENCH_QUICK");
        let repeat = std::env::var("TICKSHARD_BENCH_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 1 } else { 3 });
        Self {
            quick,
            repeat,
            baselines: !has("--no-baselines"),
            cluster: !has("--no-cluster"),
            allow_fail: env("TICKSHARD_BENCH_ALLOW_FAIL"),
        }
    }
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let s = |mode: &str, n: usize, symbols: usize, ticks: u64, rate: Option<u64>| Scenario {
        mode: mode.to_string(),
        processors: n,
        symbols,
        ticks,
        rate,
    };
    if quick {
        return vec![
            s("round-robin", 3, 500, 300_000, None),
            s("round-robin", 3, 500, 200_000, Some(100_000)),
        ];
    }
    let big = std::env::var("TICKSHARD_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(2_000_000);
    let paced = (big / 2).max(100_000);
    let mut out = Vec::new();
    for mode in ["round-robin", "owner-aware"] {
        // Scaling with processors at the real universe's size.
        for n in 1..=4 {
            out.push(s(mode, n, 500, big, None));
        }
        // Scaling with symbols at N = 3.
        for symbols in [10, 10_000] {
            out.push(s(mode, 3, symbols, big, None));
        }
        // Latency at a fixed rate.
        out.push(s(mode, 3, 500, paced, Some(100_000)));
    }
    out
}

#[derive(Debug, Serialize)]
struct SelfCheck {
    kind: &'static str,
    cpu_sampling: Result<(), String>,
    truth_comparison: Result<(), String>,
}

#[derive(Debug, Serialize)]
struct BaselineLine<'a> {
    kind: &'static str,
    #[serde(flatten)]
    report: &'a BaselineReport,
}

#[derive(Debug, Serialize)]
struct Ratio {
    kind: &'static str,
    scenario: String,
    baseline: &'static str,
    throughput_x: f64,
    p50_latency_x: f64,
    p99_latency_x: f64,
}

/// Writes the hand-written fixture's state into a real Redis and checks
/// that the comparison finds it exact, then finds one changed field and
/// one extra symbol.
async fn check_truth_comparison(url: &str) -> Result<(), String> {
    let text = include_str!("fixtures/truth_small.json");
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
        async move {
            truth::read_stored(&mut c, &keys)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let cmp = truth::compare(&truth, &read(conn.clone()).await?);
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
    let cmp = truth::compare(&truth, &read(conn.clone()).await?);
    let one_field = cmp.mismatches.len() == 1 && cmp.mismatches[0].field == "count";
    if cmp.is_exact() || !one_field || cmp.extra != vec!["ZZZ".to_string()] {
        return Err(format!("differences not found: {}", cmp.summary()));
    }
    Ok(())
}

async fn run_baselines(quick: bool, out: &mut Vec<BaselineReport>) {
    let server = common::redis();
    let url = server.url();
    let (orig_ticks, lock_ticks) = if quick {
        (5_000, 3_000)
    } else {
        (50_000, 30_000)
    };
    let orig = OriginalConfig::new("bl:orig", orig_ticks, 500);
    let lock = LockConfig::new("bl:lock", lock_ticks, 500);
    match run_original(&url, &orig).await {
        Ok(r) => out.push(r),
        Err(e) => eprintln!("baseline original failed: {e}"),
    }
    match run_lock_per_tick(&url, &lock).await {
        Ok(r) => out.push(r),
        Err(e) => eprintln!("baseline lock_per_tick failed: {e}"),
    }
}

fn print_baseline(r: &BaselineReport) {
    println!(
        "baseline {:<14} {:>8} ticks {:>10.0} ticks/s  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs  exact={}",
        r.name, r.ticks, r.ticks_per_s, r.latency_us.p50, r.latency_us.p99, r.latency_us.p999, r.exact
    );
}

fn print_cluster(r: &ScenarioResult) {
    let status = format!("{:?}", r.status).to_lowercase();
    if r.status == Status::Exact {
        println!(
            "cluster  {:<52} {status}: {:>10.0} ticks/s (sustained {:.0}), {:.0} ns CPU/tick, e2e p50/p99/p99.9 {}/{}/{} µs, fwd p99 {} µs",
            r.scenario.label(), r.ticks_per_s, r.sustained_ticks_per_s, r.cpu_ns_per_tick,
            r.e2e_us.p50, r.e2e_us.p99, r.e2e_us.p999, r.forward_us.p99
        );
        let c = |name: &str| r.counters.get(name).copied().unwrap_or(0);
        println!(
            "         forwarded {} ({:.0}%), duplicates {}, gaps {}, replays {} ({} ticks), dropped {}",
            c("forwarded_out"),
            100.0 * c("forwarded_out") as f64 / r.scenario.ticks.max(1) as f64,
            c("duplicates"),
            c("gaps"),
            c("replays_requested"),
            c("replay_ticks"),
            c("dropped")
        );
    } else {
        println!(
            "cluster  {:<52} {status}: {}",
            r.scenario.label(),
            r.reason.as_deref().unwrap_or("")
        );
    }
}

fn ratios(cluster: &[ScenarioResult], baselines: &[BaselineReport]) -> Vec<Ratio> {
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut out = Vec::new();
    // Throughput ratios only mean something for unthrottled runs.
    let unthrottled = |c: &&ScenarioResult| c.status == Status::Exact && c.scenario.rate.is_none();
    for c in cluster.iter().filter(unthrottled) {
        for b in baselines {
            out.push(Ratio {
                kind: "ratio",
                scenario: c.scenario.label(),
                baseline: b.name,
                throughput_x: div(c.ticks_per_s, b.ticks_per_s),
                p50_latency_x: div(b.latency_us.p50 as f64, c.e2e_us.p50 as f64),
                p99_latency_x: div(b.latency_us.p99 as f64, c.e2e_us.p99 as f64),
            });
        }
    }
    out
}

fn main() {
    let opts = Options::parse();
    let results = common::results_dir().join("cluster.jsonl");
    let _ = std::fs::create_dir_all(common::results_dir());
    let _ = std::fs::remove_file(&results);
    let rt = common::runtime(2);
    let mut failed = false;

    // 1. Self-check of the measuring instruments.
    let server = common::redis();
    let check = SelfCheck {
        kind: "selfcheck",
        cpu_sampling: harness::cpu::self_check(),
        truth_comparison: rt.block_on(check_truth_comparison(&server.url())),
    };
    drop(server);
    println!(
        "self-check: cpu sampling {:?}, ground-truth comparison {:?}",
        check.cpu_sampling, check.truth_comparison
    );
    failed |= check.cpu_sampling.is_err() || check.truth_comparison.is_err();
    common::append_result("cluster", &check);

    // 2. Baselines.
    let mut baselines = Vec::new();
    if opts.baselines {
        rt.block_on(run_baselines(opts.quick, &mut baselines));
        for b in &baselines {
            print_baseline(b);
            failed |= !b.exact;
            common::append_result(
                "cluster",
                &BaselineLine {
                    kind: "baseline",
                    report: b,
                },
            );
        }
    }

    // 3. Cluster scenarios.
    let mut cluster = Vec::new();
    if opts.cluster {
        let bins = Binaries::find(&common::profile_dir());
        let mut blocked: Option<String> = bins.as_ref().err().cloned();
        let only = std::env::var("TICKSHARD_BENCH_ONLY").unwrap_or_default();
        let keep_logs = std::env::var_os("TICKSHARD_BENCH_KEEP_LOGS").is_some();
        let runs = scenarios(opts.quick)
            .into_iter()
            .filter(|sc| sc.label().contains(&only))
            .flat_map(|sc| std::iter::repeat_n(sc, opts.repeat.max(1)));
        for sc in runs {
            let r = match (&blocked, &bins) {
                (None, Ok(bins)) => {
                    let dir = tempfile::Builder::new()
                        .prefix("tickshard-bench-")
                        .tempdir();
                    match dir {
                        Ok(dir) => {
                            let r = rt.block_on(scenario::run(bins, &sc, dir.path()));
                            if keep_logs {
                                println!("logs: {}", dir.keep().display());
                            }
                            r
                        }
                        Err(e) => ScenarioResult::not_run(&sc, Status::Failed, e.to_string()),
                    }
                }
                (Some(reason), _) | (None, Err(reason)) => {
                    ScenarioResult::not_run(&sc, Status::Skipped, reason.clone())
                }
            };
            // A process that cannot even start will not start in the next
            // scenario either: skip the rest with the same reason.
            if r.status == Status::Failed && blocked.is_none() {
                blocked = r
                    .reason
                    .clone()
                    .map(|w| format!("an earlier scenario failed: {w}"));
            }
            failed |= r.status != Status::Exact;
            print_cluster(&r);
            common::append_result("cluster", &r);
            cluster.push(r);
        }
    }

    // 4. Ours ÷ baselines.
    for r in ratios(&cluster, &baselines) {
        println!(
            "ratio    {:<52} vs {:<14} throughput {:>8.1}x  p50 {:>6.1}x  p99 {:>6.1}x",
            r.scenario, r.baseline, r.throughput_x, r.p50_latency_x, r.p99_latency_x
        );
        common::append_result("cluster", &r);
    }
    println!("results: {}", results.display());
    if failed && !opts.allow_fail {
        std::process::exit(1);
    }
}
