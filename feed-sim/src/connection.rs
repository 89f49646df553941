//! One WebSocket client: the handshake with inbound size limits, a reader
//! that handles `hello`, `replay` and bad input, and a writer that drains
//! the connection's queues, stamping `sent_ns` on every tick as it goes out.
//!
//! When the writer fails (client gone), the batches it still holds go back
//! to the feed loop for another connection, so no tick assigned to a dead
//! connection is lost for the others.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tickshard::clock::now_ns;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use tickshard::codec::{encode_batch, FeedMessage, WireFormat};
use tickshard::tick::Tick;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::hub::{ConnHandle, Control};
use crate::state::Shared;

/// Most replayed ticks per frame.
const REPLAY_FRAME_TICKS: usize = 1000;
/// Control messages queued per connection.
const CONTROL_QUEUE: usize = 256;
/// Time allowed for the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TcpStream>;

/// Serves one accepted TCP connection until it ends or `shutdown`.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(shared.max_message_bytes))
        .max_frame_size(Some(shared.max_message_bytes));
    let ws = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            tokio_tungstenite::accept_async_with_config(stream, Some(config)),
        ) => match r {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                tracing::debug!(peer = ?peer, error = %e, "websocket handshake failed");
                shared.counters.bad_client("handshake");
                return;
            }
            Err(_) => {
                shared.counters.bad_client("handshake_timeout");
                return;
            }
        },
    };
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (sink, stream) = ws.split();
    let (data_tx, data_rx) = mpsc::channel(shared.queue);
    let (ctl_tx, ctl_rx) = mpsc::channel(CONTROL_QUEUE);
    let conn_token = shutdown.child_token();
    let writer = tokio::spawn(write_loop(
        sink,
        data_rx,
        ctl_rx,
        shared.clone(),
        conn_token.clone(),
    ));
    let reader = Reader {
        conn,
        shared: shared.clone(),
        data_tx,
        ctl_tx,
        registered: false,
    };
    reader.run(stream, &conn_token).await;
    if shared.hub.remove(conn) {
        tracing::info!(conn, peer = ?peer, "client left");
    }
    conn_token.cancel();
    let _ = writer.await;
}

struct Reader {
    conn: u64,
    shared: Arc<Shared>,
    data_tx: mpsc::Sender<Vec<Tick>>,
    ctl_tx: mpsc::Sender<Control>,
    registered: bool,
}

