//! The chaos scenario harness: a private redis-server (or a private Redis
//! Cluster, [`Chaos::on_cluster`]), `tickshard processor` processes (each optionally behind a [`Proxy`] to Redis or to
//! the feed, or in a network namespace of its own, a [`Netns`]), a
//! `feed-sim` recording its ground truth, a claims recorder
//! on every processor and a lease watcher on Redis. A scenario starts the
//! fleet, injects its faults, then [`Chaos::finish`] asserts exact results
//! and clean ownership.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::claims::{Claims, LeaseWatcher};
use super::fleet::tickshard_bin;
use super::fleet::{
    assert_exact, read_truth, spawn_feed_with, spawn_tickshard, wait_all_owned, FeedArgs,
    ProcessorArgs, TruthRecord,
};
use super::netns::Netns;
use super::procs::{get_text, Proc};
use super::proxy::Proxy;
use super::{RedisServer, RedisServerOptions};
use tickshard::keys::Keys;
use tickshard::redis_cluster::RedisCluster;

/// Partitions of every chaos cluster (the default).
pub const PARTITIONS: u32 = 64;

/// Time for the cluster to settle and every symbol to match after the feed
/// stops (generous: the machine is shared and faults slow recovery).
pub const SETTLE: Duration = Duration::from_secs(60);

/// One processor slot: its process and the proxies in front of it.
pub struct Member {
    /// The running process (replaced on restart).
    pub proc: Proc,
    /// Proxy between this processor and Redis, if any.
    pub redis_proxy: Option<Proxy>,
    /// Proxy between this processor and the feed, if any.
    pub feed_proxy: Option<Proxy>,
    /// The network namespace it runs in, if any.
    pub netns: Option<Netns>,
}

/// The Redis a scenario runs on.
pub enum Backend {
    /// One redis-server.
    Single(RedisServer),
    /// A Redis Cluster.
    Cluster(RedisCluster),
}

impl Backend {
    /// The URL processors and the feed get for `--redis` (every node's, on
    /// a cluster).
    pub fn url(&self) -> String {
        match self {
            Backend::Single(s) => s.url(),
            Backend::Cluster(c) => c.seed_urls(),
        }
    }

    /// The single server (a scenario about one server's faults).
    pub fn server(&mut self) -> &mut RedisServer {
        match self {
            Backend::Single(s) => s,
            Backend::Cluster(_) => panic!("this scenario runs on one redis-server"),
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &RedisCluster {
        match self {
            Backend::Cluster(c) => c,
            Backend::Single(_) => panic!("this scenario runs on a Redis Cluster"),
        }
    }

    /// The cluster, to kill or restart its nodes.
    pub fn cluster_mut(&mut self) -> &mut RedisCluster {
        match self {
            Backend::Cluster(c) => c,
            Backend::Single(_) => panic!("this scenario runs on a Redis Cluster"),
        }
    }
}

/// A running scenario.
pub struct Chaos {
    pub redis: Backend,
    pub conn: tickshard::cluster::RedisConn,
    pub ns: String,
    pub lease_ms: u64,
    pub feed_url: String,
    pub feed: Option<Proc>,
    pub members: Vec<Member>,
    pub claims: Claims,
    leases: Option<LeaseWatcher>,
    truth_path: PathBuf,
    /// Processes that ended (kept for their logs on failure).
    pub retired: Vec<Proc>,
    _dir: tempfile::TempDir,
    pub started: Instant,
}

/// How a processor reaches Redis and the feed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Via {
    /// Through a TCP proxy to Redis.
    pub redis_proxy: bool,
    /// Through a TCP proxy to the feed.
    pub feed_proxy: bool,
    /// In a network namespace of its own, over a veth link (Redis must
    /// listen beyond loopback: [`listening_everywhere`]).
    pub netns: bool,
}

/// Redis options for a fleet with members in network namespaces: listening
/// on every address, so the namespaces reach it over their links.
pub fn listening_everywhere() -> RedisServerOptions {
    RedisServerOptions {
        extra_args: ["--bind", "0.0.0.0", "--protected-mode", "no"]
            .map(str::to_owned)
            .to_vec(),
        ..RedisServerOptions::default()
    }
}

impl Chaos {
    /// Redis (with `options`) and the feed's address; no processes yet.
    pub async fn new(ns: &str, lease_ms: u64, options: RedisServerOptions) -> Chaos {
        Self::on(ns, lease_ms, Backend::Single(super::redis_with(options))).await
    }

