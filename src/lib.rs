//! tickshard: a horizontally scaled stock-tick stream processor.
//!
//! N processor instances share the symbol universe. Each claims partitions
//! through fenced leases in Redis, applies the ticks of its own symbols
//! (one writer per symbol), and forwards ticks that reached the wrong
//! instance to their owner over Redis pub/sub.
//!
//! # Modules
//!
//! The tick model and wire formats, used by everything:
//! - [`tick`]: `Symbol`, fixed-point `Price`, `Tick`, and the ids
//!   `PartitionId`, `Epoch`, `InstanceId`.
//! - [`totals`]: exact per-symbol aggregates (count, volume, VWAP), shared
//!   by the feed's ground truth and the engine.
//! - [`truth`]: the ground-truth record file (`feed-sim --record`) and the
//!   exact check of stored state against it.
//! - [`codec`]: the JSON feed messages and the binary batch encoding.
//! - [`partition`]: the stable `symbol → partition` function.
//! - [`keys`]: every Redis key and channel name.
//!
//! Ownership and messaging (knows nothing of ticks):
//! - [`cluster`]: membership, fenced leases, balanced sticky assignment,
//!   handover and failover, the ownership view, inbox messages and
//!   request/reply between instances.
//!
//! Process plumbing:
//! - [`clock`]: the wall clock as milliseconds or nanoseconds since the
//!   Unix epoch.
//! - [`config`]: command-line options of the subcommands.
//! - [`counter`]: the one cumulative counter type.
//! - [`redis_conn`]: every Redis client is built here (credentials, TLS
//!   with a private CA, passwords kept out of logs and errors).
//! - [`shutdown`]: Ctrl-C / SIGTERM → cancellation token.
//! - [`retry`]: backoff of the retry loops, steered by the errors'
//!   classifiers.
//! - [`logging`]: tracing set-up.
//! - [`stats`]: counters and latency histograms of the data path, the
//!   once-a-second `{ns}:stats` message and the metric families of
//!   `/metrics`.
//! - [`dashboard`]: the live dashboard server (merges every instance's
//!   stats, serves the page and a WebSocket stream).
//! - [`processor`]: the `tickshard processor` service.
//! - [`http`]: its HTTP endpoints.
//! - [`demo`]: `tickshard demo`, the whole cluster on one machine.
//! - [`redis_server`]: a private `redis-server` child, for the demo, tests
//!   and benchmarks; [`redis_cluster`]: a private Redis Cluster of them.
//!
//! # Data flow
//!
//! ```text
//! feed ─WS─▶ ingest ─▶ router ─┬─ owned ─▶ engine ─▶ store (fenced HSET)
//!                              └─ not owned ─▶ forward ─PUBLISH─▶ owner's inbox
//! ```

pub mod codec;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod engine;
pub mod forward;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod live;
pub mod logging;
pub mod operator;
pub mod partition;
pub mod processor;
pub mod query;
pub mod redis_cluster;
pub mod redis_server;
pub mod router;
pub mod shutdown;
pub mod stats;
pub mod store;
pub mod tick;
pub mod totals;
pub mod truth;
pub mod worker;

/// The cluster layer, its own crate ([`tickshard_cluster`]), and the
/// plumbing it shares with tickshard.
pub use tickshard_cluster as cluster;
pub use tickshard_cluster::{clock, counter, redis_conn, retry};
