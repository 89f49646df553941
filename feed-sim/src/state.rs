//! State shared by the feed loop, the connections and the announcer: the
//! live-connection hub, the replay store, the counters (for the summary
//! and `/metrics`) and the bookkeeping of ticks not yet written to a
//! socket.

use std::sync::atomic::AtomicU64;
use std::sync::RwLock;

use tickshard::tick::Tick;
use tokio::sync::mpsc;

use crate::hub::Hub;
use crate::metrics::TicksSent;
use crate::replay_store::ReplayStore;
use crate::summary::Counters;

/// Shared by every task of a run.
#[derive(Debug)]
pub struct Shared {
    /// Live connections.
    pub hub: Hub,
    /// Every tick sent (the std lock is held only for short, non-async
    /// sections: appending a batch, copying a replay range).
    pub store: RwLock<ReplayStore>,
    /// Counters for the summary.
    pub counters: Counters,
    /// Live ticks written, per client (`/metrics`).
    pub ticks_sent: TicksSent,
    /// Batches a failed connection gives back for re-assignment. Unbounded
    /// by type but bounded in fact: each connection returns at most its
    /// queue (`--queue` batches) plus the batch in hand, once.
    pub returns: mpsc::UnboundedSender<Vec<Tick>>,
    /// Ticks numbered but not yet written to any socket.
    pub pending: AtomicU64,
    /// Max ticks per replay request.
    pub replay_max_range: u64,
    /// Inbound message cap.
    pub max_message_bytes: usize,
    /// Per-connection data queue, in batches.
    pub queue: usize,
    /// Next connection number.
    pub next_conn: AtomicU64,
}
