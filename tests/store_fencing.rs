//! Fenced persistence against a real redis-server: writes land only while
//! the lease holds this instance's epoch and no newer fence is stored, and
//! what is written loads back exactly.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Instant;

use redis::AsyncCommands;
use tickshard::engine::{Engine, EngineConfig, GapPolicy, PartitionFlush};
use tickshard::keys::Keys;
use tickshard::operator::OperatorSet;
use tickshard::store::{FlushOutcome, Store};
use tickshard::tick::{Epoch, InstanceId, PartitionId, Symbol, Tick};

const P: PartitionId = PartitionId(5);

/// Bars of 1 s (the contract fields) and 1 m, and an EMA over 3 ticks.
fn operators() -> OperatorSet {
    OperatorSet::builtin(&["1s".parse().unwrap(), "1m".parse().unwrap()], &[3], None).unwrap()
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        gap: GapPolicy::default(),
        max_held: 1000,
        max_loading_held: 1000,
        max_outputs: 1000,
        operators: operators(),
    })
}

fn tick(sym: &str, seq: u64, px: &str, ts_s: u64) -> Tick {
    Tick::new(
        sym.parse().unwrap(),
        seq,
        px.parse().unwrap(),
        10 * seq as u32,
        ts_s * 1_000_000_000,
    )
    .unwrap()
}

fn flush_after(ticks: &[Tick], epoch: Epoch) -> PartitionFlush {
    let mut e = engine();
    let now = Instant::now();
    e.begin_load(P, epoch);
    e.finish_load(P, epoch, vec![], now);
    for t in ticks {
        e.offer(P, *t, now);
    }
    e.take_flush().pop().unwrap()
}

/// The keys of the test's namespace `t`.
fn keys() -> Keys {
    Keys::new("t")
}

fn aapl() -> Symbol {
    "AAPL".parse().unwrap()
}

async fn store_for(server: &support::RedisServer, id: &str) -> Store {
    let conn = support::connect(server).await;
    Store::new(conn, keys(), id.parse::<InstanceId>().unwrap(), operators())
}

#[tokio::test]
async fn flush_writes_the_contract_fields_and_loads_back() {
    let server = support::redis();
    let mut conn = support::connect(&server).await;
    let _: () = conn.set(keys().lease(P), "p1:3").await.unwrap();
    let store = store_for(&server, "p1").await;
    let ticks = [
        tick("AAPL", 1, "187.25", 0),
        tick("AAPL", 2, "187.5", 0),
        tick("AAPL", 3, "186", 2),
        tick("MSFT", 1, "400.0001", 1),
    ];
    let flush = flush_after(&ticks, Epoch(3));
    assert_eq!(store.flush(&flush).await.unwrap(), FlushOutcome::Written(2));

    let h: std::collections::HashMap<String, String> =
        conn.hgetall(keys().sym(P, &aapl())).await.unwrap();
    assert_eq!(h["count"], "3");
    assert_eq!(h["volume"], "60");
    assert_eq!(h["last_seq"], "3");
    assert_eq!(h["last_px"], "186.0000");
    assert_eq!(h["last_size"], "30");
    // (187.25*10 + 187.5*20 + 186*30) / 60 = 186.7083333 -> 186.7083
    assert_eq!(h["vwap_px"], "186.7083");
    assert_eq!(h["open"], "186.0000");
    assert_eq!(h["bars_1m_open"], "187.2500");
    assert_eq!(h["bars_1m_count"], "3");
    assert!(h["ema_3"].parse::<f64>().unwrap() > 186.0);
    assert_eq!(h["fence"], "3");
    assert_eq!(h["partition"], "5");
    assert!(h["updated_ns"].parse::<u64>().unwrap() > 0);
    let members: Vec<String> = conn.smembers(keys().psyms(P)).await.unwrap();
    assert_eq!(members.len(), 2);
    // The bar of second 0 completed with the tick of seq 3 (second 2):
    // its entry id is that tick's seq.
    let bars_key = keys().out(P, "bars_1s", &aapl());
    let bars: redis::streams::StreamRangeReply = conn.xrange_all(&bars_key).await.unwrap();
    assert_eq!(bars.ids.len(), 1);
    assert_eq!(bars.ids[0].id, "3-0");
    assert_eq!(bars.ids[0].get::<String>("high").unwrap(), "187.5000");
    assert_eq!(bars.ids[0].get::<u64>("count").unwrap(), 2);

    // Sending the same bar again does not append it twice.
    let again = flush_after(&ticks, Epoch(3));
    assert_eq!(store.flush(&again).await.unwrap(), FlushOutcome::Written(2));
    let bars: redis::streams::StreamRangeReply = conn.xrange_all(&bars_key).await.unwrap();
    assert_eq!(bars.ids.len(), 1);

    let loaded = store.load(P).await.unwrap();
    assert!(loaded.corrupt.is_empty());
    let aapl = loaded
        .symbols
        .iter()
        .find(|(s, _)| s.as_str() == "AAPL")
        .unwrap();
    let record = flush
        .records
        .iter()
        .find(|r| r.symbol.as_str() == "AAPL")
        .unwrap();
    assert_eq!(aapl.1.totals, record.totals);
    // Every operator's state reads back exactly (the EMA's f64 included).
    assert_eq!(aapl.1.fields(&operators()).into_pairs(), record.fields);
}

