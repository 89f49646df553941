//! The bad-input matrix against a running processor: every case gets a
//! clear error (JSON `error` message, close code, HTTP status or exit
//! code), is counted on `/metrics`, and costs nothing else: the good ticks
//! pushed around the bad ones end up exactly in `/api/symbols/X` and in
//! the `{ns}:{p<p>}:sym:X` hash.
//!
//! A mismatched cluster config (another partition count) is covered by
//! `tests/cluster_cli.rs::mismatched_partitions_name_both_values`.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::fleet::{
    assert_exact, http_get, spawn_tickshard, tickshard_bin, wait_all_owned, ProcessorArgs,
};
use support::procs::get_text;
use support::wait_until;
use tickshard::cluster::messaging::{Envelope, MessageKind};
use tickshard::codec::FeedMessage;
use tickshard::keys::Keys;
use tickshard::tick::{Price, Tick};
use tickshard::truth::GroundTruth;
use tickshard_testkit::exposition::counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "bad";
const P: u32 = 8;

fn good_ticks(from: u64, to: u64) -> Vec<Tick> {
    let mut out = Vec::new();
    for seq in from..=to {
        for s in 0..6 {
            let px = Price::from_units(1_500_000 + (seq as i64 * 13 + s) % 900).unwrap();
            out.push(
                Tick::new(
                    format!("BI{s}").parse().unwrap(),
                    seq,
                    px,
                    10 + seq as u32 % 5,
                    seq * 1000,
                )
                .unwrap(),
            );
        }
    }
    out
}

