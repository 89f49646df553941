//! Shared integration-test support: a real `redis-server` per test and
//! waiting for conditions with a deadline instead of sleeping.
//!
//! Each test binary includes this with `mod support;`; not every binary
//! uses every helper.
#![allow(dead_code, unreachable_pub)]

pub mod demo;
pub mod fleet;

use std::time::Duration;

use tickshard::cluster::{ConnOptions, RedisConn};
use tickshard::redis_conn::RedisConfig;

pub use tickshard::redis_server::{RedisServer, RedisServerOptions};

/// The real ES trades file in `../shared/data` (100,000 trades); fails
/// loudly when the data is not beside the repository.
pub fn es_trades_file() -> &'static str {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/es_trades_2013-09-01.csv"
    );
    assert!(
        std::path::Path::new(data).is_file(),
        "{data} missing: the repository expects ../shared/data beside it"
    );
    data
}

/// Starts a private redis-server, or fails the test with instructions.
pub fn redis() -> RedisServer {
    redis_with(RedisServerOptions::default())
}

/// Starts a private redis-server with `options`, or fails the test.
pub fn redis_with(options: RedisServerOptions) -> RedisServer {
    match RedisServer::start_with(options) {
        Ok(server) => server,
        Err(e) => panic!("this test needs a real redis-server: {e}"),
    }
}

/// An async multiplexed connection to `server`.
pub async fn connect(server: &RedisServer) -> RedisConn {
    connect_url(&server.url())
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}\nlog:\n{}", server.url(), server.log()))
}

/// A connection (single server or Redis Cluster) to `url`.
pub async fn connect_url(url: &str) -> Result<RedisConn, tickshard::cluster::ConnectError> {
    RedisConn::connect(&RedisConfig::new(url), &ConnOptions::default()).await
}

pub use tickshard_testkit::{wait_for, wait_until};

/// Waits until `channel` has at least `n` subscribers (`PUBSUB NUMSUB`).
pub async fn wait_subscribers(conn: &RedisConn, channel: &str, n: i64, timeout: Duration) {
    wait_until(timeout, &format!("{n} subscribers on {channel}"), || {
        let mut conn = conn.clone();
        async move {
            let subs: Vec<(String, i64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            subs.first().is_some_and(|(_, got)| *got >= n)
        }
    })
    .await;
}

pub mod chaos;
pub mod claims;
pub mod netns;
pub mod procs;
pub mod proxy;

/// The state key of `symbol` in cluster `ns` (of the default partition
/// count).
pub fn sym_key(ns: &str, symbol: &str) -> String {
    let s: tickshard::tick::Symbol = symbol.parse().expect("a valid symbol");
    let p = std::num::NonZeroU32::new(tickshard::partition::DEFAULT_PARTITIONS).expect("non-zero");
    tickshard::keys::Keys::new(ns).sym_in(&s, p)
}
