//! Owner-aware distribution against a real redis-server with leases written
//! directly: ticks go to their partition owner's connection, and lease
//! events on `{ns}:events` re-route at once.

mod support;

use std::num::NonZeroU32;
use std::time::Duration;

use support::{Client, InProcessFeed, Received};
use tickshard::keys::Keys;
use tickshard::partition::partition_of;
use tickshard::redis_server::RedisServer;
use tickshard::tick::{PartitionId, Tick};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_aware_sends_ticks_to_the_lease_owner_and_follows_events() {
    let redis = RedisServer::start().expect("this test needs redis-server");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = Keys::new("ownertest");
    let _: () = redis::cmd("HSET")
        .arg(keys.config())
        .arg(&["partitions", "64", "lease_ms", "2000", "schema", "1"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let owner_of = |p: u32| if p % 2 == 0 { "p1" } else { "p2" };
    for p in 0..64 {
        let _: () = redis::cmd("SET")
            .arg(keys.lease(PartitionId(p)))
            .arg(format!("{}:1", owner_of(p)))
            .arg("PX")
            .arg(600_000)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let total = 8000usize;
    let feed = InProcessFeed::start(&[
        "--mode",
        "owner-aware",
        "--redis",
        &redis.url(),
        "--cluster",
        "ownertest",
        "--ticks",
        "8000",
        "--rate",
        "8000",
        "--symbols",
        "100",
        // Only the start-up snapshot and events: proves events are followed.
        "--owner-poll-ms",
        "600000",
    ])
    .await;
    let mut c1 = Client::connect(feed.addr, "p1", "binary").await;
    let mut c2 = Client::connect(feed.addr, "p2", "json").await;
    let (mut got1, mut got2): (Vec<Tick>, Vec<Tick>) = (Vec::new(), Vec::new());
    let parts = NonZeroU32::new(64).unwrap();
    let mut moved: Option<(u32, usize, usize)> = None;
    while got1.len() + got2.len() < total {
        tokio::select! {
            r = c1.recv(T) => if let Received::Ticks(t) = r { got1.extend(t) },
            r = c2.recv(T) => if let Received::Ticks(t) = r { got2.extend(t) },
        }
        if moved.is_none() && got2.len() > 2000 {
            // Move the partition of p2's busiest symbol to p1 by event.
            let p = partition_of(&got2[0].symbol, parts).0;
            let event = format!(
                r#"{{"kind":"lease_acquired","ts_ms":1,"partition":{p},"instance":"p1","epoch":2}}"#
            );
            let _: () = redis::cmd("PUBLISH")
                .arg(keys.events())
                .arg(event)
                .query_async(&mut conn)
                .await
                .unwrap();
            moved = Some((p, got1.len(), got2.len()));
        }
    }
    let (moved_p, at1, at2) = moved.expect("the move happened");
    let p = |t: &Tick| partition_of(&t.symbol, parts).0;
    // Before the move, and for every other partition, ticks reach the owner.
    let right = got1[..at1]
        .iter()
        .filter(|t| owner_of(p(t)) == "p1")
        .count()
        + got2[..at2]
            .iter()
            .filter(|t| owner_of(p(t)) == "p2")
            .count()
        + got1[at1..]
            .iter()
            .filter(|t| p(t) != moved_p && owner_of(p(t)) == "p1")
            .count()
        + got2[at2..]
            .iter()
            .filter(|t| p(t) != moved_p && owner_of(p(t)) == "p2")
            .count();
    let considered = at1
        + at2
        + got1[at1..].iter().filter(|t| p(t) != moved_p).count()
        + got2[at2..].iter().filter(|t| p(t) != moved_p).count();
    let share = right as f64 / considered as f64;
    assert!(
        share >= 0.99,
        "only {share:.4} of ticks reached their owner"
    );
    // After the event, the moved partition's ticks go to p1: p2 gets at
    // most the few already queued.
    let late_to_p2 = got2[at2..].iter().filter(|t| p(t) == moved_p).count();
    let late_to_p1 = got1[at1..].iter().filter(|t| p(t) == moved_p).count();
    assert!(
        late_to_p1 > 0,
        "the moved partition's ticks did not follow the event"
    );
    assert!(
        late_to_p2 <= late_to_p1 / 10 + 64,
        "p2 still got {late_to_p2} (p1 {late_to_p1})"
    );

    let summary = feed.stop().await;
    assert_eq!(summary.mode, "owner-aware");
    assert_eq!(summary.ticks_sent, total as u64);
    let hits = summary.distribution.owner_hits as f64;
    assert!(hits / total as f64 >= 0.99, "{:?}", summary.distribution);
}