    /// A Redis Cluster of `masters` masters with a replica each, and the
    /// feed's address; no processes yet.
    pub async fn on_cluster(ns: &str, lease_ms: u64, masters: usize) -> Chaos {
        let cluster = RedisCluster::start(masters, 1)
            .unwrap_or_else(|e| panic!("this test needs redis-server and redis-cli: {e}"));
        Self::on(ns, lease_ms, Backend::Cluster(cluster)).await
    }

    async fn on(ns: &str, lease_ms: u64, redis: Backend) -> Chaos {
        let conn = super::connect_url(&redis.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", redis.url()));
        let dir = tempfile::tempdir().expect("temp dir");
        let truth_path = dir.path().join("truth.json");
        let port = tickshard::redis_server::free_port().expect("free port");
        let leases = LeaseWatcher::start(&redis.url(), ns, PARTITIONS);
        Chaos {
            redis,
            conn,
            ns: ns.to_owned(),
            lease_ms,
            feed_url: format!("ws://127.0.0.1:{port}"),
            feed: None,
            members: Vec::new(),
            claims: Claims::new(),
            leases: Some(leases),
            truth_path,
            retired: Vec::new(),
            _dir: dir,
            started: Instant::now(),
        }
    }

    /// [`Chaos::new`] plus `n` processors `p1..pn` owning every partition.
    pub async fn with_processors(ns: &str, n: usize, lease_ms: u64, via: Via) -> Chaos {
        let mut c = Chaos::new(ns, lease_ms, RedisServerOptions::default()).await;
        for i in 1..=n {
            c.add(&format!("p{i}"), via).await;
        }
        c.wait_all_owned().await;
        c
    }

    /// Starts processor `id` as a new member; returns its index.
    pub async fn add(&mut self, id: &str, via: Via) -> usize {
        let redis_proxy = match via.redis_proxy {
            true => {
                let port = self.redis.server().port();
                Some(Proxy::start(&format!("127.0.0.1:{port}")).await)
            }
            false => None,
        };
        let feed_proxy = match via.feed_proxy {
            true => Some(Proxy::start(self.feed_url.trim_start_matches("ws://")).await),
            false => None,
        };
        assert!(
            !(via.netns && (via.redis_proxy || via.feed_proxy)),
            "a member in a network namespace goes through no proxy (the proxies listen on loopback)"
        );
        let netns = via.netns.then(Netns::create);
        let m = Member {
            proc: self.spawn_proc(
                id,
                redis_proxy.as_ref(),
                feed_proxy.as_ref(),
                netns.as_ref(),
            ),
            redis_proxy,
            feed_proxy,
            netns,
        };
        self.claims.watch(&m.proc).await;
        self.members.push(m);
        self.members.len() - 1
    }

    fn spawn_proc(
        &self,
        id: &str,
        redis: Option<&Proxy>,
        feed: Option<&Proxy>,
        netns: Option<&Netns>,
    ) -> Proc {
        let redis_url = match redis {
            Some(p) => format!("redis://{}/", p.addr()),
            None => self.redis.url(),
        };
        let feed_url = match feed {
            Some(p) => format!("ws://{}", p.addr()),
            None => self.feed_url.clone(),
        };
        let args = ProcessorArgs::new(&redis_url, id)
            .cluster(&self.ns)
            .lease_ms(self.lease_ms);
        let Some(netns) = netns else {
            return spawn_tickshard(id, args.feed(&feed_url), &[]);
        };
        // Everything through the link: the servers at the host end's
        // address, the HTTP server on the namespace's own.
        let on_host = |url: &str| url.replace("127.0.0.1", netns.host_ip());
        let args = ProcessorArgs::new(&on_host(&redis_url), id)
            .cluster(&self.ns)
            .lease_ms(self.lease_ms)
            .feed(&on_host(&feed_url))
            .http(&format!("{}:0", netns.ip()))
            // Off loopback, on a link only this test uses.
            .raw(["--insecure"]);
        let (program, all) = netns.command(&tickshard_bin(), &args.build());
        Proc::spawn(id, program, &all, &[("RUST_LOG", "info")])
    }

    /// Starts the feed (with `--record`, `--redis` and `--cluster` added).
    pub fn start_feed(&mut self, args: &[&str]) {
        let loopback = self.feed_url.trim_start_matches("ws://");
        // Members in namespaces reach the feed at their link's host end.
        let everywhere = loopback.replace("127.0.0.1", "0.0.0.0");
        let listen = match self.members.iter().any(|m| m.netns.is_some()) {
            true => everywhere.as_str(),
            false => loopback,
        };
        self.feed = Some(spawn_feed_with(
            FeedArgs::new(listen)
                .raw(args)
                .record(&self.truth_path)
                .owner_aware(&self.redis.url(), &self.ns),
        ));
        self.started = Instant::now();
    }

    /// A fresh connection for the test's own reads (after a Redis restart).
    pub async fn reconnect(&mut self) {
        self.conn = super::connect_url(&self.redis.url())
            .await
            .unwrap_or_else(|e| panic!("reconnect to {}: {e}", self.redis.url()));
    }

    /// Waits until every partition's lease is held.
    pub async fn wait_all_owned(&mut self) {
        wait_all_owned(
            &mut self.conn,
            &self.ns,
            PARTITIONS,
            Duration::from_secs(20),
        )
        .await;
    }

    /// Waits until the live processors have received `ticks` ticks between
    /// them (the stream's progress, from their counters).
    pub async fn wait_ticks_in(&self, ticks: u64, timeout: Duration) {
        super::wait_until(timeout, &format!("{ticks} ticks received"), || async {
            self.sum_counter("tickshard_ticks_in_total").await >= ticks
        })
        .await;
    }

    /// Sum of a counter over the live processors' `/metrics`.
    pub async fn sum_counter(&self, name: &str) -> u64 {
        let mut sum = 0;
        for m in &self.members {
            sum += self.counter_of(m, name).await.unwrap_or(0);
        }
        sum
    }

    /// One processor's counter, if it answers.
    pub async fn counter_of(&self, m: &Member, name: &str) -> Option<u64> {
        let addr = m.proc.http_addr(Duration::from_secs(5)).await;
        let body = get_text(&addr, "/metrics", Duration::from_millis(500)).await?;
        Some(tickshard_testkit::exposition::counter(&body, name, &[]))
    }

    /// Asserts that member `i`, cut off while it held `held_before`,
    /// stopped on its own lease clock (logged `lease lost` for each of
    /// them) or had writes refused by the fence.
    pub async fn assert_fenced(&self, i: usize, held_before: &[u32]) {
        let m = &self.members[i];
        let log = m.proc.log();
        let fenced = self
            .counter_of(m, "tickshard_fenced_rejected_total")
            .await
            .expect("the cut-off member answers /metrics again");
        let lost_logged = held_before.iter().all(|p| {
            log.lines()
                .any(|l| l.contains("lease lost") && l.contains(&format!("partition={p} ")))
        });
        eprintln!(
            "[{}] {} held {} partitions; lost-lease logged for all: {lost_logged}; fenced writes rejected: {fenced}",
            self.ns,
            m.proc.name,
            held_before.len()
        );
        assert!(
            lost_logged || fenced > 0,
            "no sign of the fence on {} (held {held_before:?})\n{log}",
            m.proc.name
        );
    }

    /// SIGKILLs member `i` and waits for it to die.
    pub fn kill9(&mut self, i: usize) {
        self.claims.unwatch(&self.members[i].proc);
        self.members[i].proc.kill9();
        self.members[i].proc.wait_exit(Duration::from_secs(5));
    }

    /// SIGTERMs member `i` and waits (up to 20 s) for a clean exit.
    pub fn term(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.proc.term();
        let status = m.proc.wait_exit(Duration::from_secs(20));
        self.claims.unwatch(&self.members[i].proc);
        let m = &self.members[i];
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not exit cleanly on SIGTERM: {status:?}\n{}",
            m.proc.name,
            m.proc.log()
        );
    }

