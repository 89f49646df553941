//! Helpers shared by the bench binaries: tick generation, a runtime, a
//! private redis-server, and latency summaries of HDR histograms.
#![allow(dead_code)]

use hdrhistogram::Histogram;
use serde::Serialize;
use tickshard::redis_server::RedisServer;
use tickshard::tick::{Price, Symbol, Tick};

/// `n` distinct valid symbols: `S0`, `S1`, ...
pub(crate) fn symbols(n: usize) -> Vec<Symbol> {
    (0..n)
        .map(|i| {
            format!("S{i}")
                .parse()
                .expect("generated symbols are valid")
        })
        .collect()
}

/// `n` ticks spread round-robin over `syms`, each symbol's seqs 1, 2, ...
pub(crate) fn ticks(n: usize, syms: &[Symbol]) -> Vec<Tick> {
    let mut seqs = vec![0u64; syms.len()];
    (0..n)
        .map(|i| {
            let k = i % syms.len();
            seqs[k] += 1;
            let mut t = Tick::new(
                syms[k],
                seqs[k],
                Price::from_units(1_872_500 + (i as i64 % 100) * 100).expect("price"),
                100 + (i as u32 % 7),
                1_732_400_000_000_000_000 + i as u64,
            )
            .expect("tick");
            t.sent_ns = Some(1_732_400_000_000_000_000 + i as u64);
            t
        })
        .collect()
}

/// A multi-threaded tokio runtime with `workers` worker threads.
pub(crate) fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts a private redis-server or exits with the reason.
pub(crate) fn redis() -> RedisServer {
    match RedisServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("this benchmark needs redis-server: {e}");
            std::process::exit(2);
        }
    }
}

/// Latency percentiles in microseconds, read from an HDR histogram.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct Percentiles {
    /// Samples.
    pub(crate) count: u64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Environment variable overriding where result lines are written.
pub(crate) const RESULTS_ENV: &str = "TICKSHARD_BENCH_RESULTS";

/// The target directory this bench was built into (`.../target`), found
/// from the executable's path (`target/<profile>/deps/<bench>-<hash>`).
pub(crate) fn target_dir() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
}

/// The profile directory the bench was built into (`target/<profile>`),
/// where the project's binaries of the same build live.
pub(crate) fn profile_dir() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(2).map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| std::path::PathBuf::from("target/release"))
}

/// Directory for machine-readable results: `$TICKSHARD_BENCH_RESULTS` or
/// `target/bench-results`.
pub(crate) fn results_dir() -> std::path::PathBuf {
    std::env::var_os(RESULTS_ENV)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| target_dir().join("bench-results"))
}

/// Appends `value` as one JSON line to `<results_dir>/<file>.jsonl`;
/// failures are reported on stderr, never fatal to the measurement.
pub(crate) fn append_result<T: Serialize>(file: &str, value: &T) {
    use std::io::Write;
    let dir = results_dir();
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{file}.jsonl")))?;
        let line = serde_json::to_string(value).map_err(std::io::Error::other)?;
        writeln!(f, "{line}")
    };
    if let Err(e) = write() {
        eprintln!("could not write result to {}: {e}", dir.display());
    }
}

/// The processor's default operators: the totals and 1-minute bars.
pub(crate) fn default_operators() -> tickshard::operator::OperatorSet {
    tickshard::operator::OperatorSet::builtin(
        &[tickshard::operator::bars::BarWidth::ONE_MINUTE],
        &[],
        None,
    )
    .unwrap_or_default()
}
