//! Membership: registration and heartbeats in `{ns}:{cluster}:members` (score =
//! expiry in Redis server time) and `{ns}:{cluster}:member:{id}` (a hash with a TTL),
//! pruning of expired members, the unique-id check, and the periodic full
//! read of live members and all lease keys (two reads: the members' slot,
//! then every partition's lease).

use std::num::NonZeroU32;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Script;

use super::error::ClusterError;
use crate::connection::RedisConn;
use crate::ids::InstanceId;
use crate::keys::ClusterKeys;

/// Registers or refreshes a member; prunes expired ones. In `join` mode a
/// live entry with another incarnation token is reported as `busy`.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[7] == 'join' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if score and redis.call('HGET', KEYS[2], 'incarnation') ~= ARGV[6] then
    return {'busy', tostring(score), tostring(now)}
  end
end
local added = redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], 'http', ARGV[3], 'pid', ARGV[4], 'started_at_ms', ARGV[5], 'incarnation', ARGV[6])
redis.call('PEXPIRE', KEYS[2], ttl)
return {'ok', tostring(added), tostring(now)}
";

/// Live members: expiry after Redis now (the server's clock, so every
/// instance judges alike).
const LIVE_MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
";

/// One live member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberInfo {
    /// Its id.
    pub id: InstanceId,
    /// Its advertised HTTP address, if any.
    pub http: Option<String>,
}

/// What this process advertises about itself.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Id.
    pub id: InstanceId,
    /// HTTP address.
    pub http: Option<String>,
    /// Process id.
    pub pid: u32,
    /// Start time, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Random token telling this process from an earlier one with the same id.
    pub incarnation: String,
}

/// Result of a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Refreshed; `added`: the entry was new (first join, or we had expired).
    Ok {
        /// The entry was (re)created.
        added: bool,
    },
    /// Join mode only: another incarnation holds the id until `expiry_ms`.
    Busy {
        /// Its heartbeat expiry (Redis ms).
        expiry_ms: u64,
    },
}

/// A full read: live member ids and each partition's raw lease value.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Live member ids, sorted.
    pub members: Vec<InstanceId>,
    /// Lease value per partition (`None`: free or unreadable).
    pub leases: Vec<Option<String>>,
    /// Member entries that are not valid ids (counted as bad input).
    pub bad_members: usize,
}

/// The membership scripts, loaded once.
#[derive(Debug)]
pub struct Membership {
    heartbeat: Script,
    live_members: Script,
}

impl Default for Membership {
    fn default() -> Self {
        Self::new()
    }
}

impl Membership {
    /// Builds the scripts.
    pub fn new() -> Self {
        Self {
            heartbeat: Script::new(HEARTBEAT),
            live_members: Script::new(LIVE_MEMBERS),
        }
    }

    /// Registers (`join`) or refreshes our entry, pruning expired members.
    pub async fn beat<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        keys: &ClusterKeys,
        me: &Registration,
        ttl: Duration,
        join: bool,
    ) -> Result<Beat, ClusterError> {
        let raw: Vec<String> = self
            .heartbeat
            .key(keys.members())
            .key(keys.member(&me.id))
            .arg(me.id.as_str())
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(me.http.as_deref().unwrap_or(""))
            .arg(me.pid)
            .arg(me.started_at_ms)
            .arg(&me.incarnation)
            .arg(if join { "join" } else { "beat" })
            .invoke_async(con)
            .await
            .map_err(ClusterError::redis("heartbeat"))?;
        match raw.first().map(String::as_str) {
            Some("ok") => Ok(Beat::Ok {
                added: raw.get(1).map(String::as_str) == Some("1"),
            }),
            Some("busy") => Ok(Beat::Busy {
                expiry_ms: raw
                    .get(1)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0) as u64,
            }),
            _ => Err(ClusterError::Protocol {
                op: "heartbeat",
                detail: format!("{raw:?}"),
            }),
        }
    }

    /// Removes our entry (clean leave).
    pub async fn leave<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        keys: &ClusterKeys,
        me: &InstanceId,
    ) -> Result<(), ClusterError> {
        redis::pipe()
            .zrem(keys.members(), me.as_str())
            .ignore()
            .del(keys.member(me))
            .ignore()
            .query_async::<()>(con)
            .await
            .map_err(ClusterError::redis("leave"))
    }

    /// Reads live members, then all P lease values
    /// ([`RedisConn::mget`]).
    pub async fn snapshot(
        &self,
        con: &mut RedisConn,
        keys: &ClusterKeys,
        partitions: NonZeroU32,
    ) -> Result<Snapshot, ClusterError> {
        let ids: Vec<Vec<u8>> = self
            .live_members
            .key(keys.members())
            .invoke_async(con)
            .await
            .map_err(ClusterError::redis("snapshot"))?;
        let leases: Vec<Option<Vec<u8>>> = con
            .mget(&keys.all_leases(partitions.get()))
            .await
            .map_err(ClusterError::redis("snapshot"))?;
        if leases.len() != partitions.get() as usize {
            return Err(ClusterError::Protocol {
                op: "snapshot",
                detail: format!("{} lease values for {partitions} partitions", leases.len()),
            });
        }
        let mut bad_members = 0;
        let mut members: Vec<InstanceId> = ids
            .iter()
            .filter_map(|s| {
                let id = std::str::from_utf8(s).ok().and_then(|s| s.parse().ok());
                bad_members += usize::from(id.is_none());
                id
            })
            .collect();
        members.sort();
        let leases = leases
            .into_iter()
            .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
            .collect();
        Ok(Snapshot {
            members,
            leases,
            bad_members,
        })
    }

    /// Reads the advertised HTTP address of each member (one pipeline).
    pub async fn http_addrs<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        keys: &ClusterKeys,
        ids: &[InstanceId],
    ) -> Result<Vec<MemberInfo>, ClusterError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(keys.member(id), "http");
        }
        let addrs: Vec<Option<String>> = pipe
            .query_async(con)
            .await
            .map_err(ClusterError::redis("member addresses"))?;
        Ok(ids
            .iter()
            .zip(addrs)
            .map(|(id, http)| MemberInfo {
                id: id.clone(),
                http: http.filter(|h| !h.is_empty()),
            })
            .collect())
    }
}
