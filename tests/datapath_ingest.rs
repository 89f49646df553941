//! The data path without the simulator: ticks pushed by a plain WebSocket
//! client to one processor's `/ingest` are routed, forwarded to their
//! owners over pub/sub, applied exactly once, persisted with fenced writes,
//! and queryable from every instance; bad frames get errors and are counted.
#![allow(clippy::unwrap_used)]

mod support;

use tickshard_testkit::exposition::counter;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use redis::AsyncCommands;
use support::fleet::{assert_exact, http_get, spawn_processor, wait_all_owned};
use support::wait_until;
use tickshard::codec::FeedMessage;
use tickshard::keys::Keys;
use tickshard::tick::Tick;
use tickshard::truth::GroundTruth;
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "ing";

fn ticks(symbols: usize, per_symbol: u64) -> Vec<Tick> {
    let mut out = Vec::new();
    for seq in 1..=per_symbol {
        for s in 0..symbols {
            let price =
                tickshard::tick::Price::from_units(1_000_000 + (seq as i64 * 37 + s as i64) % 5000)
                    .unwrap();
            let mut t = Tick::new(
                format!("S{s}").parse().unwrap(),
                seq,
                price,
                100 + (seq as u32 % 7),
                seq * 1_000_000,
            )
            .unwrap();
            t.sent_ns = Some(1);
            out.push(t);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_ticks_are_applied_exactly_once_across_instances() {
    let redis = support::redis();
    let mut conn = support::connect(&redis).await;
    let p1 = spawn_processor(&redis.url(), None, "p1", NS, 2000);
    let p2 = spawn_processor(&redis.url(), None, "p2", NS, 2000);
    wait_all_owned(&mut conn, NS, 64, Duration::from_secs(10)).await;
    // Wait for a balanced, settled split so nothing is in handover.
    wait_until(
        Duration::from_secs(10),
        "both instances own partitions",
        || {
            let mut c = conn.clone();
            async move {
                let keys = Keys::new(NS).all_leases(64);
                let owners: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                let p1 = owners
                    .iter()
                    .flatten()
                    .filter(|o| o.starts_with("p1:"))
                    .count();
                p1 == 32
            }
        },
    )
    .await;
    let addr1 = p1.http_addr(Duration::from_secs(10)).await;
    let addr2 = p2.http_addr(Duration::from_secs(10)).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr1}/ingest"))
        .await
        .unwrap();
    let all = ticks(40, 50);
    let truth = GroundTruth::of(&all).record();
    for chunk in all.chunks(97) {
        let msg = FeedMessage::Batch {
            ticks: chunk.to_vec(),
        };
        ws.send(Message::text(msg.to_json())).await.unwrap();
    }
    // Bad input on the same connection: an error answer each, connection stays up.
    for bad in [
        "{not json",
        r#"{"type":"tick","symbol":"S1","seq":1,"price":"NaN","size":1,"ts_ns":1}"#,
        r#"{"type":"tick","symbol":"bad sym","seq":1,"price":"1","size":1,"ts_ns":1}"#,
        r#"{"type":"tick","symbol":"S1","seq":1,"price":"1","size":0,"ts_ns":1}"#,
        r#"{"type":"nope"}"#,
    ] {
        ws.send(Message::text(bad)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = reply.into_text().unwrap();
        assert!(text.contains(r#""type":"error""#), "{bad} answered {text}");
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(reply.into_text().unwrap().contains("truncated"));

    assert_exact(&mut conn, NS, &truth, Duration::from_secs(20), &[&p1, &p2]).await;

    // Sending the same ticks again changes nothing: duplicates are dropped.
    let msg = FeedMessage::Batch {
        ticks: all[..200].to_vec(),
    };
    ws.send(Message::text(msg.to_json())).await.unwrap();

    // Every instance answers for every symbol with the owner's state.
    for sym in ["S0", "S7", "S39"] {
        let want = &truth.symbols[sym];
        for addr in [&addr1, &addr2] {
            let (status, body) = http_get(addr, &format!("/api/symbols/{sym}"))
                .await
                .unwrap();
            assert_eq!(status, 200, "{addr} {sym}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["count"], want.count, "{body}");
            assert_eq!(v["last_px"], want.last_px);
        }
    }
    let (status, body) = http_get(&addr2, "/api/symbols/NEVER").await.unwrap();
    assert_eq!(status, 404, "{body}");
    let (status, body) = http_get(&addr2, "/api/symbols/bad%20sym").await.unwrap();
    assert_eq!(status, 400, "{body}");

    // The counters show the forwarding and the bad input.
    let (status, metrics) = http_get(&addr1, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let value = |text: &str, name: &str| counter(text, name, &[]);
    let forwarded = value(&metrics, "tickshard_forwarded_out_total");
    assert!(
        forwarded > 0 && forwarded < all.len() as u64,
        "forwarded {forwarded}\n{metrics}"
    );
    assert!(
        counter(
            &metrics,
            "tickshard_bad_input_total",
            &[("kind", "malformed_json")]
        ) >= 1,
        "{metrics}"
    );
    assert!(
        counter(
            &metrics,
            "tickshard_bad_input_total",
            &[("kind", "invalid_message")]
        ) >= 4,
        "{metrics}"
    );
    wait_until(Duration::from_secs(5), "duplicates counted", || {
        let addr1 = addr1.clone();
        let addr2 = addr2.clone();
        async move {
            let a = http_get(&addr1, "/metrics")
                .await
                .map(|(_, b)| value(&b, "tickshard_duplicates_total"))
                .unwrap_or(0);
            let b = http_get(&addr2, "/metrics")
                .await
                .map(|(_, b)| value(&b, "tickshard_duplicates_total"))
                .unwrap_or(0);
            a + b == 200
        }
    })
    .await;
    let count: String = conn
        .hget(support::sym_key(NS, "S0"), "count")
        .await
        .unwrap();
    assert_eq!(count, truth.symbols["S0"].count.to_string());
}
