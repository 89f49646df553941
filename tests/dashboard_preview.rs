//! A preview of the dashboard against a simulated cluster, for looking at
//! the page by hand (ignored by default):
//!
//! ```text
//! TICKSHARD_PREVIEW_SECS=120 TICKSHARD_PREVIEW_PORT=8080 [TICKSHARD_PREVIEW_DEMO=1] \
//!   cargo test --test dashboard_preview -- --ignored --nocapture
//! ```
//!
//! A private redis-server gets a 64-partition cluster of three fake
//! instances that publish realistic stats each second; a third of the way
//! through, `p3` dies and its partitions move to the others (events
//! included), and later `p4` joins.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use tickshard::dashboard::{self, DashboardConfig};
use tickshard::keys::Keys;
use tickshard::stats::{self, HotSymbol, Metrics};
use tickshard::tick::PartitionId;

const NS: &str = "tickshard";
const P: u32 = 64;

/// Demo buttons that only say what they would do.
struct NoDemo;

impl tickshard::dashboard::DemoControl for NoDemo {
    fn act(
        &self,
        action: tickshard::dashboard::DemoAction,
        instance: Option<String>,
    ) -> tickshard::dashboard::DemoFuture<'_> {
        Box::pin(async move {
            Ok(format!(
                "preview: would {action:?} {}",
                instance.unwrap_or_default()
            ))
        })
    }
}

fn px(units: f64) -> String {
    format!("{units:.4}")
}

