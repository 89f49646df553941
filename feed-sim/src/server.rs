//! The accept loop: one task per WebSocket client, tracked so shutdown can
//! wait for them (with a grace period).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection;
use crate::state::Shared;

/// How long shutdown waits for connections to say goodbye.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Accepts clients until `shutdown`, then waits for their tasks.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracing::debug!(peer = %peer, "connection accepted");
                tracker.spawn(connection::serve(stream, shared.clone(), shutdown.clone()));
            }
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within the grace period");
    }
}
