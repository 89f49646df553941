//! Periodic persistence: hands the dirty symbols to the flusher (one job
//! in flight at a time) and applies its report; after a failed flush the
//! next waits out a backoff that the error's classifier steers.

use std::time::Instant;

use super::{flusher::FlushReport, FlushJob, Worker};
use crate::engine::PartitionStatus;

impl Worker {
    pub(super) async fn flush(&mut self) {
        if self.flush_in_flight || Instant::now() < self.flush_not_before {
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

    /// The flusher's report: retry what failed, drop what was fenced off.
    pub(super) fn on_flushed(&mut self, report: FlushReport) {
        self.flush_in_flight = false;
        if report.failed.is_empty() {
            self.flush_backoff.reset();
        } else {
            self.flush_not_before =
                Instant::now() + self.flush_backoff.after_failure(report.retryable);
        }
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
