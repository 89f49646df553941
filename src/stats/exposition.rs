//! `/metrics` of a processor: the metric families, built at scrape time by
//! `prometheus-client` collectors from what the data path already keeps.
//!
//! # Why `prometheus-client`
//!
//! It is the Rust client maintained by the Prometheus project itself
//! (`prometheus/client_rust`), it speaks OpenMetrics 1.0, the format
//! Prometheus asks for first, and it owns the details a hand-written
//! exposition gets wrong one day: names and suffixes (`_total`, `_bucket`,
//! `_sum`, `_count`, the unit suffix and `# UNIT`), cumulative buckets
//! with `+Inf`, number formatting and the `# EOF` terminator.
//!
//! # Why collectors over [`Metrics`], not the crate's own metric types
//!
//! The data path records every latency sample once, into the striped HDR
//! recorders that the `{ns}:stats` messages and the dashboard need anyway
//! (`stats::latency`). The crate's `Histogram::observe` is not atomic: it
//! takes the write side of a lock of its own (one per histogram, shared by
//! every recording thread) and searches the buckets, so recording into it
//! beside HDR would add a contended lock to every sample. Instead [`MetricsCollector`]
//! derives the Prometheus buckets from the cumulative HDR histogram when
//! `/metrics` is scraped: no work per tick at all, and one source of truth
//! for both views. HDR keeps 3 significant digits, so the bucket counts
//! are exact below 2 ms and, above, a sample within 0.1% of a bucket bound
//! may be counted on either side of it; `_sum` is count × mean, exact to
//! the same 3 digits. Counters are the data path's atomics, read as they
//! are.
//!
//! # Families
//!
//! - `tickshard_<name>_total`: every counter of [`Counters::NAMES`].
//! - `tickshard_bad_input_total{kind}`: one series per
//!   [`BadInput`](crate::stats::BadInput) kind.
//! - `tickshard_latency_seconds{kind}`: histogram, `kind` = `e2e` (feed
//!   `sent_ns` → applied), `forward` (forward hop) or `flush` (one fenced
//!   flush), buckets [`LATENCY_BUCKETS_SECONDS`] (10 µs to 10 s). One
//!   family with a `kind` label, so one dashboard query shape serves all
//!   three: `histogram_quantile(0.99, sum by (le)
//!   (rate(tickshard_latency_seconds_bucket{kind="e2e"}[1m])))`.
//! - `tickshard_partitions_owned` (gauge) and the cluster layer's
//!   `tickshard_cluster_<name>_total` counters ([`ClusterCollector`]).

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::cluster::{ClusterHandle, ClusterMetrics};
use crate::stats::latency::LatencyKind;
use crate::stats::metrics::{Counters, Metrics};

/// Upper bounds of the latency histogram buckets, in seconds: 1-2.5-5
/// steps from 10 µs to 10 s (`+Inf` follows).
pub const LATENCY_BUCKETS_SECONDS: [f64; 19] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in microseconds, the unit of the HDR recorders.
const LATENCY_BUCKETS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Prefix of every processor family.
const PREFIX: &str = "tickshard";

/// A cluster-layer counter: name, help, and where its value is.
type ClusterCounter = (&'static str, &'static str, fn(&ClusterMetrics) -> u64);

/// The cluster layer's counters on `/metrics` (`tickshard_cluster_<name>_total`).
const CLUSTER_COUNTERS: [ClusterCounter; 7] = [
    (
        "renew_failures",
        "Lease renew round trips that failed.",
        |m| m.renew_failures,
    ),
    (
        "acquisitions_unconfirmed",
        "Leases won but given back because the replicas did not confirm them in time.",
        |m| m.acquisitions_unconfirmed,
    ),
    (
        "handover_ack_timeouts",
        "Handovers released without the data path's ack in time.",
        |m| m.handover_ack_timeouts,
    ),
    (
        "bad_inbox_messages",
        "Inbox messages that were not valid envelopes.",
        |m| m.bad_inbox_messages,
    ),
    (
        "bad_events",
        "Event messages that were garbage or of an unknown kind.",
        |m| m.bad_events,
    ),
    (
        "unmatched_replies",
        "Replies that matched no waiting request.",
        |m| m.unmatched_replies,
    ),
    (
        "inbox_bytes",
        "Payload bytes received on this instance's inbox (what pub/sub carried to it).",
        |m| m.inbox_bytes,
    ),
];

/// Every family a processor exposes, by the name PromQL selects it with:
/// counters with their `_total`, histograms by their base name (queried
/// as `<name>_bucket`, `_sum` and `_count`).
pub fn metric_names() -> Vec<String> {
    let mut names: Vec<String> = Counters::NAMES
        .iter()
        .map(|n| format!("{PREFIX}_{n}_total"))
        .collect();
    names.push("tickshard_bad_input_total".into());
    names.push("tickshard_latency_seconds".into());
    names.push("tickshard_partitions_owned".into());
    names.extend(
        CLUSTER_COUNTERS
            .iter()
            .map(|(n, _, _)| format!("{PREFIX}_cluster_{n}_total")),
    );
    names
}

/// A registry with the families of one processor: its [`Metrics`] and
/// `cluster` (a [`ClusterCollector`] in a running processor).
pub fn processor_registry(metrics: Arc<Metrics>, cluster: impl Collector) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MetricsCollector(metrics)));
    registry.register_collector(Box::new(cluster));
    registry
}

