//! The one pub/sub connection: `{ns}:inbox:{me}`, `{ns}:events` and
//! `{ns}:broadcast`. Decodes each message once and routes it: data to the
//! inbox channel, requests to the request channel, replies to their
//! waiting request, flow-control acks to the credit counters, broadcasts
//! to their subscribers, events to their subscribers and to the runtime. Garbage is counted and
//! dropped. When the connection ends it reconnects with capped backoff and
//! tells the runtime to re-read everything (pub/sub is at-most-once).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSub;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::error::ClusterError;
use super::events::ClusterEvent;
use super::handle::{BroadcastMessage, ClusterHandle, InboxMessage, IncomingRequest, Shared};
use super::messaging::{Envelope, MessageKind};
use crate::noted::Noted;

/// What the subscriber tells the runtime.
#[derive(Debug)]
pub(crate) enum Internal {
    /// An event from another instance.
    Event(ClusterEvent),
    /// The subscription was re-established; messages may have been missed.
    Resubscribed,
}

/// Opens a pub/sub connection and subscribes to our inbox and the events.
pub(crate) async fn subscribe(
    client: &redis::Client,
    shared: &Shared,
) -> Result<PubSub, ClusterError> {
    let after = shared.timings.op_timeout.max(Duration::from_secs(2));
    let fut = async {
        let mut ps = client.get_async_pubsub().await?;
        ps.subscribe(shared.keys.inbox(&shared.instance)).await?;
        ps.subscribe(shared.keys.events()).await?;
        ps.subscribe(shared.keys.broadcast()).await?;
        Ok::<_, redis::RedisError>(ps)
    };
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r.map_err(ClusterError::redis("subscribe")),
        Err(_) => Err(ClusterError::Timeout {
            op: "subscribe",
            after,
        }),
    }
}

pub(crate) struct Subscriber {
    pub(crate) client: redis::Client,
    /// Redacted URL, for logs.
    pub(crate) url: String,
    pub(crate) handle: ClusterHandle,
    pub(crate) inbox: mpsc::Sender<InboxMessage>,
    pub(crate) requests: mpsc::Sender<IncomingRequest>,
    pub(crate) internal: mpsc::Sender<Internal>,
}

impl Subscriber {
    pub(crate) async fn run(self, first: PubSub, cancel: CancellationToken) {
        let shared = Arc::clone(&self.handle.shared);
        let inbox_channel = shared.keys.inbox(&shared.instance);
        let events_channel = shared.keys.events();
        let broadcast_channel = shared.keys.broadcast();
        let mut conn = Some(first);
        let mut backoff = Duration::from_millis(50);
        loop {
            let ps = match conn.take() {
                Some(ps) => ps,
                None => {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    match subscribe(&self.client, &shared).await {
                        Ok(ps) => {
                            info!("pub/sub re-established");
                            backoff = Duration::from_millis(50);
                            let _ = self.internal.send(Internal::Resubscribed).await;
                            ps
                        }
                        Err(e) => {
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            debug!(error = %e, retry_in = ?backoff, "pub/sub reconnect failed");
                            continue;
                        }
                    }
                }
            };
            let mut stream = ps.into_on_message();
            loop {
                let msg = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    m = stream.next() => m,
                };
                let Some(msg) = msg else {
                    warn!(url = %self.url, "pub/sub connection lost; reconnecting");
                    break;
                };
                let channel = msg.get_channel_name();
                let raw = bytes::Bytes::copy_from_slice(msg.get_payload_bytes());
                if channel == events_channel {
                    self.on_event(&raw, &cancel).await;
                } else if channel == inbox_channel {
                    self.on_inbox(raw, &cancel).await;
                } else if channel == broadcast_channel {
                    self.on_broadcast(raw);
                }
            }
        }
    }

    async fn on_event(&self, raw: &[u8], cancel: &CancellationToken) {
        let shared = &self.handle.shared;
        match ClusterEvent::parse(raw) {
            Ok(ev) => {
                let _ = shared.events.send(ev.clone());
                if ev.instance() != &shared.instance {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {}
                        _ = self.internal.send(Internal::Event(ev)) => {}
                    }
                }
            }
            Err(e) if !e.is_garbage() => debug!(error = %e, "ignored an event of a newer kind"),
            Err(e) => {
                Noted::BadEvent { error: &e }.emit(&shared.counters);
            }
        }
    }

    fn on_broadcast(&self, raw: bytes::Bytes) {
        let shared = &self.handle.shared;
        match Envelope::decode(raw) {
            Ok(env) if env.kind == MessageKind::Broadcast => {
                // No receiver is fine: nobody subscribed.
                let _ = shared.broadcasts.send(BroadcastMessage {
                    from: env.from,
                    sent_ns: env.sent_ns,
                    payload: env.payload,
                });
            }
            Ok(env) => Noted::BadInboxMessage {
                error: &format_args!("a {:?} message on the broadcast channel", env.kind),
            }
            .emit(&shared.counters),
            Err(e) => Noted::BadInboxMessage { error: &e }.emit(&shared.counters),
        }
    }

    async fn on_inbox(&self, raw: bytes::Bytes, cancel: &CancellationToken) {
        let shared = &self.handle.shared;
        let env = match Envelope::decode(raw) {
            Ok(env) => env,
            Err(e) => {
                Noted::BadInboxMessage { error: &e }.emit(&shared.counters);
                return;
            }
        };
        match env.kind {
            MessageKind::Data => {
                let m = InboxMessage {
                    from: env.from,
                    hops: env.hops,
                    sent_ns: env.sent_ns,
                    mark: env.correlation,
                    payload: env.payload,
                };
                // Backpressure: a slow consumer slows this connection down.
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {}
                    _ = self.inbox.send(m) => {}
                }
            }
            MessageKind::Request => {
                let r = IncomingRequest {
                    from: env.from,
                    payload: env.payload,
                    correlation: env.correlation,
                    handle: self.handle.clone(),
                };
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {}
                    _ = self.requests.send(r) => {}
                }
            }
            MessageKind::Reply => {
                if !shared.pending.complete(env.correlation, env.payload) {
                    Noted::UnmatchedReply.emit(&shared.counters);
                }
            }
            MessageKind::Ack => {
                if shared.credits.acknowledged(&env.from, env.correlation) {
                    shared
                        .credit_version
                        .send_modify(|v| *v = v.wrapping_add(1));
                }
            }
            MessageKind::Broadcast => Noted::BadInboxMessage {
                error: &"a broadcast sent to an inbox",
            }
            .emit(&shared.counters),
        }
    }
}
