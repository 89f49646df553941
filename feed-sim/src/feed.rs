//! The feed loop: takes ticks from the source at the paced rate, numbers
//! them in the replay store, folds them into the ground truth and hands
//! each batch to ONE live connection (or, owner-aware, each tick to its
//! owner's connection). Batches given back by failed connections are
//! re-assigned. With no client connected it waits, and pacing pauses.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickshard::tick::Tick;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cli::Mode;
use crate::distribute::{split_by_owner, Picker};
use crate::hub::ConnHandle;
use crate::pacing::{ReplayClock, TokenBucket};
use crate::source::{BadRows, NewTick, Source};
use crate::state::Shared;
use tickshard::clock::now_ns;
use tickshard::cluster::observer::OwnershipMap;
use tickshard::truth::GroundTruth;

/// Shortest wait of a paced feed: at a fixed rate it sends what accrued
/// at most every millisecond, as an exchange gateway sends a packet of
/// messages, instead of waking thousands of times a second for a few
/// ticks each (which cost the simulator and every processor more CPU per
/// tick at moderate rates than at saturation). `sent_ns` is stamped as a
/// batch goes out, so this does not show in the processors' latency.
const PACE_STEP: Duration = Duration::from_millis(1);

/// The knobs of the loop.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Max ticks per batch.
    pub batch: usize,
    /// Ticks/s, `None` = unthrottled.
    pub rate: Option<f64>,
    /// `--speed` for recorded trades.
    pub speed: Option<f64>,
    /// Stop after this many ticks.
    pub ticks: Option<u64>,
    /// Stop after sending this long.
    pub duration: Option<Duration>,
    /// Distribution mode.
    pub mode: Mode,
    /// Seed of the random picker.
    pub seed: u64,
    /// Clients to wait for before the first tick (then one is enough).
    pub wait_clients: usize,
}

/// How the loop ended.
#[derive(Debug)]
pub struct FeedOutcome {
    /// Every tick of the source (or up to the limit) was written to a socket.
    pub completed: bool,
    /// First batch handed out.
    pub send_start: Option<Instant>,
    /// Last batch written.
    pub send_end: Option<Instant>,
    /// Skipped input rows.
    pub bad_rows: BadRows,
    /// Ground truth of the ticks numbered.
    pub truth: GroundTruth,
}

/// The loop was stopped by shutdown.
#[derive(Debug)]
struct Stopped;

/// The feed loop's state.
pub struct FeedLoop {
    shared: Arc<Shared>,
    source: Source,
    cfg: LoopConfig,
    picker: Picker,
    conns: Vec<ConnHandle>,
    conn_of: HashMap<String, usize>,
    hub_rx: watch::Receiver<u64>,
    owners: Option<watch::Receiver<Arc<OwnershipMap>>>,
    returns: mpsc::UnboundedReceiver<Vec<Tick>>,
    truth: GroundTruth,
    bucket: Option<TokenBucket>,
    clock: Option<ReplayClock>,
    last_ts: u64,
    shutdown: CancellationToken,
}

impl FeedLoop {
    /// A loop over `source`.
    pub fn new(
        shared: Arc<Shared>,
        source: Source,
        cfg: LoopConfig,
        owners: Option<watch::Receiver<Arc<OwnershipMap>>>,
        returns: mpsc::UnboundedReceiver<Vec<Tick>>,
        shutdown: CancellationToken,
    ) -> Self {
        let hub_rx = shared.hub.subscribe();
        Self {
            picker: Picker::new(cfg.mode, cfg.seed),
            shared,
            source,
            cfg,
            conns: Vec::new(),
            conn_of: HashMap::new(),
            hub_rx,
            owners,
            returns,
            truth: GroundTruth::default(),
            bucket: None,
            clock: None,
            last_ts: 0,
            shutdown,
        }
    }

    /// Runs until the source ends (or its limit) and every tick is written,
    /// or until shutdown.
    pub async fn run(mut self) -> FeedOutcome {
        let mut outcome = FeedOutcome {
            completed: false,
            send_start: None,
            send_end: None,
            bad_rows: BadRows::default(),
            truth: GroundTruth::default(),
        };
        let result = self.produce(&mut outcome).await;
        if result.is_ok() {
            outcome.completed = self.drain().await.is_ok();
            if outcome.completed {
                outcome.send_end = Some(Instant::now());
            }
        }
        outcome.bad_rows = self.source.bad_rows();
        outcome.truth = std::mem::take(&mut self.truth);
        outcome
    }

