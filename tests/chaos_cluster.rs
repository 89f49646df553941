//! tickshard on a real Redis Cluster of 3 masters and 3 replicas: real
//! `feed-sim`, real processor processes. Every scenario ends with each
//! symbol's stored state equal to the feed's ground truth and clean
//! ownership claims (see `support::chaos`).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::chaos::{feed_args, Chaos, Via, PARTITIONS};
use tickshard::keys::Keys;
use tickshard::redis_cluster::{RedisCluster, Role};
use tickshard::tick::PartitionId;

/// Lease TTL of these fleets: short, so failover is quick.
const LEASE_MS: u64 = 1000;

/// `n` processors on a fresh 3-master cluster, owning every partition.
async fn fleet_on_cluster(ns: &str, n: usize) -> Chaos {
    fleet_on_cluster_with(ns, n, LEASE_MS).await
}

/// As [`fleet_on_cluster`], with leases of `lease_ms`.
async fn fleet_on_cluster_with(ns: &str, n: usize, lease_ms: u64) -> Chaos {
    let mut c = Chaos::on_cluster(ns, lease_ms, 3).await;
    for i in 1..=n {
        c.add(&format!("p{i}"), Via::default()).await;
    }
    c.wait_all_owned().await;
    c
}

/// The masters holding at least one `{ns}:*:sym:*` key.
fn masters_with_state(cluster: &RedisCluster, ns: &str) -> BTreeSet<usize> {
    let pattern = Keys::new(ns).sym_pattern();
    cluster
        .masters()
        .unwrap()
        .into_iter()
        .filter(|&m| {
            let client = redis::Client::open(cluster.nodes()[m].url()).unwrap();
            let mut con = client.get_connection().unwrap();
            let (_, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(0)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(100_000)
                .query(&mut con)
                .unwrap();
            !found.is_empty()
        })
        .collect()
}

/// The shard channels with subscribers, over every master.
fn shard_channels(cluster: &RedisCluster) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for m in cluster.masters().unwrap() {
        let client = redis::Client::open(cluster.nodes()[m].url()).unwrap();
        let mut con = client.get_connection().unwrap();
        let names: Vec<String> = redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .query(&mut con)
            .unwrap();
        all.extend(names);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_on_three_masters_is_exact_with_state_on_every_master_and_shard_inboxes() {
    let mut c = fleet_on_cluster("rr", 3).await;
    let inboxes: BTreeSet<String> = ["p1", "p2", "p3"]
        .iter()
        .map(|id| format!("rr:inbox:{id}"))
        .collect();
    let channels = shard_channels(c.redis.cluster());
    assert!(
        inboxes.is_subset(&channels),
        "the inboxes {inboxes:?} are not all shard channels: {channels:?}"
    );
    c.start_feed(&feed_args("120000", "30000", "51"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    support::wait_until(
        Duration::from_secs(20),
        "state on all 3 masters",
        || async { masters_with_state(c.redis.cluster(), "rr").len() == 3 },
    )
    .await;
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 120_000);
}

/// Every partition whose lease slot master `m` serves, with that slot.
fn partitions_on(cluster: &RedisCluster, ns: &str, m: usize) -> Vec<(u16, PartitionId)> {
    let keys = Keys::new(ns);
    let mut on: Vec<(u16, PartitionId)> = (0..PARTITIONS)
        .map(|p| {
            let p = PartitionId(p);
            (cluster.slot_of(&keys.lease(p)).unwrap(), p)
        })
        .filter(|(slot, _)| cluster.master_of(*slot).unwrap() == Some(m))
        .collect();
    on.sort();
    on
}

/// Every partition's lease value (`{instance}:{epoch}`), read as soon as
/// the test's own connection answers again (after a failover it first has
/// to find the new topology).
async fn lease_values(c: &Chaos, ns: &str) -> Vec<Option<String>> {
    let keys = Keys::new(ns).all_leases(PARTITIONS);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.conn.mget(&keys).await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("reading the leases: {e}"),
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

/// Waits (blocking this worker, not the others) until the cluster serves
/// every slot again.
fn wait_cluster_ready(cluster: &RedisCluster, within: Duration) {
    tokio::task::block_in_place(|| cluster.wait_ready(within))
        .unwrap_or_else(|e| panic!("the cluster did not recover: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_master_and_of_a_processor_mid_stream_is_exact() {
    // The default lease (2 s): the failover (about 2.5 s) outlasts it.
    let mut c = fleet_on_cluster_with("mkill", 3, 2000).await;
    c.start_feed(&feed_args("200000", "30000", "53"));
    c.wait_ticks_in(40_000, Duration::from_secs(30)).await;
    let victim = c.redis.cluster().masters().unwrap()[0];
    let its_partitions = partitions_on(c.redis.cluster(), "mkill", victim);
    assert!(!its_partitions.is_empty());
    let theirs: BTreeSet<u32> = its_partitions.iter().map(|(_, p)| p.0).collect();
    let leases_before = lease_values(&c, "mkill").await;
    let t0 = Instant::now();
    c.redis.cluster_mut().node_mut(victim).unwrap().kill();
    // Its replica is promoted (cluster-node-timeout 1 s) and serves its slots.
    wait_cluster_ready(c.redis.cluster(), Duration::from_secs(30));
    let (slot, _) = its_partitions[0];
    let promoted = c.redis.cluster().master_of(slot).unwrap();
    assert!(promoted.is_some_and(|m| m != victim));
    eprintln!(
        "[mkill] master {victim} killed; replica {promoted:?} serves its {} partitions after {:?}",
        its_partitions.len(),
        t0.elapsed()
    );
    // How many of the other masters' partitions changed owner or epoch
    // meanwhile: measured, not asserted. Each master's part of a renewal
    // counts on its own, so none need to; on a quiet machine none did, on a
    // loaded one most did (see docs/GUARANTEES.md).
    let leases_after = lease_values(&c, "mkill").await;
    let healthy: Vec<usize> = (0..leases_before.len())
        .filter(|p| !theirs.contains(&(*p as u32)))
        .collect();
    let moved = healthy
        .iter()
        .filter(|&&p| leases_before[p] != leases_after[p])
        .count();
    eprintln!(
        "[mkill] {moved} of the other masters' {} partitions changed owner or epoch",
        healthy.len()
    );
    // And a processor dies too, while the stream goes on.
    c.kill9(1);
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_partition_resharded_mid_stream_is_exact() {
    let mut c = fleet_on_cluster("reshard", 3).await;
    c.start_feed(&feed_args("200000", "30000", "54"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    let cluster = c.redis.cluster();
    let masters = cluster.masters().unwrap();
    let (from, to) = (masters[0], masters[1]);
    let Role::Master(ranges) = cluster.role(&cluster.nodes()[from]).unwrap() else {
        panic!("node {from} is not a master");
    };
    // `reshard` moves the source's first slots: enough of them to take the
    // first partition's slot along.
    let first = ranges[0].0;
    let (slot, p) = partitions_on(cluster, "reshard", from)
        .into_iter()
        .find(|(slot, _)| *slot >= first && *slot <= ranges[0].1)
        .expect("a partition in the source's first slot range");
    let count = slot - first + 1;
    let t0 = Instant::now();
    tokio::task::block_in_place(|| cluster.reshard(from, to, count))
        .unwrap_or_else(|e| panic!("reshard: {e}"));
    assert_eq!(cluster.master_of(slot).unwrap(), Some(to));
    eprintln!(
        "[reshard] {count} slots (partition {p} in slot {slot}) moved from node {from} to {to} in {:?}",
        t0.elapsed()
    );
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_is_enough_to_find_the_cluster_and_every_program_says_it_runs_on_one() {
    let cluster = RedisCluster::start(3, 0)
        .unwrap_or_else(|e| panic!("this test needs redis-server and redis-cli: {e}"));
    // The last node's URL alone, not the seed list.
    let one = cluster.nodes()[2].url();
    let p = support::procs::Proc::spawn(
        "p1",
        support::fleet::tickshard_bin(),
        &[
            "processor",
            "--redis",
            &one,
            "--id",
            "p1",
            "--cluster",
            "found",
        ]
        .map(str::to_owned),
        &[("RUST_LOG", "info")],
    );
    support::wait_until(
        Duration::from_secs(20),
        "p1 owns every partition",
        || async {
            let conn = support::connect_url(&one).await.unwrap();
            support::chaos::leases_of(conn, "found", "p1").await.len() == PARTITIONS as usize
        },
    )
    .await;
    let log = p.log();
    let first_lines: String = log.lines().take(5).collect::<Vec<_>>().join("\n");
    assert!(
        first_lines.contains("deployment=Redis Cluster"),
        "the processor's first lines do not say it runs on a Redis Cluster:\n{log}"
    );
    let dash = support::procs::Proc::spawn(
        "dashboard",
        support::fleet::tickshard_bin(),
        &[
            "dashboard",
            "--redis",
            &one,
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            "found",
        ]
        .map(str::to_owned),
        &[("RUST_LOG", "info")],
    );
    support::wait_until(Duration::from_secs(10), "the dashboard says so", || async {
        dash.log().contains("deployment=Redis Cluster")
    })
    .await;
}

/// Every `{ns}:*:sym:*` hash's `last_seq` on one node (its own keys only).
fn last_seqs_on(node: &tickshard::redis_server::RedisServer, ns: &str) -> BTreeMap<String, u64> {
    let client = redis::Client::open(node.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let (_, names): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg(Keys::new(ns).sym_pattern())
        .arg("COUNT")
        .arg(1_000_000)
        .query(&mut con)
        .unwrap();
    names
        .into_iter()
        .map(|k| {
            let seq: Option<u64> = redis::cmd("HGET")
                .arg(&k)
                .arg("last_seq")
                .query(&mut con)
                .unwrap();
            (k, seq.unwrap_or(0))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_lost_in_a_failover_are_repaired_by_the_owners_next_flushes() {
    // One master and its replica. Leases of 10 s outlive the failover, so
    // the owners keep their partitions and their state in memory: only
    // their next flushes can repair what the failover lost.
    let mut c = Chaos::on_cluster("lost", 10_000, 1).await;
    c.add("p1", Via::default()).await;
    c.add("p2", Via::default()).await;
    c.wait_all_owned().await;
    c.start_feed(&feed_args("150000", "30000", "55"));
    c.wait_ticks_in(30_000, Duration::from_secs(30)).await;
    let master = c.redis.cluster().masters().unwrap()[0];
    let replica = 1 - master;
    // The replica stops taking the stream: from now on flushes reach the
    // master alone.
    c.redis.cluster().nodes()[replica].pause().unwrap();
    let applied = c.sum_counter("tickshard_applied_total").await;
    support::wait_until(
        Duration::from_secs(20),
        "20,000 more ticks applied while the replica is stopped",
        || async { c.sum_counter("tickshard_applied_total").await > applied + 20_000 },
    )
    .await;
    let on_master = last_seqs_on(&c.redis.cluster().nodes()[master], "lost");
    // The master dies with those flushes; its replica takes over without it.
    c.redis.cluster_mut().node_mut(master).unwrap().kill();
    c.redis.cluster().nodes()[replica].resume().unwrap();
    let t0 = Instant::now();
    let mut on_replica = redis::Client::open(c.redis.cluster().nodes()[replica].url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("TAKEOVER")
        .query(&mut on_replica)
        .unwrap();
    wait_cluster_ready(c.redis.cluster(), Duration::from_secs(30));
    let on_promoted = last_seqs_on(&c.redis.cluster().nodes()[replica], "lost");
    let behind = on_master
        .iter()
        .filter(|(k, seq)| on_promoted.get(*k).copied().unwrap_or(0) < **seq)
        .count();
    eprintln!(
        "[lost] replica promoted after {:?}; {behind} of {} symbols' flushes lost with the master",
        t0.elapsed(),
        on_master.len()
    );
    assert!(behind > 0, "no flush was lost: the scenario proves nothing");
    // The stream ends; the owners never lost a lease, so the repair came
    // from their own next flushes, not from a reload.
    c.wait_ticks_in(150_000, Duration::from_secs(60)).await;
    for i in 0..c.members.len() {
        let lost = c
            .counter_of(&c.members[i], "tickshard_leases_lost_total")
            .await;
        assert_eq!(lost, Some(0), "{} lost a lease", c.members[i].proc.name);
    }
    let truth = c.finish().await;
    assert_eq!(truth.ticks, 150_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_a_private_cluster_shows_every_instance_alive_and_every_partition_owned() {
    let demo = support::demo::Demo::start_with(3, 20_000, &["--redis-cluster"]).await;
    let mut ws = demo.ws().await;
    let ids: Vec<String> = ["p1", "p2", "p3"].map(str::to_owned).to_vec();
    // Alive means its `{ns}:stats` arrive; owners come from the leases.
    let snap = demo
        .frame_where(
            &mut ws,
            Duration::from_secs(60),
            "3 instances alive, every partition owned, ticks flowing",
            |s| {
                support::demo::alive_ids(s).len() == 3
                    && support::demo::all_owned_by(s, PARTITIONS as usize, &ids)
                    && s["ticks_per_s"].as_f64().is_some_and(|r| r > 0.0)
            },
        )
        .await;
    eprintln!("[demo] {}", support::demo::summary(&snap));
    assert!(
        demo.stderr().contains("private Redis Cluster started"),
        "{}",
        demo.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_cluster_is_joined_with_the_same_options() {
    const PASSWORD: &str = "cluster-secret-7";
    let cluster = RedisCluster::start(3, 0)
        .unwrap_or_else(|e| panic!("this test needs redis-server and redis-cli: {e}"));
    for node in cluster.nodes() {
        let mut con = redis::Client::open(node.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(PASSWORD)
            .query(&mut con)
            .unwrap();
    }
    let port = cluster.nodes()[0].port();
    // The password apart from the URL, as an operator would pass it.
    let p = support::procs::Proc::spawn(
        "p1",
        support::fleet::tickshard_bin(),
        &[
            "processor",
            "--redis",
            &format!("redis://127.0.0.1:{port}/"),
            "--id",
            "p1",
            "--cluster",
            "acl",
        ]
        .map(str::to_owned),
        &[("RUST_LOG", "info"), ("TICKSHARD_REDIS_PASSWORD", PASSWORD)],
    );
    let authed = format!("redis://:{PASSWORD}@127.0.0.1:{port}/");
    support::wait_until(
        Duration::from_secs(20),
        "p1 owns every partition",
        || async {
            let conn = support::connect_url(&authed).await.unwrap();
            support::chaos::leases_of(conn, "acl", "p1").await.len() == PARTITIONS as usize
        },
    )
    .await;
    let log = p.log();
    assert!(log.contains("deployment=Redis Cluster"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the password shows in the log:\n{log}"
    );
}
