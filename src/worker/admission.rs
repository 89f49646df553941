//! Admission of new feed input: the worker's flow control.
//!
//! New input is taken only while
//! - every destination this instance forwards to has fewer than the window
//!   of forwarded ticks in flight (charged, not yet acknowledged by its
//!   consumer: see [`crate::cluster::credit`]), so the direct path cannot
//!   run ahead of the forwarded one by more than a window and no buffer
//!   between two instances grows past it; and
//! - the ticks held here (ahead of gaps, behind loads, waiting for an
//!   owner) stay under a limit, well below the engine's hard cap, so a
//!   busy cluster slows its intake instead of dropping ticks.
//!
//! Closing admission stops the feed client's reads, and TCP pushes back on
//! the feed. Forwarded batches, ownership changes, flushes and gap fill go
//! on meanwhile, which is what reopens it. Two escapes keep a fault from
//! turning this into a stall: a destination that acknowledges nothing for
//! `stall_after` (it died, or its acks were lost) is forgiven, and the hold
//! limit is waived while a replay is outstanding, since the feed answers
//! replays on the same connection, behind the input not yet read.

use std::time::{Duration, Instant};

use crate::cluster::ClusterHandle;
use crate::stats::metrics::Counter;
use crate::tick::InstanceId;

/// Flow-control limits.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionConfig {
    /// Most forwarded ticks in flight to one destination before intake
    /// pauses.
    pub window: u64,
    /// Most ticks held here before intake pauses.
    pub hold_limit: usize,
    /// How long a full window may go without any acknowledgement before
    /// the destination is forgiven.
    pub stall_after: Duration,
    /// How long after a replay request the hold limit is waived.
    pub replay_grace: Duration,
}

/// Why intake is paused, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    /// A destination's window is full.
    Credit,
    /// Too many ticks held here.
    Held,
}

/// The admission state.
#[derive(Debug)]
pub(super) struct Admission {
    cfg: AdmissionConfig,
    /// Since when a full window has waited, and the in-flight count then.
    waiting: Option<(Instant, u64)>,
    last_replay: Option<Instant>,
}

impl Admission {
    pub(super) fn new(cfg: AdmissionConfig) -> Self {
        Self {
            cfg,
            waiting: None,
            last_replay: None,
        }
    }

    /// A replay was just requested.
    pub(super) fn replay_requested(&mut self, now: Instant) {
        self.last_replay = Some(now);
    }

    /// Whether new input may be taken now; `None` means yes.
    pub(super) fn check<'a>(
        &mut self,
        held: usize,
        destinations: impl Iterator<Item = &'a InstanceId>,
        cluster: &ClusterHandle,
        forgiven: &Counter,
        now: Instant,
    ) -> Option<Closed> {
        let replaying = self
            .last_replay
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.replay_grace);
        if held >= self.cfg.hold_limit && !replaying {
            return Some(Closed::Held);
        }
        let mut full: Option<(&InstanceId, u64)> = None;
        for d in destinations {
            let n = cluster.in_flight(d);
            if n >= self.cfg.window {
                full = Some((d, n));
                break;
            }
        }
        let Some((dest, in_flight)) = full else {
            self.waiting = None;
            return None;
        };
        match self.waiting {
            // Progress (an ack arrived) restarts the wait.
            Some((since, seen)) if in_flight >= seen => {
                if now.saturating_duration_since(since) >= self.cfg.stall_after {
                    tracing::warn!(to = %dest, in_flight, waited = ?self.cfg.stall_after,
                        "no flow-control acknowledgement from the destination; sending on without it");
                    cluster.forgive(dest);
                    forgiven.inc();
                    self.waiting = None;
                    return None;
                }
            }
            _ => self.waiting = Some((now, in_flight)),
        }
        Some(Closed::Credit)
    }
}
