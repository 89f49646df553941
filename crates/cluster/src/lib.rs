//! Partition ownership and instance-to-instance messaging over Redis: a
//! library any service can use to split P partitions of its own resources
//! between instances. It knows nothing of what the partitions hold.
//!
//! # Use
//!
//! [`Cluster::join`] connects, checks `{ns}:{cluster}:config`, subscribes to this
//! instance's inbox and `{ns}:events`, and registers the member. It returns
//! a [`ClusterHandle`] (cloneable: ownership view, messaging, metrics), the
//! [`ClusterRuntime`] to run (leases, assignment, handover, failover) and
//! the [`ClusterChannels`] the service must drain: ownership changes,
//! inbox data and requests.
//!
//! # Quickstart
//!
//! A counter per key, kept by whichever instance owns the key's partition;
//! any instance can be asked, and a retried request id is added once:
//!
//! ```no_run
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//!
//! use tickshard_cluster::keys::ClusterKeys;
//! use tickshard_cluster::partition::partition_of_key;
//! use tickshard_cluster::{
//!     Cluster, ClusterOptions, FencedScript, FencedWrite, OwnershipChange, PartitionOwner,
//!     WriteOutcome,
//! };
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ClusterKeys::new("counters");
//! let (cluster, runtime, mut channels) = Cluster::join(ClusterOptions {
//!     redis: "redis://127.0.0.1:6379/".into(),
//!     keys: keys.clone(),
//!     instance: "a".parse()?,
//!     partitions: NonZeroU32::new(16).unwrap(),
//!     lease: Duration::from_secs(2),
//!     http_addr: None,
//!     allow_eviction: false,
//! })
//! .await?;
//! let shutdown = CancellationToken::new();
//! tokio::spawn(runtime.run(shutdown.clone()));
//! // Drain the ownership changes (writes are fenced, so a release can be
//! // acknowledged at once) and answer other instances' requests.
//! tokio::spawn(async move {
//!     while let Some(change) = channels.ownership.recv().await {
//!         if let OwnershipChange::Release { done, .. } = change {
//!             let _ = done.send(());
//!         }
//!     }
//! });
//! tokio::spawn(async move {
//!     while let Some(request) = channels.requests.recv().await {
//!         // Parse request.payload, apply it as below, reply with the total.
//!         let _ = request.reply(b"total 5".to_vec().into()).await;
//!     }
//! });
//!
//! // Add 5 to "cart-7", once, if we own it; otherwise ask the owner.
//! let add = FencedScript::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
//! let p = partition_of_key(b"cart-7", cluster.partitions());
//! match cluster.view().owner(p) {
//!     PartitionOwner::Me { epoch, .. } => {
//!         let write = FencedWrite {
//!             partition: p,
//!             epoch: *epoch,
//!             // Unique within the partition: name the key, then the request.
//!             id: Some("cart-7:request-1"),
//!             retention: None,
//!             keys: vec![keys.named("total:cart-7")],
//!             args: vec![b"5".to_vec()],
//!         };
//!         match cluster.fenced_write(&add, &write).await? {
//!             WriteOutcome::Applied(total) | WriteOutcome::Duplicate(total) => {
//!                 println!("total {}", String::from_utf8_lossy(&total))
//!             }
//!             WriteOutcome::NotOwner => println!("ownership moved; ask again"),
//!             WriteOutcome::Refused(why) => println!("refused: {why}"),
//!         }
//!     }
//!     PartitionOwner::Other { instance, .. } => {
//!         let answer = cluster
//!             .request(instance, b"add cart-7 5 request-1".to_vec().into(), Duration::from_secs(2))
//!             .await?;
//!         println!("{instance} says {}", String::from_utf8_lossy(&answer));
//!     }
//!     _ => println!("no owner yet"),
//! }
//! shutdown.cancel();
//! # Ok(())
//! # }
//! ```
//!
//! `examples/resources.rs` in the repository is the whole service (HTTP,
//! forwarding, broadcasts, errors), and the README has its commands.
//!
//! # Modules
//!
//! - [`connection`]: [`RedisConn`], one connection type for a single
//!   Redis server or a Redis Cluster (found by itself), and everything
//!   that differs between the two.
//! - [`config`]: join options, derived timings, `{ns}:{cluster}:config`.
//! - [`membership`]: heartbeats, pruning, unique ids, the full read.
//! - [`lease`]: the acquire / renew / release Lua scripts (fencing).
//! - [`partition`]: which partition a key of the service belongs to.
//! - [`assign`]: the pure assignment and planning decision.
//! - [`ownership`]: the ownership view handed to the data path.
//! - [`events`]: the JSON events on `{ns}:events`.
//! - [`messaging`]: the inbox envelope and request/reply pairing.
//! - [`observer`]: the read-only view of ownership for tools that watch a
//!   cluster without joining it (typed leases, typed events).
//! - [`eviction`]: a Redis that may evict keys is refused at join.
//! - [`fenced`]: a service's own write over one partition's keys, run only
//!   by the owner at its epoch and at most once per idempotency id.
//! - [`credit`]: credit-based flow control of data messages (charge on
//!   send, cumulative acks from the consumer), so a slow receiver slows
//!   its senders instead of growing Redis's buffers.
//! - `handle`, `join`, `subscriber`, [`runtime`]: the I/O around them.
//!
//! # Guarantees and their limits
//!
//! - At most one instance *believes* it owns a partition at a given epoch:
//!   epochs come from `INCR {ns}:{p<p>}:epoch:{p}` inside the acquire script, and
//!   an instance stops using a lease when its own monotonic clock says it
//!   may have lapsed (from when the last successful renew was sent, minus
//!   a safety margin), before Redis can hand it to anyone else. Writers
//!   must still fence their writes with the epoch (compare the lease value
//!   in the same script), since a paused process can wake up mid-write.
//! - A clean leave (SIGTERM) hands partitions over at once; a crash is
//!   noticed when the leases expire (about one TTL), and orphaned
//!   partitions are taken after a further grace of TTL/4. The member TTL
//!   equals the lease TTL, so a crashed member leaves the member set as
//!   its leases expire.
//!
//! # Redis restarts
//!
//! - With AOF (or any persistence that restores a *prefix* of the write
//!   history, such as `appendfsync everysec` or an RDB snapshot), the
//!   `{ns}:{p<p>}:epoch:{p}` counters and any state fenced with them come back
//!   together: if a write fenced with epoch e survived, so did the `INCR`
//!   that produced e, so new epochs stay larger than every surviving fence.
//! - Without persistence, a restart loses every key: epochs restart at 1,
//!   but the state they fenced (e.g. `{ns}:*:sym:*`) is gone too, so no
//!   stale fence can beat them. Running instances see their renews refused
//!   (`Lost`), re-register (`member_joined`), recreate `{ns}:{cluster}:config` and
//!   acquire afresh.
//! - What is *not* supported: losing the epoch counters while keeping the
//!   data they fenced (e.g. deleting `{ns}:*:epoch:*` by hand, or keeping the
//!   data in another Redis). Run Redis with AOF if the data must survive.
//!
//! # Redis Cluster
//!
//! - Every key of a partition is in the partition's hash slot, so a
//!   fenced write stays one script. Scripts over many partitions (acquire,
//!   renew) run once per partition on a cluster, all at once.
//! - A lease won counts only once the replicas in sync with the master
//!   serving its slot hold it (`WAIT` on that master), so a promoted
//!   replica cannot hand its epoch out again.
//! - Inboxes are shard channels, published to and subscribed on the master
//!   serving their slot; after a failover or a reshard the subscriber
//!   subscribes again and the runtime re-reads everything.

