//! The key layout on a real Redis Cluster of 3 masters and 3 replicas:
//! every key of one partition in one hash slot, the cluster-wide keys in
//! one slot, and the partitions spread over every master; and the cluster
//! fixture itself, which later tests kill masters of.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use tickshard::keys::{Keys, DEFAULT_NAMESPACE};
use tickshard::partition::partition_of;
use tickshard::redis_cluster::{RedisCluster, Role};
use tickshard::tick::{PartitionId, Symbol};

/// Starts a cluster of 3 masters and 3 replicas, or fails the test.
fn cluster() -> RedisCluster {
    match RedisCluster::start(3, 1) {
        Ok(c) => c,
        Err(e) => panic!("this test needs redis-server and redis-cli: {e}"),
    }
}

/// One symbol of every partition, found by trying names.
fn a_symbol_per_partition(partitions: NonZeroU32) -> BTreeMap<u32, Symbol> {
    let mut found = BTreeMap::new();
    for i in 0.. {
        let s: Symbol = format!("S{i}").parse().unwrap();
        found.entry(partition_of(&s, partitions).0).or_insert(s);
        if found.len() == partitions.get() as usize {
            return found;
        }
    }
    unreachable!()
}

#[test]
fn each_partition_lives_in_one_slot_and_the_partitions_spread_over_every_master() {
    let c = cluster();
    assert_eq!(c.masters().unwrap().len(), 3);
    let replicas = c
        .nodes()
        .iter()
        .filter(|n| matches!(c.role(n).unwrap(), Role::Replica(_)))
        .count();
    assert_eq!(replicas, 3);

    let keys = Keys::new(DEFAULT_NAMESPACE);
    let partitions = NonZeroU32::new(64).unwrap();
    let mut masters = BTreeSet::new();
    for (p, symbol) in a_symbol_per_partition(partitions) {
        let p = PartitionId(p);
        let names = [
            keys.lease(p),
            keys.epoch(p),
            keys.sym(p, &symbol),
            keys.psyms(p),
            keys.out(p, "bars_1m", &symbol),
            keys.live(p),
            keys.watched(p),
            keys.in_partition(p, "done:w1"),
        ];
        let slots: BTreeSet<u16> = names.iter().map(|k| c.slot_of(k).unwrap()).collect();
        assert_eq!(
            slots.len(),
            1,
            "partition {p}: {names:?} in slots {slots:?}"
        );
        let slot = *slots.first().unwrap();
        masters.insert(c.master_of(slot).unwrap().unwrap());
    }
    assert_eq!(masters.len(), 3, "64 partitions on masters {masters:?}");

    let id = "p1".parse().unwrap();
    let wide = [keys.config(), keys.members(), keys.member(&id)];
    let slots: BTreeSet<u16> = wide.iter().map(|k| c.slot_of(k).unwrap()).collect();
    assert_eq!(slots.len(), 1, "{wide:?} in slots {slots:?}");
}

#[test]
fn a_killed_master_is_replaced_by_its_replica() {
    let mut c = cluster();
    let before = c.masters().unwrap();
    let victim = before[0];
    let Role::Master(ranges) = c.role(&c.nodes()[victim]).unwrap() else {
        panic!("node {victim} is no master");
    };
    let slot = ranges[0].0;
    c.node_mut(victim).unwrap().kill();
    // Failover within a few node timeouts (1 s each).
    c.wait_ready(Duration::from_secs(20)).unwrap();
    let after = c.masters().unwrap();
    assert_eq!(after.len(), 3, "three masters again: {after:?}");
    assert!(!after.contains(&victim));
    let heir = c.master_of(slot).unwrap().unwrap();
    assert_ne!(heir, victim);
}
