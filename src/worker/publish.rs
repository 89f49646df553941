//! The publisher task: sends forwarded batches to their owners' inboxes
//! with `PUBLISH`, in order, until the worker closes the queue.
//!
//! Pub/sub is at-most-once: a batch nobody receives (the owner just died)
//! is counted and left to the new owner's gap fill.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cluster::ClusterHandle;
use crate::forward::OutgoingBatch;
use crate::stats::Metrics;

/// Publishes every batch from `batches` until the channel closes.
pub async fn run_publisher(
    cluster: ClusterHandle,
    metrics: Arc<Metrics>,
    mut batches: mpsc::Receiver<OutgoingBatch>,
) {
    while let Some(batch) = batches.recv().await {
        match cluster
            .send_charged(&batch.to, batch.hops, batch.mark, batch.frame.into())
            .await
        {
            Ok(0) => {
                metrics.counters.forward_undelivered.add(batch.ticks as u64);
                tracing::debug!(to = %batch.to, ticks = batch.ticks, "forwarded batch had no receiver; gap fill recovers it");
            }
            Ok(_) => {}
            Err(e) => {
                metrics.counters.forward_undelivered.add(batch.ticks as u64);
                tracing::warn!(to = %batch.to, ticks = batch.ticks, error = %e, "forwarding failed; gap fill recovers it");
            }
        }
    }
}
