//! Fenced leases: the Lua scripts that acquire, renew and release
//! `{ns}:{p<p>}:lease:{p}` atomically, and the `{instance}:{epoch}` value format.
//!
//! Scripts are built once ([`LeaseScripts::new`]) and invoked by SHA; on
//! `NOSCRIPT` (first use, a Redis restart, a promoted replica)
//! `redis::Script` loads them and retries. Every script takes many
//! partitions: on a single server a whole round of acquisitions or
//! renewals is one call; on a Redis Cluster it is one call per partition
//! (each partition is a hash slot of its own), all sent at once
//! ([`RedisConn::per_slot_group`]).
//!
//! - acquire: only if the key is absent, take `INCR {ns}:{p<p>}:epoch:{p}` as the
//!   new epoch and `SET lease "{me}:{epoch}" PX ttl`. The epoch is the
//!   fencing token; it never goes backwards while `{ns}:{p<p>}:epoch:{p}` lives.
//! - renew and release (one script): for each lease still holding our
//!   exact value, `PEXPIRE` it, or delete it (compare-and-delete).
//!
//! A lease key holding something else (another type, foreign bytes) is
//! treated as held by nobody we know: never overwritten, never renewed.
//!
//! Replication is asynchronous: a replica promoted after its master failed
//! can lack the last `INCR` of an epoch or the last lease `SET`, and hand
//! the same epoch to a second owner. So a won lease counts only once every
//! replica in sync with its master holds it ([`confirm_on_replicas`]:
//! `WAIT` on the master serving the lease); the runtime gives back a lease
//! it could not confirm, and never acts as its owner.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use redis::Script;

use super::error::ClusterError;
use crate::connection::{GroupResults, RedisConn};
use crate::ids::{Epoch, InstanceId, PartitionId};
use crate::keys::ClusterKeys;

