//! Every Redis key and channel name the project uses, built in one place.
//!
//! The names are a public contract (see the README): external tools read
//! them, so they change only together with the docs and tests.

use crate::tick::{InstanceId, PartitionId, Symbol};

/// Every key matching `pattern` (Redis glob), found with `SCAN` so a large
/// keyspace never blocks the server.
pub async fn scan_matching<C>(conn: &mut C, pattern: &str) -> redis::RedisResult<Vec<String>>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut names = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        names.extend(batch);
        if next == 0 {
            return Ok(names);
        }
        cursor = next;
    }
}

/// Default cluster namespace.
pub const DEFAULT_NAMESPACE: &str = "tickshard";

/// Builds key and channel names under one cluster namespace `{ns}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// Names under namespace `ns`.
    pub fn new(ns: impl Into<String>) -> Self {
        Self { ns: ns.into() }
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// `{ns}:config` hash: `partitions`, `lease_ms`, `schema`.
    pub fn config(&self) -> String {
        format!("{}:config", self.ns)
    }

    /// `{ns}:members` sorted set: instance id → heartbeat expiry (ms).
    pub fn members(&self) -> String {
        format!("{}:members", self.ns)
    }

    /// `{ns}:member:{id}` hash with a TTL: `http`, `pid`, `started_at_ms`.
    pub fn member(&self, id: &InstanceId) -> String {
        format!("{}:member:{}", self.ns, id)
    }

    /// `{ns}:lease:{p}` string: `{instance}:{epoch}`, with PX.
    pub fn lease(&self, p: PartitionId) -> String {
        format!("{}:lease:{}", self.ns, p)
    }

    /// Every lease key `{ns}:lease:0` .. `{ns}:lease:{partitions - 1}`,
    /// for one `MGET` of the whole ownership.
    pub fn all_leases(&self, partitions: u32) -> Vec<String> {
        (0..partitions)
            .map(|p| self.lease(PartitionId(p)))
            .collect()
    }

    /// Prefix of all lease keys (`{ns}:lease:`), for scans.
    pub fn lease_prefix(&self) -> String {
        format!("{}:lease:", self.ns)
    }

    /// `{ns}:epoch:{p}` integer: last fencing token handed out for p.
    pub fn epoch(&self, p: PartitionId) -> String {
        format!("{}:epoch:{}", self.ns, p)
    }

    /// `{ns}:sym:{SYMBOL}` hash: the symbol's persisted state.
    pub fn sym(&self, s: &Symbol) -> String {
        format!("{}:sym:{}", self.ns, s)
    }

    /// Prefix of all symbol state keys (`{ns}:sym:`), for scans.
    pub fn sym_prefix(&self) -> String {
        format!("{}:sym:", self.ns)
    }

    /// `{ns}:psyms:{p}` set: symbols seen in partition p.
    pub fn psyms(&self, p: PartitionId) -> String {
        format!("{}:psyms:{}", self.ns, p)
    }

    /// `{ns}:bars:{SYMBOL}` stream: completed OHLC bars.
    pub fn bars(&self, s: &Symbol) -> String {
        format!("{}:bars:{}", self.ns, s)
    }

    /// `{ns}:inbox:{id}` channel: messages for one instance.
    pub fn inbox(&self, id: &InstanceId) -> String {
        format!("{}:inbox:{}", self.ns, id)
    }

    /// `{ns}:events` channel: membership and lease events (JSON).
    pub fn events(&self) -> String {
        format!("{}:events", self.ns)
    }

    /// `{ns}:stats` channel: per-instance stats, about once a second.
    pub fn stats(&self) -> String {
        format!("{}:stats", self.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let k = Keys::new("ns");
        let id: InstanceId = "p1".parse().unwrap();
        let sym: Symbol = "AAPL".parse().unwrap();
        let p = PartitionId(7);
        assert_eq!(k.config(), "ns:config");
        assert_eq!(k.members(), "ns:members");
        assert_eq!(k.member(&id), "ns:member:p1");
        assert_eq!(k.lease(p), "ns:lease:7");
        assert_eq!(k.epoch(p), "ns:epoch:7");
        assert_eq!(k.sym(&sym), "ns:sym:AAPL");
        assert_eq!(k.psyms(p), "ns:psyms:7");
        assert_eq!(k.bars(&sym), "ns:bars:AAPL");
        assert_eq!(k.inbox(&id), "ns:inbox:p1");
        assert_eq!(k.events(), "ns:events");
        assert_eq!(k.stats(), "ns:stats");
    }
}
