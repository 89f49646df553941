//! The job tickshard's cluster layer grew out of, done with
//! `tickshard-cluster` alone: several instances of an HTTP service share
//! resources; whichever instance receives a request for resource R, the
//! owner of R's partition applies it, exactly once.
//!
//! ```text
//! resources --redis redis://127.0.0.1:6379/ --id a --listen 127.0.0.1:8081
//! curl -XPOST localhost:8081/resources/cart-7 -d '{"request_id":"r1","amount":5}'
//! ```
//!
//! - `POST /resources/{id}` `{"request_id": "...", "amount": <integer>}`:
//!   applied by the owner of the resource's partition (a non-owner
//!   forwards it with a request/reply and returns the owner's answer):
//!   200 `{"id", "total", "owner", "via"}`. The add runs as a fenced write
//!   with the resource and request id as its idempotency id, so a request
//!   id is applied at most once per resource whichever instance gets it and
//!   however often; a 200 means it was applied once and is in Redis.
//! - `GET /resources/{id}`: 200 `{"id", "total", "owner"}` from the owner,
//!   404 for a resource never seen.
//! - `POST /broadcast` `{"message": "..."}`: to every live instance;
//!   `GET /broadcasts`: what this instance received.
//! - Bad input: 400 with a JSON `error`; a request id reused with another
//!   amount: 409; the owner unreachable or slow: 503 or 504 with a JSON
//!   `error` within `--request-timeout-ms` (a 503/504 may follow a write
//!   that did apply: retry with the same id to learn the outcome).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tickshard_cluster::ids::{InstanceId, PartitionId};
use tickshard_cluster::keys::ClusterKeys;
use tickshard_cluster::partition::partition_of_key;
use tickshard_cluster::{
    Cluster, ClusterHandle, ClusterOptions, FencedScript, FencedWrite, IncomingRequest,
    OwnershipChange, PartitionOwner, RequestError, WriteOutcome,
};
use tokio_util::sync::CancellationToken;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "resources",
    about = "Shared resources behind any instance: the owner applies each request exactly once"
)]
struct Args {
    /// Redis URL.
    #[arg(long)]
    redis: String,
    /// This instance's id (unique among live instances).
    #[arg(long)]
    id: String,
    /// HTTP listen address.
    #[arg(long)]
    listen: SocketAddr,
    /// Key namespace of the cluster.
    #[arg(long, default_value = "resources")]
    cluster: String,
    /// Partitions the resources are spread over (fixed per cluster).
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    /// Lease TTL in milliseconds: a crashed owner's resources move after
    /// about this long.
    #[arg(long, default_value_t = 2000)]
    lease_ms: u64,
    /// How long a request may take, forwarding and retries included.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    request_timeout_ms: u64,
    /// How long a request id is remembered, in hours (0: forever). A retry
    /// after that is applied again; forever costs one small key per
    /// request.
    #[arg(long, default_value_t = 0)]
    request_id_retention_hours: u64,
    /// Start even when Redis may evict keys (refused by default).
    #[arg(long)]
    allow_eviction: bool,
}

/// The owner's write: add `ARGV[1]` to the resource's total; the result
/// (recorded for retries) is `"{amount} {total}"`, so a request id reused
/// with another amount can be told apart.
const ADD: &str = "redis.call('INCRBY', KEYS[1], ARGV[1])
return ARGV[1] .. ' ' .. redis.call('GET', KEYS[1])";
/// Largest amount accepted (either sign), so no total overflows in
/// practice.
const MAX_AMOUNT: i64 = 1_000_000_000_000_000;
/// Broadcasts kept for `GET /broadcasts`.
const KEEP_BROADCASTS: usize = 1000;
/// Longest resource or request id.
const MAX_ID: usize = 128;

#[derive(Clone)]
struct App {
    cluster: ClusterHandle,
    keys: ClusterKeys,
    add: FencedScript,
    timeout: Duration,
    retention: Option<Duration>,
    received: Arc<Mutex<VecDeque<serde_json::Value>>>,
}

