//! Forwarding buffers: ticks bound for other instances, batched per
//! destination in the binary encoding.
//!
//! Smart batching: the worker appends while it has input and takes every
//! non-empty batch after each drain of its queues (a few inputs, more
//! under a backlog), or when a batch reaches the size cap. There is no
//! fixed linger, so a lone tick leaves at once at low load and batches
//! grow by themselves at high load.

use crate::codec::BatchWriter;
use crate::tick::{InstanceId, Tick};

/// Ticks in one forwarded batch at most.
pub const MAX_FORWARD_BATCH: usize = 4096;

/// One encoded batch for one destination.
#[derive(Debug)]
pub struct OutgoingBatch {
    /// The owner it goes to.
    pub to: InstanceId,
    /// Hops it has made so far, including this one.
    pub hops: u8,
    /// Ticks in it.
    pub ticks: usize,
    /// Flow-control mark (from [`crate::cluster::ClusterHandle::charge`]),
    /// set when the batch is counted as forwarded.
    pub mark: u64,
    /// The binary batch frame.
    pub frame: Vec<u8>,
}

/// Per-destination batch buffers.
///
/// A short list searched linearly: a cluster has a handful of instances
/// and almost every tick uses the first few entries, so this beats hashing
/// the destination's name (and cloning it) for every forwarded tick.
#[derive(Debug, Default)]
pub struct Forwarder {
    buffers: Vec<(InstanceId, u8, BatchWriter)>,
}

impl Forwarder {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `tick` for `to`; returns a full batch to send now, if the
    /// cap was reached.
    pub fn push(&mut self, to: &InstanceId, hops: u8, tick: &Tick) -> Option<OutgoingBatch> {
        let i = match self
            .buffers
            .iter()
            .position(|(id, h, _)| *h == hops && id == to)
        {
            Some(i) => i,
            None => {
                self.buffers.push((to.clone(), hops, BatchWriter::new()));
                self.buffers.len() - 1
            }
        };
        let (_, _, writer) = &mut self.buffers[i];
        writer.push(tick);
        (writer.len() >= MAX_FORWARD_BATCH).then(|| OutgoingBatch {
            to: to.clone(),
            hops,
            ticks: writer.len(),
            mark: 0,
            frame: writer.take(),
        })
    }

    /// Every destination this forwarder has sent to.
    pub fn destinations(&self) -> impl Iterator<Item = &InstanceId> {
        self.buffers.iter().map(|(to, _, _)| to)
    }

    /// Takes every non-empty batch.
    pub fn drain(&mut self) -> Vec<OutgoingBatch> {
        let mut out = Vec::new();
        for (to, hops, writer) in &mut self.buffers {
            if !writer.is_empty() {
                out.push(OutgoingBatch {
                    to: to.clone(),
                    hops: *hops,
                    ticks: writer.len(),
                    mark: 0,
                    frame: writer.take(),
                });
            }
        }
        out
    }

    /// Ticks waiting in all buffers.
    pub fn pending(&self) -> usize {
        self.buffers.iter().map(|(_, _, w)| w.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_batch;

    #[test]
    fn batches_per_destination_and_flushes_at_the_cap() {
        let a: InstanceId = "a".parse().unwrap();
        let b: InstanceId = "b".parse().unwrap();
        let mut f = Forwarder::new();
        let t = |seq| Tick::new("X".parse().unwrap(), seq, "1".parse().unwrap(), 1, 0).unwrap();
        assert!(f.push(&a, 1, &t(1)).is_none());
        assert!(f.push(&b, 1, &t(2)).is_none());
        assert!(f.push(&a, 2, &t(3)).is_none());
        assert_eq!(f.pending(), 3);
        let mut batches = f.drain();
        batches.sort_by_key(|b| (b.to.clone(), b.hops));
        assert_eq!(batches.len(), 3);
        let mut ticks = Vec::new();
        decode_batch(&batches[0].frame, &mut ticks).unwrap();
        assert_eq!(ticks, vec![t(1)]);
        assert!(f.drain().is_empty());
        let mut full = None;
        for seq in 1..=MAX_FORWARD_BATCH as u64 {
            full = f.push(&a, 1, &t(seq));
        }
        let full = full.unwrap();
        assert_eq!(full.ticks, MAX_FORWARD_BATCH);
        assert_eq!(f.pending(), 0);
    }
}