struct Sym {
    name: &'static str,
    open: f64,
    high: f64,
    low: f64,
    last: f64,
    notional: f64,
    volume: f64,
    count: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interactive preview, run by hand"]
async fn preview_with_fake_cluster() {
    let secs: u64 = std::env::var("TICKSHARD_PREVIEW_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let port: u16 = std::env::var("TICKSHARD_PREVIEW_PORT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8080);
    let redis = support::redis();
    let keys = Keys::new(NS);
    let mut conn = support::connect(&redis).await;
    let _: () = conn.hset(keys.config(), "partitions", P).await.unwrap();

    let shutdown = CancellationToken::new();
    let mut config = DashboardConfig::new(
        redis.url(),
        NS,
        format!("127.0.0.1:{port}").parse().unwrap(),
    );
    if std::env::var("TICKSHARD_PREVIEW_DEMO").is_ok() {
        config = config.with_demo(std::sync::Arc::new(NoDemo));
    }
    let dash = dashboard::start(config, shutdown.clone()).await.unwrap();
    println!("dashboard on http://{}/ for {secs} s", dash.local_addr());

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut epochs = vec![0u64; P as usize];
    let mut owners: Vec<Option<String>> = vec![None; P as usize];
    let mut metrics: BTreeMap<String, Metrics> = BTreeMap::new();
    let mut syms: Vec<Sym> = [
        ("NVDA", 181.2),
        ("AAPL", 229.4),
        ("MSFT", 507.1),
        ("AMZN", 231.0),
        ("META", 752.3),
        ("GOOGL", 201.6),
        ("AVGO", 297.8),
        ("TSLA", 329.7),
        ("JPM", 289.9),
        ("BRK.B", 481.2),
        ("LLY", 742.0),
        ("V", 343.1),
        ("NFLX", 1203.5),
        ("XOM", 112.4),
    ]
    .into_iter()
    .map(|(name, p)| Sym {
        name,
        open: p,
        high: p,
        low: p,
        last: p,
        notional: 0.0,
        volume: 0.0,
        count: 0,
    })
    .collect();

    let publish_event = |conn: &mut tickshard::cluster::RedisConn, ev: String| {
        let mut conn = conn.clone();
        let ch = keys.events();
        async move {
            let _: i64 = conn.publish(ch, ev).await.unwrap();
        }
    };
    let mut alive: Vec<String> = vec!["p1".into(), "p2".into(), "p3".into()];
    for id in &alive {
        metrics.insert(id.clone(), Metrics::new());
        publish_event(
            &mut conn,
            format!(
                r#"{{"kind":"member_joined","ts_ms":{},"instance":"{id}"}}"#,
                tickshard::clock::now_ms()
            ),
        )
        .await;
    }
    let assign = |alive: &[String], p: u32| alive[(p as usize * 7 + 3) % alive.len()].clone();

    for second in 0..secs {
        let now = tickshard::clock::now_ms();
        if second == secs / 3 {
            alive.retain(|i| i != "p3");
            for p in 0..P as usize {
                if owners[p].as_deref() == Some("p3") {
                    publish_event(&mut conn, format!(r#"{{"kind":"lease_lost","ts_ms":{now},"partition":{p},"instance":"p3","epoch":{}}}"#, epochs[p])).await;
                    owners[p] = None;
                }
            }
            let _: () = conn.zrem(keys.members(), "p3").await.unwrap();
        }
        if second == secs * 2 / 3 {
            alive.push("p4".into());
            metrics.insert("p4".into(), Metrics::new());
            publish_event(
                &mut conn,
                format!(r#"{{"kind":"member_joined","ts_ms":{now},"instance":"p4"}}"#),
            )
            .await;
        }
        // Leases: free partitions (after a 2 s "grace") go to their ideal owner.
        for p in 0..P {
            let ideal = assign(&alive, p);
            let cur = owners[p as usize].clone();
            let moving = cur
                .as_ref()
                .is_some_and(|c| *c != ideal && alive.len() == 3 && second == secs * 2 / 3 + 1);
            if moving {
                let c = cur.clone().unwrap();
                publish_event(&mut conn, format!(r#"{{"kind":"lease_released","ts_ms":{now},"partition":{p},"instance":"{c}","epoch":{}}}"#, epochs[p as usize])).await;
                owners[p as usize] = None;
            }
            if owners[p as usize].is_none()
                && (second == 0 || second % 5 != secs / 3 % 5 || second > secs / 3 + 2)
            {
                epochs[p as usize] += 1;
                owners[p as usize] = Some(ideal.clone());
                let _: () = conn
                    .set(
                        keys.lease(PartitionId(p)),
                        format!("{ideal}:{}", epochs[p as usize]),
                    )
                    .await
                    .unwrap();
                publish_event(&mut conn, format!(r#"{{"kind":"lease_acquired","ts_ms":{now},"partition":{p},"instance":"{ideal}","epoch":{}}}"#, epochs[p as usize])).await;
            } else if owners[p as usize].is_none() {
                let _: () = conn.del(keys.lease(PartitionId(p))).await.unwrap();
            }
        }
        let (t, _): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        for id in &alive {
            let _: () = conn
                .zadd(keys.members(), id, t * 1000 + 6000)
                .await
                .unwrap();
        }
        // Prices walk.
        for s in syms.iter_mut() {
            let n = rng.random_range(800..3000u64);
            for _ in 0..20 {
                s.last *= 1.0 + rng.random_range(-0.0006..0.0006);
                s.high = s.high.max(s.last);
                s.low = s.low.min(s.last);
            }
            let size = n as f64 * 100.0;
            s.notional += s.last * size;
            s.volume += size;
            s.count += n;
        }
        syms.sort_by_key(|s| std::cmp::Reverse(s.count));
        // Stats.
        let wave = 1.0 + 0.25 * ((second as f64) / 9.0).sin();
        for (k, id) in alive.iter().enumerate() {
            let m = &metrics[id];
            let ticks =
                (rng.random_range(46_000.0..54_000.0) * wave / alive.len() as f64 * 3.0) as u64;
            let fwd = ticks * (alive.len() as u64 - 1) / alive.len() as u64;
            m.counters.ticks_in.add(ticks);
            m.counters.forwarded_out.add(fwd);
            m.counters.forwarded_in.add(fwd);
            m.counters.applied.add(ticks);
            if rng.random_range(0..10) == 0 {
                m.counters.gaps.inc();
                m.counters.replays_requested.inc();
                m.counters.replay_ticks.add(rng.random_range(1..20));
            }
            if second == secs / 3 + 1 {
                m.counters.duplicates.add(37);
                m.counters.reforwarded.add(412);
                m.counters.held.add(95);
            }
            let spike = if second == secs / 3 || second == secs / 3 + 1 {
                12.0
            } else {
                1.0
            };
            for _ in 0..4000 {
                let z: f64 = {
                    let u1: f64 = rng.random_range(1e-9..1.0);
                    let u2: f64 = rng.random_range(0.0..1.0);
                    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                };
                let mut v = (5.2 + 0.45 * z).exp();
                if rng.random_range(0..1000) == 0 {
                    v *= 8.0 * spike;
                }
                m.e2e_us.record_us(v as u64);
                m.forward_us.record_us((v * 0.45) as u64);
            }
            for _ in 0..10 {
                m.flush_us.record_us(rng.random_range(600..2500));
            }
            let hot: Vec<HotSymbol> = syms
                .iter()
                .enumerate()
                .filter(|(i, _)| i % alive.len() == k)
                .map(|(_, s)| HotSymbol {
                    symbol: s.name.into(),
                    count: s.count,
                    last_px: px(s.last),
                    vwap_px: px(s.notional / s.volume),
                    open: px(s.open),
                    high: px(s.high),
                    low: px(s.low),
                    close: px(s.last),
                })
                .collect();
            let owned = owners
                .iter()
                .filter(|o| o.as_deref() == Some(id.as_str()))
                .count() as u32;
            let snap = stats::take_snapshot(m, id, tickshard::clock::now_ms(), 1000, owned, hot);
            let _: i64 = conn.publish(keys.stats(), snap.to_json()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    shutdown.cancel();
    dash.wait().await.unwrap();
}
