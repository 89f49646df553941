//! Command-line and environment configuration of the `tickshard`
//! subcommands, checked once at start-up into typed values.
//!
//! Every option also reads a `TICKSHARD_*` environment variable; `--help`
//! lists both.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::keys::DEFAULT_NAMESPACE;
use crate::partition::DEFAULT_PARTITIONS;

/// tickshard: a horizontally scaled stock-tick stream processor.
#[derive(Debug, Parser)]
#[command(name = "tickshard", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join the cluster, own a share of the partitions and process ticks.
    Processor(ProcessorArgs),
    /// Serve the live dashboard (page at `/`, snapshots at `/ws`).
    Dashboard(DashboardArgs),
    /// Start Redis, the feed simulator, N processors and the dashboard.
    Demo(DemoArgs),
}

/// Options shared by everything that talks to the cluster.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Redis URL (`redis://[user:password@]host:port/[db]`, or `rediss://` for TLS).
    #[arg(
        long,
        env = "TICKSHARD_REDIS",
        default_value = "redis://127.0.0.1:6379/",
        hide_env_values = true
    )]
    pub redis: String,

    /// Cluster namespace: the prefix of every Redis key and channel.
    #[arg(long = "cluster", env = "TICKSHARD_CLUSTER", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// `tickshard processor`.
#[derive(Debug, Clone, Args)]
pub struct ProcessorArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// WebSocket address of the feed to consume (e.g. `ws://127.0.0.1:9000`).
    #[arg(long, env = "TICKSHARD_FEED")]
    pub feed: Option<String>,

    /// Instance id, unique in the cluster (default: `p-<pid>-<random>`).
    #[arg(long, env = "TICKSHARD_ID")]
    pub id: Option<String>,

    /// Address of the HTTP server (`/metrics`, `/healthz`, `/api/...`, `/ingest`).
    #[arg(long, env = "TICKSHARD_HTTP", default_value = "127.0.0.1:0")]
    pub http: SocketAddr,

    /// Number of partitions P; fixed for the life of the cluster.
    #[arg(long, env = "TICKSHARD_PARTITIONS", default_value_t = NonZeroU32::new(DEFAULT_PARTITIONS).unwrap_or(NonZeroU32::MIN))]
    pub partitions: NonZeroU32,

    /// Lease time-to-live in milliseconds; failover takes about this long.
    #[arg(long, env = "TICKSHARD_LEASE_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub lease_ms: u64,

    /// How often dirty symbol state is flushed to Redis, in milliseconds.
    #[arg(long, env = "TICKSHARD_FLUSH_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub flush_ms: u64,

    /// Length of an OHLC bar, in seconds of exchange time.
    #[arg(long, env = "TICKSHARD_BAR_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub bar_secs: u64,

    /// How long a sequence gap may stay open before a replay is asked for, in milliseconds.
    #[arg(long, env = "TICKSHARD_GAP_REPLAY_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub gap_replay_ms: u64,

    /// How long a gap may go without progress before it is skipped (counted and logged), in milliseconds.
    #[arg(long, env = "TICKSHARD_GAP_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub gap_timeout_ms: u64,
}

impl ProcessorArgs {
    /// The lease TTL.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

/// `tickshard dashboard`.
#[derive(Debug, Clone, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Address to serve the page and the WebSocket stream on.
    #[arg(
        long,
        env = "TICKSHARD_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
}

/// `tickshard demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of processor instances to start.
    #[arg(long, env = "TICKSHARD_DEMO_PROCESSORS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub processors: u32,

    /// Number of symbols the simulator trades (ignored with --universe).
    #[arg(long, env = "TICKSHARD_DEMO_SYMBOLS", default_value_t = 500)]
    pub symbols: u32,

    /// Feed rate in ticks per second.
    #[arg(long, env = "TICKSHARD_DEMO_RATE", default_value_t = 20_000)]
    pub rate: u64,

    /// Symbol universe for the simulator (the S&P 500 daily-bar CSV format),
    /// e.g. `feed-sim/data/sp500_universe.csv`; synthetic symbols without it.
    #[arg(long, env = "TICKSHARD_DEMO_UNIVERSE")]
    pub universe: Option<std::path::PathBuf>,

    /// Address of the dashboard.
    #[arg(long, env = "TICKSHARD_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Use this Redis instead of starting a private redis-server.
    #[arg(long, env = "TICKSHARD_DEMO_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// Number of partitions.
    #[arg(long, env = "TICKSHARD_DEMO_PARTITIONS", default_value_t = NonZeroU32::new(DEFAULT_PARTITIONS).unwrap_or(NonZeroU32::MIN))]
    pub partitions: NonZeroU32,
}
