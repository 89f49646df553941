//! The `{ns}:stats` message: [`StatsSnapshot`], one JSON object per
//! instance about once a second, and the base64 V2 encoding of its interval
//! histograms.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::latency::{add_saturating, new_histogram, LatencyKind};
use crate::stats::metrics::{CounterValues, Metrics};

/// Errors reading a stats message or one of its histograms.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The message is not JSON, or not a stats message.
    #[error("not a stats message: {0}")]
    NotStats(#[from] serde_json::Error),
    /// A histogram field is not valid base64.
    #[error("histogram is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// A histogram field does not decode as an hdrhistogram V2 blob.
    #[error("histogram does not decode: {0}")]
    Histogram(String),
}

impl StatsError {
    /// A short label for counters (`not_stats`, `bad_histogram`).
    pub fn kind(&self) -> &'static str {
        match self {
            StatsError::NotStats(_) => "not_stats",
            StatsError::Base64(_) | StatsError::Histogram(_) => "bad_histogram",
        }
    }
}

/// The `"type":"stats"` tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatsType {
    /// The only value.
    #[default]
    #[serde(rename = "stats")]
    Stats,
}

/// One instance's stats for one interval, as published on `{ns}:stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Always `"stats"`.
    #[serde(rename = "type")]
    pub kind: StatsType,
    /// The publishing instance.
    pub instance: String,
    /// Wall-clock time of the snapshot, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Length of the interval the histograms cover, in ms.
    pub interval_ms: u64,
    /// Partitions this instance owns now.
    pub partitions_owned: u32,
    /// Cumulative counters since the instance started.
    pub counters: CounterValues,
    /// The interval's latency histograms (base64 of the V2 serialization).
    #[serde(default)]
    pub histograms: EncodedHistograms,
    /// The instance's most active symbols.
    #[serde(default)]
    pub hot_symbols: Vec<HotSymbol>,
}

/// The three interval histograms, each base64 of an hdrhistogram V2 blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncodedHistograms {
    /// End-to-end latency.
    pub e2e_us: String,
    /// Forward hop latency.
    pub forward_us: String,
    /// Flush duration.
    pub flush_us: String,
}

impl EncodedHistograms {
    /// The encoded histogram of `kind`.
    pub fn get(&self, kind: LatencyKind) -> &str {
        match kind {
            LatencyKind::E2e => &self.e2e_us,
            LatencyKind::Forward => &self.forward_us,
            LatencyKind::Flush => &self.flush_us,
        }
    }

    fn set(&mut self, kind: LatencyKind, v: String) {
        match kind {
            LatencyKind::E2e => self.e2e_us = v,
            LatencyKind::Forward => self.forward_us = v,
            LatencyKind::Flush => self.flush_us = v,
        }
    }

    /// Decodes the histogram of `kind`; an empty field is an empty histogram.
    pub fn decode(&self, kind: LatencyKind) -> Result<Histogram<u64>, StatsError> {
        decode_histogram(self.get(kind))
    }
}

/// A hot symbol's figures (prices as decimal strings with 4 places).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HotSymbol {
    /// The symbol.
    pub symbol: String,
    /// Ticks applied.
    pub count: u64,
    /// Last traded price.
    pub last_px: String,
    /// Volume-weighted average price.
    pub vwap_px: String,
    /// Current bar: open.
    pub open: String,
    /// Current bar: high.
    pub high: String,
    /// Current bar: low.
    pub low: String,
    /// Current bar: close.
    pub close: String,
}

impl StatsSnapshot {
    /// Parses a `{ns}:stats` message.
    pub fn parse(payload: &str) -> Result<Self, StatsError> {
        Ok(serde_json::from_str(payload)?)
    }

    /// The JSON text published on `{ns}:stats`.
    pub fn to_json(&self) -> String {
        // A struct of strings, integers and maps with string keys always
        // serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Base64 of the V2 serialization of `h`.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::with_capacity(256);
    match V2Serializer::new().serialize(h, &mut buf) {
        Ok(_) => BASE64.encode(&buf),
        Err(_) => String::new(),
    }
}

/// Decodes [`encode_histogram`] output into a histogram with the standard
/// latency bounds; an empty string is an empty histogram.
pub fn decode_histogram(b64: &str) -> Result<Histogram<u64>, StatsError> {
    let mut out = new_histogram();
    if b64.is_empty() {
        return Ok(out);
    }
    let bytes = BASE64.decode(b64)?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| StatsError::Histogram(format!("{e:?}")))?;
    add_saturating(&mut out, &h);
    Ok(out)
}

/// Builds the snapshot of `metrics` at `ts_ms`: closes the latency
/// interval (the histograms are drained) and reads the counters.
pub fn take_snapshot(
    metrics: &Metrics,
    instance: &str,
    ts_ms: u64,
    interval_ms: u64,
    partitions_owned: u32,
    hot_symbols: Vec<HotSymbol>,
) -> StatsSnapshot {
    let mut histograms = EncodedHistograms::default();
    for kind in LatencyKind::ALL {
        let h = metrics.latency(kind).take_interval();
        histograms.set(kind, encode_histogram(&h));
    }
    StatsSnapshot {
        kind: StatsType::Stats,
        instance: instance.to_string(),
        ts_ms,
        interval_ms,
        partitions_owned,
        counters: metrics.counter_values(),
        histograms,
        hot_symbols,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_round_trip() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1000, 123_456, 59_000_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(decode_histogram("").unwrap().len(), 0);
        assert!(decode_histogram("!!!").is_err());
        assert!(decode_histogram("aGVsbG8=").is_err());
    }

    #[test]
    fn snapshot_json_has_the_agreed_shape() {
        let m = Metrics::new();
        m.counters.ticks_in.add(7);
        m.bad_input(crate::stats::BadInput::MalformedJson, &"not json");
        m.e2e_us.record_us(150);
        let s = take_snapshot(&m, "p1", 1_732_400_000_000, 1000, 22, vec![]);
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["instance"], "p1");
        assert_eq!(v["ts_ms"], 1_732_400_000_000u64);
        assert_eq!(v["interval_ms"], 1000);
        assert_eq!(v["partitions_owned"], 22);
        assert_eq!(v["counters"]["ticks_in"], 7);
        assert_eq!(v["counters"]["leases_lost"], 0);
        assert_eq!(v["counters"]["bad_input"]["malformed_json"], 1);
        for f in ["e2e_us", "forward_us", "flush_us"] {
            assert!(v["histograms"][f].is_string());
        }
        assert!(v["hot_symbols"].is_array());
        let back = StatsSnapshot::parse(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.histograms.decode(LatencyKind::E2e).unwrap().len(), 1);
        // The interval was drained.
        assert_eq!(m.e2e_us.take_interval().len(), 0);
    }

    #[test]
    fn foreign_messages_are_rejected() {
        for bad in [
            "",
            "garbage",
            "{}",
            r#"{"type":"snapshot","instance":"p1"}"#,
            r#"{"kind":"member_joined","ts_ms":1,"instance":"p2"}"#,
        ] {
            assert!(StatsSnapshot::parse(bad).is_err(), "{bad}");
        }
    }
}
