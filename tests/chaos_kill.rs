//! Chaos: processors die or freeze mid-stream. Real redis-server, real
//! `feed-sim`, real processor processes; each scenario ends with every
//! symbol's stored state equal to the feed's ground truth and a check of
//! every instance's ownership claims over time (see `support::claims`).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::chaos::{feed_args, Chaos, Via};

/// Lease TTL of these clusters: short, so failover is quick.
const LEASE_MS: u64 = 1000;

/// Every lease held, none by `id`.
async fn leases_all_held_without(c: &Chaos, id: &str) -> bool {
    let owners = support::chaos::lease_owners(c.conn.clone(), &c.ns).await;
    owners.iter().all(|o| o.as_deref().is_some_and(|o| o != id))
}

/// Partitions whose lease key names `id`.
async fn leases_of(c: &Chaos, id: &str) -> Vec<u32> {
    support::chaos::leases_of(c.conn.clone(), &c.ns, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_processor_mid_stream_is_exact() {
    let mut c = Chaos::with_processors("kill1", 3, LEASE_MS, Via::default()).await;
    c.start_feed(&feed_args("150000", "40000", "21"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    let t0 = Instant::now();
    c.kill9(1);
    // Its partitions move to the survivors after the lease TTL.
    support::wait_until(Duration::from_secs(8), "p2's partitions re-owned", || {
        leases_all_held_without(&c, "p2")
    })
    .await;
    eprintln!(
        "[kill1] p2's partitions re-owned {:?} after SIGKILL",
        t0.elapsed()
    );
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 150_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_two_out_of_four_at_once_is_exact() {
    let mut c = Chaos::with_processors("kill2", 4, LEASE_MS, Via::default()).await;
    c.start_feed(&feed_args("150000", "40000", "22"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    // Both at once: one `kill` each, back to back, before either is reaped.
    c.claims.unwatch(&c.members[1].proc);
    c.claims.unwatch(&c.members[2].proc);
    c.members[1].proc.kill9();
    c.members[2].proc.kill9();
    c.members[1].proc.wait_exit(Duration::from_secs(5));
    c.members[2].proc.wait_exit(Duration::from_secs(5));
    support::wait_until(
        Duration::from_secs(10),
        "p2's and p3's partitions re-owned",
        || async {
            leases_all_held_without(&c, "p2").await && leases_all_held_without(&c, "p3").await
        },
    )
    .await;
    // The survivors split everything between them.
    assert!(!leases_of(&c, "p1").await.is_empty());
    assert!(!leases_of(&c, "p4").await.is_empty());
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 150_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_past_three_lease_ttls_is_fenced_and_exact() {
    let mut c = Chaos::with_processors("stop", 3, LEASE_MS, Via::default()).await;
    c.start_feed(&feed_args("200000", "40000", "23"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    let held_before = leases_of(&c, "p3").await;
    assert!(!held_before.is_empty(), "p3 owned nothing before the pause");
    let fenced_before = c
        .counter_of(&c.members[2], "tickshard_fenced_rejected_total")
        .await
        .unwrap();
    c.members[2].proc.stop();
    let t_stop = Instant::now();
    // The others take p3's partitions while it is frozen.
    support::wait_until(
        Duration::from_secs(3 * LEASE_MS / 1000 + 2),
        "p3's partitions re-owned while it is stopped",
        || async { leases_of(&c, "p3").await.is_empty() },
    )
    .await;
    eprintln!(
        "[stop] p3's partitions re-owned {:?} after SIGSTOP",
        t_stop.elapsed()
    );
    // The fault under test: stay frozen for 3.5 lease TTLs in all.
    tokio::time::sleep_until((t_stop + Duration::from_millis(3 * LEASE_MS + LEASE_MS / 2)).into())
        .await;
    c.members[2].proc.cont();
    // p3 comes back and owns a share again, at new epochs.
    support::wait_until(
        Duration::from_secs(15),
        "p3 owns partitions again",
        || async { !leases_of(&c, "p3").await.is_empty() },
    )
    .await;
    let fenced = c
        .counter_of(&c.members[2], "tickshard_fenced_rejected_total")
        .await
        .unwrap()
        - fenced_before;
    // The fence at work: either p3 noticed on its own clock that its
    // leases lapsed (and logged each loss) before writing, or its late
    // writes were rejected by the fenced script (counted).
    let log = c.members[2].proc.log();
    let lost_logged = held_before.iter().all(|p| {
        log.lines()
            .any(|l| l.contains("lease lost") && l.contains(&format!("partition={p} ")))
    });
    eprintln!(
        "[stop] p3 held {} partitions; lost-lease logged for all: {lost_logged}; fenced writes rejected: {fenced}",
        held_before.len()
    );
    assert!(
        lost_logged || fenced > 0,
        "no sign of the fence: p3 neither logged losing {held_before:?} nor had a write rejected\n{log}"
    );
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 200_000);
}
