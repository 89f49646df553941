//! `tickshard processor`: wires one instance together and runs it until
//! shutdown.
//!
//! ```text
//! feed client ─┐                      ┌─▶ publisher ─PUBLISH─▶ other inboxes
//! /ingest ─────┼─▶ worker (engine) ───┼─▶ flusher ─fenced Lua─▶ Redis
//! inbox ───────┘        ▲             └─▶ replay requests ─▶ feed client
//!          cluster runtime (leases, membership, handover)
//! ```
//!
//! Shutdown order: the signal stops the feed client and the HTTP server;
//! the cluster runtime hands every partition over (the worker flushes each
//! one before its lease is released) and leaves the membership; then the
//! worker stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, ClusterError, ClusterOptions, ConnOptions, RedisConn};
use crate::config::ProcessorArgs;
use crate::engine::{EngineConfig, GapPolicy};
use crate::http::{self, DataState};
use crate::ingest::feed::FeedClient;
use crate::keys::Keys;
use crate::operator::{OperatorError, OperatorSet};
use crate::stats::{
    run_publisher as run_stats_publisher, BadInput, FnSource, Metrics, PublisherConfig,
};
use crate::store::Store;
use crate::tick::InstanceId;
use crate::worker::admission::AdmissionConfig;
use crate::worker::{run_publisher, Worker, WorkerChannels, WorkerConfig, WorkerOutputs};

/// How long open HTTP connections may delay the exit.
const HTTP_GRACE: Duration = Duration::from_secs(2);