/// `tickshard_bad_input_total{kind="..."}` from `/metrics`.
async fn bad_count(addr: &str, kind: &str) -> u64 {
    let text = get_text(addr, "/metrics", Duration::from_secs(5))
        .await
        .unwrap();
    tickshard_testkit::exposition::counter(&text, "tickshard_bad_input_total", &[("kind", kind)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_answered_counted_and_harmless() {
    let redis = support::redis();
    let mut conn = support::connect(&redis).await;
    let args = ProcessorArgs::new(&redis.url(), "p1")
        .cluster(NS)
        .lease_ms(1000)
        .opt("--partitions", &P.to_string())
        .opt("--ingest-max-bytes", "65536");
    let p1 = spawn_tickshard("p1", args, &[]);
    wait_all_owned(&mut conn, NS, P, Duration::from_secs(15)).await;
    let addr = p1.http_addr(Duration::from_secs(10)).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ingest"))
        .await
        .unwrap();
    let first = good_ticks(1, 20);
    ws.send(Message::text(
        FeedMessage::Batch {
            ticks: first.clone(),
        }
        .to_json(),
    ))
    .await
    .unwrap();

    // (frame, expected counter kind, words the error message must contain)
    let cases: &[(&str, &str, &str)] = &[
        ("{not json", "malformed_json", ""),
        (
            r#"{"type":"tick","symbol":"BI0","seq":"x","price":"1","size":1,"ts_ns":1}"#,
            "invalid_message",
            "expected u64",
        ),
        (
            r#"{"type":"tick","symbol":"BI0","seq":21,"price":1.5,"size":1,"ts_ns":1}"#,
            "invalid_message",
            "floating point",
        ),
        (
            r#"{"type":"launch_missiles"}"#,
            "invalid_message",
            "launch_missiles",
        ),
        (
            r#"{"type":"tick","symbol":"BI0","seq":21,"price":"NaN","size":1,"ts_ns":1}"#,
            "invalid_message",
            "price",
        ),
        (
            r#"{"type":"tick","symbol":"BI0","seq":21,"price":"-1.0000","size":1,"ts_ns":1}"#,
            "invalid_message",
            "price",
        ),
        (
            r#"{"type":"tick","symbol":"BI0","seq":21,"price":"1.00001","size":1,"ts_ns":1}"#,
            "invalid_message",
            "price",
        ),
        (
            r#"{"type":"tick","symbol":"BI0","seq":21,"price":"1.0000","size":0,"ts_ns":1}"#,
            "invalid_message",
            "size",
        ),
        (
            r#"{"type":"tick","symbol":"BI0","seq":21,"price":"1.0000","size":4294967296,"ts_ns":1}"#,
            "invalid_message",
            "expected u32",
        ),
        (
            r#"{"type":"tick","symbol":"bad sym","seq":21,"price":"1.0000","size":1,"ts_ns":1}"#,
            "invalid_message",
            "symbol",
        ),
        (
            r#"{"type":"tick","symbol":"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789","seq":21,"price":"1.0000","size":1,"ts_ns":1}"#,
            "invalid_message",
            "symbol",
        ),
        (
            r#"{"type":"replay","symbol":"BI0","from":1,"to":5}"#,
            "invalid_message",
            "replay",
        ),
    ];
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unclear = Vec::new();
    for (frame, kind, words) in cases {
        let before = *kinds.entry(kind).or_insert(bad_count(&addr, kind).await);
        ws.send(Message::text(*frame)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no answer to {frame}"))
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["type"], "error", "{frame} answered {reply}");
        let message = v["message"].as_str().unwrap().to_ascii_lowercase();
        if !message.contains(&words.to_ascii_lowercase()) {
            unclear.push(format!("{frame}: {message:?} does not mention {words:?}"));
        }
        kinds.insert(kind, before + 1);
    }
    assert!(
        unclear.is_empty(),
        "unclear errors:\n{}",
        unclear.join("\n")
    );
    // Binary garbage: the batch codec's errors.
    for (bytes, kind) in [
        (vec![1u8, 2, 3], "truncated"),
        (vec![0xff; 64], "bad_magic"),
    ] {
        let before = bad_count(&addr, kind).await;
        ws.send(Message::binary(bytes)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(reply.into_text().unwrap().contains("\"error\""));
        kinds.insert(kind, before + 1);
    }
    for (kind, want) in &kinds {
        let got = bad_count(&addr, kind).await;
        assert!(
            got >= *want,
            "bad_input{{kind={kind}}} = {got}, want at least {want}"
        );
    }

    // A frame over the cap is refused from its header: the client claims
    // 100 MiB and sends none of it, and still gets close code 1009.
    let before = bad_count(&addr, "oversized_frame").await;
    let code = oversized_frame_close_code(&addr).await;
    assert_eq!(code, Some(1009));
    assert_eq!(bad_count(&addr, "oversized_frame").await, before + 1);

    // Strangers publish on the cluster's channels.
    let mut pubc = support::connect(&redis).await;
    let foreign_before = bad_count(&addr, "foreign_message").await;
    let keys = Keys::new(NS);
    let inbox = keys.inbox(&"p1".parse().unwrap());
    for (channel, payload) in [
        (inbox.clone(), b"garbage".to_vec()),
        (inbox.clone(), b"TS\x01\x09".to_vec()),
        (keys.events(), b"{\"kind\":\"lease_acquired\"}".to_vec()),
        (keys.events(), b"\xff\xfe not json".to_vec()),
        (
            keys.events(),
            br#"{"kind":"member_left","ts_ms":1,"instance":"p1"}"#.to_vec(),
        ),
        (keys.stats(), b"{\"type\":\"stats\",\"instance\":".to_vec()),
    ] {
        // Inboxes are shard channels.
        let verb = if channel == inbox {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let _: i64 = redis::cmd(verb)
            .arg(channel)
            .arg(payload)
            .query_async(&mut pubc)
            .await
            .unwrap();
    }
    // A well-formed envelope whose payload is not a batch.
    let forged = Envelope {
        kind: MessageKind::Data,
        hops: 0,
        from: "mallory".parse().unwrap(),
        correlation: 0,
        sent_ns: 0,
        payload: bytes::Bytes::from_static(b"not a batch"),
    };
    let _: i64 = redis::cmd("SPUBLISH")
        .arg(&inbox)
        .arg(forged.encode().to_vec())
        .query_async(&mut pubc)
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "forged inbox batch counted", || {
        let addr = addr.clone();
        async move { bad_count(&addr, "foreign_message").await > foreign_before }
    })
    .await;
    // Garbage that is not even an envelope or an event is counted by the
    // cluster layer, and shown on /metrics too.
    wait_until(
        Duration::from_secs(5),
        "garbage envelopes and events counted",
        || {
            let addr = addr.clone();
            async move {
                let Some((_, text)) = support::fleet::http_get(&addr, "/metrics").await else {
                    return false;
                };
                let value = |name: &str| counter(&text, name, &[]);
                value("tickshard_cluster_bad_inbox_messages_total") >= 2
                    && value("tickshard_cluster_bad_events_total") >= 2
            }
        },
    )
    .await;

    // Bad CLI values: clap's message and exit code 2.
    for (flag, value) in [
        ("--lease-ms", "5"),
        ("--partitions", "0"),
        ("--http", "nonsense"),
    ] {
        let out = Command::new(tickshard_bin())
            .args(["processor", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains("invalid value") && err.contains(flag), "{err}");
    }

    // The process still serves, and every good tick counts exactly once.
    let second = good_ticks(21, 40);
    let (mut ws2, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ingest"))
        .await
        .unwrap();
    ws2.send(Message::text(
        FeedMessage::Batch {
            ticks: second.clone(),
        }
        .to_json(),
    ))
    .await
    .unwrap();
    let truth = GroundTruth::of(first.iter().chain(&second)).record();
    assert_exact(&mut conn, NS, &truth, Duration::from_secs(15), &[&p1]).await;
    for (sym, t) in &truth.symbols {
        let (status, body) = http_get(&addr, &format!("/api/symbols/{sym}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["count"].as_u64(), Some(t.count), "{sym}: {body}");
        assert_eq!(v["last_seq"].as_u64(), Some(t.last_seq), "{sym}: {body}");
    }
    let (status, _) = http_get(&addr, "/api/symbols/bad%20sym").await.unwrap();
    assert_eq!(status, 400);
    assert!(
        p1.log().contains("oversized frame"),
        "log line for the oversized frame"
    );
}

/// Opens `/ingest` by hand and sends only the header of a 100 MiB text
/// frame; returns the close code the server answers with.
async fn oversized_frame_close_code(addr: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!(
        "GET /ingest HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.ok()?;
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    let mut frame = vec![0x81u8, 0x80 | 127];
    frame.extend_from_slice(&(100u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]); // mask key; no payload follows
    s.write_all(&frame).await.ok()?;
    let mut hdr = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut hdr))
        .await
        .ok()?
        .ok()?;
    assert_eq!(hdr[0], 0x88, "a close frame");
    Some(u16::from_be_bytes([hdr[2], hdr[3]]))
}

/// A stranger floods the feed with replay requests on one connection while
/// a processor consumes it: the feed keeps serving the processor, and the
/// stored result equals the feed's ground truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_flood_on_the_feed_does_not_starve_the_others() {
    let redis = support::redis();
    let mut conn = support::connect(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("truth.json");
    let (feed, url) = support::fleet::spawn_feed(&[
        "--symbols",
        "50",
        "--ticks",
        "100000",
        "--rate",
        "50000",
        "--seed",
        "3",
        "--record",
        record.to_str().unwrap(),
    ]);
    let args = ProcessorArgs::new(&redis.url(), "pf")
        .cluster("flood")
        .lease_ms(1000)
        .feed(&url)
        .opt("--partitions", &P.to_string());
    let p = spawn_tickshard("pf", args, &[]);
    let (ws, _) = support::wait_for(Duration::from_secs(10), "feed listening", || {
        let url = url.clone();
        async move { tokio_tungstenite::connect_async(url).await.ok() }
    })
    .await;
    let (mut tx, mut rx) = ws.split();
    // Read (and drop) whatever the feed sends the stranger.
    let reader = tokio::spawn(async move {
        let mut frames = 0u64;
        while let Some(Ok(_)) = rx.next().await {
            frames += 1;
        }
        frames
    });
    for i in 0..5000u64 {
        let req = format!(
            r#"{{"type":"replay","symbol":"S{:06}","from":1,"to":{}}}"#,
            i % 50,
            1 + i % 1000
        );
        if tx.send(Message::text(req)).await.is_err() {
            break;
        }
    }
    let truth = support::fleet::read_truth(&record, Duration::from_secs(60)).await;
    assert_eq!(truth.ticks, 100_000);
    support::fleet::assert_exact(
        &mut conn,
        "flood",
        &truth,
        Duration::from_secs(30),
        &[&p, &feed],
    )
    .await;
    drop(tx);
    reader.abort();
}
