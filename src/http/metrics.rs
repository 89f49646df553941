//! `GET /metrics` over a prometheus-client [`Registry`]: the processor's
//! and feed-sim's. The body's format follows the `Accept` header
//! ([`TextFormat::negotiate`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

use crate::stats::TextFormat;

/// A router with `GET /metrics` over `registry`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(registry)
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = TextFormat::negotiate(accept);
    match format.render(&registry) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be rendered\n",
        )
            .into_response(),
    }
}
