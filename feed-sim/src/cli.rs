//! The command line: every option of `feed-sim`, each with its environment
//! variable, checked once at start-up into a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// How batches are spread over the connected clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Mode {
    /// Each batch to the next connected client in turn.
    #[default]
    RoundRobin,
    /// Each batch to a client picked at random.
    Random,
    /// Each tick to the connection of its partition's lease owner (the
    /// client whose `hello` id is the owner), round-robin where the owner is
    /// unknown or not connected. Needs `--redis`.
    OwnerAware,
}

impl Mode {
    /// The name used on the command line and in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::RoundRobin => "round-robin",
            Mode::Random => "random",
            Mode::OwnerAware => "owner-aware",
        }
    }
}

/// An exchange feed simulator: generates realistic ticks (or replays a CSV
/// of real trades) and serves them over WebSocket, each batch to one
/// connected client, with gap fill (`replay`), sequence announcements and a
/// ground-truth record.
#[derive(Debug, Clone, Parser)]
#[command(name = "feed-sim", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on for WebSocket clients; port 0 picks a free port
    /// (the bound address is logged as `listening addr=...`).
    #[arg(long, env = "TICKSHARD_FEED_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Serve Prometheus metrics at `http://ADDR/metrics` (ticks sent per
    /// client, replays served, clients connected); port 0 picks a free
    /// port (logged as `metrics http listening addr=...`). Off by default.
    /// No authentication: keep it on loopback or a private network, as the
    /// feed itself.
    #[arg(long, env = "TICKSHARD_FEED_METRICS", value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Number of symbols to generate. With --universe: the N most active
    /// symbols of the file, topped up with synthetic ones when N is larger
    /// than the file. Default: the whole universe, or 100 synthetic symbols.
    #[arg(long, env = "TICKSHARD_FEED_SYMBOLS")]
    pub symbols: Option<usize>,

    /// Symbol universe: a daily-bars CSV `Date,Symbol,Open,High,Low,Close,Volume`
    /// (e.g. feed-sim/data/sp500_universe.csv). Start price = the symbol's
    /// last close, activity weight = its average volume.
    #[arg(long, env = "TICKSHARD_FEED_UNIVERSE", conflicts_with = "input")]
    pub universe: Option<PathBuf>,

    /// Replay real trades from a CSV `timestamp,symbol,price,size` instead of
    /// generating ticks (timestamps ISO 8601 with offset). Malformed rows are
    /// skipped and reported in the summary.
    #[arg(long, env = "TICKSHARD_FEED_INPUT")]
    pub input: Option<PathBuf>,

    /// With --input: replay at X times real time (by the trades'
    /// timestamps). Default: as fast as possible (or --rate).
    #[arg(long, env = "TICKSHARD_FEED_SPEED")]
    pub speed: Option<f64>,

    /// Target rate in ticks per second; 0 or absent = unthrottled.
    #[arg(long, env = "TICKSHARD_FEED_RATE")]
    pub rate: Option<f64>,

    /// Stop after sending N ticks.
    #[arg(long, env = "TICKSHARD_FEED_TICKS")]
    pub ticks: Option<u64>,

    /// Stop after S seconds of sending (fractions allowed).
    #[arg(long, env = "TICKSHARD_FEED_DURATION")]
    pub duration: Option<f64>,

    /// Distribution of batches over connected clients.
    #[arg(long, env = "TICKSHARD_FEED_MODE", value_enum, default_value_t = Mode::RoundRobin)]
    pub mode: Mode,

    /// Redis URL, for --mode owner-aware (`redis://[user:password@]host:port/`,
    /// or `rediss://` for TLS); for a Redis Cluster, any node's URL or
    /// several comma-separated.
    #[arg(long, env = "TICKSHARD_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// Redis password; replaces or adds the URL's. Prefer the environment
    /// variable: a command line is visible to every local user.
    #[arg(long, env = "TICKSHARD_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// PEM file of the CA that signed the Redis server's certificate (`rediss://`).
    #[arg(long, env = "TICKSHARD_REDIS_CA", value_name = "FILE")]
    pub redis_ca: Option<PathBuf>,

    /// Cluster namespace of the Redis keys.
    #[arg(long, env = "TICKSHARD_CLUSTER", default_value = "tickshard")]
    pub cluster: String,

    /// Random seed: the same seed gives the same symbols, prices and sizes.
    #[arg(long, env = "TICKSHARD_FEED_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Write the ground truth (per-symbol count, volume, last seq, last
    /// price, VWAP, first/last exchange time) to FILE once the last tick has
    /// been sent (or at shutdown if stopped earlier).
    #[arg(long, env = "TICKSHARD_FEED_RECORD")]
    pub record: Option<PathBuf>,

    /// Most ticks in one batch (one frame to one client).
    #[arg(long, env = "TICKSHARD_FEED_BATCH", default_value_t = 256)]
    pub batch: usize,

    /// Ticks kept for replay (about 20 bytes each). Past it, each new tick
    /// evicts the oldest kept tick of its symbol.
    #[arg(
        long,
        env = "TICKSHARD_FEED_REPLAY_LIMIT",
        default_value_t = 20_000_000
    )]
    pub replay_limit: usize,

    /// Most ticks one replay request may ask for.
    #[arg(
        long,
        env = "TICKSHARD_FEED_REPLAY_MAX_RANGE",
        default_value_t = 100_000
    )]
    pub replay_max_range: u64,

    /// Largest inbound WebSocket message accepted, in bytes; a bigger one
    /// closes the connection with code 1009.
    #[arg(long, env = "TICKSHARD_FEED_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,

    /// Batches queued per connection before the feed waits for it.
    #[arg(long, env = "TICKSHARD_FEED_QUEUE", default_value_t = 64)]
    pub queue: usize,

    /// Interval of the `seqs` announcements, in milliseconds.
    #[arg(long, env = "TICKSHARD_FEED_SEQS_MS", default_value_t = 1000)]
    pub seqs_ms: u64,

    /// Interval of the lease poll in owner-aware mode, in milliseconds.
    #[arg(long, env = "TICKSHARD_FEED_OWNER_POLL_MS", default_value_t = 150)]
    pub owner_poll_ms: u64,

    /// Exit by itself this many seconds after the last tick was sent
    /// (default: keep serving replays until stopped).
    #[arg(long, env = "TICKSHARD_FEED_EXIT_AFTER")]
    pub exit_after: Option<f64>,

    /// Hold the first tick until this many clients have said `hello`
    /// (a benchmark starts the clock with every processor connected).
    /// Later, one connected client is enough to go on sending.
    #[arg(long, env = "TICKSHARD_FEED_WAIT_CLIENTS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub wait_clients: u64,
}

