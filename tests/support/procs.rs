//! Real child processes for crash and scaling tests (the test kit's
//! [`Proc`]), and JSON or text fetched from their HTTP servers.

use std::time::Duration;

pub use tickshard_testkit::process::Proc;

/// GETs `path` from `addr` and parses the JSON body; `None` on any failure,
/// a status other than 200, or after `timeout` (a stopped process never
/// answers).
pub async fn get_json(addr: &str, path: &str, timeout: Duration) -> Option<serde_json::Value> {
    let (status, body) = tokio::time::timeout(timeout, super::fleet::http_get(addr, path))
        .await
        .ok()
        .flatten()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// GETs `path` from `addr` and returns the body of a 200 answer; `None`
/// otherwise or after `timeout`.
pub async fn get_text(addr: &str, path: &str, timeout: Duration) -> Option<String> {
    match tokio::time::timeout(timeout, super::fleet::http_get(addr, path)).await {
        Ok(Some((200, body))) => Some(body),
        _ => None,
    }
}
