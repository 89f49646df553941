//! The stored-state lag: how long after its owner has applied a tick the
//! tick is in the stored `{ns}:{p<p>}:sym:{SYMBOL}` hash. One sample: pick an
//! active symbol (the processors' hot symbols), ask its owner over HTTP
//! (`GET /api/symbols/{SYMBOL}`, found through `{ns}:{p<p>}:lease:{p}`) for its
//! live `last_seq` L, note the time t0 when the answer arrives, then read
//! the stored `last_seq` every ~2 ms until it is ≥ L at t1: lag = t1 − t0.
//! Only the bench's own monotonic clock is used, never a comparison of
//! clocks between processes. Samples start at a random offset (0-100 ms)
//! so they do not lock onto the flush cycle.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tickshard::keys::Keys;
use tickshard::partition::partition_of;
use tickshard::tick::Symbol;
use tokio_util::sync::CancellationToken;

use super::http;
use super::stats::StatsCollector;

/// A sample that has not caught up after this long counts as a timeout.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many samples per run.
const MAX_SAMPLES: usize = 2_000;

/// What the probe needs.
#[derive(Debug, Clone)]
pub(crate) struct LagProbe {
    pub(crate) conn: redis::aio::MultiplexedConnection,
    pub(crate) keys: Keys,
    pub(crate) partitions: NonZeroU32,
    /// Processor id → its HTTP address.
    pub(crate) http: BTreeMap<String, String>,
    pub(crate) collector: StatsCollector,
}

/// The lag figures of a run, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct LagStats {
    pub(crate) samples: usize,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    /// Samples whose stored `last_seq` did not catch up within 5 s.
    pub(crate) timeouts: u64,
    /// Queries that failed (no owner, HTTP error, unparsable answer).
    pub(crate) query_failures: u64,
    /// Median time of the live query itself (not part of the lag).
    pub(crate) query_p50_ms: Option<f64>,
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

impl LagStats {
    pub(crate) fn of(
        mut lags_ms: Vec<f64>,
        mut query_ms: Vec<f64>,
        timeouts: u64,
        failures: u64,
    ) -> Self {
        lags_ms.sort_by(f64::total_cmp);
        query_ms.sort_by(f64::total_cmp);
        Self {
            samples: lags_ms.len(),
            p50_ms: quantile(&lags_ms, 0.50),
            p95_ms: quantile(&lags_ms, 0.95),
            max_ms: lags_ms.last().copied(),
            timeouts,
            query_failures: failures,
            query_p50_ms: quantile(&query_ms, 0.50),
        }
    }
}

enum Sample {
    Lag { lag_ms: f64, query_ms: f64 },
    QueryFailed,
    TimedOut,
}

impl LagProbe {
    /// Samples until `stop`, then returns the figures.
    pub(crate) async fn run(mut self, stop: CancellationToken) -> LagStats {
        let (mut lags, mut queries, mut timeouts, mut failures) = (Vec::new(), Vec::new(), 0, 0);
        let mut next = 0usize;
        while !stop.is_cancelled() && lags.len() < MAX_SAMPLES {
            let pause = Duration::from_millis(rand::rng().random_range(0..100));
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
            let hot = self.collector.hot_symbols();
            let Some(sym) = hot
                .get(next % hot.len().max(1))
                .and_then(|s| s.parse::<Symbol>().ok())
            else {
                continue;
            };
            next += 1;
            match self.sample(sym).await {
                Sample::Lag { lag_ms, query_ms } => {
                    lags.push(lag_ms);
                    queries.push(query_ms);
                }
                Sample::QueryFailed => failures += 1,
                Sample::TimedOut => timeouts += 1,
            }
        }
        LagStats::of(lags, queries, timeouts, failures)
    }

    /// The HTTP address of `sym`'s owner (any processor if unknown).
    async fn owner_addr(&mut self, sym: &Symbol) -> Option<String> {
        let p = partition_of(sym, self.partitions);
        let lease: Option<String> = redis::cmd("GET")
            .arg(self.keys.lease(p))
            .query_async(&mut self.conn)
            .await
            .ok()
            .flatten();
        lease
            .as_deref()
            .and_then(|v| v.rsplit_once(':'))
            .and_then(|(owner, _)| self.http.get(owner))
            .or_else(|| self.http.values().next())
            .cloned()
    }

    async fn sample(&mut self, sym: Symbol) -> Sample {
        let Some(addr) = self.owner_addr(&sym).await else {
            return Sample::QueryFailed;
        };
        let asked = Instant::now();
        let path = format!("/api/symbols/{}", sym.as_str());
        let live = match http::get(&addr, &path, Duration::from_secs(2)).await {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("last_seq").and_then(serde_json::Value::as_u64)),
            _ => None,
        };
        let Some(live) = live else {
            return Sample::QueryFailed;
        };
        let t0 = Instant::now();
        let key = self.keys.sym_in(&sym, self.partitions);
        loop {
            let stored: Option<u64> = redis::cmd("HGET")
                .arg(&key)
                .arg("last_seq")
                .query_async(&mut self.conn)
                .await
                .ok()
                .flatten();
            if stored.is_some_and(|s| s >= live) {
                return Sample::Lag {
                    lag_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    query_ms: (t0 - asked).as_secs_f64() * 1000.0,
                };
            }
            if t0.elapsed() > SAMPLE_TIMEOUT {
                return Sample::TimedOut;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Self-check of the quantiles: nearest rank over 1..=100 ms.
pub(crate) fn self_check() -> Result<(), String> {
    let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
    let s = LagStats::of(v, vec![3.0, 1.0, 2.0], 1, 2);
    let want = LagStats {
        samples: 100,
        p50_ms: Some(50.0),
        p95_ms: Some(95.0),
        max_ms: Some(100.0),
        timeouts: 1,
        query_failures: 2,
        query_p50_ms: Some(2.0),
    };
    if s != want {
        return Err(format!("lag stats {s:?}, expected {want:?}"));
    }
    Ok(())
}
