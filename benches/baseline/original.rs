//! The original design, per request: `SET {prefix}:res:{sym} {me} NX` (no
//! expiry, as the Node.js library did), `GET` the owner, and if another
//! instance owns the symbol `PUBLISH` a JSON request on ONE shared channel;
//! every instance receives every message, parses it and drops those for
//! other targets; the owner applies the tick and publishes a JSON response
//! to the sender on the same channel. `in_flight` requests are outstanding
//! at once across all instances, like the original's benchmark. Symbols
//! are reserved (untimed) before the measurement, as in a running system,
//! so about (N-1)/N of the measured ticks are forwarded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tickshard::tick::{Symbol, Tick};
use tickshard::totals::SymbolTotals;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{latency_histogram, record_us, BaselineError, BaselineReport};
use crate::common::{self, Percentiles};

/// Original-design run parameters.
#[derive(Debug, Clone)]
pub(crate) struct OriginalConfig {
    /// Key and channel prefix of the run.
    pub(crate) prefix: String,
    /// Instances on this machine, each with its own connections.
    pub(crate) instances: usize,
    /// Requests outstanding at once, across all instances.
    pub(crate) in_flight: usize,
    /// Distinct symbols.
    pub(crate) symbols: usize,
    /// Ticks to drive.
    pub(crate) ticks: usize,
    /// Longest wait for one response.
    pub(crate) request_timeout: Duration,
}

impl OriginalConfig {
    /// 3 instances, 100 in flight, as in the reference measurement.
    pub(crate) fn new(prefix: &str, ticks: usize, symbols: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            instances: 3,
            in_flight: 100,
            symbols,
            ticks,
            request_timeout: Duration::from_secs(10),
        }
    }

    fn res_key(&self, sym: &str) -> String {
        format!("{}:res:{sym}", self.prefix)
    }

    fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum BusMessage {
    Request {
        target: String,
        from: String,
        id: u64,
        tick: Tick,
    },
    Response {
        target: String,
        from: String,
        id: u64,
    },
}

struct Instance {
    id: String,
    conn: redis::aio::MultiplexedConnection,
    pending: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    state: Mutex<HashMap<Symbol, SymbolTotals>>,
}

impl Instance {
    fn apply(&self, t: &Tick) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.entry(t.symbol).or_default().apply(t);
    }
}

