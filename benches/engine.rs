//! Engine apply, in ticks per second for a batch of 1024 ticks over 100
//! symbols of one partition: in order (applied), duplicates (dropped), and
//! ahead of a gap (held). The engine is prepared in the untimed setup.

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tickshard::engine::{Engine, EngineConfig, GapPolicy, TickOutcome};
use tickshard::tick::{Epoch, PartitionId, Tick};

const BATCH: usize = 1024;
const P: PartitionId = PartitionId(0);

fn active_engine() -> Engine {
    let mut e = Engine::new(EngineConfig {
        gap: GapPolicy::default(),
        max_held: 1_000_000,
        max_loading_held: 1_000_000,
        max_outputs: tickshard::engine::DEFAULT_MAX_OUTPUTS,
        operators: common::default_operators(),
    });
    let now = Instant::now();
    e.begin_load(P, Epoch(1));
    e.finish_load(P, Epoch(1), vec![], now);
    e
}

fn offer_all(e: &mut Engine, ticks: &[Tick], now: Instant) -> usize {
    let mut n = 0;
    for t in ticks {
        if matches!(e.offer(P, *t, now), TickOutcome::Applied { .. }) {
            n += 1;
        }
    }
    n
}

fn bench_engine(c: &mut Criterion) {
    let ticks = common::ticks(BATCH, &common::symbols(100));
    // Every symbol's seq shifted by one: seq 1 never arrives, all are held.
    let ahead: Vec<Tick> = ticks
        .iter()
        .map(|t| {
            let mut t = *t;
            t.seq += 1;
            t
        })
        .collect();
    let now = Instant::now();

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("apply_in_order", |b| {
        b.iter_batched(
            active_engine,
            |mut e| {
                let n = offer_all(&mut e, black_box(&ticks), now);
                assert_eq!(n, BATCH);
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("duplicate", |b| {
        b.iter_batched(
            || {
                let mut e = active_engine();
                offer_all(&mut e, &ticks, now);
                e
            },
            |mut e| {
                let n = offer_all(&mut e, black_box(&ticks), now);
                assert_eq!(n, 0);
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("gap_held", |b| {
        b.iter_batched(
            active_engine,
            |mut e| {
                offer_all(&mut e, black_box(&ahead), now);
                assert_eq!(e.held(), BATCH);
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
