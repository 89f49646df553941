//! The [`Metrics`] registry: cumulative counters and latency recorders that
//! the data path updates from many tasks, and that the stats publisher and
//! `/metrics` read.
//!
//! Counters are [`Counter`]s (one relaxed `fetch_add`, no lock). Bad input
//! is counted by kind ([`BadInput`]) in a fixed array indexed by the enum,
//! and reported as one event: [`Metrics::bad_input`] counts it and logs it,
//! at most once a second per kind, so a flood of bad input costs counter
//! increments, not a log line each.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::counter::Counter;
use crate::stats::bad_input::BadInput;
use crate::stats::latency::{LatencyKind, LatencyRecorder};

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Every named cumulative counter of a processor.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: Counter,)*
        }

        impl Counters {
            /// Names of the counters, in the order of [`Counters::values`].
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// What each counter counts (its doc comment, one line), in the
            /// order of [`Counters::NAMES`]: the `HELP` text on `/metrics`.
            pub const HELP: &'static [&'static str] = &[$(concat!($($doc),*)),*];

            /// `(name, value)` of every counter, in a fixed order.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.get())),*]
            }
        }

        /// The counters as they travel in the `{ns}:stats` JSON
        /// (`"counters":{...}`): cumulative since the instance started.
        /// Missing fields read as zero, unknown ones are ignored, so
        /// readers and writers of different versions get along.
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct CounterValues {
            $($(#[doc = $doc])* pub $name: u64,)*
            /// Bad input by kind.
            pub bad_input: std::collections::BTreeMap<String, u64>,
        }

        impl CounterValues {
            /// `(name, value)` of every named counter (bad input excluded).
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name)),*]
            }

            /// The value of the counter called `name`, if there is one.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $(stringify!($name) => Some(self.$name),)*
                    _ => None,
                }
            }

            /// Sum of all bad-input kinds.
            pub fn bad_input_total(&self) -> u64 {
                self.bad_input.values().fold(0u64, |a, b| a.saturating_add(*b))
            }
        }

        impl Metrics {
            /// The current counter values (bad input: non-zero kinds only).
            pub fn counter_values(&self) -> CounterValues {
                CounterValues {
                    $($name: self.counters.$name.get(),)*
                    bad_input: self
                        .bad_input_values()
                        .into_iter()
                        .filter(|(_, v)| *v > 0)
                        .map(|(k, v)| (k.as_str().to_string(), v))
                        .collect(),
                }
            }
        }
    };
}

counters! {
    /// Ticks received from the feed or `/ingest`.
    ticks_in,
    /// Ticks applied to a symbol owned here.
    applied,
    /// Ticks forwarded to their owner.
    forwarded_out,
    /// Ticks received forwarded from another instance.
    forwarded_in,
    /// Forwarded ticks that arrived at a former owner and were forwarded again.
    reforwarded,
    /// Ticks held in the engine: ahead of a sequence gap, or while their
    /// partition's stored state loads.
    held,
    /// Ticks held because their partition had no known owner.
    unrouted,
    /// Ticks dropped because a bounded hold buffer was full, the engine's
    /// or the one for ticks without a known owner (the gap fill asks the
    /// feed for them again).
    dropped,
    /// Forwarded ticks whose batch reached no listener or could not be
    /// published (the owner's gap fill asks the feed for them again).
    forward_undelivered,
    /// Ticks dropped as duplicates (`seq <= last_seq`).
    duplicates,
    /// Sequence gaps detected.
    gaps,
    /// Gaps given up on after the gap timeout.
    gaps_skipped,
    /// Replay requests sent to the feed.
    replays_requested,
    /// Replayed ticks received.
    replay_ticks,
    /// Writes rejected by fencing (a newer owner holds the partition).
    fenced_rejected,
    /// Leases acquired.
    leases_acquired,
    /// Leases released on purpose (handover, shutdown).
    leases_released,
    /// Leases lost (expired or taken over).
    leases_lost,
    /// Times intake paused because a destination's flow-control window was
    /// full (forwarded ticks not yet acknowledged).
    intake_paused_credit,
    /// Times intake paused because too many ticks were held here.
    intake_paused_held,
    /// Destinations that acknowledged nothing for too long and were
    /// forgiven their window.
    credit_forgiven,
}

