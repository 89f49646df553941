//! Codec throughput: binary and JSON batch encode/decode, in ticks per second.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tickshard::codec::{decode_batch, encode_batch, FeedMessage};
use tickshard::tick::{Price, Symbol, Tick};

fn ticks(n: usize) -> Vec<Tick> {
    let symbols: Vec<Symbol> = ["AAPL", "MSFT", "BRK.B", "GOOG", "ES", "SPY", "XOM", "JPM"]
        .iter()
        .map(|s| s.parse().expect("valid symbol"))
        .collect();
    (0..n)
        .map(|i| {
            let mut t = Tick::new(
                symbols[i % symbols.len()],
                i as u64 + 1,
                Price::from_units(1_872_500 + (i as i64 % 100) * 100).expect("price"),
                100,
                1_732_400_000_000_000_000 + i as u64,
            )
            .expect("tick");
            t.sent_ns = Some(1_732_400_000_000_000_000 + i as u64);
            t
        })
        .collect()
}

fn bench_codec(c: &mut Criterion) {
    for &n in &[1usize, 256, 4096] {
        let batch = ticks(n);
        let mut group = c.benchmark_group(format!("codec/batch_{n}"));
        group.throughput(Throughput::Elements(n as u64));

        group.bench_function("binary_encode", |b| {
            let mut out = Vec::with_capacity(n * 48);
            b.iter(|| {
                out.clear();
                encode_batch(black_box(&batch), &mut out);
                black_box(out.len())
            })
        });
        let mut frame = Vec::new();
        encode_batch(&batch, &mut frame);
        group.bench_function("binary_decode", |b| {
            let mut out = Vec::with_capacity(n);
            b.iter(|| {
                out.clear();
                decode_batch(black_box(&frame), &mut out).expect("decodes");
                black_box(out.len())
            })
        });
        let msg = FeedMessage::Batch {
            ticks: batch.clone(),
        };
        group.bench_function("json_encode", |b| b.iter(|| black_box(msg.to_json())));
        let text = msg.to_json();
        group.bench_function("json_decode", |b| {
            b.iter_batched(
                || text.clone(),
                |t| black_box(FeedMessage::parse(&t).expect("parses")),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
