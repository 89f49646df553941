//! The registry of live connections (those that said `hello`): what the
//! feed loop distributes over and what `seqs` announcements go to.
//!
//! Each connection has two bounded queues, drained by its writer task:
//! `data` for tick batches (the feed waits when it is full) and `control`
//! for replies, replays and announcements.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use tickshard::codec::WireFormat;
use tickshard::tick::Tick;
use tokio::sync::{mpsc, watch};

/// A message for one connection's writer, other than live ticks.
#[derive(Debug)]
pub enum Control {
    /// Sent on `hello`: the connection's frame format and its client's
    /// ticks-sent counter.
    Hello {
        /// Frame format of ticks and replays from now on.
        format: WireFormat,
        /// Counts the live ticks written to this client.
        ticks_sent: Counter,
    },
    /// A JSON text frame (errors, `seqs`).
    Text(Arc<str>),
    /// Replayed ticks, sent in the connection's format.
    Replay(Vec<Tick>),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// The feed's handle on one live connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection number, unique for the run.
    pub conn: u64,
    /// The `hello` id.
    pub id: Arc<str>,
    /// Tick batches.
    pub data: mpsc::Sender<Vec<Tick>>,
    /// Everything else.
    pub control: mpsc::Sender<Control>,
}

/// Live connections, ordered by connection number.
#[derive(Debug)]
pub struct Hub {
    conns: Mutex<BTreeMap<u64, ConnHandle>>,
    version: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            conns: Mutex::new(BTreeMap::new()),
            version: watch::Sender::new(0),
        }
    }
}

impl Hub {
    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Adds a connection.
    pub fn register(&self, handle: ConnHandle) {
        if let Ok(mut c) = self.conns.lock() {
            c.insert(handle.conn, handle);
        }
        self.bump();
    }

    /// Removes a connection; true if it was registered.
    pub fn remove(&self, conn: u64) -> bool {
        let removed = self
            .conns
            .lock()
            .map(|mut c| c.remove(&conn).is_some())
            .unwrap_or(false);
        if removed {
            self.bump();
        }
        removed
    }

    /// The live connections now.
    pub fn snapshot(&self) -> Vec<ConnHandle> {
        self.conns
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// True when no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}