    /// Starts member `i` again (same id, same proxies) after it ended.
    pub async fn restart(&mut self, i: usize) {
        let id = self.members[i].proc.name.clone();
        let fresh = self.spawn_proc(
            &id,
            self.members[i].redis_proxy.as_ref(),
            self.members[i].feed_proxy.as_ref(),
            self.members[i].netns.as_ref(),
        );
        let old = std::mem::replace(&mut self.members[i].proc, fresh);
        self.retired.push(old);
        self.claims.watch(&self.members[i].proc).await;
    }

    /// Removes member `i` (already stopped) from the fleet, keeping its log.
    pub fn retire(&mut self, i: usize) {
        let m = self.members.remove(i);
        self.retired.push(m.proc);
    }

    /// Waits for the ground truth, then asserts every symbol exact, the
    /// claims clean and the lease epochs monotonic. Returns the truth.
    pub async fn finish(mut self) -> TruthRecord {
        let truth = read_truth(&self.truth_path, Duration::from_secs(180)).await;
        let sent_after = self.started.elapsed();
        {
            let mut all: Vec<&Proc> = self.members.iter().map(|m| &m.proc).collect();
            all.extend(self.retired.iter());
            if let Some(f) = &self.feed {
                all.push(f);
            }
            assert_exact(&mut self.conn, &self.ns, &truth, SETTLE, &all).await;
        }
        eprintln!(
            "[{}] {} ticks, {} symbols exact; feed done after {sent_after:?}, exact after {:?}",
            self.ns,
            truth.ticks,
            truth.symbols.len(),
            self.started.elapsed()
        );
        // Keep recording through the settled state for a moment.
        let n = self.claims.answers();
        let more = 10 * self.members.len() as u64;
        super::wait_until(
            Duration::from_secs(10),
            "ownership polled after settling",
            || async { self.claims.answers() > n + more },
        )
        .await;
        let claims = std::mem::take(&mut self.claims).finish().await;
        eprintln!("[{}] {} ownership claims checked", self.ns, claims.len());
        if let Some(l) = self.leases.take() {
            l.check().await;
        }
        truth
    }
}

/// The owner named by every lease key of `ns` (`None`: not held, or Redis
/// did not answer).
pub async fn lease_owners(conn: tickshard::cluster::RedisConn, ns: &str) -> Vec<Option<String>> {
    let keys = Keys::new(ns).all_leases(PARTITIONS);
    let read =
        tokio::time::timeout(Duration::from_secs(1), conn.mget::<Option<String>>(&keys)).await;
    match read {
        Ok(Ok(vals)) if vals.len() == keys.len() => vals
            .into_iter()
            .map(|v| Some(v?.rsplit_once(':')?.0.to_owned()))
            .collect(),
        _ => vec![None; keys.len()],
    }
}

/// Partitions whose lease key names `id`.
pub async fn leases_of(conn: tickshard::cluster::RedisConn, ns: &str, id: &str) -> Vec<u32> {
    lease_owners(conn, ns)
        .await
        .iter()
        .enumerate()
        .filter(|(_, o)| o.as_deref() == Some(id))
        .map(|(p, _)| p as u32)
        .collect()
}

/// Resident set size of `pid` in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Feed arguments of the chaos scenarios: round-robin over 300 symbols,
/// `ticks` at `rate` ticks/s with `seed`.
pub fn feed_args<'a>(ticks: &'a str, rate: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "--mode",
        "round-robin",
        "--symbols",
        "300",
        "--ticks",
        ticks,
        "--rate",
        rate,
        "--seed",
        seed,
    ]
}
