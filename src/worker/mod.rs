//! The worker: the one task per processor that owns the engine.
//!
//! It takes decoded input (feed batches, `/ingest` pushes, forwarded
//! batches from other instances), routes every tick (apply, forward, hold),
//! reacts to ownership changes (load state on acquire, flush on handover,
//! drop on loss), flushes dirty state about every `--flush-ms` through the
//! [`flusher`], asks the feed to replay gaps, and answers symbol queries.
//!
//! Owning all per-symbol state in one task makes "one writer per symbol"
//! true by construction and needs no locks on the hot path. The select
//! loop here only dispatches; each concern has its module:
//!
//! - [`admission`]: whether new feed input is taken now (flow control);
//! - `intake`: routing feed input, forwarded batches and held ticks;
//! - `outbound`: forwarded batches to the publisher, charged to credit;
//! - `ownership`: load on acquire, drop on loss, flush on handover;
//! - `persist` and [`flusher`]: periodic fenced flushes;
//! - `gaps`: replay requests and skipped gaps, with `lateness` and
//!   `loss` (how soon a gap is worth a replay);
//! - `queries`: symbol queries and the hottest symbols;
//! - `hold`: ticks waiting for an owner; `publish`: the publisher task.

pub mod admission;
pub mod flusher;
mod gaps;
mod hold;
mod intake;
mod lateness;
mod loss;
mod outbound;
mod ownership;
mod persist;
mod publish;
mod queries;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterHandle, InboxMessage, IncomingRequest, OwnershipChange};
use crate::engine::{Engine, EngineConfig};
use crate::forward::{Forwarder, OutgoingBatch};
use crate::ingest::{IngestInput, ReplayRequest};
use crate::query::QueryReply;
use crate::retry::Backoff;
use crate::stats::{HotSymbol, Metrics};
use crate::store::{LoadedPartition, Store};
use crate::tick::{Epoch, PartitionId, Symbol};
use rustc_hash::FxHashMap;

use admission::{Admission, AdmissionConfig, Closed};
pub use flusher::FlushJob;
use hold::HoldBuffer;
use lateness::Lateness;
use loss::LossSignals;
pub use publish::run_publisher;

/// Most hops a forwarded tick makes before it is dropped (the owner's gap
/// fill brings it back).
pub const MAX_HOPS: u8 = 4;

/// How often paused intake is checked again without any other wake-up.
const RECHECK_PAUSED: Duration = Duration::from_millis(2);

/// Longest wait between attempts to flush after failures.
const FLUSH_BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Worker limits and timings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Engine limits and gap policy.
    pub engine: EngineConfig,
    /// How often dirty state is flushed.
    pub flush_every: Duration,
    /// How often gaps are checked.
    pub gap_scan_every: Duration,
    /// Most ticks held while their owner is unknown.
    pub max_unrouted: usize,
    /// Input batches taken in one go before forward buffers are flushed,
    /// when little is queued (low latency at moderate rates).
    pub max_drain: usize,
    /// The same under a backlog: as many as are queued, up to this, so
    /// forwarded batches stay big when the worker is behind.
    pub max_drain_backlog: usize,
    /// Flow control of new input.
    pub admission: AdmissionConfig,
}

/// A symbol query from this instance's HTTP server.
#[derive(Debug)]
pub struct LocalQuery {
    /// The symbol.
    pub symbol: Symbol,
    /// Where the answer goes.
    pub reply: oneshot::Sender<QueryReply>,
}

/// The worker's inputs.
pub struct WorkerChannels {
    /// Decoded feed and `/ingest` input.
    pub input: mpsc::Receiver<IngestInput>,
    /// Forwarded batches from other instances.
    pub inbox: mpsc::Receiver<InboxMessage>,
    /// Ownership changes from the cluster runtime.
    pub ownership: mpsc::Receiver<OwnershipChange>,
    /// Symbol queries from other instances.
    pub requests: mpsc::Receiver<IncomingRequest>,
    /// Symbol queries from the local HTTP server.
    pub queries: mpsc::Receiver<LocalQuery>,
}

