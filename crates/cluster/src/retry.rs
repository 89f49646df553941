//! How long a retry loop waits after a failure: exponential backoff that
//! the error's classifier steers.
//!
//! A failure that may pass by itself (the network, a timeout, Redis
//! loading or restarting: `is_retryable()` of the error) is retried soon,
//! then less and less often. One that will not pass by itself (refused
//! credentials or permissions, a reply no script returns) waits the
//! longest delay at once: retrying stays useful, because an operator may
//! fix the cause, but hammering Redis is not.
//!
//! ```
//! use std::time::Duration;
//! use tickshard_cluster::retry::Backoff;
//!
//! let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
//! assert_eq!(b.after_failure(true), Duration::from_millis(50));
//! assert_eq!(b.after_failure(true), Duration::from_millis(100));
//! assert_eq!(b.after_failure(false), Duration::from_secs(2));
//! b.reset();
//! assert_eq!(b.after_failure(true), Duration::from_millis(50));
//! ```

use std::time::Duration;

/// True when a Redis error may pass by itself: redis-rs's own
/// classification ([`redis::RedisError::retry_method`]: a dropped or
/// refused connection, a timeout, `LOADING`, `TRYAGAIN`, a failover),
/// except refused credentials, which only an operator fixes.
pub fn redis_is_transient(e: &redis::RedisError) -> bool {
    !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
        && e.kind() != redis::ErrorKind::AuthenticationFailed
}

/// Exponential backoff between `first` and `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits `first` after the first retryable failure, doubling up to `cap`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        let cap = cap.max(first);
        Self {
            first,
            cap,
            next: first,
        }
    }

    /// The wait after a failure that `retryable` classifies.
    pub fn after_failure(&mut self, retryable: bool) -> Duration {
        if !retryable {
            self.next = self.cap;
            return self.cap;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.cap);
        wait
    }

    /// A success: the next failure starts over at `first`.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// True when no failure happened since the last [`reset`](Self::reset).
    pub fn is_fresh(&self) -> bool {
        self.next == self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_on_success() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<_> = (0..4).map(|_| b.after_failure(true)).collect();
        assert_eq!(
            waits,
            [100, 200, 350, 350].map(Duration::from_millis).to_vec()
        );
        assert!(!b.is_fresh());
        b.reset();
        assert!(b.is_fresh());
    }

    #[test]
    fn a_failure_that_will_not_pass_waits_the_longest_at_once() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(b.after_failure(false), Duration::from_secs(2));
        assert_eq!(b.after_failure(true), Duration::from_secs(2));
    }
}
