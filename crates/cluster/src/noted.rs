//! What the cluster layer notes about itself: each [`Noted`] event is
//! logged and counted in one call ([`Noted::emit`]), so a log line and its
//! counter in [`ClusterMetrics`](super::ClusterMetrics) can never drift
//! apart, and every level and message of the layer's own telemetry is
//! written here once.

use std::fmt::Display;

use tracing::{debug, info, warn};

use super::handle::Counters;
use crate::ids::{Epoch, PartitionId};

/// One thing worth a log line and a counter.
pub(crate) enum Noted<'a> {
    /// A lease was won.
    LeaseAcquired {
        partition: PartitionId,
        epoch: Epoch,
    },
    /// A lease was released on purpose (handover, shutdown).
    LeaseReleased {
        partition: PartitionId,
        epoch: Epoch,
    },
    /// A lease lapsed locally, was refused or taken.
    LeaseLost {
        partition: PartitionId,
        epoch: Epoch,
        reason: &'a str,
    },
    /// A renew round trip failed.
    RenewFailed,
    /// Leases won but not confirmed on every replica in time: given back,
    /// never acted on.
    AcquireUnconfirmed { partitions: u64, replicas: u64 },
    /// Handovers released without the data path's ack in time.
    HandoverAckTimeout { partitions: u64 },
    /// An inbox message that is not a valid envelope.
    BadInboxMessage { error: &'a dyn Display },
    /// A message on `{ns}:events` that is garbage or of an unknown kind.
    BadEvent { error: &'a dyn Display },
    /// A reply that matched no waiting request (late or foreign).
    UnmatchedReply,
}

impl Noted<'_> {
    /// Counts it and logs it.
    pub(crate) fn emit(self, counters: &Counters) {
        match self {
            Noted::LeaseAcquired { partition, epoch } => {
                counters.leases_acquired.inc();
                info!(%partition, %epoch, "lease acquired");
            }
            Noted::LeaseReleased { partition, epoch } => {
                counters.leases_released.inc();
                info!(%partition, %epoch, "lease released");
            }
            Noted::LeaseLost {
                partition,
                epoch,
                reason,
            } => {
                counters.leases_lost.inc();
                warn!(%partition, %epoch, reason, "lease lost; no longer acting as owner");
            }
            // The error itself is reported where the runtime decides on
            // its backoff.
            Noted::RenewFailed => counters.renew_failures.inc(),
            Noted::AcquireUnconfirmed {
                partitions,
                replicas,
            } => {
                counters.acquisitions_unconfirmed.add(partitions);
                warn!(
                    partitions,
                    replicas,
                    "leases won but not confirmed on every replica in time; given back, not acting as owner"
                );
            }
            Noted::HandoverAckTimeout { partitions } => {
                counters.handover_ack_timeouts.add(partitions);
                warn!(partitions, "no handover ack in time; releasing anyway");
            }
            Noted::BadInboxMessage { error } => {
                counters.bad_inbox_messages.inc();
                debug!(%error, "ignored a bad inbox message");
            }
            Noted::BadEvent { error } => {
                counters.bad_events.inc();
                debug!(%error, "ignored a bad event message");
            }
            Noted::UnmatchedReply => {
                counters.unmatched_replies.inc();
                debug!("ignored a reply that matched no waiting request");
            }
        }
    }
}