impl Reader {
    async fn run(mut self, mut stream: SplitStream<Ws>, token: &CancellationToken) {
        loop {
            let msg = tokio::select! {
                biased;
                _ = token.cancelled() => return,
                m = stream.next() => m,
            };
            match msg {
                None | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => {
                    self.reject(
                        "binary_from_client",
                        "the feed accepts only JSON text frames from clients".to_owned(),
                    )
                    .await;
                }
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(e))) => {
                    let reason = match e {
                        CapacityError::MessageTooLong { size, max_size } => {
                            format!("message of {size} bytes exceeds the limit of {max_size}")
                        }
                        other => other.to_string(),
                    };
                    tracing::warn!(conn = self.conn, reason = %reason, "closing: inbound message too large");
                    self.shared.counters.bad_client("oversized");
                    let _ = self
                        .ctl_tx
                        .send(Control::Close(u16::from(CloseCode::Size), reason))
                        .await;
                    return;
                }
                Some(Err(e)) => {
                    tracing::debug!(conn = self.conn, error = %e, "read failed");
                    return;
                }
            }
        }
    }

    async fn reply(&self, message: FeedMessage) {
        let _ = self
            .ctl_tx
            .send(Control::Text(message.to_json().into()))
            .await;
    }

    async fn reject(&self, kind: &'static str, message: String) {
        self.shared.counters.bad_client(kind);
        tracing::debug!(conn = self.conn, kind, message = %message, "bad client message");
        self.reply(FeedMessage::error(message)).await;
    }

    async fn on_text(&mut self, text: &str) {
        let msg = match FeedMessage::parse(text) {
            Ok(m) => m,
            Err(e) => return self.reject(e.kind().as_str(), e.to_string()).await,
        };
        match msg {
            FeedMessage::Hello { id, format } => self.on_hello(id, format).await,
            FeedMessage::Replay { symbol, from, to } => {
                let got = self.shared.store.read().map_err(|_| None).and_then(|s| {
                    s.get(symbol, from, to, self.shared.replay_max_range)
                        .map_err(Some)
                });
                match got {
                    Ok(ticks) => {
                        self.shared.counters.replay_requests.add(1);
                        self.shared.counters.replay_ticks.add(ticks.len() as u64);
                        for chunk in ticks.chunks(REPLAY_FRAME_TICKS) {
                            if self
                                .ctl_tx
                                .send(Control::Replay(chunk.to_vec()))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                    Err(Some(e)) => self.reject(e.kind(), e.to_string()).await,
                    Err(None) => {
                        self.reject("internal", "replay store unavailable".into())
                            .await
                    }
                }
            }
            FeedMessage::Tick(_) | FeedMessage::Batch { .. } => {
                self.reject(
                    "ticks_from_client",
                    "the feed does not accept ticks; send hello or replay".into(),
                )
                .await;
            }
            FeedMessage::Seqs { .. } => {
                self.reject(
                    "seqs_from_client",
                    "seqs is sent by the feed, not to it".into(),
                )
                .await;
            }
            FeedMessage::Error { message } => {
                self.shared.counters.bad_client("error_from_client");
                tracing::warn!(conn = self.conn, message = %message.chars().take(200).collect::<String>(), "client reported an error");
            }
        }
    }

    async fn on_hello(&mut self, id: String, format: WireFormat) {
        if self.registered {
            return self
                .reject("duplicate_hello", "hello was already received".into())
                .await;
        }
        if id.is_empty() || id.len() > 64 {
            return self
                .reject("invalid_hello", "hello id must be 1-64 characters".into())
                .await;
        }
        let id: Arc<str> = id.into();
        let hello = Control::Hello {
            format,
            ticks_sent: self.shared.ticks_sent.of(&id),
        };
        if self.ctl_tx.send(hello).await.is_err() {
            return;
        }
        self.registered = true;
        self.shared.counters.clients.add(1);
        tracing::info!(conn = self.conn, id = %id, format = ?format, "client joined");
        self.shared.hub.register(ConnHandle {
            conn: self.conn,
            id,
            data: self.data_tx.clone(),
            control: self.ctl_tx.clone(),
        });
    }
}

/// Encodes ticks as one frame in `format`, stamping `sent_ns`.
pub fn encode_frame(ticks: &mut [Tick], format: WireFormat, sent_ns: u64) -> Message {
    for t in ticks.iter_mut() {
        t.sent_ns = Some(sent_ns);
    }
    match format {
        WireFormat::Binary => {
            let mut buf = Vec::with_capacity(8 + ticks.len() * 56);
            encode_batch(ticks, &mut buf);
            Message::Binary(buf.into())
        }
        WireFormat::Json => {
            let msg = FeedMessage::Batch {
                ticks: ticks.to_vec(),
            };
            Message::Text(msg.to_json().into())
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut data: mpsc::Receiver<Vec<Tick>>,
    mut control: mpsc::Receiver<Control>,
    shared: Arc<Shared>,
    token: CancellationToken,
) {
    let mut format = WireFormat::Json;
    // Replaced on `hello`, before any live batch can come.
    let mut ticks_sent = Counter::default();
    let mut in_hand: Option<Vec<Tick>> = None;
    loop {
        tokio::select! {
            biased;
            c = control.recv() => {
                let Some(c) = c else { break };
                let msg = match c {
                    Control::Hello { format: f, ticks_sent: counter } => {
                        format = f;
                        ticks_sent = counter;
                        continue;
                    }
                    Control::Text(t) => Message::Text(t.as_ref().into()),
                    Control::Replay(mut ticks) => encode_frame(&mut ticks, format, now_ns()),
                    Control::Close(code, reason) => {
                        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            _ = token.cancelled() => {
                let frame = CloseFrame { code: CloseCode::Normal, reason: "feed stopping".into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
            b = data.recv() => {
                let Some(mut batch) = b else { break };
                let msg = encode_frame(&mut batch, format, now_ns());
                let n = batch.len() as u64;
                if sink.send(msg).await.is_err() {
                    in_hand = Some(batch);
                    break;
                }
                shared.pending.fetch_sub(n, Ordering::AcqRel);
                shared.counters.ticks_sent.add(n);
                shared.counters.batches_sent.add(1);
                ticks_sent.inc_by(n);
            }
        }
    }
    token.cancel();
    // Give back what this connection will never send.
    data.close();
    if let Some(b) = in_hand {
        let _ = shared.returns.send(b);
    }
    while let Ok(b) = data.try_recv() {
        let _ = shared.returns.send(b);
    }
}