    fn refresh_conns(&mut self) {
        if self.hub_rx.has_changed().unwrap_or(false) || self.conns.is_empty() {
            self.hub_rx.mark_unchanged();
            self.conns = self.shared.hub.snapshot();
            self.conn_of = self
                .conns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.to_string(), i))
                .collect();
        }
    }

    /// Waits until at least `wanted` clients are connected.
    async fn wait_for_clients(&mut self, wanted: usize) -> Result<(), Stopped> {
        if wanted <= 1 {
            tracing::info!("no client connected: waiting for one before sending");
        }
        let paused = Instant::now();
        let mut logged = None;
        loop {
            self.hub_rx.mark_unchanged();
            let have = self.shared.hub.snapshot().len();
            if have >= wanted.max(1) {
                break;
            }
            if wanted > 1 && logged != Some(have) {
                logged = Some(have);
                tracing::info!(have, wanted, "waiting for clients before the first tick");
            }
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Err(Stopped),
                r = self.hub_rx.changed() => if r.is_err() { return Err(Stopped) },
            }
        }
        let now = Instant::now();
        if let Some(b) = self.bucket.as_mut() {
            b.resume(now);
        }
        if let Some(c) = self.clock.as_mut() {
            c.shift(now - paused);
        }
        // Force a fresh snapshot.
        self.conns.clear();
        self.refresh_conns();
        tracing::info!(clients = self.conns.len(), "client connected: sending");
        Ok(())
    }

    /// Sends `batch` to one live connection (round-robin or random start,
    /// the next one with room when that one is full).
    async fn send_any(&mut self, mut batch: Vec<Tick>) -> Result<(), Stopped> {
        loop {
            self.refresh_conns();
            if self.conns.is_empty() {
                self.wait_for_clients(1).await?;
                continue;
            }
            let n = self.conns.len();
            let start = self.picker.pick(n).unwrap_or(0);
            let mut closed = 0;
            for k in 0..n {
                match self.conns[(start + k) % n].data.try_send(batch) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Full(b)) => batch = b,
                    Err(TrySendError::Closed(b)) => {
                        closed += 1;
                        batch = b;
                    }
                }
            }
            if closed == n {
                // Every connection is going away; wait for the hub to catch up.
                tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => return Err(Stopped),
                    _ = self.hub_rx.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
                self.conns.clear();
                continue;
            }
            let target = self.conns[start].data.clone();
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Err(Stopped),
                r = target.send(batch) => match r {
                    Ok(()) => return Ok(()),
                    Err(mpsc::error::SendError(b)) => {
                        batch = b;
                        self.conns.clear();
                    }
                },
            }
        }
    }

    /// Routes one batch by mode; `count` adds it to the per-mode counters.
    async fn route(&mut self, batch: Vec<Tick>, count: bool) -> Result<(), Stopped> {
        let n = batch.len() as u64;
        let owners = self.owners.as_ref().map(|o| o.borrow().clone());
        match (self.cfg.mode, owners) {
            (Mode::OwnerAware, Some(map)) => {
                self.refresh_conns();
                let split = split_by_owner(batch, &map, &self.conn_of);
                let targets: Vec<(mpsc::Sender<Vec<Tick>>, Vec<Tick>)> = split
                    .to_owner
                    .into_iter()
                    .map(|(i, ticks)| (self.conns[i].data.clone(), ticks))
                    .collect();
                let mut fallback = split.fallback;
                for (tx, ticks) in targets {
                    let k = ticks.len() as u64;
                    let sent = tokio::select! {
                        biased;
                        _ = self.shutdown.cancelled() => return Err(Stopped),
                        r = tx.send(ticks) => r,
                    };
                    match sent {
                        Ok(()) => {
                            if count {
                                self.shared.counters.owner_hits.add(k);
                            }
                        }
                        Err(mpsc::error::SendError(back)) => fallback.extend(back),
                    }
                }
                if !fallback.is_empty() {
                    if count {
                        self.shared.counters.fallbacks.add(fallback.len() as u64);
                    }
                    self.send_any(fallback).await?;
                }
                Ok(())
            }
            (Mode::Random, _) => {
                if count {
                    self.shared.counters.random.add(n);
                }
                self.send_any(batch).await
            }
            _ => {
                if count {
                    self.shared.counters.round_robin.add(n);
                }
                self.send_any(batch).await
            }
        }
    }

    async fn reassign_returns(&mut self) -> Result<(), Stopped> {
        while let Ok(batch) = self.returns.try_recv() {
            self.shared.counters.reassigned.add(batch.len() as u64);
            self.route(batch, false).await?;
        }
        Ok(())
    }

    fn stamp_now(&mut self) -> u64 {
        self.last_ts = self.last_ts.max(now_ns());
        self.last_ts
    }

    async fn idle(&mut self, wait: Duration) -> Result<(), Stopped> {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Err(Stopped),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }

    async fn produce(&mut self, outcome: &mut FeedOutcome) -> Result<(), Stopped> {
        let mut generated: u64 = 0;
        let mut exhausted = false;
        let mut lookahead: VecDeque<NewTick> = VecDeque::new();
        let mut buf: Vec<NewTick> = Vec::with_capacity(self.cfg.batch);
        loop {
            if self.shutdown.is_cancelled() {
                return Err(Stopped);
            }
            self.reassign_returns().await?;
            if exhausted && lookahead.is_empty() {
                return Ok(());
            }
            if self.cfg.ticks.is_some_and(|n| generated >= n) {
                return Ok(());
            }
            if let (Some(d), Some(s)) = (self.cfg.duration, outcome.send_start) {
                if s.elapsed() >= d {
                    return Ok(());
                }
            }
            self.refresh_conns();
            let wanted = if outcome.send_start.is_none() {
                self.cfg.wait_clients
            } else {
                1
            };
            if self.conns.len() < wanted.max(1) {
                self.wait_for_clients(wanted).await?;
            }
            let now = Instant::now();
            if outcome.send_start.is_none() {
                outcome.send_start = Some(now);
                self.bucket = self
                    .cfg
                    .rate
                    .map(|r| TokenBucket::new(r, self.cfg.batch, now));
                self.clock = self.cfg.speed.map(|s| ReplayClock::new(s, now));
            }
            let mut want = self.cfg.batch;
            if let Some(n) = self.cfg.ticks {
                want = want.min((n - generated) as usize);
            }
            if let Some(b) = self.bucket.as_mut() {
                let got = b.take(want, now);
                if got == 0 {
                    let wait = b.wait(now).max(PACE_STEP);
                    self.idle(wait).await?;
                    continue;
                }
                want = got;
            }
            buf.clear();
            if let Some(mut clock) = self.clock {
                while !exhausted && lookahead.len() < self.cfg.batch {
                    let mut more = Vec::new();
                    exhausted = !self.fill(self.cfg.batch, &mut more);
                    lookahead.extend(more);
                }
                while buf.len() < want {
                    match lookahead.front() {
                        Some(t) if clock.due(t.ts_ns) <= now => {
                            buf.extend(lookahead.pop_front());
                        }
                        _ => break,
                    }
                }
                let next_due = lookahead.front().map(|t| clock.due(t.ts_ns));
                self.clock = Some(clock);
                if buf.is_empty() {
                    if let Some(due) = next_due {
                        let wait = due
                            .saturating_duration_since(now)
                            .min(Duration::from_millis(50));
                        self.idle(wait).await?;
                    }
                    continue;
                }
            } else {
                exhausted = !self.fill(want, &mut buf);
                if buf.is_empty() {
                    continue;
                }
            }
            let ticks: Vec<Tick> = {
                let Ok(mut store) = self.shared.store.write() else {
                    tracing::error!("replay store lock poisoned; stopping");
                    return Err(Stopped);
                };
                buf.iter().map(|t| store.append(t)).collect()
            };
            for t in &ticks {
                self.truth.apply(t);
            }
            let n = ticks.len() as u64;
            generated += n;
            self.shared.pending.fetch_add(n, Ordering::AcqRel);
            self.shared.counters.ticks_generated.add(n);
            self.route(ticks, true).await?;
        }
    }

    /// Fills `out` with up to `want` ticks; false once the source is done.
    fn fill(&mut self, want: usize, out: &mut Vec<NewTick>) -> bool {
        let ts = self.stamp_now();
        match self.source.fill(want, out, ts) {
            Ok(more) => more,
            Err(e) => {
                tracing::error!(error = %e, "reading the input failed; ending the feed");
                false
            }
        }
    }

    /// Waits until every numbered tick has been written, re-assigning what
    /// failed connections give back.
    async fn drain(&mut self) -> Result<(), Stopped> {
        loop {
            self.reassign_returns().await?;
            if self.shared.pending.load(Ordering::Acquire) == 0 && self.returns.is_empty() {
                return Ok(());
            }
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Err(Stopped),
                b = self.returns.recv() => {
                    if let Some(b) = b {
                        self.shared.counters.reassigned.add(b.len() as u64);
                        self.route(b, false).await?;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
    }
}
