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

/// Cluster-wide applied ticks per second, one value per whole second in
/// which instances published: for each instance, the applied ticks
/// counted in the windows ending in that second divided by those windows'
/// length, summed over instances.
pub(crate) fn applied_rates(snapshots: &[StatsSnapshot]) -> Vec<f64> {
    let mut by_instance: BTreeMap<&str, Vec<&StatsSnapshot>> = BTreeMap::new();
    for s in snapshots {
        by_instance.entry(s.instance.as_str()).or_default().push(s);
    }
    // second -> instance -> (applied ticks, milliseconds)
    let mut buckets: BTreeMap<u64, BTreeMap<&str, (u64, u64)>> = BTreeMap::new();
    let applied = |s: &StatsSnapshot| s.counters.get("applied").unwrap_or(0);
    for (id, snaps) in by_instance.iter_mut() {
        snaps.sort_by_key(|s| s.ts_ms);
        for w in snaps.windows(2) {
            let dt = w[1].ts_ms.saturating_sub(w[0].ts_ms);
            if dt == 0 {
                continue;
            }
            let d = applied(w[1]).saturating_sub(applied(w[0]));
            let slot = buckets
                .entry(w[1].ts_ms / 1000)
                .or_default()
                .entry(id)
                .or_default();
            slot.0 += d;
            slot.1 += dt;
        }
    }
    buckets
        .into_values()
        .map(|per| {
            per.values()
                .map(|(d, ms)| *d as f64 * 1000.0 / *ms as f64)
                .sum()
        })
        .collect()
}

/// The processors' counters at the end of the run: each instance's last
/// (cumulative) snapshot, summed over instances; zero counters left out.
pub(crate) fn final_counters(snapshots: &[StatsSnapshot]) -> BTreeMap<String, u64> {
    let mut last: BTreeMap<&str, &StatsSnapshot> = BTreeMap::new();
    for s in snapshots {
        let slot = last.entry(s.instance.as_str()).or_insert(s);
        if s.ts_ms >= slot.ts_ms {
            *slot = s;
        }
    }
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for s in last.values() {
        for (name, v) in s.counters.values() {
            if v > 0 {
                *out.entry(name.to_string()).or_default() += v;
            }
        }
    }
    out
}
