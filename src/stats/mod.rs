//! Observability of a processor: counters and latency histograms the data
//! path updates ([`Metrics`]), the once-a-second `{ns}:stats` message
//! ([`StatsSnapshot`], published by [`run_publisher`]), and the metric
//! families of `/metrics` ([`exposition`], rendered by [`TextFormat`]).
//!
//! What the data path calls, from any task:
//!
//! ```
//! use tickshard::stats::{BadInput, Metrics};
//! let m = Metrics::new();
//! m.counters.ticks_in.add(100);        // any counter: .inc() / .add(n)
//! m.bad_input(BadInput::MalformedJson, &"feed: not JSON"); // e.g. CodecError::kind()
//! m.e2e_us.record_us(180);             // or .record_since(Instant)
//! ```

pub mod bad_input;
pub mod exposition;
pub mod latency;
pub mod metrics;
pub mod publisher;
pub mod snapshot;
pub mod text_format;

pub use bad_input::BadInput;
pub use exposition::{
    metric_names, processor_registry, ClusterCollector, ClusterValues, MetricsCollector,
    LATENCY_BUCKETS_SECONDS,
};
pub use latency::{new_histogram, LatencyKind, LatencyRecorder};
pub use metrics::{CounterValues, Counters, Metrics};
pub use publisher::{run_publisher, FnSource, PublisherConfig, StatsSource};
pub use snapshot::{
    decode_histogram, encode_histogram, take_snapshot, EncodedHistograms, HotSymbol, StatsError,
    StatsSnapshot,
};
pub use text_format::TextFormat;
