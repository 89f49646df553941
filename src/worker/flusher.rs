//! The flusher task: writes the worker's flush jobs to Redis in order, one
//! at a time, and reports what could not be written (to retry) and what was
//! fenced off (to drop).
//!
//! In-order processing matters for handover: a partition's final flush is
//! queued behind any periodic flush of it that is still in flight.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::Internal;
use crate::engine::PartitionFlush;
use crate::stats::Metrics;
use crate::store::{FlushOutcome, Store};
use crate::tick::{Epoch, PartitionId};

/// Partitions to write, and who waits for them.
#[derive(Debug)]
pub struct FlushJob {
    /// One entry per partition.
    pub flushes: Vec<PartitionFlush>,
    /// Set for a handover's final flush: signalled when written (or failed),
    /// instead of a report.
    pub done: Option<oneshot::Sender<()>>,
}

/// What a periodic flush achieved.
#[derive(Debug, Default)]
pub(super) struct FlushReport {
    /// Not written (Redis failed): to be retried.
    pub(super) failed: Vec<PartitionFlush>,
    /// Every failure may pass by itself (`StoreError::is_retryable`).
    pub(super) retryable: bool,
    /// Refused by fencing: the partition belongs to someone else now.
    pub(super) fenced: Vec<(PartitionId, Epoch)>,
}

pub(super) async fn run(
    store: Store,
    metrics: Arc<Metrics>,
    mut jobs: mpsc::Receiver<FlushJob>,
    reports: mpsc::Sender<Internal>,
) {
    while let Some(job) = jobs.recv().await {
        let started = Instant::now();
        let mut report = FlushReport {
            retryable: true,
            ..FlushReport::default()
        };
        for flush in job.flushes {
            match store.flush(&flush).await {
                Ok(FlushOutcome::Written(_)) => {}
                Ok(outcome) => {
                    metrics
                        .counters
                        .fenced_rejected
                        .add(flush.records.len() as u64);
                    tracing::warn!(partition = %flush.partition, epoch = %flush.epoch, ?outcome,
                        symbols = flush.records.len(), "fenced write rejected");
                    report.fenced.push((flush.partition, flush.epoch));
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(partition = %flush.partition, error = %e, "flush failed; will retry");
                    report.failed.push(flush);
                }
                Err(e) => {
                    tracing::error!(partition = %flush.partition, error = %e,
                        "flush failed and will not pass by itself (permissions, or a foreign value under the symbols' keys); the state stays in memory and is retried every few seconds");
                    report.retryable = false;
                    report.failed.push(flush);
                }
            }
        }
        metrics.flush_us.record_since(started);
        match job.done {
            Some(done) => {
                let _ = done.send(());
            }
            None => {
                if reports.send(Internal::Flushed(report)).await.is_err() {
                    return;
                }
            }
        }
    }
}