pub mod assign;
pub mod clock;
pub mod config;
pub mod connection;
pub mod counter;
pub mod credit;
pub mod error;
pub mod events;
pub mod eviction;
pub mod fenced;
mod handle;
pub mod ids;
mod join;
pub mod keys;
pub mod lease;
pub mod membership;
pub mod messaging;
mod noted;
pub mod observer;
pub mod ownership;
pub mod partition;
pub mod redis_conn;
pub mod retry;
pub mod runtime;
mod subscriber;

use tokio::sync::mpsc;

pub use config::ClusterOptions;
pub use connection::{ConnOptions, ConnectError, Deployment, RedisConn};
pub use error::{ClusterError, RequestError};
pub use events::ClusterEvent;
pub use fenced::{FencedScript, FencedWrite, WriteOutcome};
pub use handle::{BroadcastMessage, ClusterHandle, ClusterMetrics, InboxMessage, IncomingRequest};
pub use membership::MemberInfo;
pub use ownership::{OwnershipView, PartitionOwner};
pub use runtime::{ClusterRuntime, OwnershipChange};

/// Entry point: see [`Cluster::join`].
#[derive(Debug)]
pub struct Cluster;

/// The channels a joined instance must drain (all bounded).
#[derive(Debug)]
pub struct ClusterChannels {
    /// Ownership changes, in order. Not draining it stalls the runtime.
    pub ownership: mpsc::Receiver<OwnershipChange>,
    /// Data messages from other instances. A slow consumer slows the
    /// pub/sub connection (pub/sub is at-most-once anyway).
    pub inbox: mpsc::Receiver<InboxMessage>,
    /// Requests this instance must answer.
    pub requests: mpsc::Receiver<IncomingRequest>,
}
