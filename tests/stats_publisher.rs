//! The stats publisher against a real redis-server: it publishes the agreed
//! `{ns}:stats` JSON about every interval with cumulative counters and the
//! interval's histograms, and one last snapshot on shutdown.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use tickshard::keys::Keys;
use tickshard::stats::{self, HotSymbol, LatencyKind, Metrics, PublisherConfig, StatsSnapshot};

async fn next(messages: &mut redis::aio::PubSubStream) -> (StatsSnapshot, serde_json::Value) {
    let msg = tokio::time::timeout(Duration::from_secs(3), messages.next())
        .await
        .expect("a stats message in time")
        .expect("stream open");
    let payload: String = msg.get_payload().unwrap();
    let raw: serde_json::Value = serde_json::from_str(&payload).unwrap();
    (StatsSnapshot::parse(&payload).unwrap(), raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_interval_snapshots_until_shutdown() {
    let redis = support::redis();
    let keys = Keys::new("pubtest");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(keys.stats()).await.unwrap();
    let mut messages = sub.into_on_message();

    let metrics = Arc::new(Metrics::new());
    let source = Arc::new(stats::FnSource::new(
        || 7,
        |limit| {
            vec![HotSymbol {
                symbol: "AAPL".into(),
                count: limit as u64,
                last_px: "187.2500".into(),
                ..Default::default()
            }]
        },
    ));
    let mut config = PublisherConfig::new(keys.clone(), "p9");
    config.interval = Duration::from_millis(100);
    config.hot_symbols = 3;
    let shutdown = CancellationToken::new();
    let conn = support::connect_url(&redis.url()).await.unwrap();
    metrics.counters.ticks_in.add(10);
    for v in [100, 200, 300] {
        metrics.e2e_us.record_us(v);
    }
    let task = tokio::spawn(stats::run_publisher(
        conn,
        metrics.clone(),
        source,
        config,
        shutdown.clone(),
    ));

    let (first, raw) = next(&mut messages).await;
    assert_eq!(raw["type"], "stats");
    assert_eq!(first.instance, "p9");
    assert_eq!(first.partitions_owned, 7);
    assert_eq!(first.counters.ticks_in, 10);
    assert!(
        (50..=1000).contains(&first.interval_ms),
        "{}",
        first.interval_ms
    );
    assert_eq!(first.hot_symbols[0].count, 3);
    let e2e = first.histograms.decode(LatencyKind::E2e).unwrap();
    assert_eq!(e2e.len(), 3);
    assert_eq!(e2e.max(), 300);

    // The next interval: counters cumulative, histograms only new samples.
    metrics.counters.ticks_in.add(5);
    metrics.e2e_us.record_us(1000);
    let (second, _) = loop {
        let (s, raw) = next(&mut messages).await;
        if s.counters.ticks_in == 15 {
            break (s, raw);
        }
    };
    assert!(second.ts_ms >= first.ts_ms);
    assert_eq!(second.histograms.decode(LatencyKind::E2e).unwrap().len(), 1);

    // Shutdown: one last snapshot, then the task ends.
    metrics.counters.applied.add(3);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("stops in time")
        .unwrap();
    let last = loop {
        let (s, _) = next(&mut messages).await;
        if s.counters.applied == 3 {
            break s;
        }
    };
    assert_eq!(last.counters.ticks_in, 15);
}
