//! Routing decision per tick: `partition_of` on the symbol, then
//! `router::route` against the engine status and the ownership view, in
//! ticks per second for a batch of 1024 ticks over 500 symbols.

mod common;

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tickshard::engine::PartitionStatus;
use tickshard::partition::{partition_of, DEFAULT_PARTITIONS};
use tickshard::router::{route, OwnerHint, Route};
use tickshard::tick::{Epoch, InstanceId};

const BATCH: usize = 1024;

fn bench_routing(c: &mut Criterion) {
    let parts = NonZeroU32::new(DEFAULT_PARTITIONS).expect("non-zero");
    let ticks = common::ticks(BATCH, &common::symbols(500));
    let other: InstanceId = "p2".parse().expect("valid id");
    let e = Epoch(1);
    // A 3-instance view: this instance owns every third partition.
    let status: Vec<PartitionStatus> = (0..parts.get())
        .map(|p| {
            if p % 3 == 0 {
                PartitionStatus::Active(e)
            } else {
                PartitionStatus::NotOwned
            }
        })
        .collect();
    let view: Vec<OwnerHint<'_>> = (0..parts.get())
        .map(|p| {
            if p % 3 == 0 {
                OwnerHint::Me(e)
            } else {
                OwnerHint::Other(&other)
            }
        })
        .collect();

    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("partition_of", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for t in black_box(&ticks) {
                acc = acc.wrapping_add(partition_of(&t.symbol, parts).0);
            }
            black_box(acc)
        })
    });
    g.bench_function("partition_and_route", |b| {
        b.iter(|| {
            let (mut local, mut fwd) = (0usize, 0usize);
            for t in black_box(&ticks) {
                let p = partition_of(&t.symbol, parts).0 as usize;
                match route(status[p], view[p]) {
                    Route::Local => local += 1,
                    Route::Forward(_) => fwd += 1,
                    Route::Hold => {}
                }
            }
            black_box((local, fwd))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
