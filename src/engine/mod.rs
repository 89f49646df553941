//! The engine: per-symbol state of the partitions this instance owns, the
//! single writer of every owned symbol.
//!
//! Pure and synchronous: the worker feeds it ticks, `seqs` announcements,
//! ownership changes and loaded state, and asks it what to flush and which
//! gaps to replay. It never touches Redis or the network, so every rule is
//! unit-tested here:
//!
//! - a partition is `Loading` from acquisition until its persisted state is
//!   installed; ticks meanwhile are held (bounded), then offered in order;
//! - a tick is applied only when `seq == last_seq + 1`; lower is a
//!   duplicate, higher is held (bounded per symbol and in total) and opens a
//!   gap that is replayed, then skipped after the gap timeout;
//! - every applied tick runs through the configured operators
//!   ([`crate::operator`]); their outputs wait for the next flush, at most
//!   [`EngineConfig::max_outputs`] in all and [`MAX_SYMBOL_OUTPUTS`] per
//!   symbol (beyond, ticks wait for the gap fill, so memory and flush
//!   scripts stay bounded while Redis is slow or away);
//! - dirty symbols are handed out for flushing with the partition's epoch
//!   (the fencing token), and handed back if the flush failed.

pub mod symbol;

use std::time::Instant;

use rustc_hash::{FxHashMap, FxHashSet};

pub use crate::operator::bars::Bar;
pub use symbol::{GapAction, GapPolicy, Offer, SymbolState};

use crate::operator::{OperatorSet, Output};
use crate::tick::{Epoch, PartitionId, Symbol, Tick};
use crate::totals::SymbolTotals;

/// Engine limits and timings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Gap handling.
    pub gap: GapPolicy,
    /// Most ticks held ahead of gaps across all symbols.
    pub max_held: usize,
    /// Most ticks held per partition while its state loads.
    pub max_loading_held: usize,
    /// Most operator outputs waiting for a flush across all symbols.
    pub max_outputs: usize,
    /// The operators every symbol runs.
    pub operators: OperatorSet,
}

/// Default of [`EngineConfig::max_outputs`].
pub const DEFAULT_MAX_OUTPUTS: usize = 1_000_000;

/// Most outputs of one symbol waiting for a flush: a flush script carries
/// at most this many of one symbol, so none holds Redis for long.
pub const MAX_SYMBOL_OUTPUTS: usize = 10_000;

/// Where a partition stands in this engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionStatus {
    /// Not owned here.
    NotOwned,
    /// Owned; persisted state still loading.
    Loading(Epoch),
    /// Owned and processing.
    Active(Epoch),
}

#[derive(Debug)]
enum Slot {
    Loading { epoch: Epoch, held: Vec<Tick> },
    Active { epoch: Epoch },
}

#[derive(Debug)]
struct Entry {
    partition: PartitionId,
    state: SymbolState,
    /// Mirrors membership of [`Engine::dirty`].
    dirty: bool,
    /// Mirrors membership of [`Engine::gappy`].
    gappy: bool,
}

impl Entry {
    fn new(partition: PartitionId, state: SymbolState) -> Self {
        Self {
            partition,
            state,
            dirty: false,
            gappy: false,
        }
    }
}

/// The symbols with one property (dirty, or with a gap open), each one's
/// membership mirrored by a flag in its [`Entry`]: a tick that leaves
/// membership as it was costs no lookup.
#[derive(Debug, Default)]
struct SymbolSet(FxHashSet<Symbol>);

impl SymbolSet {
    /// Makes `symbol` a member or not; `flag` is its entry's mirror.
    #[inline]
    fn set(&mut self, symbol: Symbol, flag: &mut bool, member: bool) {
        if *flag != member {
            *flag = member;
            if member {
                self.0.insert(symbol);
            } else {
                self.0.remove(&symbol);
            }
        }
    }
}

/// One symbol's state, ready to persist.
#[derive(Debug, Clone)]
pub struct SymbolRecord {
    /// The symbol.
    pub symbol: Symbol,
    /// Its totals.
    pub totals: SymbolTotals,
    /// Every field of its state (totals and operators).
    pub fields: Vec<(String, String)>,
    /// Operator outputs since the last flush, in order.
    pub outputs: Vec<Output>,
}

/// The dirty symbols of one partition, with the epoch that fences them.
#[derive(Debug, Clone)]
pub struct PartitionFlush {
    /// The partition.
    pub partition: PartitionId,
    /// The owner's fencing token.
    pub epoch: Epoch,
    /// The symbols to write.
    pub records: Vec<SymbolRecord>,
}

