//! The dashboard against a real redis-server and real WebSocket clients:
//! stats from two instances and the lease keys become one snapshot with the
//! contract's fields; garbage on the channels is counted and ignored; a
//! client that never reads does not slow the others; the page and the demo
//! hook are served.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use support::demo::http;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use tickshard::dashboard::{self, DashboardConfig, DemoAction, DemoControl, DemoFuture};
use tickshard::keys::Keys;
use tickshard::stats::{self, HotSymbol, Metrics, PublisherConfig};
use tickshard::tick::PartitionId;

const NS: &str = "dash";
const P: u32 = 8;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("ws connect");
    ws
}

/// Reads frames until one satisfies `pred`, or panics after `timeout`.
async fn frame_where(
    ws: &mut Ws,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    support::demo::frame_where(ws, timeout, what, pred, |last| {
        format!("last frame: {last:#}")
    })
    .await
}

/// Sets P, the members (heartbeat 60 s ahead) and the leases: even
/// partitions to p1 (epoch 3), odd ones to p2 (epoch 5).
async fn seed_cluster(conn: &mut tickshard::cluster::RedisConn, keys: &Keys) {
    let _: () = conn
        .hset_multiple(
            keys.config(),
            &[
                ("partitions", P.to_string()),
                ("lease_ms", "2000".into()),
                ("schema", tickshard::cluster::config::SCHEMA.into()),
            ],
        )
        .await
        .unwrap();
    let (secs, _): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    let expiry = secs * 1000 + 60_000;
    let _: () = conn.zadd(keys.members(), "p1", expiry).await.unwrap();
    let _: () = conn.zadd(keys.members(), "p2", expiry).await.unwrap();
    let _: () = conn
        .hset(
            keys.member(&"p1".parse().unwrap()),
            "http",
            "127.0.0.1:7001",
        )
        .await
        .unwrap();
    for p in 0..P {
        let v = if p % 2 == 0 { "p1:3" } else { "p2:5" };
        let _: () = conn.set(keys.lease(PartitionId(p)), v).await.unwrap();
    }
}

/// p2's stats, published by hand every 200 ms with growing counters.
fn spawn_manual_instance(
    url: String,
    keys: Keys,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let m = Metrics::new();
        let mut ts = tickshard::clock::now_ms();
        loop {
            m.counters.ticks_in.add(200);
            m.counters.forwarded_out.add(50);
            m.counters.applied.add(150);
            m.counters.duplicates.add(1);
            for v in [400u64, 500, 600, 700] {
                m.e2e_us.record_us(v);
            }
            m.forward_us.record_us(90);
            let hot = vec![HotSymbol {
                symbol: "MSFT".into(),
                count: m.counters.applied.get(),
                last_px: "412.1000".into(),
                vwap_px: "411.9000".into(),
                open: "411.0000".into(),
                high: "413.0000".into(),
                low: "410.5000".into(),
                close: "412.1000".into(),
            }];
            ts += 200;
            let s = stats::take_snapshot(&m, "p2", ts, 200, P / 2, hot);
            let _: i64 = conn.publish(keys.stats(), s.to_json()).await.unwrap();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    })
}

