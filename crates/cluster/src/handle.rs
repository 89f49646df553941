//! [`ClusterHandle`]: the cheap, cloneable face of the cluster for the rest
//! of the service: ownership view, members, metrics, events, and
//! instance-to-instance messages (fire-and-forget and request/reply).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::RedisConn;
use bytes::Bytes;
use tokio::sync::{broadcast, watch, Notify};

use super::config::Timings;
use super::credit::Credits;
use super::error::{ClusterError, RequestError};
use super::events::ClusterEvent;
use super::fenced::{FencedScript, FencedWrite, WriteOutcome};
use super::membership::MemberInfo;
use super::messaging::{Envelope, MessageKind, Pending};
use super::ownership::{OwnershipView, ViewCell};
use crate::clock::now_ns;
use crate::counter::Counter;
use crate::ids::InstanceId;
use crate::keys::ClusterKeys;

/// Counters of the cluster layer, cumulative since the instance joined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClusterMetrics {
    /// Leases acquired.
    pub leases_acquired: u64,
    /// Leases released (handover or shutdown).
    pub leases_released: u64,
    /// Leases lost (lapsed locally, refused or taken).
    pub leases_lost: u64,
    /// Renew round trips that failed (Redis error or timeout).
    pub renew_failures: u64,
    /// Leases won but given back because the replicas did not confirm
    /// them in time (see [`lease`](crate::lease)).
    pub acquisitions_unconfirmed: u64,
    /// Handovers released without the data path's ack in time.
    pub handover_ack_timeouts: u64,
    /// Inbox messages that were not valid envelopes.
    pub bad_inbox_messages: u64,
    /// Event messages that were garbage or of an unknown kind.
    pub bad_events: u64,
    /// Replies that matched no waiting request (late or foreign).
    pub unmatched_replies: u64,
    /// Payload bytes received on this instance's inbox (what pub/sub
    /// carried to it).
    pub inbox_bytes: u64,
}

/// The live counters behind [`ClusterMetrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) leases_acquired: Counter,
    pub(crate) leases_released: Counter,
    pub(crate) leases_lost: Counter,
    pub(crate) renew_failures: Counter,
    pub(crate) acquisitions_unconfirmed: Counter,
    pub(crate) handover_ack_timeouts: Counter,
    pub(crate) bad_inbox_messages: Counter,
    pub(crate) bad_events: Counter,
    pub(crate) unmatched_replies: Counter,
    pub(crate) inbox_bytes: Counter,
}

impl Counters {
    fn snapshot(&self) -> ClusterMetrics {
        ClusterMetrics {
            leases_acquired: self.leases_acquired.get(),
            leases_released: self.leases_released.get(),
            leases_lost: self.leases_lost.get(),
            renew_failures: self.renew_failures.get(),
            acquisitions_unconfirmed: self.acquisitions_unconfirmed.get(),
            handover_ack_timeouts: self.handover_ack_timeouts.get(),
            bad_inbox_messages: self.bad_inbox_messages.get(),
            bad_events: self.bad_events.get(),
            unmatched_replies: self.unmatched_replies.get(),
            inbox_bytes: self.inbox_bytes.get(),
        }
    }
}

/// State shared by the handle, the runtime and the subscriber.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) instance: InstanceId,
    pub(crate) keys: ClusterKeys,
    pub(crate) partitions: NonZeroU32,
    pub(crate) timings: Timings,
    pub(crate) view: ViewCell,
    pub(crate) counters: Counters,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
    pub(crate) broadcasts: broadcast::Sender<BroadcastMessage>,
    pub(crate) pending: Pending,
    pub(crate) next_correlation: AtomicU64,
    /// Connection for messages, separate from the lease connection so a
    /// burst of data never delays a renew.
    pub(crate) publisher: RedisConn,
    /// Flow-control counters of data messages, both directions.
    pub(crate) credits: Credits,
    /// Bumped whenever an acknowledgement frees credit.
    pub(crate) credit_version: watch::Sender<u64>,
    /// Woken when there is consumption to acknowledge.
    pub(crate) acks_pending: Notify,
}

