//! Run counters (atomics shared by the tasks) and the one-line JSON summary
//! printed on exit.

use std::collections::BTreeMap;
use std::sync::Mutex;
use tickshard::counter::Counter;

use serde::Serialize;

use crate::source::BadRows;

/// Counters updated by the feed loop, the connections and the announcer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Ticks numbered and handed to distribution.
    pub ticks_generated: Counter,
    /// Ticks written to a client socket (live, not replays).
    pub ticks_sent: Counter,
    /// Tick batches written.
    pub batches_sent: Counter,
    /// Ticks distributed round-robin.
    pub round_robin: Counter,
    /// Ticks distributed to a random client.
    pub random: Counter,
    /// Owner-aware: ticks sent to their owner's connection.
    pub owner_hits: Counter,
    /// Owner-aware: ticks whose owner was unknown or not connected.
    pub fallbacks: Counter,
    /// Ticks given back by a failed connection and sent elsewhere.
    pub reassigned: Counter,
    /// Replay requests answered with ticks.
    pub replay_requests: Counter,
    /// Ticks replayed.
    pub replay_ticks: Counter,
    /// `seqs` messages sent.
    pub seqs_sent: Counter,
    /// `seqs` messages dropped because a client's control queue was full.
    pub seqs_dropped: Counter,
    /// Clients that said hello.
    pub clients: Counter,
    /// Owner-aware: `{ns}:events` messages that were not JSON events.
    pub bad_events: Counter,
    bad_client: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    /// Counts one bad client message of `kind`.
    pub fn bad_client(&self, kind: &'static str) {
        if let Ok(mut m) = self.bad_client.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Bad client messages by kind.
    pub fn bad_client_by_kind(&self) -> BTreeMap<&'static str, u64> {
        self.bad_client
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

/// Distribution counts.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct DistributionSummary {
    /// Ticks sent round-robin.
    pub round_robin: u64,
    /// Ticks sent to a random client.
    pub random: u64,
    /// Owner-aware hits.
    pub owner_hits: u64,
    /// Owner-aware fallbacks.
    pub fallbacks: u64,
    /// Ticks re-sent after a connection failed.
    pub reassigned: u64,
}

/// Replays served.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Requests answered with ticks.
    pub requests: u64,
    /// Ticks replayed.
    pub ticks: u64,
    /// Ticks kept in the store at exit.
    pub kept: u64,
    /// Ticks evicted by the limit.
    pub evicted: u64,
}

/// Malformed input rows.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct BadInputSummary {
    /// Rows skipped.
    pub rows: u64,
    /// Their first line numbers.
    pub first_lines: Vec<u64>,
}

impl From<BadRows> for BadInputSummary {
    fn from(b: BadRows) -> Self {
        Self {
            rows: b.count,
            first_lines: b.first_lines,
        }
    }
}

/// Bad client messages.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct BadClientSummary {
    /// In total.
    pub total: u64,
    /// By kind.
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// The summary line.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Summary {
    /// Always `"summary"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Distribution mode.
    pub mode: &'static str,
    /// Ticks numbered and distributed.
    pub ticks_generated: u64,
    /// Ticks written to client sockets.
    pub ticks_sent: u64,
    /// Batches written.
    pub batches_sent: u64,
    /// Symbols seen.
    pub symbols: u64,
    /// True when the source ran to its end (or limit) and every tick was sent.
    pub completed: bool,
    /// Per-mode counts.
    pub distribution: DistributionSummary,
    /// Gap fill.
    pub replays: ReplaySummary,
    /// Bad CSV rows.
    pub bad_input: BadInputSummary,
    /// Bad client messages.
    pub bad_client_messages: BadClientSummary,
    /// `seqs` messages sent.
    pub seqs_sent: u64,
    /// `seqs` messages dropped on full queues.
    pub seqs_dropped: u64,
    /// Clients that said hello.
    pub clients: u64,
    /// Target rate, ticks/s (`null` = unthrottled).
    pub target_rate: Option<f64>,
    /// Ticks generated / sending time.
    pub achieved_rate: f64,
    /// From the first to the last tick sent, seconds.
    pub send_duration_s: f64,
    /// The whole run, seconds.
    pub duration_s: f64,
}

impl Summary {
    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"type":"summary","error":"{e}"}}"#))
    }
}
