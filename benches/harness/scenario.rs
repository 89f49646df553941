//! What one cluster run is: the [`Group`] it belongs to, the feed's mode,
//! processors, symbols, how long the feed sends (a tick count or a number
//! of seconds) and at what rate. The label built here is what
//! `TICKSHARD_BENCH_ONLY` matches and what the report groups runs by.

use serde::Serialize;

/// Cluster namespace of every bench run: the default one, so `feed-sim
/// --mode owner-aware` finds the leases without extra options (each run
/// has its own private Redis, so runs never share keys).
pub(crate) const NAMESPACE: &str = tickshard::keys::DEFAULT_NAMESPACE;
/// Partitions of a default cluster (all must be leased before we measure).
pub(crate) const PARTITIONS: usize = tickshard::partition::DEFAULT_PARTITIONS as usize;

/// A run's throughput is claimed only when it fed at least this many ticks
/// or for at least [`SUSTAINED_SECS`]: long enough to be past every buffer
/// (feed queues, socket buffers, the worker's input and hold queues).
pub(crate) const SUSTAINED_TICKS: u64 = 15_000_000;
/// See [`SUSTAINED_TICKS`].
pub(crate) const SUSTAINED_SECS: f64 = 30.0;

/// The scenario groups; each is selected by name (`--groups`,
/// `TICKSHARD_BENCH_GROUPS`) and its name starts every label of its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Group {
    /// The original matrix: modes × processors × symbols, fixed tick counts
    /// (short runs unless `TICKSHARD_BENCH_TICKS` makes them long).
    Matrix,
    /// Fixed feed rates, 30 s each: latency against throughput.
    Sweep,
    /// An unthrottled feed of at least 15M ticks.
    Overload,
    /// 10,000 and 100,000 symbols at 100k ticks/s.
    Symbols,
    /// The stored-state lag at 100k ticks/s (live `last_seq` → stored).
    Lag,
}

impl Group {
    /// Every group, in the order they run.
    pub(crate) const ALL: [Group; 5] = [
        Group::Matrix,
        Group::Sweep,
        Group::Overload,
        Group::Symbols,
        Group::Lag,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::Matrix => "matrix",
            Group::Sweep => "sweep",
            Group::Overload => "overload",
            Group::Symbols => "symbols",
            Group::Lag => "lag",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Scenario {
    pub(crate) group: Group,
    /// `round-robin` or `owner-aware`.
    pub(crate) mode: String,
    pub(crate) processors: usize,
    pub(crate) symbols: usize,
    /// Ticks the feed sends (`--ticks`); `None` when it sends for `secs`.
    pub(crate) ticks: Option<u64>,
    /// Seconds the feed sends (`--duration`); `None` when it sends `ticks`.
    pub(crate) secs: Option<f64>,
    /// Feed rate in ticks/s; `None` = unthrottled.
    pub(crate) rate: Option<u64>,
    /// Draw the symbols from the real S&P 500 universe (topped up with
    /// synthetic ones past its 524 symbols, which then get almost no
    /// ticks); `false`: a synthetic universe of `symbols` Zipf-weighted
    /// symbols, so that nearly all of them trade.
    pub(crate) real_universe: bool,
}

impl Scenario {
    /// A run of `ticks` ticks.
    pub(crate) fn ticks(
        group: Group,
        mode: &str,
        processors: usize,
        symbols: usize,
        ticks: u64,
        rate: Option<u64>,
    ) -> Self {
        Self {
            group,
            mode: mode.to_string(),
            processors,
            symbols,
            ticks: Some(ticks),
            secs: None,
            rate,
            real_universe: true,
        }
    }

    /// A run of `secs` seconds of sending at `rate`.
    pub(crate) fn timed(
        group: Group,
        processors: usize,
        symbols: usize,
        secs: f64,
        rate: u64,
    ) -> Self {
        Self {
            group,
            mode: "round-robin".to_string(),
            processors,
            symbols,
            ticks: None,
            secs: Some(secs),
            rate: Some(rate),
            real_universe: true,
        }
    }

    /// `sweep round-robin N=3 symbols=500 secs=30 rate=100000/s`; the rate
    /// ends in `/s` (or is `max`) so one step can be picked by
    /// `TICKSHARD_BENCH_ONLY=rate=100000/s`.
    pub(crate) fn label(&self) -> String {
        let rate = self.rate.map_or("max".to_string(), |r| format!("{r}/s"));
        let length = match (self.ticks, self.secs) {
            (Some(t), _) => format!("ticks={t}"),
            (None, Some(s)) => format!("secs={s}"),
            (None, None) => "ticks=?".to_string(),
        };
        format!(
            "{} {} N={} symbols={} {length} rate={rate}",
            self.group.name(),
            self.mode,
            self.processors,
            self.symbols
        )
    }

    /// The same with a synthetic universe.
    pub(crate) fn synthetic(mut self) -> Self {
        self.real_universe = false;
        self
    }

    /// Whether the run samples the stored-state lag while feeding.
    pub(crate) fn probes_lag(&self) -> bool {
        self.group == Group::Lag
    }

    /// How long to wait for the feed to send everything before giving up.
    pub(crate) fn send_budget(&self) -> std::time::Duration {
        let secs = match (self.ticks, self.secs) {
            (Some(t), _) => 30 + t / 20_000,
            (None, Some(s)) => 60 + s.ceil() as u64,
            (None, None) => 60,
        };
        std::time::Duration::from_secs(secs)
    }
}

/// Whether a run that fed `ticks` ticks in `send_secs` seconds is long
/// enough for its throughput to be claimed.
pub(crate) fn is_sustained(ticks: u64, send_secs: Option<f64>) -> bool {
    ticks >= SUSTAINED_TICKS || send_secs.is_some_and(|s| s >= SUSTAINED_SECS)
}
