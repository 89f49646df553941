//! Every Redis key and channel name the project uses: the cluster layer's
//! ([`ClusterKeys`], reached through [`Keys`] by `Deref`) and tickshard's
//! own (symbol state, partition symbol sets, bars, stats).
//!
//! The names are a public contract (see the README): external tools read
//! them, so they change only together with the docs and tests.

use std::ops::Deref;

pub use tickshard_cluster::keys::{scan_matching, ClusterKeys};

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

    /// `{ns}:sym:{SYMBOL}` hash: the symbol's persisted state.
    pub fn sym(&self, s: &Symbol) -> String {
        format!("{}:sym:{s}", self.namespace())
    }

    /// Prefix of all symbol state keys (`{ns}:sym:`), for scans.
    pub fn sym_prefix(&self) -> String {
        self.named("sym:")
    }

    /// `{ns}:psyms:{p}` set: symbols seen in partition p.
    pub fn psyms(&self, p: PartitionId) -> String {
        format!("{}:psyms:{p}", self.namespace())
    }

    /// `{ns}:bars:{SYMBOL}` stream: completed OHLC bars.
    pub fn bars(&self, s: &Symbol) -> String {
        format!("{}:bars:{s}", self.namespace())
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
            "ns:lease:7",
            "the cluster's names through Deref"
        );
        assert_eq!(k.sym(&sym), "ns:sym:AAPL");
        assert_eq!(k.sym_prefix(), "ns:sym:");
        assert_eq!(k.psyms(p), "ns:psyms:7");
        assert_eq!(k.bars(&sym), "ns:bars:AAPL");
        assert_eq!(k.stats(), "ns:stats");
    }
}
