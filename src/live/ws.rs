//! `GET /ws/symbols?subscribe=AAPL,MSFT[&history=bars_1m]`: a WebSocket of
//! the live results of up to [`MAX_SYMBOLS`] symbols ([`super::protocol`]),
//! served by processors and the dashboard alike.
//!
//! 400 (JSON `error`) for a missing or invalid symbol list or history
//! operator, 503 when [`super::hub::MAX_CLIENTS`] clients are connected.
//! A client that does not keep up (its queue of
//! [`super::hub::CLIENT_QUEUE`] messages is full) is closed with code
//! 1008; one whose send blocks longer than [`SEND_TIMEOUT`] is
//! disconnected; when an update was missed or the live subscription is
//! lost, the close code is 1011 (reconnect for a fresh snapshot). Text the
//! client sends is ignored.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::hub::{Ended, LiveHub, Malformed};
use crate::tick::Symbol;

/// Most symbols one client may watch.
pub const MAX_SYMBOLS: usize = 64;

/// A send to a client that takes longer than this drops the client.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct LiveState {
    hub: LiveHub,
    shutdown: CancellationToken,
}

/// The route `/ws/symbols`.
pub fn router(hub: LiveHub, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/ws/symbols", get(symbols))
        .with_state(LiveState { hub, shutdown })
}

#[derive(Debug, Deserialize)]
struct Params {
    subscribe: Option<String>,
    history: Option<String>,
}

/// The request's symbols (deduplicated, in order) and history operator.
fn parse(params: &Params) -> Result<(Vec<Symbol>, Option<String>), String> {
    let raw = params
        .subscribe
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or("give the symbols to watch: /ws/symbols?subscribe=AAPL,MSFT")?;
    let mut symbols = BTreeSet::new();
    for name in raw.split(',') {
        let s: Symbol = name
            .parse()
            .map_err(|e| format!("subscribe: {name:?}: {e}"))?;
        symbols.insert(s);
    }
    if symbols.len() > MAX_SYMBOLS {
        return Err(format!("subscribe: at most {MAX_SYMBOLS} symbols"));
    }
    let history = match params.history.as_deref() {
        None | Some("") => None,
        Some(op)
            if op.len() <= 40
                && op
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Some(op.to_owned())
        }
        Some(op) => return Err(format!("history: {op:?} is not an operator name")),
    };
    Ok((symbols.into_iter().collect(), history))
}

async fn symbols(
    State(s): State<LiveState>,
    Query(params): Query<Params>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (symbols, history) = match parse(&params) {
        Ok(parsed) => parsed,
        Err(e) => {
            s.hub
                .report(Malformed::Request, &format!("/ws/symbols: {e}"));
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = s.hub.try_slot() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "too many /ws/symbols clients" })),
        )
            .into_response();
    };
    ws.on_upgrade(move |socket| async move {
        serve(socket, s, symbols, history).await;
        drop(slot);
    })
}

async fn serve(socket: WebSocket, s: LiveState, symbols: Vec<Symbol>, history: Option<String>) {
    let (mut tx, mut rx) = socket.split();
    let mut watch = match s.hub.watch(symbols, history).await {
        Ok(w) => w,
        Err(e) => {
            let _ = tx.send(close(1011, &e.to_string())).await;
            return;
        }
    };
    loop {
        tokio::select! {
            _ = s.shutdown.cancelled() => {
                let _ = tx.send(close(1001, "server shutting down")).await;
                return;
            }
            msg = watch.messages.recv() => {
                let Some(text) = msg else {
                    let (code, reason) = watch.ended().unwrap_or(Ended::SubscriptionLost).close();
                    let _ = tx.send(close(code, reason)).await;
                    return;
                };
                let sent = tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::Text(text.as_ref().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
            incoming = rx.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(subscribe: &str, history: Option<&str>) -> Params {
        Params {
            subscribe: Some(subscribe.to_owned()),
            history: history.map(str::to_owned),
        }
    }

    #[test]
    fn requests_are_checked() {
        let (syms, history) = parse(&params("MSFT,AAPL,MSFT", Some("bars_1m"))).unwrap();
        assert_eq!(syms.len(), 2);
        assert_eq!(history.as_deref(), Some("bars_1m"));
        assert!(parse(&params("", None)).is_err());
        assert!(parse(&params("AAPL,bad symbol", None)).is_err());
        assert!(parse(&params("AAPL", Some("../x"))).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("S{i}")).collect();
        assert!(parse(&params(&many.join(","), None)).is_err());
    }
}
