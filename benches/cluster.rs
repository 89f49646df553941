//! Cluster load benchmark (own harness, `cargo bench --bench cluster`).
//!
//! For every scenario it starts a private redis-server, `feed-sim` and N
//! `tickshard processor` processes on loopback, drives the feed, waits
//! until every stored `{ns}:*:sym:*` hash equals the feed's `--record` ground
//! truth (a run counts only when exact), and reports throughput, the
//! per-second applied rates and CPU busy share while feeding, CPU per tick
//! over all processes (Redis included, from `/proc`), peak RSS, drops,
//! duplicates, replays, lease moves while feeding and the merged latency
//! histograms of the processors' `{ns}:stats` messages. A throughput is
//! claimed (`sustained: true`) only for runs of at least 15M ticks or 30 s
//! of feeding. The two baselines run in the same invocation against their
//! own private Redis so the ratios are fair.
//!
//! Scenario groups (`harness/groups.rs`), every label starting with its
//! group's name: `matrix` (modes × processors × symbols, short runs),
//! `sweep` (fixed rates 100k…3M ticks/s, 30 s each), `overload`
//! (unthrottled, 15M ticks), `symbols` (10k and 100k symbols at 100k/s,
//! 30 s), `lag` (stored-state lag at 100k/s, 30 s).
//!
//! Options (after `--`, or as environment variables):
//! - `--quick` / `TICKSHARD_BENCH_QUICK=1`: two small scenarios (one of
//!   them samples the lag) and small baselines, under a minute;
//! - `--no-baselines`, `--no-cluster`: skip a section;
//! - `--groups a,b` / `TICKSHARD_BENCH_GROUPS=a,b`: the groups to run
//!   (default: all of them; not with `--quick`);
//! - `TICKSHARD_BENCH_ONLY=TEXT`: only the scenarios whose label
//!   (`sweep round-robin N=3 symbols=500 secs=30 rate=100000/s`) contains
//!   TEXT;
//! - `TICKSHARD_BENCH_REPEAT=K`: run every scenario K times (default 3 for
//!   the matrix, 1 for the other groups and with `--quick`);
//! - `TICKSHARD_BENCH_TICKS=M`: ticks of the matrix (default 2,000,000
//!   unthrottled, half that at a fixed rate) and of the overload run
//!   (default 15,000,000); `TICKSHARD_BENCH_SECS=S`: seconds of the sweep
//!   steps, symbol and lag runs (default 30). Shorter runs are reported as
//!   not sustained;
//! - `TICKSHARD_BENCH_COMPARE_BINS=DIR`: also run every scenario with the
//!   `tickshard` and `feed-sim` in DIR (e.g. another worktree's
//!   `target/release`), interleaved (previous, current, previous, ...),
//!   result lines tagged `build: "previous"` / `"current"`;
//! - `TICKSHARD_BENCH_OUT=NAME`: write `NAME.jsonl` instead of
//!   `cluster.jsonl`;
//! - `TICKSHARD_BENCH_ALLOW_FAIL=1`: exit 0 even when a scenario failed;
//! - `TICKSHARD_BENCH_KEEP_LOGS=1`: keep each run's directory (process
//!   logs, ground truth) and print its path.
//!
//! Output: a few lines per run on stdout and one JSON object per line in
//! `target/bench-results/cluster.jsonl` (rewritten each run): `kind` is
//! `invocation` (command, machine, load), `selfcheck`, `baseline` (see
//! `baseline/mod.rs`), `cluster` (`harness/result.rs`), `ratio` (ours ÷
//! baseline) and `invocation_end`. Binaries come from the bench's own
//! profile directory (`target/release`), so build them first: `cargo build
//! --release --workspace --bins`.
#![allow(clippy::unwrap_used)]

mod baseline;
mod common;
mod harness;

use std::collections::BTreeMap;

use serde::Serialize;

