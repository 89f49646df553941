//! Joining: connect (failing fast with a typed error), create or check
//! `{ns}:{cluster}:config`, subscribe to our inbox and the events, and register as a
//! member with a unique id.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::{ensure_config, ClusterOptions, Timings};
use super::connection::{within, ConnOptions, ConnectError, RedisConn};
use super::error::ClusterError;
use super::events::ClusterEvent;
use super::handle::{ClusterHandle, Counters, Shared};
use super::lease::LeaseScripts;
use super::membership::{Beat, Membership, Registration};
use super::messaging::Pending;
use super::ownership::ViewCell;
use super::runtime::{announce, ClusterRuntime};
use super::subscriber::{subscribe, Subscriber};
use super::{Cluster, ClusterChannels};
use crate::clock::now_ms;
use crate::redis_conn::RedisConfig;

/// How long start-up waits for Redis before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `url` is already redacted.
fn classify(url: &str, e: redis::RedisError) -> ClusterError {
    let url = url.to_owned();
    let reason = e.to_string();
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
    if auth {
        ClusterError::Auth { url, reason }
    } else if e.kind() == redis::ErrorKind::InvalidClientConfig {
        ClusterError::InvalidUrl { url, reason }
    } else {
        let reason = with_tls_hint(&url, reason, e.is_connection_refusal());
        ClusterError::Unreachable { url, reason }
    }
}

/// A server that speaks TLS drops a plain connection without a word: say
/// what probably happened.
fn with_tls_hint(url: &str, reason: String, refused: bool) -> String {
    if refused || url.to_ascii_lowercase().starts_with("rediss://") {
        reason
    } else {
        format!("{reason} (if that port expects TLS, use a rediss:// URL)")
    }
}

/// The connection options of the cluster layer's connections.
pub(crate) fn conn_options(timings: &Timings) -> ConnOptions {
    ConnOptions {
        connection_timeout: timings.op_timeout.max(Duration::from_millis(500)),
        response_timeout: Some(timings.op_timeout),
        retries: 2,
    }
}

/// The typed error of a connection that could not be opened.
pub(crate) fn connect_error(redis: &RedisConfig, e: ConnectError) -> ClusterError {
    let url = redis.redacted_url();
    match e {
        ConnectError::Config(e) => ClusterError::from_config(redis, e),
        ConnectError::Redis(e) => classify(&url, e),
        ConnectError::Timeout { after } => {
            let reason = with_tls_hint(&url, format!("no answer within {after:?}"), false);
            ClusterError::Unreachable { url, reason }
        }
    }
}