impl PartitionFlush {
    /// Puts `earlier`, a flush of the same partition and epoch that could
    /// not be written, in front of this one: symbols only `earlier` has
    /// are added, and where both have a symbol, `earlier`'s outputs go
    /// first (this flush's state is the newer).
    pub fn absorb_earlier(&mut self, earlier: PartitionFlush) {
        for mut old in earlier.records {
            match self.records.iter_mut().find(|r| r.symbol == old.symbol) {
                Some(new) => {
                    old.outputs.append(&mut new.outputs);
                    new.outputs = old.outputs;
                }
                None => self.records.push(old),
            }
        }
    }
}

/// A gap the engine decided to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapEvent {
    /// Ask the feed for `symbol`'s ticks `from..=to`.
    Replay {
        /// The symbol.
        symbol: Symbol,
        /// First seq.
        from: u64,
        /// Last seq.
        to: u64,
        /// True for the first request of this gap.
        first: bool,
    },
    /// The gap was skipped after the timeout.
    Skipped {
        /// The symbol.
        symbol: Symbol,
        /// First skipped seq.
        from: u64,
        /// Last skipped seq.
        to: u64,
    },
}

/// What happened to one offered tick, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// Applied; `released` held ticks were applied after it.
    Applied {
        /// Held ticks applied behind it.
        released: usize,
    },
    /// Already applied.
    Duplicate,
    /// Held (ahead of a gap, or while loading).
    Held,
    /// Dropped because a hold buffer was full; the gap fill recovers it.
    Overflow,
    /// The partition is not owned here; the caller must route it elsewhere.
    NotOwned,
}

/// Per-symbol state of every owned partition.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    slots: FxHashMap<PartitionId, Slot>,
    symbols: FxHashMap<Symbol, Entry>,
    dirty: SymbolSet,
    gappy: SymbolSet,
    held: usize,
    outputs: usize,
}

