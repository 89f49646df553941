//! Refusing a Redis that may evict keys. With `maxmemory` set and any
//! `maxmemory-policy` but `noeviction`, Redis may drop a lease (the
//! `volatile-*` policies evict exactly the keys with a TTL) or an epoch
//! counter: an owner could vanish under a live writer, or an epoch start
//! again at 1 below a stored fence. [`check`] reads the policy of every
//! node at join and refuses such a server unless the service accepts the
//! risk.

use tracing::warn;

use crate::connection::RedisConn;
use crate::error::ClusterError;

/// What the server says about eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionSettings {
    /// `maxmemory` in bytes (0: no limit, nothing is evicted).
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub policy: String,
}

impl EvictionSettings {
    /// True when the server may evict keys.
    pub fn may_evict(&self) -> bool {
        self.maxmemory > 0 && self.policy != "noeviction"
    }

    /// Reads `maxmemory` and `maxmemory_policy` from `INFO memory` (which
    /// needs no `CONFIG` permission, unlike `CONFIG GET`).
    pub fn from_info(info: &str) -> Option<Self> {
        Some(Self {
            maxmemory: info_field(info, "maxmemory")?.parse().ok()?,
            policy: info_field(info, "maxmemory_policy")?.to_owned(),
        })
    }
}

/// The value of `name` in an `INFO` or `CLUSTER INFO` reply
/// (`name:value` lines).
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Reads every node's eviction settings (each master and replica of a
/// Redis Cluster: a replica promoted later evicts by its own); refuses
/// when one may evict, unless `allow`. A node that does not say (a
/// restricted `INFO`) is let through with a warning.
pub async fn check(con: &mut RedisConn, url: &str, allow: bool) -> Result<(), ClusterError> {
    let info = redis::cmd("INFO").arg("memory").to_owned();
    let replies = match con.query_every_node(&info).await {
        Ok(r) => r,
        Err(e) => {
            warn!(%url, error = %e, "cannot read the eviction policy (INFO memory); make sure maxmemory-policy is noeviction");
            return Ok(());
        }
    };
    for (node, reply) in replies {
        let node = if node.is_empty() {
            url.to_owned()
        } else {
            node
        };
        check_node(&node, reply, allow)?;
    }
    Ok(())
}

/// [`check`] of one node's `INFO memory` reply.
fn check_node(node: &str, reply: redis::Value, allow: bool) -> Result<(), ClusterError> {
    let info: String = match redis::from_redis_value(reply) {
        Ok(i) => i,
        Err(e) => {
            warn!(%node, error = %e, "cannot read the eviction policy (INFO memory); make sure maxmemory-policy is noeviction");
            return Ok(());
        }
    };
    let Some(settings) = EvictionSettings::from_info(&info) else {
        warn!(%node, "INFO memory does not show the eviction policy; make sure maxmemory-policy is noeviction");
        return Ok(());
    };
    if !settings.may_evict() {
        return Ok(());
    }
    if allow {
        warn!(%node, maxmemory = settings.maxmemory, policy = %settings.policy,
            "Redis may evict keys, allowed by choice: a lease or epoch counter could vanish under a live owner");
        return Ok(());
    }
    Err(ClusterError::EvictingRedis {
        url: node.to_owned(),
        maxmemory: settings.maxmemory,
        policy: settings.policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_memory() {
        let info = "# Memory\r\nused_memory:1\r\nmaxmemory:104857600\r\nmaxmemory_human:100.00M\r\nmaxmemory_policy:allkeys-lru\r\n";
        let s = EvictionSettings::from_info(info).unwrap();
        assert_eq!(
            (s.maxmemory, s.policy.as_str()),
            (104_857_600, "allkeys-lru")
        );
        assert!(s.may_evict());
        let no_limit = EvictionSettings {
            maxmemory: 0,
            policy: "allkeys-lru".into(),
        };
        assert!(!no_limit.may_evict(), "without a limit nothing is evicted");
        let safe = EvictionSettings {
            maxmemory: 1,
            policy: "noeviction".into(),
        };
        assert!(!safe.may_evict());
        assert_eq!(EvictionSettings::from_info("# Memory\r\n"), None);
    }
}
