//! Chaos: the fleet changes under a running stream. A rolling restart of
//! every processor, scaling 1 → 5 → 1, and every processor's feed
//! connection cut (through a proxy, so the feed keeps its ground truth)
//! and re-established with backoff. Each ends with every symbol exact
//! against the feed's ground truth and clean ownership claims.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::chaos::{feed_args, lease_owners, Chaos, Via};
use support::RedisServerOptions;

const LEASE_MS: u64 = 1000;

/// Waits until every lease is held and `id` holds at least one.
async fn owns_some(c: &Chaos, id: &str, timeout: Duration) {
    support::wait_until(timeout, &format!("{id} owns partitions"), || async {
        let owners = lease_owners(c.conn.clone(), &c.ns).await;
        owners.iter().all(Option::is_some) && owners.iter().any(|o| o.as_deref() == Some(id))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_processor_is_exact() {
    let mut c = Chaos::with_processors("roll", 3, LEASE_MS, Via::default()).await;
    c.start_feed(&feed_args("200000", "30000", "41"));
    c.wait_ticks_in(20_000, Duration::from_secs(30)).await;
    let t0 = Instant::now();
    for i in 0..3 {
        // SIGTERM: a clean leave (hands its partitions over), then the same
        // id comes back and takes its share again.
        c.term(i);
        c.restart(i).await;
        let id = format!("p{}", i + 1);
        owns_some(&c, &id, Duration::from_secs(15)).await;
    }
    eprintln!("[roll] every processor restarted in {:?}", t0.elapsed());
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_one_to_five_to_one_mid_stream_is_exact() {
    let mut c = Chaos::with_processors("scale", 1, LEASE_MS, Via::default()).await;
    c.start_feed(&feed_args("200000", "25000", "42"));
    c.wait_ticks_in(20_000, Duration::from_secs(30)).await;
    let t0 = Instant::now();
    for i in 2..=5 {
        c.add(&format!("p{i}"), Via::default()).await;
    }
    // Five members share the partitions (balanced: 12 or 13 each).
    support::wait_until(Duration::from_secs(15), "5 balanced owners", || async {
        let owners = lease_owners(c.conn.clone(), &c.ns).await;
        let mut counts = std::collections::BTreeMap::new();
        for o in owners.iter().flatten() {
            *counts.entry(o.clone()).or_insert(0u32) += 1;
        }
        owners.iter().all(Option::is_some)
            && counts.len() == 5
            && counts.values().all(|n| (12..=13).contains(n))
    })
    .await;
    eprintln!("[scale] 1 -> 5 settled after {:?}", t0.elapsed());
    let t1 = Instant::now();
    // Back to one: p5, p4, p3, p2 leave by SIGTERM, one after the other.
    for i in (1..5).rev() {
        c.term(i);
        c.retire(i);
    }
    support::wait_until(Duration::from_secs(10), "p1 owns everything", || async {
        let owners = lease_owners(c.conn.clone(), &c.ns).await;
        owners.iter().all(|o| o.as_deref() == Some("p1"))
    })
    .await;
    eprintln!("[scale] 5 -> 1 settled after {:?}", t1.elapsed());
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_feed_connection_cut_and_reconnected_is_exact() {
    let via = Via {
        feed_proxy: true,
        ..Via::default()
    };
    let mut c = Chaos::new("feedcut", LEASE_MS, RedisServerOptions::default()).await;
    for i in 1..=3 {
        c.add(&format!("p{i}"), via).await;
    }
    c.wait_all_owned().await;
    c.start_feed(&feed_args("200000", "30000", "43"));
    let connected = |c: &Chaos| -> Vec<usize> {
        c.members
            .iter()
            .map(|m| m.proc.log().matches("connected to the feed").count())
            .collect()
    };
    for round in 1..=2 {
        c.wait_ticks_in(40_000 * round as u64, Duration::from_secs(30))
            .await;
        let before = connected(&c);
        // The fault: every processor's feed connection closed at once.
        for m in &c.members {
            m.feed_proxy.as_ref().unwrap().cut();
        }
        let t0 = Instant::now();
        support::wait_until(
            Duration::from_secs(10),
            "every processor reconnects to the feed",
            || {
                let now = connected(&c);
                let before = before.clone();
                async move { now.iter().zip(&before).all(|(n, b)| n > b) }
            },
        )
        .await;
        eprintln!(
            "[feedcut] round {round}: all reconnected after {:?}",
            t0.elapsed()
        );
    }
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 200_000);
}
