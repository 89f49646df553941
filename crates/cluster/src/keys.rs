//! Every Redis key and channel name of the cluster layer, built in one
//! place ([`ClusterKeys`]). A service adds its own names beside them under
//! the same namespace.
//!
//! Every key of one partition carries the partition's hash tag,
//! `{ns}:{p<p>}:...` (e.g. `ns:{p7}:lease:7`), so that on a Redis
//! Cluster they all live in one hash slot and a script may touch any of
//! them (the lease it fences with, and the data it writes). The
//! cluster-wide keys (config, members) share the tag `{cluster}`
//! (`ns:{cluster}:members`), so the membership script may touch several.
//! The namespace stays the first segment, and the names still end as
//! before (`:lease:<p>`), so scans by pattern keep working.
//!
//! The names are a public contract: external tools read them, so they
//! change only together with the docs and tests.

use crate::ids::{InstanceId, PartitionId};

/// Builds the cluster's key and channel names under one namespace `{ns}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKeys {
    ns: String,
}

impl ClusterKeys {
    /// Names under namespace `ns`.
    pub fn new(ns: impl Into<String>) -> Self {
        Self { ns: ns.into() }
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// `{ns}:{suffix}`: a name of the service's own under the namespace.
    pub fn named(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.ns)
    }

    /// `{ns}:{p<p>}:{suffix}`: a key of partition `p` (the service's data
    /// of that partition), in the partition's hash slot.
    pub fn in_partition(&self, p: PartitionId, suffix: &str) -> String {
        format!("{}:{{p{}}}:{suffix}", self.ns, p)
    }

    /// `{ns}:{cluster}:{suffix}`: a cluster-wide key, in the one hash slot
    /// of the tag `{cluster}`.
    pub fn cluster_wide(&self, suffix: &str) -> String {
        format!("{}:{{cluster}}:{suffix}", self.ns)
    }

    /// `{ns}:{cluster}:config` hash: `partitions`, `lease_ms`, `schema`.
    pub fn config(&self) -> String {
        self.cluster_wide("config")
    }

    /// `{ns}:config`, where versions before key schema 3 kept the config:
    /// a namespace such a version created has one; this version marks it
    /// with `schema 3`, so that an older version refuses the namespace.
    pub fn legacy_config(&self) -> String {
        self.named("config")
    }

    /// `{ns}:{cluster}:members` sorted set: instance id → heartbeat expiry
    /// (ms).
    pub fn members(&self) -> String {
        self.cluster_wide("members")
    }

    /// `{ns}:{cluster}:member:{id}` hash with a TTL: `http`, `pid`,
    /// `started_at_ms`.
    pub fn member(&self, id: &InstanceId) -> String {
        self.cluster_wide(&format!("member:{id}"))
    }

    /// `{ns}:{p<p>}:lease:{p}` string: `{instance}:{epoch}`, with PX.
    pub fn lease(&self, p: PartitionId) -> String {
        self.in_partition(p, &format!("lease:{p}"))
    }

    /// Every lease key, partition 0 to `partitions - 1`, for one `MGET` of
    /// the whole ownership (on a single Redis).
    pub fn all_leases(&self, partitions: u32) -> Vec<String> {
        (0..partitions)
            .map(|p| self.lease(PartitionId(p)))
            .collect()
    }

    /// `{ns}:{p<p>}:epoch:{p}` integer: last fencing token handed out for
    /// p.
    pub fn epoch(&self, p: PartitionId) -> String {
        self.in_partition(p, &format!("epoch:{p}"))
    }

    /// `{ns}:inbox:{id}` channel: messages for one instance.
    pub fn inbox(&self, id: &InstanceId) -> String {
        format!("{}:inbox:{}", self.ns, id)
    }

    /// `{ns}:events` channel: membership and lease events (JSON).
    pub fn events(&self) -> String {
        self.named("events")
    }

    /// `{ns}:broadcast` channel: messages for every live instance.
    pub fn broadcast(&self) -> String {
        self.named("broadcast")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let k = ClusterKeys::new("ns");
        let id: InstanceId = "p1".parse().unwrap();
        let p = PartitionId(7);
        assert_eq!(k.config(), "ns:{cluster}:config");
        assert_eq!(k.legacy_config(), "ns:config");
        assert_eq!(k.members(), "ns:{cluster}:members");
        assert_eq!(k.member(&id), "ns:{cluster}:member:p1");
        assert_eq!(k.lease(p), "ns:{p7}:lease:7");
        assert_eq!(k.all_leases(2), ["ns:{p0}:lease:0", "ns:{p1}:lease:1"]);
        assert_eq!(k.epoch(p), "ns:{p7}:epoch:7");
        assert_eq!(k.in_partition(p, "done:r1"), "ns:{p7}:done:r1");
        assert_eq!(k.inbox(&id), "ns:inbox:p1");
        assert_eq!(k.events(), "ns:events");
        assert_eq!(k.broadcast(), "ns:broadcast");
        assert_eq!(k.named("x:1"), "ns:x:1");
    }
}
