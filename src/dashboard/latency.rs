//! Cluster latency by second: the one source of both the latency cards and
//! the latency chart.
//!
//! Every `{ns}:stats` message carries an instance's interval histograms and
//! the time its interval ended (`ts_ms`, by the instance's clock). They are
//! added into the bucket of that second, so a bucket is the merged
//! histogram of every interval that ended in that second, whenever its
//! message arrived (a busy dashboard that reads a message late still files
//! it under its own second). From the same buckets:
//!
//! - the cards: the last [`LATENCY_WINDOW_S`] complete seconds, merged
//!   ([`ClusterLatency::card_window`]);
//! - the chart: one point per complete second, from that second's bucket
//!   alone ([`ClusterLatency::point`]).
//!
//! So a card over one second is that second's chart point, and a card over
//! N seconds is the merged histogram of the N points' seconds (never an
//! average of their percentiles), which is what the cluster bench computes
//! from the same messages.
//!
//! A message stamped more than [`LATE_S`] seconds before or [`AHEAD_S`]
//! seconds after the dashboard's clock (a badly set clock) is filed under
//! the second it arrived instead, and counted as misdated.

use hdrhistogram::Histogram;

use crate::dashboard::model::LatencySummary;
use crate::dashboard::window::{LatencyWindow, SecondsWindow};
use crate::stats::LatencyKind;

/// Default length of the cards' window: the last this many complete seconds.
pub const LATENCY_WINDOW_S: u64 = 5;
/// A second takes stats messages (and its chart point may change) until
/// this many seconds after it.
pub const LATE_S: u64 = 10;
/// Stats stamped up to this many seconds ahead of the dashboard's clock
/// are still filed under their own second (clocks a little apart).
pub const AHEAD_S: u64 = 2;

/// Where a stats message's histograms went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filed {
    /// The second they were added to.
    pub sec: u64,
    /// False when the message's own time was implausible and the arrival
    /// second was used instead.
    pub on_time: bool,
}

/// The second a stats interval that ended at `ts_ms` (instance clock) and
/// arrived at `now_ms` (dashboard clock) is filed under.
pub fn file_under(now_ms: u64, ts_ms: u64) -> Filed {
    let (now_sec, ts_sec) = (now_ms / 1000, ts_ms / 1000);
    if ts_sec + LATE_S >= now_sec && ts_sec <= now_sec + AHEAD_S {
        Filed {
            sec: ts_sec,
            on_time: true,
        }
    } else {
        Filed {
            sec: now_sec,
            on_time: false,
        }
    }
}

/// Per-second merged latency histograms and the cards' window length.
#[derive(Debug)]
pub struct ClusterLatency {
    buckets: LatencyWindow,
    card_s: u64,
}

impl ClusterLatency {
    /// Cards over the last `card_s` complete seconds (1 ..= [`LATE_S`]).
    pub fn new(card_s: u64) -> Self {
        Self {
            buckets: LatencyWindow::new(LATE_S + 1),
            card_s: card_s.clamp(1, LATE_S),
        }
    }

    /// Adds one stats message's histograms (received at `now_ms`, its
    /// interval ended at `ts_ms`) and forgets seconds too old to change.
    pub fn add(
        &mut self,
        now_ms: u64,
        ts_ms: u64,
        hists: &[(LatencyKind, Histogram<u64>)],
    ) -> Filed {
        let filed = file_under(now_ms, ts_ms);
        for (kind, h) in hists {
            if !h.is_empty() {
                self.buckets.add(filed.sec, *kind, h);
            }
        }
        self.expire(now_ms);
        filed
    }

    /// Forgets the seconds older than [`LATE_S`].
    pub fn expire(&mut self, now_ms: u64) {
        self.buckets.expire(now_ms / 1000);
    }

    /// The oldest second still kept (and still able to change) at `now_ms`.
    pub fn oldest_kept(&self, now_ms: u64) -> u64 {
        self.buckets.oldest_kept(now_ms / 1000)
    }

    /// The cards' window at `now_ms`: the last complete seconds.
    pub fn card_window(&self, now_ms: u64) -> SecondsWindow {
        SecondsWindow::last_complete(now_ms, self.card_s)
    }

    /// Merged percentiles of `kind` over `window`.
    pub fn summary(&self, kind: LatencyKind, window: SecondsWindow) -> LatencySummary {
        self.buckets.summary(kind, window)
    }

    /// The chart's latency for second `sec`: end-to-end percentiles and
    /// the forward hop's p99.
    pub fn point(&self, sec: u64) -> (LatencySummary, u64) {
        let one = SecondsWindow::second(sec);
        (
            self.summary(LatencyKind::E2e, one),
            self.summary(LatencyKind::Forward, one).p99,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        crate::stats::latency::histogram_of(values)
    }

    #[test]
    fn files_by_the_instance_clock_within_bounds() {
        // On time, a little late, a little ahead: their own second.
        assert_eq!(
            file_under(10_300, 10_100),
            Filed {
                sec: 10,
                on_time: true
            }
        );
        assert_eq!(
            file_under(13_000, 9_999),
            Filed {
                sec: 9,
                on_time: true
            }
        );
        assert_eq!(
            file_under(10_000, 12_500),
            Filed {
                sec: 12,
                on_time: true
            }
        );
        assert_eq!(file_under(20_000, 10_000).sec, 10);
        // Too old or too far ahead: the arrival second, flagged.
        assert_eq!(
            file_under(21_000, 10_999),
            Filed {
                sec: 21,
                on_time: false
            }
        );
        assert_eq!(
            file_under(10_000, 13_000),
            Filed {
                sec: 10,
                on_time: false
            }
        );
        assert_eq!(
            file_under(500, 0),
            Filed {
                sec: 0,
                on_time: true
            }
        );
    }

    #[test]
    fn a_one_second_card_is_that_seconds_point() {
        let mut l = ClusterLatency::new(1);
        l.add(10_100, 10_050, &[(LatencyKind::E2e, hist(&[100, 200]))]);
        l.add(10_900, 10_800, &[(LatencyKind::E2e, hist(&[900]))]);
        l.add(11_200, 11_100, &[(LatencyKind::E2e, hist(&[5_000]))]);
        let w = l.card_window(11_300);
        assert_eq!(w, SecondsWindow::second(10));
        let card = l.summary(LatencyKind::E2e, w);
        assert_eq!(card, l.point(10).0);
        assert_eq!(card.count, 3);
        assert_eq!(card.p50, 200);
        // A late message for second 10 changes both alike.
        l.add(11_600, 10_990, &[(LatencyKind::E2e, hist(&[300]))]);
        let card = l.summary(LatencyKind::E2e, l.card_window(11_700));
        assert_eq!(card.count, 4);
        assert_eq!(card, l.point(10).0);
    }

    #[test]
    fn old_seconds_are_forgotten() {
        let mut l = ClusterLatency::new(LATENCY_WINDOW_S);
        l.add(10_000, 10_000, &[(LatencyKind::E2e, hist(&[1]))]);
        assert_eq!(l.point(10).0.count, 1);
        l.expire((10 + LATE_S) * 1000);
        assert_eq!(l.point(10).0.count, 1);
        l.expire((11 + LATE_S) * 1000);
        assert_eq!(l.point(10).0.count, 0);
    }
}
