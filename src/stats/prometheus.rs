//! Prometheus text exposition (format 0.0.4) of a [`Metrics`] registry,
//! served by each processor at `/metrics`.
//!
//! Names: `tickshard_<counter>_total`, `tickshard_bad_input_total{kind}`,
//! the gauge `tickshard_partitions_owned`, and latency as the summary
//! `tickshard_latency_us{kind,quantile}` with `_sum` and `_count` over all
//! samples since start (the sum is count × mean of the HDR histogram, so it
//! is exact to the histogram's 3 significant digits), plus the gauge
//! `tickshard_latency_max_us{kind}`.

use std::fmt::Write as _;

use crate::stats::latency::LatencyKind;
use crate::stats::metrics::{Counters, Metrics};

/// Quantiles exported for every latency summary.
pub const QUANTILES: [(f64, &str); 5] = [
    (0.5, "0.5"),
    (0.9, "0.9"),
    (0.99, "0.99"),
    (0.999, "0.999"),
    (1.0, "1"),
];

/// Content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Help text of each counter.
fn counter_help(name: &str) -> &'static str {
    match name {
        "ticks_in" => "Ticks received from the feed or /ingest.",
        "applied" => "Ticks applied to symbols owned by this instance.",
        "forwarded_out" => "Ticks forwarded to their owner.",
        "forwarded_in" => "Ticks received forwarded from another instance.",
        "reforwarded" => "Forwarded ticks forwarded again after an ownership change.",
        "held" => "Ticks held while their partition had no known owner.",
        "duplicates" => "Ticks dropped as duplicates.",
        "gaps" => "Sequence gaps detected.",
        "gaps_skipped" => "Sequence gaps skipped after the gap timeout.",
        "replays_requested" => "Replay requests sent to the feed.",
        "replay_ticks" => "Replayed ticks received.",
        "fenced_rejected" => "State writes rejected by fencing.",
        "leases_acquired" => "Partition leases acquired.",
        "leases_released" => "Partition leases released.",
        "leases_lost" => "Partition leases lost.",
        "intake_paused_credit" => "Times feed intake paused for a full flow-control window.",
        "intake_paused_held" => "Times feed intake paused for too many held ticks.",
        "credit_forgiven" => "Destinations forgiven their window after acknowledging nothing.",
        _ => "Counter.",
    }
}

/// Every metric family name [`render_prometheus`] emits (summary
/// families by their base name).
pub fn metric_names() -> Vec<String> {
    let mut names: Vec<String> = Counters::NAMES
        .iter()
        .map(|n| format!("tickshard_{n}_total"))
        .collect();
    names.push("tickshard_bad_input_total".into());
    names.push("tickshard_partitions_owned".into());
    names.push("tickshard_latency_us".into());
    names.push("tickshard_latency_max_us".into());
    names
}

/// Renders `metrics` in the Prometheus text format.
pub fn render_prometheus(metrics: &Metrics, partitions_owned: u32) -> String {
    let mut out = String::with_capacity(4096);
    for (name, value) in metrics.counters.values() {
        let _ = writeln!(out, "# HELP tickshard_{name}_total {}", counter_help(name));
        let _ = writeln!(out, "# TYPE tickshard_{name}_total counter");
        let _ = writeln!(out, "tickshard_{name}_total {value}");
    }
    out.push_str("# HELP tickshard_bad_input_total Bad input rejected, by kind.\n");
    out.push_str("# TYPE tickshard_bad_input_total counter\n");
    for (kind, value) in metrics.bad_input_values() {
        let _ = writeln!(out, "tickshard_bad_input_total{{kind=\"{kind}\"}} {value}");
    }
    out.push_str("# HELP tickshard_partitions_owned Partitions this instance owns.\n");
    out.push_str("# TYPE tickshard_partitions_owned gauge\n");
    let _ = writeln!(out, "tickshard_partitions_owned {partitions_owned}");

    let hists: Vec<_> = LatencyKind::ALL
        .iter()
        .map(|k| (*k, metrics.latency(*k).cumulative()))
        .collect();
    out.push_str(
        "# HELP tickshard_latency_us Latency in microseconds (e2e: feed to applied, forward: forward hop, flush: state flush).\n",
    );
    out.push_str("# TYPE tickshard_latency_us summary\n");
    for (kind, h) in &hists {
        let label = kind.label();
        for (q, qs) in QUANTILES {
            let v = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            };
            let _ = writeln!(
                out,
                "tickshard_latency_us{{kind=\"{label}\",quantile=\"{qs}\"}} {v}"
            );
        }
        let count = h.len();
        let sum = if count == 0 {
            0.0
        } else {
            h.mean() * count as f64
        };
        let _ = writeln!(out, "tickshard_latency_us_sum{{kind=\"{label}\"}} {sum:.0}");
        let _ = writeln!(
            out,
            "tickshard_latency_us_count{{kind=\"{label}\"}} {count}"
        );
    }
    out.push_str(
        "# HELP tickshard_latency_max_us Largest latency seen since start, in microseconds.\n",
    );
    out.push_str("# TYPE tickshard_latency_max_us gauge\n");
    for (kind, h) in &hists {
        let _ = writeln!(
            out,
            "tickshard_latency_max_us{{kind=\"{}\"}} {}",
            kind.label(),
            h.max()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_summaries() {
        let m = Metrics::new();
        m.counters.applied.add(3);
        m.bad_input("truncated");
        m.e2e_us.record_us(100);
        m.e2e_us.record_us(300);
        let text = render_prometheus(&m, 12);
        assert!(text.contains("tickshard_applied_total 3\n"));
        assert!(text.contains("tickshard_bad_input_total{kind=\"truncated\"} 1\n"));
        assert!(text.contains("tickshard_partitions_owned 12\n"));
        assert!(text.contains("tickshard_latency_us_count{kind=\"e2e\"} 2\n"));
        assert!(text.contains("tickshard_latency_us{kind=\"e2e\",quantile=\"1\"} 300\n"));
        assert!(text.contains("tickshard_latency_us_sum{kind=\"e2e\"} 400\n"));
        assert!(text.contains("tickshard_latency_us_count{kind=\"flush\"} 0\n"));
        for name in metric_names() {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
