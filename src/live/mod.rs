//! Live results: the state updates and operator outputs of chosen symbols,
//! streamed to WebSocket clients of any instance as their owners persist
//! them.
//!
//! The owner's flush script publishes, atomically with what it writes,
//! one message on `{ns}:{p<p>}:live` per chunk of symbols, but only while
//! the key `{ns}:{p<p>}:watched` exists. So an update reaches watchers
//! exactly when the state is stored: in sequence order, each tick range
//! once, across retries, crashes and handovers (a fenced-off owner's
//! script publishes nothing). An update covers the ticks
//! `from_seq..=last_seq` applied since the previous stored state.
//!
//! [`LiveHub`] is the one subscriber of an instance: it subscribes to the
//! partitions its clients watch, keeps their `watched` keys alive, sends
//! each client a snapshot of the stored state and then every newer update
//! of its symbols. A client's queue is bounded; a client that falls
//! behind is dropped, never the cluster. When the subscription itself is
//! lost (Redis restarted), every client is dropped: updates published
//! meanwhile are gone, and a client that reconnects starts from a fresh
//! snapshot.

pub mod hub;
pub mod protocol;
pub mod ws;

pub use hub::{LiveError, LiveHub, Watch};
