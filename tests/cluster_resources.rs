//! The cluster crate's own use case, end to end: three instances of
//! `examples/resources.rs` against a real Redis, thousands of requests sent
//! concurrently to random instances (some twice, to different instances;
//! failures retried with the same request id), and an owner SIGKILLed
//! midway and restarted. Every total, read from every instance, equals the
//! sum over distinct request ids. A broadcast then reaches all three; bad
//! input gets 400.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::fleet::{http_get, http_post};
use support::procs::Proc;
use support::{wait_for, wait_until};

const RESOURCES: usize = 24;
const REQUESTS: usize = 3000;
const CONCURRENCY: usize = 24;

fn resources_bin() -> PathBuf {
    support::fleet::example_bin("resources")
}

/// Starts instance `id` on a free port; its process and address.
async fn spawn(redis: &str, id: &str) -> (Proc, String) {
    let port = tickshard::redis_server::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    (spawn_at(redis, id, &addr).await, addr)
}

/// Starts instance `id` listening on `addr` and waits until it serves.
async fn spawn_at(redis: &str, id: &str, addr: &str) -> Proc {
    let args: Vec<String> = [
        "--redis",
        redis,
        "--id",
        id,
        "--listen",
        addr,
        "--lease-ms",
        "1500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let p = Proc::spawn(id, resources_bin(), &args, &[("RUST_LOG", "info")]);
    p.wait_log("http listening", Duration::from_secs(15)).await;
    p
}

/// One request: resource, request id, amount.
#[derive(Debug, Clone)]
struct Req {
    resource: String,
    request_id: String,
    amount: i64,
}

/// Sends `req` to random instances until one answers 200 (a request id may
/// be sent any number of times); returns how many sends it took.
async fn send_until_applied(addrs: &[String], req: &Req, seed: u64) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let body = format!(
        r#"{{"request_id":"{}","amount":{}}}"#,
        req.request_id, req.amount
    );
    let path = format!("/resources/{}", req.resource);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for attempt in 1.. {
        let addr = &addrs[rng.random_range(0..addrs.len())];
        if let Some((200, answer)) = http_post(addr, &path, &body).await {
            let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(v["id"], req.resource.as_str(), "{answer}");
            assert!(v["total"].is_i64() && v["owner"].is_string() && v["via"].is_string());
            return attempt;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{req:?} not applied within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_applied_once_through_any_instance_across_an_owner_crash() {
    let redis = support::redis();
    let url = redis.url();
    let (a, addr_a) = spawn(&url, "a").await;
    let (mut b, addr_b) = spawn(&url, "b").await;
    let (c, addr_c) = spawn(&url, "c").await;
    let addrs = Arc::new(vec![addr_a.clone(), addr_b.clone(), addr_c.clone()]);

    // The workload, fixed by a seed: unique request ids, some resent.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let reqs: Vec<Req> = (0..REQUESTS)
        .map(|i| Req {
            resource: format!("res-{}", rng.random_range(0..RESOURCES)),
            request_id: format!("req-{i}"),
            amount: rng.random_range(-50..=100),
        })
        .collect();
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for r in &reqs {
        *want.entry(r.resource.clone()).or_default() += r.amount;
    }

    // Concurrent senders over a shared queue; every 10th request goes out
    // twice (to independently chosen instances).
    let next = Arc::new(AtomicUsize::new(0));
    let reqs = Arc::new(reqs);
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let (next, reqs, addrs) = (next.clone(), reqs.clone(), addrs.clone());
        workers.push(tokio::spawn(async move {
            let mut sends = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = reqs.get(i) else {
                    return sends;
                };
                let seed = (w * REQUESTS + i) as u64;
                sends += send_until_applied(&addrs, r, seed).await;
                if i % 10 == 0 {
                    sends += send_until_applied(&addrs, r, seed + 1).await;
                }
            }
        }));
    }

    // Midway, SIGKILL b (an owner of about a third of the partitions) and
    // restart it under the same id.
    wait_until(
        Duration::from_secs(60),
        "a third of the requests done",
        || {
            let done = next.load(Ordering::Relaxed);
            async move { done >= REQUESTS / 3 }
        },
    )
    .await;
    b.kill9();
    b.wait_exit(Duration::from_secs(5));
    let at_kill = next.load(Ordering::Relaxed);
    assert!(
        at_kill < REQUESTS,
        "the owner died while requests were still going"
    );
    b = spawn_at(&url, "b", &addr_b).await;

    let mut sends = 0;
    for w in workers {
        sends += w.await.unwrap();
    }
    assert!(sends >= REQUESTS + REQUESTS / 10, "{sends} sends");
    eprintln!(
        "{REQUESTS} requests (+{} resent), {sends} sends; b killed after {at_kill} started",
        REQUESTS / 10
    );

    // Every instance answers every total from its owner: the sum over
    // distinct request ids.
    for addr in [&addr_a, &addr_b, &addr_c] {
        for (resource, total) in &want {
            let v = wait_for(
                Duration::from_secs(10),
                &format!("{addr} answers for {resource}"),
                || async {
                    match http_get(addr, &format!("/resources/{resource}")).await {
                        Some((200, body)) => serde_json::from_str::<serde_json::Value>(&body).ok(),
                        _ => None,
                    }
                },
            )
            .await;
            assert_eq!(
                v["total"].as_i64(),
                Some(*total),
                "{resource} via {addr}: {v}\nlogs:\n{}\n{}\n{}",
                a.log_tail(20),
                b.log_tail(20),
                c.log_tail(20)
            );
        }
    }

    // A broadcast from one instance reaches all three live ones, the
    // restarted one included.
    let con = support::connect(&redis).await;
    support::wait_subscribers(&con, "resources:broadcast", 3, Duration::from_secs(10)).await;
    let (status, body) = http_post(&addr_c, "/broadcast", r#"{"message":"hello all"}"#)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    for addr in [&addr_a, &addr_b, &addr_c] {
        wait_until(
            Duration::from_secs(5),
            &format!("{addr} got it"),
            || async {
                http_get(addr, "/broadcasts").await.is_some_and(|(s, b)| {
                    s == 200 && b.contains("hello all") && b.contains(r#""from":"c""#)
                })
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_400_with_a_json_error_and_changes_nothing() {
    let redis = support::redis();
    let (_a, addr_a) = spawn(&redis.url(), "a").await;
    for (path, body, why) in [
        ("/resources/x", "{not json", "malformed JSON"),
        (
            "/resources/x",
            r#"{"request_id":"r","amount":"5"}"#,
            "amount a string",
        ),
        (
            "/resources/x",
            r#"{"request_id":"r","amount":1.5}"#,
            "amount not an integer",
        ),
        ("/resources/x", r#"{"amount":1}"#, "no request id"),
        (
            "/resources/x",
            r#"{"request_id":"a b","amount":1}"#,
            "unsafe request id",
        ),
        (
            "/resources/a%20b",
            r#"{"request_id":"r","amount":1}"#,
            "unsafe resource id",
        ),
        ("/broadcast", r#"{"msg":"x"}"#, "no message"),
        (
            "/resources/x",
            r#"{"request_id":"r","amount":9000000000000000000}"#,
            "an amount past the limit",
        ),
    ] {
        let (status, answer) = http_post(&addr_a, path, body).await.unwrap();
        assert_eq!(status, 400, "{why}: {answer}");
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(v["error"].is_string(), "{why}: {answer}");
    }
    let (status, answer) = http_get(&addr_a, "/resources/never-seen").await.unwrap();
    assert_eq!(status, 404, "{answer}");

    // A request id reused with another amount is a conflict, not a retry.
    let (status, answer) = http_post(
        &addr_a,
        "/resources/y",
        r#"{"request_id":"same","amount":5}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = http_post(
        &addr_a,
        "/resources/y",
        r#"{"request_id":"same","amount":6}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("amount 5"), "{answer}");
    let (_, answer) = http_get(&addr_a, "/resources/y").await.unwrap();
    assert!(answer.contains(r#""total":5"#), "{answer}");
    // Nothing above was applied.
    let (status, _) = http_get(&addr_a, "/resources/x").await.unwrap();
    assert_eq!(status, 404);
}