/// Where the worker's output goes.
pub struct WorkerOutputs {
    /// Forwarded batches, to the publisher task.
    pub forward: mpsc::Sender<OutgoingBatch>,
    /// Replay requests, to the feed client (dropped when full: retried).
    pub replays: mpsc::Sender<ReplayRequest>,
    /// The hottest symbols, for the stats publisher.
    pub hot: watch::Sender<Vec<HotSymbol>>,
}

enum Internal {
    Loaded {
        partition: PartitionId,
        epoch: Epoch,
        loaded: LoadedPartition,
    },
    Flushed(flusher::FlushReport),
}

/// The worker task's state.
pub struct Worker {
    cfg: WorkerConfig,
    cluster: ClusterHandle,
    partitions: NonZeroU32,
    engine: Engine,
    store: Store,
    metrics: Arc<Metrics>,
    forwarder: Forwarder,
    unrouted: HoldBuffer,
    out: WorkerOutputs,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    flush_tx: mpsc::Sender<FlushJob>,
    flush_rx: Option<mpsc::Receiver<FlushJob>>,
    flush_in_flight: bool,
    /// Backoff after failed flushes, and when the next may start.
    flush_backoff: Backoff,
    flush_not_before: Instant,
    /// The feed's latest seq of every symbol, owned or not, so a partition
    /// acquired after the feed went quiet still learns what it must have.
    feed_seqs: FxHashMap<Symbol, u64>,
    /// `sent_ns` of the ticks applied in the batch being processed: their
    /// end-to-end latency is recorded in one go when the batch is done.
    e2e_sent: Vec<u64>,
    /// Full forward batches waiting for room in the publisher's queue.
    stalled: Vec<OutgoingBatch>,
    /// How late forwarded ticks arrive: stretches the replay delays.
    lateness: Lateness,
    /// Whether new input is taken (flow control).
    admission: Admission,
    /// Recent evidence of lost ticks: decides how soon gaps are replayed.
    loss: LossSignals,
    /// Why intake was paused at the last check, to count each pause once.
    paused: Option<Closed>,
}

impl Worker {
    /// A worker for `cluster`, persisting through `store`.
    pub fn new(
        cfg: WorkerConfig,
        cluster: ClusterHandle,
        store: Store,
        metrics: Arc<Metrics>,
        out: WorkerOutputs,
    ) -> Self {
        let partitions = cluster.partitions();
        let (internal_tx, internal_rx) = mpsc::channel(partitions.get() as usize * 2 + 16);
        let (flush_tx, flush_rx) = mpsc::channel(partitions.get() as usize + 4);
        let admission = Admission::new(cfg.admission);
        let loss = LossSignals::new(cfg.engine.gap.skip_after / 2);
        let cfg_flush_every = cfg.flush_every;
        Self {
            admission,
            loss,
            flush_tx,
            flush_rx: Some(flush_rx),
            engine: Engine::new(cfg.engine.clone()),
            unrouted: HoldBuffer::new(cfg.max_unrouted),
            cfg,
            cluster,
            partitions,
            store,
            metrics,
            forwarder: Forwarder::new(),
            out,
            internal_tx,
            internal_rx,
            flush_in_flight: false,
            flush_backoff: Backoff::new(cfg_flush_every, FLUSH_BACKOFF_CAP),
            flush_not_before: Instant::now(),
            feed_seqs: FxHashMap::default(),
            e2e_sent: Vec::with_capacity(4096),
            stalled: Vec::new(),
            lateness: Lateness::new(Instant::now()),
            paused: None,
        }
    }

