//! Join options and the cluster-wide `{ns}:{cluster}:config` hash
//! (`partitions`, `lease_ms`, `schema`): created by the first instance
//! (`HSETNX`), checked by every later one.

use std::num::NonZeroU32;
use std::time::Duration;

use redis::aio::ConnectionLike;

use super::error::ClusterError;
use crate::ids::InstanceId;
use crate::keys::ClusterKeys;

/// Schema version stored in `{ns}:{cluster}:config`: 4 since the inboxes
/// are shard channels (`SPUBLISH`; an instance of schema 3 would never
/// hear one of 4, nor the other way round); 3 since the cluster-wide keys
/// share the hash tag `{cluster}` (the config moved from `{ns}:config`); 2
/// since keys of a partition carry its hash tag (`{ns}:{p<p>}:...`); 1
/// before.
pub const SCHEMA: &str = "4";

/// How an instance joins the cluster.
#[derive(Clone)]
pub struct ClusterOptions {
    /// How to reach Redis (URL, credentials, TLS).
    pub redis: crate::redis_conn::RedisConfig,
    /// Key namespace.
    pub keys: ClusterKeys,
    /// This instance's id (unique among live members).
    pub instance: InstanceId,
    /// Partition count P, fixed per cluster.
    pub partitions: NonZeroU32,
    /// Lease TTL; leases are renewed every TTL/3.
    pub lease: Duration,
    /// HTTP address advertised in `{ns}:{cluster}:member:{id}`.
    pub http_addr: Option<String>,
    /// Join even when Redis may evict keys (see
    /// [`eviction`](crate::eviction)); refused by default.
    pub allow_eviction: bool,
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("ClusterOptions")
            .field("redis", &self.redis)
            .field("keys", &self.keys)
            .field("instance", &self.instance)
            .field("partitions", &self.partitions)
            .field("lease", &self.lease)
            .field("http_addr", &self.http_addr)
            .field("allow_eviction", &self.allow_eviction)
            .finish()
    }
}

/// Timings derived from the lease TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Lease TTL.
    pub lease: Duration,
    /// Renew and heartbeat period (TTL/3).
    pub renew_every: Duration,
    /// Subtracted from local lease validity to absorb clock-rate and
    /// scheduling differences (TTL/10, at least 20 ms).
    pub safety_margin: Duration,
    /// Member heartbeat TTL: a member missing for this long is pruned.
    pub member_ttl: Duration,
    /// Full read of members and leases, besides event-driven reads.
    pub poll_every: Duration,
    /// A partition free this long is orphaned: anyone may take it.
    pub orphan_grace: Duration,
    /// How long a handover waits for the data path's flush ack.
    pub handover_ack: Duration,
    /// Timeout of one Redis round trip.
    pub op_timeout: Duration,
}

impl Timings {
    /// Timings for lease TTL `lease`.
    pub fn for_lease(lease: Duration) -> Self {
        let lease = lease.max(Duration::from_millis(30));
        Self {
            lease,
            renew_every: lease / 3,
            safety_margin: (lease / 10).max(Duration::from_millis(20)),
            // A member is alive exactly while it could be holding leases: its
            // heartbeat follows each renew, so a crashed member drops out of
            // the member set just after its leases expire, and survivors
            // take its partitions as their own targets at once.
            member_ttl: lease,
            poll_every: (lease / 8).clamp(Duration::from_millis(25), Duration::from_millis(500)),
            orphan_grace: lease / 4,
            handover_ack: lease / 3,
            op_timeout: (lease / 3).max(Duration::from_millis(100)),
        }
    }
}

