//! The JSON the dashboard pushes on `/ws` ([`DashboardSnapshot`], whose
//! first fields are the "Dashboard stream" contract) and the cluster
//! events it reads from `{ns}:events` ([`EventRecord`]).

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterEvent;
use crate::stats::HotSymbol;

/// The `"type":"snapshot"` tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotType {
    /// The only value.
    #[default]
    #[serde(rename = "snapshot")]
    Snapshot,
}

/// One frame of the `/ws` stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DashboardSnapshot {
    /// Always `"snapshot"`.
    #[serde(rename = "type")]
    pub kind: SnapshotType,
    /// When the frame was built, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Every known instance, sorted by id.
    pub instances: Vec<InstanceView>,
    /// Owner of each partition (index = partition), `null` when free.
    pub partitions: Vec<Option<String>>,
    /// Cluster-wide ticks received per second.
    pub ticks_per_s: f64,
    /// Cluster-wide end-to-end latency over `latency_window`, from the
    /// merged histograms of every stats interval that ended in it.
    pub latency_us: LatencySummary,
    /// Recent events, oldest first.
    pub events: Vec<EventRecord>,

    // ---- beyond the contract: what the page shows ----
    /// The cluster namespace.
    pub cluster: String,
    /// Fencing epoch of each partition's current lease, `null` when free.
    pub epochs: Vec<Option<u64>>,
    /// Cluster-wide ticks applied per second.
    pub applied_per_s: f64,
    /// Cluster-wide ticks forwarded per second.
    pub forwarded_per_s: f64,
    /// Forwarded / received over the rate window (0 when idle).
    pub forward_ratio: f64,
    /// Forward-hop latency over `latency_window`.
    pub forward_latency_us: LatencySummary,
    /// Flush duration over `latency_window`.
    pub flush_latency_us: LatencySummary,
    /// Length of `latency_window`, in seconds.
    pub window_s: u64,
    /// The window of the latency figures: the last complete seconds.
    pub latency_window: LatencyWindowSpan,
    /// Cumulative counters summed over the live instances.
    pub totals: Totals,
    /// Hottest symbols across the cluster.
    pub hot_symbols: Vec<HotSymbol>,
    /// One point per complete second over the last minutes, oldest first.
    pub history: Vec<HistoryPoint>,
    /// The page may offer demo controls (`POST /api/demo/...`).
    pub demo: bool,
    /// The dashboard's own health.
    pub dashboard: DashboardHealth,
}

/// One instance row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    /// Instance id.
    pub id: String,
    /// Member heartbeat current, or stats seen in the last few seconds.
    pub alive: bool,
    /// Partitions whose lease it holds.
    pub partitions: u32,
    /// Ticks received per second.
    pub ticks_per_s: f64,
    /// Ticks forwarded per second.
    pub forwarded_per_s: f64,
    /// Ticks applied per second.
    pub applied_per_s: f64,
    /// Forwarded ticks received per second.
    pub forwarded_in_per_s: f64,
    /// Its HTTP address, from its member hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Age of its last stats message, ms (`null` if none yet).
    pub stats_age_ms: Option<u64>,
}

/// Percentiles of one latency series, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
    /// Number of samples.
    pub count: u64,
}

/// A window of whole seconds: the stats intervals that ended at `from_ms`
/// or later and before `to_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyWindowSpan {
    /// Length, in seconds.
    pub seconds: u64,
    /// Start, ms since the Unix epoch.
    pub from_ms: u64,
    /// End (excluded), ms since the Unix epoch.
    pub to_ms: u64,
}

/// Cumulative cluster counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Ticks received.
    pub ticks_in: u64,
    /// Ticks applied.
    pub applied: u64,
    /// Ticks forwarded.
    pub forwarded_out: u64,
    /// Ticks forwarded again.
    pub reforwarded: u64,
    /// Ticks held for an unknown owner.
    pub held: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Gaps detected.
    pub gaps: u64,
    /// Gaps skipped.
    pub gaps_skipped: u64,
    /// Replay requests.
    pub replays_requested: u64,
    /// Replayed ticks.
    pub replay_ticks: u64,
    /// Fenced writes rejected.
    pub fenced_rejected: u64,
    /// Leases lost.
    pub leases_lost: u64,
    /// Bad input, all kinds.
    pub bad_input: u64,
}

