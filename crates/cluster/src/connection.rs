//! One connection type for both deployments, a single Redis server or a
//! Redis Cluster: [`RedisConn`]. Everything that differs between the two
//! lives here, so the rest of the code has one path.
//!
//! - Found by itself: [`RedisConn::connect`] asks a seed `INFO cluster`
//!   and opens a reconnecting connection manager (single server) or
//!   redis-rs's cluster connection (which follows `MOVED`/`ASK` and
//!   reconnects to a promoted replica).
//! - Commands, scripts and pipelines go through
//!   [`redis::aio::ConnectionLike`]; on a cluster each is routed by its
//!   first key, so a script or pipeline must keep to one hash slot (the
//!   key layout makes every partition one slot).
//! - Reads of many partitions' keys: [`RedisConn::mget`]; scripts over
//!   many partitions: [`RedisConn::per_slot_group`].
//! - Commands that belong to a node, not to a key:
//!   [`RedisConn::query_at_master_of`] (the master serving a key's slot:
//!   `WAIT`, `INFO replication`) and [`RedisConn::query_every_node`]
//!   (`INFO memory`, to check every node's eviction policy).
//! - Pub/sub: [`RedisConn::connect_subscriber`] speaks RESP3 and hands
//!   every push (messages, confirmations, disconnections) to a sender;
//!   [`RedisConn::ssubscribe`] and [`RedisConn::subscribe`] add channels,
//!   which the connection subscribes again after a reconnection.
//!
//! Where redis-rs falls short, worked around here and only here:
//! - It routes `WAIT` to every master and keeps the smallest answer; a
//!   `WAIT` belongs on the connection that made the writes, so it is
//!   routed to the key's master.
//! - Its single-server connection manager has no `ssubscribe`: the command
//!   is sent plainly, one channel at a time, so its one confirmation is
//!   its reply.
//! - Its split of a multi-slot `MGET` fails after a failover ("Mismatch in
//!   the number of multi-slot results"): [`RedisConn::mget`] sends one
//!   `GET` per key on a cluster instead.
//! - When a shard channel's slot moves (failover, resharding), the server
//!   drops the subscription with a `sunsubscribe` push, which redis-rs's
//!   subscription tracker takes as final; the caller subscribes again
//!   ([`is_dropped_shard_channel`] tells such a push).

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use futures_util::future::join_all;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, FromRedisValue, Pipeline, PushInfo, PushKind, RedisFuture, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::eviction::info_field;
use crate::redis_conn::{RedisConfig, RedisConfigError};

/// Each slot group (its items' range) with its outcome, in order.
pub type GroupResults<T, E> = Vec<(Range<usize>, Result<Vec<T>, E>)>;

/// What kind of Redis a URL leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// One server (with or without replicas).
    Single,
    /// A Redis Cluster.
    Cluster,
}

impl std::fmt::Display for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Deployment::Single => "single server",
            Deployment::Cluster => "Redis Cluster",
        })
    }
}

/// True when an `INFO cluster` reply says cluster mode is on.
pub fn is_cluster_node(info: &str) -> bool {
    info_field(info, "cluster_enabled") == Some("1")
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or TLS options are wrong.
    #[error(transparent)]
    Config(#[from] RedisConfigError),
    /// Redis refused or did not answer.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No connection within the time given to [`within`].
    #[error("no answer within {after:?}")]
    Timeout {
        /// The time given.
        after: Duration,
    },
}

/// `opening` (a connection being opened and set up) within `after`, or
/// [`ConnectError::Timeout`].
pub async fn within<T>(
    after: Duration,
    opening: impl Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    tokio::time::timeout(after, opening)
        .await
        .unwrap_or(Err(ConnectError::Timeout { after }))
}

/// Timeouts and retries of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnOptions {
    /// Time to open one TCP connection.
    pub connection_timeout: Duration,
    /// Time for one reply (`None`: no limit).
    pub response_timeout: Option<Duration>,
    /// Attempts to reconnect before a command fails.
    pub retries: u32,
}

/// redis-rs's own timeouts and retries (1 s to connect, 500 ms for a
/// reply, 6 reconnection attempts); reconnection delays from 20 ms to 1 s
/// (redis-rs: from 100 ms, uncapped), so a Redis back after a restart or a
/// failover is found again within about a second.
impl Default for ConnOptions {
    fn default() -> Self {
        Self {
            connection_timeout: Duration::from_secs(1),
            response_timeout: Some(Duration::from_millis(500)),
            retries: 6,
        }
    }
}

