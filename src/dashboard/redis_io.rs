//! The dashboard's Redis edge: a pub/sub session on `{ns}:stats` and
//! `{ns}:events` that reconnects with capped backoff, and a poll of the
//! leases and members every ~500 ms. Both only read Redis and hand what
//! they read to the aggregator task as [`Input`]s over a bounded channel.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cluster::RedisConn;
use crate::dashboard::aggregate::PollResult;
use crate::keys::Keys;
use crate::redis_conn::RedisConfig;
use crate::tick::{InstanceId, PartitionId};

/// Something the Redis edge read.
#[derive(Debug)]
pub enum Input {
    /// A `{ns}:stats` payload (not yet parsed).
    Stats(String),
    /// A `{ns}:events` payload (not yet parsed).
    Event(String),
    /// A payload that is not UTF-8 or came on an unexpected channel.
    Garbage,
    /// The pub/sub session is up (`true`) or ended (`false`), and why.
    PubSub(bool, String),
    /// A lease/member poll result.
    Poll(PollResult),
    /// The poll failed.
    PollFailed,
}

/// Why a pub/sub session ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    ConnectFailed(String),
    StreamClosed,
    PingFailed(String),
    AggregatorGone,
}

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an idle pub/sub session is checked with a PING by default.
pub const PING_EVERY: Duration = Duration::from_secs(5);

/// Next backoff delay: doubles, capped at 5 s.
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(BACKOFF_CAP)
}

/// Subscribes to `{ns}:stats` and `{ns}:events` and forwards every message
/// until `shutdown`, reconnecting with capped backoff.
pub async fn run_subscriber(
    redis: RedisConfig,
    keys: Keys,
    ping_every: Duration,
    tx: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_START;
    loop {
        let started = tokio::time::Instant::now();
        // Each session at the next seed (the channels are cluster-wide), so
        // one whose node died moves on.
        let end = match redis.next_seed_client() {
            Ok(client) => session(&client, &keys, ping_every, &tx, &shutdown).await,
            Err(e) => SessionEnd::ConnectFailed(e.to_string()),
        };
        match end {
            SessionEnd::Shutdown | SessionEnd::AggregatorGone => return,
            SessionEnd::ConnectFailed(e) | SessionEnd::PingFailed(e) => {
                warn!(error = %e, retry_ms = backoff.as_millis() as u64, "dashboard pub/sub session ended");
                let _ = tx.try_send(Input::PubSub(false, e));
            }
            SessionEnd::StreamClosed => {
                warn!(
                    retry_ms = backoff.as_millis() as u64,
                    "dashboard pub/sub connection closed"
                );
                let _ = tx.try_send(Input::PubSub(false, "connection closed".into()));
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = BACKOFF_START;
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = next_backoff(backoff);
    }
}

async fn session(
    client: &redis::Client,
    keys: &Keys,
    ping_every: Duration,
    tx: &mpsc::Sender<Input>,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let stats = keys.stats();
    let events = keys.events();
    let connect = async {
        let mut ps = client.get_async_pubsub().await?;
        ps.subscribe(&[stats.as_str(), events.as_str()]).await?;
        Ok::<_, redis::RedisError>(ps)
    };
    let ps = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(ps)) => ps,
        Ok(Err(e)) => return SessionEnd::ConnectFailed(e.to_string()),
        Err(_) => return SessionEnd::ConnectFailed("connect timed out".into()),
    };
    info!(stats = %stats, events = %events, "dashboard subscribed");
    if tx
        .send(Input::PubSub(true, "subscribed".into()))
        .await
        .is_err()
    {
        return SessionEnd::AggregatorGone;
    }
    let (mut sink, mut stream) = ps.split();
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    loop {
        let input = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            _ = ping.tick() => {
                match tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return SessionEnd::PingFailed(e.to_string()),
                    Err(_) => return SessionEnd::PingFailed("ping timed out".into()),
                }
            }
            msg = stream.next() => match msg {
                None => return SessionEnd::StreamClosed,
                Some(msg) => {
                    let channel = msg.get_channel_name().to_string();
                    match msg.get_payload::<String>() {
                        Ok(p) if channel == stats => Input::Stats(p),
                        Ok(p) if channel == events => Input::Event(p),
                        _ => Input::Garbage,
                    }
                }
            },
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            sent = tx.send(input) => if sent.is_err() { return SessionEnd::AggregatorGone },
        }
    }
}

/// Reads the config, members and leases every `every` until `shutdown`.
pub async fn run_poller(
    mut conn: RedisConn,
    keys: Keys,
    every: Duration,
    tx: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let input = match tokio::time::timeout(CONNECT_TIMEOUT, poll_once(&mut conn, &keys)).await {
            Ok(Ok(p)) => {
                if failing {
                    info!("dashboard lease poll recovered");
                }
                failing = false;
                Input::Poll(p)
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(error = %e, "dashboard lease poll failed");
                }
                failing = true;
                Input::PollFailed
            }
            Err(_) => {
                if !failing {
                    warn!("dashboard lease poll timed out");
                }
                failing = true;
                Input::PollFailed
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            sent = tx.send(input) => if sent.is_err() { return },
        }
    }
}

/// One poll: `TIME`, P from the config, the members with their expiry and
/// `http` address (the cluster-wide keys' slot), and every lease
/// ([`RedisConn::mget`]).
pub async fn poll_once(conn: &mut RedisConn, keys: &Keys) -> redis::RedisResult<PollResult> {
    type Head = ((u64, u64), Option<u32>, Vec<(String, f64)>);
    let ((secs, micros), partitions, members): Head = redis::pipe()
        .cmd("TIME")
        .hget(keys.config(), "partitions")
        .zrange_withscores(keys.members(), 0, -1)
        .query_async(conn)
        .await?;
    let redis_now_ms = secs * 1000 + micros / 1000;
    let ids: Vec<(String, InstanceId)> = members
        .iter()
        .filter_map(|(id, _)| id.parse::<InstanceId>().ok().map(|i| (id.clone(), i)))
        .collect();
    let mut leases = Vec::new();
    if let Some(p) = partitions.filter(|p| *p > 0) {
        let lease_keys: Vec<String> = (0..p).map(|i| keys.lease(PartitionId(i))).collect();
        leases = conn.mget(&lease_keys).await?;
    }
    let mut member_http = BTreeMap::new();
    if !ids.is_empty() {
        let mut pipe = redis::pipe();
        for (_, id) in &ids {
            pipe.hget(keys.member(id), "http");
        }
        let values: Vec<redis::Value> = pipe.query_async(conn).await?;
        for ((id, _), v) in ids.iter().zip(values) {
            if let Ok(Some(http)) = redis::from_redis_value::<Option<String>>(v) {
                member_http.insert(id.clone(), http);
            }
        }
    }
    debug!(partitions = ?partitions, members = members.len(), "dashboard poll");
    Ok(PollResult {
        redis_now_ms,
        partitions,
        leases,
        members: members
            .into_iter()
            .map(|(id, score)| (id, score.max(0.0) as u64))
            .collect(),
        member_http,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        let mut d = BACKOFF_START;
        for _ in 0..20 {
            d = next_backoff(d);
        }
        assert_eq!(d, BACKOFF_CAP);
        assert_eq!(
            next_backoff(Duration::from_millis(100)),
            Duration::from_millis(200)
        );
    }
}
