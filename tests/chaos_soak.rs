//! Soak (not in the default suite: `#[ignore]`): a long stream with a
//! random fault every 20 s, then exactness, clean ownership claims and a
//! bound on every processor's resident memory. Run it with `scripts/soak`
//! (see docs/CHAOS.md); tune it with the environment:
//!
//! - `SOAK_SECS` (default 600): how long the feed sends;
//! - `SOAK_RATE` (default 200000): ticks per second asked of the feed;
//! - `SOAK_FAULT_SECS` (default 20): time between faults;
//! - `SOAK_RSS_MIB` (default 512): the bound on each processor's VmRSS;
//! - `SOAK_PROCESSORS` (default 3), `SOAK_SYMBOLS` (default 500).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::chaos::{rss_kib, Chaos, Via};
use support::RedisServerOptions;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill9Restart,
    StopCont,
    TermRestart,
    RedisPause,
}

const FAULTS: [Fault; 4] = [
    Fault::Kill9Restart,
    Fault::StopCont,
    Fault::TermRestart,
    Fault::RedisPause,
];

const LEASE_MS: u64 = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: ~10 minutes; run scripts/soak"]
async fn soak_random_faults_stay_exact_with_bounded_memory() {
    let secs = env_u64("SOAK_SECS", 600);
    let rate = env_u64("SOAK_RATE", 200_000);
    let every = Duration::from_secs(env_u64("SOAK_FAULT_SECS", 20));
    let rss_bound_kib = env_u64("SOAK_RSS_MIB", 512) * 1024;
    let n = env_u64("SOAK_PROCESSORS", 3) as usize;
    let symbols = env_u64("SOAK_SYMBOLS", 500).to_string();
    let seed: u64 = rand::random::<u16>() as u64;
    eprintln!(
        "[soak] {secs} s at {rate} ticks/s, {n} processors, {symbols} symbols, \
         a fault every {every:?}, RSS bound {} MiB, seed {seed}",
        rss_bound_kib / 1024
    );

    let mut c = Chaos::new("soak", LEASE_MS, RedisServerOptions::default()).await;
    for i in 1..=n {
        c.add(&format!("p{i}"), Via::default()).await;
    }
    c.wait_all_owned().await;
    let (secs_s, rate_s, seed_s) = (secs.to_string(), rate.to_string(), seed.to_string());
    c.start_feed(&[
        "--mode",
        "round-robin",
        "--symbols",
        &symbols,
        "--duration",
        &secs_s,
        "--rate",
        &rate_s,
        "--seed",
        &seed_s,
    ]);
    let t0 = Instant::now();
    let mut rss_max: BTreeMap<String, u64> = BTreeMap::new();
    let mut log: Vec<String> = Vec::new();
    let mut next_fault = t0 + every;
    let mut k = seed as usize;
    let mut last_ticks = (Instant::now(), 0u64);
    let mut rates: Vec<f64> = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        // Sample memory and progress about once a second.
        for m in &c.members {
            if let Some(kib) = rss_kib(m.proc.pid()) {
                let e = rss_max.entry(m.proc.name.clone()).or_insert(0);
                *e = (*e).max(kib);
            }
        }
        let ticks = c.sum_counter("tickshard_ticks_in_total").await;
        let now = Instant::now();
        if ticks >= last_ticks.1 {
            rates.push((ticks - last_ticks.1) as f64 / (now - last_ticks.0).as_secs_f64());
        }
        last_ticks = (now, ticks);
        if now >= next_fault {
            next_fault += every;
            k = k
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let fault = FAULTS[(k >> 33) % FAULTS.len()];
            let i = (k >> 40) % c.members.len();
            let at = t0.elapsed().as_secs();
            let id = c.members[i].proc.name.clone();
            match fault {
                Fault::Kill9Restart => {
                    c.kill9(i);
                    c.restart(i).await;
                }
                Fault::StopCont => {
                    c.members[i].proc.stop();
                    // The fault: frozen for 1.5 lease TTLs.
                    tokio::time::sleep(Duration::from_millis(3 * LEASE_MS / 2)).await;
                    c.members[i].proc.cont();
                }
                Fault::TermRestart => {
                    c.term(i);
                    c.restart(i).await;
                }
                Fault::RedisPause => {
                    c.redis.server().pause().unwrap();
                    // The fault: Redis frozen for 3 s.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    c.redis.server().resume().unwrap();
                }
            }
            let line = match fault {
                Fault::RedisPause => format!("t={at}s {fault:?}"),
                _ => format!("t={at}s {fault:?} {id}"),
            };
            eprintln!("[soak] {line}");
            log.push(line);
        }
        tokio::time::sleep(Duration::from_secs(1)).await; // sampling period
    }
    let sent = t0.elapsed();
    let truth = c.finish().await;
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    eprintln!(
        "[soak] RESULT: {} ticks ({:.0}/s achieved over {:?}; median 1 s rate {median:.0}/s), \
         {} symbols exact after {} faults",
        truth.ticks,
        truth.ticks as f64 / sent.as_secs_f64(),
        sent,
        truth.symbols.len(),
        log.len()
    );
    for (id, kib) in &rss_max {
        eprintln!("[soak] RESULT: {id} max VmRSS {} MiB", kib / 1024);
    }
    for (id, kib) in &rss_max {
        assert!(
            *kib <= rss_bound_kib,
            "{id} reached {} MiB of RSS (bound {} MiB)",
            kib / 1024,
            rss_bound_kib / 1024
        );
    }
}
