//! The one pub/sub connection: shard channel `{ns}:inbox:{me}` (on the
//! master serving its slot) and the cluster-wide channels `{ns}:events`
//! and `{ns}:broadcast`. Decodes each message once and routes it: data to
//! the inbox channel, requests to the request channel, replies to their
//! waiting request, flow-control acks to the credit counters, broadcasts
//! to their subscribers, events to their subscribers and to the runtime.
//! Garbage is counted and dropped.
//!
//! Pub/sub is at-most-once. When the connection drops (the connection
//! reconnects by itself) or the server drops the inbox because its slot
//! moved (failover, resharding), the subscriber subscribes again, and
//! once that is confirmed tells the runtime to re-read everything.

use std::sync::Arc;
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::connection::{is_dropped_shard_channel, RedisConn};
use super::error::ClusterError;
use super::events::ClusterEvent;
use super::handle::{BroadcastMessage, ClusterHandle, InboxMessage, IncomingRequest, Shared};
use super::join::{conn_options, within_connect_timeout};
use super::messaging::{Envelope, MessageKind};
use crate::noted::Noted;
use crate::redis_conn::RedisConfig;

/// What the subscriber tells the runtime.
#[derive(Debug)]
pub(crate) enum Internal {
    /// An event from another instance.
    Event(ClusterEvent),
    /// The subscription was re-established; messages may have been missed.
    Resubscribed,
}

/// A subscribed connection and the pushes it receives.
pub(crate) struct Subscription {
    conn: RedisConn,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// The push channel ended: nothing more will arrive on it.
    closed: bool,
}

/// Subscribes `conn` to our inbox (a shard channel) and the cluster-wide
/// channels.
async fn subscribe_all(conn: &mut RedisConn, shared: &Shared) -> redis::RedisResult<()> {
    conn.ssubscribe(&shared.keys.inbox(&shared.instance))
        .await?;
    conn.subscribe(&shared.keys.events()).await?;
    conn.subscribe(&shared.keys.broadcast()).await
}

/// Opens a pub/sub connection and subscribes to our inbox and the events.
pub(crate) async fn subscribe(
    redis: &RedisConfig,
    shared: &Shared,
) -> Result<Subscription, ClusterError> {
    let (tx, pushes) = mpsc::unbounded_channel();
    let opts = conn_options(&shared.timings);
    let conn = within_connect_timeout(redis, async {
        let mut conn = RedisConn::connect_subscriber(redis, &opts, tx).await?;
        subscribe_all(&mut conn, shared).await?;
        Ok(conn)
    })
    .await
    .map_err(|e| match e {
        ClusterError::Unreachable { url, reason } if reason.contains("unknown command") => {
            ClusterError::RedisTooOld { url, reason }
        }
        other => other,
    })?;
    Ok(Subscription {
        conn,
        pushes,
        closed: false,
    })
}

/// The channel and payload of a message push, if it is one.
fn message_of(push: PushInfo) -> Option<(Vec<u8>, Vec<u8>)> {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return None;
    }
    let mut data = push.data.into_iter();
    match (data.next(), data.next()) {
        (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) => {
            Some((channel, payload))
        }
        _ => None,
    }
}

pub(crate) struct Subscriber {
    pub(crate) redis: RedisConfig,
    /// Redacted URL, for logs.
    pub(crate) url: String,
    pub(crate) handle: ClusterHandle,
    pub(crate) inbox: mpsc::Sender<InboxMessage>,
    pub(crate) requests: mpsc::Sender<IncomingRequest>,
    pub(crate) internal: mpsc::Sender<Internal>,
}

impl Subscriber {
    pub(crate) async fn run(self, first: Subscription, cancel: CancellationToken) {
        let shared = Arc::clone(&self.handle.shared);
        let inbox_channel = shared.keys.inbox(&shared.instance);
        let events_channel = shared.keys.events();
        let broadcast_channel = shared.keys.broadcast();
        let mut sub = first;
        // False from a lost connection or a dropped inbox until every
        // subscription is confirmed again.
        let mut subscribed = true;
        let mut check =
            tokio::time::interval(shared.timings.op_timeout.min(Duration::from_millis(500)));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let push = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                push = sub.pushes.recv(), if !sub.closed => push,
                _ = check.tick() => {
                    subscribed = self.check(&mut sub, &shared, subscribed).await;
                    continue;
                }
            };
            let Some(push) = push else {
                // Nothing more will arrive on this connection: the next
                // check opens a new one.
                warn!(url = %self.url, "pub/sub connection closed; opening a new one");
                sub.closed = true;
                subscribed = false;
                continue;
            };
            match push.kind {
                PushKind::Disconnection => {
                    if subscribed {
                        warn!(url = %self.url, "pub/sub connection lost; reconnecting");
                    }
                    subscribed = false;
                    continue;
                }
                PushKind::SUnsubscribe if is_dropped_shard_channel(&push, &inbox_channel) => {
                    warn!(channel = %inbox_channel, "the server dropped our inbox (its slot moved); subscribing again");
                    subscribed = false;
                    continue;
                }
                _ => {}
            }
            let Some((channel, payload)) = message_of(push) else {
                continue;
            };
            let raw = bytes::Bytes::from(payload);
            if channel == events_channel.as_bytes() {
                self.on_event(&raw, &cancel).await;
            } else if channel == inbox_channel.as_bytes() {
                shared.counters.inbox_bytes.add(raw.len() as u64);
                self.on_inbox(raw, &cancel).await;
            } else if channel == broadcast_channel.as_bytes() {
                self.on_broadcast(raw);
            }
        }
    }

    /// Subscribes again when `subscribed` is false (on the same
    /// connection, or else on a new one, so a connection that went silent
    /// is left behind), telling the runtime once it worked; otherwise
    /// pings the inbox's master, so a dead connection is noticed. Returns
    /// whether every subscription stands.
    async fn check(&self, sub: &mut Subscription, shared: &Shared, subscribed: bool) -> bool {
        let after = shared.timings.op_timeout;
        if subscribed {
            // The inbox's master: the one whose loss loses messages.
            let ping = redis::cmd("PING");
            let inbox = shared.keys.inbox(&shared.instance);
            let ping = sub.conn.query_at_master_of::<redis::Value>(&ping, &inbox);
            return match tokio::time::timeout(after, ping).await {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => {
                    warn!(url = %self.url, error = %e, "pub/sub connection failed; subscribing again");
                    false
                }
                Err(_) => {
                    warn!(url = %self.url, ?after, "pub/sub connection does not answer; subscribing again");
                    false
                }
            };
        }
        let again = match sub.closed {
            true => Err("the connection is closed".to_owned()),
            false => {
                match tokio::time::timeout(after, subscribe_all(&mut sub.conn, shared)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {after:?}")),
                }
            }
        };
        if let Err(e) = again {
            debug!(error = %e, "subscribing again failed; opening a new connection");
            match subscribe(&self.redis, shared).await {
                Ok(fresh) => *sub = fresh,
                Err(e) => {
                    debug!(error = %e, "a new pub/sub connection failed; retrying");
                    return false;
                }
            }
        }
        info!("pub/sub re-established");
        let _ = self.internal.send(Internal::Resubscribed).await;
        true
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
