//! Owner-aware mode's view of the cluster, through the cluster layer's
//! read-only [`Observer`]: reads the leases every `--owner-poll-ms` and
//! applies `{ns}:events` lease events as they come, publishing the
//! [`OwnershipMap`] on a watch channel the feed loop reads per batch.
//!
//! Fails fast if Redis is unreachable at start; later failures reconnect
//! with a capped backoff while the feed keeps using the last map.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tickshard::cluster::observer::{Observer, OwnershipMap};
use tickshard::cluster::ClusterError;
use tickshard::keys::Keys;
use tickshard::redis_conn::RedisConfig;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Connects and reads a first map, so a bad URL fails at start-up.
pub async fn connect(
    redis: &RedisConfig,
    keys: &Keys,
) -> Result<(Observer, OwnershipMap), ClusterError> {
    let observer = Observer::new(redis, keys.cluster().clone())?;
    let mut conn = observer.connect().await?;
    tracing::info!(redis = %redis.redacted_url(), deployment = %conn.deployment(), "owner-aware: connected to Redis");
    let map = observer.read(&mut conn).await?;
    Ok((observer, map))
}

/// Why a session with Redis ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Failed(ClusterError),
    EventsClosed,
}

/// Keeps `tx` up to date until `shutdown`.
pub async fn run(
    observer: Observer,
    poll: Duration,
    tx: watch::Sender<Arc<OwnershipMap>>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let end = session(&observer, poll, &tx, &shared, &shutdown).await;
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
    observer: &Observer,
    poll: Duration,
    tx: &watch::Sender<Arc<OwnershipMap>>,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let mut conn = match observer.connect().await {
        Ok(c) => c,
        Err(e) => return SessionEnd::Failed(e),
    };
    let events = match observer.events().await {
        Ok(ev) => ev,
        Err(e) => return SessionEnd::Failed(e),
    };
    let mut events = std::pin::pin!(events);
    let mut every = tokio::time::interval(poll);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            ev = events.next() => match ev {
                None => return SessionEnd::EventsClosed,
                Some(Ok(ev)) => {
                    let mut map = OwnershipMap::clone(&tx.borrow());
                    if map.apply(&ev) {
                        tx.send_replace(Arc::new(map));
                    }
                }
                Some(Err(e)) if e.is_garbage() => shared.counters.bad_events.inc(),
                Some(Err(_)) => {}
            },
            _ = every.tick() => match observer.read(&mut conn).await {
                Ok(map) => {
                    if **tx.borrow() != map {
                        tx.send_replace(Arc::new(map));
                    }
                }
                Err(e) => return SessionEnd::Failed(e),
            },
        }
    }
}
