//! Instructions per tick of `Engine::offer`, for counting under callgrind
//! (deterministic, unlike time: the same binary and input give the same
//! count whatever else the machine does). `scripts/bench-operators` runs
//! it for the build before the operator API and for this one.
//!
//! Two cases over 100 symbols of one partition, the default operators:
//! `offer_cold`, 200 batches of 1024 ticks each into a new engine (every
//! symbol is created in the batch, as in the criterion case
//! `engine/apply_in_order`), and `offer_warm`, 200 batches into one engine
//! whose symbols exist (the steady state of a processor). Count one case
//! with
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=engine_instructions::offer_warm <binary>`
//! and divide by the ticks the binary prints for it.

mod common;

use std::hint::black_box;
use std::time::Instant;

use tickshard::engine::{Engine, EngineConfig, GapPolicy, TickOutcome};
use tickshard::tick::{Epoch, PartitionId, Tick};

const P: PartitionId = PartitionId(0);
const BATCH: usize = 1024;
const BATCHES: usize = 200;

fn config() -> EngineConfig {
    EngineConfig {
        gap: GapPolicy::default(),
        max_held: 1_000_000,
        max_loading_held: 1_000_000,
        // operator-api: begin (the build before the operator API has neither field)
        max_outputs: tickshard::engine::DEFAULT_MAX_OUTPUTS,
        operators: common::default_operators(),
        // operator-api: end
    }
}

fn active_engine() -> Engine {
    let mut e = Engine::new(config());
    let now = Instant::now();
    e.begin_load(P, Epoch(1));
    e.finish_load(P, Epoch(1), vec![], now);
    e
}

#[inline(never)]
fn offer_cold(e: &mut Engine, ticks: &[Tick], now: Instant) -> usize {
    ticks
        .iter()
        .filter(|t| matches!(e.offer(P, **t, now), TickOutcome::Applied { .. }))
        .count()
}

// Not the same body as `offer_cold`, so the two are never merged into one
// symbol (the counts toggle on the function's name).
#[inline(never)]
fn offer_warm(e: &mut Engine, ticks: &[Tick], now: Instant) -> usize {
    let mut applied = 0;
    for t in ticks {
        if let TickOutcome::Applied { released } = e.offer(P, *t, now) {
            applied += 1 + released;
        }
    }
    applied
}

fn main() {
    let symbols = common::symbols(100);
    let cold = common::ticks(BATCH, &symbols);
    let warm = common::ticks(BATCH * (BATCHES + 1), &symbols);
    let now = Instant::now();
    let mut applied = 0;
    for _ in 0..BATCHES {
        let mut e = active_engine();
        applied += offer_cold(&mut e, black_box(&cold), now);
    }
    assert_eq!(applied, BATCH * BATCHES, "every cold tick applies");
    let mut e = active_engine();
    offer_cold(&mut e, &warm[..BATCH], now);
    let applied = offer_warm(&mut e, black_box(&warm[BATCH..]), now);
    assert_eq!(applied, BATCH * BATCHES, "every warm tick applies");
    println!("offer_cold {} ticks", BATCH * (BATCHES + 1));
    println!("offer_warm {} ticks", BATCH * BATCHES);
}
