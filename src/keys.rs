//! Every Redis key and channel name the project uses: the cluster layer's
//! ([`ClusterKeys`], reached through [`Keys`] by `Deref`) and tickshard's
//! own (symbol state, partition symbol sets, operator output streams, the
//! live-update channel, stats). A symbol's keys
//! carry its partition's hash tag (`{ns}:{p<p>}:sym:<SYMBOL>`), like the
//! partition's lease, so the fenced flush touches one hash slot.
//!
//! The names are a public contract (see the README): external tools read
//! them, so they change only together with the docs and tests.

use std::ops::Deref;

pub use tickshard_cluster::keys::ClusterKeys;

use crate::tick::{PartitionId, Symbol};

/// Default cluster namespace.
pub const DEFAULT_NAMESPACE: &str = "tickshard";

/// Builds key and channel names under one cluster namespace `{ns}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    cluster: ClusterKeys,
}

impl Deref for Keys {
    type Target = ClusterKeys;
    fn deref(&self) -> &ClusterKeys {
        &self.cluster
    }
}

impl Keys {
    /// Names under namespace `ns`.
    pub fn new(ns: impl Into<String>) -> Self {
        Self {
            cluster: ClusterKeys::new(ns),
        }
    }

    /// The cluster layer's names alone.
    pub fn cluster(&self) -> &ClusterKeys {
        &self.cluster
    }

    /// `{ns}:{p<p>}:sym:{SYMBOL}` hash: the state of `s`, of partition
    /// `p`.
    pub fn sym(&self, p: PartitionId, s: &Symbol) -> String {
        format!("{}:{{p{p}}}:sym:{s}", self.namespace())
    }

    /// [`Keys::sym`] of `s` in a cluster of `partitions` partitions.
    pub fn sym_in(&self, s: &Symbol, partitions: std::num::NonZeroU32) -> String {
        self.sym(crate::partition::partition_of(s, partitions), s)
    }

    /// The glob of every symbol state key (`{ns}:*:sym:*`), for scans;
    /// [`Keys::symbol_of`] reads the symbol back.
    pub fn sym_pattern(&self) -> String {
        format!("{}:*:sym:*", self.namespace())
    }

    /// The symbol a state key names (`None` for any other key).
    pub fn symbol_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.namespace())?
            .strip_prefix(":{p")?
            .split_once("}:sym:")
            .map(|(_, s)| s)
    }

    /// `{ns}:{p<p>}:psyms:{p}` set: symbols seen in partition p.
    pub fn psyms(&self, p: PartitionId) -> String {
        format!("{}:{{p{p}}}:psyms:{p}", self.namespace())
    }

    /// `{ns}:{p<p>}:out:{operator}:{SYMBOL}` stream: the outputs of one
    /// operator for `s` (completed bars are the outputs of `bars_<width>`).
    pub fn out(&self, p: PartitionId, operator: &str, s: &Symbol) -> String {
        format!("{}:{{p{p}}}:out:{operator}:{s}", self.namespace())
    }

    /// `{ns}:{p<p>}:live` channel: the state updates and outputs of
    /// partition `p`'s symbols, published by the flush while watched.
    pub fn live(&self, p: PartitionId) -> String {
        format!("{}:{{p{p}}}:live", self.namespace())
    }

    /// `{ns}:{p<p>}:watched` key: present (with a TTL) while some
    /// `/ws/symbols` client watches a symbol of partition `p`.
    pub fn watched(&self, p: PartitionId) -> String {
        format!("{}:{{p{p}}}:watched", self.namespace())
    }

    /// `{ns}:stats` channel: per-instance stats, about once a second.
    pub fn stats(&self) -> String {
        self.named("stats")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let k = Keys::new("ns");
        let sym: Symbol = "AAPL".parse().unwrap();
        let p = PartitionId(7);
        assert_eq!(
            k.lease(p),
            "ns:{p7}:lease:7",
            "the cluster's names through Deref"
        );
        assert_eq!(k.sym(p, &sym), "ns:{p7}:sym:AAPL");
        assert_eq!(k.sym_pattern(), "ns:*:sym:*");
        assert_eq!(k.symbol_of("ns:{p7}:sym:AAPL"), Some("AAPL"));
        assert_eq!(k.symbol_of("ns:{p7}:psyms:7"), None);
        assert_eq!(k.symbol_of("other:{p7}:sym:AAPL"), None);
        assert_eq!(k.psyms(p), "ns:{p7}:psyms:7");
        assert_eq!(k.out(p, "bars_1m", &sym), "ns:{p7}:out:bars_1m:AAPL");
        assert_eq!(k.live(p), "ns:{p7}:live");
        assert_eq!(k.watched(p), "ns:{p7}:watched");
        assert_eq!(k.stats(), "ns:stats");
    }

    /// Redis Cluster hashes only the part between the first `{` and the
    /// next `}` when there is one.
    fn hash_tag(key: &str) -> &str {
        key.find('{')
            .and_then(|a| key[a + 1..].find('}').map(|b| &key[a + 1..a + 1 + b]))
            .filter(|t| !t.is_empty())
            .unwrap_or(key)
    }

    #[test]
    fn every_key_of_a_partition_shares_its_hash_slot() {
        let k = Keys::new("ns");
        let p = PartitionId(7);
        let sym: Symbol = "AAPL".parse().unwrap();
        let of_p7 = [
            k.lease(p),
            k.epoch(p),
            k.psyms(p),
            k.sym(p, &sym),
            k.out(p, "bars_1m", &sym),
            k.live(p),
            k.watched(p),
            k.in_partition(p, "done:r1"),
        ];
        for key in &of_p7 {
            assert_eq!(hash_tag(key), "p7", "{key}");
        }
        assert_ne!(hash_tag(&k.lease(PartitionId(70))), "p7");
        let p64 = std::num::NonZeroU32::new(64).unwrap();
        assert_eq!(
            k.sym_in(&sym, p64),
            "ns:{p11}:sym:AAPL",
            "AAPL is pinned to 11"
        );
    }
}
