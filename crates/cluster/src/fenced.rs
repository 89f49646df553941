//! Fenced writes: a service's own Lua write over the keys of one
//! partition, run only while this instance holds that partition at a given
//! epoch, atomically with an idempotency record, so a service gets
//! exactly-once effects without writing its own fencing.
//!
//! [`FencedScript::new`] wraps the service's Lua body in one script that,
//! inside Redis and in one step:
//!
//! 1. compares `{ns}:{p<p>}:lease:{p}` with `{me}:{epoch}` and refuses
//!    ([`WriteOutcome::NotOwner`]) when it differs, so a paused or
//!    partitioned former owner can never write after a new owner took
//!    over;
//! 2. when given an idempotency id, returns the result recorded for it
//!    ([`WriteOutcome::Duplicate`]) without running the body again;
//! 3. runs the body with the service's own `KEYS` and `ARGV`, and records
//!    what it returned under the id (`{ns}:{p<p>}:done:{id}`).
//!
//! The body's keys should be keys of the partition
//! ([`ClusterKeys::in_partition`](crate::keys::ClusterKeys::in_partition)),
//! so that on a Redis Cluster they share the lease's hash slot.
//!
//! The body is a Lua function body that returns the write's result, the
//! one the caller gets now and on every retry of the same id: a string,
//! or an integer (recorded in full, never in exponent form). It may refuse
//! instead with `return redis.error_reply('why')` ([`WriteOutcome::Refused`],
//! nothing recorded): do every check before the first write, since Redis
//! does not undo a script's writes when it stops half-way.
//!
//! An id is unique within its partition: make it name the thing written
//! (e.g. `"{resource}:{request}"`) when requests for several keys of one
//! partition may share ids. Records live as long as the retention given
//! (or forever with `None`; at most 100 years); a retry after its record
//! expired runs again.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionLike;
use redis::Script;

use crate::error::ClusterError;
use crate::ids::{Epoch, InstanceId, PartitionId};
use crate::keys::ClusterKeys;
use crate::lease::lease_value;

/// What a fenced write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The body ran; its result.
    Applied(Bytes),
    /// The id had run before; the result recorded then.
    Duplicate(Bytes),
    /// This instance does not hold the partition at that epoch: nothing
    /// was written.
    NotOwner,
    /// The body refused (`redis.error_reply`); nothing was recorded.
    Refused(String),
}

/// The longest retention a record can have (Redis refuses expiry times
/// past its range).
pub const MAX_RETENTION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A service's write, wrapped with the fence and the idempotency record.
/// Build it once and reuse it (Redis caches it by SHA).
#[derive(Debug, Clone)]
pub struct FencedScript {
    script: Script,
}

impl FencedScript {
    /// Wraps `body`, a Lua function body over `KEYS` and `ARGV` (the
    /// caller's own, 1-based as usual) that returns the write's result.
    pub fn new(body: &str) -> Self {
        let source = format!(
            r"
-- KEYS[1] lease, KEYS[2] idempotency record; ARGV[1] expected lease
-- value, ARGV[2] idempotency id ('' for none), ARGV[3] retention in ms
-- (0: forever). The rest belongs to the body.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {{0, ''}}
end
if ARGV[2] ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    return {{2, prev}}
  end
end
local user_keys = {{}}
for i = 3, #KEYS do user_keys[#user_keys + 1] = KEYS[i] end
local user_argv = {{}}
for i = 4, #ARGV do user_argv[#user_argv + 1] = ARGV[i] end
local body = function(KEYS, ARGV)
{body}
end
local result = body(user_keys, user_argv)
if type(result) == 'table' and result.err then
  return {{3, result.err}}
end
if type(result) == 'table' and result.ok then
  result = result.ok
end
if type(result) == 'number' then
  result = string.format('%d', result)
elseif type(result) ~= 'string' then
  return redis.error_reply('fenced write: the body returned a ' .. type(result) ..
    ', not a string or an integer')
end
if ARGV[2] ~= '' then
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[2], result, 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[2], result)
  end
end
return {{1, result}}
"
        );
        Self {
            script: Script::new(&source),
        }
    }
}

/// One fenced write, ready to run with [`FencedWrite::run`] (or
/// [`ClusterHandle::fenced_write`](crate::ClusterHandle::fenced_write)).
#[derive(Debug, Clone)]
pub struct FencedWrite<'a> {
    /// The partition whose keys the body writes.
    pub partition: PartitionId,
    /// The epoch this instance holds it at (from
    /// [`OwnershipChange::Acquired`](crate::OwnershipChange) or the view).
    pub epoch: Epoch,
    /// The idempotency id, unique within the partition (e.g. the key and a
    /// request id); `None` to run every time.
    pub id: Option<&'a str>,
    /// How long the record of `id` is kept; `None`: forever.
    pub retention: Option<Duration>,
    /// The body's `KEYS` (keys of this partition).
    pub keys: Vec<String>,
    /// The body's `ARGV`.
    pub args: Vec<Vec<u8>>,
}

impl FencedWrite<'_> {
    /// Runs `script` with this write's fence, record, keys and arguments.
    pub async fn run<C: ConnectionLike + Send>(
        &self,
        script: &FencedScript,
        con: &mut C,
        keys: &ClusterKeys,
        me: &InstanceId,
    ) -> Result<WriteOutcome, ClusterError> {
        let id = self.id.unwrap_or("");
        let retention_ms = self
            .retention
            .map(|r| {
                let ms = r.min(MAX_RETENTION).as_millis();
                u64::try_from(ms).unwrap_or(u64::MAX).max(1)
            })
            .unwrap_or(0);
        let mut inv = script.script.prepare_invoke();
        inv.key(keys.lease(self.partition))
            .key(keys.in_partition(self.partition, &format!("done:{id}")));
        for k in &self.keys {
            inv.key(k);
        }
        inv.arg(lease_value(me, self.epoch))
            .arg(id)
            .arg(retention_ms);
        for a in &self.args {
            inv.arg(a.as_slice());
        }
        let (code, result): (i64, Vec<u8>) = inv
            .invoke_async(con)
            .await
            .map_err(ClusterError::redis("fenced write"))?;
        match code {
            0 => Ok(WriteOutcome::NotOwner),
            1 => Ok(WriteOutcome::Applied(result.into())),
            2 => Ok(WriteOutcome::Duplicate(result.into())),
            3 => Ok(WriteOutcome::Refused(
                String::from_utf8_lossy(&result).into_owned(),
            )),
            other => Err(ClusterError::Protocol {
                op: "fenced write",
                detail: format!("outcome code {other}"),
            }),
        }
    }
}