use baseline::{run_lock_per_tick, run_original, BaselineReport, LockConfig, OriginalConfig};
use harness::builds::{self, Build, Unusable};
use harness::groups::{self, Sizes};
use harness::result::{BuildName, ScenarioResult, Status};
use harness::scenario::{Group, Scenario};
use harness::truth;

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    baselines: bool,
    cluster: bool,
    allow_fail: bool,
    /// `TICKSHARD_BENCH_REPEAT`, if set.
    repeat: Option<usize>,
    groups: Vec<Group>,
    /// Stem of the results file.
    out: String,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |a: &str| args.iter().any(|x| x == a);
        let env = |v: &str| std::env::var(v).is_ok_and(|x| x == "1" || x == "true");
        let quick = has("--quick") || env("TICKSHARD_BENCH_QUICK");
        let repeat = std::env::var("TICKSHARD_BENCH_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|v: &usize| *v > 0);
        let value_of = |flag: &str| {
            let eq = format!("{flag}=");
            args.iter().enumerate().find_map(|(i, a)| {
                a.strip_prefix(eq.as_str())
                    .map(str::to_string)
                    .or_else(|| (a == flag).then(|| args.get(i + 1).cloned().unwrap_or_default()))
            })
        };
        let groups_text = value_of("--groups")
            .or_else(|| std::env::var("TICKSHARD_BENCH_GROUPS").ok())
            .unwrap_or_default();
        let mut groups = Vec::new();
        for name in groups_text
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            if name == "all" {
                groups.extend(Group::ALL);
                continue;
            }
            let g = Group::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
                format!(
                    "unknown group {name:?}; the groups are {}",
                    known.join(", ")
                )
            })?;
            groups.push(g);
        }
        if groups.is_empty() {
            groups.extend(Group::ALL);
        }
        groups.sort();
        groups.dedup();
        let out = std::env::var("TICKSHARD_BENCH_OUT")
            .ok()
            .filter(|o| !o.is_empty() && !o.contains('/'))
            .unwrap_or_else(|| "cluster".to_string());
        Ok(Self {
            quick,
            repeat,
            baselines: !has("--no-baselines"),
            cluster: !has("--no-cluster"),
            allow_fail: env("TICKSHARD_BENCH_ALLOW_FAIL"),
            groups,
            out,
        })
    }

    /// The runs in order, each scenario `repeat` times in a row.
    fn runs(&self, sizes: Sizes) -> Vec<Scenario> {
        let only = std::env::var("TICKSHARD_BENCH_ONLY").unwrap_or_default();
        let list: Vec<Scenario> = if self.quick {
            groups::quick()
        } else {
            self.groups
                .iter()
                .flat_map(|g| groups::of(*g, sizes))
                .collect()
        };
        list.into_iter()
            .filter(|sc| sc.label().contains(&only))
            .flat_map(|sc| {
                let n = match (self.repeat, self.quick) {
                    (Some(n), _) => n,
                    (None, true) => 1,
                    (None, false) => groups::default_repeat(sc.group),
                };
                std::iter::repeat_n(sc, n)
            })
            .collect()
    }
}

/// The first line of the results file: what ran, where, and how loaded
/// the machine was.
#[derive(Debug, Serialize)]
struct Invocation {
    kind: &'static str,
    argv: Vec<String>,
    /// The bench's own `TICKSHARD_BENCH_*` settings.
    env: BTreeMap<String, String>,
    cpu_model: String,
    cores: usize,
    loadavg_start: Option<f64>,
    quick: bool,
    groups: Vec<Group>,
    builds: Vec<BuildLine>,
}

#[derive(Debug, Serialize)]
struct BuildLine {
    build: BuildName,
    dir: String,
    unusable: Option<String>,
}

