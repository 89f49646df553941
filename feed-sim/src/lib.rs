//! `feed-sim`: an exchange feed simulator for tickshard.
//!
//! It generates realistic ticks (or replays a CSV of real trades), numbers
//! every tick per symbol from 1, and serves them over WebSocket, each batch
//! to ONE connected client as a load balancer would. It keeps every tick
//! for gap fill, announces the last seq of every symbol about once a
//! second, and writes the ground truth of the run.
//!
//! # Modules
//!
//! - [`cli`]: options and the validated [`Config`].
//! - Tick sources: [`universe`] (real or synthetic symbols), [`generator`]
//!   (random walk, lots, bursts), [`csv_input`] (real trades), behind
//!   [`source`].
//! - [`pacing`]: token bucket for `--rate`, replay clock for `--speed`.
//! - [`replay_store`]: numbering and the compact per-symbol tick store.
//! - Distribution: [`distribute`] (pure decisions) over the cluster
//!   layer's ownership map, kept current by [`owners`] (its observer),
//!   [`hub`] (live connections).
//! - [`feed`]: the loop source → store → distribution.
//! - [`server`] and [`connection`]: WebSocket accept loop and clients.
//! - [`announce`]: `seqs` messages.
//! - [`summary`]: the exit line (the `--record` file is
//!   `tickshard::truth`'s).
//! - [`metrics`]: `/metrics` (with `--metrics ADDR`).
//!
//! ```text
//! source ─▶ pacing ─▶ feed loop ─▶ replay store (seq) ─▶ ground truth
//!                          └─▶ distribute ─▶ hub ─▶ connection writer ─WS─▶ client
//!   client ─WS─▶ connection reader ─▶ replay store (replay) ─▶ writer
//! ```

pub mod announce;
pub mod cli;
pub mod connection;
pub mod csv_input;
pub mod distribute;
pub mod feed;
pub mod generator;
pub mod hub;
pub mod metrics;
pub mod owners;
pub mod pacing;
pub mod replay_store;
pub mod server;
pub mod source;
pub mod state;
pub mod summary;
pub mod universe;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tickshard::keys::Keys;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use cli::{Args, Config, Mode, SourceConfig};
pub use summary::Summary;

use crate::feed::{FeedLoop, LoopConfig};
use crate::hub::Hub;
use crate::replay_store::ReplayStore;
use crate::source::Source;
use crate::state::Shared;
use crate::summary::{BadClientSummary, Counters, DistributionSummary, ReplaySummary};