/// One point of the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// End of the second this point describes, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Ticks received per second.
    pub ticks_per_s: f64,
    /// Ticks applied per second.
    pub applied_per_s: f64,
    /// Ticks forwarded per second.
    pub forwarded_per_s: f64,
    /// End-to-end latency of the stats intervals that ended in this
    /// second, merged (`count` 0 when no samples): the cards' figures for
    /// a one-second window.
    pub latency_us: LatencySummary,
    /// Forward-hop p99.
    pub forward_p99_us: u64,
}

/// The dashboard's own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardHealth {
    /// Both pub/sub and polling reach Redis.
    pub redis_connected: bool,
    /// Stats messages accepted.
    pub stats_messages: u64,
    /// Event messages accepted.
    pub event_messages: u64,
    /// Messages ignored as garbage or foreign (both channels).
    pub bad_messages: u64,
    /// Stats messages stamped too far from the dashboard's clock to be
    /// filed under their own second (filed under their arrival instead).
    pub misdated_stats: u64,
    /// Browsers connected to `/ws` now.
    pub connected_clients: u64,
}

/// A cluster event as read from `{ns}:events`, plus the dashboard's own
/// `redis_disconnected` / `redis_connected` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When it happened, ms since the Unix epoch.
    pub ts_ms: u64,
    /// `member_joined`, `member_left`, `lease_acquired`, `lease_released`,
    /// `lease_lost`, `redis_disconnected`, `redis_connected`.
    pub kind: String,
    /// The partition, for lease events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// The instance concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The lease epoch, for lease events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Free text (dashboard events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<&ClusterEvent> for EventRecord {
    fn from(e: &ClusterEvent) -> Self {
        let (ts_ms, partition, epoch) = match e {
            ClusterEvent::MemberJoined { ts_ms, .. } | ClusterEvent::MemberLeft { ts_ms, .. } => {
                (*ts_ms, None, None)
            }
            ClusterEvent::LeaseAcquired {
                ts_ms,
                partition,
                epoch,
                ..
            }
            | ClusterEvent::LeaseReleased {
                ts_ms,
                partition,
                epoch,
                ..
            }
            | ClusterEvent::LeaseLost {
                ts_ms,
                partition,
                epoch,
                ..
            } => (*ts_ms, Some(partition.0), Some(epoch.0)),
        };
        Self {
            ts_ms,
            kind: e.kind().to_string(),
            partition,
            instance: Some(e.instance().to_string()),
            epoch,
            message: None,
        }
    }
}

impl EventRecord {
    /// A dashboard-made event.
    pub fn local(ts_ms: u64, kind: &str, message: impl Into<String>) -> Self {
        Self {
            ts_ms,
            kind: kind.to_string(),
            partition: None,
            instance: None,
            epoch: None,
            message: Some(message.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_events_become_log_records() {
        let parse = |j: &str| EventRecord::from(&ClusterEvent::parse(j.as_bytes()).unwrap());
        let e = parse(
            r#"{"kind":"lease_acquired","ts_ms":5,"partition":7,"instance":"p2","epoch":12}"#,
        );
        assert_eq!(
            (e.kind.as_str(), e.ts_ms, e.partition, e.epoch),
            ("lease_acquired", 5, Some(7), Some(12))
        );
        let e = parse(r#"{"kind":"member_joined","ts_ms":1,"instance":"p2"}"#);
        assert_eq!((e.instance.as_deref(), e.partition), (Some("p2"), None));
        // Garbage, unknown kinds and missing fields are refused by the one
        // parser (and counted by the caller).
        for bad in [
            "nope",
            "[]",
            r#"{"kind":"x"}"#,
            r#"{"kind":"weather","ts_ms":1,"instance":"p"}"#,
            r#"{"kind":"lease_lost","ts_ms":1,"instance":"p"}"#,
            r#"{"kind":"member_left","ts_ms":1}"#,
        ] {
            assert!(ClusterEvent::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn snapshot_has_contract_fields() {
        let v = serde_json::to_value(DashboardSnapshot::default()).unwrap();
        for f in [
            "type",
            "ts_ms",
            "instances",
            "partitions",
            "ticks_per_s",
            "latency_us",
            "events",
        ] {
            assert!(v.get(f).is_some(), "{f}");
        }
        assert_eq!(v["type"], "snapshot");
        for f in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"].get(f).is_some(), "{f}");
        }
    }
}
