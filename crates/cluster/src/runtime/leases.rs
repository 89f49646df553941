//! Lease actions of the runtime: renew, acquire, hand over, release,
//! and the clean leave at shutdown.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::{announce, timed, HandoverDone, Held, Known, OwnershipChange, Running};
use crate::clock::now_ms;
use crate::error::ClusterError;
use crate::events::ClusterEvent;
use crate::ids::{Epoch, InstanceId, PartitionId};
use crate::lease::{parse_lease_value, AcquireOutcome};
use crate::noted::Noted;

impl Running {
    pub(super) async fn renew(&mut self) {
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
                let mut unanswered = false;
                for ((p, _), ok) in list.iter().zip(oks) {
                    match (ok, self.held.get_mut(&p.0)) {
                        (Some(true), Some(h)) => h.valid_until = h.valid_until.max(until),
                        (Some(false), Some(_)) => refused.push(p.0),
                        // Its master did not answer: its validity runs on.
                        (None, _) => unanswered = true,
                        _ => {}
                    }
                }
                if unanswered {
                    Noted::RenewFailed.emit(&self.shared.counters);
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
                Noted::RenewFailed.emit(&self.shared.counters);
                self.note_error(&e);
            }
        }
    }

    pub(super) async fn acquire(&mut self, parts: &[PartitionId]) {
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
        let won: Vec<(PartitionId, Epoch)> = results
            .iter()
            .filter_map(|(p, o)| match o {
                AcquireOutcome::Won(e) => Some((*p, *e)),
                AcquireOutcome::Held(_) => None,
            })
            .collect();
        let unconfirmed = match won.is_empty() {
            true => Vec::new(),
            false => self.confirm_acquired(&won).await,
        };
        let valid_until = self.valid_from(sent);
        let mut events = Vec::new();
        for (p, outcome) in results {
            match outcome {
                AcquireOutcome::Won(_) if unconfirmed.contains(&p) => {}
                AcquireOutcome::Won(epoch) => {
                    Noted::LeaseAcquired {
                        partition: p,
                        epoch,
                    }
                    .emit(&self.shared.counters);
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

    /// Confirms the leases just won: every replica in sync with each
    /// lease's master holds it and its epoch, and the master serving it now
    /// still does. Those not confirmed are given back at once (a promoted
    /// replica could hand their epochs out again) and returned: they are
    /// never acted on.
    async fn confirm_acquired(&mut self, won: &[(PartitionId, Epoch)]) -> Vec<PartitionId> {
        let t = self.shared.timings;
        let confirmed = timed(
            t.op_timeout,
            "replication confirm",
            // Half the round-trip budget, so the answer comes back in it.
            self.scripts.confirm_on_replicas(
                &mut self.con,
                &self.shared.keys,
                &self.shared.instance,
                won,
                t.op_timeout / 2,
            ),
        )
        .await;
        let unconfirmed: Vec<(PartitionId, Epoch)> = match confirmed {
            Ok((ok, replicas)) => {
                let not: Vec<_> = won
                    .iter()
                    .zip(ok)
                    .filter(|(_, ok)| !ok)
                    .map(|(w, _)| *w)
                    .collect();
                if !not.is_empty() {
                    Noted::AcquireUnconfirmed {
                        partitions: not.len() as u64,
                        replicas,
                    }
                    .emit(&self.shared.counters);
                }
                not
            }
            Err(e) => {
                self.note_error(&e);
                won.to_vec()
            }
        };
        if unconfirmed.is_empty() {
            return Vec::new();
        }
        // Given back at once rather than left to lapse; if this fails too,
        // they lapse within the TTL.
        let released = timed(
            t.op_timeout,
            "lease release",
            self.scripts.release(
                &mut self.con,
                &self.shared.keys,
                &self.shared.instance,
                &unconfirmed,
            ),
        )
        .await;
        if let Err(e) = released {
            debug!(error = %e, "giving back unconfirmed leases failed; they lapse");
        }
        unconfirmed.into_iter().map(|(p, _)| p).collect()
    }

    pub(super) async fn start_handover(&mut self, partition: PartitionId, to: &InstanceId) {
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

    pub(super) async fn finish_handover(&mut self, done: HandoverDone) {
        match self.held.get(&done.partition.0) {
            Some(h) if h.epoch == done.epoch && h.releasing => {}
            _ => return,
        }
        if !done.acked {
            Noted::HandoverAckTimeout { partitions: 1 }.emit(&self.shared.counters);
        }
        self.release(&[(done.partition, done.epoch)]).await;
    }

    /// Compare-and-deletes our leases of `list` (within the operation
    /// timeout): per partition, whether it was still ours.
    pub(super) async fn delete_leases(
        &mut self,
        list: &[(PartitionId, Epoch)],
    ) -> Result<Vec<bool>, ClusterError> {
        timed(
            self.shared.timings.op_timeout,
            "lease release",
            self.scripts.release(
                &mut self.con,
                &self.shared.keys,
                &self.shared.instance,
                list,
            ),
        )
        .await
    }

    /// Releases (compare-and-delete) and announces; the partitions are no
    /// longer held afterwards whatever Redis answered.
    pub(super) async fn release(&mut self, list: &[(PartitionId, Epoch)]) {
        if list.is_empty() {
            return;
        }
        let r = self.delete_leases(list).await;
        let now = Instant::now();
        let mut events = Vec::new();
        match r {
            Ok(oks) => {
                for (&(p, epoch), ok) in list.iter().zip(oks) {
                    self.held.remove(&p.0);
                    self.known[p.0 as usize] = Known::Free { since: now };
                    if ok {
                        Noted::LeaseReleased {
                            partition: p,
                            epoch,
                        }
                        .emit(&self.shared.counters);
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
    pub(super) async fn leave(&mut self, in_flight: &mut mpsc::Receiver<HandoverDone>) {
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
        // Handovers already under way: their acks come on `in_flight`.
        let mut pending: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| h.releasing)
            .map(|(p, _)| *p)
            .collect();
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
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline, in_flight.recv()).await {
                Ok(Some(done)) => pending.retain(|p| *p != done.partition.0),
                _ => {
                    late += pending.len() as u64;
                    break;
                }
            }
        }
        if late > 0 {
            Noted::HandoverAckTimeout { partitions: late }.emit(&self.shared.counters);
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
