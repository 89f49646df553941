//! The scenarios of each [`Group`], and the environment variables that
//! size them for a shorter test run:
//!
//! - `TICKSHARD_BENCH_TICKS=M`: ticks of the matrix (default 2,000,000
//!   unthrottled, half that at a fixed rate) and of the overload run
//!   (default 15,000,000);
//! - `TICKSHARD_BENCH_SECS=S`: seconds of sending of the sweep steps, the
//!   symbol-scaling runs and the lag run (default 30).
//!
//! Runs shortened below 15M ticks / 30 s still run, but their throughput is
//! marked as not sustained (not claimed).

use super::scenario::{Group, Scenario, SUSTAINED_SECS, SUSTAINED_TICKS};

/// The sweep's fixed feed rates, ticks/s.
pub(crate) const SWEEP_RATES: [u64; 7] = [
    100_000, 250_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000,
];
/// Symbol counts of the symbol-scaling group (synthetic universes).
pub(crate) const SYMBOL_COUNTS: [usize; 2] = [10_000, 100_000];
/// The fixed rate of the symbol-scaling and lag groups.
pub(crate) const PACED_RATE: u64 = 100_000;

/// Sizes read from the environment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sizes {
    pub(crate) ticks: Option<u64>,
    pub(crate) secs: Option<f64>,
}

impl Sizes {
    pub(crate) fn from_env() -> Self {
        Self {
            ticks: std::env::var("TICKSHARD_BENCH_TICKS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0),
            secs: std::env::var("TICKSHARD_BENCH_SECS")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0),
        }
    }
}

/// `--quick`: one unthrottled and one paced scenario (the paced one also
/// samples the stored-state lag), well under a minute in all.
pub(crate) fn quick() -> Vec<Scenario> {
    vec![
        Scenario::ticks(Group::Matrix, "round-robin", 3, 500, 300_000, None),
        Scenario::ticks(Group::Lag, "round-robin", 3, 500, 200_000, Some(PACED_RATE)),
    ]
}

/// The scenarios of `group`.
pub(crate) fn of(group: Group, sizes: Sizes) -> Vec<Scenario> {
    let secs = sizes.secs.unwrap_or(SUSTAINED_SECS);
    match group {
        Group::Matrix => matrix(sizes.ticks.unwrap_or(2_000_000)),
        Group::Sweep => SWEEP_RATES
            .iter()
            .map(|r| Scenario::timed(Group::Sweep, 3, 500, secs, *r))
            .collect(),
        Group::Overload => vec![Scenario::ticks(
            Group::Overload,
            "round-robin",
            3,
            500,
            sizes.ticks.unwrap_or(SUSTAINED_TICKS),
            None,
        )],
        // Synthetic: past the real universe's 524 symbols feed-sim's top-up
        // weighs so little that 100,000 symbols would trade as ~1,000.
        Group::Symbols => SYMBOL_COUNTS
            .iter()
            .map(|n| Scenario::timed(Group::Symbols, 3, *n, secs, PACED_RATE).synthetic())
            .collect(),
        Group::Lag => vec![Scenario::timed(Group::Lag, 3, 500, secs, PACED_RATE)],
    }
}

/// Runs of each scenario when `TICKSHARD_BENCH_REPEAT` is not set: three
/// of the short matrix runs (min / median / max), one of the long ones.
pub(crate) fn default_repeat(group: Group) -> usize {
    match group {
        Group::Matrix => 3,
        _ => 1,
    }
}

fn matrix(big: u64) -> Vec<Scenario> {
    let paced = (big / 2).max(100_000);
    let s = |mode: &str, n: usize, symbols: usize, ticks: u64, rate: Option<u64>| {
        Scenario::ticks(Group::Matrix, mode, n, symbols, ticks, rate)
    };
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
        out.push(s(mode, 3, 500, paced, Some(PACED_RATE)));
    }
    out
}
