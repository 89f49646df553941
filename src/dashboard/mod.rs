//! The live dashboard: `tickshard dashboard`.
//!
//! ```text
//! {ns}:stats ──┐ pub/sub (redis_io)                         ┌─▶ browser 1
//! {ns}:events ─┤            ┌────────────┐  watch (latest)  ├─▶ browser 2
//! leases,      ├─ Input ──▶ │ aggregator │ ───────────────▶ ├─▶ ...
//! members poll ┘  (bounded) │ ClusterView│   4 frames / s   └─  (server)
//!                           └────────────┘
//! ```
//!
//! - [`redis_io`]: subscribes (reconnecting with capped backoff) and polls
//!   leases and members every ~500 ms.
//! - [`aggregate`]: the pure [`aggregate::ClusterView`]: computes rates
//!   from cumulative counters, keeps the event log, and builds the frame.
//! - [`latency`]: every instance's interval histograms merged per second
//!   (never averaging percentiles), the one source of the latency cards
//!   (the last complete seconds) and the chart (one point per second).
//! - [`history`]: the chart points, one per complete second.
//! - [`window`]: the arithmetic: merged percentiles over windows of whole
//!   seconds, rates.
//! - [`model`]: the `/ws` JSON (the "Dashboard stream" contract).
//! - [`server`]: axum routes, one task per browser reading a `watch`.
//! - [`demo`]: the optional hook behind the demo page's buttons.
//!
//! Start it with [`run`] (until shutdown) or [`start`] (returns the bound
//! address, for tests and the demo).

pub mod aggregate;
pub mod assets;
pub mod demo;
pub mod history;
pub mod latency;
pub mod model;
pub mod redis_io;
pub mod server;
pub mod window;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::clock::now_ms;
use crate::cluster::connection::within;
use crate::cluster::{ConnOptions, ConnectError, RedisConn};
use crate::config::DashboardArgs;
use crate::http::auth::{check_exposure, require_token, AuthToken, ExposureError};
use crate::keys::Keys;
use crate::redis_conn::{RedisConfig, RedisConfigError};

pub use demo::{DemoAction, DemoControl, DemoFuture};
pub use model::DashboardSnapshot;

/// Default most `/ws` clients at once.
pub const DEFAULT_MAX_CLIENTS: u32 = 256;

/// Settings of the dashboard.
#[derive(Clone)]
pub struct DashboardConfig {
    /// How to reach Redis (URL, credentials, TLS).
    pub redis: RedisConfig,
    /// Cluster key names.
    pub keys: Keys,
    /// Where to serve (port 0 picks a free one).
    pub listen: SocketAddr,
    /// How often a frame is pushed to browsers (default 250 ms).
    pub push_every: Duration,
    /// How often leases and members are read (default 500 ms).
    pub poll_every: Duration,
    /// How often the pub/sub connection is checked with a PING (default 5 s).
    pub ping_every: Duration,
    /// A browser whose frame is not sent within this is dropped (default 5 s).
    pub send_timeout: Duration,
    /// Demo controls behind `POST /api/demo/...` (none: 404).
    pub demo: Option<Arc<dyn DemoControl>>,
    /// Token required on every route but `/healthz` (see [`crate::http::auth`]).
    pub auth_token: Option<AuthToken>,
    /// Allow a non-loopback `listen` without a token.
    pub insecure: bool,
    /// Most `/ws` clients at once; more get 503.
    pub max_clients: u32,
    /// The latency cards cover the last this many complete seconds
    /// (default [`latency::LATENCY_WINDOW_S`], at most [`latency::LATE_S`]).
    pub latency_window_s: u64,
}

impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("keys", &self.keys)
            .field("listen", &self.listen)
            .field("push_every", &self.push_every)
            .field("poll_every", &self.poll_every)
            .field("demo", &self.demo.is_some())
            .field("redis", &self.redis)
            .field("auth_token", &self.auth_token)
            .field("max_clients", &self.max_clients)
            .field("latency_window_s", &self.latency_window_s)
            .finish_non_exhaustive()
    }
}

impl DashboardConfig {
    /// Defaults for `redis`, namespace `namespace`, serving on `listen`.
    pub fn new(redis: impl Into<RedisConfig>, namespace: &str, listen: SocketAddr) -> Self {
        Self {
            redis: redis.into(),
            auth_token: None,
            insecure: false,
            max_clients: DEFAULT_MAX_CLIENTS,
            keys: Keys::new(namespace),
            listen,
            push_every: Duration::from_millis(250),
            poll_every: Duration::from_millis(500),
            ping_every: redis_io::PING_EVERY,
            send_timeout: Duration::from_secs(5),
            demo: None,
            latency_window_s: latency::LATENCY_WINDOW_S,
        }
    }

    /// From the command line.
    pub fn from_args(args: &DashboardArgs) -> Self {
        let mut config = Self::new(
            args.cluster.redis_config(),
            &args.cluster.namespace,
            args.listen,
        );
        config.auth_token = args.auth.auth_token.clone();
        config.insecure = args.auth.insecure;
        config.max_clients = args.max_clients;
        config
    }

    /// With demo controls installed.
    pub fn with_demo(mut self, control: Arc<dyn DemoControl>) -> Self {
        self.demo = Some(control);
        self
    }
}