/// Where ticks come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// Generated ticks.
    Generate {
        /// Universe file, if any.
        universe: Option<PathBuf>,
        /// Symbol count, if given.
        symbols: Option<usize>,
    },
    /// A CSV of trades.
    Input {
        /// The file.
        path: PathBuf,
        /// Times real time, if paced by timestamps.
        speed: Option<f64>,
    },
}

/// Validated configuration of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Address of the `/metrics` server, if any.
    pub metrics: Option<SocketAddr>,
    /// Tick source.
    pub source: SourceConfig,
    /// Ticks per second, `None` = unthrottled.
    pub rate: Option<f64>,
    /// Stop after this many ticks.
    pub ticks: Option<u64>,
    /// Stop after sending this long.
    pub duration: Option<Duration>,
    /// Distribution mode.
    pub mode: Mode,
    /// How to reach Redis (owner-aware).
    pub redis: Option<tickshard::redis_conn::RedisConfig>,
    /// Cluster namespace.
    pub cluster: String,
    /// Random seed.
    pub seed: u64,
    /// Ground-truth file.
    pub record: Option<PathBuf>,
    /// Max ticks per batch.
    pub batch: usize,
    /// Replay store limit, in ticks.
    pub replay_limit: usize,
    /// Max ticks per replay request.
    pub replay_max_range: u64,
    /// Inbound message cap in bytes.
    pub max_message_bytes: usize,
    /// Per-connection queue, in batches.
    pub queue: usize,
    /// `seqs` interval.
    pub seqs_interval: Duration,
    /// Lease poll interval.
    pub owner_poll: Duration,
    /// Exit this long after the last tick, if set.
    pub exit_after: Option<Duration>,
    /// Clients to wait for before the first tick.
    pub wait_clients: usize,
}

/// A command line that parses but makes no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// An option out of its range.
    #[error("--{option}: {reason}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
}

fn invalid(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        option,
        reason: reason.into(),
    }
}

