//! The bounded buffer of ticks whose partition has no known owner (a
//! handover in flight). When full, the oldest tick is dropped: its owner's
//! gap fill asks the feed for it again.

use std::collections::VecDeque;

use crate::tick::Tick;

/// Ticks waiting for an owner, with the hops they have made.
#[derive(Debug)]
pub(super) struct HoldBuffer {
    ticks: VecDeque<(Tick, u8)>,
    cap: usize,
}

impl HoldBuffer {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            ticks: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Holds `tick`; true when the oldest tick had to be dropped for it.
    pub(super) fn push(&mut self, tick: Tick, hops: u8) -> bool {
        let dropped = self.ticks.len() >= self.cap;
        if dropped {
            self.ticks.pop_front();
        }
        self.ticks.push_back((tick, hops));
        dropped
    }

    pub(super) fn len(&self) -> usize {
        self.ticks.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ticks.is_empty()
    }

    /// Takes everything held, oldest first.
    pub(super) fn take(&mut self) -> VecDeque<(Tick, u8)> {
        std::mem::take(&mut self.ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_oldest_when_full() {
        let t = |seq| Tick::new("A".parse().unwrap(), seq, "1".parse().unwrap(), 1, 0).unwrap();
        let mut h = HoldBuffer::new(2);
        assert!(!h.push(t(1), 0));
        assert!(!h.push(t(2), 0));
        assert!(h.push(t(3), 1));
        let seqs: Vec<u64> = h.take().into_iter().map(|(t, _)| t.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert!(h.is_empty());
    }
}
