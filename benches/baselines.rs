//! The two baseline designs (see `baseline/mod.rs`) against a real private
//! redis-server, with small tick counts so the bench finishes fast; the
//! cluster bench runs the same functions with larger counts. Throughput is
//! in ticks per second; each run's percentiles and exactness are appended
//! to `target/bench-results/baselines.jsonl`.
#![allow(clippy::unwrap_used)]

mod baseline;
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use baseline::{run_lock_per_tick, run_original, BaselineReport, LockConfig, OriginalConfig};

const TICKS: usize = 2_000;
const SYMBOLS: usize = 500;

static RUN: AtomicU64 = AtomicU64::new(0);

fn prefix(name: &str) -> String {
    format!("bl:{name}:{}", RUN.fetch_add(1, Ordering::Relaxed))
}

fn check(r: &BaselineReport) -> Duration {
    assert!(r.exact, "baseline {} lost or doubled ticks: {r:?}", r.name);
    common::append_result("baselines", r);
    Duration::from_secs_f64(r.elapsed_s)
}

fn bench_baselines(c: &mut Criterion) {
    let server = common::redis();
    let rt = common::runtime(2);
    let url = server.url();
    let mut g = c.benchmark_group("baselines");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TICKS as u64));
    g.bench_function("original_3x100", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let cfg = OriginalConfig::new(&prefix("orig"), TICKS, SYMBOLS);
                    check(&rt.block_on(run_original(&url, &cfg)).unwrap())
                })
                .sum()
        })
    });
    g.bench_function("lock_per_tick_2", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let cfg = LockConfig::new(&prefix("lock"), TICKS, SYMBOLS);
                    check(&rt.block_on(run_lock_per_tick(&url, &cfg)).unwrap())
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_baselines);
criterion_main!(benches);
