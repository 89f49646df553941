//! Latency recorders: HDR histograms in microseconds that many tasks record
//! into at once, and that the stats publisher drains once per interval.
//!
//! # Why striped mutexes
//!
//! Each [`LatencyRecorder`] holds a small fixed number of stripes, each a
//! `std::sync::Mutex<Histogram<u64>>`. A recording thread always uses the
//! same stripe (picked round-robin the first time the thread records), so
//! on a tokio runtime with one worker per core two workers practically
//! never meet on one lock: a record is an uncontended lock, one array
//! increment and an unlock (tens of nanoseconds), and no lock is ever held
//! across an `.await`. The publisher swaps every stripe for an empty,
//! pre-allocated histogram (a pointer swap under the lock) and merges the
//! stripes outside the lock.
//!
//! The alternative, a task-local histogram handed to the publisher, moves
//! the bookkeeping to every recording task (registration, flush on a timer,
//! flush on exit) and delays samples of idle tasks; the stripes give the
//! same cost on the hot path with a one-call API.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

/// Lowest value a latency histogram tracks, in microseconds.
pub const LOWEST_US: u64 = 1;
/// Highest value a latency histogram tracks (60 s), in microseconds; larger
/// values are clamped to it.
pub const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept by the latency histograms.
pub const SIGFIG: u8 = 3;

const STRIPES: usize = 8;

/// A new empty latency histogram (1 µs ..= 60 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds that satisfy the crate's preconditions (low >= 1,
    // high >= 2 * low, sigfig <= 5): this cannot fail.
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// A histogram holding `values` (µs), for tests.
#[cfg(test)]
pub(crate) fn histogram_of(values: &[u64]) -> Histogram<u64> {
    let mut h = new_histogram();
    for v in values {
        h.saturating_record(*v);
    }
    h
}

/// The latency kinds a processor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LatencyKind {
    /// Feed `sent_ns` → tick applied by its owner.
    E2e,
    /// Forward hop: `PUBLISH` to an inbox → batch received by the owner.
    Forward,
    /// Duration of one fenced flush of dirty symbols.
    Flush,
}

impl LatencyKind {
    /// Every kind, in display order.
    pub const ALL: [LatencyKind; 3] = [LatencyKind::E2e, LatencyKind::Forward, LatencyKind::Flush];

    /// The field name in the `{ns}:stats` JSON (`e2e_us`, ...).
    pub fn field(self) -> &'static str {
        match self {
            LatencyKind::E2e => "e2e_us",
            LatencyKind::Forward => "forward_us",
            LatencyKind::Flush => "flush_us",
        }
    }

    /// The `kind` label in Prometheus output (`e2e`, `forward`, `flush`).
    pub fn label(self) -> &'static str {
        match self {
            LatencyKind::E2e => "e2e",
            LatencyKind::Forward => "forward",
            LatencyKind::Flush => "flush",
        }
    }
}

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

fn my_stripe() -> usize {
    STRIPE.with(|s| {
        let mut v = s.get();
        if v == usize::MAX {
            v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
            s.set(v);
        }
        v
    })
}

