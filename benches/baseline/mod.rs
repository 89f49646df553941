//! The two designs tickshard is measured against, implemented in Rust
//! against the same Redis so the ratios compare designs, not languages:
//!
//! - [`original`]: the Node.js library's per-request protocol: `SET NX`
//!   reserve (no expiry), `GET` the owner, `PUBLISH` a JSON request on ONE
//!   shared channel that every instance receives and filters by target id,
//!   and a JSON response back to the sender on the same channel;
//! - [`lock`]: lock per tick: `SET lock NX PX`, update the symbol's hash,
//!   `DEL lock`, retrying on contention.
//!
//! Both are plain async functions ([`run_original`], [`run_lock_per_tick`])
//! so the criterion bench and the cluster bench run them the same way, and
//! both return a [`BaselineReport`] (ticks/s and HDR latency percentiles
//! for a fixed number of ticks, plus an exactness check of the result).
#![allow(dead_code)]

pub(crate) mod lock;
pub(crate) mod original;

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::common::Percentiles;

pub(crate) use lock::{run_lock_per_tick, LockConfig};
pub(crate) use original::{run_original, OriginalConfig};

/// Why a baseline run failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BaselineError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("baseline protocol: {0}")]
    Protocol(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// What one baseline run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BaselineReport {
    /// `original` or `lock_per_tick`.
    pub(crate) name: &'static str,
    /// Ticks driven through the design.
    pub(crate) ticks: u64,
    /// Ticks that crossed instances (original design only).
    pub(crate) forwarded: u64,
    /// Instances (original) or workers (lock).
    pub(crate) workers: usize,
    /// Requests in flight at once.
    pub(crate) in_flight: usize,
    /// Distinct symbols.
    pub(crate) symbols: usize,
    /// Lock acquisitions that had to retry (lock only).
    pub(crate) retries: u64,
    /// Wall time of the run in seconds.
    pub(crate) elapsed_s: f64,
    /// `ticks / elapsed_s`.
    pub(crate) ticks_per_s: f64,
    /// Per-tick latency (request → done), microseconds.
    pub(crate) latency_us: Percentiles,
    /// The result equals the input (every tick counted exactly once).
    pub(crate) exact: bool,
}

/// A latency histogram in microseconds (1 µs ..= 60 s, 3 digits).
pub(crate) fn latency_histogram() -> Histogram<u64> {
    tickshard::stats::new_histogram()
}

pub(crate) fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 60_000_000);
    h.saturating_record(us);
}
