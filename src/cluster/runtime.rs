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

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use super::assign::{plan, Action, Slot};
use super::config::ensure_config;
use super::error::ClusterError;
use super::events::{now_ms, ClusterEvent};
use super::handle::{bump, Shared};
use super::lease::{parse_lease_value, AcquireOutcome, LeaseScripts};
use super::membership::{Beat, MemberInfo, Membership, Registration};
use super::ownership::PartitionOwner;
use super::subscriber::Internal;
use crate::tick::{Epoch, InstanceId, PartitionId};

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
    pub(crate) con: ConnectionManager,
    pub(crate) scripts: LeaseScripts,
    pub(crate) membership: Membership,
    pub(crate) registration: Registration,
    pub(crate) ownership: mpsc::Sender<OwnershipChange>,
    pub(crate) internal: mpsc::Receiver<Internal>,
    pub(crate) subscriber_task: JoinHandle<()>,
    pub(crate) subscriber_guard: DropGuard,
}

/// Publishes `events` on `{ns}:events` (best effort, one round trip).
pub(crate) async fn announce(
    con: &mut ConnectionManager,
    shared: &Shared,
    events: &[ClusterEvent],
) {
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
    con: ConnectionManager,
    scripts: LeaseScripts,
    membership: Membership,
    registration: Registration,
    ownership: mpsc::Sender<OwnershipChange>,
    held: BTreeMap<u32, Held>,
    known: Vec<Known>,
    members: Vec<InstanceId>,
    member_info: Vec<MemberInfo>,
    redis_ok: bool,
    backoff: Duration,
    next_attempt: Instant,
    handover_tx: mpsc::Sender<HandoverDone>,
}

impl ClusterRuntime {
    /// Runs heartbeats, renewals, assignment, handover and failover until
    /// `shutdown`; then hands over every owned partition
    /// ([`OwnershipChange::Release`], bounded wait for the ack), releases
    /// the leases, announces, leaves the membership and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ClusterError> {
        let ClusterRuntime {
            shared,
            con,
            scripts,
            membership,
            registration,
            ownership,
            mut internal,
            subscriber_task,
            subscriber_guard,
        } = self;
        let t = shared.timings;
        let p_count = shared.partitions.get() as usize;
        let (handover_tx, mut handover_rx) = mpsc::channel(p_count.max(16));
        let now = Instant::now();
        let mut r = Running {
            shared,
            con,
            scripts,
            membership,
            registration,
            ownership,
            held: BTreeMap::new(),
            known: vec![Known::Free { since: now }; p_count],
            members: Vec::new(),
            member_info: Vec::new(),
            redis_ok: true,
            backoff: Duration::ZERO,
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
        // Acks of handovers already under way arrive on `handover_rx`; the
        // shutdown path releases everything still held regardless.
        drop(handover_rx);
        r.leave().await;
        drop(subscriber_guard);
        let _ = tokio::time::timeout(Duration::from_secs(1), subscriber_task).await;
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
        self.backoff = Duration::ZERO;
    }