impl ConnOptions {
    /// With replies limited to `timeout`.
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = Some(timeout);
        self
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(self.retries as usize)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_secs(1))
    }

    fn cluster_builder(
        &self,
        builder: redis::cluster::ClusterClientBuilder,
    ) -> redis::cluster::ClusterClientBuilder {
        let builder = builder
            .connection_timeout(self.connection_timeout)
            .retries(self.retries.max(1));
        match self.response_timeout {
            Some(t) => builder.response_timeout(t),
            None => builder,
        }
    }
}

/// A connection to a single server or a Redis Cluster; cheap to clone
/// (clones share the underlying connections).
#[derive(Clone)]
pub struct RedisConn {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConn({})", self.deployment())
    }
}

impl RedisConn {
    /// Finds out what the seeds of `config` lead to: the first seed that
    /// answers `INFO cluster` decides. A server that refuses `INFO` (a
    /// restricted ACL, a renamed command) is taken for a single server; one
    /// that refuses the credentials is an error.
    pub async fn detect(
        config: &RedisConfig,
        opts: &ConnOptions,
    ) -> Result<Deployment, ConnectError> {
        let mut last = None;
        for seed in config.seeds() {
            let one = config.only(seed);
            let client = one.client()?;
            let cfg = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(opts.connection_timeout))
                .set_response_timeout(Some(opts.connection_timeout));
            let mut con = match client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            return match redis::cmd("INFO")
                .arg("cluster")
                .query_async::<String>(&mut con)
                .await
            {
                Ok(info) if is_cluster_node(&info) => Ok(Deployment::Cluster),
                Ok(_) => Ok(Deployment::Single),
                // Wrong or missing credentials: said as such by the caller.
                Err(e) if matches!(e.code(), Some("NOAUTH" | "WRONGPASS")) => Err(e.into()),
                // A restricted ACL, a renamed or disabled INFO: as before
                // cluster support, a single server is assumed.
                Err(e) if e.code().is_some_and(|c| c != "LOADING") => {
                    tracing::warn!(url = %one.redacted_url(), error = %e, "cannot read INFO cluster; taking this Redis for a single server");
                    Ok(Deployment::Single)
                }
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
        }
        Err(match last {
            Some(e) => e.into(),
            None => RedisConfigError::InvalidUrl {
                url: config.redacted_url(),
                reason: "no Redis URL given".into(),
            }
            .into(),
        })
    }

    /// Opens a connection to whatever `config` leads to, and checks it
    /// answers.
    pub async fn connect(config: &RedisConfig, opts: &ConnOptions) -> Result<Self, ConnectError> {
        let mut con = match Self::detect(config, opts).await? {
            Deployment::Single => {
                let client = config.client()?;
                Inner::Single(
                    ConnectionManager::new_with_config(client, opts.manager_config()).await?,
                )
            }
            Deployment::Cluster => {
                let client = opts.cluster_builder(config.cluster_client()?).build()?;
                Inner::Cluster(client.get_async_connection().await?)
            }
        };
        let mut ping = redis::cmd("PING");
        match &mut con {
            Inner::Single(c) => ping.exec_async(c).await?,
            Inner::Cluster(c) => {
                ping.arg("tickshard");
                ping.exec_async(c).await?
            }
        }
        Ok(Self { inner: con })
    }

    /// Opens a RESP3 connection for pub/sub: every push it receives
    /// (messages, subscription confirmations, disconnections) goes to
    /// `pushes`. The queue is unbounded because redis-rs hands pushes over
    /// without waiting; what flows through it is bounded by the senders'
    /// credit windows (see `credit`).
    pub async fn connect_subscriber(
        config: &RedisConfig,
        opts: &ConnOptions,
        pushes: UnboundedSender<PushInfo>,
    ) -> Result<Self, ConnectError> {
        let inner = match Self::detect(config, opts).await? {
            Deployment::Single => {
                let client = config.client_with(redis::ProtocolVersion::RESP3)?;
                let cfg = opts
                    .manager_config()
                    .set_push_sender(pushes)
                    .set_automatic_resubscription();
                Inner::Single(ConnectionManager::new_with_config(client, cfg).await?)
            }
            Deployment::Cluster => {
                let client = opts
                    .cluster_builder(config.cluster_client()?)
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(pushes)
                    .build()?;
                Inner::Cluster(client.get_async_connection().await?)
            }
        };
        Ok(Self { inner })
    }

