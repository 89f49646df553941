//! The cluster runtime: one task that owns this instance's leases and
//! keeps the ownership view fresh.
//!
//! Every TTL/3 it renews all held leases in one round trip and refreshes
//! its heartbeat; every poll period, and at once after any event from
//! another instance, it reads all members and leases (one round trip),
//! plans with [`assign::plan`](super::assign::plan) and acquires or hands
//! over. A lease whose local validity (measured from when the last
//! successful renew was *sent*, minus a safety margin) ends is dropped with
//! [`OwnershipChange::Lost`], whatever Redis says: a paused or cut-off
//! instance stops on its own, and fencing rejects its late writes anyway.
//!
//! Redis loss: every Redis call has a timeout; the connections reconnect by
//! themselves and the runtime backs off (capped at 2 s) between full reads.
//! Leases lapse locally as above; when Redis answers again the instance
//! re-registers (`member_joined`) and acquires afresh.

mod leases;
mod sync;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::RedisConn;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, error, info, warn};

use super::error::ClusterError;
use super::events::ClusterEvent;
use super::handle::Shared;
use super::lease::LeaseScripts;
use super::membership::{MemberInfo, Membership, Registration};
use super::ownership::PartitionOwner;
use super::subscriber::Internal;
use crate::clock::now_ms;
use crate::ids::{Epoch, InstanceId, PartitionId};
use crate::noted::Noted;
use crate::retry::Backoff;

/// A change of this instance's ownership, for the service that uses the
/// cluster (in order, on a bounded channel).
#[derive(Debug)]
pub enum OwnershipChange {
    /// Sent before the view shows `Me` for the partition (the view changes
    /// right after the send, not after the receiver has handled it): load
    /// the partition's state, then process. A consumer whose work for the
    /// partition can arrive before it has handled this message must hold
    /// that work until it has.
    Acquired {
        /// Partition.
        partition: PartitionId,
        /// Fencing token.
        epoch: Epoch,
    },
    /// The lease lapsed locally, a renew was refused, or another instance
    /// took it; the view already shows no `Me`. Stop at once, do not flush.
    Lost {
        /// Partition.
        partition: PartitionId,
        /// The lost epoch.
        epoch: Epoch,
    },
    /// Handover (rebalance or shutdown). The view already shows `Unknown`
    /// (new work is held). Flush the partition's state (the lease is still
    /// valid), drop it, then send `()` on `done` (dropping `done` counts as
    /// done). The runtime then releases and announces; without an ack within
    /// a bounded time it releases anyway (fencing protects).
    Release {
        /// Partition.
        partition: PartitionId,
        /// Epoch being handed over.
        epoch: Epoch,
        /// Ack.
        done: oneshot::Sender<()>,
    },
}

/// The task that runs membership, leases and assignment; see [`ClusterRuntime::run`].
#[derive(Debug)]
pub struct ClusterRuntime {
    pub(crate) shared: Arc<Shared>,
    pub(crate) con: RedisConn,
    pub(crate) scripts: LeaseScripts,
    pub(crate) membership: Membership,
    pub(crate) registration: Registration,
    pub(crate) ownership: mpsc::Sender<OwnershipChange>,
    pub(crate) internal: mpsc::Receiver<Internal>,
    pub(crate) subscriber_task: JoinHandle<()>,
    pub(crate) subscriber_guard: DropGuard,
}

/// Publishes `events` on `{ns}:events` (best effort, one round trip).
pub(crate) async fn announce(con: &mut RedisConn, shared: &Shared, events: &[ClusterEvent]) {
    if events.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for e in events {
        pipe.publish(shared.keys.events(), e.to_json()).ignore();
    }
    let r = timed(shared.timings.op_timeout, "announce", async {
        pipe.query_async::<()>(con)
            .await
            .map_err(ClusterError::redis("announce"))
    })
    .await;
    if let Err(e) = r {
        debug!(error = %e, count = events.len(), "could not announce events");
    }
}

async fn timed<T>(
    after: Duration,
    op: &'static str,
    fut: impl Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(ClusterError::Timeout { op, after }),
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: Epoch,
    valid_until: Instant,
    releasing: bool,
}

#[derive(Debug, Clone)]
enum Known {
    Free { since: Instant },
    Other(InstanceId, Epoch),
    Unreadable,
}

struct HandoverDone {
    partition: PartitionId,
    epoch: Epoch,
    acked: bool,
}

struct Running {
    shared: Arc<Shared>,
    con: RedisConn,
    scripts: LeaseScripts,
    membership: Membership,
    registration: Registration,
    ownership: mpsc::Sender<OwnershipChange>,
    held: BTreeMap<u32, Held>,
    known: Vec<Known>,
    members: Vec<InstanceId>,
    member_info: Vec<MemberInfo>,
    redis_ok: bool,
    backoff: Backoff,
    next_attempt: Instant,
    handover_tx: mpsc::Sender<HandoverDone>,
}

