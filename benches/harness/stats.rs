//! Collects the processors' `{ns}:stats` messages during a run and merges
//! their interval histograms (never averaging percentiles), and reads the
//! sustained rate from consecutive cumulative `applied` counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tickshard::keys::Keys;
use tickshard::stats::{new_histogram, LatencyKind, StatsSnapshot};
use tokio_util::sync::CancellationToken;

use crate::common::Percentiles;

/// Snapshots received so far, and messages that did not parse.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) snapshots: Vec<StatsSnapshot>,
    pub(crate) bad: u64,
}

/// A running collector; stop it with the token it was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatsCollector {
    inner: Arc<Mutex<Collected>>,
}

impl StatsCollector {
    /// Subscribes to `{ns}:stats` on `url` and collects until `shutdown`.
    /// Returns once the subscription is confirmed.
    pub(crate) async fn start(
        url: &str,
        keys: &Keys,
        shutdown: CancellationToken,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(keys.stats()).await?;
        let me = Self::default();
        let inner = me.inner.clone();
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            loop {
                let msg = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    m = messages.next() => match m { Some(m) => m, None => return },
                };
                let parsed = std::str::from_utf8(msg.get_payload_bytes())
                    .ok()
                    .and_then(|s| StatsSnapshot::parse(s).ok());
                let mut c = inner.lock().unwrap_or_else(PoisonError::into_inner);
                match parsed {
                    Some(s) => c.snapshots.push(s),
                    None => c.bad += 1,
                }
            }
        });
        Ok(me)
    }

    /// A copy of what was collected.
    pub(crate) fn snapshots(&self) -> Vec<StatsSnapshot> {
        let c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.snapshots.clone()
    }

    /// Drops everything collected so far (e.g. start-up intervals).
    pub(crate) fn clear(&self) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.snapshots.clear();
    }
}

/// Merges the `kind` histograms of every snapshot; undecodable ones are
/// counted in the second value.
pub(crate) fn merged(snapshots: &[StatsSnapshot], kind: LatencyKind) -> (Histogram<u64>, u64) {
    let mut out = new_histogram();
    let mut bad = 0;
    for s in snapshots {
        match s.histograms.decode(kind) {
            Ok(h) => tickshard::stats::latency::add_saturating(&mut out, &h),
            Err(_) => bad += 1,
        }
    }
    (out, bad)
}

/// Merged percentiles of `kind`.
pub(crate) fn percentiles(snapshots: &[StatsSnapshot], kind: LatencyKind) -> Percentiles {
    Percentiles::of(&merged(snapshots, kind).0)
}

/// Cluster-wide applied ticks per second, one value per whole second
/// bucket in which every reporting instance published: the sum over
/// instances of (applied now − applied at its previous snapshot) / elapsed.
pub(crate) fn applied_rates(snapshots: &[StatsSnapshot]) -> Vec<f64> {
    // Per instance, its snapshots in time order.
    let mut by_instance: BTreeMap<&str, Vec<&StatsSnapshot>> = BTreeMap::new();
    for s in snapshots {
        by_instance.entry(s.instance.as_str()).or_default().push(s);
    }
    // Per second bucket: summed applied-ticks rate.
    let mut buckets: BTreeMap<u64, f64> = BTreeMap::new();
    for snaps in by_instance.values_mut() {
        snaps.sort_by_key(|s| s.ts_ms);
        for w in snaps.windows(2) {
            let (a, b) = (w[0], w[1]);
            let dt = b.ts_ms.saturating_sub(a.ts_ms);
            if dt == 0 {
                continue;
            }
            let applied = |s: &StatsSnapshot| s.counters.get("applied").unwrap_or(0);
            let d = applied(b).saturating_sub(applied(a));
            *buckets.entry(b.ts_ms / 1000).or_default() += d as f64 * 1000.0 / dt as f64;
        }
    }
    buckets.into_values().collect()
}
