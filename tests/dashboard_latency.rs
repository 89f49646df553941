//! The dashboard's latency cards and its chart show the numbers the cluster
//! bench computes for the same window.
//!
//! Both tests compare against the bench's own code
//! (`benches/harness/stats.rs`, included below): it merges the `{ns}:stats`
//! messages' histograms and reads their percentiles. For a window of whole
//! seconds, the messages are those whose interval ended in it (`ts_ms`).
//!
//! - With the aggregate types, three instances publish known histograms
//!   (a fast bulk, slow tails in some seconds, one message arriving late)
//!   for 14 seconds; at every frame the cards equal the bench's merge of
//!   the card window's messages, every chart point equals the bench's merge
//!   of its second, and with a one-second window the cards are the last
//!   chart point.
//! - Through a real dashboard (Redis, pub/sub, `/ws`), stats published for
//!   four seconds give the same equalities on the frames the browser gets,
//!   with the bench's own collector reading the same channel.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

// The bench's helpers (the file allows its own dead code).
#[path = "../benches/common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../benches/harness/stats.rs"]
mod bench_stats;

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use tickshard::dashboard::aggregate::ClusterView;
use tickshard::dashboard::model::{DashboardSnapshot, HistoryPoint, LatencySummary};
use tickshard::dashboard::{self, DashboardConfig};
use tickshard::keys::Keys;
use tickshard::stats::{self, LatencyKind, Metrics, StatsSnapshot};

use common::Percentiles;

/// The bench's percentiles of `kind` over the messages whose interval
/// ended in `from_ms..to_ms`.
fn bench(snaps: &[StatsSnapshot], kind: LatencyKind, from_ms: u64, to_ms: u64) -> Percentiles {
    let window: Vec<StatsSnapshot> = snaps
        .iter()
        .filter(|s| (from_ms..to_ms).contains(&s.ts_ms))
        .cloned()
        .collect();
    bench_stats::percentiles(&window, kind)
}

fn figures(l: &LatencySummary) -> [u64; 6] {
    [l.count, l.p50, l.p90, l.p99, l.p999, l.max]
}

fn bench_figures(p: &Percentiles) -> [u64; 6] {
    [p.count, p.p50, p.p90, p.p99, p.p999, p.max]
}

/// Asserts the frame's cards and chart points against the bench over
/// `snaps`; returns how many chart points had samples.
fn check_frame(snap: &DashboardSnapshot, snaps: &[StatsSnapshot], at: &str) -> usize {
    let w = snap.latency_window;
    assert_eq!(w.to_ms - w.from_ms, w.seconds * 1000, "{at}: {w:?}");
    assert_eq!(snap.window_s, w.seconds);
    for (kind, card) in [
        (LatencyKind::E2e, &snap.latency_us),
        (LatencyKind::Forward, &snap.forward_latency_us),
        (LatencyKind::Flush, &snap.flush_latency_us),
    ] {
        assert_eq!(
            figures(card),
            bench_figures(&bench(snaps, kind, w.from_ms, w.to_ms)),
            "{at}: {kind:?} card over {w:?}"
        );
    }
    let mut with_samples = 0;
    for p in &snap.history {
        let e2e = bench(snaps, LatencyKind::E2e, p.ts_ms - 1000, p.ts_ms);
        assert_eq!(
            figures(&p.latency_us),
            bench_figures(&e2e),
            "{at}: chart point ending {}",
            p.ts_ms
        );
        let fwd = bench(snaps, LatencyKind::Forward, p.ts_ms - 1000, p.ts_ms);
        assert_eq!(p.forward_p99_us, fwd.p99, "{at}: forward point {}", p.ts_ms);
        with_samples += usize::from(p.latency_us.count > 0);
    }
    // What the page shows side by side: the card window's chart points hold
    // exactly the card's samples, its max, and no p99 below the card's.
    let points: Vec<&HistoryPoint> = snap
        .history
        .iter()
        .filter(|p| p.ts_ms > w.from_ms && p.ts_ms <= w.to_ms)
        .collect();
    if points.len() as u64 == w.seconds {
        let l = &snap.latency_us;
        assert_eq!(
            points.iter().map(|p| p.latency_us.count).sum::<u64>(),
            l.count
        );
        let max = points.iter().map(|p| p.latency_us.max).max().unwrap_or(0);
        assert_eq!(max, l.max, "{at}");
        let p99 = points.iter().map(|p| p.latency_us.p99).max().unwrap_or(0);
        assert!(l.p99 <= p99, "{at}: card p99 {} above every point's", l.p99);
    }
    with_samples
}

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Records instance `i`'s samples of second `k`: a fast bulk whose size
/// differs per instance, and slow tails in a few seconds (the demo's
/// pattern: most ticks in a few ms, some seconds with 20-45 ms stragglers).
fn record_second(m: &Metrics, i: usize, k: u64, rng: &mut Lcg) {
    let bulk = [900, 300, 60][i];
    for _ in 0..bulk {
        m.e2e_us.record_us(800 + rng.below(4_000));
    }
    for _ in 0..bulk / 10 {
        m.forward_us.record_us(200 + rng.below(2_000));
    }
    m.flush_us.record_us(1_000 + rng.below(9_000));
    if (i == 1 && k % 5 == 3) || (i == 2 && k == 9) {
        for _ in 0..40 {
            m.e2e_us.record_us(20_000 + rng.below(25_700));
        }
        m.forward_us.record_us(30_000);
    }
}

