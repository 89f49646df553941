//! The one reader of ownership for those who watch a cluster without
//! joining it (a feed that routes to owners, a dashboard): the current
//! leases parsed into typed ids ([`Observer::read`]), a typed stream of
//! `{ns}:events` ([`Observer::events`]), and an [`OwnershipMap`] that the
//! events patch between reads.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use futures_util::{Stream, StreamExt};

use crate::connection::{ConnOptions, RedisConn};
use crate::error::ClusterError;
use crate::events::{ClusterEvent, EventError};
use crate::ids::{Epoch, InstanceId, PartitionId};
use crate::keys::ClusterKeys;
use crate::lease::parse_lease_value;
use crate::partition::partition_of_key;
use crate::redis_conn::RedisConfig;

/// Who holds a partition, at which epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owner.
    pub instance: InstanceId,
    /// Its fencing token.
    pub epoch: Epoch,
}

impl Holder {
    /// Parses a lease value `{instance}:{epoch}`; `None` for anything else.
    pub fn parse(lease_value: &str) -> Option<Self> {
        parse_lease_value(lease_value).map(|(instance, epoch)| Self { instance, epoch })
    }
}

/// Partition → holder, with the cluster's partition count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnershipMap {
    /// `partitions` from `{ns}:{cluster}:config`; `None` until the cluster has one.
    pub partitions: Option<NonZeroU32>,
    holders: BTreeMap<PartitionId, Holder>,
}

impl OwnershipMap {
    /// An empty map of a cluster of `partitions` (unknown: `None`).
    pub fn new(partitions: Option<NonZeroU32>) -> Self {
        Self {
            partitions,
            holders: BTreeMap::new(),
        }
    }

    /// The holder of `p`, if any.
    pub fn holder(&self, p: PartitionId) -> Option<&Holder> {
        self.holders.get(&p)
    }

    /// The holder of the partition `key` belongs to (see
    /// [`partition_of_key`]); `None` while the partition count is unknown.
    pub fn holder_of_key(&self, key: &[u8]) -> Option<&Holder> {
        self.holder(partition_of_key(key, self.partitions?))
    }

    /// Every held partition, in order.
    pub fn holders(&self) -> impl Iterator<Item = (PartitionId, &Holder)> {
        self.holders.iter().map(|(p, h)| (*p, h))
    }

    /// Sets (or clears) the holder of `p`.
    pub fn set(&mut self, p: PartitionId, holder: Option<Holder>) {
        match holder {
            Some(h) => self.holders.insert(p, h),
            None => self.holders.remove(&p),
        };
    }

    /// Applies one event; `true` if the map changed. An acquisition older
    /// than the known holder's epoch, a release or loss by someone who is
    /// not the known holder, and any event for a partition outside the
    /// known count (or before it is known) change nothing.
    pub fn apply(&mut self, event: &ClusterEvent) -> bool {
        let in_range = |p: &PartitionId| self.partitions.is_some_and(|n| p.0 < n.get());
        match event {
            ClusterEvent::LeaseAcquired { partition, .. }
            | ClusterEvent::LeaseReleased { partition, .. }
            | ClusterEvent::LeaseLost { partition, .. }
                if !in_range(partition) =>
            {
                false
            }
            ClusterEvent::LeaseAcquired {
                partition,
                instance,
                epoch,
                ..
            } => {
                let known = self.holders.get(partition);
                let newer = known.is_none_or(|h| h.epoch <= *epoch);
                let same = known.is_some_and(|h| h.epoch == *epoch && &h.instance == instance);
                if !newer || same {
                    return false;
                }
                let holder = Holder {
                    instance: instance.clone(),
                    epoch: *epoch,
                };
                self.holders.insert(*partition, holder);
                true
            }
            ClusterEvent::LeaseReleased {
                partition,
                instance,
                epoch,
                ..
            }
            | ClusterEvent::LeaseLost {
                partition,
                instance,
                epoch,
                ..
            } => {
                let same = self
                    .holders
                    .get(partition)
                    .is_some_and(|h| &h.instance == instance && h.epoch <= *epoch);
                if same {
                    self.holders.remove(partition);
                }
                same
            }
            ClusterEvent::MemberJoined { .. } | ClusterEvent::MemberLeft { .. } => false,
        }
    }
}

/// A read-only watcher of one cluster.
#[derive(Debug, Clone)]
pub struct Observer {
    redis: RedisConfig,
    keys: ClusterKeys,
}

/// One message of [`Observer::events`]: an event, or what was on the
/// channel instead
/// (count [`EventError::is_garbage`] ones, ignore the others).
pub type ObservedEvent = Result<ClusterEvent, EventError>;