/// Why a processor could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// `--id` is not a valid instance id.
    #[error("invalid --id {0:?}: use 1-64 characters from A-Z a-z 0-9 _ . -")]
    InvalidId(String),
    /// The HTTP address could not be bound.
    #[error("cannot listen on --http {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Joining or running the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The HTTP address is reachable from elsewhere but unprotected.
    #[error("--http: {0}")]
    Exposure(#[from] http::auth::ExposureError),
    /// The Redis options are invalid.
    #[error(transparent)]
    RedisConfig(#[from] crate::redis_conn::RedisConfigError),
    /// A Redis connection for the store could not be made.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A Redis connection could not be opened.
    #[error("redis: {0}")]
    Connect(#[from] crate::cluster::ConnectError),
    /// The operators are misconfigured.
    #[error("operators: {0}")]
    Operator(#[from] OperatorError),
}

/// Runs a processor as a program's whole job, as `tickshard processor`
/// does: logging, a runtime of `--worker-threads` threads, Ctrl-C and
/// SIGTERM for a clean shutdown, and one error line prefixed with
/// `program` on failure. `operators` are what every symbol runs (start
/// from [`ProcessorArgs::operators`] and push your own).
pub fn run_process(
    program: &str,
    args: ProcessorArgs,
    operators: OperatorSet,
) -> std::process::ExitCode {
    crate::logging::init();
    // A processor's work is one worker task and a few I/O tasks: on a
    // machine it shares with its peers, Redis and the feed, one runtime
    // thread avoids the cross-thread wake-ups that cost more CPU than
    // they win (see `--worker-threads`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads as usize)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(async {
            let shutdown = crate::shutdown::on_signals();
            run_with(args, operators, shutdown).await
        }),
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line at the edge, not a debug dump.
            eprintln!("{program}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The default instance id: `p-<pid>-<random hex>`.
pub fn default_id() -> String {
    format!("p-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// Runs one processor instance with the built-in operators its options
/// ask for, until `shutdown` is cancelled.
pub async fn run(args: ProcessorArgs, shutdown: CancellationToken) -> Result<(), ProcessorError> {
    let operators = args.operators()?;
    run_with(args, operators, shutdown).await
}

/// Runs one processor instance with `operators`, until `shutdown` is
/// cancelled.
pub async fn run_with(
    args: ProcessorArgs,
    operators: OperatorSet,
    shutdown: CancellationToken,
) -> Result<(), ProcessorError> {
    let raw_id = args.id.clone().unwrap_or_else(default_id);
    let instance: InstanceId = raw_id
        .parse()
        .map_err(|_| ProcessorError::InvalidId(raw_id.clone()))?;
    let keys = Keys::new(args.cluster.namespace.clone());
    let exposure =
        http::auth::check_exposure(args.http, args.auth.auth_token.as_ref(), args.auth.insecure)?;
    let redis = args.cluster.redis_config();
    let listener = TcpListener::bind(args.http)
        .await
        .map_err(|source| ProcessorError::Http {
            addr: args.http,
            source,
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| ProcessorError::Http {
            addr: args.http,
            source,
        })?;

    let (cluster, runtime, channels) = Cluster::join(ClusterOptions {
        redis: redis.clone(),
        keys: keys.cluster().clone(),
        instance: instance.clone(),
        partitions: args.partitions,
        lease: args.lease(),
        http_addr: Some(http_addr.to_string()),
        allow_eviction: args.allow_eviction,
    })
    .await?;
    tracing::info!(instance = %instance, addr = %http_addr, exposure = ?exposure, "http listening");

    let conn = RedisConn::connect(&redis, &ConnOptions::default()).await?;
    // The store has a connection of its own: its flush scripts never queue
    // behind the stats messages, nor those behind a flush.
    let store_conn = RedisConn::connect(
        &redis,
        &ConnOptions::default().with_response_timeout(crate::store::FLUSH_RESPONSE_TIMEOUT),
    )
    .await?;
    tracing::info!(operators = ?operators, "operators");
    let store = Store::new(
        store_conn,
        keys.clone(),
        instance.clone(),
        operators.clone(),
    )
    .with_chunk(args.flush_chunk as usize)
    .with_output_max_len(args.output_max_len);
    let metrics = Arc::new(Metrics::new());

    let (input_tx, input_rx) = mpsc::channel(256);
    let (replay_tx, replay_rx) = mpsc::channel(4096);
    let (forward_tx, forward_rx) = mpsc::channel(64);
    let (query_tx, query_rx) = mpsc::channel(256);
    let (hot_tx, hot_rx) = watch::channel(Vec::new());

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(run_publisher(cluster.clone(), metrics.clone(), forward_rx));
    match &args.feed {
        Some(url) => {
            let client = FeedClient {
                url: url.clone(),
                instance: instance.to_string(),
                input: input_tx.clone(),
                replays: replay_rx,
                metrics: metrics.clone(),
            };
            tasks.spawn(client.run(shutdown.clone()));
        }
        None => tracing::info!("no --feed given: ticks come only from /ingest clients"),
    }
    let source = {
        let view_of = cluster.clone();
        FnSource::new(
            move || view_of.view().owned_count(std::time::Instant::now()) as u32,
            move |limit| {
                let mut hot = hot_rx.borrow().clone();
                hot.truncate(limit);
                hot
            },
        )
    };
    tasks.spawn(run_stats_publisher(
        conn,
        metrics.clone(),
        Arc::new(source),
        PublisherConfig::new(keys.clone(), instance.to_string()),
        shutdown.clone(),
    ));

    let app = http::router(cluster.clone()).merge(http::data::routes(
        DataState::new(
            cluster.clone(),
            metrics.clone(),
            query_tx,
            input_tx,
            shutdown.clone(),
        )
        .with_ingest_max_bytes(usize::try_from(args.ingest_max_bytes).unwrap_or(usize::MAX)),
    ));
    let live = {
        let metrics = metrics.clone();
        crate::live::LiveHub::start(
            redis.clone(),
            keys.clone(),
            Some(args.partitions),
            Arc::new(move |what, detail| {
                let kind = match what {
                    crate::live::hub::Malformed::LiveMessage => BadInput::ForeignMessage,
                    crate::live::hub::Malformed::Request => BadInput::InvalidRequest,
                };
                metrics.bad_input(kind, &detail)
            }),
            shutdown.clone(),
        )
    };
    let app = app.merge(crate::live::ws::router(live, shutdown.clone()));
    let rejected = metrics.clone();
    let app = http::auth::require_token(
        app,
        args.auth.auth_token.clone(),
        Arc::new(move || {
            rejected.bad_input(
                BadInput::Unauthorized,
                &"HTTP request without the right bearer token",
            )
        }),
    );
    let http_stop = CancellationToken::new();
    let http_task = tokio::spawn(http::serve(listener, app, http_stop.clone()));

    let max_held = 1_000_000;
    let replay_retry = Duration::from_millis((args.gap_replay_ms * 4).max(200));
    let worker_cfg = WorkerConfig {
        admission: AdmissionConfig {
            window: args.flow_window,
            hold_limit: max_held / 4,
            stall_after: args.lease() / 2,
            replay_grace: replay_retry * 2,
        },
        engine: EngineConfig {
            gap: GapPolicy {
                replay_after: Duration::from_millis(args.gap_replay_ms),
                replay_retry,
                skip_after: Duration::from_millis(args.gap_timeout_ms),
                max_replay_span: 10_000,
            },
            max_held,
            max_loading_held: 200_000,
            max_outputs: crate::engine::DEFAULT_MAX_OUTPUTS,
            operators,
        },
        flush_every: Duration::from_millis(args.flush_ms),
        gap_scan_every: Duration::from_millis((args.gap_replay_ms / 2).clamp(5, 100)),
        max_unrouted: 200_000,
        max_drain: 8,
        max_drain_backlog: 64,
    };
    let worker = Worker::new(
        worker_cfg,
        cluster.clone(),
        store,
        metrics.clone(),
        WorkerOutputs {
            forward: forward_tx,
            replays: replay_tx,
            hot: hot_tx,
        },
    );
    let worker_stop = CancellationToken::new();
    let worker_task = tokio::spawn(worker.run(
        WorkerChannels {
            input: input_rx,
            inbox: channels.inbox,
            ownership: channels.ownership,
            requests: channels.requests,
            queries: query_rx,
        },
        worker_stop.clone(),
    ));

    let result = runtime.run(shutdown.clone()).await;
    worker_stop.cancel();
    let _ = worker_task.await;
    http_stop.cancel();
    match tokio::time::timeout(HTTP_GRACE, http_task).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "http server task failed"),
        Err(_) => {
            tracing::warn!(grace = ?HTTP_GRACE, "http connections still open at shutdown; not waiting")
        }
        Ok(Ok(Ok(()))) => {}
    }
    shutdown.cancel();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within 5 s");
    }
    let m = cluster.metrics();
    tracing::info!(
        instance = %instance,
        leases_acquired = m.leases_acquired,
        leases_released = m.leases_released,
        leases_lost = m.leases_lost,
        ticks_in = metrics.counters.ticks_in.get(),
        applied = metrics.counters.applied.get(),
        forwarded_out = metrics.counters.forwarded_out.get(),
        "processor stopped"
    );
    Ok(result?)
}