/// Cloneable access to the cluster for the rest of the service.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ClusterHandle {
    /// This instance's id.
    pub fn instance(&self) -> &InstanceId {
        &self.shared.instance
    }

    /// The cluster's partition count.
    pub fn partitions(&self) -> NonZeroU32 {
        self.shared.partitions
    }

    /// The key namespace.
    pub fn keys(&self) -> &ClusterKeys {
        &self.shared.keys
    }

    /// The lease TTL.
    pub fn lease(&self) -> Duration {
        self.shared.timings.lease
    }

    /// The current ownership view (cheap: an `Arc` clone).
    pub fn view(&self) -> Arc<OwnershipView> {
        self.shared.view.get()
    }

    /// The view version; changes whenever the view does.
    pub fn view_changes(&self) -> watch::Receiver<u64> {
        self.shared.view.subscribe()
    }

    /// Live members with their HTTP addresses, as of the last full read.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.view().members().to_vec()
    }

    /// A connection to the cluster's Redis (multiplexed, reconnecting) for
    /// the service's own reads; writes that must be fenced go through
    /// [`Self::fenced_write`].
    pub fn redis(&self) -> RedisConn {
        self.shared.publisher.clone()
    }

    /// Counters.
    pub fn metrics(&self) -> ClusterMetrics {
        self.shared.counters.snapshot()
    }

    /// Events seen on `{ns}:events` (including our own). A receiver that
    /// falls more than 1024 events behind loses the oldest (`Lagged`).
    pub fn events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.shared.events.subscribe()
    }

    /// Messages broadcast by any instance, this one included, in the order
    /// this instance received them. A receiver that falls more than 1024
    /// messages behind loses the oldest (`Lagged`).
    pub fn broadcasts(&self) -> broadcast::Receiver<BroadcastMessage> {
        self.shared.broadcasts.subscribe()
    }

    /// Sends `payload` to every live instance (this one included) on
    /// `{ns}:broadcast`; returns how many received it. Like all pub/sub,
    /// at most once: an instance that is disconnected at that moment
    /// misses it.
    pub async fn broadcast(&self, payload: Bytes) -> Result<usize, ClusterError> {
        let channel = self.shared.keys.broadcast();
        self.publish_on(channel, MessageKind::Broadcast, 0, 0, payload)
            .await
    }

    /// Sends `payload` to `to`'s inbox; returns how many subscribers got
    /// it (0: nobody is listening, the message is gone).
    pub async fn send(
        &self,
        to: &InstanceId,
        hops: u8,
        payload: Bytes,
    ) -> Result<usize, ClusterError> {
        self.send_charged(to, hops, 0, payload).await
    }

    /// Charges `units` of flow-control credit to `to` for a data message
    /// about to be sent; returns the mark to send it with
    /// ([`Self::send_charged`]). Charge when the message is created, not
    /// when it is published, so local queues count as in flight too.
    pub fn charge(&self, to: &InstanceId, units: u64) -> u64 {
        self.shared.credits.charge(to, units)
    }

    /// Like [`Self::send`], for a message charged with [`Self::charge`].
    pub async fn send_charged(
        &self,
        to: &InstanceId,
        hops: u8,
        mark: u64,
        payload: Bytes,
    ) -> Result<usize, ClusterError> {
        self.publish(to, MessageKind::Data, hops, mark, payload)
            .await
    }

    /// Units charged to `to` that its consumer has not acknowledged yet.
    pub fn in_flight(&self, to: &InstanceId) -> u64 {
        self.shared.credits.in_flight(to)
    }

    /// Gives up waiting for `to`'s acknowledgements (it may be gone):
    /// everything charged to it counts as acknowledged.
    pub fn forgive(&self, to: &InstanceId) {
        self.shared.credits.forgive(to);
    }

    /// Changes whenever an acknowledgement frees credit.
    pub fn credit_changes(&self) -> watch::Receiver<u64> {
        self.shared.credit_version.subscribe()
    }

    /// Tells the sender of `msg` that it has been processed (acknowledged
    /// cumulatively, see [`credit`](super::credit)).
    pub fn consumed(&self, msg: &InboxMessage) {
        if self.shared.credits.consumed(&msg.from, msg.mark) {
            self.shared.acks_pending.notify_one();
        }
    }

    /// Runs `write` with `script` (see [`fenced`](crate::fenced)): only
    /// while this instance holds the partition at the write's epoch, and at
    /// most once per idempotency id. Bounded by the operation timeout.
    pub async fn fenced_write(
        &self,
        script: &FencedScript,
        write: &FencedWrite<'_>,
    ) -> Result<WriteOutcome, ClusterError> {
        let mut con = self.shared.publisher.clone();
        let after = self.shared.timings.op_timeout;
        let run = write.run(script, &mut con, &self.shared.keys, &self.shared.instance);
        match tokio::time::timeout(after, run).await {
            Ok(r) => r,
            Err(_) => Err(ClusterError::Timeout {
                op: "fenced write",
                after,
            }),
        }
    }

    /// Sends a request to `to` and waits for its reply.
    pub async fn request(
        &self,
        to: &InstanceId,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RequestError> {
        let id = self.shared.next_correlation.fetch_add(1, Ordering::Relaxed);
        let rx = self.shared.pending.insert(id);
        let guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let receivers = self
            .publish(to, MessageKind::Request, 0, id, payload)
            .await?;
        if receivers == 0 {
            return Err(RequestError::Unreachable { to: to.clone() });
        }
        let out = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(RequestError::Timeout {
                to: to.clone(),
                after: timeout,
            }),
        };
        drop(guard);
        out
    }

    pub(crate) async fn publish(
        &self,
        to: &InstanceId,
        kind: MessageKind,
        hops: u8,
        correlation: u64,
        payload: Bytes,
    ) -> Result<usize, ClusterError> {
        let channel = self.shared.keys.inbox(to);
        self.publish_on(channel, kind, hops, correlation, payload)
            .await
    }

    async fn publish_on(
        &self,
        channel: String,
        kind: MessageKind,
        hops: u8,
        correlation: u64,
        payload: Bytes,
    ) -> Result<usize, ClusterError> {
        let env = Envelope {
            kind,
            hops,
            from: self.shared.instance.clone(),
            correlation,
            sent_ns: now_ns(),
            payload,
        };
        let mut con = self.shared.publisher.clone();
        let after = self.shared.timings.op_timeout;
        // Inboxes are shard channels (on the master serving their slot);
        // the broadcast channel is cluster-wide.
        let verb = match kind {
            MessageKind::Broadcast => "PUBLISH",
            _ => "SPUBLISH",
        };
        let cmd = redis::cmd(verb)
            .arg(channel)
            .arg(env.encode().as_ref())
            .to_owned();
        match tokio::time::timeout(after, cmd.query_async::<usize>(&mut con)).await {
            Ok(r) => r.map_err(ClusterError::redis("publish")),
            Err(_) => Err(ClusterError::Timeout {
                op: "publish",
                after,
            }),
        }
    }
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.pending.remove(self.id);
    }
}