/// Runs the original design against the Redis at `url`.
pub(crate) async fn run_original(
    url: &str,
    cfg: &OriginalConfig,
) -> Result<BaselineReport, BaselineError> {
    let client = redis::Client::open(url)?;
    let cfg = Arc::new(cfg.clone());
    let shutdown = CancellationToken::new();
    let mut instances = Vec::new();
    let mut receivers = Vec::new();
    for i in 0..cfg.instances {
        let inst = Arc::new(Instance {
            id: format!("i{i}"),
            conn: client.get_multiplexed_async_connection().await?,
            pending: Mutex::new(HashMap::new()),
            state: Mutex::new(HashMap::new()),
        });
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(cfg.bus()).await?;
        receivers.push(tokio::spawn(receive(
            inst.clone(),
            pubsub,
            cfg.bus(),
            shutdown.clone(),
        )));
        instances.push(inst);
    }

    let syms = common::symbols(cfg.symbols);
    let ticks = Arc::new(common::ticks(cfg.ticks, &syms));
    // Steady state before timing: every symbol already reserved, spread
    // evenly, so about (N-1)/N of the measured requests cross instances
    // (reservations never expire in this design).
    for (k, s) in syms.iter().enumerate() {
        let inst = &instances[k % instances.len()];
        let mut conn = inst.conn.clone();
        let _: Option<String> = redis::cmd("SET")
            .arg(cfg.res_key(s.as_str()))
            .arg(&inst.id)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let forwarded = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut drivers = Vec::new();
    for k in 0..cfg.in_flight {
        let inst = instances[k % instances.len()].clone();
        let (ticks, next, forwarded, cfg) =
            (ticks.clone(), next.clone(), forwarded.clone(), cfg.clone());
        drivers.push(tokio::spawn(async move {
            drive(&inst, &ticks, &next, &forwarded, &cfg).await
        }));
    }
    let mut hist = latency_histogram();
    let mut result = Ok(());
    for d in drivers {
        match d.await {
            Ok(Ok(h)) => {
                let _ = hist.add(&h);
            }
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(BaselineError::Protocol(format!("driver panicked: {e}"))),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    shutdown.cancel();
    for r in receivers {
        let _ = r.await;
    }
    result?;

    // Exactness: every tick counted once, every symbol held by one instance.
    let mut total = 0u64;
    let mut owners: HashMap<Symbol, usize> = HashMap::new();
    for inst in &instances {
        let state = inst.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (s, t) in state.iter() {
            total += t.count;
            *owners.entry(*s).or_default() += 1;
        }
    }
    Ok(BaselineReport {
        name: "original",
        ticks: cfg.ticks as u64,
        forwarded: forwarded.load(Ordering::Relaxed),
        workers: cfg.instances,
        in_flight: cfg.in_flight,
        symbols: cfg.symbols,
        retries: 0,
        elapsed_s: elapsed,
        ticks_per_s: cfg.ticks as f64 / elapsed.max(1e-9),
        latency_us: Percentiles::of(&hist),
        exact: total == cfg.ticks as u64 && owners.values().all(|n| *n == 1),
    })
}

async fn drive(
    inst: &Instance,
    ticks: &[Tick],
    next: &AtomicUsize,
    forwarded: &AtomicU64,
    cfg: &OriginalConfig,
) -> Result<hdrhistogram::Histogram<u64>, BaselineError> {
    let mut conn = inst.conn.clone();
    let mut hist = latency_histogram();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(t) = ticks.get(i) else {
            return Ok(hist);
        };
        let started = Instant::now();
        let key = cfg.res_key(t.symbol.as_str());
        let _: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&inst.id)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let owner: Option<String> = conn.get(&key).await?;
        let owner = owner.ok_or_else(|| BaselineError::Protocol(format!("{key} has no owner")))?;
        if owner == inst.id {
            inst.apply(t);
        } else {
            let id = i as u64;
            let (tx, rx) = oneshot::channel();
            inst.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, tx);
            let msg = BusMessage::Request {
                target: owner,
                from: inst.id.clone(),
                id,
                tick: *t,
            };
            let json =
                serde_json::to_string(&msg).map_err(|e| BaselineError::Protocol(e.to_string()))?;
            let _: () = conn.publish(cfg.bus(), json).await?;
            match tokio::time::timeout(cfg.request_timeout, rx).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(BaselineError::Protocol("response dropped".into())),
                Err(_) => return Err(BaselineError::Timeout(cfg.request_timeout)),
            }
            forwarded.fetch_add(1, Ordering::Relaxed);
        }
        record_us(&mut hist, started.elapsed());
    }
}

async fn receive(
    inst: Arc<Instance>,
    pubsub: redis::aio::PubSub,
    bus: String,
    shutdown: CancellationToken,
) {
    let mut messages = pubsub.into_on_message();
    loop {
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            m = messages.next() => match m {
                Some(m) => m,
                None => return,
            },
        };
        // Every instance parses every message and keeps its own.
        let Ok(parsed) = serde_json::from_slice::<BusMessage>(msg.get_payload_bytes()) else {
            continue;
        };
        match parsed {
            BusMessage::Request {
                target,
                from,
                id,
                tick,
            } if target == inst.id => {
                inst.apply(&tick);
                let reply = BusMessage::Response {
                    target: from,
                    from: inst.id.clone(),
                    id,
                };
                if let Ok(json) = serde_json::to_string(&reply) {
                    let mut conn = inst.conn.clone();
                    let bus = bus.clone();
                    tokio::spawn(async move {
                        let _: Result<(), _> = conn.publish(bus, json).await;
                    });
                }
            }
            BusMessage::Response { target, id, .. } if target == inst.id => {
                let tx = inst
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
            }
            _ => {}
        }
    }
}
