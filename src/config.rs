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
use crate::operator::bars::BarWidth;
use crate::operator::{OperatorError, OperatorSet};
use crate::partition::DEFAULT_PARTITIONS;
use crate::store;

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
    /// For a Redis Cluster, any node's URL, or several comma-separated
    /// (found by itself).
    #[arg(
        long,
        env = "TICKSHARD_REDIS",
        default_value = "redis://127.0.0.1:6379/",
        hide_env_values = true
    )]
    pub redis: String,

    /// Redis password; replaces or adds the URL's. Prefer the environment
    /// variable: a command line is visible to every local user.
    #[arg(long, env = "TICKSHARD_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// PEM file of the CA that signed the Redis server's certificate, for a
    /// `rediss://` URL with a private CA (default: the system's roots).
    #[arg(long, env = "TICKSHARD_REDIS_CA", value_name = "FILE")]
    pub redis_ca: Option<std::path::PathBuf>,

    /// Cluster namespace: the prefix of every Redis key and channel.
    #[arg(long = "cluster", env = "TICKSHARD_CLUSTER", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
}

impl ClusterArgs {
    /// How to reach Redis.
    pub fn redis_config(&self) -> crate::redis_conn::RedisConfig {
        crate::redis_conn::RedisConfig::new(self.redis.clone())
            .with_password(self.redis_password.clone())
            .with_ca_file(self.redis_ca.clone())
    }
}

/// Who may use an HTTP server that listens beyond loopback.
#[derive(Debug, Clone, Args)]
pub struct HttpAuthArgs {
    /// Bearer token required on every route but `/healthz` (header
    /// `Authorization: Bearer TOKEN`, or `?token=TOKEN`); needed to listen
    /// on a non-loopback address. At least 16 characters of A-Z a-z 0-9 - . _ ~
    #[arg(
        long,
        env = "TICKSHARD_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub auth_token: Option<crate::http::auth::AuthToken>,

    /// Allow listening on a non-loopback address without --auth-token.
    #[arg(long, env = "TICKSHARD_INSECURE")]
    pub insecure: bool,
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

    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: HttpAuthArgs,

    /// Largest WebSocket message accepted on `/ingest`, in bytes; a bigger
    /// one closes the connection with code 1009.
    #[arg(long, env = "TICKSHARD_INGEST_MAX_BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1024..=(64 << 20)))]
    pub ingest_max_bytes: u64,

    /// Number of partitions P; fixed for the life of the cluster.
    #[arg(long, env = "TICKSHARD_PARTITIONS", default_value_t = NonZeroU32::new(DEFAULT_PARTITIONS).unwrap_or(NonZeroU32::MIN))]
    pub partitions: NonZeroU32,

    /// Lease time-to-live in milliseconds; failover takes about this long.
    #[arg(long, env = "TICKSHARD_LEASE_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub lease_ms: u64,

    /// How often dirty symbol state is flushed to Redis, in milliseconds.
    #[arg(long, env = "TICKSHARD_FLUSH_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub flush_ms: u64,

    /// OHLC bar widths in exchange time, comma-separated (`1s,1m,5m`; each
    /// a number and s, m or h, up to 24h). The first width's current bar
    /// is stored under the contract fields `open`, `high`, ...; completed
    /// bars go to the stream `{ns}:{p<p>}:out:bars_<width>:<SYMBOL>`.
    #[arg(long, env = "TICKSHARD_BARS", value_delimiter = ',', default_value = "1m", num_args = 1..)]
    pub bars: Vec<BarWidth>,

    /// Exponential moving averages of the price, comma-separated spans in
    /// ticks (`--ema 20,50` stores fields `ema_20` and `ema_50`).
    #[arg(long, env = "TICKSHARD_EMA", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ema: Vec<u32>,

    /// Volume-spike signal: a tick whose size is at least FACTOR times the
    /// average size (over `--volume-spike-window` ticks) is written to the
    /// stream `{ns}:{p<p>}:out:volume_spike:<SYMBOL>`.
    #[arg(long, env = "TICKSHARD_VOLUME_SPIKE", value_name = "FACTOR", value_parser = parse_factor)]
    pub volume_spike: Option<f64>,

    /// Length each operator output stream (bars included) is trimmed to,
    /// approximately (`XADD MAXLEN ~`): consumers that fall further behind
    /// lose the oldest entries.
    #[arg(long, env = "TICKSHARD_OUTPUT_MAX_LEN", default_value_t = store::DEFAULT_OUTPUT_MAX_LEN, value_parser = clap::value_parser!(u64).range(100..=100_000_000))]
    pub output_max_len: u64,

