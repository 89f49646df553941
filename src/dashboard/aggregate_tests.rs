use super::*;
use crate::stats::{take_snapshot, Metrics};

fn stats(id: &str, ts_ms: u64, ticks: u64, fwd: u64, lat: &[u64]) -> StatsSnapshot {
    let m = Metrics::new();
    m.counters.ticks_in.add(ticks);
    m.counters.forwarded_out.add(fwd);
    m.counters.applied.add(ticks - fwd);
    m.counters.gaps.add(1);
    for v in lat {
        m.e2e_us.record_us(*v);
    }
    let hot = vec![HotSymbol {
        symbol: format!("S{id}"),
        count: ticks,
        ..Default::default()
    }];
    take_snapshot(&m, id, ts_ms, 1000, 2, hot)
}

fn poll(p: u32, leases: &[Option<&str>], members: &[(&str, u64)]) -> PollResult {
    PollResult {
        redis_now_ms: 10_000,
        partitions: Some(p),
        leases: leases.iter().map(|l| l.map(str::to_string)).collect(),
        members: members.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
        member_http: BTreeMap::new(),
    }
}

#[test]
fn builds_rows_rates_map_and_latency() {
    let mut v = ClusterView::new();
    let now = 10_000;
    v.on_poll(
        now,
        poll(
            4,
            &[Some("p1:3"), Some("p2:1"), None, Some("p1:4")],
            &[("p1", 12_000), ("p2", 12_000)],
        ),
    );
    assert!(v.on_stats(now - 1000, stats("p1", 9_000, 0, 0, &[])));
    assert!(v.on_stats(now, stats("p1", 10_000, 1000, 400, &[100, 200])));
    assert!(v.on_stats(now - 1000, stats("p2", 9_000, 0, 0, &[])));
    assert!(v.on_stats(now, stats("p2", 10_000, 500, 100, &[300])));
    // The latency cards cover complete seconds: second 10 once it ended.
    assert_eq!(v.snapshot(now, false, 0).latency_us.count, 0);
    let s = v.snapshot(now + 1_000, false, 0);
    assert_eq!(s.latency_window.from_ms, 6_000);
    assert_eq!(s.latency_window.to_ms, 11_000);
    assert_eq!(s.window_s, 5);
    assert_eq!(
        s.partitions,
        vec![
            Some("p1".into()),
            Some("p2".into()),
            None,
            Some("p1".into())
        ]
    );
    assert_eq!(s.epochs, vec![Some(3), Some(1), None, Some(4)]);
    assert_eq!(s.instances.len(), 2);
    let p1 = &s.instances[0];
    assert_eq!((p1.id.as_str(), p1.alive, p1.partitions), ("p1", true, 2));
    assert_eq!(p1.ticks_per_s, 1000.0);
    assert_eq!(p1.forwarded_per_s, 400.0);
    assert_eq!(s.ticks_per_s, 1500.0);
    assert!((s.forward_ratio - 500.0 / 1500.0).abs() < 1e-9);
    assert_eq!(s.latency_us.count, 3);
    assert_eq!(s.latency_us.p50, 200);
    assert!(s.latency_us.max >= 300);
    assert_eq!(s.totals.gaps, 2);
    assert_eq!(s.hot_symbols[0].symbol, "Sp1");
}

#[test]
fn garbage_is_counted_and_ignored() {
    let mut v = ClusterView::new();
    assert!(!v.on_stats_payload(1, "not json"));
    assert!(!v.on_stats_payload(1, r#"{"type":"stats"}"#));
    let mut bad_hist = stats("p1", 1, 1, 0, &[]);
    bad_hist.histograms.e2e_us = "!!notbase64".into();
    assert!(!v.on_stats(1, bad_hist));
    assert!(!v.on_stats(1, stats("bad id!", 1, 1, 0, &[])));
    assert!(!v.on_event_payload("{"));
    assert!(!v.on_event_payload(r#"{"kind":"lease_lost","ts_ms":1}"#));
    assert_eq!(v.bad_messages(), 6);
    // An event of a kind this version does not know (from a newer
    // instance) is ignored, not counted as bad.
    assert!(!v.on_event_payload(r#"{"kind":"weather","ts_ms":1,"instance":"x"}"#));
    assert_eq!(v.bad_messages(), 6);
    assert!(v.snapshot(1, false, 0).instances.is_empty());
}

#[test]
fn events_move_partitions_before_the_next_poll() {
    let mut v = ClusterView::new();
    v.on_poll(0, poll(2, &[Some("p1:3"), None], &[]));
    assert!(v.on_event_payload(
        r#"{"kind":"lease_lost","ts_ms":1,"partition":0,"instance":"p1","epoch":3}"#
    ));
    assert!(v.on_event_payload(
        r#"{"kind":"lease_acquired","ts_ms":2,"partition":1,"instance":"p2","epoch":9}"#
    ));
    // A stale release (older epoch) does not clear the new holder.
    assert!(v.on_event_payload(
        r#"{"kind":"lease_released","ts_ms":3,"partition":1,"instance":"p1","epoch":2}"#
    ));
    let s = v.snapshot(0, true, 0);
    assert_eq!(s.partitions, vec![None, Some("p2".into())]);
    assert_eq!(s.events.len(), 3);
    assert!(s.demo);
}

#[test]
fn dead_instances_turn_dead_then_disappear() {
    let mut v = ClusterView::new();
    v.on_poll(0, poll(1, &[None], &[("p1", 1_000)]));
    v.on_stats(0, stats("p1", 0, 0, 0, &[]));
    assert!(v.snapshot(500, false, 0).instances[0].alive);
    // Heartbeat expired (redis skew 10 s: redis now = local + 10 s) and stats stale.
    let s = v.snapshot(STATS_ALIVE_MS + 1, false, 0);
    assert!(!s.instances[0].alive);
    assert_eq!(s.instances[0].ticks_per_s, 0.0);
    v.on_poll(FORGET_AFTER_MS + 5_000, poll(1, &[None], &[]));
    v.tick(FORGET_AFTER_MS + 5_000);
    v.tick(FORGET_AFTER_MS + 6_000);
    assert!(v
        .snapshot(FORGET_AFTER_MS + 6_000, false, 0)
        .instances
        .is_empty());
}

#[test]
fn history_gets_one_point_per_second() {
    let mut v = ClusterView::new();
    v.tick(1_000);
    v.on_stats(1_100, stats("p1", 1_000, 0, 0, &[]));
    v.on_stats(1_900, stats("p1", 1_900, 90, 0, &[50]));
    v.tick(1_950);
    v.tick(2_010);
    v.tick(2_500);
    v.tick(3_001);
    let s = v.snapshot(3_001, false, 0);
    assert_eq!(s.history.len(), 2);
    assert_eq!(s.history[0].ts_ms, 2_000);
    assert_eq!(s.history[0].latency_us.p50, 50);
    assert_eq!(s.history[0].ticks_per_s, 100.0);
}

#[test]
fn redis_disconnects_are_logged_once() {
    let mut v = ClusterView::new();
    v.on_pubsub(1, true, "subscribed");
    v.on_pubsub(2, false, "connection reset");
    v.on_pubsub(3, false, "connection refused");
    v.on_pubsub(4, true, "subscribed");
    let kinds: Vec<String> = v
        .snapshot(5, false, 0)
        .events
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["redis_connected", "redis_disconnected", "redis_connected"]
    );
}
