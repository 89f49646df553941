//! A feed that sends garbage: malformed JSON, invalid ticks, corrupt binary
//! batches and a 100 MB frame. The processor answers nothing back to a
//! feed, but counts every bad frame by kind, drops the oversized one
//! without buffering it (the connection is closed and re-opened), and
//! keeps applying the good ticks exactly.
#![allow(clippy::unwrap_used)]

mod support;

use tickshard_testkit::exposition::counter;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use redis::AsyncCommands;
use support::fleet::{http_get, spawn_processor, wait_all_owned};
use support::wait_until;
use tickshard::codec::{encode_batch, FeedMessage};
use tickshard::tick::{Price, Tick};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "badfeed";

fn tick(seq: u64) -> Tick {
    Tick::new(
        "GOOD".parse().unwrap(),
        seq,
        Price::from_units(1_234_500).unwrap(),
        100,
        seq,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_feed_is_counted_and_costs_nothing_else() {
    let redis = support::redis();
    let mut conn = support::connect(&redis).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed = format!("ws://{}", listener.local_addr().unwrap());
    let p1 = spawn_processor(&redis.url(), Some(&feed), "p1", NS, 2000);
    wait_all_owned(&mut conn, NS, 64, Duration::from_secs(10)).await;
    let addr = p1.http_addr(Duration::from_secs(10)).await;

    // First connection: good ticks, garbage, then a 100 MB frame.
    let (stream, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(
        hello.contains(r#""type":"hello""#) && hello.contains("binary"),
        "{hello}"
    );
    let mut frame = Vec::new();
    encode_batch(&[tick(1), tick(2)], &mut frame);
    ws.send(Message::binary(frame)).await.unwrap();
    for bad in [
        "{nope",
        r#"{"type":"tick","symbol":"GOOD","seq":3,"price":"NaN","size":1,"ts_ns":1}"#,
        r#"{"type":"tick","symbol":"GOOD","seq":3,"price":"1","size":0,"ts_ns":1}"#,
        r#"{"type":"hello","id":"x"}"#,
    ] {
        ws.send(Message::text(bad)).await.unwrap();
    }
    ws.send(Message::binary(b"TK\x01\x01\xff\xff\xff\xff".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(vec![0u8; 3])).await.unwrap();
    ws.send(Message::text(FeedMessage::Tick(tick(3)).to_json()))
        .await
        .unwrap();
    // 100 MB: the processor refuses it from the frame header and hangs up.
    let _ = ws.send(Message::binary(vec![0u8; 100 << 20])).await;

    // The processor comes back on a new connection and takes more ticks.
    let (stream, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("the processor reconnects")
        .unwrap();
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let _hello = ws.next().await.unwrap().unwrap();
    let mut frame = Vec::new();
    encode_batch(&[tick(4), tick(5)], &mut frame);
    ws.send(Message::binary(frame)).await.unwrap();

    wait_until(
        Duration::from_secs(10),
        "the good ticks are stored exactly",
        || {
            let mut c = conn.clone();
            async move {
                let h: std::collections::HashMap<String, String> = c
                    .hgetall(support::sym_key(NS, "GOOD"))
                    .await
                    .unwrap_or_default();
                h.get("count").map(String::as_str) == Some("5")
                    && h.get("last_seq").map(String::as_str) == Some("5")
            }
        },
    )
    .await;
    let (_, metrics) = http_get(&addr, "/metrics").await.unwrap();
    for (kind, at_least) in [
        ("malformed_json", 1),
        ("invalid_message", 3),
        ("too_many_ticks", 1),
        ("truncated", 1),
        ("oversized_frame", 1),
    ] {
        let got = counter(&metrics, "tickshard_bad_input_total", &[("kind", kind)]);
        assert!(got >= at_least, "{kind}: {got}\n{metrics}");
    }
    let (status, body) = http_get(&addr, "/api/symbols/GOOD").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""count":5"#), "{body}");
}