/// What one instance asks the owner.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Ask {
    Apply {
        resource: String,
        request_id: String,
        amount: i64,
    },
    Get {
        resource: String,
    },
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Answer {
    Total {
        total: i64,
        owner: String,
    },
    NotFound,
    /// The request id was applied before with another amount.
    Conflict {
        error: String,
    },
    /// Not (or no longer) the owner: ask again with a fresher view.
    NotOwner,
    Failed {
        error: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let instance: InstanceId = args.id.parse().context("--id")?;
    let partitions = NonZeroU32::new(args.partitions).context("--partitions must be at least 1")?;
    let keys = ClusterKeys::new(args.cluster.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let (cluster, runtime, channels) = Cluster::join(ClusterOptions {
        redis: args.redis.clone().into(),
        keys: keys.clone(),
        instance: instance.clone(),
        partitions,
        lease: Duration::from_millis(args.lease_ms),
        http_addr: Some(local.to_string()),
        allow_eviction: args.allow_eviction,
    })
    .await
    .context("joining the cluster")?;
    let app = App {
        cluster: cluster.clone(),
        keys,
        add: FencedScript::new(ADD),
        timeout: Duration::from_millis(args.request_timeout_ms),
        retention: (args.request_id_retention_hours > 0)
            .then(|| Duration::from_secs(args.request_id_retention_hours.saturating_mul(3600))),
        received: Arc::new(Mutex::new(VecDeque::new())),
    };

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    // Writes are fenced in Redis, so a partition can be let go at once.
    let mut ownership = channels.ownership;
    tokio::spawn(async move {
        while let Some(change) = ownership.recv().await {
            if let OwnershipChange::Release { done, .. } = change {
                let _ = done.send(());
            }
        }
    });
    let mut inbox = channels.inbox;
    let drain = cluster.clone();
    tokio::spawn(async move {
        while let Some(m) = inbox.recv().await {
            drain.consumed(&m);
        }
    });
    let mut requests = channels.requests;
    let owner_side = app.clone();
    tokio::spawn(async move {
        while let Some(r) = requests.recv().await {
            let app = owner_side.clone();
            tokio::spawn(async move { app.answer(r).await });
        }
    });
    let mut broadcasts = cluster.broadcasts();
    let received = app.received.clone();
    tokio::spawn(async move {
        loop {
            match broadcasts.recv().await {
                Ok(m) => {
                    let message = String::from_utf8_lossy(&m.payload).into_owned();
                    if let Ok(mut r) = received.lock() {
                        if r.len() == KEEP_BROADCASTS {
                            r.pop_front();
                        }
                        r.push_back(json!({"from": m.from.as_str(), "message": message}));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "broadcasts came faster than they were kept");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });

    let router = Router::new()
        .route("/resources/{id}", post(apply).get(read))
        .route("/broadcast", post(broadcast))
        .route("/broadcasts", get(broadcasts_received))
        .with_state(app);
    tracing::info!(addr = %local, instance = %instance, "http listening");
    let http_stop = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { http_stop.cancelled().await })
            .await
    });
    runtime
        .run(shutdown.clone())
        .await
        .context("cluster runtime")?;
    shutdown.cancel();
    http.await.context("http task")?.context("http server")?;
    tracing::info!("stopped");
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            shutdown.cancel();
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: handing partitions over");
    shutdown.cancel();
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// An id that is safe in a key: 1-128 characters of `A-Z a-z 0-9 _ . -`.
fn valid_id(what: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} must be 1-{MAX_ID} characters of A-Z a-z 0-9 _ . -"
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    request_id: String,
    amount: i64,
}

async fn apply(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    if let Err(e) = valid_id("the resource id", &id) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let body: ApplyBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"request_id\": \"...\", \"amount\": <integer>}}: {e}"),
            )
        }
    };
    if let Err(e) = valid_id("request_id", &body.request_id) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if body.amount.abs() > MAX_AMOUNT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("amount must be within ±{MAX_AMOUNT}"),
        );
    }
    let ask = Ask::Apply {
        resource: id.clone(),
        request_id: body.request_id,
        amount: body.amount,
    };
    app.reply_http(&id, ask).await
}

