//! Pacing decisions, as pure functions of the time they are given.
//!
//! - [`TokenBucket`]: a target rate in ticks per second. Tokens accrue at
//!   the rate, up to a burst of a tenth of a second's worth (at least one
//!   batch), so timer granularity turns into bigger batches, not a lower
//!   rate, while a pause is not followed by an unbounded catch-up burst.
//! - [`ReplayClock`]: `--speed X` for recorded trades: a trade is due
//!   `(ts - first_ts) / X` after the replay started.

use std::time::{Duration, Instant};

/// Rate limiter handing out whole ticks.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket for `rate` ticks/s (> 0), empty at `now`.
    pub fn new(rate: f64, batch: usize, now: Instant) -> Self {
        Self {
            rate,
            burst: (rate * 0.1).max((batch as f64).min(rate)).max(1.0),
            tokens: 0.0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes up to `max` whole tokens available at `now`; returns how many.
    pub fn take(&mut self, max: usize, now: Instant) -> usize {
        self.refill(now);
        let n = (self.tokens.floor() as usize).min(max);
        self.tokens -= n as f64;
        n
    }

    /// How long from `now` until at least one token is available.
    pub fn wait(&self, now: Instant) -> Duration {
        let missing = 1.0 - self.tokens;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        let since = now.saturating_duration_since(self.last);
        Duration::from_secs_f64(missing / self.rate).saturating_sub(since)
    }

    /// Forgets the time spent paused (no client connected), so the bucket
    /// does not count it as earned.
    pub fn resume(&mut self, now: Instant) {
        self.last = now;
    }
}

/// When recorded trades are due under `--speed`.
#[derive(Debug, Clone, Copy)]
pub struct ReplayClock {
    speed: f64,
    start: Instant,
    first_ts_ns: Option<u64>,
}

impl ReplayClock {
    /// A clock replaying at `speed` times real time, started at `start`.
    pub fn new(speed: f64, start: Instant) -> Self {
        Self {
            speed,
            start,
            first_ts_ns: None,
        }
    }

    /// When the trade stamped `ts_ns` is due (trades earlier than the first
    /// one are due at once).
    pub fn due(&mut self, ts_ns: u64) -> Instant {
        let first = *self.first_ts_ns.get_or_insert(ts_ns);
        let offset_ns = ts_ns.saturating_sub(first) as f64 / self.speed;
        self.start + Duration::from_nanos(offset_ns as u64)
    }

    /// Shifts the clock by a pause (no client connected).
    pub fn shift(&mut self, paused: Duration) {
        self.start += paused;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_hands_out_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 100, t0);
        assert_eq!(b.take(1000, t0), 0);
        assert_eq!(b.wait(t0), Duration::from_millis(1));
        let mut total = 0;
        for ms in 1..=1000 {
            total += b.take(1000, t0 + Duration::from_millis(ms));
        }
        assert!((999..=1000).contains(&total), "{total}");
    }

    #[test]
    fn bucket_caps_bursts_and_batches() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 10, t0);
        // Ten seconds idle earn at most a tenth of a second's worth.
        assert_eq!(b.take(usize::MAX, t0 + Duration::from_secs(10)), 100);
        let mut b = TokenBucket::new(1000.0, 10, t0);
        assert_eq!(b.take(7, t0 + Duration::from_millis(50)), 7);
        assert_eq!(b.take(1000, t0 + Duration::from_millis(50)), 43);
    }

    #[test]
    fn slow_rates_work() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, 256, t0);
        assert_eq!(b.take(256, t0 + Duration::from_millis(999)), 0);
        assert_eq!(b.take(256, t0 + Duration::from_millis(1000)), 1);
        assert_eq!(b.take(256, t0 + Duration::from_millis(1500)), 0);
        // A long pause earns one tick, not a batch.
        assert_eq!(b.take(256, t0 + Duration::from_secs(100)), 1);
    }

    #[test]
    fn replay_clock_scales_time() {
        let t0 = Instant::now();
        let mut c = ReplayClock::new(2.0, t0);
        assert_eq!(c.due(10_000_000_000), t0);
        assert_eq!(c.due(12_000_000_000), t0 + Duration::from_secs(1));
        assert_eq!(c.due(5), t0);
        c.shift(Duration::from_secs(3));
        assert_eq!(c.due(12_000_000_000), t0 + Duration::from_secs(4));
    }
}
