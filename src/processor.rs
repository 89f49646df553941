//! `tickshard processor`: joins the cluster, serves HTTP, follows
//! ownership changes and runs the cluster runtime until shutdown.
//!
//! The tick data path (feed, router, engine, store) plugs into the
//! ownership changes and inbox drained here; until it does, a handover is
//! acknowledged at once (there is no state to flush) and inbox messages
//! and requests are counted and logged at debug level.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cluster::{Cluster, ClusterChannels, ClusterError, ClusterOptions, OwnershipChange};
use crate::config::ProcessorArgs;
use crate::keys::Keys;
use crate::tick::InstanceId;

/// How long open HTTP connections may delay the exit.
const HTTP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the processor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// `--id` is not a valid instance id.
    #[error("invalid --id {0:?}: use 1-64 characters from A-Z a-z 0-9 _ . -")]
    InvalidId(String),
    /// The HTTP address could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Joining or running the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// The default instance id: `p-<pid>-<4 random hex digits>`.
pub fn default_id() -> String {
    format!("p-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// Runs a processor until `shutdown`, then hands its partitions over and leaves.
pub async fn run(args: ProcessorArgs, shutdown: CancellationToken) -> Result<(), ProcessorError> {
    let raw_id = args.id.clone().unwrap_or_else(default_id);
    let instance: InstanceId = raw_id
        .parse()
        .map_err(|_| ProcessorError::InvalidId(raw_id.clone()))?;
    let listener = TcpListener::bind(args.http)
        .await
        .map_err(|source| ProcessorError::Bind {
            addr: args.http,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ProcessorError::Bind {
            addr: args.http,
            source,
        })?;
    info!(addr = %addr, "http listening");

    let opts = ClusterOptions {
        redis_url: args.cluster.redis.clone(),
        keys: Keys::new(args.cluster.namespace.clone()),
        instance: instance.clone(),
        partitions: args.partitions,
        lease: args.lease(),
        http_addr: Some(addr.to_string()),
    };
    let (handle, runtime, channels) = Cluster::join(opts).await?;
    match &args.feed {
        Some(feed) => {
            info!(feed = %feed, "the tick data path is not wired yet; not connecting to the feed")
        }
        None => info!("no --feed given"),
    }

    let http_stop = CancellationToken::new();
    let http = tokio::spawn(crate::http::serve(
        listener,
        crate::http::router(handle.clone()),
        http_stop.clone(),
    ));
    let drains = tokio::spawn(drain(channels));

    let result = runtime.run(shutdown).await;
    // The runtime has released everything; the channels close with it.
    let _ = drains.await;
    http_stop.cancel();
    match tokio::time::timeout(HTTP_GRACE, http).await {
        Ok(Ok(Err(e))) => warn!(error = %e, "http server ended with an error"),
        Ok(Err(e)) => warn!(error = %e, "http server task failed"),
        Err(_) => {
            warn!(grace = ?HTTP_GRACE, "http connections still open at shutdown; not waiting")
        }
        Ok(Ok(Ok(()))) => {}
    }
    let m = handle.metrics();
    info!(
        instance = %instance,
        leases_acquired = m.leases_acquired,
        leases_released = m.leases_released,
        leases_lost = m.leases_lost,
        renew_failures = m.renew_failures,
        bad_inbox_messages = m.bad_inbox_messages,
        bad_events = m.bad_events,
        "processor stopped"
    );
    result.map_err(ProcessorError::from)
}

/// Stand-in for the data path: acknowledges handovers at once, logs the rest.
async fn drain(channels: ClusterChannels) {
    let ClusterChannels {
        mut ownership,
        mut inbox,
        mut requests,
    } = channels;
    let mut open = (true, true, true);
    while open.0 || open.1 || open.2 {
        tokio::select! {
            c = ownership.recv(), if open.0 => match c {
                Some(OwnershipChange::Acquired { partition, epoch }) => debug!(partition = %partition, epoch = %epoch, "acquired"),
                Some(OwnershipChange::Lost { partition, epoch }) => debug!(partition = %partition, epoch = %epoch, "lost"),
                Some(OwnershipChange::Release { partition, epoch, done }) => {
                    debug!(partition = %partition, epoch = %epoch, "release: nothing to flush yet");
                    let _ = done.send(());
                }
                None => open.0 = false,
            },
            m = inbox.recv(), if open.1 => match m {
                Some(m) => debug!(from = %m.from, bytes = m.payload.len(), "inbox message (no data path yet)"),
                None => open.1 = false,
            },
            r = requests.recv(), if open.2 => match r {
                Some(r) => {
                    debug!(from = %r.from, "request (no handler yet)");
                    if let Err(e) = r.reply(Bytes::from_static(b"{\"error\":\"no handler\"}")).await {
                        debug!(error = %e, "could not reply");
                    }
                }
                None => open.2 = false,
            },
        }
    }
}
