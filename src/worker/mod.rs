//! The worker: the one task per processor that owns the engine.
//!
//! It takes decoded input (feed batches, `/ingest` pushes, forwarded
//! batches from other instances), routes every tick (apply, forward, hold),
//! reacts to ownership changes (load state on acquire, flush on handover,
//! drop on loss), flushes dirty state about every `--flush-ms` through the
//! [`flusher`], asks the feed to replay gaps, and answers symbol queries.
//!
//! Owning all per-symbol state in one task makes "one writer per symbol"
//! true by construction and needs no locks on the hot path.

pub mod flusher;
mod hold;
mod lateness;
mod publish;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::{
    ClusterHandle, InboxMessage, IncomingRequest, OwnershipChange, OwnershipView,
};
use crate::codec::decode_batch;
use crate::engine::{Engine, EngineConfig, GapEvent, PartitionStatus, TickOutcome};
use crate::fasthash::FxHashMap;
use crate::forward::{Forwarder, OutgoingBatch};
use crate::ingest::{IngestInput, ReplayRequest};
use crate::partition::partition_of;
use crate::query::{QueryReply, SymbolQuery, SymbolView};
use crate::router::{route, OwnerHint, Route};
use crate::stats::{HotSymbol, Metrics};
use crate::store::{now_ns, LoadedPartition, Store};
use crate::tick::{Epoch, PartitionId, Symbol, Tick};

pub use flusher::FlushJob;
use hold::HoldBuffer;
use lateness::Lateness;
pub use publish::run_publisher;

