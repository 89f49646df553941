//! One line of the results file for a cluster run ([`ScenarioResult`],
//! `kind: "cluster"`) and how a run ended ([`Status`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::feed_summary::FeedFigures;
use super::lag::LagStats;
use super::leases::LeaseFigures;
use super::scenario::Scenario;
use super::slowlog::SlowlogFigures;
use super::window::{RateStats, Window};
use crate::common::Percentiles;

/// Which binaries ran: the ones of this checkout, or those named by
/// `TICKSHARD_BENCH_COMPARE_BINS` for a before → after comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BuildName {
    Previous,
    Current,
}

impl BuildName {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BuildName::Previous => "previous",
            BuildName::Current => "current",
        }
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

/// What the processors counted over the whole run (summed).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Flow {
    /// Ticks that had to be fetched again: dropped from a full hold
    /// buffer, or forwarded in a batch that reached nobody.
    pub(crate) dropped: u64,
    /// Ticks dropped as duplicates (`seq <= last_seq`).
    pub(crate) duplicates: u64,
    /// Replay requests sent to the feed, and the replayed ticks received.
    pub(crate) replays_requested: u64,
    pub(crate) replay_ticks: u64,
    /// Gaps given up on after the gap timeout.
    pub(crate) gaps_skipped: u64,
}

impl Flow {
    pub(crate) fn of(counters: &BTreeMap<String, u64>) -> Self {
        let c = |name: &str| counters.get(name).copied().unwrap_or(0);
        Self {
            dropped: c("dropped") + c("forward_undelivered"),
            duplicates: c("duplicates"),
            replays_requested: c("replays_requested"),
            replay_ticks: c("replay_ticks"),
            gaps_skipped: c("gaps_skipped"),
        }
    }
}

/// One line of the results file for a scenario run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioResult {
    pub(crate) kind: &'static str,
    pub(crate) build: BuildName,
    /// Where the binaries came from.
    pub(crate) bin_dir: String,
    pub(crate) label: String,
    pub(crate) scenario: Scenario,
    pub(crate) status: Status,
    pub(crate) reason: Option<String>,
    /// At least 15M ticks or 30 s of feeding: only then is the throughput
    /// claimed (shorter runs still count for exactness and latency).
    pub(crate) sustained: bool,
    /// Optional options left out because a build does not know them.
    pub(crate) options_dropped: Vec<String>,
    /// Ticks the feed sent (its ground truth).
    pub(crate) ticks: u64,
    /// Symbols that received at least one tick.
    pub(crate) symbols_with_ticks: usize,
    /// Seconds from cluster ready (or the first stats interval in which
    /// ticks were applied, if earlier) to stored state exact.
    pub(crate) elapsed_s: f64,
    /// `ticks / elapsed_s`: includes the final flush and settle.
    pub(crate) ticks_per_s: f64,
    /// The feed's own figures (achieved rate, seconds of sending, replays).
    pub(crate) feed: FeedFigures,
    /// The feed's first to last tick (wall clock ms).
    pub(crate) feed_window: Option<Window>,
    /// Cluster-wide applied ticks per second over the whole seconds of the
    /// feeding window, from the processors' counters.
    pub(crate) applied_per_s: RateStats,
    /// CPU seconds per process name over the run.
    pub(crate) cpu_s: BTreeMap<String, f64>,
    /// Seconds per process name spent runnable, waiting for a core.
    pub(crate) runq_wait_s: BTreeMap<String, f64>,
    /// Sum of `cpu_s` / ticks, in nanoseconds.
    pub(crate) cpu_ns_per_tick: f64,
    /// Cores of the machine (available parallelism).
    pub(crate) cores: usize,
    /// Sum of `cpu_s` / (wall seconds of the run × cores).
    pub(crate) cpu_busy: f64,
    /// The same over the feeding window (sampled twice a second).
    pub(crate) cpu_busy_feeding: Option<f64>,
    /// Peak RSS per process, MiB.
    pub(crate) rss_peak_mib: BTreeMap<String, f64>,
    /// The largest peak RSS of a processor, MiB.
    pub(crate) processor_rss_peak_mib: f64,
    pub(crate) e2e_us: Percentiles,
    pub(crate) forward_us: Percentiles,
    pub(crate) flush_us: Percentiles,
    /// Drops, duplicates, replays over the whole run.
    pub(crate) flow: Flow,
    /// Lease moves while the feed was sending.
    pub(crate) leases: LeaseFigures,
    /// Stored-state lag (lag runs only).
    pub(crate) lag: Option<LagStats>,
    /// Redis commands of the processes under test slower than 1 ms, from
    /// the cluster being ready to the state being exact.
    pub(crate) slowlog: Option<SlowlogFigures>,
    /// Stats messages received.
    pub(crate) stats_messages: usize,
    /// The processors' counters at the end (summed; zeros left out).
    pub(crate) counters: BTreeMap<String, u64>,
    /// 1-minute load average when the run ended.
    pub(crate) loadavg_1m: Option<f64>,
    /// The binaries came from `$TICKSHARD_BENCH_BIN_DIR` (e.g. the
    /// stand-ins that test the harness): not a measurement of tickshard.
    pub(crate) stand_ins: bool,
}

/// Whether the binaries are the harness's stand-ins.
pub(crate) fn stand_ins() -> bool {
    std::env::var_os(super::procs::BIN_DIR_ENV).is_some()
}

/// The 1-minute load average.
pub(crate) fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Cores the bench may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ScenarioResult {
    pub(crate) fn not_run(
        scenario: &Scenario,
        build: BuildName,
        bin_dir: &str,
        status: Status,
        reason: String,
    ) -> Self {
        Self {
            kind: "cluster",
            build,
            bin_dir: bin_dir.to_string(),
            label: scenario.label(),
            scenario: scenario.clone(),
            status,
            reason: Some(reason),
            sustained: false,
            options_dropped: Vec::new(),
            ticks: 0,
            symbols_with_ticks: 0,
            elapsed_s: 0.0,
            ticks_per_s: 0.0,
            feed: FeedFigures::default(),
            feed_window: None,
            applied_per_s: RateStats::default(),
            cpu_s: BTreeMap::new(),
            runq_wait_s: BTreeMap::new(),
            cpu_ns_per_tick: 0.0,
            cores: cores(),
            cpu_busy: 0.0,
            cpu_busy_feeding: None,
            rss_peak_mib: BTreeMap::new(),
            processor_rss_peak_mib: 0.0,
            e2e_us: Percentiles::default(),
            forward_us: Percentiles::default(),
            flush_us: Percentiles::default(),
            flow: Flow::default(),
            leases: LeaseFigures::default(),
            lag: None,
            slowlog: None,
            stats_messages: 0,
            counters: BTreeMap::new(),
            loadavg_1m: loadavg_1m(),
            stand_ins: stand_ins(),
        }
    }
}