/// Creates `{ns}:{cluster}:config` if absent, then checks that it
/// matches; a namespace an older version created (its config still at
/// `{ns}:config`) is refused before anything is written. It also marks
/// `{ns}:config` with this schema, which an older version meets first and
/// refuses, so old and new instances never run side by side.
pub async fn ensure_config<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &ClusterKeys,
    partitions: NonZeroU32,
    lease: Duration,
) -> Result<(), ClusterError> {
    refuse_legacy(con, keys).await?;
    let key = keys.config();
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    let (stored, schema): (Option<String>, Option<String>) = redis::pipe()
        .hset_nx(&key, "partitions", partitions.get())
        .ignore()
        .hset_nx(&key, "lease_ms", lease_ms)
        .ignore()
        .hset_nx(&key, "schema", SCHEMA)
        .ignore()
        .hget(&key, "partitions")
        .hget(&key, "schema")
        .query_async(con)
        .await
        .map_err(ClusterError::redis("config"))?;
    // In a slot of its own (no hash tag): a command of its own.
    redis::cmd("HSETNX")
        .arg(keys.legacy_config())
        .arg("schema")
        .arg(SCHEMA)
        .exec_async(con)
        .await
        .map_err(ClusterError::redis("config"))?;
    check_schema(keys, schema.as_deref())?;
    check_partitions(keys, stored.as_deref(), partitions)
}

/// Refuses a namespace created by an older version: before key schema 3 its config is still
/// `{ns}:config` (a config without a `schema` field is schema 1's); one
/// holding this schema is the mark [`ensure_config`] leaves for older
/// versions.
pub async fn refuse_legacy<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &ClusterKeys,
) -> Result<(), ClusterError> {
    let legacy = keys.legacy_config();
    let (exists, schema): (bool, Option<String>) = redis::pipe()
        .exists(&legacy)
        .hget(&legacy, "schema")
        .query_async(con)
        .await
        .map_err(ClusterError::redis("config"))?;
    if !exists || schema.as_deref() == Some(SCHEMA) {
        return Ok(());
    }
    Err(ClusterError::SchemaMismatch {
        namespace: keys.namespace().to_owned(),
        key: legacy,
        stored: schema.unwrap_or_else(|| "1".to_owned()),
    })
}

/// Refuses a cluster whose keys were laid out by another version.
pub fn check_schema(keys: &ClusterKeys, stored: Option<&str>) -> Result<(), ClusterError> {
    match stored {
        Some(SCHEMA) => Ok(()),
        other => Err(ClusterError::SchemaMismatch {
            namespace: keys.namespace().to_owned(),
            key: keys.config(),
            stored: other.unwrap_or("none").to_owned(),
        }),
    }
}

/// Compares the stored partition count with ours.
pub fn check_partitions(
    keys: &ClusterKeys,
    stored: Option<&str>,
    requested: NonZeroU32,
) -> Result<(), ClusterError> {
    let stored = stored.ok_or_else(|| ClusterError::BadConfig {
        key: keys.config(),
        reason: "no `partitions` field".into(),
    })?;
    let configured: u32 = stored.trim().parse().map_err(|_| ClusterError::BadConfig {
        key: keys.config(),
        reason: format!("`partitions` is {stored:?}, not a number"),
    })?;
    if configured != requested.get() {
        return Err(ClusterError::PartitionMismatch {
            namespace: keys.namespace().to_owned(),
            key: keys.config(),
            configured,
            requested: requested.get(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_check_names_both_values() {
        let k = ClusterKeys::new("ns");
        let p = NonZeroU32::new(64).unwrap();
        assert!(check_partitions(&k, Some("64"), p).is_ok());
        let e = check_partitions(&k, Some("32"), p).unwrap_err().to_string();
        assert!(e.contains("32") && e.contains("64"), "{e}");
        assert!(matches!(
            check_partitions(&k, Some("x"), p),
            Err(ClusterError::BadConfig { .. })
        ));
        assert!(matches!(
            check_partitions(&k, None, p),
            Err(ClusterError::BadConfig { .. })
        ));
    }

    #[test]
    fn timings_follow_the_lease() {
        let t = Timings::for_lease(Duration::from_secs(2));
        assert_eq!(t.renew_every, Duration::from_secs(2) / 3);
        assert!(t.safety_margin >= Duration::from_millis(200));
        assert!(t.member_ttl >= t.lease);
        assert!(t.orphan_grace < t.lease);
    }
}
