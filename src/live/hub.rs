//! [`LiveHub`]: an instance's one subscriber to the live channels, and the
//! fan-out of their updates to its `/ws/symbols` clients.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::protocol::{ClientMessage, LiveOutput, Published, StateFields};
use crate::cluster::{ConnOptions, RedisConn};
use crate::keys::Keys;
use crate::partition::partition_of;
use crate::redis_conn::RedisConfig;
use crate::tick::{PartitionId, Symbol};

/// Messages queued for one client; a client this far behind is dropped.
pub const CLIENT_QUEUE: usize = 1024;

/// Most `/ws/symbols` clients of one instance at once.
pub const MAX_CLIENTS: usize = 256;

/// Entries of the `history` stream sent with a snapshot.
pub const HISTORY_ENTRIES: usize = 120;

/// How long a `watched` key lives without a refresh.
const WATCHED_TTL: Duration = Duration::from_secs(10);

/// How often the `watched` keys of watched partitions are refreshed.
const WATCHED_REFRESH: Duration = Duration::from_secs(3);

/// Why a watch could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LiveError {
    /// Redis failed or is unreachable.
    #[error("redis: {0}")]
    Redis(String),
    /// No processor has created the cluster's config yet.
    #[error("the cluster has no partition count yet (no processor has joined)")]
    NoCluster,
    /// The hub has stopped.
    #[error("the live hub has stopped")]
    Stopped,
}

impl From<redis::RedisError> for LiveError {
    fn from(e: redis::RedisError) -> Self {
        LiveError::Redis(e.to_string())
    }
}

/// What is wrong in something the hub received, for the caller's
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A message on a live channel that is not a flush's update.
    LiveMessage,
    /// A `/ws/symbols` request that could not be read.
    Request,
}

/// Reports malformed input: what, and a detail for the log.
pub type MalformedReport = Arc<dyn Fn(Malformed, &str) + Send + Sync>;

enum Command {
    Watch {
        id: u64,
        symbols: Vec<Symbol>,
        history: Option<String>,
        tx: mpsc::Sender<Arc<str>>,
        ended: Arc<std::sync::OnceLock<Ended>>,
        ready: oneshot::Sender<Result<(), LiveError>>,
    },
    Unwatch(u64),
}

/// Why the hub ended a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client's queue was full.
    FellBehind,
    /// An update went missing (its partition's `watched` mark lapsed).
    MissedUpdate,
    /// The live subscription was lost (Redis restarted or unreachable).
    SubscriptionLost,
}

impl Ended {
    /// The WebSocket close code and reason for the client.
    pub fn close(self) -> (u16, &'static str) {
        match self {
            Ended::FellBehind => (1008, "fell behind: reconnect"),
            Ended::MissedUpdate => (1011, "an update was missed: reconnect"),
            Ended::SubscriptionLost => (1011, "live updates were interrupted: reconnect"),
        }
    }
}

/// A client's watch: its messages, as JSON text. Dropping it ends the
/// watch. The stream ends when the hub ends the watch ([`Watch::ended`]
/// says why) or stops.
pub struct Watch {
    /// The messages, oldest first.
    pub messages: mpsc::Receiver<Arc<str>>,
    id: u64,
    commands: mpsc::Sender<Command>,
    ended: Arc<std::sync::OnceLock<Ended>>,
}

impl Watch {
    /// Why the hub ended the watch, once it has.
    pub fn ended(&self) -> Option<Ended> {
        self.ended.get().copied()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let unwatch = Command::Unwatch(self.id);
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.commands.try_send(unwatch) {
            let commands = self.commands.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = commands.send(cmd).await;
                });
            }
        }
    }
}

/// The handle of an instance's live hub.
#[derive(Clone)]
pub struct LiveHub {
    commands: mpsc::Sender<Command>,
    next_id: Arc<AtomicU64>,
    slots: Arc<Semaphore>,
    report: MalformedReport,
}