#[tokio::test]
async fn a_watched_partition_gets_each_update_once() {
    use futures_util::StreamExt;
    let server = support::redis();
    let mut conn = support::connect(&server).await;
    let _: () = conn.set(keys().lease(P), "p1:3").await.unwrap();
    let store = store_for(&server, "p1").await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe(keys().live(P)).await.unwrap();

    // Not watched: nothing is published.
    let first = [tick("AAPL", 1, "10", 0), tick("AAPL", 2, "11", 2)];
    let flush = flush_after(&first, Epoch(3));
    assert_eq!(store.flush(&flush).await.unwrap(), FlushOutcome::Written(1));

    let _: () = conn.set_ex(keys().watched(P), "1", 30).await.unwrap();
    let mut e = engine();
    let now = Instant::now();
    e.begin_load(P, Epoch(3));
    e.finish_load(P, Epoch(3), store.load(P).await.unwrap().symbols, now);
    e.offer(P, tick("AAPL", 3, "12", 4), now);
    let second = e.take_flush().pop().unwrap();
    assert_eq!(
        store.flush(&second).await.unwrap(),
        FlushOutcome::Written(1)
    );
    // A retry of the same flush writes nothing new and publishes nothing.
    assert_eq!(
        store.flush(&second).await.unwrap(),
        FlushOutcome::Written(1)
    );
    e.offer(P, tick("AAPL", 4, "13", 4), now);
    let third = e.take_flush().pop().unwrap();
    assert_eq!(store.flush(&third).await.unwrap(), FlushOutcome::Written(1));

    let mut messages = ps.on_message();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
        assert_eq!(v["partition"], 5);
        let u = &v["updates"][0];
        assert_eq!(u["symbol"], "AAPL");
        seen.push((
            u["from_seq"].as_u64().unwrap(),
            u["last_seq"].as_u64().unwrap(),
            u["state"]["last_px"].as_str().unwrap().to_owned(),
            u["outputs"].as_array().map(Vec::len).unwrap_or(0),
        ));
    }
    // Seq 3 (second 4) completed the bar of second 2; seq 4 joined it.
    assert_eq!(
        seen,
        vec![
            (3, 3, "12.0000".to_owned(), 1),
            (4, 4, "13.0000".to_owned(), 0)
        ]
    );
}

#[tokio::test]
async fn a_foreign_value_under_an_output_stream_refuses_the_whole_script() {
    let server = support::redis();
    let mut conn = support::connect(&server).await;
    let _: () = conn.set(keys().lease(P), "p1:3").await.unwrap();
    let _: () = conn
        .set(keys().out(P, "bars_1s", &aapl()), "not a stream")
        .await
        .unwrap();
    let store = store_for(&server, "p1").await;
    let flush = flush_after(
        &[tick("AAPL", 1, "10", 0), tick("AAPL", 2, "11", 2)],
        Epoch(3),
    );
    let err = store.flush(&flush).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains(":out:bars_1s:AAPL"), "{err}");
    let exists: bool = conn.exists(keys().sym(P, &aapl())).await.unwrap();
    assert!(!exists, "nothing was written");
}

#[tokio::test]
async fn a_stale_owner_cannot_write() {
    let server = support::redis();
    let mut conn = support::connect(&server).await;
    let old = store_for(&server, "p1").await;
    let new = store_for(&server, "p2").await;

    // p2 took the partition at epoch 4 and wrote its state.
    let _: () = conn.set(keys().lease(P), "p2:4").await.unwrap();
    let fresh = flush_after(
        &[tick("AAPL", 1, "1", 0), tick("AAPL", 2, "1", 0)],
        Epoch(4),
    );
    assert_eq!(new.flush(&fresh).await.unwrap(), FlushOutcome::Written(1));

    // p1 still believes it holds epoch 3: the lease check refuses it.
    let stale = flush_after(&[tick("AAPL", 1, "1", 0)], Epoch(3));
    assert_eq!(old.flush(&stale).await.unwrap(), FlushOutcome::LeaseLost);

    // Even a lease that says p1:3 (forged) cannot beat the stored fence 4.
    let _: () = conn.set(keys().lease(P), "p1:3").await.unwrap();
    assert_eq!(old.flush(&stale).await.unwrap(), FlushOutcome::FenceNewer);

    let count: String = conn.hget(keys().sym(P, &aapl()), "count").await.unwrap();
    assert_eq!(count, "2", "the fresh owner's state was overwritten");

    // With no lease at all nobody writes.
    let _: () = conn.del(keys().lease(P)).await.unwrap();
    assert_eq!(new.flush(&fresh).await.unwrap(), FlushOutcome::LeaseLost);
}

#[tokio::test]
async fn corrupt_stored_state_is_reported_not_fatal() {
    let server = support::redis();
    let mut conn = support::connect(&server).await;
    let _: () = conn
        .sadd(keys().psyms(P), &["AAPL", "bad symbol", "MSFT"])
        .await
        .unwrap();
    let _: () = conn
        .hset(keys().sym(P, &aapl()), "count", "not a number")
        .await
        .unwrap();
    let store = store_for(&server, "p1").await;
    let loaded = store.load(P).await.unwrap();
    assert!(loaded.symbols.is_empty());
    let mut names: Vec<String> = loaded.corrupt.iter().map(|c| c.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["AAPL", "bad symbol"]);
}
