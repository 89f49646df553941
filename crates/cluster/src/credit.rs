//! Credit-based flow control of data messages between instances.
//!
//! A sender charges every data message it is about to send with the units
//! it carries (a service chooses the unit: items, bytes, requests) and
//! stamps it with the running total it has charged to that destination
//! (the message's *mark*). The receiver, once its consumer has processed a
//! message, reports the latest mark it consumed from each sender back to
//! that sender in small `ack` messages: at once (at most every
//! [`ACK_SPACING`]) once [`ACK_UNITS`] are unacknowledged, otherwise every
//! [`ACK_EVERY`], so a quiet link costs few messages. The
//! sender's units *in flight* to a destination are then
//! `charged − acknowledged`: queued locally, in Redis, in the receiver's
//! inbox, or being processed. A sender that keeps this below a window
//! bounds every buffer between itself and the receiver, so a slow receiver
//! slows its senders instead of Redis buffering without limit (and, past
//! its output-buffer limit, dropping the subscriber).
//!
//! Acknowledgements are cumulative, so a lost ack is repaired by the next;
//! a receiver that restarts acknowledges whatever marks it sees next. A
//! destination that has died acknowledges nothing: the sender decides how
//! long it waits ([`ClusterHandle::forgive`]).

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::handle::ClusterHandle;
use super::messaging::MessageKind;
use crate::ids::InstanceId;
use rustc_hash::FxHashMap;

/// Units consumed from one sender that are acknowledged at once (within
/// [`ACK_SPACING`]); smaller amounts wait for [`ACK_EVERY`]. Senders'
/// windows should be several times this.
pub const ACK_UNITS: u64 = 4096;

/// How often smaller pending acknowledgements are sent.
pub const ACK_EVERY: Duration = Duration::from_millis(20);

/// Shortest time between two rounds of acknowledgements.
pub const ACK_SPACING: Duration = Duration::from_millis(1);

#[derive(Debug, Default, Clone, Copy)]
struct Outgoing {
    charged: u64,
    acked: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Incoming {
    consumed: u64,
    reported: u64,
}

/// Both sides' counters of one instance.
#[derive(Debug, Default)]
pub(crate) struct Credits {
    outgoing: Mutex<FxHashMap<InstanceId, Outgoing>>,
    incoming: Mutex<FxHashMap<InstanceId, Incoming>>,
}

impl Credits {
    /// Charges `units` to `to`; returns the mark for the message.
    pub(crate) fn charge(&self, to: &InstanceId, units: u64) -> u64 {
        let Ok(mut out) = self.outgoing.lock() else {
            return 0;
        };
        let o = out.entry(to.clone()).or_default();
        o.charged += units;
        o.charged
    }

    /// Units charged to `to` and not yet acknowledged.
    pub(crate) fn in_flight(&self, to: &InstanceId) -> u64 {
        self.outgoing
            .lock()
            .ok()
            .and_then(|out| out.get(to).map(|o| o.charged.saturating_sub(o.acked)))
            .unwrap_or(0)
    }

    /// `from` acknowledged everything up to `mark`; true if that moved.
    pub(crate) fn acknowledged(&self, from: &InstanceId, mark: u64) -> bool {
        let Ok(mut out) = self.outgoing.lock() else {
            return false;
        };
        match out.get_mut(from) {
            Some(o) if mark > o.acked => {
                o.acked = mark;
                true
            }
            _ => false,
        }
    }

    /// Treats everything charged to `to` as acknowledged.
    pub(crate) fn forgive(&self, to: &InstanceId) {
        if let Ok(mut out) = self.outgoing.lock() {
            if let Some(o) = out.get_mut(to) {
                o.acked = o.charged;
            }
        }
    }

    /// The consumer processed `from`'s message stamped `mark`; true when
    /// enough is unacknowledged to acknowledge at once.
    pub(crate) fn consumed(&self, from: &InstanceId, mark: u64) -> bool {
        if mark == 0 {
            return false;
        }
        let Ok(mut inc) = self.incoming.lock() else {
            return false;
        };
        let i = match inc.get_mut(from) {
            Some(i) => i,
            None => inc.entry(from.clone()).or_default(),
        };
        i.consumed = mark;
        // A restarted sender's marks start again below what was reported.
        mark < i.reported || mark - i.reported >= ACK_UNITS
    }

    /// An acknowledgement to `from` could not be sent: send it again.
    pub(crate) fn unreport(&self, from: &InstanceId) {
        if let Ok(mut inc) = self.incoming.lock() {
            if let Some(i) = inc.get_mut(from) {
                i.reported = 0;
            }
        }
    }

    /// The acknowledgements to send now, marked as sent.
    pub(crate) fn take_acks(&self) -> Vec<(InstanceId, u64)> {
        let Ok(mut inc) = self.incoming.lock() else {
            return Vec::new();
        };
        inc.iter_mut()
            .filter(|(_, i)| i.consumed != i.reported)
            .map(|(from, i)| {
                i.reported = i.consumed;
                (from.clone(), i.consumed)
            })
            .collect()
    }
}

/// Sends the consumer's acknowledgements until `cancel`.
pub(crate) async fn run_acker(handle: ClusterHandle, cancel: CancellationToken) {
    let shared = &handle.shared;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = shared.acks_pending.notified() => {}
            _ = tokio::time::sleep(ACK_EVERY) => {}
        }
        for (to, mark) in shared.credits.take_acks() {
            let sent = handle
                .publish(&to, MessageKind::Ack, 0, mark, Bytes::new())
                .await;
            if let Err(e) = sent {
                tracing::debug!(%to, error = %e, "flow-control ack not sent; retrying");
                shared.credits.unreport(&to);
                shared.acks_pending.notify_one();
            }
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(ACK_SPACING) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstanceId {
        s.parse().unwrap()
    }

    #[test]
    fn in_flight_is_charged_minus_acknowledged() {
        let c = Credits::default();
        let b = id("b");
        assert_eq!(c.in_flight(&b), 0);
        assert_eq!(c.charge(&b, 10), 10);
        assert_eq!(c.charge(&b, 5), 15);
        assert_eq!(c.in_flight(&b), 15);
        assert!(c.acknowledged(&b, 10));
        assert_eq!(c.in_flight(&b), 5);
        // Acks are cumulative: an older one changes nothing.
        assert!(!c.acknowledged(&b, 4));
        assert_eq!(c.in_flight(&b), 5);
        c.forgive(&b);
        assert_eq!(c.in_flight(&b), 0);
        // An ack from an instance we never sent to is ignored.
        assert!(!c.acknowledged(&id("z"), 99));
        assert_eq!(c.in_flight(&id("z")), 0);
    }

    #[test]
    fn acks_report_the_latest_mark_once() {
        let c = Credits::default();
        let (a, b) = (id("a"), id("b"));
        assert!(!c.consumed(&a, 3));
        assert!(!c.consumed(&a, 7));
        assert!(!c.consumed(&b, 0)); // unmarked: not flow-controlled
        assert_eq!(c.take_acks(), vec![(a.clone(), 7)]);
        assert!(c.take_acks().is_empty());
        assert!(c.consumed(&a, 7 + ACK_UNITS), "a window's worth: at once");
        assert_eq!(c.take_acks(), vec![(a.clone(), 7 + ACK_UNITS)]);
        // A restarted sender numbers from the start again.
        assert!(c.consumed(&a, 2));
        assert_eq!(c.take_acks(), vec![(a, 2)]);
    }
}
