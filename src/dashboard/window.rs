//! Pure arithmetic of the dashboard: cluster-wide percentiles from merged
//! interval histograms over windows of whole seconds, and rates from
//! cumulative counters.
//!
//! Percentiles are never averaged: every instance's interval histogram is
//! added (`Histogram::add`) into a per-second bucket, and a window's
//! percentiles are read from the sum of its buckets, which is exactly the
//! histogram of all samples in the window. This is the merge the cluster
//! bench does over its `{ns}:stats` messages (decode, `add_saturating` into
//! a [`new_histogram`], `value_at_quantile`), so the same messages give
//! the same numbers.

use std::collections::VecDeque;

use hdrhistogram::Histogram;

use crate::dashboard::model::LatencySummary;
use crate::stats::latency::{add_saturating, new_histogram, LatencyKind};

/// Percentiles of `h` (zeros when empty).
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        count: h.len(),
    }
}

/// The sum of `hists` (one histogram holding every sample of all).
pub fn merge<'a>(hists: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut out = new_histogram();
    for h in hists {
        add_saturating(&mut out, h);
    }
    out
}

/// A window of whole seconds, `from_sec..=to_sec` (Unix seconds): the
/// stats intervals that ended at `from_sec * 1000` ms or later and before
/// `(to_sec + 1) * 1000` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondsWindow {
    /// First second of the window.
    pub from_sec: u64,
    /// Last second of the window (included).
    pub to_sec: u64,
}

impl SecondsWindow {
    /// One second.
    pub fn second(sec: u64) -> Self {
        Self {
            from_sec: sec,
            to_sec: sec,
        }
    }

    /// The last `seconds` whole seconds before the one `now_ms` falls in
    /// (the running second is not complete yet, so it is left out).
    pub fn last_complete(now_ms: u64, seconds: u64) -> Self {
        let to_sec = (now_ms / 1000).saturating_sub(1);
        Self {
            from_sec: to_sec.saturating_sub(seconds.max(1) - 1),
            to_sec,
        }
    }

    /// Whether a stats interval that ended at `ts_ms` belongs here.
    pub fn contains_ms(&self, ts_ms: u64) -> bool {
        (self.from_sec..=self.to_sec).contains(&(ts_ms / 1000))
    }

    /// Start of the window, ms since the Unix epoch.
    pub fn from_ms(&self) -> u64 {
        self.from_sec * 1000
    }

    /// End of the window (excluded), ms since the Unix epoch.
    pub fn to_ms(&self) -> u64 {
        (self.to_sec + 1) * 1000
    }

    /// Length in seconds.
    pub fn seconds(&self) -> u64 {
        self.to_sec + 1 - self.from_sec
    }
}

/// Latency histograms of the last few seconds, one bucket per second
/// holding the sum of every instance's interval histograms of each kind
/// filed under that second.
#[derive(Debug)]
pub struct LatencyWindow {
    keep_s: u64,
    buckets: VecDeque<(u64, [Histogram<u64>; 3])>,
}

fn kind_index(kind: LatencyKind) -> usize {
    match kind {
        LatencyKind::E2e => 0,
        LatencyKind::Forward => 1,
        LatencyKind::Flush => 2,
    }
}

impl LatencyWindow {
    /// Keeps the buckets of the last `keep_s` seconds.
    pub fn new(keep_s: u64) -> Self {
        Self {
            keep_s: keep_s.max(1),
            buckets: VecDeque::new(),
        }
    }

    /// Adds an interval histogram of `kind` filed under second `sec`.
    pub fn add(&mut self, sec: u64, kind: LatencyKind, h: &Histogram<u64>) {
        let pos = match self.buckets.iter().position(|(s, _)| *s == sec) {
            Some(p) => p,
            None => {
                let fresh = [new_histogram(), new_histogram(), new_histogram()];
                // Arrivals are almost always in order; keep the deque sorted.
                let at = self
                    .buckets
                    .iter()
                    .position(|(s, _)| *s > sec)
                    .unwrap_or(self.buckets.len());
                self.buckets.insert(at, (sec, fresh));
                at
            }
        };
        if let Some((_, hs)) = self.buckets.get_mut(pos) {
            if let Some(dst) = hs.get_mut(kind_index(kind)) {
                add_saturating(dst, h);
            }
        }
    }

    /// Drops buckets older than `keep_s` before `now_sec`.
    pub fn expire(&mut self, now_sec: u64) {
        let oldest = self.oldest_kept(now_sec);
        while self.buckets.front().is_some_and(|(s, _)| *s < oldest) {
            self.buckets.pop_front();
        }
    }

    /// The oldest second still kept when the clock reads second `now_sec`.
    pub fn oldest_kept(&self, now_sec: u64) -> u64 {
        now_sec.saturating_sub(self.keep_s - 1)
    }