/// `what` within [`CONNECT_TIMEOUT`], with a typed error.
pub(crate) async fn within_connect_timeout<T>(
    redis: &RedisConfig,
    what: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ClusterError> {
    within(CONNECT_TIMEOUT, what)
        .await
        .map_err(|e| connect_error(redis, e))
}

/// A connection (single server or Redis Cluster) that reconnects by
/// itself with capped backoff.
pub(crate) async fn connect(
    redis: &RedisConfig,
    timings: &Timings,
) -> Result<RedisConn, ClusterError> {
    within_connect_timeout(redis, RedisConn::connect(redis, &conn_options(timings))).await
}

fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Cluster {
    /// Connects, creates or checks `{ns}:{cluster}:config`, subscribes to this
    /// instance's inbox and the events, and registers as a member.
    ///
    /// Fails fast with a typed error for a bad URL, unreachable Redis,
    /// refused credentials, a partition-count mismatch, or an id that a
    /// live instance already uses. An id left behind by a dead instance is
    /// waited out (at most one member TTL).
    pub async fn join(
        opts: ClusterOptions,
    ) -> Result<(ClusterHandle, ClusterRuntime, ClusterChannels), ClusterError> {
        let timings = Timings::for_lease(opts.lease);
        let url = opts.redis.redacted_url();
        let mut control = connect(&opts.redis, &timings).await?;
        info!(redis = %url, deployment = %control.deployment(), "connected to Redis");
        crate::eviction::check(&mut control, &url, opts.allow_eviction).await?;
        let publisher = connect(&opts.redis, &timings).await?;
        ensure_config(&mut control, &opts.keys, opts.partitions, opts.lease).await?;

        let partitions = opts.partitions.get() as usize;
        let (events, _) = broadcast::channel(1024);
        let (broadcasts, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            instance: opts.instance.clone(),
            keys: opts.keys.clone(),
            partitions: opts.partitions,
            timings,
            view: ViewCell::new(partitions),
            counters: Counters::default(),
            events,
            broadcasts,
            pending: Pending::default(),
            next_correlation: AtomicU64::new(rand::random::<u64>() >> 1),
            publisher,
            credits: Default::default(),
            credit_version: tokio::sync::watch::channel(0).0,
            acks_pending: Default::default(),
        });
        let handle = ClusterHandle {
            shared: Arc::clone(&shared),
        };

        // Subscribe before registering, so nobody sends to an inbox we do not hear.
        let first = subscribe(&opts.redis, &shared).await?;
        let (inbox_tx, inbox) = mpsc::channel(1024);
        let (requests_tx, requests) = mpsc::channel(256);
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let (ownership_tx, ownership) = mpsc::channel((4 * partitions).max(64));
        let subscriber_cancel = CancellationToken::new();
        let subscriber = Subscriber {
            redis: opts.redis.clone(),
            url: url.clone(),
            handle: handle.clone(),
            inbox: inbox_tx,
            requests: requests_tx,
            internal: internal_tx,
        };
        let subscriber_task = tokio::spawn(subscriber.run(first, subscriber_cancel.clone()));
        tokio::spawn(super::credit::run_acker(
            handle.clone(),
            subscriber_cancel.clone(),
        ));
        // From here on, failing must stop the subscriber.
        let guard = subscriber_cancel.clone().drop_guard();

        let membership = Membership::new();
        let registration = Registration {
            id: opts.instance.clone(),
            http: opts.http_addr.clone(),
            pid: std::process::id(),
            started_at_ms: now_ms(),
            incarnation: random_token(),
        };
        register(&mut control, &shared, &membership, &registration).await?;
        announce(
            &mut control,
            &shared,
            &[ClusterEvent::MemberJoined {
                ts_ms: now_ms(),
                instance: opts.instance.clone(),
            }],
        )
        .await;
        info!(instance = %opts.instance, partitions, lease_ms = timings.lease.as_millis() as u64, "joined the cluster");

        let runtime = ClusterRuntime {
            shared,
            con: control,
            // A master that does not answer fails only its partitions, in
            // time for the others' answers to count.
            scripts: LeaseScripts::new().with_group_timeout(timings.op_timeout * 3 / 4),
            membership,
            registration,
            ownership: ownership_tx,
            internal: internal_rx,
            subscriber_task,
            subscriber_guard: guard,
        };
        Ok((
            handle,
            runtime,
            ClusterChannels {
                ownership,
                inbox,
                requests,
            },
        ))
    }
}

/// Registers our id, waiting out a dead incarnation's entry; a live one
/// (its heartbeat moves while we wait) is an error.
async fn register(
    con: &mut RedisConn,
    shared: &Shared,
    membership: &Membership,
    me: &Registration,
) -> Result<(), ClusterError> {
    let ttl = shared.timings.member_ttl;
    let deadline = Instant::now() + ttl + shared.timings.renew_every;
    let mut first_expiry = None;
    loop {
        match membership.beat(con, &shared.keys, me, ttl, true).await? {
            Beat::Ok { .. } => return Ok(()),
            Beat::Busy { expiry_ms } => {
                match first_expiry {
                    None => {
                        warn!(instance = %me.id, "id held by an earlier incarnation; waiting for it to expire");
                        first_expiry = Some(expiry_ms);
                    }
                    Some(first) if first != expiry_ms => {
                        return Err(ClusterError::DuplicateInstance {
                            id: me.id.clone(),
                            key: shared.keys.members(),
                        })
                    }
                    Some(_) => {}
                }
                if Instant::now() >= deadline {
                    return Err(ClusterError::DuplicateInstance {
                        id: me.id.clone(),
                        key: shared.keys.members(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