/// One latency series: the samples of the running interval (striped) and
/// the cumulative histogram of all closed intervals (for `/metrics`).
#[derive(Debug)]
pub struct LatencyRecorder {
    stripes: Vec<Mutex<Histogram<u64>>>,
    cumulative: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(new_histogram())).collect(),
            cumulative: Mutex::new(new_histogram()),
        }
    }

    /// Records one sample in microseconds (clamped to 1 µs ..= 60 s).
    pub fn record_us(&self, us: u64) {
        self.record_n_us(us, 1);
    }

    /// Records `n` samples of the same value in microseconds.
    pub fn record_n_us(&self, us: u64, n: u64) {
        let us = us.clamp(LOWEST_US, HIGHEST_US);
        if let Some(stripe) = self.stripes.get(my_stripe()) {
            let mut h = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            h.saturating_record_n(us, n);
        }
    }

    /// Records, under one lock, the time from each of `starts_ns` to
    /// `end_ns` (nanosecond timestamps); a start after `end_ns` (clock skew
    /// between hosts) is not a latency and is skipped. The
    /// worker collects a batch's send times and records them in one go,
    /// which costs a fraction of one locked record per sample.
    pub fn record_all_until_ns(&self, starts_ns: &[u64], end_ns: u64) {
        if starts_ns.is_empty() {
            return;
        }
        if let Some(stripe) = self.stripes.get(my_stripe()) {
            let mut h = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            for start in starts_ns.iter().filter(|s| **s <= end_ns) {
                let us = ((end_ns - start) / 1_000).clamp(LOWEST_US, HIGHEST_US);
                h.saturating_record(us);
            }
        }
    }

    /// Records the time from `start_ns` to `end_ns` (nanosecond
    /// timestamps, e.g. a tick's `sent_ns` and now); a negative span (clock
    /// skew between hosts) counts as the 1 µs minimum.
    pub fn record_between_ns(&self, start_ns: u64, end_ns: u64) {
        self.record_us(end_ns.saturating_sub(start_ns) / 1_000);
    }

    /// Records the time elapsed since `start`.
    pub fn record_since(&self, start: std::time::Instant) {
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.record_us(us);
    }

    /// Closes the running interval: returns its samples and adds them to
    /// the cumulative histogram.
    pub fn take_interval(&self) -> Histogram<u64> {
        let mut interval = new_histogram();
        for stripe in &self.stripes {
            // Most stripes stay empty (one per runtime thread is used);
            // allocating and zeroing a fresh histogram for them was a
            // visible cost in a profile.
            let taken = {
                let mut h = stripe.lock().unwrap_or_else(PoisonError::into_inner);
                if h.is_empty() {
                    continue;
                }
                std::mem::replace(&mut *h, new_histogram())
            };
            add_saturating(&mut interval, &taken);
        }
        let mut cumulative = self
            .cumulative
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        add_saturating(&mut cumulative, &interval);
        interval
    }

    /// All samples so far: closed intervals plus the running one.
    pub fn cumulative(&self) -> Histogram<u64> {
        let mut all = {
            let c = self
                .cumulative
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            c.clone()
        };
        for stripe in &self.stripes {
            let h = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            add_saturating(&mut all, &h);
        }
        all
    }
}

/// Adds `src` into `dst`; both come from [`new_histogram`] (same bounds),
/// so the addition cannot fail except on a counter overflow, which is
/// ignored rather than poisoning the stats.
pub fn add_saturating(dst: &mut Histogram<u64>, src: &Histogram<u64>) {
    if dst.add(src).is_err() {
        for v in src.iter_recorded() {
            dst.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_drained_and_kept_in_cumulative() {
        let r = LatencyRecorder::new();
        r.record_us(100);
        r.record_us(0); // clamped to 1
        r.record_us(u64::MAX); // clamped to 60 s
        let i = r.take_interval();
        assert_eq!(i.len(), 3);
        assert_eq!(i.min(), 1);
        assert!(i.max() >= HIGHEST_US);
        assert_eq!(r.take_interval().len(), 0);
        r.record_us(5);
        assert_eq!(r.cumulative().len(), 4);
        r.record_between_ns(1_000_000, 1_250_000);
        r.record_between_ns(2_000, 1_000); // skew: clamped to 1 µs
        let i = r.take_interval();
        assert_eq!(i.len(), 3);
        assert_eq!(i.max(), 250);
        assert_eq!(i.min(), 1);
        r.record_all_until_ns(&[1_000_000, 1_999_900, 3_000_000], 2_000_000);
        r.record_all_until_ns(&[], 2_000_000);
        let i = r.take_interval();
        assert_eq!(i.len(), 2, "the start after the end is skipped");
        assert_eq!(i.max(), 1000);
        assert_eq!(i.min(), 1);
    }

    #[test]
    fn records_from_many_threads_are_all_counted() {
        let r = std::sync::Arc::new(LatencyRecorder::new());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        r.record_us(t * 1000 + i + 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(r.take_interval().len(), 4000);
    }
}
