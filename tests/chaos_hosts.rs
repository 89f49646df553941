//! Chaos: processors on separate hosts. Each processor runs in a network
//! namespace of its own and reaches Redis and the feed only over its veth
//! link, as a machine of its own would over the network. One link goes
//! down mid-stream: that processor must stop acting as owner on its own
//! lease clock, be fenced when the link comes back, and the results stay
//! exact against the feed's ground truth.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::chaos::{feed_args, leases_of, listening_everywhere, Chaos, Via};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_on_another_host_whose_link_goes_down_is_fenced_and_results_stay_exact() {
    const LEASE_MS: u64 = 1000;
    let mut c = Chaos::new("hosts", LEASE_MS, listening_everywhere()).await;
    let on_own_host = Via {
        netns: true,
        ..Via::default()
    };
    c.add("p1", on_own_host).await;
    c.add("p2", on_own_host).await;
    let p3 = c.add("p3", on_own_host).await;
    c.wait_all_owned().await;
    c.start_feed(&feed_args("300000", "40000", "37"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    let held_before = leases_of(c.conn.clone(), &c.ns, "p3").await;
    assert!(!held_before.is_empty(), "p3 owned nothing before the cut");

    // The fault: p3's link goes down; its connections to Redis and to the
    // feed stay open, and nothing gets through either way.
    let t_cut = Instant::now();
    c.members[p3].netns.as_ref().unwrap().link_down();
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
        "[hosts] p3's partitions re-owned {:?} after its link went down",
        t_cut.elapsed()
    );
    // The link stays down for 3 lease TTLs in all (a duration, not a
    // synchronisation).
    tokio::time::sleep_until((t_cut + Duration::from_millis(3 * LEASE_MS)).into()).await;
    c.members[p3].netns.as_ref().unwrap().link_up();
    support::wait_until(
        Duration::from_secs(15),
        "p3 owns partitions again",
        || async { !leases_of(c.conn.clone(), &c.ns, "p3").await.is_empty() },
    )
    .await;
    // p3 stopped on its own lease clock or the fence refused its writes.
    c.assert_fenced(p3, &held_before).await;
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 300_000);
}