impl Observer {
    /// A watcher of the cluster under `keys` in the Redis `redis` points
    /// at; connects on first use.
    pub fn new(redis: &RedisConfig, keys: ClusterKeys) -> Result<Self, ClusterError> {
        // Fails here, not on first use, for a URL that does not parse.
        redis
            .client()
            .map_err(|e| ClusterError::from_config(redis, e))?;
        Ok(Self {
            redis: redis.clone(),
            keys,
        })
    }

    /// A connection for [`Observer::read`] (single server or Redis
    /// Cluster, reconnecting; reuse it).
    pub async fn connect(&self) -> Result<RedisConn, ClusterError> {
        RedisConn::connect(&self.redis, &ConnOptions::default())
            .await
            .map_err(|e| crate::join::connect_error(&self.redis, e))
    }

    /// The partition count and every lease, in one round trip after the
    /// config ([`RedisConn::mget`]). Lease values that do not parse count as free.
    pub async fn read(&self, conn: &mut RedisConn) -> Result<OwnershipMap, ClusterError> {
        let partitions: Option<String> = redis::cmd("HGET")
            .arg(self.keys.config())
            .arg("partitions")
            .query_async(conn)
            .await
            .map_err(ClusterError::redis("observer read config"))?;
        let partitions = partitions
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(NonZeroU32::new);
        let mut map = OwnershipMap::new(partitions);
        let Some(p) = partitions else {
            return Ok(map);
        };
        let values: Vec<Option<String>> = conn
            .mget(&self.keys.all_leases(p.get()))
            .await
            .map_err(ClusterError::redis("observer read leases"))?;
        for (i, v) in values.iter().enumerate() {
            map.set(PartitionId(i as u32), v.as_deref().and_then(Holder::parse));
        }
        Ok(map)
    }

    /// Subscribes to `{ns}:events`: every message, parsed. The stream ends
    /// when the connection does (pub/sub is at-most-once: read again
    /// after resubscribing).
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = ObservedEvent> + Send + 'static, ClusterError> {
        // Each stream at the next seed (the events are cluster-wide, so any
        // node hears them), so one whose node died moves on.
        let client = self
            .redis
            .next_seed_client()
            .map_err(|e| ClusterError::from_config(&self.redis, e))?;
        let mut ps = client
            .get_async_pubsub()
            .await
            .map_err(ClusterError::redis("observer subscribe"))?;
        ps.subscribe(self.keys.events())
            .await
            .map_err(ClusterError::redis("observer subscribe"))?;
        Ok(ps
            .into_on_message()
            .map(|m| ClusterEvent::parse(m.get_payload_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquired(p: u32, who: &str, epoch: u64) -> ClusterEvent {
        ClusterEvent::LeaseAcquired {
            ts_ms: 1,
            partition: PartitionId(p),
            instance: who.parse().unwrap(),
            epoch: Epoch(epoch),
        }
    }

    #[test]
    fn lease_values_parse_into_typed_holders() {
        let h = Holder::parse("p1:12").unwrap();
        assert_eq!((h.instance.as_str(), h.epoch), ("p1", Epoch(12)));
        for bad in ["p1", ":3", "p1:x", "a b:1", ""] {
            assert_eq!(Holder::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn events_patch_the_map() {
        let mut m = OwnershipMap::new(NonZeroU32::new(64));
        assert!(m.apply(&acquired(11, "p2", 12)));
        assert_eq!(m.holder(PartitionId(11)).unwrap().instance.as_str(), "p2");
        assert!(!m.apply(&acquired(11, "p9", 3)), "an older epoch is stale");
        let lost_by_other = ClusterEvent::LeaseLost {
            ts_ms: 1,
            partition: PartitionId(11),
            instance: "p9".parse().unwrap(),
            epoch: Epoch(12),
        };
        assert!(!m.apply(&lost_by_other), "only the holder can lose it");
        let joined = ClusterEvent::MemberJoined {
            ts_ms: 1,
            instance: "p3".parse().unwrap(),
        };
        assert!(!m.apply(&joined));
        let released = ClusterEvent::LeaseReleased {
            ts_ms: 1,
            partition: PartitionId(11),
            instance: "p2".parse().unwrap(),
            epoch: Epoch(12),
        };
        assert!(m.apply(&released));
        assert_eq!(m.holder(PartitionId(11)), None);
    }

    #[test]
    fn keys_map_to_holders_and_strays_are_ignored() {
        let mut m = OwnershipMap::default();
        let p = partition_of_key(b"AAPL", NonZeroU32::new(64).unwrap());
        assert!(!m.apply(&acquired(p.0, "p1", 1)), "P unknown: ignored");
        m.partitions = NonZeroU32::new(64);
        assert!(m.apply(&acquired(p.0, "p1", 1)));
        assert_eq!(m.holder_of_key(b"AAPL").unwrap().instance.as_str(), "p1");
        assert!(!m.apply(&acquired(64, "p1", 1)), "out of range: ignored");
        assert_eq!(m.holders().count(), 1);
    }
}
