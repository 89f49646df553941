//! The real `tickshard demo` end to end: three processors fed by the S&P
//! 500 universe show up on the dashboard's WebSocket with all partitions
//! owned, throughput and latency; the page's buttons kill, start and stop
//! processors and the partitions move; Ctrl-C (SIGINT) stops everything,
//! leaving no child process and no temporary directory behind. A viewer
//! that never reads slows nobody.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::demo::{
    alive_ids, all_owned_by, children_of, is_gone, still_running, stuck_client, tcp_send_queue,
    Demo,
};

const P: usize = 64;
/// Failover takes about one lease TTL (2 s) plus the orphan grace period;
/// generous room for a loaded 2-core machine.
const MOVE_DEADLINE: Duration = Duration::from_secs(25);

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_fails_over_scales_and_stops_cleanly_on_ctrl_c() {
    let started = Instant::now();
    let mut demo = Demo::start(3, 20_000).await;
    let mut ws = demo.ws().await;

    // Three instances alive, every partition owned by one of them, ticks
    // flowing and latency percentiles from the merged histograms.
    let snap = demo
        .frame_where(
            &mut ws,
            Duration::from_secs(30),
            "3 alive instances owning all 64 partitions, with throughput and latency",
            |s| {
                let alive = alive_ids(s);
                alive.len() == 3
                    && all_owned_by(s, P, &alive)
                    && s["ticks_per_s"].as_f64() > Some(0.0)
                    && s["latency_us"]["count"].as_u64() > Some(0)
            },
        )
        .await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(alive_ids(&snap), ids(&["p1", "p2", "p3"]));
    assert_eq!(snap["demo"], true, "the demo enables the page's buttons");
    let lat = &snap["latency_us"];
    for f in ["p50", "p90", "p99", "p999", "max"] {
        assert!(lat[f].as_u64().is_some_and(|v| v > 0), "latency {f}: {lat}");
    }
    let (p50, p99, max) = (
        lat["p50"].as_u64().unwrap(),
        lat["p99"].as_u64().unwrap(),
        lat["max"].as_u64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= max, "percentiles ordered: {lat}");
    let owned: u64 = snap["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["partitions"].as_u64().unwrap())
        .sum();
    assert_eq!(owned, P as u64, "instance rows add up to P");
    // The demo trades the real S&P 500 universe by default: any processor
    // answers for AAPL with its owner's state.
    let http: std::net::SocketAddr = snap["instances"][0]["http"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    support::wait_until(
        Duration::from_secs(20),
        "AAPL traded and stored",
        || async {
            let (status, body) = support::demo::http(http, "GET", "/api/symbols/AAPL").await;
            status == 200 && body.contains(r#""symbol":"AAPL""#)
        },
    )
    .await;
    let demo_children = children_of(demo.pid);
    let names: Vec<&str> = demo_children.iter().map(|c| c.comm.as_str()).collect();
    assert!(
        demo_children.len() >= 5,
        "redis-server, feed-sim and 3 processors: {names:?}"
    );

    // A viewer that never reads (with a tiny receive window) costs the
    // others nothing: frames keep coming every 250 ms, and the failover
    // below is watched with it connected.
    let stuck = stuck_client(demo.addr).await;
    let window = Instant::now();
    let mut frames = 0;
    while window.elapsed() < Duration::from_secs(2) {
        if let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
            frames += 1;
        }
    }
    assert!(
        frames >= 4,
        "only {frames} frames in 2 s beside a stuck viewer"
    );

    // Kill -9 p2 as the page's button does: it goes, the others take its
    // partitions.
    let (status, body) = demo.press("kill", Some("p2")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    let snap = demo
        .frame_where(
            &mut ws,
            MOVE_DEADLINE,
            "p2 gone, p1+p3 own everything",
            |s| is_gone(s, "p2") && all_owned_by(s, P, &ids(&["p1", "p3"])),
        )
        .await;
    assert!(snap["ticks_per_s"].as_f64() > Some(0.0));
    // Killing it again is refused: it no longer runs.
    assert_eq!(demo.press("kill", Some("p2")).await.0, 409);

    // Start one more: p4 joins and gets a share.
    let (status, body) = demo.press("start", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("p4")),
        "{body}"
    );
    demo.frame_where(
        &mut ws,
        MOVE_DEADLINE,
        "p4 alive and owning partitions",
        |s| {
            let alive = alive_ids(s);
            alive == ids(&["p1", "p3", "p4"])
                && all_owned_by(s, P, &alive)
                && s["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["id"] == "p4" && i["partitions"].as_u64() > Some(0))
        },
    )
    .await;

    // Stop p1 gracefully: it hands its partitions over.
    let (status, body) = demo.press("stop", Some("p1")).await;
    assert_eq!(status, 200, "{body}");
    demo.frame_where(
        &mut ws,
        MOVE_DEADLINE,
        "p1 gone, p3+p4 own everything",
        |s| is_gone(s, "p1") && all_owned_by(s, P, &ids(&["p3", "p4"])),
    )
    .await;
    // All of the above was seen with the stuck viewer still connected and
    // a backlog of unread frames piling up for it in the kernel. (It is cut
    // off once a send blocks for the 5 s send timeout; on loopback the
    // kernel grows the send buffer to megabytes first, which takes longer
    // than this test runs.)
    demo.frame_where(&mut ws, Duration::from_secs(5), "two viewers", |s| {
        s["dashboard"]["connected_clients"] == 2
    })
    .await;
    let stuck_local = stuck.get_ref().local_addr().unwrap();
    let backlog = tcp_send_queue(demo.addr, stuck_local);
    assert!(
        backlog.is_some_and(|b| b > 64 * 1024),
        "unread frames queued for the stuck viewer: {backlog:?} bytes"
    );
    drop(stuck);
    drop(ws);

    // Ctrl-C: exit 0, every child gone, the temp directory removed.
    let children = children_of(demo.pid);
    let names: Vec<&str> = children.iter().map(|c| c.comm.as_str()).collect();
    assert!(
        children.len() >= 4,
        "redis-server, feed-sim, p3 and p4 still running before Ctrl-C: {names:?}"
    );
    assert!(
        demo.logs.is_dir(),
        "{} exists while running",
        demo.logs.display()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(demo.pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), demo.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the demo did not exit within 20 s of SIGINT\n{}",
                demo.stderr()
            )
        })
        .unwrap();
    assert!(status.success(), "exit {status}\n{}", demo.stderr());
    let left: Vec<_> = children
        .iter()
        .chain(&demo_children)
        .filter(|c| still_running(c))
        .collect();
    assert!(left.is_empty(), "left running after the demo: {left:?}");
    assert!(
        !demo.logs.exists(),
        "{} left behind after the demo",
        demo.logs.display()
    );
    let log = demo.stderr();
    assert!(log.contains("demo stopped"), "{log}");
    println!("demo lifecycle took {:?}", started.elapsed());
}