impl Engine {
    /// An engine owning nothing.
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            slots: FxHashMap::default(),
            symbols: FxHashMap::default(),
            dirty: SymbolSet::default(),
            gappy: SymbolSet::default(),
            held: 0,
            outputs: 0,
        }
    }

    /// The operators every symbol runs.
    pub fn operators(&self) -> &OperatorSet {
        &self.cfg.operators
    }

    /// Operator outputs waiting for a flush.
    pub fn outputs_pending(&self) -> usize {
        self.outputs
    }

    /// Where `p` stands.
    pub fn status(&self, p: PartitionId) -> PartitionStatus {
        match self.slots.get(&p) {
            None => PartitionStatus::NotOwned,
            Some(Slot::Loading { epoch, .. }) => PartitionStatus::Loading(*epoch),
            Some(Slot::Active { epoch }) => PartitionStatus::Active(*epoch),
        }
    }

    /// Partitions owned here (loading or active).
    pub fn owned_partitions(&self) -> usize {
        self.slots.len()
    }

    /// Symbols with state in memory.
    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    /// Ticks held ahead of gaps and behind loads.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Starts owning `p` at `epoch`; ticks are held until [`Self::finish_load`].
    pub fn begin_load(&mut self, p: PartitionId, epoch: Epoch) {
        self.drop_partition(p);
        self.slots.insert(
            p,
            Slot::Loading {
                epoch,
                held: Vec::new(),
            },
        );
    }

    /// Installs `p`'s persisted state and applies the ticks held meanwhile.
    /// Ignored (returns `None`) when `p` is no longer loading at `epoch`.
    pub fn finish_load(
        &mut self,
        p: PartitionId,
        epoch: Epoch,
        states: Vec<(Symbol, SymbolState)>,
        now: Instant,
    ) -> Option<Vec<TickOutcome>> {
        match self.slots.get(&p) {
            Some(Slot::Loading { epoch: e, .. }) if *e == epoch => {}
            _ => return None,
        }
        let Some(Slot::Loading { held, .. }) = self.slots.insert(p, Slot::Active { epoch }) else {
            return None;
        };
        self.held -= held.len();
        for (symbol, state) in states {
            // A symbol already in memory (listed twice) gives up its old
            // entry wholly: its held ticks, outputs and marks.
            if let Some(old) = self.symbols.insert(symbol, Entry::new(p, state)) {
                self.held -= old.state.pending_len();
                self.outputs -= old.state.outputs.len();
                self.dirty.0.remove(&symbol);
                self.gappy.0.remove(&symbol);
            }
        }
        Some(held.into_iter().map(|t| self.offer(p, t, now)).collect())
    }

    /// Forgets `p` without flushing (lease lost: the new owner takes over).
    pub fn drop_partition(&mut self, p: PartitionId) {
        if let Some(Slot::Loading { held, .. }) = self.slots.remove(&p) {
            self.held -= held.len();
        }
        let mut freed = 0;
        let mut outputs = 0;
        self.symbols.retain(|sym, e| {
            if e.partition == p {
                freed += e.state.pending_len();
                outputs += e.state.outputs.len();
                self.dirty.0.remove(sym);
                self.gappy.0.remove(sym);
                false
            } else {
                true
            }
        });
        self.held -= freed;
        self.outputs -= outputs;
    }

    /// Hands `p` over: its dirty state to flush one last time, then forgets it.
    pub fn release_partition(&mut self, p: PartitionId) -> Option<PartitionFlush> {
        let epoch = match self.slots.get(&p) {
            Some(Slot::Active { epoch }) => *epoch,
            _ => {
                self.drop_partition(p);
                return None;
            }
        };
        let symbols: Vec<Symbol> = self
            .dirty
            .0
            .iter()
            .filter(|s| self.symbols.get(*s).is_some_and(|e| e.partition == p))
            .copied()
            .collect();
        let records = symbols.iter().filter_map(|s| self.take_record(s)).collect();
        self.drop_partition(p);
        Some(PartitionFlush {
            partition: p,
            epoch,
            records,
        })
    }

    /// Offers one tick of partition `p`.
    pub fn offer(&mut self, p: PartitionId, tick: Tick, now: Instant) -> TickOutcome {
        let room = self.held < self.cfg.max_held;
        let all_output_room = self.outputs < self.cfg.max_outputs;
        match self.slots.get_mut(&p) {
            None => TickOutcome::NotOwned,
            Some(Slot::Loading { held, .. }) => {
                if room && held.len() < self.cfg.max_loading_held {
                    held.push(tick);
                    self.held += 1;
                    TickOutcome::Held
                } else {
                    TickOutcome::Overflow
                }
            }
            Some(Slot::Active { .. }) => {
                let symbol = tick.symbol;
                let operators = &self.cfg.operators;
                let entry = self
                    .symbols
                    .entry(symbol)
                    .or_insert_with(|| Entry::new(p, SymbolState::new(operators)));
                let before = entry.state.pending_len();
                let outputs_before = entry.state.outputs.len();
                let output_room = all_output_room && outputs_before < MAX_SYMBOL_OUTPUTS;
                let offer = entry.state.offer(tick, operators, room, output_room, now);
                let after = entry.state.pending_len();
                let missing = entry.state.is_missing();
                self.held = self.held + after - before;
                self.outputs = self.outputs + entry.state.outputs.len() - outputs_before;
                self.gappy.set(symbol, &mut entry.gappy, missing);
                match offer {
                    Offer::Applied(released) => {
                        self.dirty.set(symbol, &mut entry.dirty, true);
                        TickOutcome::Applied { released }
                    }
                    Offer::Duplicate => TickOutcome::Duplicate,
                    Offer::Held => TickOutcome::Held,
                    Offer::Overflow => TickOutcome::Overflow,
                }
            }
        }
    }

    /// Records the feed's latest seq of `symbol` (in partition `p`); a
    /// symbol of an active partition that is behind opens a gap.
    pub fn announce(&mut self, p: PartitionId, symbol: Symbol, seq: u64, now: Instant) {
        if !matches!(self.slots.get(&p), Some(Slot::Active { .. })) {
            return;
        }
        let operators = &self.cfg.operators;
        let entry = self
            .symbols
            .entry(symbol)
            .or_insert_with(|| Entry::new(p, SymbolState::new(operators)));
        if entry.state.announce(seq, now) {
            self.gappy.set(symbol, &mut entry.gappy, true);
        }
    }

    /// Sets how long a gap waits before the first replay request and
    /// between requests (the worker stretches them while forwarded ticks
    /// arrive late).
    pub fn set_replay_delays(&mut self, after: std::time::Duration, retry: std::time::Duration) {
        self.cfg.gap.replay_after = after;
        self.cfg.gap.replay_retry = retry;
    }

    /// Decides, for every symbol with a gap, whether to replay or skip.
    pub fn scan_gaps(&mut self, now: Instant) -> Vec<GapEvent> {
        let mut events = Vec::new();
        let mut closed = Vec::new();
        for symbol in &self.gappy.0 {
            let Some(entry) = self.symbols.get_mut(symbol) else {
                closed.push(*symbol);
                continue;
            };
            let before = entry.state.pending_len();
            let outputs_before = entry.state.outputs.len();
            let output_room =
                self.outputs < self.cfg.max_outputs && outputs_before < MAX_SYMBOL_OUTPUTS;
            let action =
                entry
                    .state
                    .gap_action(now, &self.cfg.gap, output_room, &self.cfg.operators);
            self.outputs = self.outputs + entry.state.outputs.len() - outputs_before;
            match action {
                GapAction::Closed => closed.push(*symbol),
                GapAction::Wait => {}
                GapAction::Replay { from, to, first } => events.push(GapEvent::Replay {
                    symbol: *symbol,
                    from,
                    to,
                    first,
                }),
                GapAction::Skipped { from, to, .. } => {
                    self.held -= before - entry.state.pending_len();
                    self.dirty.set(*symbol, &mut entry.dirty, true);
                    events.push(GapEvent::Skipped {
                        symbol: *symbol,
                        from,
                        to,
                    });
                    if !entry.state.is_missing() {
                        closed.push(*symbol);
                    }
                }
            }
        }
        for s in closed {
            match self.symbols.get_mut(&s) {
                Some(entry) => self.gappy.set(s, &mut entry.gappy, false),
                None => {
                    self.gappy.0.remove(&s);
                }
            }
        }
        events
    }

    /// Symbols with an open gap.
    pub fn gaps_open(&self) -> usize {
        self.gappy.0.len()
    }

    /// Takes every dirty symbol's record, grouped by partition.
    pub fn take_flush(&mut self) -> Vec<PartitionFlush> {
        let dirty: Vec<Symbol> = self.dirty.0.iter().copied().collect();
        let mut by_partition: FxHashMap<PartitionId, PartitionFlush> = FxHashMap::default();
        for symbol in dirty {
            let Some(partition) = self.symbols.get(&symbol).map(|e| e.partition) else {
                self.dirty.0.remove(&symbol);
                continue;
            };
            let Some(Slot::Active { epoch }) = self.slots.get(&partition) else {
                continue;
            };
            let epoch = *epoch;
            if let Some(record) = self.take_record(&symbol) {
                by_partition
                    .entry(partition)
                    .or_insert_with(|| PartitionFlush {
                        partition,
                        epoch,
                        records: Vec::new(),
                    })
                    .records
                    .push(record);
            }
        }
        by_partition.into_values().collect()
    }

    fn take_record(&mut self, symbol: &Symbol) -> Option<SymbolRecord> {
        let Some(entry) = self.symbols.get_mut(symbol) else {
            self.dirty.0.remove(symbol);
            return None;
        };
        self.dirty.set(*symbol, &mut entry.dirty, false);
        let outputs = entry.state.outputs.take();
        self.outputs -= outputs.len();
        Some(SymbolRecord {
            symbol: *symbol,
            totals: entry.state.totals,
            fields: entry.state.fields(&self.cfg.operators).into_pairs(),
            outputs,
        })
    }

    /// Gives back a flush that could not be written, so it is retried.
    pub fn restore_flush(&mut self, flush: PartitionFlush) {
        if self.status(flush.partition) != PartitionStatus::Active(flush.epoch) {
            return;
        }
        for record in flush.records {
            if let Some(entry) = self.symbols.get_mut(&record.symbol) {
                self.outputs += record.outputs.len();
                entry.state.outputs.prepend(record.outputs);
                self.dirty.set(record.symbol, &mut entry.dirty, true);
            }
        }
    }

    /// The live state of `symbol`, if this engine holds it.
    pub fn get(&self, symbol: &Symbol) -> Option<(PartitionId, &SymbolState)> {
        self.symbols.get(symbol).map(|e| (e.partition, &e.state))
    }

    /// The `n` symbols with the most applied ticks.
    pub fn hottest(&self, n: usize) -> Vec<(Symbol, &SymbolState)> {
        let mut all: Vec<(Symbol, &SymbolState)> =
            self.symbols.iter().map(|(s, e)| (*s, &e.state)).collect();
        all.sort_unstable_by(|a, b| b.1.totals.count.cmp(&a.1.totals.count).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests;