impl ClusterRuntime {
    /// Runs heartbeats, renewals, assignment, handover and failover until
    /// `shutdown`; then hands over every owned partition
    /// ([`OwnershipChange::Release`], bounded wait for the ack), releases
    /// the leases, announces, leaves the membership and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ClusterError> {
        let mut internal = self.internal;
        let t = self.shared.timings;
        let p_count = self.shared.partitions.get() as usize;
        let (handover_tx, mut handover_rx) = mpsc::channel(p_count.max(16));
        let now = Instant::now();
        let mut r = Running {
            shared: self.shared,
            con: self.con,
            scripts: self.scripts,
            membership: self.membership,
            registration: self.registration,
            ownership: self.ownership,
            held: BTreeMap::new(),
            known: vec![Known::Free { since: now }; p_count],
            members: Vec::new(),
            member_info: Vec::new(),
            redis_ok: true,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            next_attempt: now,
            handover_tx,
        };
        let mut renew = tokio::time::interval(t.renew_every);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(t.poll_every);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            r.expire_lapsed().await;
            let lapse = r.next_lapse();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(lapse.into()) => {}
                _ = renew.tick() => {
                    r.renew().await;
                    r.heartbeat().await;
                }
                Some(done) = handover_rx.recv() => r.finish_handover(done).await,
                Some(first) = internal.recv() => {
                    let mut n = 1;
                    if let Internal::Event(e) = &first {
                        debug!(kind = e.kind(), instance = %e.instance(), "event");
                    }
                    while internal.try_recv().is_ok() {
                        n += 1;
                    }
                    debug!(messages = n, "events; re-reading ownership");
                    r.sync_and_plan(true).await;
                }
                _ = poll.tick() => r.sync_and_plan(false).await,
            }
        }
        // Handovers under way finish inside `leave`, which waits (bounded)
        // for their acks too.
        r.leave(&mut handover_rx).await;
        drop(self.subscriber_guard);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.subscriber_task).await;
        Ok(())
    }
}

impl Running {
    fn me(&self) -> &InstanceId {
        &self.shared.instance
    }

    fn valid_from(&self, sent: Instant) -> Instant {
        let t = self.shared.timings;
        sent + t.lease.saturating_sub(t.safety_margin)
    }

    fn next_lapse(&self) -> Instant {
        self.held
            .values()
            .map(|h| h.valid_until)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn note_ok(&mut self) {
        if !self.redis_ok {
            info!("Redis reachable again");
        }
        self.redis_ok = true;
        self.backoff.reset();
    }

    fn note_error(&mut self, e: &ClusterError) {
        let retryable = e.is_retryable();
        if self.redis_ok && retryable {
            warn!(error = %e, held = self.held.len(), "Redis unavailable; retrying with backoff, leases are dropped when their local validity ends");
        } else if self.redis_ok {
            error!(error = %e, held = self.held.len(), "Redis refused a cluster operation; this does not pass by itself (check the ACL permissions and what else writes the cluster's keys); retrying every 2 s, leases are dropped when their local validity ends");
        } else {
            debug!(error = %e, "Redis still unavailable");
        }
        self.redis_ok = false;
        self.next_attempt = Instant::now() + self.backoff.after_failure(retryable);
    }

    /// Publishes the view computed from held leases and the last read.
    fn publish_view(&self) {
        let owners: Vec<PartitionOwner> = self
            .known
            .iter()
            .enumerate()
            .map(|(p, k)| match self.held.get(&(p as u32)) {
                Some(h) if !h.releasing => PartitionOwner::Me {
                    epoch: h.epoch,
                    valid_until: h.valid_until,
                },
                Some(_) => PartitionOwner::Unknown,
                None => match k {
                    Known::Other(id, e) if id != self.me() => PartitionOwner::Other {
                        instance: id.clone(),
                        epoch: *e,
                    },
                    _ => PartitionOwner::Unknown,
                },
            })
            .collect();
        let members = self.member_info.clone();
        self.shared.view.update(move |o, m| {
            *o = owners;
            *m = members;
        });
    }

    async fn send_change(&self, change: OwnershipChange) {
        if self.ownership.send(change).await.is_err() {
            debug!("ownership receiver dropped");
        }
    }

    async fn expire_lapsed(&mut self) {
        let now = Instant::now();
        let lapsed: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| h.valid_until <= now)
            .map(|(p, _)| *p)
            .collect();
        if lapsed.is_empty() {
            return;
        }
        let mut events = Vec::new();
        for p in lapsed {
            self.lose(
                p,
                "local lease validity ended without a successful renew",
                &mut events,
            )
            .await;
        }
        if self.redis_ok {
            announce(&mut self.con, &self.shared, &events).await;
        }
    }

    /// Drops a held lease at once (view first, then the change).
    async fn lose(&mut self, p: u32, reason: &str, events: &mut Vec<ClusterEvent>) {
        let Some(h) = self.held.remove(&p) else {
            return;
        };
        Noted::LeaseLost {
            partition: PartitionId(p),
            epoch: h.epoch,
            reason,
        }
        .emit(&self.shared.counters);
        self.publish_view();
        self.send_change(OwnershipChange::Lost {
            partition: PartitionId(p),
            epoch: h.epoch,
        })
        .await;
        events.push(ClusterEvent::LeaseLost {
            ts_ms: now_ms(),
            partition: PartitionId(p),
            instance: self.me().clone(),
            epoch: h.epoch,
        });
    }
}