#[derive(Debug, Serialize)]
struct InvocationEnd {
    kind: &'static str,
    seconds: f64,
    loadavg_end: Option<f64>,
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

#[derive(Debug, Serialize)]
struct SelfCheck {
    kind: &'static str,
    checks: BTreeMap<&'static str, Result<(), String>>,
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

fn ratios(cluster: &[ScenarioResult], baselines: &[BaselineReport]) -> Vec<Ratio> {
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut out = Vec::new();
    // Throughput ratios only mean something for unthrottled runs of this
    // checkout.
    let unthrottled = |c: &&ScenarioResult| {
        c.status == Status::Exact && c.scenario.rate.is_none() && c.build == BuildName::Current
    };
    for c in cluster.iter().filter(unthrottled) {
        for b in baselines {
            out.push(Ratio {
                kind: "ratio",
                scenario: c.label.clone(),
                baseline: b.name,
                throughput_x: div(c.ticks_per_s, b.ticks_per_s),
                p50_latency_x: div(b.latency_us.p50 as f64, c.e2e_us.p50 as f64),
                p99_latency_x: div(b.latency_us.p99 as f64, c.e2e_us.p99 as f64),
            });
        }
    }
    out
}

/// Runs every scenario with every build, interleaved (previous, current,
/// previous, ...) so noise on the machine hits both alike.
fn run_cluster(
    rt: &tokio::runtime::Runtime,
    builds: &[Result<Build, Unusable>],
    runs: &[Scenario],
    out: &str,
) -> (Vec<ScenarioResult>, bool) {
    let keep_logs = std::env::var_os("TICKSHARD_BENCH_KEEP_LOGS").is_some();
    let mut blocked: BTreeMap<BuildName, String> = BTreeMap::new();
    let mut results = Vec::new();
    let mut failed = false;
    for sc in runs {
        for b in builds {
            let r = match b {
                Err(u) => ScenarioResult::not_run(
                    sc,
                    u.name,
                    &u.dir.display().to_string(),
                    Status::Skipped,
                    u.reason.clone(),
                ),
                Ok(build) => match blocked.get(&build.name) {
                    Some(reason) => ScenarioResult::not_run(
                        sc,
                        build.name,
                        &build.bins.dir.display().to_string(),
                        Status::Skipped,
                        reason.clone(),
                    ),
                    None => {
                        let dir = tempfile::Builder::new()
                            .prefix("tickshard-bench-")
                            .tempdir();
                        match dir {
                            Ok(dir) => {
                                let o = rt.block_on(harness::run::run(build, sc, dir.path()));
                                if keep_logs {
                                    println!("logs: {}", dir.keep().display());
                                }
                                // Processes that cannot start will not start
                                // in the next run either.
                                if o.could_not_start {
                                    let why = o.result.reason.clone().unwrap_or_default();
                                    blocked.insert(
                                        build.name,
                                        format!("an earlier run of this build failed: {why}"),
                                    );
                                }
                                o.result
                            }
                            Err(e) => ScenarioResult::not_run(
                                sc,
                                build.name,
                                &build.bins.dir.display().to_string(),
                                Status::Failed,
                                e.to_string(),
                            ),
                        }
                    }
                },
            };
            failed |= r.status != Status::Exact;
            harness::print::cluster(&r);
            common::append_result(out, &r);
            results.push(r);
        }
    }
    (results, failed)
}

fn main() {
    let opts = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cluster bench: {e}");
            std::process::exit(2);
        }
    };
    let started = std::time::Instant::now();
    let out = opts.out.as_str();
    let results = common::results_dir().join(format!("{out}.jsonl"));
    let _ = std::fs::create_dir_all(common::results_dir());
    let _ = std::fs::remove_file(&results);
    let rt = common::runtime(2);
    let mut failed = false;
    let sizes = Sizes::from_env();
    let builds = if opts.cluster {
        builds::load(&common::profile_dir())
    } else {
        Vec::new()
    };
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("TICKSHARD_BENCH_"))
        .collect();
    common::append_result(
        out,
        &Invocation {
            kind: "invocation",
            argv: std::env::args().collect(),
            env,
            cpu_model: cpu_model(),
            cores: harness::result::cores(),
            loadavg_start: harness::result::loadavg_1m(),
            quick: opts.quick,
            groups: opts.groups.clone(),
            builds: builds
                .iter()
                .map(|b| match b {
                    Ok(b) => BuildLine {
                        build: b.name,
                        dir: b.bins.dir.display().to_string(),
                        unusable: None,
                    },
                    Err(u) => BuildLine {
                        build: u.name,
                        dir: u.dir.display().to_string(),
                        unusable: Some(u.reason.clone()),
                    },
                })
                .collect(),
        },
    );

    // 1. Self-check of the measuring instruments.
    let server = common::redis();
    let mut checks: BTreeMap<&'static str, Result<(), String>> =
        harness::self_checks().into_iter().collect();
    checks.insert(
        "truth_comparison",
        rt.block_on(truth::self_check(&server.url())),
    );
    drop(server);
    for (name, r) in &checks {
        println!("self-check {name}: {r:?}");
    }
    failed |= checks.values().any(Result::is_err);
    common::append_result(
        out,
        &SelfCheck {
            kind: "selfcheck",
            checks,
        },
    );

    // 2. Baselines.
    let mut baselines = Vec::new();
    if opts.baselines {
        rt.block_on(run_baselines(opts.quick, &mut baselines));
        for b in &baselines {
            print_baseline(b);
            failed |= !b.exact;
            common::append_result(
                out,
                &BaselineLine {
                    kind: "baseline",
                    report: b,
                },
            );
        }
    }

    // 3. Cluster scenarios, every build.
    let mut cluster = Vec::new();
    if opts.cluster {
        let (r, f) = run_cluster(&rt, &builds, &opts.runs(sizes), out);
        cluster = r;
        failed |= f;
    }

    // 4. Ours ÷ baselines.
    for r in ratios(&cluster, &baselines) {
        println!(
            "ratio    {:<56} vs {:<14} throughput {:>8.1}x  p50 {:>6.1}x  p99 {:>6.1}x",
            r.scenario, r.baseline, r.throughput_x, r.p50_latency_x, r.p99_latency_x
        );
        common::append_result(out, &r);
    }
    common::append_result(
        out,
        &InvocationEnd {
            kind: "invocation_end",
            seconds: started.elapsed().as_secs_f64(),
            loadavg_end: harness::result::loadavg_1m(),
        },
    );
    println!("results: {}", results.display());
    if failed && !opts.allow_fail {
        std::process::exit(1);
    }
}
