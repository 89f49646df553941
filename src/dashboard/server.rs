//! The dashboard's HTTP side (axum): the page and its assets, `/ws` (the
//! snapshot stream), `/api/snapshot` (the latest frame as plain JSON) and,
//! when a demo controller is installed, `POST /api/demo/{action}`.
//!
//! Every browser gets its own task reading a `watch` of the latest frame:
//! a client that is slow only skips frames (it always gets the newest),
//! and one whose send does not complete within the send timeout is
//! disconnected. No client can delay the aggregator or another client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::dashboard::assets;
use crate::dashboard::demo::{DemoAction, DemoControl};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The latest serialized snapshot.
    pub frames: watch::Receiver<Utf8Bytes>,
    /// Browsers connected to `/ws`.
    pub clients: Arc<AtomicU64>,
    /// The demo controller, if any.
    pub demo: Option<Arc<dyn DemoControl>>,
    /// Stops every client task.
    pub shutdown: CancellationToken,
    /// A client whose frame is not sent within this is disconnected.
    pub send_timeout: Duration,
    /// Most `/ws` clients at once; more get 503.
    pub max_clients: u64,
}

/// The router of the dashboard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/favicon.svg", get(favicon))
        .route("/ws", get(ws))
        .route("/api/snapshot", get(snapshot))
        .route("/api/demo/{action}", post(demo))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", assets::INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", assets::APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", assets::STYLE_CSS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", assets::FAVICON_SVG)
}

async fn snapshot(State(state): State<AppState>) -> Response {
    let frame = state.frames.borrow().clone();
    (
        [(header::CONTENT_TYPE, "application/json")],
        frame.as_str().to_string(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct DemoQuery {
    instance: Option<String>,
}

async fn demo(
    State(state): State<AppState>,
    Path(action): Path<String>,
    Query(q): Query<DemoQuery>,
) -> Response {
    let Some(control) = state.demo.clone() else {
        return (StatusCode::NOT_FOUND, "demo controls are not enabled").into_response();
    };
    let Some(action) = DemoAction::parse(&action) else {
        return (StatusCode::NOT_FOUND, "unknown demo action").into_response();
    };
    if let Some(id) = &q.instance {
        if id.parse::<crate::tick::InstanceId>().is_err() {
            return (StatusCode::BAD_REQUEST, "invalid instance id").into_response();
        }
    }
    info!(action = ?action, instance = ?q.instance, "demo action");
    match control.act(action, q.instance).await {
        Ok(message) => Json(serde_json::json!({"ok": true, "message": message})).into_response(),
        Err(message) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({"ok": false, "message": message})),
        )
            .into_response(),
    }
}

async fn ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    // Take the slot before upgrading, so the limit holds under a burst.
    let taken = state.clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(state.clients.clone());
    if taken >= state.max_clients {
        warn!(
            limit = state.max_clients,
            "dashboard client refused: too many clients"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many dashboard clients (limit {})\n", state.max_clients),
        )
            .into_response();
    }
    upgrade
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| client(socket, state, guard))
}

struct ClientGuard(Arc<AtomicU64>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a browser session ended.
#[derive(Debug)]
enum ClientEnd {
    Shutdown,
    Closed,
    SendFailed,
    TooSlow,
    NoMoreFrames,
}

async fn client(socket: WebSocket, state: AppState, _guard: ClientGuard) {
    let mut frames = state.frames.clone();
    frames.mark_changed(); // the current frame goes out at once
    let (mut tx, mut rx) = socket.split();
    let end = loop {
        tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_millis(200), tx.send(Message::Close(None))).await;
                break ClientEnd::Shutdown;
            }
            incoming = rx.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break ClientEnd::Closed,
                Some(Ok(_)) => {} // pings are answered by the library; the rest is ignored
            },
            changed = frames.changed() => {
                if changed.is_err() {
                    break ClientEnd::NoMoreFrames;
                }
                let frame = frames.borrow_and_update().clone();
                match tokio::time::timeout(state.send_timeout, tx.send(Message::Text(frame))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break ClientEnd::SendFailed,
                    Err(_) => break ClientEnd::TooSlow,
                }
            }
        }
    };
    match end {
        ClientEnd::TooSlow => warn!("dashboard client too slow, disconnected"),
        other => debug!(end = ?other, "dashboard client left"),
    }
}
