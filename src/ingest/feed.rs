//! The feed client: connects to the feed's WebSocket, says `hello` asking
//! for binary batches, hands decoded input to the worker (awaiting the
//! bounded queue, so a slow worker stops the reading and the feed's TCP
//! window pushes back), and writes the worker's replay requests to the feed
//! (also while it waits for room in that queue).
//!
//! A lost connection is retried with capped exponential backoff; why each
//! session ended is logged as a [`SessionEnd`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::frames::{decode_binary, decode_text, TextFrame};
use super::{IngestInput, ReplayRequest, MAX_MESSAGE_BYTES};
use crate::codec::{FeedMessage, WireFormat};
use crate::retry::Backoff;
use crate::stats::{BadInput, Metrics};

/// Bytes offered to each socket read (see `session`).
const READ_BUFFER_BYTES: usize = 32 * 1024;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Why one connection to the feed ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Shutdown was requested.
    Shutdown,
    /// The worker is gone.
    WorkerGone,
    /// Could not connect.
    Connect(String),
    /// The feed closed the connection.
    Closed,
    /// Reading or writing failed.
    Io(String),
}

/// Where the feed client sends and receives.
pub struct FeedClient {
    /// `ws://host:port`.
    pub url: String,
    /// This instance's id, sent in `hello`.
    pub instance: String,
    /// Decoded input for the worker.
    pub input: mpsc::Sender<IngestInput>,
    /// Replay requests from the worker.
    pub replays: mpsc::Receiver<ReplayRequest>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl FeedClient {
    /// Runs sessions until shutdown.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
        loop {
            let end = self.session(&shutdown).await;
            let wait = match &end {
                SessionEnd::Shutdown | SessionEnd::WorkerGone => return,
                SessionEnd::Connect(e) => {
                    let wait = backoff.after_failure(true);
                    tracing::warn!(url = %self.url, error = %e, retry_in = ?wait, "cannot reach the feed");
                    wait
                }
                SessionEnd::Closed => {
                    tracing::info!(url = %self.url, "feed closed the connection");
                    backoff.reset();
                    backoff.after_failure(true)
                }
                SessionEnd::Io(e) => {
                    tracing::warn!(url = %self.url, error = %e, "feed connection failed");
                    backoff.reset();
                    backoff.after_failure(true)
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn session(&mut self, shutdown: &CancellationToken) -> SessionEnd {
        // tungstenite zero-fills `read_buffer_size` bytes before every read
        // poll (snapview/tungstenite-rs#547); its 128 KiB default made that
        // memset the largest single cost of a processor in a callgrind
        // profile at moderate rates. 32 KiB still reads a full feed batch
        // in a few calls.
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connect =
            tokio_tungstenite::connect_async_with_config(self.url.as_str(), Some(config), true);
        let ws = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            r = connect => match r {
                Ok((ws, _)) => ws,
                Err(e) => return SessionEnd::Connect(e.to_string()),
            }
        };
        let (mut sink, mut stream) = ws.split();
        let hello = FeedMessage::Hello {
            id: self.instance.clone(),
            format: WireFormat::Binary,
        };
        if let Err(e) = sink.send(Message::text(hello.to_json())).await {
            return SessionEnd::Io(e.to_string());
        }
        tracing::info!(url = %self.url, "connected to the feed");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return SessionEnd::Shutdown;
                }
                Some(req) = self.replays.recv() => {
                    if let Err(e) = send_replay(&mut sink, req).await {
                        return SessionEnd::Io(e.to_string());
                    }
                }
                frame = stream.next() => {
                    let input = match frame {
                        None => return SessionEnd::Closed,
                        Some(Err(e)) => {
                            if matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)) {
                                self.metrics.bad_input(
                                    BadInput::OversizedFrame,
                                    &format_args!("feed frame: {e}"),
                                );
                            }
                            return SessionEnd::Io(e.to_string());
                        }
                        Some(Ok(Message::Binary(bytes))) => match decode_binary(&bytes) {
                            Ok(input) => Some(input),
                            Err(e) => {
                                self.metrics.bad_input(
                                    e.kind(),
                                    &format_args!("bad binary frame from the feed: {e}"),
                                );
                                None
                            }
                        },
                        Some(Ok(Message::Text(text))) => match decode_text(&text) {
                            Ok(TextFrame::Input(input)) => Some(input),
                            Ok(TextFrame::PeerError(message)) => {
                                tracing::debug!(%message, "feed reported an error");
                                None
                            }
                            Ok(TextFrame::Unexpected(kind)) => {
                                self.metrics.bad_input(
                                    BadInput::InvalidMessage,
                                    &format_args!("unexpected {kind} message from the feed"),
                                );
                                None
                            }
                            Err(e) => {
                                self.metrics.bad_input(
                                    e.kind(),
                                    &format_args!("bad text frame from the feed: {e}"),
                                );
                                None
                            }
                        },
                        Some(Ok(Message::Close(_))) => return SessionEnd::Closed,
                        Some(Ok(_)) => None,
                    };
                    let Some(input) = input else { continue };
                    // Wait for room in the worker's queue (it pauses intake
                    // under flow control), still sending replay requests:
                    // the gaps they fill may be what it waits for.
                    let permit = loop {
                        tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => {
                                let _ = sink.send(Message::Close(None)).await;
                                return SessionEnd::Shutdown;
                            }
                            permit = self.input.reserve() => match permit {
                                Ok(permit) => break permit,
                                Err(_) => return SessionEnd::WorkerGone,
                            },
                            Some(req) = self.replays.recv() => {
                                if let Err(e) = send_replay(&mut sink, req).await {
                                    return SessionEnd::Io(e.to_string());
                                }
                            }
                        }
                    };
                    permit.send(input);
                }
            }
        }
    }
}

/// Asks the feed to resend `req`'s ticks.
async fn send_replay<S>(sink: &mut S, req: ReplayRequest) -> Result<(), S::Error>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let msg = FeedMessage::Replay {
        symbol: req.symbol,
        from: req.from,
        to: req.to,
    };
    sink.send(Message::text(msg.to_json())).await
}