const ACQUIRE: &str = r"
local out = {}
for i = 1, #KEYS, 2 do
  local cur = redis.pcall('GET', KEYS[i])
  if type(cur) == 'table' then
    -- Not a string (foreign data under our key name): leave it alone.
    out[#out + 1] = '0'
    out[#out + 1] = '?'
  elseif cur then
    out[#out + 1] = '0'
    out[#out + 1] = cur
  else
    local e = redis.call('INCR', KEYS[i + 1])
    redis.call('SET', KEYS[i], ARGV[1] .. ':' .. e, 'PX', ARGV[2])
    out[#out + 1] = '1'
    out[#out + 1] = tostring(e)
  end
end
return out
";

/// Renew and release in one: for each lease still holding our exact value
/// (`ARGV[i + 1]`), `PEXPIRE` it by `ARGV[1]` ms, or `DEL` it when that is
/// `0` (compare-and-delete).
const IF_OURS: &str = r"
local out = {}
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  if redis.pcall('GET', KEYS[i]) == ARGV[i + 1] then
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[i], ttl)
    else
      redis.call('DEL', KEYS[i])
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
";

/// The lease value `{instance}:{epoch}`.
pub fn lease_value(instance: &InstanceId, epoch: Epoch) -> String {
    format!("{instance}:{epoch}")
}

/// Parses a lease value; `None` for anything malformed.
pub fn parse_lease_value(raw: &str) -> Option<(InstanceId, Epoch)> {
    let (id, epoch) = raw.rsplit_once(':')?;
    Some((id.parse().ok()?, Epoch(epoch.parse().ok()?)))
}

/// Result of one acquisition attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// We hold the lease with this new epoch.
    Won(Epoch),
    /// Someone holds it; the raw lease value.
    Held(String),
}

/// The lease scripts, loaded once.
#[derive(Debug)]
pub struct LeaseScripts {
    acquire: Script,
    if_ours: Script,
    /// Longest wait for one master's answer: a master that does not answer
    /// in time fails only its own partitions, before the caller's timeout
    /// for the whole round fails them all.
    group_timeout: Duration,
}

impl Default for LeaseScripts {
    fn default() -> Self {
        Self::new()
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl LeaseScripts {
    /// Builds the scripts (hashing only; Redis loads them on first use).
    pub fn new() -> Self {
        Self {
            acquire: Script::new(ACQUIRE),
            if_ours: Script::new(IF_OURS),
            group_timeout: Duration::from_secs(2),
        }
    }

    /// With each master's answer waited for at most `timeout` (default
    /// 2 s; keep it below the timeout of the whole round).
    pub fn with_group_timeout(mut self, timeout: Duration) -> Self {
        self.group_timeout = timeout;
        self
    }

    /// `call` (one master's part of a round) within the group timeout.
    async fn in_time<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        let after = self.group_timeout;
        tokio::time::timeout(after, call)
            .await
            .unwrap_or(Err(ClusterError::Timeout { op, after }))
    }

    /// Tries to acquire every partition in `parts` for `me` (one round
    /// trip; see the module docs). On a cluster with a master down, the
    /// partitions it serves are left out of the answer (not acquired); an
    /// error only when no master answered.
    pub async fn acquire(
        &self,
        con: &mut RedisConn,
        keys: &ClusterKeys,
        me: &InstanceId,
        parts: &[PartitionId],
        ttl: Duration,
    ) -> Result<Vec<(PartitionId, AcquireOutcome)>, ClusterError> {
        let groups = con
            .per_slot_group(parts.len(), |mut con, r| async move {
                let call = self.acquire_together(&mut con, keys, me, &parts[r], ttl);
                self.in_time("lease acquire", call).await
            })
            .await;
        Ok(each_group("lease acquire", groups)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// [`Self::acquire`] of partitions one script may touch together.
    async fn acquire_together(
        &self,
        con: &mut RedisConn,
        keys: &ClusterKeys,
        me: &InstanceId,
        parts: &[PartitionId],
        ttl: Duration,
    ) -> Result<Vec<(PartitionId, AcquireOutcome)>, ClusterError> {
        let mut inv = self.acquire.prepare_invoke();
        for &p in parts {
            inv.key(keys.lease(p)).key(keys.epoch(p));
        }
        inv.arg(me.as_str()).arg(ttl_ms(ttl));
        let raw: Vec<Vec<u8>> = inv
            .invoke_async(con)
            .await
            .map_err(ClusterError::redis("lease acquire"))?;
        let raw: Vec<String> = raw
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        if raw.len() != parts.len() * 2 {
            return Err(protocol(
                "lease acquire",
                format!("{} values for {} partitions", raw.len(), parts.len()),
            ));
        }
        parts
            .iter()
            .zip(raw.chunks(2))
            .map(|(&p, pair)| {
                let outcome =
                    match pair[0].as_str() {
                        "1" => AcquireOutcome::Won(Epoch(pair[1].parse().map_err(|_| {
                            protocol("lease acquire", format!("epoch {:?}", pair[1]))
                        })?)),
                        _ => AcquireOutcome::Held(pair[1].clone()),
                    };
                Ok((p, outcome))
            })
            .collect()
    }

    /// Renews every lease in `held` (ours at that epoch) in one round trip;
    /// per lease, `Some(true)` where it was still ours and got a fresh TTL,
    /// `Some(false)` where it is not ours any more, `None` where its master
    /// did not answer (a cluster with a master down; an error only when
    /// none answered).
    pub async fn renew(
        &self,
        con: &mut RedisConn,
        keys: &ClusterKeys,
        me: &InstanceId,
        held: &[(PartitionId, Epoch)],
        ttl: Duration,
    ) -> Result<Vec<Option<bool>>, ClusterError> {
        self.if_ours("lease renew", con, keys, me, held, ttl_ms(ttl))
            .await
    }

    /// Releases (compare-and-delete) every lease in `held`; `true` where it
    /// was still ours and is now gone (`false` also where its master did
    /// not answer: it lapses).
    pub async fn release(
        &self,
        con: &mut RedisConn,
        keys: &ClusterKeys,
        me: &InstanceId,
        held: &[(PartitionId, Epoch)],
    ) -> Result<Vec<bool>, ClusterError> {
        let done = self
            .if_ours("lease release", con, keys, me, held, 0)
            .await?;
        Ok(done.into_iter().map(|d| d == Some(true)).collect())
    }

    /// Runs [`IF_OURS`] over `held`: a fresh TTL of `ttl_ms`, or deletion
    /// when it is 0.
    async fn if_ours(
        &self,
        op: &'static str,
        con: &mut RedisConn,
        keys: &ClusterKeys,
        me: &InstanceId,
        held: &[(PartitionId, Epoch)],
        ttl_ms: u64,
    ) -> Result<Vec<Option<bool>>, ClusterError> {
        let groups = con
            .per_slot_group(held.len(), |mut con, r| async move {
                let held = &held[r];
                let mut inv = self.if_ours.prepare_invoke();
                inv.arg(ttl_ms);
                for &(p, e) in held {
                    inv.key(keys.lease(p)).arg(lease_value(me, e));
                }
                let call = async {
                    inv.invoke_async(&mut con)
                        .await
                        .map_err(ClusterError::redis(op))
                };
                let raw: Vec<i64> = self.in_time(op, call).await?;
                if raw.len() != held.len() {
                    return Err(protocol(
                        op,
                        format!("{} results for {} leases", raw.len(), held.len()),
                    ));
                }
                Ok(raw.into_iter().map(|r| r == 1).collect())
            })
            .await;
        each_group(op, groups)
    }

    /// Per lease of `won` (won by `me` at that epoch just now), whether
    /// every replica in sync with the master serving it holds it, waiting
    /// at most `timeout`, and the master serving its slot now still holds
    /// it (a failover in between would not); also the most replicas any
    /// of those masters has. One `WAIT` per master (its connection carried
    /// the acquisitions); a lease whose master did not answer is not
    /// confirmed.
    pub async fn confirm_on_replicas(
        &self,
        con: &mut RedisConn,
        keys: &ClusterKeys,
        me: &InstanceId,
        won: &[(PartitionId, Epoch)],
        timeout: Duration,
    ) -> Result<(Vec<bool>, u64), ClusterError> {
        let lease_of = |i: usize| keys.lease(won[i].0);
        // Which master serves each group, and how many replicas it has.
        let masters = con
            .per_slot_group(won.len(), |mut con, r| {
                let key = lease_of(r.start);
                async move {
                    let call = replication_of(&mut con, &key);
                    Ok::<_, ClusterError>(vec![self.in_time("replication info", call).await?])
                }
            })
            .await;
        let mut by_master: BTreeMap<String, (u64, Vec<Range<usize>>)> = BTreeMap::new();
        let mut most = 0;
        for (r, m) in &masters {
            if let Ok([(replid, replicas)]) = m.as_deref() {
                most = most.max(*replicas);
                let entry = by_master
                    .entry(replid.clone())
                    .or_insert((*replicas, Vec::new()));
                entry.1.push(r.clone());
            }
        }
        let mut confirmed = vec![false; won.len()];
        for (replicas, groups) in by_master.values() {
            let key = lease_of(groups[0].start);
            let waited = confirm_replicated(&mut con.clone(), &key, *replicas, timeout).await;
            if matches!(waited, Ok(true)) {
                for r in groups {
                    confirmed[r.clone()].iter_mut().for_each(|c| *c = true);
                }
            }
        }
        // Still there, on whichever master serves the slot now.
        let lease_keys: Vec<String> = (0..won.len()).map(lease_of).collect();
        let values = con
            .per_slot_group(won.len(), |con, r| {
                let keys = &lease_keys[r];
                async move {
                    let call = async {
                        con.mget::<Option<String>>(keys)
                            .await
                            .map_err(ClusterError::redis("lease check"))
                    };
                    self.in_time("lease check", call).await
                }
            })
            .await;
        for (r, v) in values {
            match v {
                Ok(v) => {
                    for (i, held) in r.zip(v) {
                        let (_, e) = won[i];
                        confirmed[i] &= held.as_deref() == Some(lease_value(me, e).as_str());
                    }
                }
                Err(_) => confirmed[r].iter_mut().for_each(|c| *c = false),
            }
        }
        Ok((confirmed, most))
    }
}

/// Each group's results spread over its items: `None` for the items of a
/// group that failed (logged); the first error when every group failed.
fn each_group<T>(
    op: &'static str,
    groups: GroupResults<T, ClusterError>,
) -> Result<Vec<Option<T>>, ClusterError> {
    let mut out = Vec::new();
    let mut first_error = None;
    let mut answered = groups.is_empty();
    for (r, g) in groups {
        match g {
            Ok(v) => {
                answered = true;
                out.extend(v.into_iter().map(Some));
            }
            Err(e) => {
                tracing::debug!(op, error = %e, partitions = r.len(), "a master did not answer");
                out.extend(r.map(|_| None));
                first_error.get_or_insert(e);
            }
        }
    }
    match (answered, first_error) {
        (false, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// The master serving `key`: its replication id and the replicas in sync
/// with it now, from its `INFO replication` (lines
/// `slave<n>:...,state=online,...`; 0 on a replica-less server). A replica
/// still making its first copy is not counted. A user whose ACL forbids
/// `INFO` cannot tell: 0, with a warning, as the eviction check does.
async fn replication_of(con: &mut RedisConn, key: &str) -> Result<(String, u64), ClusterError> {
    let info = redis::cmd("INFO").arg("replication").to_owned();
    let info: String = match con.query_at_master_of(&info, key).await {
        Ok(info) => info,
        Err(e) if e.code() == Some("NOPERM") => {
            tracing::warn!(error = %e, "cannot read INFO replication; leases are not confirmed on replicas");
            return Ok((String::new(), 0));
        }
        Err(e) => return Err(ClusterError::redis("replication info")(e)),
    };
    let replid = crate::eviction::info_field(&info, "master_replid").unwrap_or_default();
    Ok((replid.to_owned(), online_replicas(&info)))
}

/// The replicas in `state=online` among `INFO replication`'s lines.
fn online_replicas(info: &str) -> u64 {
    info.lines()
        .filter(|l| {
            l.strip_prefix("slave")
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(n, fields)| {
                    n.bytes().all(|b| b.is_ascii_digit())
                        && fields.split(',').any(|f| f == "state=online")
                })
        })
        .count() as u64
}

/// Waits (`WAIT`) until `replicas` replicas hold every write made on `con`
/// to the master serving `key` so far, at most `timeout`; true when they
/// do (at once with none).
async fn confirm_replicated(
    con: &mut RedisConn,
    key: &str,
    replicas: u64,
    timeout: Duration,
) -> Result<bool, ClusterError> {
    if replicas == 0 {
        return Ok(true);
    }
    let wait = redis::cmd("WAIT")
        .arg(replicas)
        .arg(ttl_ms(timeout))
        .to_owned();
    let acked: u64 = con
        .query_at_master_of(&wait, key)
        .await
        .map_err(ClusterError::redis("replication wait"))?;
    Ok(acked >= replicas)
}

fn protocol(op: &'static str, detail: String) -> ClusterError {
    ClusterError::Protocol { op, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replicas_in_sync_count() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n\
                    slave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n\
                    slave2:ip=127.0.0.1,port=7003,state=online,offset=42,lag=1\r\n\
                    slave_read_repl_offset:1\r\nmaster_repl_offset:42\r\n";
        assert_eq!(online_replicas(info), 2);
        assert_eq!(online_replicas("role:master\r\nconnected_slaves:0\r\n"), 0);
    }

    #[test]
    fn lease_values_round_trip_and_reject_garbage() {
        let id: InstanceId = "p-1".parse().unwrap();
        assert_eq!(lease_value(&id, Epoch(12)), "p-1:12");
        assert_eq!(parse_lease_value("p-1:12"), Some((id, Epoch(12))));
        for bad in ["", "p1", "p1:", ":3", "p1:x", "a b:3", "p1:-1"] {
            assert_eq!(parse_lease_value(bad), None, "{bad}");
        }
    }
}