/// Most hops a forwarded tick makes before it is dropped (the owner's gap
/// fill brings it back).
pub const MAX_HOPS: u8 = 4;

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
    /// Input batches taken in one go before forward buffers are flushed.
    pub max_drain: usize,
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
        Self {
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
            feed_seqs: FxHashMap::default(),
            e2e_sent: Vec::with_capacity(4096),
            stalled: Vec::new(),
            lateness: Lateness::new(Instant::now()),
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
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(change) = ch.ownership.recv() => self.on_ownership(change).await,
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal),
                Ok(()) = view_changes.changed() => self.retry_unrouted().await,
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
                Some(input) = ch.input.recv() => {
                    self.on_input(input);
                    self.drain_more(&mut ch).await;
                }
                else => break,
            }
        }
        self.send_forwards().await;
        self.flush_in_flight = false;
        self.flush().await;
        let Self { flush_tx, .. } = self;
        drop(flush_tx);
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        tracing::info!("worker stopped");
    }

    /// Takes whatever else is queued right now, then sends the forward
    /// buffers: batches grow with load, with no fixed linger.
    async fn drain_more(&mut self, ch: &mut WorkerChannels) {
        for _ in 0..self.cfg.max_drain {
            if !self.stalled.is_empty() {
                break; // the publisher is behind: send before taking more
            }
            if let Ok(msg) = ch.inbox.try_recv() {
                self.on_inbox(msg);
            } else if let Ok(input) = ch.input.try_recv() {
                self.on_input(input);
            } else {
                break;
            }
        }
        self.send_forwards().await;
    }

    /// A full batch leaves at once when the publisher's queue has room.
    /// This path cannot await, so otherwise it waits in `stalled` (behind
    /// any batch already waiting, to keep the order) until the drain sends
    /// it with backpressure. `stalled` holds at most the ticks of the input
    /// taken since the last drain, so it stays bounded.
    fn send_full(&mut self, full: OutgoingBatch) {
        self.count_forward(&full);
        if !self.stalled.is_empty() {
            self.stalled.push(full);
            return;
        }
        match self.out.forward.try_send(full) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(full)) => self.stalled.push(full),
            Err(mpsc::error::TrySendError::Closed(full)) => self.publisher_gone(&full),
        }
    }

    /// The publisher has stopped (only while shutting down): the batch is
    /// counted as dropped and the owner's gap fill recovers it.
    fn publisher_gone(&self, batch: &OutgoingBatch) {
        self.metrics.counters.dropped.add(batch.ticks as u64);
    }

    /// Sends the batches waiting for room, then the partly filled buffers.
    async fn send_forwards(&mut self) {
        for batch in std::mem::take(&mut self.stalled) {
            self.send_forward(batch).await;
        }
        for batch in self.forwarder.drain() {
            self.count_forward(&batch);
            self.send_forward(batch).await;
        }
    }

    async fn send_forward(&mut self, batch: OutgoingBatch) {
        // Awaiting the bounded queue slows ingest when Redis falls behind.
        if let Err(mpsc::error::SendError(batch)) = self.out.forward.send(batch).await {
            self.publisher_gone(&batch);
        }
    }

    fn count_forward(&self, batch: &OutgoingBatch) {
        let ticks = batch.ticks as u64;
        if batch.hops > 1 {
            self.metrics.counters.reforwarded.add(ticks);
        }
        self.metrics.counters.forwarded_out.add(ticks);
    }

    fn on_input(&mut self, input: IngestInput) {
        match input {
            IngestInput::Ticks(ticks) => {
                self.metrics.counters.ticks_in.add(ticks.len() as u64);
                let view = self.cluster.view();
                let now = Instant::now();
                for tick in ticks {
                    self.route_tick(tick, 0, &view, now);
                }
                self.record_e2e();
            }
            IngestInput::Seqs(seqs) => {
                let now = Instant::now();
                for (symbol, seq) in seqs {
                    let known = self.feed_seqs.entry(symbol).or_insert(0);
                    *known = (*known).max(seq);
                    let p = partition_of(&symbol, self.partitions);
                    self.engine.announce(p, symbol, seq, now);
                }
            }
        }
    }

    fn on_inbox(&mut self, msg: InboxMessage) {
        let mut ticks = Vec::new();
        if let Err(e) = decode_batch(&msg.payload, &mut ticks) {
            self.metrics.bad_input("foreign_message");
            tracing::warn!(from = %msg.from, error = %e, "undecodable forwarded batch");
            return;
        }
        let now_wall = now_ns();
        if msg.sent_ns > 0 && now_wall >= msg.sent_ns {
            self.metrics
                .forward_us
                .record_us((now_wall - msg.sent_ns) / 1000);
        }
        self.metrics.counters.forwarded_in.add(ticks.len() as u64);
        let view = self.cluster.view();
        let now = Instant::now();
        // The first tick of a batch is its oldest.
        if let Some(sent) = ticks.iter().find(|t| !t.replay).and_then(|t| t.sent_ns) {
            let age = Duration::from_nanos(now_wall.saturating_sub(sent));
            self.lateness.observe(age, now);
        }
        for tick in ticks {
            self.route_tick(tick, msg.hops, &view, now);
        }
        self.record_e2e();
    }

    /// Records the end-to-end latency of the ticks applied since the last
    /// call, measured to now (the end of their batch).
    fn record_e2e(&mut self) {
        if !self.e2e_sent.is_empty() {
            self.metrics
                .e2e_us
                .record_all_until_ns(&self.e2e_sent, now_ns());
            self.e2e_sent.clear();
        }
    }

    fn owner_hint<'v>(view: &'v OwnershipView, p: PartitionId, now: Instant) -> OwnerHint<'v> {
        if let Some(epoch) = view.owned_epoch(p, now) {
            return OwnerHint::Me(epoch);
        }
        match view.owner(p) {
            crate::cluster::PartitionOwner::Other { instance, .. } => OwnerHint::Other(instance),
            _ => OwnerHint::Unknown,
        }
    }

    fn route_tick(&mut self, tick: Tick, hops: u8, view: &OwnershipView, now: Instant) {
        let p = partition_of(&tick.symbol, self.partitions);
        let status = self.engine.status(p);
        match route(status, Self::owner_hint(view, p, now)) {
            Route::Local => self.apply(p, tick, now),
            Route::Forward(owner) => {
                if hops >= MAX_HOPS {
                    self.metrics.bad_input("hop_limit");
                    return;
                }
                if let Some(full) = self.forwarder.push(owner, hops + 1, &tick) {
                    self.send_full(full);
                }
            }
            Route::Hold => {
                self.metrics.counters.held.inc();
                if self.unrouted.push(tick, hops) {
                    self.metrics.counters.dropped.inc();
                }
            }
        }
    }

    fn apply(&mut self, p: PartitionId, tick: Tick, now: Instant) {
        let sent_ns = tick.sent_ns;
        let replay = tick.replay;
        let (symbol, seq) = (tick.symbol, tick.seq);
        let outcome = self.engine.offer(p, tick, now);
        if replay {
            tracing::trace!(%symbol, seq, ?outcome, "replayed tick");
        }
        self.count_outcome(outcome, replay);
        if let (TickOutcome::Applied { .. }, Some(sent), false) = (outcome, sent_ns, replay) {
            self.e2e_sent.push(sent);
        }
    }

    fn count_outcome(&self, outcome: TickOutcome, replay: bool) {
        let c = &self.metrics.counters;
        match outcome {
            TickOutcome::Applied { released } => {
                c.applied.add(1 + released as u64);
                if replay {
                    c.replay_ticks.inc();
                }
            }
            TickOutcome::Duplicate => c.duplicates.inc(),
            TickOutcome::Held => c.held.inc(),
            TickOutcome::Overflow => c.dropped.inc(),
            TickOutcome::NotOwned => {}
        }
    }

    async fn retry_unrouted(&mut self) {
        if self.unrouted.is_empty() {
            return;
        }
        let view = self.cluster.view();
        let now = Instant::now();
        for (tick, hops) in self.unrouted.take() {
            self.route_tick(tick, hops, &view, now);
        }
        self.record_e2e();
        self.send_forwards().await;
    }

    async fn on_ownership(&mut self, change: OwnershipChange) {
        match change {
            OwnershipChange::Acquired { partition, epoch } => {
                self.metrics.counters.leases_acquired.inc();
                self.engine.begin_load(partition, epoch);
                self.spawn_load(partition, epoch);
            }
            OwnershipChange::Lost { partition, epoch } => {
                self.metrics.counters.leases_lost.inc();
                tracing::warn!(%partition, %epoch, "partition lost; dropping its state without flushing");
                self.engine.drop_partition(partition);
            }
            OwnershipChange::Release {
                partition,
                epoch,
                done,
            } => {
                self.metrics.counters.leases_released.inc();
                let flush = self.engine.release_partition(partition);
                let job = FlushJob {
                    flushes: flush.into_iter().collect(),
                    done: Some(done),
                };
                tracing::debug!(%partition, %epoch, "handing over: final flush queued");
                if let Err(e) = self.flush_tx.send(job).await {
                    // The flusher is gone (shutting down): acknowledge so the
                    // release proceeds; fencing and replay keep results exact.
                    if let Some(done) = e.0.done {
                        let _ = done.send(());
                    }
                }
            }
        }
        self.retry_unrouted().await;
    }

    fn spawn_load(&self, partition: PartitionId, epoch: Epoch) {
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        let view_source = self.cluster.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                match store.load(partition).await {
                    Ok(loaded) => {
                        let _ = tx
                            .send(Internal::Loaded {
                                partition,
                                epoch,
                                loaded,
                            })
                            .await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%partition, error = %e, "loading partition state failed; retrying");
                        if view_source.view().owned_epoch(partition, Instant::now()) != Some(epoch)
                        {
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        });
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Loaded {
                partition,
                epoch,
                loaded,
            } => {
                for c in &loaded.corrupt {
                    self.metrics.bad_input("corrupt_state");
                    tracing::error!(%partition, symbol = %c.name, reason = %c.reason,
                        "stored state unreadable; the symbol restarts from seq 1 through replay");
                }
                let symbols = loaded.symbols.len();
                if let Some(outcomes) =
                    self.engine
                        .finish_load(partition, epoch, loaded.symbols, Instant::now())
                {
                    for o in outcomes {
                        self.count_outcome(o, false);
                    }
                    tracing::info!(%partition, %epoch, symbols, "partition state loaded");
                    let now = Instant::now();
                    for (symbol, seq) in &self.feed_seqs {
                        if partition_of(symbol, self.partitions) == partition {
                            self.engine.announce(partition, *symbol, *seq, now);
                        }
                    }
                }
            }
            Internal::Flushed(report) => {
                self.flush_in_flight = false;
                for flush in report.failed {
                    self.engine.restore_flush(flush);
                }
                for (partition, epoch) in report.fenced {
                    if self.engine.status(partition) == PartitionStatus::Active(epoch) {
                        tracing::warn!(%partition, %epoch, "flush fenced off: another instance owns the partition; dropping it");
                        self.engine.drop_partition(partition);
                    }
                }
            }
        }
    }

    async fn flush(&mut self) {
        if self.flush_in_flight {
            return;
        }
        let flushes = self.engine.take_flush();
        if flushes.is_empty() {
            return;
        }
        self.flush_in_flight = true;
        let job = FlushJob {
            flushes,
            done: None,
        };
        let _ = self.flush_tx.send(job).await;
    }

    fn scan_gaps(&mut self) {
        let now = Instant::now();
        let gap = &self.cfg.engine.gap;
        // Never so late that a gap would be skipped before its replay.
        let cap = gap.skip_after / 4;
        let after = self.lateness.replay_delay(now, gap.replay_after, cap);
        let retry = gap.replay_retry.max(after * 2);
        self.engine.set_replay_delays(after, retry);
        for event in self.engine.scan_gaps(now) {
            match event {
                GapEvent::Replay {
                    symbol,
                    from,
                    to,
                    first,
                } => {
                    if first {
                        self.metrics.counters.gaps.inc();
                    }
                    self.metrics.counters.replays_requested.inc();
                    tracing::debug!(%symbol, from, to, first, "replay requested");
                    if self
                        .out
                        .replays
                        .try_send(ReplayRequest { symbol, from, to })
                        .is_err()
                    {
                        tracing::debug!(%symbol, from, to, "replay queue full; will ask again");
                    }
                }
                GapEvent::Skipped { symbol, from, to } => {
                    self.metrics.counters.gaps_skipped.inc();
                    tracing::warn!(%symbol, from, to, "gap not filled in time; skipped");
                }
            }
        }
    }

    fn publish_hot(&self) {
        let hot = self
            .engine
            .hottest(10)
            .into_iter()
            .map(|(symbol, s)| hot_symbol(symbol, s))
            .collect();
        let _ = self.out.hot.send(hot);
    }

    fn answer(&self, symbol: &Symbol) -> QueryReply {
        let p = partition_of(symbol, self.partitions);
        let epoch = match self.engine.status(p) {
            PartitionStatus::Active(e) | PartitionStatus::Loading(e) => e,
            PartitionStatus::NotOwned => return QueryReply::NotOwner,
        };
        match self.engine.get(symbol) {
            Some((p, state)) => QueryReply::Found {
                state: SymbolView::of(*symbol, p, self.cluster.instance().clone(), epoch, state),
            },
            None => QueryReply::NotFound,
        }
    }

    fn on_request(&self, req: IncomingRequest) {
        let reply = match serde_json::from_slice::<SymbolQuery>(&req.payload) {
            Ok(q) => self.answer(&q.symbol),
            Err(e) => {
                self.metrics.bad_input("invalid_request");
                tracing::warn!(from = %req.from, error = %e, "undecodable query");
                return;
            }
        };
        let payload = serde_json::to_vec(&reply).unwrap_or_default();
        tokio::spawn(async move {
            if let Err(e) = req.reply(payload.into()).await {
                tracing::debug!(error = %e, "query reply not sent");
            }
        });
    }
}

fn hot_symbol(symbol: Symbol, state: &crate::engine::SymbolState) -> HotSymbol {
    let price = |p: Option<crate::tick::Price>| p.map(|p| p.to_string()).unwrap_or_default();
    let bar = state.bar;
    HotSymbol {
        symbol: symbol.to_string(),
        count: state.totals.count,
        last_px: state.totals.last_px.to_string(),
        vwap_px: price(state.totals.vwap()),
        open: price(bar.map(|b| b.open)),
        high: price(bar.map(|b| b.high)),
        low: price(bar.map(|b| b.low)),
        close: price(bar.map(|b| b.close)),
    }
}