    /// Runs until `stop` is cancelled (after the cluster runtime has handed
    /// every partition over) or every input is closed.
    pub async fn run(mut self, mut ch: WorkerChannels, stop: CancellationToken) {
        let flusher = self.flush_rx.take().map(|jobs| {
            tokio::spawn(flusher::run(
                self.store.clone(),
                self.metrics.clone(),
                jobs,
                self.internal_tx.clone(),
            ))
        });
        let mut flush_timer = tokio::time::interval(self.cfg.flush_every);
        flush_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gap_timer = tokio::time::interval(self.cfg.gap_scan_every);
        gap_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hot_timer = tokio::time::interval(Duration::from_secs(1));
        let mut view_changes = self.cluster.view_changes();
        let mut credit_changes = self.cluster.credit_changes();
        loop {
            let admit = self.admit();
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(change) = ch.ownership.recv() => self.on_ownership(change).await,
                Some(internal) = self.internal_rx.recv() => match internal {
                    Internal::Loaded { partition, epoch, loaded } => {
                        self.on_loaded(partition, epoch, loaded)
                    }
                    Internal::Flushed(report) => self.on_flushed(report),
                },
                Ok(()) = view_changes.changed() => {
                    let view = self.cluster.view();
                    self.loss.members(view.members().iter().map(|m| &m.id), Instant::now());
                    self.retry_unrouted().await;
                }
                _ = flush_timer.tick() => self.flush().await,
                _ = gap_timer.tick() => self.scan_gaps(),
                _ = hot_timer.tick() => self.publish_hot(),
                Some(q) = ch.queries.recv() => {
                    let _ = q.reply.send(self.answer(&q.symbol));
                }
                Some(req) = ch.requests.recv() => self.on_request(req),
                Some(msg) = ch.inbox.recv() => {
                    self.on_inbox(msg);
                    self.drain_more(&mut ch).await;
                }
                Some(input) = ch.input.recv(), if admit => {
                    self.on_input(input);
                    self.drain_more(&mut ch).await;
                }
                // Paused: wake when credit comes back, or re-check soon
                // (held ticks drain, a stalled destination is forgiven).
                Ok(()) = credit_changes.changed(), if !admit => {}
                _ = tokio::time::sleep(RECHECK_PAUSED), if !admit => {}
                else => break,
            }
        }
        self.send_forwards().await;
        self.flush_in_flight = false;
        self.flush_not_before = Instant::now();
        self.flush().await;
        let Self { flush_tx, .. } = self;
        drop(flush_tx);
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        tracing::info!("worker stopped");
    }

    /// Takes whatever else is queued right now (new input only while
    /// admitted), then sends the forward buffers: batches grow with load,
    /// with no fixed linger. A few inputs at a time keep the latency low;
    /// under a backlog it takes as many as are queued (bounded), so the
    /// forwarded batches stay big.
    async fn drain_more(&mut self, ch: &mut WorkerChannels) {
        let queued = ch.input.len() + ch.inbox.len();
        let limit = queued.clamp(
            self.cfg.max_drain,
            self.cfg.max_drain_backlog.max(self.cfg.max_drain),
        );
        for _ in 0..limit {
            if !self.stalled.is_empty() {
                break; // the publisher is behind: send before taking more
            }
            if let Ok(msg) = ch.inbox.try_recv() {
                self.on_inbox(msg);
                continue;
            }
            if !self.admit() {
                break;
            }
            match ch.input.try_recv() {
                Ok(input) => self.on_input(input),
                Err(_) => break,
            }
        }
        self.send_forwards().await;
    }

    /// Whether new input may be taken now; counts each pause once.
    fn admit(&mut self) -> bool {
        let held = self.engine.held() + self.unrouted.len();
        let closed = self.admission.check(
            held,
            self.forwarder.destinations(),
            &self.cluster,
            &self.metrics.counters.credit_forgiven,
            Instant::now(),
        );
        if closed != self.paused {
            let c = &self.metrics.counters;
            match closed {
                Some(Closed::Credit) => c.intake_paused_credit.inc(),
                Some(Closed::Held) => c.intake_paused_held.inc(),
                None => {}
            }
            self.paused = closed;
        }
        closed.is_none()
    }
}