/// One message: instance `i`'s interval ending at `ts_ms`, delivered at
/// `arrive_ms`.
struct Delivery {
    arrive_ms: u64,
    snap: StatsSnapshot,
}

fn deliveries(base_ms: u64, seconds: u64) -> Vec<Delivery> {
    let ids = ["p1", "p2", "p3"];
    let phases = [130, 470, 910];
    let metrics: Vec<Metrics> = ids.iter().map(|_| Metrics::new()).collect();
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    for k in 0..seconds {
        for (i, id) in ids.iter().enumerate() {
            record_second(&metrics[i], i, k, &mut rng);
            let ts_ms = base_ms + k * 1000 + phases[i];
            let snap = stats::take_snapshot(&metrics[i], id, ts_ms, 1000, 8, vec![]);
            // p3's message of second 6 is held up for 2.6 s (after its
            // chart point was drawn); the others take 4 ms.
            let delay = if i == 2 && k == 6 { 2_600 } else { 4 };
            out.push(Delivery {
                arrive_ms: ts_ms + delay,
                snap,
            });
        }
    }
    out.sort_by_key(|d| d.arrive_ms);
    out
}

#[test]
fn cards_and_chart_equal_the_bench_merge_of_the_same_window() {
    let base = 1_732_400_000_000;
    let all = deliveries(base, 14);
    let mut five = ClusterView::new();
    let mut one = ClusterView::with_latency_window(1);
    let mut delivered: Vec<StatsSnapshot> = Vec::new();
    let mut next = 0;
    let (mut frames, mut most_points) = (0, 0);
    let late_point_ts = base + 7_000; // the chart point of second 6
    let mut late_point_counts = Vec::new();
    let mut t = base - 500;
    while t <= base + 16_000 {
        while let Some(d) = all.get(next).filter(|d| d.arrive_ms <= t) {
            assert!(five.on_stats(d.arrive_ms, d.snap.clone()));
            assert!(one.on_stats(d.arrive_ms, d.snap.clone()));
            delivered.push(d.snap.clone());
            next += 1;
        }
        if t % 250 == 0 {
            five.tick(t);
            one.tick(t);
            let s5 = five.snapshot(t, false, 0);
            let s1 = one.snapshot(t, false, 0);
            assert_eq!(s5.latency_window.seconds, 5);
            assert_eq!(s1.latency_window.seconds, 1);
            most_points = most_points.max(check_frame(&s5, &delivered, &format!("5 s at {t}")));
            check_frame(&s1, &delivered, &format!("1 s at {t}"));
            // One second: the cards are the chart's last point.
            if let Some(last) = s1.history.last() {
                assert_eq!(last.ts_ms, s1.latency_window.to_ms);
                assert_eq!(s1.latency_us, last.latency_us, "1 s at {t}");
                assert_eq!(s1.forward_latency_us.p99, last.forward_p99_us);
            } else {
                assert!(t < base, "no chart point at {t}");
            }
            assert_eq!(s1.history, s5.history, "the same chart either way");
            if let Some(p) = s5.history.iter().find(|p| p.ts_ms == late_point_ts) {
                late_point_counts.push(p.latency_us.count);
            }
            if t == base + 5_000 {
                // The cards over seconds 0..=4 include second 3's tail.
                assert!(s5.latency_us.max >= 20_000, "{:?}", s5.latency_us);
                assert!(s5.latency_us.p999 >= 20_000, "{:?}", s5.latency_us);
            }
            frames += 1;
        }
        t += 50;
    }
    assert_eq!(next, all.len(), "every message delivered");
    assert!(frames > 60, "{frames} frames");
    assert!(most_points >= 14, "{most_points} chart points with samples");
    // The late message changed its second's point after it was drawn.
    let (first, last) = (late_point_counts[0], *late_point_counts.last().unwrap());
    assert!(first < last, "point of second 6: {first} then {last}");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Every frame, in order, up to and including the first one that
/// satisfies `last`; panics after `timeout`.
async fn frames_until(
    ws: &mut Ws,
    timeout: Duration,
    what: &str,
    last: impl Fn(&DashboardSnapshot) -> bool,
) -> Vec<DashboardSnapshot> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!(
                "timed out waiting for: {what}\nlast frame: {:#?}",
                frames.last()
            ),
            Ok(None) => panic!("stream ended waiting for: {what}"),
            Ok(Some(Err(e))) => panic!("ws error waiting for {what}: {e}"),
            Ok(Some(Ok(Message::Text(t)))) => {
                let snap: DashboardSnapshot = serde_json::from_str(&t).expect("a snapshot");
                let done = last(&snap);
                frames.push(snap);
                if done {
                    return frames;
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The last of `frames` whose cards cover seconds up to `to_sec`.
fn last_frame_ending(frames: &[DashboardSnapshot], to_sec: u64) -> &DashboardSnapshot {
    frames
        .iter()
        .rev()
        .find(|s| s.latency_window.to_ms == (to_sec + 1) * 1000)
        .unwrap_or_else(|| panic!("no frame with a window ending with second {to_sec}"))
}

async fn start_dashboard(
    url: &str,
    ns: &str,
    window_s: u64,
    shutdown: &CancellationToken,
) -> (dashboard::Dashboard, Ws) {
    let mut config = DashboardConfig::new(url, ns, "127.0.0.1:0".parse().unwrap());
    config.push_every = Duration::from_millis(100);
    config.latency_window_s = window_s;
    let dash = dashboard::start(config, shutdown.clone())
        .await
        .expect("dashboard starts");
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", dash.local_addr()))
        .await
        .expect("ws connect");
    (dash, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_dashboard_shows_the_bench_numbers_for_its_window() {
    const NS: &str = "lat";
    const SECONDS: u64 = 4;
    let redis = support::redis();
    let keys = Keys::new(NS);
    let shutdown = CancellationToken::new();
    let (dash5, mut ws5) = start_dashboard(&redis.url(), NS, 5, &shutdown).await;
    let (dash1, mut ws1) = start_dashboard(&redis.url(), NS, 1, &shutdown).await;
    let collector = bench_stats::StatsCollector::start(&redis.url(), &keys, shutdown.clone())
        .await
        .expect("the bench's collector subscribes");
    let mut conn = support::connect(&redis).await;
    support::wait_subscribers(&conn, &keys.stats(), 3, Duration::from_secs(10)).await;

    // Three instances, each publishing at its own point of every second.
    let ids = ["p1", "p2", "p3"];
    let metrics: Vec<Metrics> = ids.iter().map(|_| Metrics::new()).collect();
    let mut rng = Lcg(11);
    let start_sec = tickshard::clock::now_ms() / 1000 + 1;
    for k in 0..SECONDS {
        for (i, id) in ids.iter().enumerate() {
            let at = (start_sec + k) * 1000 + [100, 400, 700][i];
            tokio::time::sleep(Duration::from_millis(
                at.saturating_sub(tickshard::clock::now_ms()),
            ))
            .await;
            record_second(&metrics[i], i, k, &mut rng);
            let s =
                stats::take_snapshot(&metrics[i], id, tickshard::clock::now_ms(), 1000, 8, vec![]);
            let _: i64 = conn.publish(keys.stats(), s.to_json()).await.unwrap();
        }
    }
    let total = (SECONDS as usize) * ids.len();
    support::wait_until(
        Duration::from_secs(10),
        "the bench got every message",
        || {
            let n = collector.snapshots().len();
            async move { n == total }
        },
    )
    .await;
    let snaps = collector.snapshots();
    let secs: std::collections::BTreeSet<u64> = snaps.iter().map(|s| s.ts_ms / 1000).collect();
    let last_sec = secs.last().copied().unwrap();

    // The frames the browsers got until the windows moved past the last
    // published second; of each window, the last frame (every message of
    // its seconds is in by then).
    let past = |s: &DashboardSnapshot| s.latency_window.to_ms > (last_sec + 1) * 1000;
    let frames5 = frames_until(
        &mut ws5,
        Duration::from_secs(20),
        "5 s window moves on",
        past,
    )
    .await;
    let frames1 = frames_until(
        &mut ws1,
        Duration::from_secs(20),
        "1 s window moves on",
        past,
    )
    .await;

    // 5 s: the window ending with the last published second.
    let snap = last_frame_ending(&frames5, last_sec);
    assert_eq!(snap.dashboard.stats_messages, total as u64);
    assert_eq!(snap.dashboard.misdated_stats, 0);
    let in_window = snaps
        .iter()
        .filter(|s| (snap.latency_window.from_ms..snap.latency_window.to_ms).contains(&s.ts_ms))
        .count();
    assert_eq!(in_window, total, "the window holds every published second");
    assert!(check_frame(snap, &snaps, "live 5 s") >= secs.len());

    // 1 s: for each published second, the cards are its chart point and
    // the bench's figures of that second.
    for sec in &secs {
        let snap = last_frame_ending(&frames1, *sec);
        check_frame(snap, &snaps, &format!("live 1 s on {sec}"));
        let last = snap.history.last().unwrap();
        assert_eq!(last.ts_ms, (sec + 1) * 1000);
        assert_eq!(snap.latency_us, last.latency_us);
        assert!(snap.latency_us.count > 0);
    }

    shutdown.cancel();
    for dash in [dash5, dash1] {
        tokio::time::timeout(Duration::from_secs(5), dash.wait())
            .await
            .expect("stops in time")
            .expect("clean stop");
    }
}
