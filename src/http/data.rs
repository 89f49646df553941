//! The data-path routes of a processor's HTTP server:
//!
//! - `GET /api/symbols/{SYMBOL}`: the owner's live state of a symbol. Any
//!   instance answers: a non-owner asks the owner over its inbox with a
//!   correlation id and a timeout. 400 for an invalid symbol, 404 for one
//!   never seen, 503 when the owner is unknown or gone, 504 when it is slow.
//! - `GET /metrics`: this instance's metric families
//!   ([`crate::stats::exposition`]), served by [`super::metrics`].
//! - `GET /ingest` (WebSocket): push ticks as JSON or binary batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use prometheus_client::registry::Registry;

use crate::cluster::{ClusterHandle, PartitionOwner, RequestError};
use crate::ingest::push::{self, MAX_INGEST_CONNECTIONS};
use crate::ingest::IngestInput;
use crate::partition::partition_of;
use crate::query::{QueryReply, SymbolQuery};
use crate::stats::{processor_registry, BadInput, ClusterCollector, Metrics};
use crate::tick::Symbol;
use crate::worker::LocalQuery;

/// Default largest `/ingest` message (1 MiB, about 10,000 JSON ticks).
pub const DEFAULT_INGEST_MAX_BYTES: usize = 1 << 20;

/// How long a symbol query waits for the owner.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// What the data-path routes need.
#[derive(Clone)]
pub struct DataState {
    /// The cluster.
    pub cluster: ClusterHandle,
    /// This instance's metrics.
    pub metrics: Arc<Metrics>,
    /// The families of `/metrics`: `metrics` and the cluster's.
    pub registry: Arc<Registry>,
    /// Queries for the local worker.
    pub queries: mpsc::Sender<LocalQuery>,
    /// Input for the local worker.
    pub ingest: mpsc::Sender<IngestInput>,
    /// Limits concurrent `/ingest` connections.
    pub ingest_slots: Arc<Semaphore>,
    /// Largest `/ingest` message, in bytes.
    pub ingest_max_bytes: usize,
    /// Process shutdown.
    pub shutdown: CancellationToken,
}

impl DataState {
    /// State for the routes.
    pub fn new(
        cluster: ClusterHandle,
        metrics: Arc<Metrics>,
        queries: mpsc::Sender<LocalQuery>,
        ingest: mpsc::Sender<IngestInput>,
        shutdown: CancellationToken,
    ) -> Self {
        let registry = processor_registry(metrics.clone(), ClusterCollector(cluster.clone()));
        Self {
            cluster,
            metrics,
            registry: Arc::new(registry),
            queries,
            ingest,
            ingest_slots: Arc::new(Semaphore::new(MAX_INGEST_CONNECTIONS)),
            ingest_max_bytes: DEFAULT_INGEST_MAX_BYTES,
            shutdown,
        }
    }

    /// With another `/ingest` message size cap.
    pub fn with_ingest_max_bytes(mut self, bytes: usize) -> Self {
        self.ingest_max_bytes = bytes;
        self
    }
}

/// The data-path routes.
pub fn routes(state: DataState) -> Router {
    let registry = state.registry.clone();
    Router::new()
        .route("/api/symbols/{symbol}", get(symbol))
        .route("/ingest", get(ingest))
        .with_state(state)
        .merge(super::metrics::router(registry))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn symbol(State(s): State<DataState>, Path(raw): Path<String>) -> Response {
    let symbol: Symbol = match raw.parse() {
        Ok(sym) => sym,
        Err(e) => {
            s.metrics.bad_input(
                BadInput::InvalidRequest,
                &format_args!("/api/symbols/{raw}: {e}"),
            );
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let p = partition_of(&symbol, s.cluster.partitions());
    let view = s.cluster.view();
    let reply = if view.owned_epoch(p, Instant::now()).is_some() {
        ask_local(&s, symbol).await
    } else {
        match view.owner(p) {
            PartitionOwner::Other { instance, .. } => {
                let payload = serde_json::to_vec(&SymbolQuery { symbol }).unwrap_or_default();
                match s.cluster.request(instance, payload.into(), QUERY_TIMEOUT).await {
                    Ok(bytes) => serde_json::from_slice::<QueryReply>(&bytes).map_err(|e| {
                        error(StatusCode::BAD_GATEWAY, format!("owner {instance} answered garbage: {e}"))
                    }),
                    Err(RequestError::Timeout { .. }) => Err(error(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("owner {instance} of partition {p} did not answer within {QUERY_TIMEOUT:?}"),
                    )),
                    Err(e) => Err(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("owner {instance} of partition {p} is unreachable: {e}"),
                    )),
                }
            }
            _ => Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("partition {p} has no owner right now (handover in flight); retry shortly"),
            )),
        }
    };
    match reply {
        Ok(QueryReply::Found { state }) => Json(state).into_response(),
        Ok(QueryReply::NotFound) => error(
            StatusCode::NOT_FOUND,
            format!("symbol {symbol} has not been seen"),
        ),
        Ok(QueryReply::NotOwner) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("partition {p} is moving between owners; retry shortly"),
        ),
        Err(response) => response,
    }
}

async fn ask_local(s: &DataState, symbol: Symbol) -> Result<QueryReply, Response> {
    let (tx, rx) = oneshot::channel();
    let busy = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "processor is shutting down or overloaded",
        )
    };
    s.queries
        .try_send(LocalQuery { symbol, reply: tx })
        .map_err(|_| busy())?;
    match tokio::time::timeout(QUERY_TIMEOUT, rx).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(_)) => Err(busy()),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            "the local engine did not answer in time",
        )),
    }
}

async fn ingest(State(s): State<DataState>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = s.ingest_slots.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many /ingest connections (limit {MAX_INGEST_CONNECTIONS})"),
        );
    };
    let cap = s.ingest_max_bytes;
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| async move {
            push::serve(socket, s.ingest, s.metrics, cap, s.shutdown).await;
            drop(permit);
        })
}