/// The families of a [`Metrics`]: counters, bad input by kind, latency
/// histograms.
#[derive(Debug)]
pub struct MetricsCollector(pub Arc<Metrics>);

impl Collector for MetricsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        for ((name, value), doc) in m.counters.values().into_iter().zip(Counters::HELP) {
            let family = format!("{PREFIX}_{name}");
            // The counter's doc comment, without its Markdown code spans.
            let help = doc.trim().replace('`', "");
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(&family, &help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }

        let mut family = encoder.encode_descriptor(
            "tickshard_bad_input",
            "Input refused, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (kind, value) in m.bad_input_values() {
            let labels = [("kind", kind.as_str())];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }

        let seconds = Unit::Seconds;
        let mut family = encoder.encode_descriptor(
            "tickshard_latency",
            "Latency: e2e = feed send to applied by the owner, forward = one forward hop, flush = one fenced state flush.",
            Some(&seconds),
            MetricType::Histogram,
        )?;
        for kind in LatencyKind::ALL {
            let h = SecondsHistogram::of(&m.latency(kind).cumulative());
            let labels = [("kind", kind.label())];
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

/// The cluster layer's numbers at one instant: partitions owned and its
/// counters. A [`Collector`] of constant values (tests use it as is).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterValues {
    /// Partitions this instance owns.
    pub partitions_owned: u32,
    /// The cluster layer's counters.
    pub counters: ClusterMetrics,
}

impl ClusterValues {
    /// What `cluster` says now.
    pub fn of(cluster: &ClusterHandle) -> Self {
        let owned = cluster.view().owned_count(Instant::now());
        Self {
            partitions_owned: u32::try_from(owned).unwrap_or(u32::MAX),
            counters: cluster.metrics(),
        }
    }
}

impl Collector for ClusterValues {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(i64::from(self.partitions_owned));
        let metric = encoder.encode_descriptor(
            "tickshard_partitions_owned",
            "Partitions this instance owns (its lease is valid by its own clock).",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        for (name, help, value) in CLUSTER_COUNTERS {
            let family = format!("{PREFIX}_cluster_{name}");
            let counter = ConstCounter::new(value(&self.counters));
            let metric = encoder.encode_descriptor(&family, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// [`ClusterValues`] of a live cluster, read at every scrape.
#[derive(Debug)]
pub struct ClusterCollector(pub ClusterHandle);

impl Collector for ClusterCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        ClusterValues::of(&self.0).encode(encoder)
    }
}

/// An HDR histogram in microseconds as a Prometheus histogram in seconds.
#[derive(Debug, Clone, PartialEq)]
struct SecondsHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, samples in this bucket only)`, `f64::MAX` for `+Inf`
    /// (prometheus-client accumulates them).
    buckets: Vec<(f64, u64)>,
}

impl SecondsHistogram {
    fn of(h: &Histogram<u64>) -> Self {
        let mut counts = [0u64; LATENCY_BUCKETS_US.len() + 1];
        for v in h.iter_recorded() {
            // A bin of equivalent values counts as <= a bound when its
            // lowest value is (see the module doc on precision).
            let lowest = h.lowest_equivalent(v.value_iterated_to());
            let i = LATENCY_BUCKETS_US.partition_point(|bound| *bound < lowest);
            if let Some(c) = counts.get_mut(i) {
                *c = c.saturating_add(v.count_at_value());
            }
        }
        let count = h.len();
        let sum_us = if count == 0 {
            0.0
        } else {
            h.mean() * count as f64
        };
        let buckets = LATENCY_BUCKETS_SECONDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(counts)
            .collect();
        Self {
            sum: sum_us / 1e6,
            count,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency::histogram_of;

    #[test]
    fn bucket_bounds_agree() {
        for (s, us) in LATENCY_BUCKETS_SECONDS.iter().zip(LATENCY_BUCKETS_US) {
            assert_eq!(*s, us as f64 / 1e6);
        }
        assert!(LATENCY_BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn hdr_samples_land_in_their_buckets() {
        // 10 µs is <= the first bound; 11 µs is not; 2 s and 20 s (above
        // the last bound) go to 2.5 s and +Inf.
        let h = SecondsHistogram::of(&histogram_of(&[1, 10, 11, 100, 2_000_000, 20_000_000]));
        assert_eq!(h.count, 6);
        let at = |bound: f64| {
            h.buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map(|(_, c)| *c)
                .unwrap()
        };
        assert_eq!(at(1e-5), 2);
        assert_eq!(at(2.5e-5), 1);
        assert_eq!(at(1e-4), 1);
        assert_eq!(at(2.5), 1);
        assert_eq!(at(f64::MAX), 1);
        assert_eq!(h.buckets.iter().map(|(_, c)| c).sum::<u64>(), 6);
        let want = (1 + 10 + 11 + 100 + 2_000_000 + 20_000_000) as f64 / 1e6;
        assert!((h.sum - want).abs() < want * 0.001, "{}", h.sum);
        let empty = SecondsHistogram::of(&histogram_of(&[]));
        assert_eq!((empty.count, empty.sum), (0, 0.0));
        assert_eq!(empty.buckets.len(), LATENCY_BUCKETS_SECONDS.len() + 1);
    }
}