/// The metrics of one processor instance. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    /// The named counters; update with e.g. `metrics.counters.applied.inc()`.
    pub counters: Counters,
    bad_input: [Counter; BadInput::ALL.len()],
    bad_input_logs: [LogThrottle; BadInput::ALL.len()],
    /// End-to-end latency (feed `sent_ns` → applied), microseconds.
    pub e2e_us: LatencyRecorder,
    /// Forward hop latency (PUBLISH → received), microseconds.
    pub forward_us: LatencyRecorder,
    /// Flush duration, microseconds.
    pub flush_us: LatencyRecorder,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All counters zero, all histograms empty.
    pub fn new() -> Self {
        Self {
            counters: Counters::default(),
            bad_input: Default::default(),
            bad_input_logs: Default::default(),
            e2e_us: LatencyRecorder::new(),
            forward_us: LatencyRecorder::new(),
            flush_us: LatencyRecorder::new(),
        }
    }

    /// Reports one piece of refused input of `kind` (e.g.
    /// `CodecError::kind()`): counts it, and logs `detail` (what was wrong
    /// and where) unless this kind was logged less than a second ago; the
    /// next line says how many went unlogged meanwhile.
    pub fn bad_input(&self, kind: BadInput, detail: &dyn Display) {
        let i = kind.index();
        let (Some(count), Some(log)) = (self.bad_input.get(i), self.bad_input_logs.get(i)) else {
            return;
        };
        count.inc();
        if let Some(unlogged) = log.admit(count.get()) {
            if kind == BadInput::CorruptState {
                tracing::error!(%kind, unlogged, "{detail}");
            } else {
                tracing::warn!(%kind, unlogged, "{detail}");
            }
        }
    }

    /// `(kind, count)` for every bad-input kind, zeros included, in the
    /// order of [`BadInput::ALL`].
    pub fn bad_input_values(&self) -> Vec<(BadInput, u64)> {
        BadInput::ALL
            .iter()
            .zip(self.bad_input.iter())
            .map(|(k, c)| (*k, c.get()))
            .collect()
    }

    /// The recorder of one latency kind.
    pub fn latency(&self, kind: LatencyKind) -> &LatencyRecorder {
        match kind {
            LatencyKind::E2e => &self.e2e_us,
            LatencyKind::Forward => &self.forward_us,
            LatencyKind::Flush => &self.flush_us,
        }
    }
}

/// When one kind of bad input was last logged (ms on a monotonic clock,
/// 0 for never), and its count then.
#[derive(Debug, Default)]
struct LogThrottle {
    at_ms: AtomicU64,
    count_then: AtomicU64,
}

/// Milliseconds on a monotonic clock, from 1 (0 means "never").
fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

impl LogThrottle {
    /// Whether to log now, with the count reached `count`: `Some(events
    /// not logged since the last line)` at most once a second.
    fn admit(&self, count: u64) -> Option<u64> {
        self.admit_at(count, monotonic_ms())
    }

    /// [`LogThrottle::admit`] at `now` (monotonic ms, from 1).
    fn admit_at(&self, count: u64, now: u64) -> Option<u64> {
        let last = self.at_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < 1_000 {
            return None;
        }
        self.at_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        let then = self.count_then.swap(count, Ordering::Relaxed);
        Some(count.saturating_sub(then).saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_bad_input() {
        let m = Metrics::new();
        m.counters.ticks_in.add(5);
        m.counters.leases_lost.inc();
        m.bad_input(BadInput::MalformedJson, &"not json");
        m.bad_input(BadInput::OversizedFrame, &"too big");
        m.bad_input(BadInput::OversizedFrame, &"too big");
        let values = m.counters.values();
        assert_eq!(values.len(), Counters::NAMES.len());
        assert!(values.contains(&("ticks_in", 5)));
        assert!(values.contains(&("leases_lost", 1)));
        let bad = m.bad_input_values();
        assert_eq!(bad.len(), BadInput::ALL.len());
        assert!(bad.contains(&(BadInput::MalformedJson, 1)));
        assert!(bad.contains(&(BadInput::OversizedFrame, 2)));
        assert!(bad.contains(&(BadInput::Truncated, 0)));
    }

    #[test]
    fn stats_json_keeps_the_string_labels() {
        let m = Metrics::new();
        m.bad_input(BadInput::TrailingBytes, &"3 bytes left");
        let v = m.counter_values();
        assert_eq!(v.bad_input.get("trailing_bytes"), Some(&1));
        assert_eq!(v.bad_input.len(), 1, "zero kinds are left out");
        assert_eq!(v.bad_input_total(), 1);
    }

    #[test]
    fn a_flood_is_logged_once_a_second_with_the_unlogged_count() {
        let t = LogThrottle::default();
        assert_eq!(t.admit_at(1, 5), Some(0), "the first is logged");
        for n in 2..100 {
            assert_eq!(
                t.admit_at(n, 5 + n * 9),
                None,
                "the rest of the second is not"
            );
        }
        assert_eq!(
            t.admit_at(100, 1_005),
            Some(98),
            "a second later the next line counts the 98 between"
        );
    }
}
