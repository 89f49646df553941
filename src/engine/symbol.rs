//! One symbol's state: exact totals, the state of every configured
//! operator, their outputs not yet flushed, and the sequencing of its
//! ticks (apply only `seq == last_seq + 1`, hold what runs ahead, know
//! what is missing).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::operator::totals::Totals;
use crate::operator::{Emit, FieldWriter, Operator, OperatorSet, OutputBuf, SymbolOperators};
use crate::tick::Tick;
use crate::totals::SymbolTotals;

/// What happened to an offered tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Applied, together with this many held ticks it unblocked.
    Applied(usize),
    /// `seq <= last_seq`: already applied; dropped.
    Duplicate,
    /// Ahead of a gap: held until the gap is filled.
    Held,
    /// Ahead of a gap but the hold buffer is full, or next in line while
    /// the outputs waiting for a flush are at their limit: dropped (the gap
    /// fill brings it back).
    Overflow,
}

/// Persisted and in-memory state of one symbol.
#[derive(Debug)]
pub struct SymbolState {
    /// Exact aggregates of the applied ticks (the totals operator's state).
    pub totals: SymbolTotals,
    /// The state of every configured operator.
    pub operators: SymbolOperators,
    /// Outputs not yet flushed, in order.
    pub outputs: OutputBuf,
    /// Ticks ahead of `last_seq + 1`, by seq.
    pending: BTreeMap<u64, Tick>,
    /// Highest seq the feed is known to have sent.
    announced: u64,
    /// When the current gap was first seen.
    gap_since: Option<Instant>,
    /// When a replay was last asked for.
    last_replay: Option<Instant>,
}

impl SymbolState {
    /// A symbol never seen before.
    pub fn new(operators: &OperatorSet) -> Self {
        Self::restored(Totals.init(), operators.init())
    }

    /// A symbol restored from persisted totals and operator states.
    pub fn restored(totals: SymbolTotals, operators: SymbolOperators) -> Self {
        Self {
            totals,
            operators,
            outputs: OutputBuf::default(),
            pending: BTreeMap::new(),
            announced: 0,
            gap_since: None,
            last_replay: None,
        }
    }

    /// Ticks held ahead of a gap.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Every field of the state as stored: the totals', then each
    /// operator's (`ops`: the set the state was made by).
    pub fn fields(&self, ops: &OperatorSet) -> FieldWriter {
        let mut fields = FieldWriter::new();
        Totals.save(&self.totals, &mut fields);
        self.operators.save(ops, &mut fields);
        fields
    }

    /// Offers a tick; `hold_room` says whether one more may be held,
    /// `output_room` whether outputs may grow (else even the next tick
    /// waits for the gap fill).
    pub fn offer(
        &mut self,
        tick: Tick,
        ops: &OperatorSet,
        hold_room: bool,
        output_room: bool,
        now: Instant,
    ) -> Offer {
        let next = self.totals.last_seq + 1;
        if tick.seq < next {
            return Offer::Duplicate;
        }
        self.announced = self.announced.max(tick.seq);
        if !output_room {
            self.gap_since.get_or_insert(now);
            return Offer::Overflow;
        }
        if tick.seq > next {
            if self.pending.contains_key(&tick.seq) {
                return Offer::Duplicate;
            }
            if !hold_room {
                self.gap_since.get_or_insert(now);
                return Offer::Overflow;
            }
            self.pending.insert(tick.seq, tick);
            self.gap_since.get_or_insert(now);
            return Offer::Held;
        }
        self.apply(&tick, ops);
        let released = self.drain_pending(ops);
        if self.is_missing() {
            // Progress: the gap's clock restarts, so only a gap that stops
            // moving is ever skipped.
            self.gap_since = Some(now);
        } else {
            self.gap_since = None;
            self.last_replay = None;
        }
        Offer::Applied(released)
    }

    #[inline]
    fn apply(&mut self, tick: &Tick, ops: &OperatorSet) {
        Totals.apply(
            &mut self.totals,
            tick,
            &mut Emit::new(&mut self.outputs, u16::MAX, tick.seq),
        );
        self.operators.apply(ops, tick, &mut self.outputs);
    }

