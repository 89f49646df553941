//! A private Redis Cluster on loopback: masters with replicas, every node
//! a [`RedisServer`] started with `--cluster-enabled yes`, joined by
//! `redis-cli --cluster create`, ready once every node reports
//! `cluster_state:ok` with all 16384 slots served and every replica is in
//! sync with its master (a replica that never synced cannot take over).
//!
//! For the tests (kill a master, watch its replica take over) and the
//! benchmarks. `redis-cli` is taken from `PATH`, or from the path in
//! `TICKSHARD_REDIS_CLI`. Dropping the handle kills every node.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::eviction::info_field;
use crate::redis_server::{
    find_program, free_port, RedisServer, RedisServerError, RedisServerOptions,
};

/// Environment variable naming the `redis-cli` binary to run.
pub const REDIS_CLI_ENV: &str = "TICKSHARD_REDIS_CLI";

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How long a node may miss pings before the others fail it over.
const NODE_TIMEOUT_MS: u32 = 1000;

/// Why a private cluster could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum RedisClusterError {
    /// A node could not be started.
    #[error(transparent)]
    Server(#[from] RedisServerError),
    /// No `redis-cli` binary could be found.
    #[error(
        "redis-cli not found (looked for {binary:?}); install it with \
         `sudo apt-get install redis-tools` (or run scripts/setup), or point \
         {REDIS_CLI_ENV} at the binary"
    )]
    CliNotFound {
        /// The binary that was looked for.
        binary: String,
    },
    /// A `redis-cli --cluster` command (create, reshard) failed.
    #[error("redis-cli --cluster failed: {0}")]
    Create(String),
    /// The cluster did not become ready in time.
    #[error("the cluster did not reach cluster_state:ok within {waited:?}: {detail}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// What the last node asked answered.
        detail: String,
    },
    /// A node answered with an error.
    #[error("node {port}: {source}")]
    Redis {
        /// The node's port.
        port: u16,
        /// The error.
        source: redis::RedisError,
    },
}

/// A node's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A master serving these slot ranges (inclusive).
    Master(Vec<(u16, u16)>),
    /// A replica of the master with this node id.
    Replica(String),
}

