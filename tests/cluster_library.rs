//! The cluster layer as a library, in-process against a real Redis:
//! messaging, request/reply, garbage handling, Redis loss and restart,
//! clean leave, and ids left behind by a dead incarnation.
// Helpers outside #[test] fns panic on failure too: this is test code.
#![allow(clippy::unwrap_used)]

mod support;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{connect, redis, redis_with, wait_until, RedisServer, RedisServerOptions};
use tickshard::cluster::keys::ClusterKeys;
use tickshard::cluster::{
    Cluster, ClusterChannels, ClusterError, ClusterEvent, ClusterHandle, ClusterOptions,
    FencedScript, FencedWrite, InboxMessage, OwnershipChange, RequestError, WriteOutcome,
};
use tickshard::tick::{Epoch, InstanceId, PartitionId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The keys of the test cluster's namespace.
fn lib() -> ClusterKeys {
    ClusterKeys::new("lib")
}

/// The registered members (`ZRANGE {ns}:{cluster}:members 0 -1`).
async fn registered<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
) -> redis::RedisResult<Vec<String>> {
    redis::cmd("ZRANGE")
        .arg(lib().members())
        .arg(0)
        .arg(-1)
        .query_async(con)
        .await
}

const P: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Acquired(u32, u64),
    Lost(u32, u64),
    Released(u32, u64),
}

struct Node {
    handle: ClusterHandle,
    shutdown: CancellationToken,
    run: tokio::task::JoinHandle<Result<(), ClusterError>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    inbox: mpsc::Receiver<InboxMessage>,
}

fn options(server: &RedisServer, id: &str, lease_ms: u64) -> ClusterOptions {
    ClusterOptions {
        redis: server.url().into(),
        keys: lib(),
        instance: id.parse().unwrap(),
        partitions: NonZeroU32::new(P).unwrap(),
        lease: Duration::from_millis(lease_ms),
        http_addr: Some(format!("127.0.0.1:{}", 1000 + id.len())),
        allow_eviction: false,
    }
}

async fn start(server: &RedisServer, id: &str, lease_ms: u64) -> Node {
    start_with(server, id, lease_ms, true).await
}

/// `ack_releases: false` plays a data path that never finishes a flush.
async fn start_with(server: &RedisServer, id: &str, lease_ms: u64, ack_releases: bool) -> Node {
    let (handle, runtime, channels) = Cluster::join(options(server, id, lease_ms)).await.unwrap();
    let ClusterChannels {
        mut ownership,
        inbox,
        mut requests,
    } = channels;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let view = handle.clone();
    tokio::spawn(async move {
        let mut stuck = Vec::new();
        while let Some(c) = ownership.recv().await {
            let s = match c {
                OwnershipChange::Acquired { partition, epoch } => {
                    Seen::Acquired(partition.0, epoch.0)
                }
                OwnershipChange::Lost { partition, epoch } => {
                    // The view stopped showing it as ours before this was sent.
                    assert_eq!(view.view().owned_epoch(partition, Instant::now()), None);
                    Seen::Lost(partition.0, epoch.0)
                }
                OwnershipChange::Release {
                    partition,
                    epoch,
                    done,
                } => {
                    assert_eq!(view.view().owned_epoch(partition, Instant::now()), None);
                    if ack_releases {
                        let _ = done.send(());
                    } else {
                        stuck.push(done);
                    }
                    Seen::Released(partition.0, epoch.0)
                }
            };
            log.lock().unwrap().push(s);
        }
    });
    tokio::spawn(async move {
        while let Some(r) = requests.recv().await {
            let mut answer = b"echo:".to_vec();
            answer.extend_from_slice(&r.payload);
            r.reply(Bytes::from(answer)).await.unwrap();
        }
    });
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(runtime.run(shutdown.clone()));
    Node {
        handle,
        shutdown,
        run,
        seen,
        inbox,
    }
}

fn owned(n: &Node) -> usize {
    n.handle.view().owned_count(Instant::now())
}

