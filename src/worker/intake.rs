//! Intake: feed input, forwarded batches and held ticks go through the
//! router, one tick at a time: apply here, forward to the owner, or hold
//! while the owner is unknown.

use std::time::{Duration, Instant};

use super::{Worker, MAX_HOPS};
use crate::clock::now_ns;
use crate::cluster::{InboxMessage, OwnershipView};
use crate::codec::decode_batch;
use crate::engine::TickOutcome;
use crate::ingest::IngestInput;
use crate::partition::partition_of;
use crate::router::{route, OwnerHint, Route};
use crate::stats::BadInput;
use crate::tick::{PartitionId, Tick};

impl Worker {
    pub(super) fn on_input(&mut self, input: IngestInput) {
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

    pub(super) fn on_inbox(&mut self, msg: InboxMessage) {
        // Processed (or rejected) by the end of this call: free the
        // sender's window.
        self.cluster.consumed(&msg);
        let mut ticks = Vec::new();
        if let Err(e) = decode_batch(&msg.payload, &mut ticks) {
            self.metrics.bad_input(
                BadInput::ForeignMessage,
                &format_args!("undecodable forwarded batch from {}: {e}", msg.from),
            );
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
        self.loss
            .batch(&msg.from, msg.mark, ticks.len() as u64, now);
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
    pub(super) fn record_e2e(&mut self) {
        if !self.e2e_sent.is_empty() {
            self.metrics
                .e2e_us
                .record_all_until_ns(&self.e2e_sent, now_ns());
            self.e2e_sent.clear();
        }
    }

    pub(super) fn owner_hint<'v>(
        view: &'v OwnershipView,
        p: PartitionId,
        now: Instant,
    ) -> OwnerHint<'v> {
        if let Some(epoch) = view.owned_epoch(p, now) {
            return OwnerHint::Me(epoch);
        }
        match view.owner(p) {
            crate::cluster::PartitionOwner::Other { instance, .. } => OwnerHint::Other(instance),
            _ => OwnerHint::Unknown,
        }
    }

    pub(super) fn route_tick(&mut self, tick: Tick, hops: u8, view: &OwnershipView, now: Instant) {
        let p = partition_of(&tick.symbol, self.partitions);
        let status = self.engine.status(p);
        match route(status, Self::owner_hint(view, p, now)) {
            Route::Local => self.apply(p, tick, now),
            Route::Forward(owner) => {
                if hops >= MAX_HOPS {
                    self.metrics.bad_input(
                        BadInput::HopLimit,
                        &format_args!("{} #{} forwarded {hops} times", tick.symbol, tick.seq),
                    );
                    return;
                }
                if let Some(full) = self.forwarder.push(owner, hops + 1, &tick) {
                    self.send_full(full);
                }
            }
            Route::Hold => {
                self.metrics.counters.unrouted.inc();
                if self.unrouted.push(tick, hops) {
                    self.metrics.counters.dropped.inc();
                    self.loss.suspect(now);
                }
            }
        }
    }

    pub(super) fn apply(&mut self, p: PartitionId, tick: Tick, now: Instant) {
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

    pub(super) fn count_outcome(&mut self, outcome: TickOutcome, replay: bool) {
        if outcome == TickOutcome::Overflow {
            self.loss.suspect(Instant::now());
        }
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

    pub(super) async fn retry_unrouted(&mut self) {
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
}
