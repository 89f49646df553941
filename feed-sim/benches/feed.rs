//! The feed's maximum sustained rate, in ticks per second, to one and to
//! three consumers, binary and JSON frames.
//!
//! Each iteration starts an unthrottled in-process feed with a fixed number
//! of ticks, connects the consumers (not timed), then times from the hellos
//! to the last tick received. Consumers only count the ticks of each frame
//! (the binary header's count, or the `"seq":` fields of a JSON batch), so
//! the figure is the feed's rate, not a decoder's.
//!
//! Run: `cargo bench -p feed-sim --bench feed`.

use std::time::{Duration, Instant};

use clap::Parser;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const TICKS: u64 = 200_000;

fn count_ticks(msg: &Message) -> u64 {
    match msg {
        Message::Binary(b) if b.len() >= 8 => {
            u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
        }
        Message::Text(t) => t.as_str().matches("\"seq\":").count() as u64,
        _ => 0,
    }
}

async fn run_once(consumers: usize, format: &str) -> Duration {
    let ticks = TICKS.to_string();
    let config = feed_sim::Args::parse_from([
        "feed-sim",
        "--listen",
        "127.0.0.1:0",
        "--ticks",
        &ticks,
        "--symbols",
        "500",
        "--exit-after",
        "0",
    ])
    .into_config()
    .unwrap_or_else(|e| panic!("{e}"));
    let feed = feed_sim::Feed::bind(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = feed.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(feed.run(shutdown.clone()));
    let mut sockets = Vec::new();
    for _ in 0..consumers {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sockets.push(ws);
    }
    let start = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<u64>(consumers);
    for (i, mut ws) in sockets.into_iter().enumerate() {
        let hello = format!(r#"{{"type":"hello","id":"c{i}","format":"{format}"}}"#);
        ws.send(Message::Text(hello.into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let done = done_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let n = count_ticks(&msg);
                if n > 0 && done.send(n).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(done_tx);
    let mut received = 0;
    while received < TICKS {
        match done_rx.recv().await {
            Some(n) => received += n,
            None => panic!("consumers ended with {received} of {TICKS} ticks"),
        }
    }
    let elapsed = start.elapsed();
    shutdown.cancel();
    let _ = task.await;
    elapsed
}

fn feed_rate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("feed_max_rate");
    group.throughput(Throughput::Elements(TICKS));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    for format in ["binary", "json"] {
        for consumers in [1, 3] {
            group.bench_function(format!("{format}/{consumers}_consumers"), |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += run_once(consumers, format).await;
                        }
                        total
                    })
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, feed_rate);
criterion_main!(benches);
