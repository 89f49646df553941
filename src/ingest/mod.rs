//! Ingest: ticks and sequence announcements entering a processor.
//!
//! - [`feed`]: the WebSocket client of the feed (binary batches, JSON
//!   control messages, replay requests back), reconnecting with capped
//!   backoff.
//! - [`push`]: the `/ingest` WebSocket endpoint for clients that push
//!   ticks themselves.
//! - [`frames`]: turns a text or binary frame into an [`IngestInput`], the
//!   one parse at the boundary shared by the feed client and the `/ingest`
//!   endpoint.

pub mod feed;
pub mod frames;
pub mod push;

use std::collections::BTreeMap;

use crate::tick::{Symbol, Tick};

/// Largest WebSocket message accepted from the feed or an `/ingest` client.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Something for the worker, decoded from one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestInput {
    /// Ticks, in arrival order.
    Ticks(Vec<Tick>),
    /// The feed's latest seq per symbol.
    Seqs(BTreeMap<Symbol, u64>),
}

/// A gap-fill request for the feed: resend `symbol`'s `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRequest {
    /// The symbol.
    pub symbol: Symbol,
    /// First seq.
    pub from: u64,
    /// Last seq, inclusive.
    pub to: u64,
}