    fn drain_pending(&mut self, ops: &OperatorSet) -> usize {
        let mut released = 0;
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.totals.last_seq + 1 {
                break;
            }
            let tick = entry.remove();
            self.apply(&tick, ops);
            released += 1;
        }
        released
    }

    /// Records that the feed has sent up to `seq`; true when that opens a
    /// gap (a lost tail).
    pub fn announce(&mut self, seq: u64, now: Instant) -> bool {
        self.announced = self.announced.max(seq);
        if self.is_missing() {
            self.gap_since.get_or_insert(now);
            true
        } else {
            false
        }
    }

    /// True while ticks are known to be missing.
    pub fn is_missing(&self) -> bool {
        !self.pending.is_empty() || self.announced > self.totals.last_seq
    }

    /// Everything not yet applied that is known to exist, `from..=to`:
    /// from the next seq to the highest seq announced or held. Holes after
    /// the first one are included, so one replay fills them all (ticks
    /// already held come back as duplicates, which cost nothing).
    pub fn missing_range(&self) -> Option<(u64, u64)> {
        let from = self.totals.last_seq + 1;
        let held_max = self.pending.keys().next_back().copied().unwrap_or(0);
        let to = self.announced.max(held_max);
        (to >= from && self.is_missing()).then_some((from, to))
    }

    /// The hole in front of the first held tick, `from..=to`, if any.
    fn first_hole(&self) -> Option<(u64, u64)> {
        let from = self.totals.last_seq + 1;
        let first = *self.pending.keys().next()?;
        (first > from).then_some((from, first - 1))
    }

    /// What to do about the open gap at `now`. Without `output_room` (the
    /// outputs waiting for a flush are at their limit) nothing is asked
    /// for or skipped, and the skip clock restarts: a tick dropped for lack
    /// of room has arrived and will be replayed, it must not be skipped.
    pub fn gap_action(
        &mut self,
        now: Instant,
        policy: &GapPolicy,
        output_room: bool,
        ops: &OperatorSet,
    ) -> GapAction {
        if !output_room {
            if self.is_missing() {
                self.gap_since = Some(now);
                return GapAction::Wait;
            }
            return GapAction::Closed;
        }
        let Some(since) = self.gap_since else {
            return if self.is_missing() {
                self.gap_since = Some(now);
                GapAction::Wait
            } else {
                GapAction::Closed
            };
        };
        let Some((from, to)) = self.missing_range() else {
            // Pending ticks with no hole in front cannot happen; drop stale state.
            self.gap_since = None;
            return GapAction::Closed;
        };
        let age = now.saturating_duration_since(since);
        if let (true, Some((from, to))) = (age >= policy.skip_after, self.first_hole()) {
            let skipped = to - from + 1;
            self.totals.last_seq = to;
            let released = self.drain_pending(ops);
            self.gap_since = self.is_missing().then_some(now);
            self.last_replay = None;
            return GapAction::Skipped {
                from,
                to,
                skipped,
                released,
            };
        }
        let due = match self.last_replay {
            None => age >= policy.replay_after,
            Some(at) => now.saturating_duration_since(at) >= policy.replay_retry,
        };
        if due {
            let first = self.last_replay.is_none();
            self.last_replay = Some(now);
            let to = to.min(from + policy.max_replay_span - 1);
            return GapAction::Replay { from, to, first };
        }
        GapAction::Wait
    }
}

/// Timing of gap handling.
#[derive(Debug, Clone)]
pub struct GapPolicy {
    /// Ask the feed for a replay once a gap is this old.
    pub replay_after: std::time::Duration,
    /// Ask again this long after an unanswered request.
    pub replay_retry: std::time::Duration,
    /// Skip a gap with ticks held behind it once it is this old.
    pub skip_after: std::time::Duration,
    /// Longest range asked for in one request.
    pub max_replay_span: u64,
}

impl Default for GapPolicy {
    /// The processor's defaults: replay after 50 ms, ask again after
    /// 200 ms, skip after 10 s, at most 10,000 seqs per request.
    fn default() -> Self {
        Self {
            replay_after: std::time::Duration::from_millis(50),
            replay_retry: std::time::Duration::from_millis(200),
            skip_after: std::time::Duration::from_secs(10),
            max_replay_span: 10_000,
        }
    }
}

