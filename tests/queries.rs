//! Symbol queries across instances when the owner dies: a clear error
//! within the query timeout while the partition has no live owner, then
//! the right answer again once the partition has moved.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use redis::AsyncCommands;
use support::fleet::{http_get, spawn_processor, wait_all_owned};
use support::procs::get_json;
use support::wait_until;
use tickshard::codec::FeedMessage;
use tickshard::partition::partition_of;
use tickshard::tick::{Price, Symbol, Tick};
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "q";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_while_the_owner_is_killed_fails_clearly_then_recovers() {
    let redis = support::redis();
    let mut conn = support::connect(&redis).await;
    let p1 = spawn_processor(&redis.url(), None, "p1", NS, 2000);
    let mut p2 = spawn_processor(&redis.url(), None, "p2", NS, 2000);
    wait_all_owned(&mut conn, NS, 64, Duration::from_secs(10)).await;
    let addr1 = p1.http_addr(Duration::from_secs(10)).await;
    let addr2 = p2.http_addr(Duration::from_secs(10)).await;

    // A symbol whose partition p2 owns, by p2's own view.
    let p64 = std::num::NonZeroU32::new(64).unwrap();
    let symbol: Symbol = support::wait_for(Duration::from_secs(10), "p2 owns a partition", || {
        let addr2 = addr2.clone();
        async move {
            let body = get_json(&addr2, "/api/ownership", Duration::from_secs(2)).await?;
            let owned: Vec<u64> = body["partitions"]
                .as_array()?
                .iter()
                .filter(|e| e["owner"] == "p2")
                .filter_map(|e| e["partition"].as_u64())
                .collect();
            (0..10_000)
                .map(|i| format!("Q{i}").parse::<Symbol>().unwrap())
                .find(|s| owned.contains(&u64::from(partition_of(s, p64).0)))
        }
    })
    .await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr1}/ingest"))
        .await
        .unwrap();
    let ticks: Vec<Tick> = (1..=25)
        .map(|seq| {
            Tick::new(
                symbol,
                seq,
                Price::from_units(1_000_000 + seq as i64).unwrap(),
                10,
                seq,
            )
            .unwrap()
        })
        .collect();
    ws.send(Message::text(FeedMessage::Batch { ticks }.to_json()))
        .await
        .unwrap();
    let key = support::sym_key(NS, symbol.as_str());
    wait_until(Duration::from_secs(10), "p2 flushed the symbol", || {
        let mut c = conn.clone();
        let key = key.clone();
        async move {
            c.hget::<_, _, Option<String>>(&key, "count")
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some("25")
        }
    })
    .await;
    let path = format!("/api/symbols/{symbol}");
    let (status, body) = http_get(&addr1, &path).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""owner":"p2""#), "{body}");

    p2.kill9();
    p2.wait_exit(Duration::from_secs(5));
    let asked = Instant::now();
    let (status, body) = http_get(&addr1, &path).await.unwrap();
    let took = asked.elapsed();
    assert!(status == 503 || status == 504, "status {status}: {body}");
    assert!(body.contains("error"), "{body}");
    assert!(took < Duration::from_secs(3), "the error took {took:?}");

    // Once p1 has taken the partition over, it answers from the stored state.
    wait_until(Duration::from_secs(10), "the query succeeds on the new owner", || {
        let addr1 = addr1.clone();
        let path = path.clone();
        async move {
            matches!(http_get(&addr1, &path).await, Some((200, b)) if b.contains(r#""owner":"p1""#) && b.contains(r#""count":25"#))
        }
    })
    .await;
}