/// A running private Redis Cluster.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    cli: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each and waits
    /// until the cluster is ready (at most 30 s).
    pub fn start(masters: usize, replicas: usize) -> Result<Self, RedisClusterError> {
        Self::start_with(masters, replicas, RedisServerOptions::default())
    }

    /// As [`RedisCluster::start`], every node started with `options`
    /// (their `extra_args` come after the cluster's own).
    pub fn start_with(
        masters: usize,
        replicas: usize,
        options: RedisServerOptions,
    ) -> Result<Self, RedisClusterError> {
        let cli = find_program(REDIS_CLI_ENV, "redis-cli")
            .map_err(|binary| RedisClusterError::CliNotFound { binary })?;
        let mut nodes = Vec::with_capacity(masters * (1 + replicas));
        let mut bus_ports = Vec::with_capacity(masters * (1 + replicas));
        for _ in 0..masters * (1 + replicas) {
            let bus_port = free_port().map_err(RedisServerError::Io)?;
            bus_ports.push(bus_port);
            let mut extra_args: Vec<String> = vec![
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-node-timeout".into(),
                NODE_TIMEOUT_MS.to_string(),
                // The bus port is chosen like the client port, not
                // left at port + 10000, which may be taken.
                "--cluster-port".into(),
                bus_port.to_string(),
                // A replica's first sync starts at once, not after the
                // default 5 s wait for more replicas.
                "--repl-diskless-sync-delay".into(),
                "0".into(),
            ];
            extra_args.extend(options.extra_args.iter().cloned());
            nodes.push(RedisServer::start_with(RedisServerOptions {
                extra_args,
                ..options.clone()
            })?);
        }
        let cluster = Self { nodes, cli };
        if masters >= 3 {
            cluster.create_with_cli(replicas)?;
        } else {
            // `redis-cli --cluster create` wants 3 masters at least.
            cluster.assemble(masters, &bus_ports)?;
        }
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create` over every node.
    fn create_with_cli(&self, replicas: usize) -> Result<(), RedisClusterError> {
        let mut args = vec!["create".to_owned()];
        args.extend(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())));
        args.extend(["--cluster-replicas".to_owned(), replicas.to_string()]);
        self.cluster_cli(&args)
    }

    /// `redis-cli --cluster <args> --cluster-yes`; its output in the error
    /// when it fails.
    fn cluster_cli(&self, args: &[String]) -> Result<(), RedisClusterError> {
        let out = Command::new(&self.cli)
            .arg("--cluster")
            .args(args)
            .arg("--cluster-yes")
            .output()
            .map_err(RedisServerError::Io)?;
        if !out.status.success() {
            return Err(RedisClusterError::Create(format!(
                "{}: {}{}",
                args.first().map_or("", String::as_str),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// What `redis-cli --cluster create` does, by hand, for fewer than 3
    /// masters: the first `masters` nodes share the slots, every node
    /// meets the first, and the others replicate the masters in turn.
    fn assemble(&self, masters: usize, bus_ports: &[u16]) -> Result<(), RedisClusterError> {
        let per = SLOTS as usize / masters;
        for m in 0..masters {
            let first = m * per;
            let last = if m + 1 == masters {
                SLOTS as usize - 1
            } else {
                first + per - 1
            };
            let _: () = query(
                &self.nodes[m],
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(first)
                    .arg(last),
            )?;
        }
        for (node, bus) in self.nodes.iter().zip(bus_ports).skip(1) {
            let _: () = query(
                &self.nodes[0],
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(node.port())
                    .arg(bus),
            )?;
        }
        let ids = (0..masters)
            .map(|m| self.node_id(m))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, node) in self.nodes.iter().enumerate().skip(masters) {
            let master = &ids[(i - masters) % masters];
            // A node can replicate a master only once it knows it.
            loop {
                let replicate =
                    query::<()>(node, redis::cmd("CLUSTER").arg("REPLICATE").arg(master));
                match replicate {
                    Ok(()) => break,
                    Err(e) if Instant::now() >= deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Ok(())
    }

    /// Every node, masters and replicas as first created.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i`, to kill, pause or restart it.
    pub fn node_mut(&mut self, i: usize) -> Option<&mut RedisServer> {
        self.nodes.get_mut(i)
    }

    /// Every node's URL, comma-separated: seed URLs for `--redis`.
    pub fn seed_urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running node reports `cluster_state:ok` with all
    /// slots served, the masters serve every slot, and every running
    /// replica's link to its master is up.
    pub fn wait_ready(&self, waited: Duration) -> Result<(), RedisClusterError> {
        let deadline = Instant::now() + waited;
        loop {
            let detail = match self.not_ready() {
                Ok(None) => return Ok(()),
                Ok(Some(detail)) => detail,
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(RedisClusterError::NotReady { waited, detail });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Why the cluster is not ready, or `None` when it is.
    fn not_ready(&self) -> Result<Option<String>, RedisClusterError> {
        for node in self.running() {
            let info: String = query(node, redis::cmd("CLUSTER").arg("INFO"))?;
            if info_field(&info, "cluster_state") != Some("ok")
                || info_field(&info, "cluster_slots_ok") != Some(&SLOTS.to_string())
            {
                return Ok(Some(format!("node {}: {info}", node.port())));
            }
        }
        let mut served = 0u32;
        for node in self.running() {
            match self.role(node)? {
                Role::Master(ranges) => {
                    served += ranges
                        .iter()
                        .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
                        .sum::<u32>();
                }
                Role::Replica(_) => {
                    let info: String = query(node, redis::cmd("INFO").arg("replication"))?;
                    if info_field(&info, "master_link_status") != Some("up") {
                        return Ok(Some(format!("replica {} is not in sync", node.port())));
                    }
                }
            }
        }
        Ok((served != u32::from(SLOTS)).then(|| format!("masters serve {served} slots")))
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.pid().is_some())
    }

    /// What `node` says it is (`CLUSTER NODES`, its `myself` line).
    pub fn role(&self, node: &RedisServer) -> Result<Role, RedisClusterError> {
        let nodes: String = query(node, redis::cmd("CLUSTER").arg("NODES"))?;
        let myself = nodes
            .lines()
            .find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself")))
            .unwrap_or_default();
        let fields: Vec<&str> = myself.split(' ').collect();
        if fields.get(2).is_some_and(|f| f.contains("slave")) {
            return Ok(Role::Replica(
                fields.get(3).copied().unwrap_or_default().to_owned(),
            ));
        }
        let ranges = fields
            .iter()
            .skip(8)
            .filter(|f| !f.starts_with('['))
            .filter_map(|f| match f.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => f.parse().ok().map(|s| (s, s)),
            })
            .collect();
        Ok(Role::Master(ranges))
    }

    /// Indexes of the running nodes that serve slots now.
    pub fn masters(&self) -> Result<Vec<usize>, RedisClusterError> {
        let mut masters = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.pid().is_some() {
                if let Role::Master(ranges) = self.role(node)? {
                    if !ranges.is_empty() {
                        masters.push(i);
                    }
                }
            }
        }
        Ok(masters)
    }

    /// The index of the running master serving `slot`.
    pub fn master_of(&self, slot: u16) -> Result<Option<usize>, RedisClusterError> {
        for i in self.masters()? {
            if let Role::Master(ranges) = self.role(&self.nodes[i])? {
                if ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)) {
                    return Ok(Some(i));
                }
            }
        }
        Ok(None)
    }

    /// Node `i`'s cluster node id.
    pub fn node_id(&self, i: usize) -> Result<String, RedisClusterError> {
        query(&self.nodes[i], redis::cmd("CLUSTER").arg("MYID"))
    }

    /// Moves the first `slots` slots of master `from` to master `to`
    /// with `redis-cli --cluster reshard` (keys and all), while clients
    /// keep working.
    pub fn reshard(&self, from: usize, to: usize, slots: u16) -> Result<(), RedisClusterError> {
        self.cluster_cli(&[
            "reshard".to_owned(),
            format!("127.0.0.1:{}", self.nodes[from].port()),
            "--cluster-from".to_owned(),
            self.node_id(from)?,
            "--cluster-to".to_owned(),
            self.node_id(to)?,
            "--cluster-slots".to_owned(),
            slots.to_string(),
        ])
    }

    /// The hash slot of `key`, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> Result<u16, RedisClusterError> {
        let node = self
            .running()
            .next()
            .ok_or_else(|| RedisClusterError::NotReady {
                waited: Duration::ZERO,
                detail: "no node is running".into(),
            })?;
        query(node, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }
}

/// One command on a fresh connection to `node`.
fn query<T: redis::FromRedisValue>(
    node: &RedisServer,
    cmd: &redis::Cmd,
) -> Result<T, RedisClusterError> {
    let port = node.port();
    let wrap = |source| RedisClusterError::Redis { port, source };
    let client = redis::Client::open(node.url()).map_err(wrap)?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(wrap)?;
    // A paused node must not hang the caller.
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(wrap)?;
    cmd.query(&mut conn).map_err(wrap)
}