    fn note_error(&mut self, e: &ClusterError) {
        if self.redis_ok {
            warn!(error = %e, held = self.held.len(), "Redis unavailable; retrying with backoff, leases are dropped when their local validity ends");
            self.backoff = Duration::from_millis(100);
        } else {
            debug!(error = %e, "Redis still unavailable");
            self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
        }
        self.redis_ok = false;
        self.next_attempt = Instant::now() + self.backoff;
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
        bump(&self.shared.counters.leases_lost, 1);
        warn!(partition = p, epoch = %h.epoch, reason, "lease lost; no longer acting as owner");
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

    async fn renew(&mut self) {
        let list: Vec<(PartitionId, Epoch)> = self
            .held
            .iter()
            .map(|(p, h)| (PartitionId(*p), h.epoch))
            .collect();
        if list.is_empty() {
            return;
        }
        let t = self.shared.timings;
        let sent = Instant::now();
        let r = timed(
            t.op_timeout,
            "lease renew",
            self.scripts.renew(
                &mut self.con,
                &self.shared.keys,
                &self.shared.instance,
                &list,
                t.lease,
            ),
        )
        .await;
        match r {
            Ok(oks) => {
                self.note_ok();
                let until = self.valid_from(sent);
                let mut refused = Vec::new();
                for ((p, _), ok) in list.iter().zip(oks) {
                    match (ok, self.held.get_mut(&p.0)) {
                        (true, Some(h)) => h.valid_until = h.valid_until.max(until),
                        (false, Some(_)) => refused.push(p.0),
                        _ => {}
                    }
                }
                let mut events = Vec::new();
                for p in refused {
                    self.lose(p, "renew refused: the lease is no longer ours", &mut events)
                        .await;
                }
                self.publish_view();
                announce(&mut self.con, &self.shared, &events).await;
            }
            Err(e) => {
                bump(&self.shared.counters.renew_failures, 1);
                self.note_error(&e);
            }
        }
    }

    async fn heartbeat(&mut self) {
        let t = self.shared.timings;
        let r = timed(
            t.op_timeout,
            "heartbeat",
            self.membership.beat(
                &mut self.con,
                &self.shared.keys,
                &self.registration,
                t.member_ttl,
                false,
            ),
        )
        .await;
        match r {
            Ok(Beat::Ok { added: true }) => {
                self.note_ok();
                info!(
                    "registered as a member again (the entry had expired or Redis lost its data)"
                );
                let keys = self.shared.keys.clone();
                if let Err(e) = timed(
                    t.op_timeout,
                    "config",
                    ensure_config(&mut self.con, &keys, self.shared.partitions, t.lease),
                )
                .await
                {
                    warn!(error = %e, "cluster config check failed after re-registering");
                }
                let ev = [ClusterEvent::MemberJoined {
                    ts_ms: now_ms(),
                    instance: self.me().clone(),
                }];
                announce(&mut self.con, &self.shared, &ev).await;
            }
            Ok(_) => self.note_ok(),
            Err(e) => self.note_error(&e),
        }
    }

    /// Full read of members and leases, then plan and act.
    async fn sync_and_plan(&mut self, urgent: bool) {
        let now = Instant::now();
        if !self.redis_ok && now < self.next_attempt && !urgent {
            return;
        }
        let t = self.shared.timings;
        let r = timed(
            t.op_timeout,
            "snapshot",
            self.membership
                .snapshot(&mut self.con, &self.shared.keys, self.shared.partitions),
        )
        .await;
        let snap = match r {
            Ok(s) => {
                self.note_ok();
                s
            }
            Err(e) => {
                self.note_error(&e);
                return;
            }
        };
        if snap.members != self.members {
            let r = timed(
                t.op_timeout,
                "member addresses",
                self.membership
                    .http_addrs(&mut self.con, &self.shared.keys, &snap.members),
            )
            .await;
            match r {
                Ok(info) => self.member_info = info,
                Err(e) => debug!(error = %e, "could not read member addresses"),
            }
            info!(members = ?snap.members.iter().map(InstanceId::as_str).collect::<Vec<_>>(), "membership changed");
            self.members = snap.members.clone();
        }
        let now = Instant::now();
        let mut stale_own = Vec::new();
        let mut taken = Vec::new();
        for (p, value) in snap.leases.iter().enumerate() {
            let held = self.held.get(&(p as u32)).copied();
            let next = match value.as_deref().map(|v| (v, parse_lease_value(v))) {
                None => match &self.known[p] {
                    Known::Free { since } => Known::Free { since: *since },
                    _ => Known::Free { since: now },
                },
                Some((_, Some((id, e)))) => {
                    if &id == self.me() {
                        if held.map(|h| h.epoch) != Some(e) {
                            // Ours by value but not in use (lapsed locally): free it.
                            stale_own.push((PartitionId(p as u32), e));
                        }
                    } else if held.is_some() {
                        taken.push(p as u32);
                    }
                    Known::Other(id, e)
                }
                Some((raw, None)) => {
                    debug!(partition = p, value = raw, "unreadable lease value");
                    Known::Unreadable
                }
            };
            self.known[p] = next;
        }
        let mut events = Vec::new();
        for p in taken {
            self.lose(p, "another instance holds the lease", &mut events)
                .await;
        }
        if !stale_own.is_empty() {
            let r = timed(
                t.op_timeout,
                "lease release",
                self.scripts.release(
                    &mut self.con,
                    &self.shared.keys,
                    &self.shared.instance,
                    &stale_own,
                ),
            )
            .await;
            if let Ok(oks) = r {
                for ((p, e), ok) in stale_own.iter().zip(oks) {
                    if ok {
                        debug!(partition = %p, epoch = %e, "deleted a lapsed lease of ours");
                        self.known[p.0 as usize] = Known::Free { since: now };
                    }
                }
            }
        }
        announce(&mut self.con, &self.shared, &events).await;
        self.publish_view();
        self.plan_and_act(now).await;
    }

    async fn plan_and_act(&mut self, now: Instant) {
        let grace = self.shared.timings.orphan_grace;
        let slots: Vec<Slot> = self
            .known
            .iter()
            .enumerate()
            .map(|(p, k)| match self.held.get(&(p as u32)) {
                Some(h) if h.releasing => Slot::Releasing,
                Some(_) => Slot::Mine,
                None => match k {
                    Known::Free { since } => Slot::Free {
                        orphaned: now.duration_since(*since) >= grace,
                    },
                    Known::Other(id, _) => Slot::Other(id.clone()),
                    Known::Unreadable => Slot::Unreadable,
                },
            })
            .collect();
        let mut members = self.members.clone();
        if !members.contains(self.me()) {
            // We are alive by definition; a missed heartbeat must not make
            // us hand everything away.
            members.push(self.me().clone());
        }
        let mut acquire = Vec::new();
        for action in plan(self.me(), &members, &slots) {
            match action {
                Action::Acquire(p) => acquire.push(p),
                Action::HandOver { partition, to } => self.start_handover(partition, &to).await,
            }
        }
        if !acquire.is_empty() {
            self.acquire(&acquire).await;
        }
    }

    async fn acquire(&mut self, parts: &[PartitionId]) {
        let t = self.shared.timings;
        let sent = Instant::now();
        let r = timed(
            t.op_timeout,
            "lease acquire",
            self.scripts.acquire(
                &mut self.con,
                &self.shared.keys,
                &self.shared.instance,
                parts,
                t.lease,
            ),
        )
        .await;
        let results = match r {
            Ok(r) => r,
            Err(e) => {
                self.note_error(&e);
                return;
            }
        };
        let valid_until = self.valid_from(sent);
        let mut events = Vec::new();
        for (p, outcome) in results {
            match outcome {
                AcquireOutcome::Won(epoch) => {
                    bump(&self.shared.counters.leases_acquired, 1);
                    info!(partition = %p, epoch = %epoch, "lease acquired");
                    // The data path hears of it before the view says so.
                    self.send_change(OwnershipChange::Acquired {
                        partition: p,
                        epoch,
                    })
                    .await;
                    self.held.insert(
                        p.0,
                        Held {
                            epoch,
                            valid_until,
                            releasing: false,
                        },
                    );
                    self.known[p.0 as usize] = Known::Other(self.me().clone(), epoch);
                    events.push(ClusterEvent::LeaseAcquired {
                        ts_ms: now_ms(),
                        partition: p,
                        instance: self.me().clone(),
                        epoch,
                    });
                }
                AcquireOutcome::Held(v) => {
                    self.known[p.0 as usize] = match parse_lease_value(&v) {
                        Some((id, e)) => Known::Other(id, e),
                        None => Known::Unreadable,
                    };
                }
            }
        }
        self.publish_view();
        announce(&mut self.con, &self.shared, &events).await;
    }

    async fn start_handover(&mut self, partition: PartitionId, to: &InstanceId) {
        let Some(h) = self.held.get_mut(&partition.0) else {
            return;
        };
        h.releasing = true;
        let epoch = h.epoch;
        info!(partition = %partition, epoch = %epoch, to = %to, "handing over");
        self.publish_view();
        let (done, rx) = oneshot::channel();
        self.send_change(OwnershipChange::Release {
            partition,
            epoch,
            done,
        })
        .await;
        let tx = self.handover_tx.clone();
        let wait = self.shared.timings.handover_ack;
        tokio::spawn(async move {
            let acked = tokio::time::timeout(wait, rx).await.is_ok();
            let _ = tx
                .send(HandoverDone {
                    partition,
                    epoch,
                    acked,
                })
                .await;
        });
    }

    async fn finish_handover(&mut self, done: HandoverDone) {
        match self.held.get(&done.partition.0) {
            Some(h) if h.epoch == done.epoch && h.releasing => {}
            _ => return,
        }
        if !done.acked {
            bump(&self.shared.counters.handover_ack_timeouts, 1);
            warn!(partition = %done.partition, epoch = %done.epoch, "no handover ack in time; releasing anyway");
        }
        self.release(&[(done.partition, done.epoch)]).await;
    }

    /// Releases (compare-and-delete) and announces; the partitions are no
    /// longer held afterwards whatever Redis answered.
    async fn release(&mut self, list: &[(PartitionId, Epoch)]) {
        if list.is_empty() {
            return;
        }
        let t = self.shared.timings;
        let r = timed(
            t.op_timeout,
            "lease release",
            self.scripts.release(
                &mut self.con,
                &self.shared.keys,
                &self.shared.instance,
                list,
            ),
        )
        .await;
        let now = Instant::now();
        let mut events = Vec::new();
        match r {
            Ok(oks) => {
                for (&(p, epoch), ok) in list.iter().zip(oks) {
                    self.held.remove(&p.0);
                    self.known[p.0 as usize] = Known::Free { since: now };
                    if ok {
                        bump(&self.shared.counters.leases_released, 1);
                        info!(partition = %p, epoch = %epoch, "lease released");
                        events.push(ClusterEvent::LeaseReleased {
                            ts_ms: now_ms(),
                            partition: p,
                            instance: self.me().clone(),
                            epoch,
                        });
                    } else {
                        debug!(partition = %p, epoch = %epoch, "lease was already gone at release");
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, count = list.len(), "release failed; the leases will expire by themselves");
                for (p, _) in list {
                    self.held.remove(&p.0);
                }
                self.note_error(&e);
            }
        }
        self.publish_view();
        announce(&mut self.con, &self.shared, &events).await;
    }

    /// Clean leave: drop out of the member set first (so peers stop
    /// targeting us and take released partitions at once), hand over every
    /// partition with a bounded wait for the acks, release, announce.
    async fn leave(&mut self) {
        let t = self.shared.timings;
        info!(partitions = self.held.len(), "leaving the cluster");
        let me = self.me().clone();
        if let Err(e) = timed(
            t.op_timeout,
            "leave",
            self.membership.leave(&mut self.con, &self.shared.keys, &me),
        )
        .await
        {
            warn!(error = %e, "could not leave the member set; it will expire");
        }
        let ev = [ClusterEvent::MemberLeft {
            ts_ms: now_ms(),
            instance: me,
        }];
        announce(&mut self.con, &self.shared, &ev).await;

        let mut waits = Vec::new();
        let handing: Vec<(u32, Epoch)> = self
            .held
            .iter_mut()
            .filter(|(_, h)| !h.releasing)
            .map(|(p, h)| {
                h.releasing = true;
                (*p, h.epoch)
            })
            .collect();
        self.publish_view();
        let deadline = tokio::time::Instant::now() + t.handover_ack;
        for (p, epoch) in handing {
            let (done, rx) = oneshot::channel();
            let change = OwnershipChange::Release {
                partition: PartitionId(p),
                epoch,
                done,
            };
            if tokio::time::timeout_at(deadline, self.ownership.send(change))
                .await
                .is_ok()
            {
                waits.push(rx);
            }
        }
        let mut late = 0u64;
        for rx in waits {
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                late += 1;
            }
        }
        if late > 0 {
            bump(&self.shared.counters.handover_ack_timeouts, late);
            warn!(
                late,
                "some handover acks did not come in time; releasing anyway"
            );
        }
        let all: Vec<(PartitionId, Epoch)> = self
            .held
            .iter()
            .map(|(p, h)| (PartitionId(*p), h.epoch))
            .collect();
        self.release(&all).await;
        info!("left the cluster");
    }
}
