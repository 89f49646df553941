//! Ownership claims over time, and the checks that no two instances ever
//! believed they owned the same partition at once.
//!
//! [`Claims`] polls every watched processor's `/api/ownership` and keeps
//! each partition it names itself the owner of, with its epoch and the
//! request's send and receive times (the belief held at some moment in
//! between). [`LeaseWatcher`] reads every `{ns}:{p<p>}:lease:{p}` key from Redis
//! throughout. [`check_claims`] and the watcher then assert:
//!
//! - no (partition, epoch) is claimed by two instances;
//! - an instance's epoch for a partition never goes backwards;
//! - nobody claims an epoch after another instance was seen claiming a
//!   newer epoch of the same partition;
//! - in Redis, a partition's epoch never goes backwards and one epoch
//!   never changes hands.
//!
//! A restarted process is a new instance for these checks (`p1#2`), even
//! under the same id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::procs::{get_json, Proc};
use tickshard::keys::Keys;

/// One observed belief: `inst` said it owns `partition` at `epoch`, in
/// every answer from the first one (received at `received`) to the last
/// one (its request sent at `sent`).
#[derive(Debug, Clone)]
pub struct Claim {
    /// Instance and generation, e.g. `p1#2`.
    pub inst: String,
    /// Partition.
    pub partition: u32,
    /// Epoch (fencing token).
    pub epoch: u64,
    /// When the request of the last answer naming it was sent.
    pub sent: Instant,
    /// When the first answer naming it arrived.
    pub received: Instant,
}