/// The decision about a symbol's gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapAction {
    /// Nothing is missing any more.
    Closed,
    /// Something is missing; not yet time to act.
    Wait,
    /// Ask the feed for `from..=to`.
    Replay {
        /// First missing seq.
        from: u64,
        /// Last missing seq asked for.
        to: u64,
        /// True for the first request of this gap.
        first: bool,
    },
    /// The gap was given up: `skipped` ticks never applied, `released` held
    /// ticks applied after it.
    Skipped {
        /// First skipped seq.
        from: u64,
        /// Last skipped seq.
        to: u64,
        /// How many seqs were skipped.
        skipped: u64,
        /// Held ticks applied after the skip.
        released: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(seq: u64) -> Tick {
        Tick::new("A".parse().unwrap(), seq, "1".parse().unwrap(), 1, seq).unwrap()
    }

    fn policy() -> GapPolicy {
        GapPolicy {
            max_replay_span: 1000,
            ..GapPolicy::default()
        }
    }

    #[test]
    fn applies_in_order_and_drops_duplicates() {
        let now = Instant::now();
        let mut s = SymbolState::new(&OperatorSet::new());
        assert_eq!(
            s.offer(t(1), &OperatorSet::new(), true, true, now),
            Offer::Applied(0)
        );
        assert_eq!(
            s.offer(t(1), &OperatorSet::new(), true, true, now),
            Offer::Duplicate
        );
        assert_eq!(
            s.offer(t(3), &OperatorSet::new(), true, true, now),
            Offer::Held
        );
        assert_eq!(
            s.offer(t(3), &OperatorSet::new(), true, true, now),
            Offer::Duplicate
        );
        assert_eq!(
            s.offer(t(4), &OperatorSet::new(), false, true, now),
            Offer::Overflow
        );
        assert_eq!(s.missing_range(), Some((2, 4)));
        assert_eq!(
            s.offer(t(2), &OperatorSet::new(), true, true, now),
            Offer::Applied(1)
        );
        assert_eq!(s.totals.last_seq, 3);
        assert_eq!(s.totals.count, 3);
        // 4 was dropped on overflow but is known to exist.
        assert_eq!(s.missing_range(), Some((4, 4)));
    }

    #[test]
    fn gaps_are_replayed_then_skipped() {
        let start = Instant::now();
        let p = policy();
        let mut s = SymbolState::new(&OperatorSet::new());
        s.offer(t(1), &OperatorSet::new(), true, true, start);
        s.offer(t(5), &OperatorSet::new(), true, true, start);
        assert_eq!(
            s.gap_action(start, &p, true, &OperatorSet::new()),
            GapAction::Wait
        );
        let at = start + Duration::from_millis(60);
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Replay {
                from: 2,
                to: 5,
                first: true
            }
        );
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Wait
        );
        let at = start + Duration::from_millis(300);
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Replay {
                from: 2,
                to: 5,
                first: false
            }
        );
        let at = start + Duration::from_secs(11);
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Skipped {
                from: 2,
                to: 4,
                skipped: 3,
                released: 1
            }
        );
        assert_eq!(s.totals.last_seq, 5);
        assert_eq!(s.totals.count, 2);
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Closed
        );
    }

    #[test]
    fn one_replay_covers_every_hole_and_progress_restarts_the_clock() {
        let start = Instant::now();
        let p = policy();
        let mut s = SymbolState::new(&OperatorSet::new());
        for seq in [1, 3, 5, 7] {
            s.offer(t(seq), &OperatorSet::new(), true, true, start);
        }
        let at = start + Duration::from_millis(60);
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Replay {
                from: 2,
                to: 7,
                first: true
            }
        );
        // Progress 9 s later restarts the skip clock.
        let later = start + Duration::from_secs(9);
        assert_eq!(
            s.offer(t(2), &OperatorSet::new(), true, true, later),
            Offer::Applied(1)
        );
        let skip_time = start + Duration::from_secs(11);
        assert!(matches!(
            s.gap_action(skip_time, &p, true, &OperatorSet::new()),
            GapAction::Replay { from: 4, to: 7, .. }
        ));
        let skip_time = start + Duration::from_secs(20);
        assert_eq!(
            s.gap_action(skip_time, &p, true, &OperatorSet::new()),
            GapAction::Skipped {
                from: 4,
                to: 4,
                skipped: 1,
                released: 1
            }
        );
    }

    #[test]
    fn announced_tail_is_requested_in_spans() {
        let start = Instant::now();
        let mut p = policy();
        p.max_replay_span = 10;
        let mut s = SymbolState::new(&OperatorSet::new());
        assert!(s.announce(25, start));
        let at = start + Duration::from_millis(60);
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Replay {
                from: 1,
                to: 10,
                first: true
            }
        );
        for seq in 1..=25 {
            s.offer(t(seq), &OperatorSet::new(), true, true, at);
        }
        assert!(!s.is_missing());
        assert_eq!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Closed
        );
    }

    #[test]
    fn a_gap_waits_without_output_room_and_is_not_skipped() {
        let start = Instant::now();
        let p = policy();
        let mut s = SymbolState::new(&OperatorSet::new());
        s.offer(t(1), &OperatorSet::new(), true, true, start);
        s.offer(t(3), &OperatorSet::new(), true, true, start);
        // Seq 2 arrives while the outputs are at their limit: dropped.
        assert_eq!(
            s.offer(t(2), &OperatorSet::new(), true, false, start),
            Offer::Overflow
        );
        let late = start + Duration::from_secs(11);
        assert_eq!(
            s.gap_action(late, &p, false, &OperatorSet::new()),
            GapAction::Wait
        );
        // Room again: the clock restarted, so the gap is replayed, not skipped.
        let at = late + Duration::from_millis(60);
        assert!(matches!(
            s.gap_action(at, &p, true, &OperatorSet::new()),
            GapAction::Replay { from: 2, .. }
        ));
    }
}