    /// Ticks averaged by the volume-spike signal.
    #[arg(long, env = "TICKSHARD_VOLUME_SPIKE_WINDOW", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub volume_spike_window: u32,

    /// How long a sequence gap may stay open before a replay is asked for, in milliseconds.
    #[arg(long, env = "TICKSHARD_GAP_REPLAY_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub gap_replay_ms: u64,

    /// How long a gap may go without progress before it is skipped (counted and logged), in milliseconds.
    #[arg(long, env = "TICKSHARD_GAP_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub gap_timeout_ms: u64,

    /// Most symbols written by one flush script: a flush is cut into
    /// scripts this small so none holds Redis (which also carries the
    /// forwarded ticks and the leases) for long.
    #[arg(long, env = "TICKSHARD_FLUSH_CHUNK", default_value_t = store::DEFAULT_FLUSH_CHUNK as u32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub flush_chunk: u32,

    /// Flow-control window: most ticks forwarded to one instance and not
    /// yet processed by it. A full window pauses reading the feed, so the
    /// direct path never runs ahead of the forwarded one by more.
    #[arg(long, env = "TICKSHARD_FLOW_WINDOW", default_value_t = 32_768, value_parser = clap::value_parser!(u64).range(1024..=16_777_216))]
    pub flow_window: u64,

    /// Threads of the processor's async runtime. One is best when the
    /// processor shares its cores with peers, Redis or the feed (fewer
    /// cross-thread wake-ups); more help only a processor with cores of
    /// its own.
    #[arg(long, env = "TICKSHARD_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub worker_threads: u32,

    /// Start even when Redis may evict keys (`maxmemory` set with a
    /// `maxmemory-policy` other than `noeviction`), which is refused by
    /// default: an evicted lease or epoch counter can put two writers on
    /// one partition.
    #[arg(long, env = "TICKSHARD_ALLOW_EVICTION")]
    pub allow_eviction: bool,
}

impl ProcessorArgs {
    /// The lease TTL.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// The built-in operators these options ask for.
    pub fn operators(&self) -> Result<OperatorSet, OperatorError> {
        let spike = self
            .volume_spike
            .map(|factor| (self.volume_spike_window, factor));
        OperatorSet::builtin(&self.bars, &self.ema, spike)
    }
}

/// A volume-spike factor: a finite number above 1.
fn parse_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 1.0 => Ok(f),
        _ => Err(format!("{s:?} is not a factor above 1 (e.g. 5)")),
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

    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: HttpAuthArgs,

    /// Most browsers (WebSocket clients of `/ws`) served at once.
    #[arg(long, env = "TICKSHARD_DASHBOARD_MAX_CLIENTS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_clients: u32,
}

/// `tickshard demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of processor instances to start.
    #[arg(long, env = "TICKSHARD_DEMO_PROCESSORS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub processors: u32,

    /// Number of symbols the simulator trades: the N most active of the
    /// universe (default: all of it), or N synthetic ones with --synthetic
    /// (default 500).
    #[arg(long, env = "TICKSHARD_DEMO_SYMBOLS")]
    pub symbols: Option<u32>,

    /// Feed rate in ticks per second.
    #[arg(long, env = "TICKSHARD_DEMO_RATE", default_value_t = 20_000)]
    pub rate: u64,

    /// Symbol universe for the simulator (the S&P 500 daily-bar CSV
    /// format). Default: the real S&P 500 universe built into the binary
    /// (`feed-sim/data/sp500_universe.csv`).
    #[arg(long, env = "TICKSHARD_DEMO_UNIVERSE", conflicts_with = "synthetic")]
    pub universe: Option<std::path::PathBuf>,

    /// Trade synthetic symbols (`S000000`, ...) instead of a real universe.
    #[arg(long, env = "TICKSHARD_DEMO_SYNTHETIC")]
    pub synthetic: bool,

    /// Address of the dashboard.
    #[arg(long, env = "TICKSHARD_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Use this Redis (or Redis Cluster) instead of starting a private
    /// redis-server.
    #[arg(long, env = "TICKSHARD_DEMO_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// Start a private Redis Cluster (3 masters, 3 replicas) instead of a
    /// single redis-server.
    #[arg(long, env = "TICKSHARD_DEMO_REDIS_CLUSTER", conflicts_with = "redis")]
    pub redis_cluster: bool,

    /// Number of partitions.
    #[arg(long, env = "TICKSHARD_DEMO_PARTITIONS", default_value_t = NonZeroU32::new(DEFAULT_PARTITIONS).unwrap_or(NonZeroU32::MIN))]
    pub partitions: NonZeroU32,
}
