use std::time::{Duration, Instant};

use super::*;
use crate::operator::OperatorSet;

fn cfg() -> EngineConfig {
    EngineConfig {
        gap: GapPolicy {
            max_replay_span: 1000,
            ..GapPolicy::default()
        },
        max_held: 4,
        max_loading_held: 3,
        max_outputs: 2,
        operators: OperatorSet::builtin(&["1m".parse().unwrap()], &[], None).unwrap(),
    }
}

fn t(sym: &str, seq: u64) -> Tick {
    Tick::new(sym.parse().unwrap(), seq, "2".parse().unwrap(), 10, seq).unwrap()
}

const P: PartitionId = PartitionId(3);
const E: Epoch = Epoch(7);

#[test]
fn ticks_wait_for_the_load_then_apply_in_order() {
    let now = Instant::now();
    let mut e = Engine::new(cfg());
    assert_eq!(e.offer(P, t("A", 1), now), TickOutcome::NotOwned);
    e.begin_load(P, E);
    assert_eq!(e.status(P), PartitionStatus::Loading(E));
    assert_eq!(e.offer(P, t("A", 6), now), TickOutcome::Held);
    assert_eq!(e.offer(P, t("A", 5), now), TickOutcome::Held);
    assert_eq!(e.offer(P, t("A", 7), now), TickOutcome::Held);
    assert_eq!(e.offer(P, t("A", 8), now), TickOutcome::Overflow);
    assert_eq!(e.held(), 3);
    // Persisted state says 4 ticks were applied before.
    let mut totals = SymbolTotals::default();
    for seq in 1..=4 {
        totals.apply(&t("A", seq));
    }
    let outcomes = e
        .finish_load(
            P,
            E,
            vec![(
                "A".parse().unwrap(),
                SymbolState::restored(totals, cfg().operators.init()),
            )],
            now,
        )
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            TickOutcome::Held,
            TickOutcome::Applied { released: 1 },
            TickOutcome::Applied { released: 0 }
        ]
    );
    let (_, s) = e.get(&"A".parse().unwrap()).unwrap();
    assert_eq!((s.totals.count, s.totals.last_seq), (7, 7));
    assert_eq!(e.held(), 0);
}

#[test]
fn a_stale_load_is_ignored() {
    let now = Instant::now();
    let mut e = Engine::new(cfg());
    e.begin_load(P, E);
    e.drop_partition(P);
    assert!(e.finish_load(P, E, vec![], now).is_none());
    e.begin_load(P, Epoch(9));
    assert!(e.finish_load(P, E, vec![], now).is_none());
    assert_eq!(e.status(P), PartitionStatus::Loading(Epoch(9)));
}

#[test]
fn flush_hands_out_dirty_symbols_once_and_takes_failures_back() {
    let now = Instant::now();
    let mut e = Engine::new(cfg());
    e.begin_load(P, E);
    e.finish_load(P, E, vec![], now);
    e.offer(P, t("A", 1), now);
    e.offer(P, t("B", 1), now);
    let flush = e.take_flush();
    assert_eq!(flush.len(), 1);
    assert_eq!(flush[0].epoch, E);
    assert_eq!(flush[0].records.len(), 2);
    assert!(e.take_flush().is_empty());
    e.restore_flush(flush.into_iter().next().unwrap());
    assert_eq!(e.take_flush()[0].records.len(), 2);
}

#[test]
fn release_flushes_then_forgets() {
    let now = Instant::now();
    let mut e = Engine::new(cfg());
    e.begin_load(P, E);
    e.finish_load(P, E, vec![], now);
    e.offer(P, t("A", 1), now);
    e.offer(P, t("A", 3), now);
    assert_eq!(e.held(), 1);
    let flush = e.release_partition(P).unwrap();
    assert_eq!(flush.records.len(), 1);
    assert_eq!(flush.records[0].totals.last_seq, 1);
    assert_eq!(e.status(P), PartitionStatus::NotOwned);
    assert_eq!((e.symbol_count(), e.held()), (0, 0));
    assert_eq!(e.offer(P, t("A", 2), now), TickOutcome::NotOwned);
}

