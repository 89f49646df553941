//! The real-Redis test harness works: round trips, kill, restart with AOF,
//! pause.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use support::{connect, redis, redis_with, wait_until, RedisServerOptions};

#[tokio::test]
async fn round_trip_through_a_real_server() {
    let server = redis();
    let mut conn = connect(&server).await;
    let _: () = conn.set("k", "v").await.unwrap();
    let v: String = conn.get("k").await.unwrap();
    assert_eq!(v, "v");
}

#[tokio::test]
async fn killing_the_server_makes_clients_see_errors() {
    let mut server = redis();
    let mut conn = connect(&server).await;
    let _: () = conn.set("k", "v").await.unwrap();
    server.kill();
    let result: redis::RedisResult<String> = conn.get("k").await;
    assert!(result.is_err(), "a GET after kill succeeded: {result:?}");
    assert!(redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .is_err());
}

#[tokio::test]
async fn restart_with_aof_keeps_data() {
    let mut server = redis_with(RedisServerOptions {
        aof: true,
        ..Default::default()
    });
    let mut conn = connect(&server).await;
    let _: () = conn.set("durable", "yes").await.unwrap();
    server.restart().unwrap();
    let mut conn = connect(&server).await;
    let v: Option<String> = conn.get("durable").await.unwrap();
    assert_eq!(v.as_deref(), Some("yes"));
}

#[tokio::test]
async fn restart_without_persistence_loses_data() {
    let mut server = redis();
    let mut conn = connect(&server).await;
    let _: () = conn.set("volatile", "yes").await.unwrap();
    server.restart().unwrap();
    let mut conn = connect(&server).await;
    let v: Option<String> = conn.get("volatile").await.unwrap();
    assert_eq!(v, None);
}

#[tokio::test]
async fn a_paused_server_answers_nothing_until_resumed() {
    let server = redis();
    let mut conn = connect(&server).await;
    server.pause().unwrap();
    let stalled = tokio::time::timeout(Duration::from_millis(300), async {
        let r: redis::RedisResult<Option<String>> = conn.get("k").await;
        r
    })
    .await;
    assert!(stalled.is_err(), "paused server answered: {stalled:?}");
    server.resume().unwrap();
    let mut conn = connect(&server).await;
    wait_until(
        Duration::from_secs(5),
        "server answers after SIGCONT",
        || {
            let mut c = conn.clone();
            async move { c.ping::<String>().await.is_ok() }
        },
    )
    .await;
    let _: () = conn.set("k", "v").await.unwrap();
}
