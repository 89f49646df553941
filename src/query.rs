//! Symbol queries across instances: the request a non-owner sends to the
//! owner's inbox, and the owner's answer (its live state, fresher than
//! Redis).

use serde::{Deserialize, Serialize};

use crate::engine::{Bar, SymbolState};
use crate::tick::{Epoch, InstanceId, PartitionId, Price, Symbol};

/// A request for one symbol's live state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolQuery {
    /// The symbol asked for.
    pub symbol: Symbol,
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum QueryReply {
    /// The live state.
    Found {
        /// The state.
        state: SymbolView,
    },
    /// The owner has never seen the symbol.
    NotFound,
    /// The asked instance does not own the symbol's partition (any more).
    NotOwner,
}

/// One symbol's live state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolView {
    /// The symbol.
    pub symbol: Symbol,
    /// Its partition.
    pub partition: PartitionId,
    /// The instance answering (the owner).
    pub owner: InstanceId,
    /// The owner's fencing token for the partition.
    pub epoch: Epoch,
    /// Ticks applied.
    pub count: u64,
    /// Sum of sizes.
    pub volume: u64,
    /// Last applied seq.
    pub last_seq: u64,
    /// Last price.
    pub last_px: Price,
    /// Last size.
    pub last_size: u32,
    /// Volume-weighted average price.
    pub vwap_px: Option<Price>,
    /// The current bar of the first `--bars` width.
    pub bar: Option<Bar>,
    /// Every field of the state as stored: the totals' and each
    /// operator's (`ema_20`, `bars_5m_open`, ...).
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    /// Ticks held ahead of a gap.
    pub pending: usize,
}

impl SymbolView {
    /// The view of `state`.
    pub fn of(
        symbol: Symbol,
        partition: PartitionId,
        owner: InstanceId,
        epoch: Epoch,
        fields: Vec<(String, String)>,
        state: &SymbolState,
    ) -> Self {
        let t = &state.totals;
        Self {
            symbol,
            partition,
            owner,
            epoch,
            count: t.count,
            volume: t.volume,
            last_seq: t.last_seq,
            last_px: t.last_px,
            last_size: t.last_size,
            vwap_px: t.vwap(),
            bar: crate::operator::bars::primary_bar(&fields),
            fields: fields.into_iter().collect(),
            pending: state.pending_len(),
        }
    }
}