#[test]
fn gaps_replay_and_announcements_open_tails() {
    let now = Instant::now();
    let mut e = Engine::new(cfg());
    e.begin_load(P, E);
    e.finish_load(P, E, vec![], now);
    e.offer(P, t("A", 1), now);
    e.offer(P, t("A", 4), now);
    e.announce(P, "B".parse().unwrap(), 2, now);
    e.announce(PartitionId(99), "C".parse().unwrap(), 2, now);
    assert_eq!(e.gaps_open(), 2);
    let later = now + Duration::from_millis(60);
    let mut events = e.scan_gaps(later);
    events.sort_by_key(|ev| match ev {
        GapEvent::Replay { symbol, .. } | GapEvent::Skipped { symbol, .. } => *symbol,
    });
    assert_eq!(
        events,
        vec![
            GapEvent::Replay {
                symbol: "A".parse().unwrap(),
                from: 2,
                to: 4,
                first: true
            },
            GapEvent::Replay {
                symbol: "B".parse().unwrap(),
                from: 1,
                to: 2,
                first: true
            }
        ]
    );
    e.offer(P, t("A", 2), later);
    e.offer(P, t("A", 3), later);
    let (_, a) = e.get(&"A".parse().unwrap()).unwrap();
    assert_eq!(a.totals.last_seq, 4);
    let skip = now + Duration::from_secs(11);
    e.offer(P, t("B", 2), skip);
    assert_eq!(
        e.scan_gaps(skip),
        vec![GapEvent::Skipped {
            symbol: "B".parse().unwrap(),
            from: 1,
            to: 1
        }]
    );
    assert_eq!(e.gaps_open(), 0);
    assert_eq!(e.held(), 0);
}

#[test]
fn the_total_hold_budget_is_respected() {
    let now = Instant::now();
    let mut e = Engine::new(cfg());
    e.begin_load(P, E);
    e.finish_load(P, E, vec![], now);
    for seq in 2..=5 {
        assert_eq!(e.offer(P, t("A", seq), now), TickOutcome::Held);
    }
    assert_eq!(e.offer(P, t("B", 2), now), TickOutcome::Overflow);
    assert_eq!(
        e.offer(P, t("A", 1), now),
        TickOutcome::Applied { released: 4 }
    );
    assert_eq!(e.held(), 0);
}

/// Tick `seq` of `sym`, a minute after the one before: each one completes
/// the previous 1-minute bar.
fn bar_tick(sym: &str, seq: u64) -> Tick {
    Tick::new(
        sym.parse().unwrap(),
        seq,
        "2".parse().unwrap(),
        10,
        seq * 60_000_000_000,
    )
    .unwrap()
}

#[test]
fn outputs_wait_for_the_flush_within_their_limit() {
    let now = Instant::now();
    let mut e = Engine::new(cfg());
    e.begin_load(P, E);
    e.finish_load(P, E, vec![], now);
    for seq in 1..=3 {
        assert!(matches!(
            e.offer(P, bar_tick("A", seq), now),
            TickOutcome::Applied { .. }
        ));
    }
    assert_eq!(e.outputs_pending(), 2);
    // At the limit, even the next tick waits (the gap fill brings it back).
    assert_eq!(e.offer(P, bar_tick("A", 4), now), TickOutcome::Overflow);
    let flush = e.take_flush();
    let outputs = &flush[0].records[0].outputs;
    let ids: Vec<String> = outputs.iter().map(|o| o.id()).collect();
    assert_eq!(ids, vec!["2-0", "3-0"]);
    assert_eq!(e.outputs_pending(), 0);
    // A failed flush gives its outputs back, ahead of newer ones.
    assert!(matches!(
        e.offer(P, bar_tick("A", 4), now),
        TickOutcome::Applied { .. }
    ));
    e.restore_flush(flush.into_iter().next().unwrap());
    assert_eq!(e.outputs_pending(), 3);
    let again = e.take_flush();
    let ids: Vec<String> = again[0].records[0].outputs.iter().map(|o| o.id()).collect();
    assert_eq!(ids, vec!["2-0", "3-0", "4-0"]);
}

#[test]
fn a_failed_flush_goes_in_front_of_the_final_one() {
    let now = Instant::now();
    let mut e = Engine::new(EngineConfig {
        max_outputs: 100,
        ..cfg()
    });
    e.begin_load(P, E);
    e.finish_load(P, E, vec![], now);
    for seq in 1..=2 {
        e.offer(P, bar_tick("A", seq), now);
        e.offer(P, bar_tick("B", seq), now);
    }
    // A periodic flush is in flight when the partition is handed over.
    let earlier = e.take_flush().pop().unwrap();
    e.offer(P, bar_tick("A", 3), now);
    let mut last = e.release_partition(P).unwrap();
    last.absorb_earlier(earlier);
    let ids = |sym: &str| -> Vec<String> {
        let r = last
            .records
            .iter()
            .find(|r| r.symbol.as_str() == sym)
            .unwrap();
        r.outputs.iter().map(|o| o.id()).collect()
    };
    // A: the earlier outputs first, with the newer state; B only earlier.
    assert_eq!(ids("A"), vec!["2-0", "3-0"]);
    assert_eq!(ids("B"), vec!["2-0"]);
    let a = last
        .records
        .iter()
        .find(|r| r.symbol.as_str() == "A")
        .unwrap();
    assert_eq!(a.totals.last_seq, 3);
}