    /// The merged histogram of `kind` over seconds `from_sec..=to_sec`.
    pub fn merged(&self, kind: LatencyKind, from_sec: u64, to_sec: u64) -> Histogram<u64> {
        let i = kind_index(kind);
        merge(
            self.buckets
                .iter()
                .filter(|(s, _)| *s >= from_sec && *s <= to_sec)
                .filter_map(|(_, hs)| hs.get(i)),
        )
    }

    /// The percentiles of `kind` over `window`.
    pub fn summary(&self, kind: LatencyKind, window: SecondsWindow) -> LatencySummary {
        summarize(&self.merged(kind, window.from_sec, window.to_sec))
    }
}

/// Per-second rate of a cumulative counter from `(ts_ms, value)` samples in
/// time order. A value that goes down means the instance restarted: only
/// the samples since the restart count. Fewer than two usable samples, or
/// no time between them, give 0.
pub fn counter_rate(samples: &[(u64, u64)]) -> f64 {
    let Some(&(last_ts, last_v)) = samples.last() else {
        return 0.0;
    };
    // Walk back while the counter did not go down.
    let mut first = (last_ts, last_v);
    for &(ts, v) in samples.iter().rev().skip(1) {
        if v > first.1 || ts > first.0 {
            break;
        }
        first = (ts, v);
    }
    let dt_ms = last_ts.saturating_sub(first.0);
    if dt_ms == 0 {
        return 0.0;
    }
    (last_v - first.1) as f64 * 1000.0 / dt_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        crate::stats::latency::histogram_of(values)
    }

    #[test]
    fn summarize_empty_is_zero() {
        assert_eq!(summarize(&new_histogram()), LatencySummary::default());
    }

    #[test]
    fn merged_is_not_an_average() {
        // One fast instance with many samples, one slow with few: the merged
        // median is the fast one's, unlike the mean of the two medians.
        let fast = hist(&[100; 99]);
        let slow = hist(&[10_000]);
        let s = summarize(&merge([&fast, &slow]));
        assert_eq!(s.p50, 100);
        assert_eq!(s.count, 100);
        assert!(s.max >= 10_000 && s.max <= 10_010);
    }

    #[test]
    fn window_expires_old_buckets() {
        let mut w = LatencyWindow::new(3);
        w.add(10, LatencyKind::E2e, &hist(&[1]));
        w.add(11, LatencyKind::E2e, &hist(&[2]));
        w.add(12, LatencyKind::Forward, &hist(&[3]));
        w.add(12, LatencyKind::E2e, &hist(&[4]));
        assert_eq!(w.merged(LatencyKind::E2e, 0, 99).len(), 3);
        w.add(13, LatencyKind::E2e, &hist(&[5]));
        assert_eq!(w.oldest_kept(13), 11);
        w.expire(13);
        assert_eq!(w.merged(LatencyKind::E2e, 0, 99).len(), 3); // bucket 10 gone
        assert_eq!(w.merged(LatencyKind::E2e, 13, 13).len(), 1);
        assert_eq!(w.merged(LatencyKind::Forward, 0, 99).len(), 1);
        // Out-of-order arrival lands in its own second.
        w.add(12, LatencyKind::E2e, &hist(&[6]));
        assert_eq!(w.merged(LatencyKind::E2e, 12, 12).len(), 2);
    }

    #[test]
    fn seconds_windows_name_their_span() {
        let w = SecondsWindow::last_complete(10_250, 5);
        assert_eq!((w.from_sec, w.to_sec, w.seconds()), (5, 9, 5));
        assert_eq!((w.from_ms(), w.to_ms()), (5_000, 10_000));
        assert!(w.contains_ms(5_000) && w.contains_ms(9_999));
        assert!(!w.contains_ms(4_999) && !w.contains_ms(10_000));
        assert_eq!(
            SecondsWindow::last_complete(10_999, 1),
            SecondsWindow::second(9)
        );
        // Zero seconds means one; near the epoch the window is clipped.
        assert_eq!(SecondsWindow::last_complete(10_000, 0).seconds(), 1);
        assert_eq!(SecondsWindow::last_complete(1_500, 5).from_sec, 0);
    }

    #[test]
    fn rates_from_cumulative_counters() {
        assert_eq!(counter_rate(&[]), 0.0);
        assert_eq!(counter_rate(&[(1000, 5)]), 0.0);
        assert_eq!(counter_rate(&[(1000, 0), (2000, 500)]), 500.0);
        assert_eq!(counter_rate(&[(1000, 0), (2000, 500), (3000, 1500)]), 750.0);
        // Restart: 900 -> 100 means the counter began again.
        assert_eq!(
            counter_rate(&[(1000, 800), (2000, 900), (3000, 100), (4000, 300)]),
            200.0
        );
        // No time elapsed.
        assert_eq!(counter_rate(&[(1000, 0), (1000, 10)]), 0.0);
    }
}
