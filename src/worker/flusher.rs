//! The flusher task: writes the worker's flush jobs to Redis in order, one
//! at a time, and reports what could not be written (to retry) and what was
//! fenced off (to drop).
//!
//! In-order processing matters for handover: a partition's final flush is
//! queued behind any periodic flush of it that is still in flight. If that
//! periodic flush fails, the worker can no longer take it back (the
//! partition is gone from its engine), so the flusher carries it into the
//! final flush: the final state is never written without the outputs of
//! the ticks before it.

use std::collections::HashMap;
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
    // Periodic flushes that failed since the last periodic job: the worker
    // has put them back by the time it sends the next one.
    let mut carried: HashMap<(PartitionId, Epoch), PartitionFlush> = HashMap::new();
    while let Some(job) = jobs.recv().await {
        let started = Instant::now();
        let mut report = FlushReport {
            retryable: true,
            ..FlushReport::default()
        };
        let handover = job.done.is_some();
        if !handover {
            carried.clear();
        }
        for mut flush in job.flushes {
            let key = (flush.partition, flush.epoch);
            if let Some(earlier) = carried.remove(&key).filter(|_| handover) {
                flush.absorb_earlier(earlier);
            }
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
                    if !handover {
                        carried.insert(key, flush.clone());
                    }
                    report.failed.push(flush);
                }
                Err(e) => {
                    tracing::error!(partition = %flush.partition, error = %e,
                        "flush failed and will not pass by itself (permissions, or a foreign value under the symbols' keys); the state stays in memory and is retried every few seconds");
                    report.retryable = false;
                    if !handover {
                        carried.insert(key, flush.clone());
                    }
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
