//! Collects the processors' `{ns}:stats` messages (and the `{ns}:events`
//! lease events) during a run and merges their interval histograms (never
//! averaging percentiles); sums their final counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tickshard::cluster::ClusterEvent;
use tickshard::keys::Keys;
use tickshard::stats::{new_histogram, LatencyKind, StatsSnapshot};
use tokio_util::sync::CancellationToken;

use crate::common::Percentiles;

/// Snapshots and events received so far, and messages that did not parse.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) snapshots: Vec<StatsSnapshot>,
    pub(crate) events: Vec<ClusterEvent>,
    pub(crate) bad: u64,
}

/// A running collector; stop it with the token it was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatsCollector {
    inner: Arc<Mutex<Collected>>,
}

impl StatsCollector {
    /// Subscribes to `{ns}:stats` and `{ns}:events` on `url` and collects
    /// until `shutdown`. Returns once the subscriptions are confirmed.
    pub(crate) async fn start(
        url: &str,
        keys: &Keys,
        shutdown: CancellationToken,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        let stats_channel = keys.stats();
        pubsub.subscribe(&stats_channel).await?;
        pubsub.subscribe(keys.events()).await?;
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
                let raw = msg.get_payload_bytes();
                let mut c = inner.lock().unwrap_or_else(PoisonError::into_inner);
                if msg.get_channel_name() == stats_channel {
                    match std::str::from_utf8(raw)
                        .ok()
                        .and_then(|s| StatsSnapshot::parse(s).ok())
                    {
                        Some(s) => c.snapshots.push(s),
                        None => c.bad += 1,
                    }
                } else {
                    match ClusterEvent::parse(raw) {
                        Ok(e) => c.events.push(e),
                        Err(_) => c.bad += 1,
                    }
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

    /// The hot symbols of each instance's latest snapshot, most active
    /// first, without repeats.
    pub(crate) fn hot_symbols(&self) -> Vec<String> {
        let c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut latest: BTreeMap<&str, &StatsSnapshot> = BTreeMap::new();
        for s in &c.snapshots {
            let slot = latest.entry(s.instance.as_str()).or_insert(s);
            if s.ts_ms >= slot.ts_ms {
                *slot = s;
            }
        }
        let mut out: Vec<String> = Vec::new();
        for s in latest.values() {
            for h in &s.hot_symbols {
                if !out.contains(&h.symbol) {
                    out.push(h.symbol.clone());
                }
            }
        }
        out
    }

    /// A copy of the lease and membership events so far.
    pub(crate) fn events(&self) -> Vec<ClusterEvent> {
        let c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.events.clone()
    }

    /// Drops everything collected so far (e.g. start-up intervals).
    pub(crate) fn clear(&self) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.snapshots.clear();
        c.events.clear();
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
