//! Refusing a Redis Cluster node, for now. The cluster layer's keys of one
//! partition share a hash slot, but its cluster-wide keys (config,
//! members) and its plain pub/sub are laid out for one server: pointed at a
//! node of a Redis Cluster, the first multi-key script would fail with a
//! `CROSSSLOT` error deep inside. [`refuse`] reads `INFO cluster` at
//! start-up and says so in one line instead.

use redis::aio::ConnectionLike;
use tracing::warn;

use crate::error::ClusterError;
use crate::eviction::info_field;

/// True when an `INFO cluster` reply says cluster mode is on.
pub fn is_cluster_node(info: &str) -> bool {
    info_field(info, "cluster_enabled") == Some("1")
}

/// Refuses a server in cluster mode. A server whose `INFO` cannot be read
/// (a restricted ACL) is let through with a warning.
pub async fn refuse<C: ConnectionLike + Send>(con: &mut C, url: &str) -> Result<(), ClusterError> {
    match redis::cmd("INFO")
        .arg("cluster")
        .query_async::<String>(con)
        .await
    {
        Ok(info) if is_cluster_node(&info) => Err(ClusterError::RedisClusterNode {
            url: url.to_owned(),
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(%url, error = %e, "cannot read INFO cluster; make sure this Redis is not a cluster node");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_cluster() {
        assert!(is_cluster_node("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!is_cluster_node("# Cluster\r\ncluster_enabled:0\r\n"));
        assert!(!is_cluster_node(""));
    }
}
