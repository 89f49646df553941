//! Forwarding out: full batches leave at once when the publisher's queue
//! has room or wait (bounded) in `stalled`; partly filled buffers leave
//! when the input is drained. Every batch is charged to its destination's
//! flow-control credit when it is made.

use tokio::sync::mpsc;

use super::Worker;
use crate::forward::OutgoingBatch;

impl Worker {
    /// A full batch leaves at once when the publisher's queue has room.
    /// This path cannot await, so otherwise it waits in `stalled` (behind
    /// any batch already waiting, to keep the order) until the drain sends
    /// it with backpressure. `stalled` holds at most the ticks of the input
    /// taken since the last drain, so it stays bounded.
    pub(super) fn send_full(&mut self, mut full: OutgoingBatch) {
        self.count_forward(&mut full);
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
    /// counted as undelivered and the owner's gap fill recovers it.
    pub(super) fn publisher_gone(&self, batch: &OutgoingBatch) {
        self.metrics
            .counters
            .forward_undelivered
            .add(batch.ticks as u64);
    }

    /// Sends the batches waiting for room, then the partly filled buffers.
    pub(super) async fn send_forwards(&mut self) {
        for batch in std::mem::take(&mut self.stalled) {
            self.send_forward(batch).await;
        }
        for mut batch in self.forwarder.drain() {
            self.count_forward(&mut batch);
            self.send_forward(batch).await;
        }
    }

    pub(super) async fn send_forward(&mut self, batch: OutgoingBatch) {
        // Awaiting the bounded queue slows ingest when Redis falls behind.
        if let Err(mpsc::error::SendError(batch)) = self.out.forward.send(batch).await {
            self.publisher_gone(&batch);
        }
    }

    /// Counts a batch as forwarded and charges it to its destination's
    /// flow-control window.
    pub(super) fn count_forward(&self, batch: &mut OutgoingBatch) {
        let ticks = batch.ticks as u64;
        batch.mark = self.cluster.charge(&batch.to, ticks);
        if batch.hops > 1 {
            self.metrics.counters.reforwarded.add(ticks);
        }
        self.metrics.counters.forwarded_out.add(ticks);
    }
}
