//! Keeping in step with the cluster: heartbeats, the full read of
//! members and leases, and planning from it.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::{announce, timed, Known, Running};
use crate::assign::{plan, Action, Slot};
use crate::clock::now_ms;
use crate::config::ensure_config;
use crate::events::ClusterEvent;
use crate::ids::{InstanceId, PartitionId};
use crate::lease::parse_lease_value;
use crate::membership::Beat;

impl Running {
    pub(super) async fn heartbeat(&mut self) {
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
    pub(super) async fn sync_and_plan(&mut self, urgent: bool) {
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
            if let Ok(oks) = self.delete_leases(&stale_own).await {
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

    pub(super) async fn plan_and_act(&mut self, now: Instant) {
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
}
