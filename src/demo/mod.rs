//! `tickshard demo`: one command that starts a private `redis-server`, the
//! feed simulator, N processors and the dashboard, prints the URL, and on
//! Ctrl-C stops everything (processors first, gracefully, so they hand
//! their partitions over), leaving no process or temporary file behind.
//!
//! The dashboard gets a [`control::DemoProcesses`] so its page can kill -9
//! a processor, start one more, or stop one gracefully.

mod children;
pub mod control;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::DemoArgs;
use crate::redis_cluster::{RedisCluster, RedisClusterError};
use crate::redis_server::{free_port, RedisServer, RedisServerError, RedisServerOptions};
pub use children::ManagedChild;
use control::{DemoProcesses, ProcessorTemplate};

/// The real S&P 500 universe the demo trades by default (the daily-bar
/// CSV beside feed-sim; its source is noted in `feed-sim/data/README.md`).
const SP500_UNIVERSE: &str = include_str!("../../feed-sim/data/sp500_universe.csv");

/// Environment variable naming the `feed-sim` binary (default: beside
/// the `tickshard` binary).
pub const FEED_SIM_ENV: &str = "TICKSHARD_FEED_SIM";

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The private Redis could not start.
    #[error(transparent)]
    Redis(#[from] RedisServerError),
    /// The private Redis Cluster could not start.
    #[error(transparent)]
    RedisCluster(#[from] RedisClusterError),
    /// A binary is missing.
    #[error("{0} not found; build the workspace first (`cargo build --release --workspace`) or set {FEED_SIM_ENV}")]
    MissingBinary(PathBuf),
    /// A process could not be spawned or a file written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The dashboard failed.
    #[error("dashboard: {0}")]
    Dashboard(String),
}

/// The Redis the demo started (stopped when dropped), if any: held, never
/// read.
#[allow(dead_code)]
enum PrivateRedis {
    None,
    Server(RedisServer),
    Cluster(RedisCluster),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// Runs the demo until `shutdown`.
pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> Result<(), DemoError> {
    let exe = std::env::current_exe().map_err(io("locating the tickshard binary"))?;
    let feed_sim = match std::env::var_os(FEED_SIM_ENV) {
        Some(p) => PathBuf::from(p),
        None => exe.with_file_name("feed-sim"),
    };
    if !feed_sim.is_file() {
        return Err(DemoError::MissingBinary(feed_sim));
    }
    let dir = tempfile::Builder::new()
        .prefix("tickshard-demo-")
        .tempdir()
        .map_err(io("creating the demo directory"))?;

    let private = RedisServerOptions {
        die_with_parent: true,
        ..Default::default()
    };
    let (redis_url, _redis) = match (&args.redis, args.redis_cluster) {
        (Some(url), _) => (url.clone(), PrivateRedis::None),
        (None, true) => {
            let cluster = RedisCluster::start_with(3, 1, private)?;
            let url = cluster.seed_urls();
            tracing::info!(nodes = %url, "private Redis Cluster started (3 masters, 3 replicas)");
            (url, PrivateRedis::Cluster(cluster))
        }
        (None, false) => {
            let server = RedisServer::start_with(private)?;
            tracing::info!(url = %server.url(), "private redis-server started");
            (server.url(), PrivateRedis::Server(server))
        }
    };
    let namespace = format!("demo{}", std::process::id());

    let feed_port = free_port().map_err(io("finding a free port for the feed"))?;
    let feed_url = format!("ws://127.0.0.1:{feed_port}");
    let mut feed_args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{feed_port}"),
        "--rate".to_owned(),
        args.rate.to_string(),
        "--mode".to_owned(),
        "round-robin".to_owned(),
    ];
    let universe = match (&args.universe, args.synthetic) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => {
            let path = dir.path().join("sp500_universe.csv");
            std::fs::write(&path, SP500_UNIVERSE).map_err(io("writing the S&P 500 universe"))?;
            Some(path)
        }
    };
    if let Some(path) = universe {
        feed_args.extend(["--universe".to_owned(), path.display().to_string()]);
    }
    let symbols = match (args.symbols, args.synthetic) {
        (Some(n), _) => Some(n),
        (None, true) => Some(500),
        (None, false) => None,
    };
    if let Some(n) = symbols {
        feed_args.extend(["--symbols".to_owned(), n.to_string()]);
    }
    let mut feed = ManagedChild::spawn("feed-sim", &feed_sim, &feed_args, dir.path())
        .map_err(io("starting feed-sim"))?;

    let processors = Arc::new(DemoProcesses::new(
        ProcessorTemplate {
            exe: exe.clone(),
            redis: redis_url.clone(),
            feed: feed_url,
            namespace: namespace.clone(),
            partitions: args.partitions.get(),
            log_dir: dir.path().to_path_buf(),
        },
        (args.processors as usize) + 8,
    ));
    for _ in 0..args.processors {
        processors
            .start_one()
            .await
            .map_err(|e| DemoError::Dashboard(e.to_string()))?;
    }

    let config = crate::dashboard::DashboardConfig::new(redis_url, &namespace, args.listen)
        .with_demo(processors.clone());
    let result = match crate::dashboard::start(config, shutdown.clone()).await {
        Ok(dashboard) => {
            print_banner(&args, dashboard.local_addr(), dir.path());
            dashboard
                .wait()
                .await
                .map_err(|e| DemoError::Dashboard(e.to_string()))
        }
        Err(e) => Err(DemoError::Dashboard(e.to_string())),
    };

    tracing::info!("stopping the demo: processors first, so they hand over cleanly");
    processors.stop_all(Duration::from_secs(5)).await;
    feed.stop(Duration::from_secs(2)).await;
    drop(_redis);
    tracing::info!("demo stopped; nothing left running");
    result
}

fn print_banner(args: &DemoArgs, dashboard: std::net::SocketAddr, logs: &Path) {
    println!();
    println!(
        "  tickshard demo: {} processors, feed at {} ticks/s",
        args.processors, args.rate
    );
    println!("  dashboard:  http://{dashboard}/");
    println!("  logs:       {} (removed on exit)", logs.display());
    println!("  Ctrl-C stops everything.");
    println!();
}