/// A message from another instance's [`ClusterHandle::send`].
#[derive(Debug, Clone)]
pub struct InboxMessage {
    /// Sender.
    pub from: InstanceId,
    /// Hop count set by the sender.
    pub hops: u8,
    /// Sender's wall clock at send, ns since the Unix epoch.
    pub sent_ns: u64,
    /// Flow-control mark (0 when the sender did not charge it); pass the
    /// message to [`ClusterHandle::consumed`] once processed.
    pub mark: u64,
    /// The payload.
    pub payload: Bytes,
}

/// A message from [`ClusterHandle::broadcast`].
#[derive(Debug, Clone)]
pub struct BroadcastMessage {
    /// Sender.
    pub from: InstanceId,
    /// Sender's wall clock at send, ns since the Unix epoch.
    pub sent_ns: u64,
    /// The payload.
    pub payload: Bytes,
}

/// A request this instance must answer with [`IncomingRequest::reply`].
#[derive(Debug)]
pub struct IncomingRequest {
    /// Who asks.
    pub from: InstanceId,
    /// The request.
    pub payload: Bytes,
    pub(crate) correlation: u64,
    pub(crate) handle: ClusterHandle,
}

impl IncomingRequest {
    /// Sends the reply to the requester's inbox.
    pub async fn reply(self, payload: Bytes) -> Result<(), ClusterError> {
        self.handle
            .publish(&self.from, MessageKind::Reply, 0, self.correlation, payload)
            .await
            .map(|_| ())
    }
}
