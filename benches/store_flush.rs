//! The Lua fenced flush (`Store::flush`) of 1 and 100 dirty symbols to a
//! real private redis-server, in symbols per second. The lease is held by
//! the flushing instance, so every flush is a real write.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tickshard::engine::{Engine, EngineConfig, GapPolicy, PartitionFlush};
use tickshard::keys::Keys;
use tickshard::store::{FlushOutcome, Store};
use tickshard::tick::{Epoch, InstanceId, PartitionId};

const P: PartitionId = PartitionId(0);

fn flush_of(symbols: usize) -> PartitionFlush {
    let mut e = Engine::new(EngineConfig {
        gap: GapPolicy::default(),
        max_held: 1000,
        max_loading_held: 1000,
        max_outputs: tickshard::engine::DEFAULT_MAX_OUTPUTS,
        operators: common::default_operators(),
    });
    let now = Instant::now();
    e.begin_load(P, Epoch(1));
    e.finish_load(P, Epoch(1), vec![], now);
    for t in common::ticks(symbols * 4, &common::symbols(symbols)) {
        e.offer(P, t, now);
    }
    e.take_flush().pop().unwrap()
}

fn bench_flush(c: &mut Criterion) {
    let server = common::redis();
    let rt = common::runtime(1);
    let keys = Keys::new("bench");
    let id: InstanceId = "p1".parse().unwrap();
    let store = rt.block_on(async {
        let config = tickshard::redis_conn::RedisConfig::new(server.url());
        let opts = tickshard::cluster::ConnOptions::default();
        let mut conn = tickshard::cluster::RedisConn::connect(&config, &opts)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(keys.lease(P))
            .arg(format!("{id}:1"))
            .query_async(&mut conn)
            .await
            .unwrap();
        Store::new(conn, keys.clone(), id.clone(), common::default_operators())
    });

    let mut g = c.benchmark_group("store_flush");
    for n in [1usize, 100] {
        let flush = flush_of(n);
        assert_eq!(flush.records.len(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("symbols_{n}"), |b| {
            b.iter_batched(
                || flush.clone(),
                |f| {
                    let out = rt.block_on(store.flush(&f)).unwrap();
                    assert_eq!(out, FlushOutcome::Written(n));
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_flush);
criterion_main!(benches);
