//! `seqs` announcements: about once a second, every live client gets the
//! last seq of each symbol that changed since the previous announcement;
//! once the last tick has been sent, the full set, and from then on the
//! full set every interval so late joiners and new owners learn every tail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tickshard::codec::FeedMessage;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::hub::Control;
use crate::state::Shared;

/// Tracks what was announced last.
#[derive(Debug, Default)]
pub struct Announcer {
    announced: Vec<u64>,
}

impl Announcer {
    /// The `seqs` message for symbols changed since the last call (all of
    /// them when `full`), or `None` when there is nothing to say.
    pub fn next_message(&mut self, shared: &Shared, full: bool) -> Option<FeedMessage> {
        let store = shared.store.read().ok()?;
        let mut seqs = BTreeMap::new();
        for i in 0..store.symbols() {
            let Some((symbol, last)) = store.last_seq_at(i) else {
                break;
            };
            if i >= self.announced.len() {
                self.announced.push(0);
            }
            if full || self.announced[i] != last {
                self.announced[i] = last;
                seqs.insert(symbol, last);
            }
        }
        (!seqs.is_empty()).then_some(FeedMessage::Seqs { seqs })
    }
}

fn broadcast(shared: &Shared, msg: &FeedMessage) {
    let text: Arc<str> = msg.to_json().into();
    for conn in shared.hub.snapshot() {
        match conn.control.try_send(Control::Text(text.clone())) {
            Ok(()) => shared.counters.seqs_sent.add(1),
            Err(_) => shared.counters.seqs_dropped.add(1),
        }
    }
}

/// Announces every `interval` until `shutdown`; `done` turns true once the
/// last tick has been sent.
pub async fn run(
    shared: Arc<Shared>,
    interval: Duration,
    mut done: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let mut announcer = Announcer::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut finished = false;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            changed = done.changed(), if !finished => {
                if changed.is_err() || *done.borrow() {
                    finished = true;
                    if let Some(m) = announcer.next_message(&shared, true) {
                        broadcast(&shared, &m);
                    }
                    ticker.reset();
                }
            }
            _ = ticker.tick() => {
                if let Some(m) = announcer.next_message(&shared, finished) {
                    broadcast(&shared, &m);
                }
            }
        }
    }
}
