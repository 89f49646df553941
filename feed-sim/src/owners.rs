//! Owner-aware mode's view of the cluster, from Redis: polls
//! `{ns}:config` and `{ns}:lease:*` (SCAN + MGET) every `--owner-poll-ms`
//! and applies `{ns}:events` lease events as they come, publishing the
//! [`OwnerMap`] on a watch channel the feed loop reads per batch.
//!
//! Fails fast if Redis is unreachable at start; later failures reconnect
//! with a capped backoff while the feed keeps using the last map.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tickshard::keys::Keys;
use tickshard::redis_conn::{RedisConfig, RedisConfigError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::owner_map::{parse_lease_value, EventEffect, OwnerMap};
use crate::state::Shared;

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Reads one snapshot of the partition count and the leases.
pub async fn snapshot(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) -> redis::RedisResult<OwnerMap> {
    let partitions: Option<String> = redis::cmd("HGET")
        .arg(keys.config())
        .arg("partitions")
        .query_async(conn)
        .await?;
    let partitions = partitions
        .and_then(|p| p.parse::<u32>().ok())
        .and_then(NonZeroU32::new);
    let prefix = keys.lease_prefix();
    let lease_keys = tickshard::keys::scan_matching(conn, &format!("{prefix}*")).await?;
    let mut map = OwnerMap {
        partitions,
        ..OwnerMap::default()
    };
    if lease_keys.is_empty() {
        return Ok(map);
    }
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&lease_keys)
        .query_async(conn)
        .await?;
    for (key, value) in lease_keys.iter().zip(values) {
        let p = key
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok());
        if let (Some(p), Some(owner)) = (p, value.as_deref().and_then(parse_lease_value)) {
            map.owners.insert(p, owner);
        }
    }
    Ok(map)
}

/// Why the first connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The options are invalid.
    #[error(transparent)]
    Config(#[from] RedisConfigError),
    /// Redis refused or failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Connects and reads a first snapshot, so a bad URL fails at start-up.
pub async fn connect(
    redis: &RedisConfig,
    keys: &Keys,
) -> Result<(redis::Client, OwnerMap), ConnectError> {
    let client = redis.client()?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let map = snapshot(&mut conn, keys).await?;
    Ok((client, map))
}

/// Why a session with Redis ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Failed(redis::RedisError),
    EventsClosed,
}

/// Keeps `tx` up to date until `shutdown`.
pub async fn run(
    client: redis::Client,
    keys: Keys,
    poll: Duration,
    tx: watch::Sender<Arc<OwnerMap>>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let end = session(&client, &keys, poll, &tx, &shared, &shutdown).await;
        match end {
            SessionEnd::Shutdown => return,
            SessionEnd::Failed(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "owner view: redis session failed");
            }
            SessionEnd::EventsClosed => {
                tracing::warn!(retry_in = ?backoff, "owner view: events subscription closed");
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn session(
    client: &redis::Client,
    keys: &Keys,
    poll: Duration,
    tx: &watch::Sender<Arc<OwnerMap>>,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => return SessionEnd::Failed(e),
    };
    let mut pubsub = match client.get_async_pubsub().await {
        Ok(p) => p,
        Err(e) => return SessionEnd::Failed(e),
    };
    if let Err(e) = pubsub.subscribe(keys.events()).await {
        return SessionEnd::Failed(e);
    }
    let mut events = pubsub.on_message();
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            msg = events.next() => {
                let Some(msg) = msg else { return SessionEnd::EventsClosed };
                let payload: String = msg.get_payload().unwrap_or_default();
                let mut map = OwnerMap::clone(&tx.borrow());
                match map.apply_event(&payload) {
                    EventEffect::Changed => {
                        tx.send_replace(Arc::new(map));
                    }
                    EventEffect::Ignored => {}
                    EventEffect::Garbage => shared.counters.bad_events.add(1),
                }
            }
            _ = ticker.tick() => {
                match snapshot(&mut conn, keys).await {
                    Ok(map) => {
                        if **tx.borrow() != map {
                            tx.send_replace(Arc::new(map));
                        }
                    }
                    Err(e) => return SessionEnd::Failed(e),
                }
            }
        }
    }
}