/// Why the dashboard could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The Redis options are invalid.
    #[error(transparent)]
    RedisUrl(#[from] RedisConfigError),
    /// The listen address is reachable from elsewhere but unprotected.
    #[error("--listen: {0}")]
    Exposure(#[from] ExposureError),
    /// Redis is unreachable at start-up.
    #[error("redis unreachable at start-up: {0}")]
    RedisUnreachable(String),
    /// Redis is reachable but unusable (e.g. it may evict keys).
    #[error(transparent)]
    Redis(#[from] crate::cluster::ClusterError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}

/// A running dashboard.
#[derive(Debug)]
pub struct Dashboard {
    addr: SocketAddr,
    task: JoinHandle<Result<(), DashboardError>>,
}

impl Dashboard {
    /// The bound address (`http://{addr}/`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until it has stopped (after the shutdown token fired).
    pub async fn wait(self) -> Result<(), DashboardError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(DashboardError::Serve(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Serves the dashboard until `shutdown`.
pub async fn run(
    config: DashboardConfig,
    shutdown: CancellationToken,
) -> Result<(), DashboardError> {
    start(config, shutdown).await?.wait().await
}

/// Connects to Redis (failing fast if it is unreachable), binds
/// `config.listen`, logs `dashboard listening addr=...` and serves in the
/// background until `shutdown`.
pub async fn start(
    config: DashboardConfig,
    shutdown: CancellationToken,
) -> Result<Dashboard, DashboardError> {
    check_exposure(config.listen, config.auth_token.as_ref(), config.insecure)?;
    // Fail fast with the real reason.
    let opts = ConnOptions::default();
    let connect = RedisConn::connect(&config.redis, &opts);
    let conn = match within(Duration::from_secs(5), connect).await {
        Ok(c) => c,
        Err(ConnectError::Config(e)) => return Err(e.into()),
        Err(e) => return Err(DashboardError::RedisUnreachable(e.to_string())),
    };
    info!(redis = %config.redis.redacted_url(), deployment = %conn.deployment(), "dashboard connected to Redis");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DashboardError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DashboardError::Bind {
            addr: config.listen,
            source,
        })?;
    info!(addr = %addr, namespace = config.keys.namespace(), "dashboard listening");

    let inner = shutdown.child_token();
    let (tx, rx) = mpsc::channel(4096);
    // Until the first tick, clients get a valid, empty snapshot.
    let mut empty = aggregate::ClusterView::with_latency_window(config.latency_window_s).snapshot(
        now_ms(),
        config.demo.is_some(),
        0,
    );
    empty.cluster = config.keys.namespace().to_string();
    let empty = serde_json::to_string(&empty).unwrap_or_default();
    let (frames_tx, frames_rx) = watch::channel(Utf8Bytes::from(empty));
    let clients = Arc::new(AtomicU64::new(0));
    let live = crate::live::LiveHub::start(
        config.redis.clone(),
        config.keys.clone(),
        None,
        Arc::new(|what, detail| tracing::warn!(?what, detail, "bad live input")),
        inner.clone(),
    );
    let tasks = vec![
        tokio::spawn(redis_io::run_subscriber(
            config.redis.clone(),
            config.keys.clone(),
            config.ping_every,
            tx.clone(),
            inner.clone(),
        )),
        tokio::spawn(redis_io::run_poller(
            conn,
            config.keys.clone(),
            config.poll_every,
            tx,
            inner.clone(),
        )),
        tokio::spawn(run_aggregator(
            rx,
            aggregate::ClusterView::with_latency_window(config.latency_window_s),
            FrameSink {
                frames: frames_tx,
                clients: clients.clone(),
                cluster: config.keys.namespace().to_string(),
                demo: config.demo.is_some(),
            },
            config.push_every,
            inner.clone(),
        )),
    ];
    let state = server::AppState {
        frames: frames_rx,
        clients,
        demo: config.demo.clone(),
        shutdown: inner.clone(),
        send_timeout: config.send_timeout,
        max_clients: u64::from(config.max_clients),
    };
    let app = require_token(
        server::router(state).merge(crate::live::ws::router(live, inner.clone())),
        config.auth_token.clone(),
        Arc::new(|| {}),
    );
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(inner.clone().cancelled_owned())
            .await;
        inner.cancel();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        info!(addr = %addr, "dashboard stopped");
        served.map_err(DashboardError::Serve)
    });
    Ok(Dashboard { addr, task })
}

/// Where the aggregator's frames go, and what it stamps on them.
struct FrameSink {
    frames: watch::Sender<Utf8Bytes>,
    clients: Arc<AtomicU64>,
    cluster: String,
    demo: bool,
}

/// Owns the [`aggregate::ClusterView`]: applies every input and publishes
/// a frame every `push_every`.
async fn run_aggregator(
    mut rx: mpsc::Receiver<redis_io::Input>,
    mut view: aggregate::ClusterView,
    sink: FrameSink,
    push_every: Duration,
    shutdown: CancellationToken,
) {
    use redis_io::Input;
    let mut ticker = tokio::time::interval(push_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            input = rx.recv() => {
                let now = now_ms();
                match input {
                    None => return,
                    Some(Input::Stats(p)) => { view.on_stats_payload(now, &p); }
                    Some(Input::Event(p)) => { view.on_event_payload(&p); }
                    Some(Input::Garbage) => view.count_bad(),
                    Some(Input::PubSub(up, why)) => view.on_pubsub(now, up, &why),
                    Some(Input::Poll(p)) => view.on_poll(now, p),
                    Some(Input::PollFailed) => view.on_poll_failed(),
                }
            }
            _ = ticker.tick() => {
                let now = now_ms();
                view.tick(now);
                let clients = sink.clients.load(Ordering::Relaxed);
                let mut snap = view.snapshot(now, sink.demo, clients);
                snap.cluster.clone_from(&sink.cluster);
                if let Ok(json) = serde_json::to_string(&snap) {
                    sink.frames.send_replace(Utf8Bytes::from(json));
                }
            }
        }
    }
}
