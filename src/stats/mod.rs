//! Observability of a processor: counters and latency histograms the data
//! path updates ([`Metrics`]), the once-a-second `{ns}:stats` message
//! ([`StatsSnapshot`], published by [`run_publisher`]), and the Prometheus
//! text for `/metrics` ([`render_prometheus`]).
//!
//! What the data path calls, from any task:
//!
//! ```
//! use tickshard::stats::Metrics;
//! let m = Metrics::new();
//! m.counters.ticks_in.add(100);        // any counter: .inc() / .add(n)
//! m.bad_input("malformed_json");       // e.g. CodecError::kind()
//! m.e2e_us.record_us(180);             // or .record_since(Instant)
//! ```

pub mod latency;
pub mod metrics;
pub mod prometheus;
pub mod publisher;
pub mod snapshot;

pub use latency::{new_histogram, LatencyKind, LatencyRecorder};
pub use metrics::{CounterValues, Counters, Metrics, BAD_INPUT_KINDS};
pub use prometheus::{metric_names, render_prometheus};
pub use publisher::{now_ms, run_publisher, FnSource, PublisherConfig, StatsSource};
pub use snapshot::{
    decode_histogram, encode_histogram, take_snapshot, EncodedHistograms, HotSymbol, StatsError,
    StatsSnapshot,
};
