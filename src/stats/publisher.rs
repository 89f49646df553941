//! The stats publisher task: about once a second it closes the latency
//! interval, builds a [`StatsSnapshot`] and `PUBLISH`es it to `{ns}:stats`,
//! until shutdown.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;

use crate::cluster::RedisConn;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::keys::Keys;
use crate::stats::metrics::Metrics;
use crate::stats::snapshot::{take_snapshot, HotSymbol, StatsSnapshot};

/// What the data path tells the publisher beyond the counters: how many
/// partitions it owns and its hottest symbols. Implemented by the engine.
pub trait StatsSource: Send + Sync {
    /// Partitions this instance owns now.
    fn partitions_owned(&self) -> u32;

    /// Up to `limit` most active symbols (default: none).
    fn hot_symbols(&self, limit: usize) -> Vec<HotSymbol> {
        let _ = limit;
        Vec::new()
    }
}

/// A [`StatsSource`] made of two closures.
pub struct FnSource<P, H> {
    partitions: P,
    hot: H,
}

impl<P, H> FnSource<P, H>
where
    P: Fn() -> u32 + Send + Sync,
    H: Fn(usize) -> Vec<HotSymbol> + Send + Sync,
{
    /// `partitions()` answers [`StatsSource::partitions_owned`], `hot(limit)`
    /// answers [`StatsSource::hot_symbols`].
    pub fn new(partitions: P, hot: H) -> Self {
        Self { partitions, hot }
    }
}

impl<P, H> StatsSource for FnSource<P, H>
where
    P: Fn() -> u32 + Send + Sync,
    H: Fn(usize) -> Vec<HotSymbol> + Send + Sync,
{
    fn partitions_owned(&self) -> u32 {
        (self.partitions)()
    }

    fn hot_symbols(&self, limit: usize) -> Vec<HotSymbol> {
        (self.hot)(limit)
    }
}

/// Settings of [`run_publisher`].
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Cluster key names.
    pub keys: Keys,
    /// This instance's id.
    pub instance: String,
    /// How often to publish (default 1 s).
    pub interval: Duration,
    /// How many hot symbols to include (default 10).
    pub hot_symbols: usize,
    /// Give up one PUBLISH after this long (default 2 s); the next interval
    /// tries again.
    pub publish_timeout: Duration,
}

impl PublisherConfig {
    /// Defaults for instance `instance` under `keys`.
    pub fn new(keys: Keys, instance: impl Into<String>) -> Self {
        Self {
            keys,
            instance: instance.into(),
            interval: Duration::from_secs(1),
            hot_symbols: 10,
            publish_timeout: Duration::from_secs(2),
        }
    }
}

/// Builds the next snapshot from `metrics` and `source` (drains the
/// latency interval).
pub fn snapshot_now(
    metrics: &Metrics,
    source: &dyn StatsSource,
    config: &PublisherConfig,
    interval_ms: u64,
) -> StatsSnapshot {
    take_snapshot(
        metrics,
        &config.instance,
        now_ms(),
        interval_ms,
        source.partitions_owned(),
        source.hot_symbols(config.hot_symbols),
    )
}

/// Publishes a snapshot every `config.interval` until `shutdown`, then one
/// last one. Redis errors are logged and the next interval tries again
/// (the connection manager reconnects by itself); they never stop the task.
pub async fn run_publisher(
    mut conn: RedisConn,
    metrics: Arc<Metrics>,
    source: Arc<dyn StatsSource>,
    config: PublisherConfig,
    shutdown: CancellationToken,
) {
    let channel = config.keys.stats();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    let mut last = tokio::time::Instant::now();
    loop {
        let stopping = tokio::select! {
            biased;
            _ = shutdown.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let now = tokio::time::Instant::now();
        let interval_ms = u64::try_from(now.duration_since(last).as_millis()).unwrap_or(0);
        last = now;
        let snapshot = snapshot_now(&metrics, source.as_ref(), &config, interval_ms);
        let payload = snapshot.to_json();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&channel).arg(payload);
        let publish = cmd.query_async::<i64>(&mut conn);
        match tokio::time::timeout(config.publish_timeout, publish).await {
            Ok(Ok(receivers)) => debug!(receivers, "stats published"),
            Ok(Err(e)) => warn!(error = %e, "stats publish failed"),
            Err(_) => warn!(
                timeout_ms = config.publish_timeout.as_millis() as u64,
                "stats publish timed out"
            ),
        }
        if stopping {
            return;
        }
    }
}
