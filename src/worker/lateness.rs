//! How late forwarded ticks arrive, and so how long a gap may simply be
//! ticks still in flight.
//!
//! A gap opens whenever a later tick overtakes an earlier one, which under
//! round-robin input happens all the time: the earlier tick is on its way
//! through another instance and Redis. Asking the feed to replay after a
//! fixed 50 ms is right on a quiet cluster, but under saturation forwarded
//! ticks can be hundreds of milliseconds old when they arrive, and every
//! early replay sends thousands of ticks again as duplicates: load that
//! makes the next forward later still. Under flow control, an instance
//! whose window is full pauses its intake, so ticks waiting in its socket
//! age by the pause before they are forwarded; lateness rises in steps.
//! The replay delay therefore follows the oldest forwarded tick seen in
//! the last two to four seconds (four times that age), between the
//! configured delay and a cap.

use std::time::{Duration, Instant};

/// Length of one observation window.
const WINDOW: Duration = Duration::from_secs(2);

/// How many times the recent worst lateness a gap may simply be in flight.
const STRETCH: u32 = 4;

/// The oldest forwarded-tick age seen in the current and previous window.
#[derive(Debug)]
pub(super) struct Lateness {
    window_start: Instant,
    current: Duration,
    previous: Duration,
}

impl Lateness {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            current: Duration::ZERO,
            previous: Duration::ZERO,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            // A whole window without observations forgets the older one too.
            self.previous = if elapsed >= 2 * WINDOW {
                Duration::ZERO
            } else {
                self.current
            };
            self.current = Duration::ZERO;
            self.window_start = now;
        }
    }

    /// Records a forwarded tick that was `age` old on arrival.
    pub(super) fn observe(&mut self, age: Duration, now: Instant) {
        self.roll(now);
        self.current = self.current.max(age);
    }

    /// How long to wait before asking for a replay: [`STRETCH`] times the
    /// recent worst lateness, at least `base`, at most `cap`.
    pub(super) fn replay_delay(&mut self, now: Instant, base: Duration, cap: Duration) -> Duration {
        self.roll(now);
        let late = self.current.max(self.previous);
        (late * STRETCH).max(base).min(cap.max(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(50);
    const CAP: Duration = Duration::from_secs(2);

    #[test]
    fn quiet_cluster_uses_the_base_delay() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        assert_eq!(l.replay_delay(t0, BASE, CAP), BASE);
        l.observe(Duration::from_millis(3), t0);
        assert_eq!(l.replay_delay(t0, BASE, CAP), BASE);
    }

    #[test]
    fn late_forwards_stretch_the_delay_up_to_the_cap_then_it_recovers() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        l.observe(Duration::from_millis(120), t0);
        assert_eq!(l.replay_delay(t0, BASE, CAP), Duration::from_millis(480));
        l.observe(Duration::from_secs(5), t0);
        assert_eq!(l.replay_delay(t0, BASE, CAP), CAP);
        // Still remembered one window later...
        let t1 = t0 + WINDOW;
        assert_eq!(l.replay_delay(t1, BASE, CAP), CAP);
        // ...and forgotten after two quiet windows.
        let t3 = t0 + 3 * WINDOW;
        assert_eq!(l.replay_delay(t3, BASE, CAP), BASE);
    }

    #[test]
    fn a_cap_below_the_base_keeps_the_base() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        l.observe(Duration::from_secs(1), t0);
        assert_eq!(l.replay_delay(t0, BASE, Duration::from_millis(10)), BASE);
    }
}