    /// Which deployment this connection talks to.
    pub fn deployment(&self) -> Deployment {
        match self.inner {
            Inner::Single(_) => Deployment::Single,
            Inner::Cluster(_) => Deployment::Cluster,
        }
    }

    /// Splits `n` keys of different partitions (given by index) into
    /// groups that one script or pipeline may touch together: all of them
    /// on a single server, one each on a cluster (every partition is a
    /// hash slot of its own).
    pub fn slot_groups(&self, n: usize) -> Vec<Range<usize>> {
        match self.inner {
            Inner::Single(_) if n > 0 => std::iter::once(0..n).collect(),
            Inner::Single(_) => Vec::new(),
            Inner::Cluster(_) => (0..n).map(|i| i..i + 1).collect(),
        }
    }

    /// Runs `call` on each of [`Self::slot_groups`]`(n)` at once (each on
    /// a clone of this connection, so a cluster routes each to its
    /// master). Each group's outcome on its own, in order: on a cluster one
    /// master down fails only the groups it serves.
    pub async fn per_slot_group<T, E, F, Fut>(&self, n: usize, mut call: F) -> GroupResults<T, E>
    where
        F: FnMut(RedisConn, Range<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        let groups = self.slot_groups(n);
        let calls: Vec<Fut> = groups
            .iter()
            .map(|r| call(self.clone(), r.clone()))
            .collect();
        let results = join_all(calls).await;
        groups.into_iter().zip(results).collect()
    }

    /// [`Self::per_slot_group`] when every group must succeed: the results
    /// joined in order, or the first error.
    pub async fn per_slot_group_all<T, E, F, Fut>(&self, n: usize, call: F) -> Result<Vec<T>, E>
    where
        F: FnMut(RedisConn, Range<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        let mut out = Vec::with_capacity(n);
        for (_, r) in self.per_slot_group(n, call).await {
            out.extend(r?);
        }
        Ok(out)
    }

    /// The values of `keys` (keys of different partitions), in order: one
    /// `MGET` on a single server, one `GET` per key on a cluster, all at
    /// once. (redis-rs splits a cluster `MGET` by slot itself, but after a
    /// failover its reassembly fails with "Mismatch in the number of
    /// multi-slot results", so it is not used.)
    pub async fn mget<T>(&self, keys: &[String]) -> redis::RedisResult<Vec<T>>
    where
        T: FromRedisValue + Send,
    {
        self.per_slot_group_all(keys.len(), |mut con, r| async move {
            match &keys[r] {
                [one] => match redis::cmd("GET").arg(one).query_async(&mut con).await {
                    // As `MGET` answers for a key of another type.
                    Err(e) if e.code() == Some("WRONGTYPE") => {
                        Ok(vec![redis::from_redis_value(Value::Nil)?])
                    }
                    r => Ok(vec![r?]),
                },
                many => redis::cmd("MGET").arg(many).query_async(&mut con).await,
            }
        })
        .await
    }

    /// Subscribes to shard channel `channel` (`SSUBSCRIBE`, Redis ≥ 7.0),
    /// on the master serving its slot. Only on a subscriber connection.
    pub async fn ssubscribe(&mut self, channel: &str) -> redis::RedisResult<()> {
        match &mut self.inner {
            Inner::Single(c) => redis::cmd("SSUBSCRIBE").arg(channel).exec_async(c).await,
            Inner::Cluster(c) => c.ssubscribe(channel).await,
        }
    }

    /// Subscribes to (cluster-wide) channel `channel`. Only on a
    /// subscriber connection.
    pub async fn subscribe(&mut self, channel: &str) -> redis::RedisResult<()> {
        match &mut self.inner {
            Inner::Single(c) => c.subscribe(channel).await,
            Inner::Cluster(c) => c.subscribe(channel).await,
        }
    }

