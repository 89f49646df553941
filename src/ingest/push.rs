//! The `/ingest` WebSocket endpoint: any WebSocket client can push ticks
//! to a processor in the feed's JSON (or binary batch) format. Ticks must
//! carry per-symbol `seq`s. Every bad frame is answered with a JSON `error`
//! message and counted; the connection stays open. A frame over the cap
//! (`--ingest-max-bytes`, 1 MiB by default) closes the connection with
//! code 1009; its length is checked from the frame header, before the
//! payload is read.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::frames::{decode_binary, decode_text, TextFrame};
use super::IngestInput;
use crate::codec::FeedMessage;
use crate::stats::{BadInput, Metrics};

/// Most `/ingest` connections served at once.
pub const MAX_INGEST_CONNECTIONS: usize = 64;

/// Serves one `/ingest` connection until it closes or shutdown.
pub async fn serve(
    mut socket: WebSocket,
    worker: mpsc::Sender<IngestInput>,
    metrics: Arc<Metrics>,
    max_bytes: usize,
    shutdown: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = socket.send(Message::Close(Some(CloseFrame {
                    code: 1001,
                    reason: "processor shutting down".into(),
                }))).await;
                return;
            }
            frame = socket.recv() => frame,
        };
        let decoded = match frame {
            None => return,
            Some(Err(e)) => {
                let text = e.to_string();
                if is_oversized(e) {
                    metrics.bad_input(
                        BadInput::OversizedFrame,
                        &format_args!("oversized frame on /ingest, closing: {text}"),
                    );
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1009,
                            reason: format!("message over {max_bytes} bytes").into(),
                        })))
                        .await;
                } else {
                    tracing::debug!(error = %text, "/ingest connection failed");
                }
                return;
            }
            Some(Ok(Message::Text(text))) => match decode_text(&text) {
                Ok(TextFrame::Input(input)) => Ok(input),
                Ok(TextFrame::PeerError(message)) => {
                    tracing::debug!(%message, "/ingest client reported an error");
                    continue;
                }
                Ok(TextFrame::Unexpected(kind)) => Err((
                    BadInput::InvalidMessage,
                    format!(
                        "a {kind} message cannot be sent to /ingest; send tick or batch messages"
                    ),
                )),
                Err(e) => Err((e.kind(), e.to_string())),
            },
            Some(Ok(Message::Binary(bytes))) => {
                decode_binary(&bytes).map_err(|e| (e.kind(), e.to_string()))
            }
            Some(Ok(Message::Close(_))) => return,
            Some(Ok(_)) => continue,
        };
        match decoded {
            Ok(IngestInput::Seqs(_)) => {
                let _ = reject(
                    &mut socket,
                    &metrics,
                    BadInput::InvalidMessage,
                    "seqs are sent by the feed, not to /ingest".into(),
                )
                .await;
            }
            Ok(input) => {
                // Awaiting the bounded queue stops reading this client when
                // the worker is behind.
                if worker.send(input).await.is_err() {
                    return;
                }
            }
            Err((kind, message)) => {
                if reject(&mut socket, &metrics, kind, message).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn reject(
    socket: &mut WebSocket,
    metrics: &Metrics,
    kind: BadInput,
    message: String,
) -> Result<(), axum::Error> {
    metrics.bad_input(kind, &format_args!("bad frame on /ingest: {message}"));
    socket
        .send(Message::Text(FeedMessage::error(message).to_json().into()))
        .await
}

/// True when the read failed because a frame or message was over the cap.
fn is_oversized(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    let inner = e.into_inner();
    matches!(inner.downcast_ref::<Error>(), Some(Error::Capacity(_)))
}
