//! The processor's HTTP server (axum): `/healthz` and `/api/ownership`
//! here, the data-path routes (`/api/symbols/{SYMBOL}`, `/ingest`) in
//! [`data`], `/metrics` over a metrics registry in [`metrics`] (feed-sim
//! serves its own with it too), the token check of both this server and
//! the dashboard in [`auth`].
//!
//! `/api/ownership` shows this instance's view: for every partition the
//! owner and epoch (`null` when unknown or during a handover; this instance
//! is named only while its local lease validity holds), and the live
//! members with their HTTP addresses.

pub mod auth;
pub mod data;
pub mod metrics;

use std::time::Instant;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterHandle, MemberInfo, PartitionOwner};
use crate::tick::{Epoch, InstanceId, PartitionId};

/// Body of `/api/ownership`.
#[derive(Debug, Clone, Serialize)]
pub struct OwnershipBody {
    /// This instance.
    pub instance: InstanceId,
    /// View version.
    pub version: u64,
    /// One entry per partition.
    pub partitions: Vec<PartitionEntry>,
    /// Live members.
    pub members: Vec<MemberInfo>,
}

/// One partition in `/api/ownership`.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionEntry {
    /// Partition.
    pub partition: PartitionId,
    /// Owner, if known.
    pub owner: Option<InstanceId>,
    /// Its epoch, if known.
    pub epoch: Option<Epoch>,
}

/// The ownership body for `cluster`'s current view.
pub fn ownership_body(cluster: &ClusterHandle) -> OwnershipBody {
    let view = cluster.view();
    let now = Instant::now();
    let partitions = (0..cluster.partitions().get())
        .map(|p| {
            let partition = PartitionId(p);
            let (owner, epoch) = match view.owner(partition) {
                PartitionOwner::Me { .. } => match view.owned_epoch(partition, now) {
                    Some(e) => (Some(cluster.instance().clone()), Some(e)),
                    None => (None, None),
                },
                PartitionOwner::Other { instance, epoch } => (Some(instance.clone()), Some(*epoch)),
                PartitionOwner::Unknown => (None, None),
            };
            PartitionEntry {
                partition,
                owner,
                epoch,
            }
        })
        .collect();
    OwnershipBody {
        instance: cluster.instance().clone(),
        version: view.version(),
        partitions,
        members: view.members().to_vec(),
    }
}

/// The routes, over `cluster`.
pub fn router(cluster: ClusterHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/ownership", get(ownership))
        .with_state(cluster)
}

async fn ownership(State(cluster): State<ClusterHandle>) -> Json<OwnershipBody> {
    Json(ownership_body(&cluster))
}

/// Serves `app` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

pub use data::DataState;