impl LiveHub {
    /// Starts the hub's task: it connects to the Redis `redis` leads to
    /// (single server or Redis Cluster) on the first watch, and stops with `shutdown`. `partitions` is the
    /// cluster's partition count when known (else read from
    /// `{ns}:{cluster}:config`).
    pub fn start(
        redis: RedisConfig,
        keys: Keys,
        partitions: Option<NonZeroU32>,
        report: MalformedReport,
        shutdown: CancellationToken,
    ) -> Self {
        let (commands, rx) = mpsc::channel(256);
        let task = HubTask {
            redis,
            keys,
            partitions,
            report: report.clone(),
            conn: None,
            sink: None,
            clients: HashMap::new(),
            watched: HashMap::new(),
        };
        tokio::spawn(task.run(rx, shutdown));
        Self {
            commands,
            next_id: Arc::new(AtomicU64::new(1)),
            slots: Arc::new(Semaphore::new(MAX_CLIENTS)),
            report,
        }
    }

    /// Reports malformed input.
    pub fn report(&self, what: Malformed, detail: &str) {
        (self.report)(what, detail)
    }

    /// A client slot, if fewer than [`MAX_CLIENTS`] are connected.
    pub fn try_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Starts watching `symbols`: the first messages are `subscribed`
    /// and one `snapshot` per symbol (with up to [`HISTORY_ENTRIES`] of
    /// the `history` operator's stream), then updates.
    pub async fn watch(
        &self,
        symbols: Vec<Symbol>,
        history: Option<String>,
    ) -> Result<Watch, LiveError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, messages) = mpsc::channel(CLIENT_QUEUE);
        let (ready, done) = oneshot::channel();
        let ended = Arc::new(std::sync::OnceLock::new());
        self.commands
            .send(Command::Watch {
                id,
                symbols,
                history,
                tx,
                ended: ended.clone(),
                ready,
            })
            .await
            .map_err(|_| LiveError::Stopped)?;
        let watch = Watch {
            messages,
            id,
            commands: self.commands.clone(),
            ended,
        };
        done.await.map_err(|_| LiveError::Stopped)??;
        Ok(watch)
    }
}

struct Client {
    tx: mpsc::Sender<Arc<str>>,
    /// Each symbol's last seq sent.
    sent: HashMap<Symbol, u64>,
    ended: Arc<std::sync::OnceLock<Ended>>,
}

struct HubTask {
    redis: RedisConfig,
    keys: Keys,
    partitions: Option<NonZeroU32>,
    report: MalformedReport,
    conn: Option<RedisConn>,
    sink: Option<PubSubSink>,
    clients: HashMap<u64, Client>,
    /// Watched partitions and how many clients' symbols are in each.
    watched: HashMap<PartitionId, usize>,
}

