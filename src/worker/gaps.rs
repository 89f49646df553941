//! Gap fill: asks the feed to replay what is missing and skips gaps that
//! make no progress. Right after a possible loss (see `loss`) the delay
//! follows how late forwarded ticks arrive; otherwise a gap is a tick in
//! flight and waits for the cap (a quarter of the skip timeout).

use std::time::Instant;

use super::Worker;
use crate::engine::GapEvent;
use crate::ingest::ReplayRequest;

impl Worker {
    pub(super) fn scan_gaps(&mut self) {
        let now = Instant::now();
        let gap = &self.cfg.engine.gap;
        // Never so late that a gap would be skipped before its replay.
        let cap = gap.skip_after / 4;
        let after = if self.loss.suspected(now) {
            self.lateness.replay_delay(now, gap.replay_after, cap)
        } else {
            cap.max(gap.replay_after)
        };
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
                    self.admission.replay_requested(now);
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
}
