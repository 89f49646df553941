//! Lease moves while the feed sends, from the `{ns}:events` messages the
//! processors publish with every acquisition, release and loss (each
//! stamped with its wall-clock ms). The processors' `leases_acquired` /
//! `leases_lost` counters say the same in total, but they are published
//! only about once a second and a processor's first snapshot comes after
//! the feed has started, so they cannot split start-up from steady state;
//! the events can.
//!
//! The feed starts once every processor is connected, which is before the
//! start-up handovers are done: [`LeaseFigures`] therefore also gives the
//! moves after the ownership was first balanced (every partition owned,
//! each of the N processors holding ⌊P/N⌋ or ⌈P/N⌉), which in a healthy
//! run are zero.

use std::collections::BTreeMap;

use serde::Serialize;
use tickshard::cluster::ClusterEvent;

use super::window::Window;

/// Lease events in a time span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Moves {
    pub(crate) acquired: u64,
    pub(crate) released: u64,
    pub(crate) lost: u64,
}

/// What a run reports about leases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct LeaseFigures {
    /// Between the feed's first and last tick.
    pub(crate) while_feeding: Moves,
    /// Seconds from the feed's first tick until the ownership was first
    /// balanced (0 when it already was); `None` if it never was.
    pub(crate) balanced_after_s: Option<f64>,
    /// From then to the feed's last tick.
    pub(crate) after_balanced: Moves,
}

fn ts(e: &ClusterEvent) -> u64 {
    match e {
        ClusterEvent::MemberJoined { ts_ms, .. }
        | ClusterEvent::MemberLeft { ts_ms, .. }
        | ClusterEvent::LeaseAcquired { ts_ms, .. }
        | ClusterEvent::LeaseReleased { ts_ms, .. }
        | ClusterEvent::LeaseLost { ts_ms, .. } => *ts_ms,
    }
}

fn count(events: &[&ClusterEvent], from_ms: u64, to_ms: u64) -> Moves {
    let mut m = Moves::default();
    for e in events.iter().filter(|e| (from_ms..=to_ms).contains(&ts(e))) {
        match e {
            ClusterEvent::LeaseAcquired { .. } => m.acquired += 1,
            ClusterEvent::LeaseReleased { .. } => m.released += 1,
            ClusterEvent::LeaseLost { .. } => m.lost += 1,
            _ => {}
        }
    }
    m
}

/// Owner of each partition as the events tell it.
#[derive(Debug, Default)]
struct Owners(BTreeMap<u32, String>);

impl Owners {
    fn apply(&mut self, e: &ClusterEvent) {
        match e {
            ClusterEvent::LeaseAcquired {
                partition,
                instance,
                ..
            } => {
                self.0.insert(partition.0, instance.to_string());
            }
            ClusterEvent::LeaseReleased {
                partition,
                instance,
                ..
            }
            | ClusterEvent::LeaseLost {
                partition,
                instance,
                ..
            } if self.0.get(&partition.0) == Some(&instance.to_string()) => {
                self.0.remove(&partition.0);
            }
            _ => {}
        }
    }

    fn balanced(&self, instances: usize, partitions: usize) -> bool {
        if instances == 0 || self.0.len() != partitions {
            return false;
        }
        let mut held: BTreeMap<&str, usize> = BTreeMap::new();
        for owner in self.0.values() {
            *held.entry(owner.as_str()).or_default() += 1;
        }
        let (lo, hi) = (partitions / instances, partitions.div_ceil(instances));
        held.len() == instances && held.values().all(|n| (lo..=hi).contains(n))
    }
}

/// The lease figures of a run with `instances` processors over
/// `partitions` partitions whose feed sent during `window`.
pub(crate) fn figures(
    events: &[ClusterEvent],
    window: Window,
    instances: usize,
    partitions: usize,
) -> LeaseFigures {
    let mut sorted: Vec<&ClusterEvent> = events.iter().collect();
    sorted.sort_by_key(|e| ts(e));
    let mut owners = Owners::default();
    let mut i = 0;
    while i < sorted.len() && ts(sorted[i]) < window.start_ms {
        owners.apply(sorted[i]);
        i += 1;
    }
    let mut balanced_at = owners
        .balanced(instances, partitions)
        .then_some(window.start_ms);
    while balanced_at.is_none() && i < sorted.len() && ts(sorted[i]) <= window.end_ms {
        owners.apply(sorted[i]);
        if owners.balanced(instances, partitions) {
            balanced_at = Some(ts(sorted[i]));
        }
        i += 1;
    }
    LeaseFigures {
        while_feeding: count(&sorted, window.start_ms, window.end_ms),
        balanced_after_s: balanced_at.map(|t| (t - window.start_ms) as f64 / 1000.0),
        // Moves stamped in the very ms of balance belong to start-up.
        after_balanced: balanced_at
            .map(|t| count(&sorted, t + 1, window.end_ms))
            .unwrap_or_default(),
    }
}

/// Self-check: p1 takes all 4 partitions before the feed starts, hands 2
/// to p2 while it sends (balanced then), later loses one that p2 takes.
pub(crate) fn self_check() -> Result<(), String> {
    let ev = |text: String| ClusterEvent::parse(text.as_bytes()).map_err(|e| e.to_string());
    let acq = |t: u64, p: u32, i: &str| {
        ev(format!(
            r#"{{"kind":"lease_acquired","ts_ms":{t},"partition":{p},"instance":"{i}","epoch":1}}"#
        ))
    };
    let rel = |kind: &str, t: u64, p: u32, i: &str| {
        ev(format!(
            r#"{{"kind":"{kind}","ts_ms":{t},"partition":{p},"instance":"{i}","epoch":1}}"#
        ))
    };
    let events = vec![
        acq(10, 0, "p1")?,
        acq(10, 1, "p1")?,
        acq(11, 2, "p1")?,
        acq(11, 3, "p1")?,
        rel("lease_released", 150, 2, "p1")?,
        acq(160, 2, "p2")?,
        rel("lease_released", 170, 3, "p1")?,
        acq(180, 3, "p2")?,
        rel("lease_lost", 500, 0, "p1")?,
        acq(900, 0, "p2")?,
    ];
    let w = Window {
        start_ms: 100,
        end_ms: 1000,
    };
    let f = figures(&events, w, 2, 4);
    let want = LeaseFigures {
        while_feeding: Moves {
            acquired: 3,
            released: 2,
            lost: 1,
        },
        balanced_after_s: Some(0.08),
        after_balanced: Moves {
            acquired: 1,
            released: 0,
            lost: 1,
        },
    };
    if f != want {
        return Err(format!("lease figures {f:?}, expected {want:?}"));
    }
    Ok(())
}