impl HubTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut stream: Option<PubSubStream> = None;
        let mut refresh = tokio::time::interval(WATCHED_REFRESH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Watch { id, symbols, history, tx, ended, ready }) => {
                        if stream.is_none() {
                            match self.connect().await {
                                Ok(s) => stream = Some(s),
                                Err(e) => {
                                    let _ = ready.send(Err(e));
                                    continue;
                                }
                            }
                        }
                        let mut counted = 0;
                        let client = Client { tx, sent: HashMap::new(), ended };
                        let result = self.add(id, &symbols, history, client, &mut counted).await;
                        if let Err(e) = &result {
                            tracing::warn!(error = %e, "live watch failed");
                            self.release(symbols[..counted].iter()).await;
                        }
                        let _ = ready.send(result);
                    }
                    Some(Command::Unwatch(id)) => self.remove(id).await,
                },
                msg = next_message(&mut stream) => match msg {
                    Some(msg) => self.dispatch(msg.get_payload_bytes()),
                    None => {
                        tracing::warn!(clients = self.clients.len(), "live subscription lost; dropping its clients");
                        stream = None;
                        self.sink = None;
                        for client in self.clients.values() {
                            let _ = client.ended.set(Ended::SubscriptionLost);
                        }
                        self.clients.clear();
                        self.watched.clear();
                    }
                },
                _ = refresh.tick() => self.refresh_watched().await,
            }
        }
    }

    async fn connect(&mut self) -> Result<PubSubStream, LiveError> {
        // The live channels are cluster-wide: any node's pub/sub will do,
        // and each attempt tries the next seed.
        let client = self
            .redis
            .next_seed_client()
            .map_err(|e| LiveError::Redis(e.to_string()))?;
        let pubsub = client.get_async_pubsub().await?;
        let (sink, stream) = pubsub.split();
        if self.conn.is_none() {
            let conn = RedisConn::connect(&self.redis, &ConnOptions::default())
                .await
                .map_err(|e| LiveError::Redis(e.to_string()))?;
            self.conn = Some(conn);
        }
        self.sink = Some(sink);
        Ok(stream)
    }

    async fn partitions(&mut self, conn: &mut RedisConn) -> Result<NonZeroU32, LiveError> {
        if let Some(p) = self.partitions {
            return Ok(p);
        }
        let stored: Option<u32> = redis::cmd("HGET")
            .arg(self.keys.config())
            .arg("partitions")
            .query_async(conn)
            .await?;
        let p = stored
            .and_then(NonZeroU32::new)
            .ok_or(LiveError::NoCluster)?;
        self.partitions = Some(p);
        Ok(p)
    }

    async fn add(
        &mut self,
        id: u64,
        symbols: &[Symbol],
        history: Option<String>,
        mut client: Client,
        counted: &mut usize,
    ) -> Result<(), LiveError> {
        let (Some(mut conn), Some(mut sink)) = (self.conn.clone(), self.sink.clone()) else {
            return Err(LiveError::Stopped);
        };
        let partitions = self.partitions(&mut conn).await?;
        // Subscribe first: an update stored after the snapshot is read is
        // then sure to arrive, and older ones are filtered by seq.
        for s in symbols {
            let p = partition_of(s, partitions);
            if !self.watched.contains_key(&p) {
                sink.subscribe(self.keys.live(p)).await?;
            }
            // Marked again even when watched already: the mark must not
            // lapse between two refreshes while this client starts.
            self.mark_watched(&mut conn, p).await?;
            *self.watched.entry(p).or_default() += 1;
            *counted += 1;
        }
        let names = symbols.iter().map(|s| s.to_string()).collect();
        send(&client.tx, &ClientMessage::Subscribed { symbols: names });
        for s in symbols {
            let p = partition_of(s, partitions);
            let stored: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(self.keys.sym(p, s))
                .query_async(&mut conn)
                .await?;
            let last_seq = stored
                .get("last_seq")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let history = match &history {
                Some(op) => read_history(&mut conn, &self.keys.out(p, op, s), op, last_seq).await?,
                None => Vec::new(),
            };
            send(
                &client.tx,
                &ClientMessage::Snapshot {
                    symbol: s.to_string(),
                    last_seq,
                    state: StateFields(stored.into_iter().collect()),
                    history,
                },
            );
            client.sent.insert(*s, last_seq);
        }
        self.clients.insert(id, client);
        Ok(())
    }

    async fn remove(&mut self, id: u64) {
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        self.release(client.sent.keys()).await;
    }

    /// Drops one watch of each symbol's partition; unsubscribes from
    /// partitions nobody watches any more (their `watched` keys expire by
    /// themselves: another instance may still watch them).
    async fn release<'a>(&mut self, symbols: impl Iterator<Item = &'a Symbol>) {
        let Some(partitions) = self.partitions else {
            return;
        };
        for s in symbols {
            let p = partition_of(s, partitions);
            if let Some(n) = self.watched.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    self.watched.remove(&p);
                    if let Some(sink) = self.sink.as_mut() {
                        let _ = sink.unsubscribe(self.keys.live(p)).await;
                    }
                }
            }
        }
    }

    async fn mark_watched(
        &self,
        conn: &mut RedisConn,
        p: PartitionId,
    ) -> Result<(), redis::RedisError> {
        redis::cmd("SET")
            .arg(self.keys.watched(p))
            .arg(1)
            .arg("PX")
            .arg(WATCHED_TTL.as_millis() as u64)
            .query_async(conn)
            .await
    }

    async fn refresh_watched(&mut self) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let partitions: Vec<PartitionId> = self.watched.keys().copied().collect();
        let mut failed = 0;
        for p in partitions {
            if self.mark_watched(&mut conn, p).await.is_err() {
                failed += 1;
            }
        }
        if failed > 0 {
            // A lapsed mark shows as a missed update, which ends the
            // watches it affects.
            tracing::warn!(partitions = failed, "cannot refresh watched marks");
        }
    }

    /// Sends one published message's updates to the clients watching
    /// them; drops clients that fell behind.
    fn dispatch(&mut self, payload: &[u8]) {
        let published: Published = match serde_json::from_slice(payload) {
            Ok(p) => p,
            Err(e) => {
                (self.report)(Malformed::LiveMessage, &e.to_string());
                return;
            }
        };
        let mut behind = Vec::new();
        for update in published.updates {
            let Ok(symbol) = update.symbol.parse::<Symbol>() else {
                (self.report)(
                    Malformed::LiveMessage,
                    &format!("symbol {:?}", update.symbol),
                );
                continue;
            };
            let mut text: Option<Arc<str>> = None;
            for (id, client) in &mut self.clients {
                let Some(sent) = client.sent.get_mut(&symbol) else {
                    continue;
                };
                if update.last_seq <= *sent {
                    continue;
                }
                if update.from_seq > *sent + 1 {
                    // Stored changes were not published (the watched mark
                    // lapsed): the client must not see a silent jump.
                    let _ = client.ended.set(Ended::MissedUpdate);
                    behind.push(*id);
                    continue;
                }
                *sent = update.last_seq;
                let text = text.get_or_insert_with(|| {
                    encode(&ClientMessage::Update {
                        symbol: update.symbol.clone(),
                        partition: published.partition,
                        epoch: published.epoch,
                        from_seq: update.from_seq,
                        last_seq: update.last_seq,
                        state: update.state.clone(),
                        outputs: update.outputs.clone(),
                    })
                });
                if client.tx.try_send(Arc::clone(text)).is_err() {
                    let _ = client.ended.set(Ended::FellBehind);
                    behind.push(*id);
                }
            }
        }
        for id in behind {
            if let Some(client) = self.clients.remove(&id) {
                tracing::info!(client = id, why = ?client.ended.get(), "live client dropped");
                // Partition counts are released lazily: an unsubscribe
                // needs an await, and the stale subscription costs only
                // filtered messages until the next watch or unwatch.
                let symbols: Vec<Symbol> = client.sent.into_keys().collect();
                for s in symbols {
                    if let Some(p) = self.partitions.map(|n| partition_of(&s, n)) {
                        if let Some(n) = self.watched.get_mut(&p) {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
            }
        }
        self.watched.retain(|_, n| *n > 0);
    }
}

async fn next_message(stream: &mut Option<PubSubStream>) -> Option<redis::Msg> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The latest entries of `key`, oldest first, up to the snapshot's
/// `last_seq` (newer ones come with the next update).
async fn read_history(
    conn: &mut RedisConn,
    key: &str,
    operator: &str,
    last_seq: u64,
) -> Result<Vec<LiveOutput>, redis::RedisError> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(HISTORY_ENTRIES)
        .query_async(conn)
        .await?;
    let seq_of = |id: &str| id.split('-').next().and_then(|s| s.parse::<u64>().ok());
    let mut entries: Vec<LiveOutput> = reply
        .ids
        .into_iter()
        .filter(|e| seq_of(&e.id).is_some_and(|seq| seq <= last_seq))
        .map(|e| LiveOutput {
            operator: operator.to_owned(),
            fields: StateFields(
                e.map
                    .iter()
                    .filter_map(|(k, v)| {
                        redis::from_redis_value::<String>(v.clone())
                            .ok()
                            .map(|v| (k.clone(), v))
                    })
                    .collect(),
            ),
            id: e.id,
        })
        .collect();
    entries.reverse();
    Ok(entries)
}

fn encode(msg: &ClientMessage) -> Arc<str> {
    Arc::from(serde_json::to_string(msg).unwrap_or_default())
}

/// Queues a message for a client being set up (its queue is empty and
/// far larger than a snapshot's messages).
fn send(tx: &mpsc::Sender<Arc<str>>, msg: &ClientMessage) {
    let _ = tx.try_send(encode(msg));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn task(report: MalformedReport) -> HubTask {
        HubTask {
            redis: RedisConfig::new("redis://127.0.0.1:1/"),
            keys: Keys::new("t"),
            partitions: NonZeroU32::new(4),
            report,
            conn: None,
            sink: None,
            clients: HashMap::new(),
            watched: HashMap::new(),
        }
    }

    fn update(symbol: &str, from: u64, to: u64) -> Vec<u8> {
        format!(
            r#"{{"partition":1,"epoch":2,"updates":[{{"symbol":"{symbol}","from_seq":{from},"last_seq":{to},"state":{{"last_seq":"{to}"}}}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn updates_reach_watchers_once_in_order_and_a_full_client_is_dropped() {
        let bad = Arc::new(Mutex::new(Vec::new()));
        let seen = bad.clone();
        let mut hub = task(Arc::new(move |what, _| seen.lock().unwrap().push(what)));
        let aapl: Symbol = "AAPL".parse().unwrap();
        let (fast_tx, mut fast) = mpsc::channel(16);
        let (slow_tx, _slow) = mpsc::channel(1);
        let ended: Vec<_> = (0..2)
            .map(|_| Arc::new(std::sync::OnceLock::new()))
            .collect();
        for (id, tx) in [(1, fast_tx), (2, slow_tx)] {
            let sent = HashMap::from([(aapl, 3)]);
            let ended = ended[id as usize - 1].clone();
            hub.clients.insert(id, Client { tx, sent, ended });
        }
        hub.watched
            .insert(partition_of(&aapl, NonZeroU32::new(4).unwrap()), 2);

        hub.dispatch(&update("AAPL", 1, 3)); // already in the snapshot
        hub.dispatch(&update("AAPL", 4, 5));
        hub.dispatch(&update("MSFT", 1, 9)); // nobody watches it
        hub.dispatch(&update("AAPL", 6, 8));
        hub.dispatch(b"not json");

        let got: Vec<u64> = std::iter::from_fn(|| fast.try_recv().ok())
            .map(|m| {
                let v: serde_json::Value = serde_json::from_str(&m).unwrap();
                v["last_seq"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(got, vec![5, 8]);
        // The slow client's one slot filled at seq 5: it was dropped at 8,
        // and the fast one was not held back.
        assert!(hub.clients.contains_key(&1) && !hub.clients.contains_key(&2));
        assert_eq!(ended[1].get(), Some(&Ended::FellBehind));
        assert_eq!(hub.watched.values().sum::<usize>(), 1);
        assert_eq!(*bad.lock().unwrap(), vec![Malformed::LiveMessage]);
        // A jump past the next seq ends the watch instead of hiding a gap.
        hub.dispatch(&update("AAPL", 10, 12));
        assert!(hub.clients.is_empty());
        assert_eq!(ended[0].get(), Some(&Ended::MissedUpdate));
    }
}