/// Why the feed could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsBind {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
    /// The universe file is unusable.
    #[error(transparent)]
    Universe(#[from] universe::UniverseError),
    /// The input file is unusable.
    #[error(transparent)]
    Input(#[from] csv_input::CsvError),
    /// Redis unreachable at start (owner-aware).
    #[error("owner-aware mode cannot read the leases from {url}: {source}")]
    Redis {
        /// URL, without credentials.
        url: String,
        /// Error.
        source: tickshard::cluster::ClusterError,
    },
    /// The record file could not be written.
    #[error("cannot write the record {path}: {source}")]
    Record {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
}

/// A bound, ready feed.
pub struct Feed {
    config: Config,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    source: Source,
    owners: Option<(
        tickshard::cluster::observer::Observer,
        tickshard::cluster::observer::OwnershipMap,
    )>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("listen", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

fn build_source(config: &Config) -> Result<Source, FeedError> {
    Ok(match &config.source {
        SourceConfig::Generate { universe, symbols } => {
            let real = match universe {
                Some(path) => universe::load(path)?,
                None => Vec::new(),
            };
            let specs = universe::build(real, *symbols, config.seed);
            Source::Generate(Box::new(generator::Generator::new(specs, config.seed)))
        }
        SourceConfig::Input { path, .. } => Source::Csv {
            reader: csv_input::CsvReader::open(path)?,
            bad: source::BadRows::default(),
        },
    })
}

impl Feed {
    /// Loads the source, connects to Redis (owner-aware) and binds the
    /// listen address.
    pub async fn bind(config: Config) -> Result<Self, FeedError> {
        let source = build_source(&config)?;
        let owners = match (&config.mode, &config.redis) {
            (Mode::OwnerAware, Some(redis)) => {
                let keys = Keys::new(&config.cluster);
                let (observer, map) =
                    owners::connect(redis, &keys)
                        .await
                        .map_err(|source| FeedError::Redis {
                            url: redis.redacted_url(),
                            source,
                        })?;
                Some((observer, map))
            }
            _ => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| FeedError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let metrics = match config.metrics {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| FeedError::MetricsBind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            config,
            listener,
            metrics,
            source,
            owners,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The bound address of the `/metrics` server, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` (or `--exit-after` past the last tick) and
    /// returns the summary.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Summary, FeedError> {
        let started = Instant::now();
        let config = self.config;
        let (returns_tx, returns_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            hub: Hub::default(),
            store: RwLock::new(ReplayStore::new(config.replay_limit)),
            counters: Counters::default(),
            ticks_sent: metrics::TicksSent::default(),
            returns: returns_tx,
            pending: AtomicU64::new(0),
            replay_max_range: config.replay_max_range,
            max_message_bytes: config.max_message_bytes,
            queue: config.queue,
            next_conn: AtomicU64::new(1),
        });
        let tasks = shutdown.child_token();
        let server = tokio::spawn(server::accept_loop(
            self.listener,
            shared.clone(),
            tasks.clone(),
        ));
        let metrics_server = self.metrics.map(|listener| {
            tokio::spawn(metrics::serve(
                listener,
                metrics::registry(shared.clone()),
                tasks.clone(),
            ))
        });
        let (done_tx, done_rx) = watch::channel(false);
        let announcer = tokio::spawn(announce::run(
            shared.clone(),
            config.seqs_interval,
            done_rx,
            tasks.clone(),
        ));
        let owners_rx = self.owners.map(|(observer, map)| {
            let (tx, rx) = watch::channel(Arc::new(map));
            tokio::spawn(owners::run(
                observer,
                config.owner_poll,
                tx,
                shared.clone(),
                tasks.clone(),
            ));
            rx
        });
        let speed = match config.source {
            SourceConfig::Input { speed, .. } => speed,
            SourceConfig::Generate { .. } => None,
        };
        let feed = FeedLoop::new(
            shared.clone(),
            self.source,
            LoopConfig {
                batch: config.batch,
                rate: config.rate,
                speed,
                ticks: config.ticks,
                duration: config.duration,
                mode: config.mode,
                seed: config.seed,
                wait_clients: config.wait_clients,
            },
            owners_rx,
            returns_rx,
            tasks.clone(),
        );
        let outcome = feed.run().await;
        let mut record_error = None;
        if let Some(path) = &config.record {
            match outcome.truth.record().write_atomic(path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), ticks = outcome.truth.ticks(), "ground truth written")
                }
                Err(source) => {
                    tracing::error!(path = %path.display(), error = %source, "cannot write the ground truth");
                    record_error = Some(FeedError::Record {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        if outcome.completed {
            tracing::info!(ticks = outcome.truth.ticks(), "all ticks sent");
            let _ = done_tx.send(true);
            match config.exit_after {
                Some(after) => {
                    tokio::select! {
                        biased;
                        _ = tasks.cancelled() => {}
                        _ = tokio::time::sleep(after) => {}
                    }
                }
                None => tasks.cancelled().await,
            }
        }
        tasks.cancel();
        let _ = server.await;
        let _ = announcer.await;
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        let c = &shared.counters;
        let (kept, evicted, symbols) = shared
            .store
            .read()
            .map(|s| (s.kept() as u64, s.evicted(), s.symbols() as u64))
            .unwrap_or_default();
        let send_duration = match (outcome.send_start, outcome.send_end) {
            (Some(s), Some(e)) => e.duration_since(s),
            (Some(s), None) => s.elapsed(),
            _ => Duration::ZERO,
        };
        let generated = c.ticks_generated.get();
        let by_kind = c.bad_client_by_kind();
        let summary = Summary {
            kind: "summary",
            mode: config.mode.as_str(),
            ticks_generated: generated,
            ticks_sent: c.ticks_sent.get(),
            batches_sent: c.batches_sent.get(),
            symbols,
            completed: outcome.completed,
            distribution: DistributionSummary {
                round_robin: c.round_robin.get(),
                random: c.random.get(),
                owner_hits: c.owner_hits.get(),
                fallbacks: c.fallbacks.get(),
                reassigned: c.reassigned.get(),
            },
            replays: ReplaySummary {
                requests: c.replay_requests.get(),
                ticks: c.replay_ticks.get(),
                kept,
                evicted,
            },
            bad_input: outcome.bad_rows.into(),
            bad_client_messages: BadClientSummary {
                total: by_kind.values().sum(),
                by_kind,
            },
            seqs_sent: c.seqs_sent.get(),
            seqs_dropped: c.seqs_dropped.get(),
            clients: c.clients.get(),
            target_rate: config.rate,
            achieved_rate: if send_duration.is_zero() {
                0.0
            } else {
                generated as f64 / send_duration.as_secs_f64()
            },
            send_duration_s: send_duration.as_secs_f64(),
            duration_s: started.elapsed().as_secs_f64(),
        };
        match record_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}
