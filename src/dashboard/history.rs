//! The charts' history: one [`HistoryPoint`] per complete second, oldest
//! first.
//!
//! A point's rates are the cluster rates when its second closed. Its
//! latency is its second's bucket of [`ClusterLatency`], the same bucket
//! the cards merge, and it follows that bucket: when a stats message for a
//! closed second arrives late, [`History::revise`] recomputes the point,
//! for as long as the bucket is kept. Seconds the dashboard missed (a
//! stalled process) get their points back-filled from the buckets when it
//! catches up, so every second in the cards' window has its point.

use std::collections::VecDeque;

use crate::dashboard::latency::ClusterLatency;
use crate::dashboard::model::HistoryPoint;

/// Chart history kept, in points (one per second).
pub const HISTORY_POINTS: usize = 300;

/// Cluster rates at the moment a second closes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Ticks received per second.
    pub ticks_per_s: f64,
    /// Ticks applied per second.
    pub applied_per_s: f64,
    /// Ticks forwarded per second.
    pub forwarded_per_s: f64,
}

/// The chart points.
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<HistoryPoint>,
    /// Every second up to this one has been closed (has its point, or
    /// came before the dashboard started).
    closed_to: Option<u64>,
}

/// The second a point describes (its `ts_ms` is the end of that second).
fn second_of(p: &HistoryPoint) -> u64 {
    (p.ts_ms / 1000).saturating_sub(1)
}

impl History {
    /// No points yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a call of [`History::close`] at `now_ms` adds a point.
    pub fn due(&self, now_ms: u64) -> bool {
        self.closed_to
            .is_some_and(|done| (now_ms / 1000).saturating_sub(1) > done)
    }

    /// Adds a point for every second that ended since the last call (the
    /// first call only starts the clock). Missed seconds whose buckets are
    /// still kept are back-filled with the current rates. Returns whether
    /// a point was added.
    pub fn close(&mut self, now_ms: u64, rates: Rates, latency: &ClusterLatency) -> bool {
        let last_complete = (now_ms / 1000).saturating_sub(1);
        let Some(done) = self.closed_to else {
            self.closed_to = Some(last_complete);
            return false;
        };
        if last_complete <= done {
            return false;
        }
        let from = (done + 1).max(latency.oldest_kept(now_ms));
        for sec in from..=last_complete {
            let (latency_us, forward_p99_us) = latency.point(sec);
            self.points.push_back(HistoryPoint {
                ts_ms: (sec + 1) * 1000,
                ticks_per_s: rates.ticks_per_s,
                applied_per_s: rates.applied_per_s,
                forwarded_per_s: rates.forwarded_per_s,
                latency_us,
                forward_p99_us,
            });
        }
        while self.points.len() > HISTORY_POINTS {
            self.points.pop_front();
        }
        self.closed_to = Some(last_complete);
        true
    }

    /// Recomputes the latency of second `sec`'s point, if it has one
    /// (its bucket just changed).
    pub fn revise(&mut self, sec: u64, latency: &ClusterLatency) {
        let Some(p) = self
            .points
            .iter_mut()
            .rev()
            .take_while(|p| second_of(p) >= sec)
            .find(|p| second_of(p) == sec)
        else {
            return;
        };
        (p.latency_us, p.forward_p99_us) = latency.point(sec);
    }

    /// The points, oldest first.
    pub fn points(&self) -> impl Iterator<Item = &HistoryPoint> {
        self.points.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, LatencyKind};

    fn e2e(values: &[u64]) -> [(LatencyKind, hdrhistogram::Histogram<u64>); 1] {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        [(LatencyKind::E2e, h)]
    }

    #[test]
    fn one_point_per_second_backfilled_and_revised() {
        let mut l = ClusterLatency::new(5);
        let mut h = History::new();
        assert!(!h.close(100_200, Rates::default(), &l)); // starts the clock
        l.add(100_300, 100_250, &e2e(&[100]));
        assert!(!h.due(100_900));
        assert!(h.due(101_000));
        assert!(h.close(101_010, Rates::default(), &l));
        l.add(101_400, 101_300, &e2e(&[200]));
        l.add(102_600, 102_500, &e2e(&[300]));
        // Stalled from 101.0 s to 104.1 s: seconds 101..=103 all get points.
        let rates = Rates {
            ticks_per_s: 7.0,
            ..Rates::default()
        };
        assert!(h.close(104_100, rates, &l));
        let secs: Vec<u64> = h.points().map(second_of).collect();
        assert_eq!(secs, [100, 101, 102, 103]);
        let counts: Vec<u64> = h.points().map(|p| p.latency_us.count).collect();
        assert_eq!(counts, [1, 1, 1, 0]);
        assert_eq!(h.points().last().map(|p| p.ticks_per_s), Some(7.0));
        // A late message for second 101 revises its point only.
        let filed = l.add(104_200, 101_999, &e2e(&[50_000]));
        h.revise(filed.sec, &l);
        let counts: Vec<u64> = h.points().map(|p| p.latency_us.count).collect();
        assert_eq!(counts, [1, 2, 1, 0]);
        assert_eq!(
            h.points().nth(1).map(|p| p.latency_us),
            Some(l.point(101).0)
        );
        // A second without a point yet: nothing to revise.
        h.revise(104, &l);
        assert_eq!(h.points().count(), 4);
    }
}
