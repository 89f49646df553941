//! Chaos: Redis goes away. A processor cut off from Redis by a blackholing
//! proxy while the feed keeps sending to it; Redis killed and restarted
//! with its append-only file mid-stream; Redis frozen for 10 s. Each ends
//! with every symbol exact against the feed's ground truth and clean
//! ownership claims.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::chaos::{feed_args, leases_of, Chaos, Via};
use support::RedisServerOptions;
use tickshard::keys::Keys;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_cut_off_from_redis_is_fenced_and_results_stay_exact() {
    const LEASE_MS: u64 = 1000;
    let mut c = Chaos::new("cut", LEASE_MS, RedisServerOptions::default()).await;
    c.add("p1", Via::default()).await;
    c.add("p2", Via::default()).await;
    let p3 = c
        .add(
            "p3",
            Via {
                redis_proxy: true,
                ..Via::default()
            },
        )
        .await;
    c.wait_all_owned().await;
    c.start_feed(&feed_args("300000", "40000", "31"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    let held_before = leases_of(c.conn.clone(), &c.ns, "p3").await;
    assert!(!held_before.is_empty(), "p3 owned nothing before the cut");
    let ticks_before = c
        .counter_of(&c.members[p3], "tickshard_ticks_in_total")
        .await
        .unwrap();

    // The fault: every byte between p3 and Redis stops, connections stay
    // open; the feed keeps sending to p3.
    let t_cut = Instant::now();
    c.members[p3].redis_proxy.as_ref().unwrap().blackhole();
    support::wait_until(
        Duration::from_secs(3 * LEASE_MS / 1000 + 3),
        "p3's partitions re-owned by p1 and p2",
        || async {
            let owners = support::chaos::lease_owners(c.conn.clone(), &c.ns).await;
            owners
                .iter()
                .all(|o| matches!(o.as_deref(), Some("p1") | Some("p2")))
        },
    )
    .await;
    eprintln!(
        "[cut] p3's partitions re-owned {:?} after the cut",
        t_cut.elapsed()
    );
    // p3 still receives ticks from the feed while cut off.
    let ticks_cut = c
        .counter_of(&c.members[p3], "tickshard_ticks_in_total")
        .await
        .unwrap();
    assert!(
        ticks_cut > ticks_before,
        "p3 received no ticks while cut off ({ticks_before} -> {ticks_cut})"
    );
    // The fault lasts 3 lease TTLs in all (a duration, not a synchronisation).
    tokio::time::sleep_until((t_cut + Duration::from_millis(3 * LEASE_MS)).into()).await;
    // The link comes back: whatever p3 wrote meanwhile now reaches Redis,
    // where the fence rejects it.
    c.members[p3].redis_proxy.as_ref().unwrap().resume();
    support::wait_until(
        Duration::from_secs(15),
        "p3 owns partitions again",
        || async { !leases_of(c.conn.clone(), &c.ns, "p3").await.is_empty() },
    )
    .await;
    c.assert_fenced(p3, &held_before).await;
    // Second cut, ended by closing the held connections instead: p3 must
    // notice, reconnect every connection (cluster, pub/sub, store, stats)
    // and come back.
    let total_before = c.sum_counter("tickshard_ticks_in_total").await;
    c.wait_ticks_in(total_before + 30_000, Duration::from_secs(30))
        .await;
    let t_cut = Instant::now();
    c.members[p3].redis_proxy.as_ref().unwrap().blackhole();
    support::wait_until(
        Duration::from_secs(3 * LEASE_MS / 1000 + 3),
        "p3's partitions re-owned again",
        || async { leases_of(c.conn.clone(), &c.ns, "p3").await.is_empty() },
    )
    .await;
    // The second fault also lasts 3 lease TTLs.
    tokio::time::sleep_until((t_cut + Duration::from_millis(3 * LEASE_MS)).into()).await;
    let proxy = c.members[p3].redis_proxy.as_ref().unwrap();
    proxy.cut();
    proxy.resume();
    support::wait_until(
        Duration::from_secs(15),
        "p3 owns partitions after reconnecting",
        || async { !leases_of(c.conn.clone(), &c.ns, "p3").await.is_empty() },
    )
    .await;
    eprintln!("[cut] p3 back after the closed cut {:?}", t_cut.elapsed());
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_with_aof_mid_stream_loses_nothing() {
    let options = RedisServerOptions {
        aof: true,
        ..RedisServerOptions::default()
    };
    let mut c = Chaos::new("aof", 2000, options).await;
    for i in 1..=3 {
        c.add(&format!("p{i}"), Via::default()).await;
    }
    c.wait_all_owned().await;
    c.start_feed(&feed_args("200000", "30000", "32"));
    c.wait_ticks_in(40_000, Duration::from_secs(30)).await;
    let applied_before = c.sum_counter("tickshard_applied_total").await;
    // The fault: SIGKILL redis-server and start it again on the same port
    // and directory; `appendfsync always` keeps every acknowledged write.
    let t0 = Instant::now();
    c.redis.server().restart().unwrap();
    eprintln!("[aof] redis back after {:?}", t0.elapsed());
    c.reconnect().await;
    // Processing resumes: more ticks applied, every partition owned again.
    support::wait_until(Duration::from_secs(20), "processing resumes", || async {
        c.sum_counter("tickshard_applied_total").await > applied_before + 20_000
    })
    .await;
    c.wait_all_owned().await;
    eprintln!(
        "[aof] processing resumed {:?} after the restart",
        t0.elapsed()
    );
    // The stats connections recovered too: every instance publishes again.
    let client = redis::Client::open(c.redis.url()).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe(Keys::new(c.ns.as_str()).stats())
        .await
        .unwrap();
    let mut stream = ps.on_message();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(msg)) =
            tokio::time::timeout(left, futures_util::StreamExt::next(&mut stream)).await
        else {
            panic!("stats after the Redis restart only from {seen:?}");
        };
        let v: serde_json::Value = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
        seen.insert(v["instance"].as_str().unwrap_or_default().to_owned());
    }
    drop(stream);
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_for_ten_seconds_pauses_processing_and_loses_nothing() {
    const LEASE_MS: u64 = 2000;
    let mut c = Chaos::new("frozen", LEASE_MS, RedisServerOptions::default()).await;
    for i in 1..=3 {
        c.add(&format!("p{i}"), Via::default()).await;
    }
    c.wait_all_owned().await;
    c.start_feed(&feed_args("250000", "20000", "33"));
    c.wait_ticks_in(40_000, Duration::from_secs(30)).await;
    // The fault: Redis frozen (SIGSTOP) for 10 s; connections stay open and
    // nothing is answered.
    let t0 = Instant::now();
    c.redis.server().pause().unwrap();
    // Every local lease lapses within a TTL; after that nothing is applied.
    tokio::time::sleep(Duration::from_millis(2 * LEASE_MS)).await; // part of the 10 s fault
    let applied_mid = c.sum_counter("tickshard_applied_total").await;
    tokio::time::sleep_until((t0 + Duration::from_secs(9)).into()).await; // the rest of the fault
    let applied_late = c.sum_counter("tickshard_applied_total").await;
    assert_eq!(
        applied_mid, applied_late,
        "ticks were applied while Redis was unreachable and every lease had lapsed"
    );
    tokio::time::sleep_until((t0 + Duration::from_secs(10)).into()).await; // end of the fault
    c.redis.server().resume().unwrap();
    eprintln!("[frozen] redis resumed after {:?}", t0.elapsed());
    let t1 = Instant::now();
    support::wait_until(Duration::from_secs(20), "processing resumes", || async {
        c.sum_counter("tickshard_applied_total").await > applied_late + 10_000
    })
    .await;
    c.wait_all_owned().await;
    eprintln!(
        "[frozen] processing resumed {:?} after Redis came back",
        t1.elapsed()
    );
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 250_000);
}
