//! Whether ticks may have been lost recently, which decides how soon a gap
//! is worth a replay.
//!
//! In a cluster without faults no tick is lost: every gap is a tick still
//! on its way through another instance (under flow control it can wait
//! there for a while), and a replay would only bring duplicates. Ticks are
//! lost only around events this instance sees: a member leaving the view
//! (a crash or a leave: what it had read and not forwarded is gone), a
//! partition acquired mid-stream (its stored state trails the feed), a
//! tick dropped here, or a forwarded batch that never arrived, which shows
//! as a jump in its sender's flow-control marks (marks count the ticks
//! charged to us, so each batch's mark is the previous one plus its
//! ticks; a restarted sender starts again from zero). After
//! such an event, gaps are replayed promptly (the lateness-based delay);
//! otherwise only once they are old enough that nothing can still be in
//! flight (the cap).

use std::time::{Duration, Instant};

use crate::tick::InstanceId;
use rustc_hash::FxHashMap;

/// Recent evidence of lost ticks.
#[derive(Debug)]
pub(super) struct LossSignals {
    suspect_for: Duration,
    suspect_until: Option<Instant>,
    /// The latest mark seen from each sender.
    marks: FxHashMap<InstanceId, u64>,
    /// The members of the last view, sorted.
    members: Vec<InstanceId>,
}

impl LossSignals {
    pub(super) fn new(suspect_for: Duration) -> Self {
        Self {
            suspect_for,
            suspect_until: None,
            marks: FxHashMap::default(),
            members: Vec::new(),
        }
    }

    /// The view's members now: one that left may have taken ticks with it.
    pub(super) fn members<'a>(
        &mut self,
        now_members: impl Iterator<Item = &'a InstanceId>,
        now: Instant,
    ) {
        let mut current: Vec<InstanceId> = now_members.cloned().collect();
        current.sort();
        if self
            .members
            .iter()
            .any(|m| current.binary_search(m).is_err())
        {
            self.suspect(now);
        }
        self.members = current;
    }

    /// Something happened that can lose ticks.
    pub(super) fn suspect(&mut self, now: Instant) {
        self.suspect_until = Some(now + self.suspect_for);
    }

    /// A forwarded batch of `ticks` stamped `mark` arrived from `from`;
    /// a mark that does not follow the previous one means batches were
    /// lost in between (or the sender restarted).
    pub(super) fn batch(&mut self, from: &InstanceId, mark: u64, ticks: u64, now: Instant) {
        if mark == 0 {
            return;
        }
        let previous = match self.marks.get_mut(from) {
            Some(m) => std::mem::replace(m, mark),
            None => {
                self.marks.insert(from.clone(), mark);
                return;
            }
        };
        if previous.checked_add(ticks) != Some(mark) {
            tracing::debug!(%from, previous, mark, ticks, "forwarded batches missing; replaying gaps promptly");
            self.suspect(now);
        }
    }

    /// Whether ticks may have been lost recently.
    pub(super) fn suspected(&self, now: Instant) -> bool {
        self.suspect_until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_jump_or_an_event_raises_suspicion_for_a_while() {
        let t0 = Instant::now();
        let mut l = LossSignals::new(Duration::from_secs(5));
        let a: InstanceId = "a".parse().unwrap();
        assert!(!l.suspected(t0));
        l.batch(&a, 100, 100, t0);
        l.batch(&a, 150, 50, t0);
        assert!(!l.suspected(t0), "consecutive batches");
        l.batch(&a, 400, 50, t0);
        assert!(l.suspected(t0), "batches 151..=350 never arrived");
        assert!(!l.suspected(t0 + Duration::from_secs(5)));
        l.batch(&a, 450, 50, t0);
        assert!(!l.suspected(t0 + Duration::from_secs(6)));
        l.suspect(t0 + Duration::from_secs(6));
        assert!(l.suspected(t0 + Duration::from_secs(7)));
        // A member leaving raises it; one joining does not.
        let mut l = LossSignals::new(Duration::from_secs(5));
        let b: InstanceId = "b".parse().unwrap();
        l.members([&a].into_iter(), t0);
        l.members([&a, &b].into_iter(), t0);
        assert!(!l.suspected(t0));
        l.members([&b].into_iter(), t0);
        assert!(l.suspected(t0));
        // Unmarked batches say nothing.
        let mut l = LossSignals::new(Duration::from_secs(5));
        l.batch(&a, 0, 10, t0);
        l.batch(&a, 0, 10, t0);
        assert!(!l.suspected(t0));
    }
}
