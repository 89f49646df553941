//! Errors of the cluster layer, with classifiers for callers that retry.

use std::time::Duration;

use crate::ids::InstanceId;
use crate::redis_conn::{RedisConfig, RedisConfigError};

/// Why joining or running the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL could not be parsed.
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis did not answer (refused, timed out, DNS).
    #[error("cannot reach Redis at {url}: {reason}")]
    Unreachable {
        /// The URL, with any password removed.
        url: String,
        /// The underlying error.
        reason: String,
    },
    /// Redis refused our credentials.
    #[error("Redis at {url} refused the credentials: {reason}")]
    Auth {
        /// The URL, with any password removed.
        url: String,
        /// The underlying error.
        reason: String,
    },
    /// The Redis server may evict keys (leases, epoch counters).
    #[error(
        "Redis at {url} may evict keys (maxmemory {maxmemory} bytes, maxmemory-policy {policy}): \
         a lease or an epoch counter could vanish under a live owner. Set maxmemory-policy to \
         noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf), or allow it \
         explicitly (--allow-eviction, or ClusterOptions::allow_eviction) if you accept that risk"
    )]
    EvictingRedis {
        /// The URL, with any password removed.
        url: String,
        /// `maxmemory`, bytes.
        maxmemory: u64,
        /// `maxmemory-policy`.
        policy: String,
    },
    /// The server does not know the sharded pub/sub commands.
    #[error(
        "Redis at {url} does not know SSUBSCRIBE ({reason}): tickshard's inboxes are shard \
         channels, which need Redis 7.0 or later"
    )]
    RedisTooOld {
        /// The URL, with any password removed.
        url: String,
        /// What the server said.
        reason: String,
    },
    /// The cluster's keys were laid out by another version.
    #[error(
        "cluster {namespace} was created with key schema {stored} ({key}); this version uses \
         schema {schema}, whose keys carry a hash tag ({namespace}:{{cluster}}:config, \
         {namespace}:{{p7}}:lease:7) and whose inboxes are shard channels, which older \
         instances never hear. Start it under a new namespace (--cluster), or stop every \
         instance and delete the namespace's keys first",
        schema = crate::config::SCHEMA
    )]
    SchemaMismatch {
        /// Namespace.
        namespace: String,
        /// Config key holding the stored value.
        key: String,
        /// The schema stored there.
        stored: String,
    },
    /// The cluster already exists with another partition count.
    #[error(
        "cluster `{namespace}` is configured with {configured} partitions ({key}) but this \
         instance was started with {requested}; use the same partition count or another namespace"
    )]
    PartitionMismatch {
        /// Namespace.
        namespace: String,
        /// Config key holding the stored value.
        key: String,
        /// Partitions stored in `{ns}:{cluster}:config`.
        configured: u32,
        /// Partitions this instance asked for.
        requested: u32,
    },
    /// `{ns}:{cluster}:config` holds something we cannot read.
    #[error("cluster config {key} is unreadable: {reason}")]
    BadConfig {
        /// Config key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Another live instance already uses this id.
    #[error("instance id `{id}` is already in use by a live instance (heartbeating in {key}); pick another id")]
    DuplicateInstance {
        /// The id.
        id: InstanceId,
        /// Members key.
        key: String,
    },
    /// A Redis command failed.
    #[error("Redis {op} failed: {source}")]
    Redis {
        /// What we were doing.
        op: &'static str,
        /// The error.
        #[source]
        source: redis::RedisError,
    },
    /// A Redis command did not answer in time.
    #[error("Redis {op} timed out after {after:?}")]
    Timeout {
        /// What we were doing.
        op: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// Redis answered with something the scripts never return.
    #[error("unexpected Redis reply to {op}: {detail}")]
    Protocol {
        /// What we were doing.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl ClusterError {
    /// The error for Redis options that cannot make a client.
    pub fn from_config(redis: &RedisConfig, e: RedisConfigError) -> Self {
        match e {
            RedisConfigError::InvalidUrl { url, reason } => Self::InvalidUrl { url, reason },
            other => Self::InvalidUrl {
                url: redis.redacted_url(),
                reason: other.to_string(),
            },
        }
    }

    /// True for failures that may go away by themselves (network, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Redis { source, .. } => crate::retry::redis_is_transient(source),
            _ => false,
        }
    }

    pub(crate) fn redis(op: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Redis { op, source }
    }
}

/// Why a request to another instance got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nobody listens on the target's inbox (it is not running).
    #[error("instance `{to}` is not listening")]
    Unreachable {
        /// Target.
        to: InstanceId,
    },
    /// No reply within the timeout.
    #[error("instance `{to}` did not reply within {after:?}")]
    Timeout {
        /// Target.
        to: InstanceId,
        /// The timeout.
        after: Duration,
    },
    /// Publishing the request failed.
    #[error(transparent)]
    Redis(#[from] ClusterError),
}

impl RequestError {
    /// True when trying again (perhaps at another owner) may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Redis(e) => e.is_retryable(),
        }
    }
}
