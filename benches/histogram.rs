//! Latency recording cost per sample: the processor's striped recorder
//! (`Metrics::e2e_us.record_us`) beside a bare `hdrhistogram::Histogram`,
//! for a batch of 1024 varied samples.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tickshard::stats::{new_histogram, Metrics};

const BATCH: usize = 1024;

fn bench_histogram(c: &mut Criterion) {
    // Latencies spread like a real run: mostly hundreds of µs, a long tail.
    let samples: Vec<u64> = (0..BATCH as u64)
        .map(|i| 50 + (i * 7919) % 900 + if i % 97 == 0 { 20_000 } else { 0 })
        .collect();
    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(BATCH as u64));
    let metrics = Metrics::new();
    g.bench_function("metrics_e2e_record_us", |b| {
        b.iter(|| {
            for &us in black_box(&samples) {
                metrics.e2e_us.record_us(us);
            }
        })
    });
    let mut bare = new_histogram();
    g.bench_function("bare_hdrhistogram_record", |b| {
        b.iter(|| {
            for &us in black_box(&samples) {
                bare.saturating_record(us);
            }
        })
    });
    g.finish();
    black_box(metrics.e2e_us.take_interval().len());
}

criterion_group!(benches, bench_histogram);
criterion_main!(benches);
