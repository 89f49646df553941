//! Ownership changes: load a partition's state on acquisition (holding its
//! ticks meanwhile), drop it on loss, flush it before a handover's
//! release.

use std::time::{Duration, Instant};

use super::{FlushJob, Internal, Worker};
use crate::cluster::OwnershipChange;
use crate::partition::partition_of;
use crate::retry::Backoff;
use crate::stats::BadInput;
use crate::store::LoadedPartition;
use crate::tick::{Epoch, PartitionId};

impl Worker {
    pub(super) async fn on_ownership(&mut self, change: OwnershipChange) {
        match change {
            OwnershipChange::Acquired { partition, epoch } => {
                let c = &self.metrics.counters;
                if c.ticks_in.get() + c.forwarded_in.get() > 0 {
                    // Mid-stream: the stored state trails the feed.
                    self.loss.suspect(Instant::now());
                }
                self.metrics.counters.leases_acquired.inc();
                self.engine.begin_load(partition, epoch);
                self.spawn_load(partition, epoch);
            }
            OwnershipChange::Lost { partition, epoch } => {
                self.metrics.counters.leases_lost.inc();
                tracing::warn!(%partition, %epoch, "partition lost; dropping its state without flushing");
                self.engine.drop_partition(partition);
            }
            OwnershipChange::Release {
                partition,
                epoch,
                done,
            } => {
                self.metrics.counters.leases_released.inc();
                let flush = self.engine.release_partition(partition);
                let job = FlushJob {
                    flushes: flush.into_iter().collect(),
                    done: Some(done),
                };
                tracing::debug!(%partition, %epoch, "handing over: final flush queued");
                if let Err(e) = self.flush_tx.send(job).await {
                    // The flusher is gone (shutting down): acknowledge so the
                    // release proceeds; fencing and replay keep results exact.
                    if let Some(done) = e.0.done {
                        let _ = done.send(());
                    }
                }
            }
        }
        self.retry_unrouted().await;
    }

    pub(super) fn spawn_load(&self, partition: PartitionId, epoch: Epoch) {
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        let view_source = self.cluster.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
            loop {
                match store.load(partition).await {
                    Ok(loaded) => {
                        let _ = tx
                            .send(Internal::Loaded {
                                partition,
                                epoch,
                                loaded,
                            })
                            .await;
                        return;
                    }
                    Err(e) => {
                        let wait = backoff.after_failure(e.is_retryable());
                        if e.is_retryable() {
                            tracing::warn!(%partition, error = %e, retry_in = ?wait, "loading partition state failed; retrying");
                        } else {
                            tracing::error!(%partition, error = %e, retry_in = ?wait,
                                "loading partition state failed and will not pass by itself (permissions, or a foreign value under the partition's keys); retrying");
                        }
                        if view_source.view().owned_epoch(partition, Instant::now()) != Some(epoch)
                        {
                            return;
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        });
    }

    /// A partition's stored state arrived: install it and apply what was
    /// held meanwhile.
    pub(super) fn on_loaded(
        &mut self,
        partition: PartitionId,
        epoch: Epoch,
        loaded: LoadedPartition,
    ) {
        for c in &loaded.corrupt {
            self.metrics.bad_input(
                BadInput::CorruptState,
                &format_args!(
                    "stored state of {} (partition {partition}) unreadable: {}; \
                     the symbol restarts from seq 1 through replay",
                    c.name, c.reason
                ),
            );
        }
        let symbols = loaded.symbols.len();
        if symbols > 0 {
            // Taken over mid-stream: the stored state trails the feed.
            self.loss.suspect(Instant::now());
        }
        let Some(outcomes) =
            self.engine
                .finish_load(partition, epoch, loaded.symbols, Instant::now())
        else {
            return;
        };
        for o in outcomes {
            self.count_outcome(o, false);
        }
        tracing::info!(%partition, %epoch, symbols, "partition state loaded");
        let now = Instant::now();
        for (symbol, seq) in &self.feed_seqs {
            if partition_of(symbol, self.partitions) == partition {
                self.engine.announce(partition, *symbol, *seq, now);
            }
        }
    }
}