/// p1's stats through the real publisher, with a task recording samples.
fn spawn_published_instance(
    conn: tickshard::cluster::RedisConn,
    keys: Keys,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let metrics = Arc::new(Metrics::new());
    let mut config = PublisherConfig::new(keys, "p1");
    config.interval = Duration::from_millis(200);
    let source = Arc::new(stats::FnSource::new(|| P / 2, |_| Vec::new()));
    let m = metrics.clone();
    let s = stop.clone();
    let recorder = tokio::spawn(async move {
        while !s.is_cancelled() {
            m.counters.ticks_in.add(100);
            m.counters.applied.add(100);
            m.counters.gaps.inc();
            m.e2e_us.record_us(100);
            m.e2e_us.record_us(200);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let publisher = tokio::spawn(stats::run_publisher(conn, metrics, source, config, stop));
    vec![recorder, publisher]
}

async fn start_dashboard(
    url: &str,
    demo: Option<Arc<dyn DemoControl>>,
    shutdown: &CancellationToken,
) -> dashboard::Dashboard {
    let mut config = DashboardConfig::new(url, NS, "127.0.0.1:0".parse().unwrap());
    config.push_every = Duration::from_millis(100);
    config.poll_every = Duration::from_millis(200);
    config.ping_every = Duration::from_millis(100);
    if let Some(d) = demo {
        config = config.with_demo(d);
    }
    dashboard::start(config, shutdown.clone())
        .await
        .expect("dashboard starts")
}

fn instance<'a>(snap: &'a Value, id: &str) -> Option<&'a Value> {
    snap["instances"].as_array()?.iter().find(|i| i["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_merges_two_instances_and_survives_garbage_and_stuck_clients() {
    let redis = support::redis();
    let keys = Keys::new(NS);
    let mut conn = support::connect(&redis).await;
    seed_cluster(&mut conn, &keys).await;

    let stop = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let dash = start_dashboard(&redis.url(), None, &shutdown).await;
    let addr = dash.local_addr();

    let manager = support::connect(&redis).await;
    let mut tasks = spawn_published_instance(manager, keys.clone(), stop.clone());
    tasks.push(spawn_manual_instance(
        redis.url(),
        keys.clone(),
        stop.clone(),
    ));

    let mut ws = ws_connect(addr).await;
    let snap = frame_where(
        &mut ws,
        Duration::from_secs(10),
        "both instances with rates and latency",
        |s| {
            let ok = |id| {
                instance(s, id).is_some_and(|i| {
                    i["alive"] == true
                        && i["partitions"] == P / 2
                        && i["ticks_per_s"].as_f64() > Some(0.0)
                })
            };
            ok("p1")
                && ok("p2")
                && s["latency_us"]["count"].as_u64() > Some(20)
                && s["hot_symbols"].as_array().is_some_and(|h| !h.is_empty())
        },
    )
    .await;

    // The contract fields.
    assert_eq!(snap["type"], "snapshot");
    assert!(snap["ts_ms"].as_u64().unwrap() > 1_700_000_000_000);
    let parts: Vec<Value> = snap["partitions"].as_array().unwrap().clone();
    assert_eq!(parts.len(), P as usize);
    for (p, owner) in parts.iter().enumerate() {
        assert_eq!(owner, if p % 2 == 0 { "p1" } else { "p2" }, "partition {p}");
    }
    assert_eq!(snap["epochs"][0], 3);
    assert_eq!(snap["epochs"][1], 5);
    assert!(snap["ticks_per_s"].as_f64().unwrap() > 0.0);
    let inst = snap["instances"].as_array().unwrap();
    assert_eq!(inst.len(), 2);
    for f in [
        "id",
        "alive",
        "partitions",
        "ticks_per_s",
        "forwarded_per_s",
    ] {
        assert!(inst[0].get(f).is_some(), "instance field {f}");
    }
    assert!(
        instance(&snap, "p2").unwrap()["forwarded_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(instance(&snap, "p1").unwrap()["http"], "127.0.0.1:7001");
    // Merged latency: p1 records 100/200 µs, p2 400..700 µs, so the merged
    // p50 lies in p1's range (p1 records many more samples) and the max is p2's.
    let lat = &snap["latency_us"];
    for f in ["p50", "p90", "p99", "p999", "max"] {
        assert!(lat[f].as_u64().unwrap() > 0, "latency {f}");
    }
    assert!(lat["p50"].as_u64().unwrap() <= 200, "{lat}");
    assert!((700..=701).contains(&lat["max"].as_u64().unwrap()), "{lat}");
    assert!(snap["events"].is_array());
    assert!(snap["totals"]["gaps"].as_u64().unwrap() > 0);
    assert!(snap["totals"]["duplicates"].as_u64().unwrap() > 0);
    assert_eq!(snap["hot_symbols"][0]["symbol"], "MSFT");
    assert_eq!(snap["demo"], false);
    assert_eq!(snap["cluster"], NS);

    // An event moves a partition at once and lands in the log.
    let ev = r#"{"kind":"lease_acquired","ts_ms":1732400000000,"partition":0,"instance":"p2","epoch":4}"#;
    let _: () = conn.set(keys.lease(PartitionId(0)), "p2:4").await.unwrap();
    let _: i64 = conn.publish(keys.events(), ev).await.unwrap();
    let snap = frame_where(&mut ws, Duration::from_secs(5), "the lease event", |s| {
        s["partitions"][0] == "p2"
            && s["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "lease_acquired"))
    })
    .await;
    assert_eq!(snap["epochs"][0], 4);

    // Garbage and foreign messages on both channels: counted, ignored.
    let before = snap["dashboard"]["bad_messages"].as_u64().unwrap();
    for junk in [
        "",
        "garbage",
        "{}",
        r#"{"type":"stats","instance":"x"}"#,
        r#"{"type":"snapshot"}"#,
    ] {
        let _: i64 = conn.publish(keys.stats(), junk).await.unwrap();
        let _: i64 = conn.publish(keys.events(), junk).await.unwrap();
    }
    let _: i64 = conn
        .publish(
            keys.events(),
            r#"{"kind":"lease_lost","ts_ms":1,"instance":"p1"}"#,
        )
        .await
        .unwrap();
    let _: i64 = conn
        .publish(keys.stats(), vec![0xffu8, 0xfe, 0x00])
        .await
        .unwrap();
    let snap = frame_where(&mut ws, Duration::from_secs(5), "garbage counted", |s| {
        s["dashboard"]["bad_messages"].as_u64() >= Some(before + 12)
    })
    .await;
    assert_eq!(
        snap["instances"].as_array().unwrap().len(),
        2,
        "junk made no instance"
    );
    // Pinged every 100 ms all along: the session never dropped.
    let kinds: Vec<&str> = snap["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"redis_disconnected"), "{kinds:?}");
    assert!(kinds.contains(&"redis_connected"), "{kinds:?}");

    // A client that connects and never reads does not slow the others.
    let stuck = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut frames = 0;
    while started.elapsed() < Duration::from_secs(2) {
        if let Ok(Some(Ok(Message::Text(_)))) =
            tokio::time::timeout(Duration::from_secs(1), ws.next()).await
        {
            frames += 1;
        }
    }
    // Pushed every 100 ms: about 20 in 2 s; demand half of that.
    assert!(
        frames >= 10,
        "only {frames} frames in 2 s with a stuck client"
    );
    let snap = frame_where(&mut ws, Duration::from_secs(2), "two viewers", |s| {
        s["dashboard"]["connected_clients"] == 2
    })
    .await;
    assert!(snap["ticks_per_s"].as_f64().unwrap() > 0.0);
    drop(stuck);

    // The page, its assets and the plain JSON snapshot.
    let (status, body) = http(addr, "GET", "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>tickshard") && body.contains("app.js"));
    let (status, body) = http(addr, "GET", "/app.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("new WebSocket"));
    assert_eq!(http(addr, "GET", "/style.css").await.0, 200);
    let (status, body) = http(addr, "GET", "/api/snapshot").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["type"],
        "snapshot"
    );
    // No demo controller: the demo routes do not exist.
    assert_eq!(http(addr, "POST", "/api/demo/kill").await.0, 404);

    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), dash.wait())
        .await
        .expect("stops in time")
        .expect("clean stop");
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(DemoAction, Option<String>)>>);

impl DemoControl for Recorder {
    fn act(&self, action: DemoAction, instance: Option<String>) -> DemoFuture<'_> {
        Box::pin(async move {
            self.0.lock().unwrap().push((action, instance.clone()));
            match action {
                DemoAction::Stop => Err("nothing to stop".to_string()),
                _ => Ok(format!("{action:?} {}", instance.unwrap_or_default())),
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_controls_only_when_installed_and_reconnects_after_redis_restart() {
    let redis = support::redis();
    let shutdown = CancellationToken::new();
    let control = Arc::new(Recorder::default());
    let dash = start_dashboard(&redis.url(), Some(control.clone()), &shutdown).await;
    let addr = dash.local_addr();
    let mut ws = ws_connect(addr).await;
    let snap = frame_where(
        &mut ws,
        Duration::from_secs(5),
        "demo flag and redis up",
        |s| s["demo"] == true && s["dashboard"]["redis_connected"] == true,
    )
    .await;
    // No config yet: no partitions, no instances.
    assert_eq!(snap["partitions"].as_array().unwrap().len(), 0);

    let (status, body) = http(addr, "POST", "/api/demo/kill?instance=p2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ok"], true);
    assert_eq!(http(addr, "POST", "/api/demo/start").await.0, 200);
    assert_eq!(http(addr, "POST", "/api/demo/stop").await.0, 409);
    assert_eq!(http(addr, "POST", "/api/demo/explode").await.0, 404);
    assert_eq!(
        http(addr, "POST", "/api/demo/kill?instance=bad%20id")
            .await
            .0,
        400
    );
    assert_eq!(
        *control.0.lock().unwrap(),
        vec![
            (DemoAction::Kill, Some("p2".to_string())),
            (DemoAction::Start, None),
            (DemoAction::Stop, None)
        ]
    );

    // The pub/sub session survives a dropped connection: kill it from the
    // server side and a stats message published afterwards still arrives.
    let mut conn = support::connect(&redis).await;
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    frame_where(&mut ws, Duration::from_secs(5), "disconnect logged", |s| {
        s["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "redis_disconnected"))
    })
    .await;
    let keys = Keys::new(NS);
    let m = Metrics::new();
    support::wait_subscribers(&conn, &keys.stats(), 1, Duration::from_secs(10)).await;
    m.counters.ticks_in.add(1);
    let s = stats::take_snapshot(&m, "late", tickshard::clock::now_ms(), 1000, 0, vec![]);
    let _: i64 = conn.publish(keys.stats(), s.to_json()).await.unwrap();
    frame_where(
        &mut ws,
        Duration::from_secs(5),
        "stats after reconnect",
        |s| instance(s, "late").is_some(),
    )
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), dash.wait())
        .await
        .expect("stops in time")
        .expect("clean stop");
}
