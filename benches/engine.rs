//! Engine apply, in ticks per second for a batch of 1024 ticks over 100
//! symbols of one partition: in order (applied), duplicates (dropped), and
//! ahead of a gap (held), with the processor's default operators (totals
//! and 1-minute bars); then in order with every built-in operator
//! (`--bars 1s,1m,5m --ema 20 --volume-spike 5`) and with a user-defined
//! operator added (a `big_print` like `examples/custom_operator.rs`). The
//! engine is prepared in the untimed setup.
#![allow(clippy::unwrap_used)]

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tickshard::engine::{Engine, EngineConfig, GapPolicy, TickOutcome};
use tickshard::operator::{Emit, FieldError, FieldWriter, Operator, OperatorSet, StoredFields};
use tickshard::tick::{Epoch, PartitionId, Tick};

const BATCH: usize = 1024;
const P: PartitionId = PartitionId(0);

/// A user-defined operator: counts and emits trades of size ≥ 100.
#[derive(Debug)]
struct BigPrint;

impl Operator for BigPrint {
    type State = (u64, u64);

    fn name(&self) -> &str {
        "big_print"
    }

    fn fields(&self) -> Vec<String> {
        vec!["big_count".into(), "big_volume".into()]
    }

    fn init(&self) -> (u64, u64) {
        (0, 0)
    }

    fn apply(&self, s: &mut (u64, u64), tick: &Tick, out: &mut Emit<'_>) {
        if tick.size >= 100 {
            s.0 += 1;
            s.1 += u64::from(tick.size);
            out.emit(vec![
                ("seq", tick.seq.to_string()),
                ("price", tick.price.to_string()),
            ]);
        }
    }

    fn save(&self, s: &(u64, u64), f: &mut FieldWriter) {
        f.put("big_count", s.0);
        f.put("big_volume", s.1);
    }

    fn load(&self, f: &StoredFields<'_>) -> Result<(u64, u64), FieldError> {
        Ok((f.get("big_count")?, f.get("big_volume")?))
    }
}

/// Every built-in: bars of 1 s, 1 m and 5 m, an EMA, the volume spike.
fn all_builtins() -> OperatorSet {
    let widths = ["1s", "1m", "5m"].map(|w| w.parse().unwrap());
    OperatorSet::builtin(&widths, &[20], Some((100, 5.0))).unwrap()
}

fn active_engine() -> Engine {
    active_engine_with(common::default_operators())
}

fn active_engine_with(operators: OperatorSet) -> Engine {
    let mut e = Engine::new(EngineConfig {
        gap: GapPolicy::default(),
        max_held: 1_000_000,
        max_loading_held: 1_000_000,
        max_outputs: tickshard::engine::DEFAULT_MAX_OUTPUTS,
        operators,
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
    let mut with_custom = all_builtins();
    with_custom.push(BigPrint).unwrap();
    for (name, operators) in [
        ("apply_in_order_all_builtins", all_builtins()),
        ("apply_in_order_builtins_and_custom", with_custom),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || active_engine_with(operators.clone()),
                |mut e| {
                    let n = offer_all(&mut e, black_box(&ticks), now);
                    assert_eq!(n, BATCH);
                    e
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
