//! Forwarding through a real private redis-server: `PUBLISH` of a binary
//! batch of 1, 16, 256 and 4096 ticks, and a subscriber on another
//! connection that decodes it with `codec::decode_batch`. Each sample is
//! one publish → decoded round trip; throughput is in ticks per second.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::StreamExt;
use redis::AsyncCommands;
use tickshard::codec::{decode_batch, encode_batch};
use tickshard::keys::Keys;
use tickshard::tick::InstanceId;

fn bench_forward(c: &mut Criterion) {
    let server = common::redis();
    let rt = common::runtime(1);
    let keys = Keys::new("bench");
    let inbox = keys.inbox(&"p2".parse::<InstanceId>().unwrap());
    let (mut publisher, mut messages) = rt.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let publisher = client.get_multiplexed_async_connection().await.unwrap();
        let mut sub = client.get_async_pubsub().await.unwrap();
        sub.subscribe(&inbox).await.unwrap();
        (publisher, sub.into_on_message())
    });

    let mut g = c.benchmark_group("forward");
    for n in [1usize, 16, 256, 4096] {
        let ticks = common::ticks(n, &common::symbols(n.min(500)));
        let mut frame = Vec::new();
        encode_batch(&ticks, &mut frame);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("batch_{n}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut decoded = Vec::with_capacity(n);
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let _: () = publisher.publish(&inbox, frame.as_slice()).await.unwrap();
                        let msg = messages.next().await.unwrap();
                        decoded.clear();
                        decode_batch(msg.get_payload_bytes(), &mut decoded).unwrap();
                        total += start.elapsed();
                        assert_eq!(decoded.len(), n);
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_forward);
criterion_main!(benches);
