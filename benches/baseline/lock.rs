//! Lock per tick: every tick takes `SET {prefix}:lock:{sym} token NX PX`,
//! updates the symbol's hash (`HINCRBY count`, `HINCRBY volume`, `HSET
//! last_px last_seq last_size`, pipelined in one round trip), then `DEL`s
//! the lock; a busy lock is retried after yielding. This is the
//! "synchronise everything in Redis" approach: correct, and three round
//! trips per tick.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use tickshard::tick::Tick;

use super::{latency_histogram, record_us, BaselineError, BaselineReport};
use crate::common::{self, Percentiles};

/// Lock-per-tick run parameters.
#[derive(Debug, Clone)]
pub(crate) struct LockConfig {
    /// Key prefix; every key of the run lives under it.
    pub(crate) prefix: String,
    /// Workers, each with its own connection.
    pub(crate) workers: usize,
    /// Distinct symbols.
    pub(crate) symbols: usize,
    /// Ticks to process.
    pub(crate) ticks: usize,
    /// Lock TTL.
    pub(crate) lock_ms: u64,
    /// Give up after this long.
    pub(crate) timeout: Duration,
}

impl LockConfig {
    /// 2 workers as in the reference measurement.
    pub(crate) fn new(prefix: &str, ticks: usize, symbols: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            workers: 2,
            symbols,
            ticks,
            lock_ms: 1000,
            timeout: Duration::from_secs(120),
        }
    }

    fn lock_key(&self, sym: &str) -> String {
        format!("{}:lock:{sym}", self.prefix)
    }

    fn sym_key(&self, sym: &str) -> String {
        format!("{}:sym:{sym}", self.prefix)
    }
}

/// Runs the lock-per-tick design against the Redis at `url`.
pub(crate) async fn run_lock_per_tick(
    url: &str,
    cfg: &LockConfig,
) -> Result<BaselineReport, BaselineError> {
    let client = redis::Client::open(url)?;
    let syms = common::symbols(cfg.symbols);
    let ticks = Arc::new(common::ticks(cfg.ticks, &syms));
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let cfg = Arc::new(cfg.clone());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..cfg.workers {
        // Each worker has its own connection, like a separate process.
        let conn = client.get_multiplexed_async_connection().await?;
        let (ticks, next, retries, cfg) =
            (ticks.clone(), next.clone(), retries.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            worker(conn, w, &ticks, &next, &retries, &cfg).await
        }));
    }
    let mut hist = latency_histogram();
    let run = async {
        for t in tasks {
            let h = t
                .await
                .map_err(|e| BaselineError::Protocol(format!("worker panicked: {e}")))??;
            hist.add(&h)
                .map_err(|e| BaselineError::Protocol(format!("histogram: {e:?}")))?;
        }
        Ok::<_, BaselineError>(())
    };
    tokio::time::timeout(cfg.timeout, run)
        .await
        .map_err(|_| BaselineError::Timeout(cfg.timeout))??;
    let elapsed = start.elapsed().as_secs_f64();

    // Exactness: the stored counts add up to the ticks driven.
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut total = 0u64;
    for s in &syms {
        let c: Option<u64> = conn.hget(cfg.sym_key(s.as_str()), "count").await?;
        total += c.unwrap_or(0);
    }
    Ok(BaselineReport {
        name: "lock_per_tick",
        ticks: cfg.ticks as u64,
        forwarded: 0,
        workers: cfg.workers,
        in_flight: cfg.workers,
        symbols: cfg.symbols,
        retries: retries.load(Ordering::Relaxed),
        elapsed_s: elapsed,
        ticks_per_s: cfg.ticks as f64 / elapsed.max(1e-9),
        latency_us: Percentiles::of(&hist),
        exact: total == cfg.ticks as u64,
    })
}

async fn worker(
    mut conn: redis::aio::MultiplexedConnection,
    w: usize,
    ticks: &[Tick],
    next: &AtomicUsize,
    retries: &AtomicU64,
    cfg: &LockConfig,
) -> Result<hdrhistogram::Histogram<u64>, BaselineError> {
    let mut hist = latency_histogram();
    let token = format!("w{w}");
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(t) = ticks.get(i) else {
            return Ok(hist);
        };
        let started = Instant::now();
        let sym = t.symbol.as_str();
        let lock = cfg.lock_key(sym);
        loop {
            let got: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(cfg.lock_ms)
                .query_async(&mut conn)
                .await?;
            if got.is_some() {
                break;
            }
            retries.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
        let key = cfg.sym_key(sym);
        let _: () = redis::pipe()
            .hincr(&key, "count", 1)
            .ignore()
            .hincr(&key, "volume", t.size)
            .ignore()
            .hset_multiple(
                &key,
                &[
                    ("last_px", t.price.to_string()),
                    ("last_seq", t.seq.to_string()),
                    ("last_size", t.size.to_string()),
                ],
            )
            .ignore()
            .query_async(&mut conn)
            .await?;
        let _: () = conn.del(&lock).await?;
        record_us(&mut hist, started.elapsed());
    }
}