async fn read(State(app): State<App>, Path(id): Path<String>) -> Response {
    if let Err(e) = valid_id("the resource id", &id) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let ask = Ask::Get {
        resource: id.clone(),
    };
    app.reply_http(&id, ask).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    message: String,
}

async fn broadcast(State(app): State<App>, body: Bytes) -> Response {
    let body: BroadcastBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"message\": \"...\"}}: {e}"),
            )
        }
    };
    match app
        .cluster
        .broadcast(body.message.into_bytes().into())
        .await
    {
        Ok(n) => Json(json!({ "delivered_to": n })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn broadcasts_received(State(app): State<App>) -> Response {
    let list: Vec<serde_json::Value> = app
        .received
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    Json(list).into_response()
}

/// Why a request could not be answered in time.
enum Unanswered {
    Unreachable(String),
    Slow(String),
}

impl App {
    /// Asks the owner of `resource` (this instance or another) and turns
    /// the answer into the HTTP response.
    async fn reply_http(&self, resource: &str, ask: Ask) -> Response {
        let me = self.cluster.instance().as_str().to_owned();
        match self.ask_owner(resource, &ask).await {
            Ok(Answer::Total { total, owner }) => {
                let mut body = json!({"id": resource, "total": total, "owner": owner});
                if matches!(ask, Ask::Apply { .. }) {
                    body["via"] = json!(me);
                }
                Json(body).into_response()
            }
            Ok(Answer::NotFound) => error(StatusCode::NOT_FOUND, format!("no resource {resource}")),
            Ok(Answer::Conflict { error: e }) => error(StatusCode::CONFLICT, e),
            Ok(Answer::NotOwner) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ownership kept moving; try again",
            ),
            Ok(Answer::Failed { error: e }) => error(StatusCode::SERVICE_UNAVAILABLE, e),
            Err(Unanswered::Unreachable(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
            Err(Unanswered::Slow(e)) => error(StatusCode::GATEWAY_TIMEOUT, e),
        }
    }

    /// Routes `ask` to the current owner until it answers or the request
    /// timeout passes; an owner that turns out not to be one any more is
    /// asked again with a fresher view.
    async fn ask_owner(&self, resource: &str, ask: &Ask) -> Result<Answer, Unanswered> {
        let p = partition_of_key(resource.as_bytes(), self.cluster.partitions());
        let deadline = Instant::now() + self.timeout;
        let mut last = Unanswered::Unreachable(format!(
            "no owner of partition {p} answered within {:?}",
            self.timeout
        ));
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(last);
            }
            let view = self.cluster.view();
            let mut unreachable = false;
            let answer = match view.owner(p) {
                PartitionOwner::Me { .. } => {
                    match tokio::time::timeout(deadline - now, self.local(p, ask)).await {
                        Ok(a) => Some(a),
                        Err(_) => {
                            last = Unanswered::Slow(format!(
                                "the write did not finish within {:?}",
                                self.timeout
                            ));
                            None
                        }
                    }
                }
                PartitionOwner::Other { instance, .. } => {
                    let payload = serde_json::to_vec(ask).unwrap_or_default();
                    match self
                        .cluster
                        .request(instance, payload.into(), deadline - now)
                        .await
                    {
                        Ok(raw) => Some(serde_json::from_slice(&raw).unwrap_or(Answer::Failed {
                            error: format!("{instance} answered something unreadable"),
                        })),
                        Err(RequestError::Timeout { to, after }) => {
                            last =
                                Unanswered::Slow(format!("{to} did not answer within {after:?}"));
                            None
                        }
                        Err(e) => {
                            last = Unanswered::Unreachable(e.to_string());
                            unreachable = true;
                            None
                        }
                    }
                }
                _ => None,
            };
            match answer {
                Some(Answer::NotOwner) | None => {
                    // Ownership is moving: wait for the view to change (or
                    // a short while), then look again.
                    let mut changes = self.cluster.view_changes();
                    // An owner nobody hears is likely dead: its lease
                    // has to lapse first, so do not ask it again at once.
                    let pause = if unreachable { 200 } else { 50 };
                    let pause = Duration::from_millis(pause)
                        .min(deadline.saturating_duration_since(Instant::now()));
                    let _ = tokio::time::timeout(pause, changes.changed()).await;
                }
                Some(a) => return Ok(a),
            }
        }
    }

    /// Answers `ask` as the owner of `p`, or says it is not.
    async fn local(&self, p: PartitionId, ask: &Ask) -> Answer {
        let Some(epoch) = self.cluster.view().owned_epoch(p, Instant::now()) else {
            return Answer::NotOwner;
        };
        let owner = self.cluster.instance().as_str().to_owned();
        match ask {
            Ask::Apply {
                resource,
                request_id,
                amount,
            } => {
                let id = format!("{resource}:{request_id}");
                let write = FencedWrite {
                    partition: p,
                    epoch,
                    id: Some(&id),
                    retention: self.retention,
                    keys: vec![self.total_key(resource)],
                    args: vec![amount.to_string().into_bytes()],
                };
                match self.cluster.fenced_write(&self.add, &write).await {
                    Ok(WriteOutcome::Applied(r) | WriteOutcome::Duplicate(r)) => {
                        let recorded = std::str::from_utf8(&r).ok().and_then(|r| {
                            let (a, t) = r.split_once(' ')?;
                            Some((a.parse::<i64>().ok()?, t.parse::<i64>().ok()?))
                        });
                        match recorded {
                            Some((a, total)) if a == *amount => Answer::Total { total, owner },
                            Some((a, _)) => Answer::Conflict {
                                error: format!(
                                    "request_id {request_id} was applied to {resource} with amount {a}, not {amount}"
                                ),
                            },
                            None => Answer::Failed {
                                error: "the stored total is not an integer".into(),
                            },
                        }
                    }
                    Ok(WriteOutcome::Refused(why)) => Answer::Failed { error: why },
                    Ok(WriteOutcome::NotOwner) => Answer::NotOwner,
                    Err(e) => Answer::Failed {
                        error: e.to_string(),
                    },
                }
            }
            Ask::Get { resource } => {
                let mut con = self.cluster.redis();
                let got: redis::RedisResult<Option<i64>> = redis::cmd("GET")
                    .arg(self.total_key(resource))
                    .query_async(&mut con)
                    .await;
                match got {
                    Ok(Some(total)) => Answer::Total { total, owner },
                    Ok(None) => Answer::NotFound,
                    Err(e) => Answer::Failed {
                        error: e.to_string(),
                    },
                }
            }
        }
    }

    /// Answers a request forwarded by another instance.
    async fn answer(&self, r: IncomingRequest) {
        let answer = match serde_json::from_slice::<Ask>(&r.payload) {
            Ok(ask) => {
                let resource = match &ask {
                    Ask::Apply { resource, .. } | Ask::Get { resource } => resource.clone(),
                };
                let p = partition_of_key(resource.as_bytes(), self.cluster.partitions());
                self.local(p, &ask).await
            }
            Err(e) => Answer::Failed {
                error: format!("unreadable request: {e}"),
            },
        };
        let payload = serde_json::to_vec(&answer).unwrap_or_default();
        if let Err(e) = r.reply(payload.into()).await {
            tracing::warn!(error = %e, "reply not sent");
        }
    }

    fn total_key(&self, resource: &str) -> String {
        self.keys.named(&format!("total:{resource}"))
    }
}