/// Records the claims of every watched processor until [`Claims::finish`].
pub struct Claims {
    claims: Arc<Mutex<Vec<Claim>>>,
    answers: Arc<std::sync::atomic::AtomicU64>,
    generations: BTreeMap<String, u32>,
    /// Per watched pid, stops its poller.
    pollers: BTreeMap<u32, CancellationToken>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Default for Claims {
    fn default() -> Self {
        Self::new()
    }
}

impl Claims {
    /// An empty recorder.
    pub fn new() -> Claims {
        Claims {
            claims: Arc::default(),
            answers: Arc::default(),
            generations: BTreeMap::new(),
            pollers: BTreeMap::new(),
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Starts polling `proc` (a new generation of its name) every ~25 ms,
    /// until [`Claims::unwatch`] or [`Claims::finish`].
    pub async fn watch(&mut self, proc: &Proc) {
        let addr = proc.http_addr(Duration::from_secs(15)).await;
        let gen = self.generations.entry(proc.name.clone()).or_insert(0);
        *gen += 1;
        let inst = format!("{}#{gen}", proc.name);
        let name = proc.name.clone();
        let out = Arc::clone(&self.claims);
        let answers = Arc::clone(&self.answers);
        let stop = self.stop.child_token();
        self.pollers.insert(proc.pid(), stop.clone());
        self.tasks.push(tokio::spawn(async move {
            // Per partition, the index of this instance's current claim: a
            // belief seen again only extends it (keeps memory flat).
            let mut current: BTreeMap<u32, usize> = BTreeMap::new();
            while !stop.is_cancelled() {
                let sent = Instant::now();
                let answer = get_json(&addr, "/api/ownership", Duration::from_millis(300)).await;
                let received = Instant::now();
                // A stopped (SIGSTOP) process answers after SIGCONT: keep
                // polling until told to stop.
                if let Some(v) = answer {
                    answers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut claims = out.lock().expect("claims lock");
                    for e in v["partitions"].as_array().into_iter().flatten() {
                        if e["owner"].as_str() != Some(name.as_str()) {
                            continue;
                        }
                        let (Some(p), Some(epoch)) = (e["partition"].as_u64(), e["epoch"].as_u64())
                        else {
                            continue;
                        };
                        let p = p as u32;
                        match current.get(&p).map(|&i| (i, claims[i].epoch)) {
                            Some((i, e)) if e == epoch => claims[i].sent = sent,
                            _ => {
                                current.insert(p, claims.len());
                                claims.push(Claim {
                                    inst: inst.clone(),
                                    partition: p,
                                    epoch,
                                    sent,
                                    received,
                                });
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }

    /// Stops polling `proc` (call it before the process exits, so that a
    /// later process reusing its port is not mistaken for it).
    pub fn unwatch(&mut self, proc: &Proc) {
        if let Some(t) = self.pollers.remove(&proc.pid()) {
            t.cancel();
        }
    }

    /// Claims recorded so far (one per belief, however often it was seen).
    pub fn len(&self) -> usize {
        self.claims.lock().expect("claims lock").len()
    }

    /// Answers received from all pollers so far.
    pub fn answers(&self) -> u64 {
        self.answers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Instances (with generation) seen claiming something so far.
    pub fn instances(&self) -> BTreeSet<String> {
        self.claims
            .lock()
            .expect("claims lock")
            .iter()
            .map(|c| c.inst.clone())
            .collect()
    }

    /// Stops polling, checks every claim and returns them; panics naming
    /// the first violations.
    pub async fn finish(self) -> Vec<Claim> {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let claims = self.claims.lock().expect("claims lock").clone();
        if let Err(bad) = check_claims(&claims) {
            panic!(
                "{} ownership violations in {} claims; first: {:#?}",
                bad.len(),
                claims.len(),
                &bad[..bad.len().min(10)]
            );
        }
        claims
    }
}

/// The checks described in the module docs, over recorded claims.
pub fn check_claims(claims: &[Claim]) -> Result<(), Vec<String>> {
    let mut bad = Vec::new();
    // 1. One instance per (partition, epoch).
    let mut by_epoch: BTreeMap<(u32, u64), BTreeSet<&str>> = BTreeMap::new();
    for c in claims {
        by_epoch
            .entry((c.partition, c.epoch))
            .or_default()
            .insert(c.inst.as_str());
    }
    for ((p, e), insts) in &by_epoch {
        if insts.len() > 1 {
            bad.push(format!("partition {p} epoch {e} claimed by {insts:?}"));
        }
    }
    // 2. Per instance, epochs of a partition never go backwards (claims of
    //    one instance are recorded in request order).
    let mut last: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for c in claims {
        let e = last
            .entry((c.inst.as_str(), c.partition))
            .or_insert(c.epoch);
        if c.epoch < *e {
            bad.push(format!(
                "{} claimed partition {} at epoch {} after epoch {}",
                c.inst, c.partition, c.epoch, e
            ));
        }
        *e = (*e).max(c.epoch);
    }
    // 3. Nobody believes an older epoch after another instance was seen
    //    believing a newer one: the latest proof of the old belief (a
    //    request sent at `sent` was answered with it) must not come after
    //    the earliest proof of the new one (an answer received).
    let mut spans: BTreeMap<(u32, u64), (&str, Instant, Instant)> = BTreeMap::new();
    for c in claims {
        let s =
            spans
                .entry((c.partition, c.epoch))
                .or_insert((c.inst.as_str(), c.received, c.sent));
        s.1 = s.1.min(c.received);
        s.2 = s.2.max(c.sent);
    }
    let mut by_partition: BTreeMap<u32, Vec<(u64, &str, Instant, Instant)>> = BTreeMap::new();
    for ((p, e), (inst, first, last)) in &spans {
        by_partition
            .entry(*p)
            .or_default()
            .push((*e, inst, *first, *last));
    }
    for (p, epochs) in &by_partition {
        for (e1, a, _, a_last) in epochs {
            for (e2, b, b_first, _) in epochs {
                if e2 > e1 && a != b && a_last > b_first {
                    bad.push(format!(
                        "partition {p}: {a} still claimed epoch {e1} {:?} after {b} claimed epoch {e2}",
                        a_last.duration_since(*b_first)
                    ));
                }
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

/// Reads every lease key every few ms and records any epoch that goes
/// backwards or changes hands. Redis errors (paused, restarting) are
/// skipped over.
pub struct LeaseWatcher {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<(Vec<String>, u64)>,
}

impl LeaseWatcher {
    /// Starts watching `partitions` lease keys of `ns` on the Redis at
    /// `url` (reconnecting by itself across a Redis restart).
    pub fn start(url: &str, ns: &str, partitions: u32) -> Self {
        let url = url.to_owned();
        let keys = Keys::new(ns).all_leases(partitions);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let con = super::connect_url(&url)
                .await
                .expect("lease watcher connects");
            let mut last: Vec<Option<(String, u64)>> = vec![None; keys.len()];
            let mut bad = Vec::new();
            let mut reads = 0u64;
            while !token.is_cancelled() {
                let read = tokio::time::timeout(
                    Duration::from_millis(500),
                    con.mget::<Option<String>>(&keys),
                )
                .await;
                if let Ok(Ok(vals)) = read {
                    reads += 1;
                    for (p, v) in vals.into_iter().enumerate() {
                        let Some(now) = v.and_then(|v| {
                            let (id, e) = v.rsplit_once(':')?;
                            Some((id.to_owned(), e.parse::<u64>().ok()?))
                        }) else {
                            continue;
                        };
                        if let Some((lid, le)) = &last[p] {
                            if now.1 < *le || (now.1 == *le && &now.0 != lid) {
                                bad.push(format!(
                                    "partition {p}: {lid}:{le} then {}:{}",
                                    now.0, now.1
                                ));
                            }
                        }
                        last[p] = Some(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (bad, reads)
        });
        LeaseWatcher { stop, task }
    }

    /// Stops and asserts that no violation was seen.
    pub async fn check(self) {
        self.stop.cancel();
        let (bad, reads) = self.task.await.expect("lease watcher");
        assert!(reads > 0, "the lease watcher never read Redis");
        assert!(
            bad.is_empty(),
            "lease epochs went backwards or changed hands in Redis: {bad:?}"
        );
    }
}