async fn all_owned_by(nodes: &[&Node]) -> bool {
    let total: usize = nodes.iter().map(|n| owned(n)).sum();
    total == P as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_partitions_and_talk() {
    let server = redis();
    let mut events_seen;
    let a = start(&server, "a", 600).await;
    events_seen = a.handle.events();
    let mut b = start(&server, "b", 600).await;
    wait_until(
        Duration::from_secs(3),
        "a and b split the partitions",
        || async { all_owned_by(&[&a, &b]).await && owned(&a) == 4 && owned(&b) == 4 },
    )
    .await;
    // Views agree: what a thinks b owns, b owns.
    wait_until(Duration::from_secs(2), "a's view of b matches b", || async {
        let va = a.handle.view();
        let vb = b.handle.view();
        (0..P).all(|p| {
            let p = PartitionId(p);
            match vb.owned_epoch(p, Instant::now()) {
                Some(e) => matches!(va.owner(p), tickshard::cluster::PartitionOwner::Other { instance, epoch } if instance.as_str() == "b" && *epoch == e),
                None => true,
            }
        })
    })
    .await;
    let members = a.handle.members();
    assert_eq!(
        members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(members.iter().all(|m| m.http.is_some()));

    // Data messages.
    let to_b: InstanceId = "b".parse().unwrap();
    assert_eq!(
        a.handle
            .send(&to_b, 2, Bytes::from_static(b"ticks"))
            .await
            .unwrap(),
        1
    );
    let m = tokio::time::timeout(Duration::from_secs(2), b.inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.from.as_str(), m.hops, &m.payload[..]),
        ("a", 2, &b"ticks"[..])
    );
    assert!(m.sent_ns > 0);

    // Request/reply, unreachable and timeout.
    let r = a
        .handle
        .request(&to_b, Bytes::from_static(b"hi"), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(&r[..], b"echo:hi");
    let ghost: InstanceId = "ghost".parse().unwrap();
    let ask_ghost = |timeout| a.handle.request(&ghost, Bytes::new(), timeout);
    let e = ask_ghost(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(e, RequestError::Unreachable { .. }), "{e}");
    // A listener that never answers: a raw subscriber on ghost's inbox (a
    // shard channel).
    let (pushes, _heard) = tokio::sync::mpsc::unbounded_channel();
    let mut silent = tickshard::cluster::RedisConn::connect_subscriber(
        &tickshard::redis_conn::RedisConfig::new(server.url()),
        &Default::default(),
        pushes,
    )
    .await
    .unwrap();
    silent.ssubscribe(&lib().inbox(&ghost)).await.unwrap();
    let e = ask_ghost(Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(e, RequestError::Timeout { .. }), "{e}");

    // Events arrive as typed values.
    let ev = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(ClusterEvent::LeaseAcquired { instance, .. }) = events_seen.recv().await {
                if instance.as_str() == "b" {
                    return;
                }
            }
        }
    })
    .await;
    assert!(ev.is_ok(), "a saw b's lease_acquired events");

    // Clean leave: b's partitions go to a at once, and b says so.
    b.shutdown.cancel();
    b.run.await.unwrap().unwrap();
    let released = b
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| matches!(s, Seen::Released(..)))
        .count();
    assert_eq!(released, 4);
    wait_until(
        Duration::from_millis(500),
        "a owns everything after b left",
        || async { owned(&a) == P as usize },
    )
    .await;
    assert_eq!(b.handle.metrics().leases_released, 4);
    a.shutdown.cancel();
    a.run.await.unwrap().unwrap();
    let mut con = connect(&server).await;
    let members = registered(&mut con).await.unwrap();
    assert!(members.is_empty(), "both left: {members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_inbox_and_events_is_counted_and_ignored() {
    let server = redis();
    let mut a = start(&server, "a", 600).await;
    wait_until(Duration::from_secs(3), "a owns everything", || async {
        owned(&a) == P as usize
    })
    .await;
    let mut con = connect(&server).await;
    for junk in [
        &b""[..],
        b"hello",
        b"TS\x09\x01",
        b"{\"kind\":\"lease_acquired\"}",
        &[0xff; 40],
    ] {
        // The inbox is a shard channel, the events a cluster-wide one.
        for (verb, channel) in [
            ("SPUBLISH", lib().inbox(&"a".parse().unwrap())),
            ("PUBLISH", lib().events()),
        ] {
            let _: i64 = redis::cmd(verb)
                .arg(channel)
                .arg(junk)
                .query_async(&mut con)
                .await
                .unwrap();
        }
    }
    // A known kind without its fields is garbage; a kind this version does
    // not know (from a newer instance) is ignored, not counted.
    for event in [
        r#"{"kind":"lease_lost","ts_ms":1}"#,
        r#"{"kind":"party","ts_ms":1}"#,
    ] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(lib().events())
            .arg(event)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(2), "garbage counted", || async {
        let m = a.handle.metrics();
        m.bad_inbox_messages == 5 && m.bad_events == 6
    })
    .await;
    // Still working: a real message gets through, and nothing was lost.
    let me: InstanceId = "a".parse().unwrap();
    a.handle
        .send(&me, 0, Bytes::from_static(b"ok"))
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(2), a.inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&m.payload[..], b"ok");
    assert_eq!(owned(&a), P as usize);
    assert_eq!(a.handle.metrics().leases_lost, 0);
    assert_eq!(
        a.handle.metrics().bad_events,
        6,
        "the unknown kind was not counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_drops_leases_locally_and_rejoins_after_a_restart() {
    let mut server = redis();
    let a = start(&server, "a", 600).await;
    wait_until(Duration::from_secs(3), "a owns everything", || async {
        owned(&a) == P as usize
    })
    .await;
    let first_epochs: Vec<Epoch> = (0..P)
        .map(|p| {
            a.handle
                .view()
                .owned_epoch(PartitionId(p), Instant::now())
                .unwrap()
        })
        .collect();

    // Frozen Redis: leases lapse on the local clock, before Redis expires them.
    server.pause().unwrap();
    let t0 = Instant::now();
    // No renew can succeed from here on, and every lease's local validity
    // ends before Redis could expire it (at the earliest t0 + TTL).
    let view = a.handle.view();
    for p in 0..P {
        match view.owner(PartitionId(p)) {
            tickshard::cluster::PartitionOwner::Me { valid_until, .. } => {
                assert!(
                    *valid_until < t0 + Duration::from_millis(600),
                    "partition {p} valid too long"
                );
            }
            other => panic!("partition {p}: {other:?}"),
        }
    }
    wait_until(Duration::from_secs(3), "leases dropped locally", || async {
        owned(&a) == 0
    })
    .await;
    eprintln!(
        "Redis paused: all leases dropped after {:?} (TTL 600 ms)",
        t0.elapsed()
    );
    wait_until(
        Duration::from_secs(2),
        "Lost delivered for every partition",
        || async {
            a.seen
                .lock()
                .unwrap()
                .iter()
                .filter(|s| matches!(s, Seen::Lost(..)))
                .count()
                == P as usize
        },
    )
    .await;
    server.resume().unwrap();
    wait_until(
        Duration::from_secs(5),
        "a owns everything again",
        || async { owned(&a) == P as usize },
    )
    .await;
    for p in 0..P {
        let e = a
            .handle
            .view()
            .owned_epoch(PartitionId(p), Instant::now())
            .unwrap();
        assert!(
            e > first_epochs[p as usize],
            "epoch went from {} to {e}",
            first_epochs[p as usize]
        );
    }

    // A restart without persistence loses every key: a re-registers and
    // acquires afresh (epochs restart; the data they fenced is gone too).
    server.kill();
    server.restart().unwrap();
    wait_until(
        Duration::from_secs(8),
        "a re-registered and owns everything",
        || async {
            let Ok(client) = redis::Client::open(server.url()) else {
                return false;
            };
            let Ok(mut con) = client.get_multiplexed_async_connection().await else {
                return false;
            };
            let members = registered(&mut con).await.unwrap_or_default();
            let config: Option<String> = redis::cmd("HGET")
                .arg(lib().config())
                .arg("partitions")
                .query_async(&mut con)
                .await
                .unwrap_or(None);
            members == ["a"] && config.as_deref() == Some("8") && owned(&a) == P as usize
        },
    )
    .await;
    let m = a.handle.metrics();
    assert!(
        m.leases_lost >= 2 * P as u64 && m.renew_failures > 0,
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_left_by_a_dead_incarnation_is_waited_out() {
    let server = redis();
    let a = start(&server, "a", 600).await;
    wait_until(Duration::from_secs(3), "a owns everything", || async {
        owned(&a) == P as usize
    })
    .await;
    // Crash: the runtime stops without leaving or releasing.
    a.run.abort();
    let _ = a.run.await;
    let t0 = Instant::now();
    let again = start(&server, "a", 600).await;
    eprintln!(
        "the dead incarnation's id was reusable after {:?}",
        t0.elapsed()
    );
    wait_until(
        Duration::from_secs(3),
        "the new incarnation owns everything",
        || async { owned(&again) == P as usize },
    )
    .await;

    // Mismatched partition counts are refused, naming both.
    let mut bad = options(&server, "b", 600);
    bad.partitions = NonZeroU32::new(P + 1).unwrap();
    let e = Cluster::join(bad).await.unwrap_err();
    assert!(
        matches!(
            e,
            ClusterError::PartitionMismatch {
                configured: 8,
                requested: 9,
                ..
            }
        ),
        "{e}"
    );
    // A live duplicate is refused.
    let e = Cluster::join(options(&server, "a", 600)).await.unwrap_err();
    assert!(matches!(e, ClusterError::DuplicateInstance { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_without_ack_is_released_after_a_bounded_wait() {
    let server = redis();
    let a = start_with(&server, "a", 600, false).await;
    wait_until(Duration::from_secs(3), "a owns everything", || async {
        owned(&a) == P as usize
    })
    .await;
    let b = start(&server, "b", 600).await;
    let t0 = Instant::now();
    // a never acks; it releases anyway after its bounded wait (TTL/3).
    wait_until(Duration::from_secs(3), "b gets its half", || async {
        owned(&b) == 4 && owned(&a) == 4
    })
    .await;
    eprintln!("unacked handover completed after {:?}", t0.elapsed());
    assert_eq!(a.handle.metrics().handover_ack_timeouts, 4);
    assert_eq!(a.handle.metrics().leases_released, 4);
    assert_eq!(a.handle.metrics().leases_lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_every_live_instance_including_the_sender() {
    let server = redis();
    let a = start(&server, "a", 2000).await;
    let b = start(&server, "b", 2000).await;
    let mut at_a = a.handle.broadcasts();
    let mut at_b = b.handle.broadcasts();
    let mut con = connect(&server).await;
    support::wait_subscribers(&con, &lib().broadcast(), 2, Duration::from_secs(5)).await;
    let reached = a
        .handle
        .broadcast(Bytes::from_static(b"hello all"))
        .await
        .unwrap();
    assert_eq!(reached, 2);
    for rx in [&mut at_a, &mut at_b] {
        let m = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.from.as_str(), &m.payload[..]), ("a", &b"hello all"[..]));
    }
    // Something that is not a broadcast envelope on the channel: counted,
    // ignored, and the next broadcast still arrives.
    let _: i64 = redis::cmd("PUBLISH")
        .arg(lib().broadcast())
        .arg(&b"junk"[..])
        .query_async(&mut con)
        .await
        .unwrap();
    b.handle.broadcast(Bytes::from_static(b"2")).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(2), at_a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.from.as_str(), &m.payload[..]), ("b", &b"2"[..]));
    wait_until(Duration::from_secs(2), "the junk is counted", || async {
        a.handle.metrics().bad_inbox_messages >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_write_runs_once_per_id_and_only_for_the_owner() {
    let server = redis();
    let a = start(&server, "a", 2000).await;
    let p = PartitionId(3);
    let epoch = tickshard_testkit::wait_for(Duration::from_secs(10), "a owns p3", || {
        let e = a.handle.view().owned_epoch(p, Instant::now());
        async move { e }
    })
    .await;
    let add = FencedScript::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let total = lib().named("total:3");
    let write = |id: &'static str, epoch: Epoch, amount: &str| FencedWrite {
        partition: p,
        epoch,
        id: Some(id),
        retention: None,
        keys: vec![total.clone()],
        args: vec![amount.as_bytes().to_vec()],
    };
    let run = |w: FencedWrite<'static>| {
        let (h, add) = (a.handle.clone(), add.clone());
        async move { h.fenced_write(&add, &w).await.unwrap() }
    };
    assert_eq!(
        run(write("r1", epoch, "5")).await,
        WriteOutcome::Applied(Bytes::from_static(b"5"))
    );
    assert_eq!(
        run(write("r1", epoch, "5")).await,
        WriteOutcome::Duplicate(Bytes::from_static(b"5")),
        "the same id again changes nothing"
    );
    assert_eq!(
        run(write("r2", epoch, "2")).await,
        WriteOutcome::Applied(Bytes::from_static(b"7"))
    );
    assert_eq!(
        run(write("r3", Epoch(epoch.0 + 1), "100")).await,
        WriteOutcome::NotOwner,
        "a write at an epoch we do not hold is refused"
    );
    let mut con = connect(&server).await;
    let stored: i64 = redis::cmd("GET")
        .arg(&total)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stored, 7);

    // Large integers are recorded in full (Lua would print 1e+14).
    assert_eq!(
        run(write("r4", epoch, "100000000000000")).await,
        WriteOutcome::Applied(Bytes::from_static(b"100000000000007"))
    );
    // A refusal is an outcome of its own and is not recorded: the same id
    // runs again once the body accepts it.
    let guarded = FencedScript::new(
        "if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative amount') end
         return redis.call('INCRBY', KEYS[1], ARGV[1])",
    );
    let guarded_run = |w: FencedWrite<'static>| {
        let (h, s) = (a.handle.clone(), guarded.clone());
        async move { h.fenced_write(&s, &w).await.unwrap() }
    };
    assert_eq!(
        guarded_run(write("r5", epoch, "-1")).await,
        WriteOutcome::Refused("negative amount".into())
    );
    assert_eq!(
        guarded_run(write("r5", epoch, "1")).await,
        WriteOutcome::Applied(Bytes::from_static(b"100000000000008"))
    );
    // A body that returns something other than a string or an integer is
    // an error, not a recorded success.
    let bad = FencedScript::new("return {1, 2}");
    let err = a.handle.fenced_write(&bad, &write("r6", epoch, "1")).await;
    assert!(err.is_err(), "{err:?}");
}

/// `INFO replication` of `server`.
async fn replication(server: &RedisServer) -> String {
    redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut connect(server).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_the_replicas_do_not_confirm_is_given_back_and_never_acted_on() {
    let master = redis();
    let replica = redis_with(RedisServerOptions {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port().to_string(),
        ],
        ..Default::default()
    });
    wait_until(
        Duration::from_secs(10),
        "the replica is in sync",
        || async {
            // Online on the master's side too: it puts a replica online
            // at its first acknowledgement after the copy.
            replication(&replica)
                .await
                .contains("master_link_status:up")
                && replication(&master).await.contains("state=online")
        },
    )
    .await;
    // A stopped replica stays connected but acknowledges nothing: no lease
    // can be confirmed.
    // Every event on partition 0's lease key: a lease set with its TTL is
    // an `expire`, one given back a `del`, one left to lapse an `expired`.
    let mut con = connect(&master).await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "notify-keyspace-events", "Kgx"])
        .query_async(&mut con)
        .await
        .unwrap();
    let client = redis::Client::open(master.url()).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe(format!("__keyspace@0__:{}", lib().lease(PartitionId(0))))
        .await
        .unwrap();
    let mut lease_events = ps.into_on_message();

    replica.pause().unwrap();
    let a = start(&master, "a", 1000).await;
    wait_until(
        Duration::from_secs(20),
        "two rounds of acquisitions are not confirmed",
        || async { a.handle.metrics().acquisitions_unconfirmed >= 2 * P as u64 },
    )
    .await;
    assert!(
        a.seen.lock().unwrap().is_empty(),
        "an unconfirmed lease reached the data path: {:?}",
        a.seen.lock().unwrap()
    );
    assert_eq!(owned(&a), 0);
    // Given back, not left to lapse: the first lease on partition 0 is
    // deleted, not expired.
    let mut events = Vec::new();
    while events.len() < 2 {
        let msg = tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut lease_events),
        )
        .await
        .unwrap()
        .unwrap();
        events.push(msg.get_payload::<String>().unwrap());
    }
    assert_eq!(events, ["expire", "del"], "partition 0's lease: {events:?}");

    replica.resume().unwrap();
    wait_until(
        Duration::from_secs(10),
        "a owns every partition",
        || async { all_owned_by(&[&a]).await },
    )
    .await;
    // What a acts on is on the replica too: every lease and its epoch.
    let mut on_replica = connect(&replica).await;
    for p in 0..P {
        let p = PartitionId(p);
        let Some(epoch) = a.handle.view().owned_epoch(p, Instant::now()) else {
            continue;
        };
        let lease: Option<String> = redis::cmd("GET")
            .arg(lib().lease(p))
            .query_async(&mut on_replica)
            .await
            .unwrap();
        let stored: u64 = redis::cmd("GET")
            .arg(lib().epoch(p))
            .query_async(&mut on_replica)
            .await
            .unwrap();
        assert_eq!(lease, Some(format!("a:{}", epoch.0)));
        assert!(stored >= epoch.0);
    }
    a.shutdown.cancel();
    a.run.await.unwrap().unwrap();
}