fn positive_secs(option: &'static str, v: f64) -> Result<Duration, ConfigError> {
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(invalid(option, format!("expected seconds > 0, got {v}")));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Config {
    /// Defaults for an in-process run (tests, benchmarks): a free loopback
    /// port, 100 synthetic symbols, unthrottled, round-robin.
    pub fn for_tests() -> Self {
        Args::parse_from(["feed-sim", "--listen", "127.0.0.1:0"])
            .into_config()
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl Args {
    /// Checks the options and builds the run's [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let rate = match self.rate {
            None => None,
            Some(0.0) => None,
            Some(r) if r.is_finite() && r > 0.0 => Some(r),
            Some(r) => return Err(invalid("rate", format!("expected ticks/s >= 0, got {r}"))),
        };
        let duration = self
            .duration
            .map(|d| positive_secs("duration", d))
            .transpose()?;
        let exit_after = self
            .exit_after
            .map(|d| {
                if (0.0..1e9).contains(&d) {
                    Ok(Duration::from_secs_f64(d))
                } else {
                    Err(invalid(
                        "exit-after",
                        format!("expected seconds >= 0, got {d}"),
                    ))
                }
            })
            .transpose()?;
        if self.ticks.is_some() && duration.is_some() {
            return Err(invalid("ticks", "give --ticks or --duration, not both"));
        }
        let source = match self.input {
            Some(path) => {
                if self.symbols.is_some() {
                    return Err(invalid("symbols", "not used with --input"));
                }
                if let Some(s) = self.speed {
                    if !s.is_finite() || s <= 0.0 {
                        return Err(invalid("speed", format!("expected a factor > 0, got {s}")));
                    }
                }
                SourceConfig::Input {
                    path,
                    speed: self.speed,
                }
            }
            None => {
                if self.speed.is_some() {
                    return Err(invalid("speed", "only used with --input"));
                }
                if self.symbols == Some(0) {
                    return Err(invalid("symbols", "expected at least 1"));
                }
                SourceConfig::Generate {
                    universe: self.universe,
                    symbols: self.symbols,
                }
            }
        };
        if self.batch == 0 || self.batch > 65_536 {
            return Err(invalid("batch", "expected 1..=65536 ticks"));
        }
        if self.queue == 0 {
            return Err(invalid("queue", "expected at least 1"));
        }
        if self.replay_max_range == 0 {
            return Err(invalid("replay-max-range", "expected at least 1"));
        }
        if self.max_message_bytes < 256 {
            return Err(invalid("max-message-bytes", "expected at least 256"));
        }
        if self.seqs_ms == 0 || self.owner_poll_ms == 0 {
            return Err(invalid("seqs-ms", "intervals must be at least 1 ms"));
        }
        if self.mode == Mode::OwnerAware && self.redis.is_none() {
            return Err(invalid(
                "mode",
                "owner-aware needs --redis URL (or TICKSHARD_REDIS)",
            ));
        }
        Ok(Config {
            listen: self.listen,
            metrics: self.metrics,
            source,
            rate,
            ticks: self.ticks,
            duration,
            mode: self.mode,
            redis: self.redis.map(|url| {
                tickshard::redis_conn::RedisConfig::new(url)
                    .with_password(self.redis_password)
                    .with_ca_file(self.redis_ca)
            }),
            cluster: self.cluster,
            seed: self.seed,
            record: self.record,
            batch: self.batch,
            replay_limit: self.replay_limit,
            replay_max_range: self.replay_max_range,
            max_message_bytes: self.max_message_bytes,
            queue: self.queue,
            seqs_interval: Duration::from_millis(self.seqs_ms),
            owner_poll: Duration::from_millis(self.owner_poll_ms),
            exit_after,
            wait_clients: usize::try_from(self.wait_clients).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["feed-sim"];
        all.extend_from_slice(args);
        Args::try_parse_from(all).unwrap().into_config()
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.mode, Mode::RoundRobin);
        assert_eq!(c.rate, None);
        assert_eq!(c.cluster, "tickshard");
        assert_eq!(c.metrics, None);
        let c = parse(&["--metrics", "127.0.0.1:0"]).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:0".parse().unwrap()));
        assert!(Args::try_parse_from(["feed-sim", "--metrics", "nowhere"]).is_err());
    }

    #[test]
    fn rate_zero_means_unthrottled() {
        assert_eq!(parse(&["--rate", "0"]).unwrap().rate, None);
        assert_eq!(parse(&["--rate", "500"]).unwrap().rate, Some(500.0));
        assert!(parse(&["--rate=-1"]).is_err());
    }

    #[test]
    fn contradictions_are_refused() {
        assert!(parse(&["--ticks", "5", "--duration", "1"]).is_err());
        assert!(parse(&["--speed", "2"]).is_err());
        assert!(parse(&["--mode", "owner-aware"]).is_err());
        assert!(parse(&["--mode", "owner-aware", "--redis", "redis://x/"]).is_ok());
        assert!(parse(&["--input", "x.csv", "--symbols", "3"]).is_err());
        assert!(parse(&["--symbols", "0"]).is_err());
    }
}