    /// Runs `cmd` on the master serving `key`'s slot (on a single server:
    /// on it), over the same connection as that master's other commands.
    pub async fn query_at_master_of<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        key: &str,
    ) -> redis::RedisResult<T> {
        match &mut self.inner {
            Inner::Single(c) => cmd.query_async(c).await,
            Inner::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let v = c.route_command(cmd.clone(), routing).await?;
                Ok(redis::from_redis_value(v)?)
            }
        }
    }

    /// Every key matching `pattern` (Redis glob), found with `SCAN` on
    /// every master, so a large keyspace never blocks a server.
    pub async fn scan_matching(&mut self, pattern: &str) -> redis::RedisResult<Vec<String>> {
        let mut names = Vec::new();
        match &mut self.inner {
            Inner::Single(c) => scan_one(c, pattern, &mut names).await?,
            Inner::Cluster(c) => {
                let masters =
                    on_each(c, &redis::cmd("PING"), MultipleNodeRoutingInfo::AllMasters).await?;
                for (addr, _) in masters {
                    let Some((host, port)) = addr.rsplit_once(':') else {
                        continue;
                    };
                    let Ok(port) = port.parse() else { continue };
                    let mut node = OnNode {
                        conn: c,
                        host: host.to_owned(),
                        port,
                    };
                    scan_one(&mut node, pattern, &mut names).await?;
                }
            }
        }
        Ok(names)
    }

    /// Runs `cmd` on every node (masters and replicas; on a single server:
    /// on it), each reply with the node's address.
    pub async fn query_every_node(
        &mut self,
        cmd: &Cmd,
    ) -> redis::RedisResult<Vec<(String, Value)>> {
        match &mut self.inner {
            Inner::Single(c) => Ok(vec![(String::new(), cmd.query_async(c).await?)]),
            Inner::Cluster(c) => on_each(c, cmd, MultipleNodeRoutingInfo::AllNodes).await,
        }
    }
}

/// `cmd` on each node of `nodes`: every reply with the node's address
/// (`host:port`), as redis-rs answers a command routed to several nodes
/// without a policy to combine them.
async fn on_each(
    conn: &mut ClusterConnection,
    cmd: &Cmd,
    nodes: MultipleNodeRoutingInfo,
) -> redis::RedisResult<Vec<(String, Value)>> {
    let routing = RoutingInfo::MultiNode((nodes, None));
    match conn.route_command(cmd.clone(), routing).await? {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(addr, v)| Ok((redis::from_redis_value(addr)?, v)))
            .collect(),
        other => Ok(vec![(String::new(), other)]),
    }
}

/// Every key name matching `pattern` (Redis glob) on the server behind
/// `conn`, found with `SCAN` so a large keyspace never blocks it.
async fn scan_one<C: ConnectionLike + Send>(
    conn: &mut C,
    pattern: &str,
    names: &mut Vec<String>,
) -> redis::RedisResult<()> {
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        names.extend(batch);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// True when `push` is the server dropping shard channel `channel` (a
/// `sunsubscribe` nobody asked for: its slot moved).
pub fn is_dropped_shard_channel(push: &PushInfo, channel: &str) -> bool {
    push.kind == PushKind::SUnsubscribe
        && matches!(push.data.first(), Some(Value::BulkString(c)) if c == channel.as_bytes())
}

/// A cluster connection whose commands all go to one node.
struct OnNode<'a> {
    conn: &'a mut ClusterConnection,
    host: String,
    port: u16,
}

impl OnNode<'_> {
    fn route(&self) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

impl ConnectionLike for OnNode<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let routing = RoutingInfo::SingleNode(self.route());
        Box::pin(self.conn.route_command(cmd.clone(), routing))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let routing = self.route();
        Box::pin(
            self.conn
                .route_pipeline(cmd.clone(), offset, count, routing),
        )
    }

    fn get_db(&self) -> i64 {
        0
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Single(c) => c.req_packed_command(cmd),
            Inner::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Single(c) => c.req_packed_commands(cmd, offset, count),
            Inner::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_cluster() {
        assert!(is_cluster_node("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!is_cluster_node("# Cluster\r\ncluster_enabled:0\r\n"));
        assert!(!is_cluster_node(""));
    }

    #[test]
    fn a_dropped_shard_channel_is_told_from_other_pushes() {
        let push = |kind, ch: &str| PushInfo {
            kind,
            data: vec![Value::BulkString(ch.as_bytes().to_vec()), Value::Int(0)],
        };
        assert!(is_dropped_shard_channel(
            &push(PushKind::SUnsubscribe, "a"),
            "a"
        ));
        assert!(!is_dropped_shard_channel(
            &push(PushKind::SUnsubscribe, "b"),
            "a"
        ));
        assert!(!is_dropped_shard_channel(
            &push(PushKind::SSubscribe, "a"),
            "a"
        ));
    }
}
