//! The operator API: per-symbol computations that the engine runs on every
//! applied tick, with the guarantees of the built-ins.
//!
//! An operator is a value of a type implementing [`Operator`]; each symbol
//! gets its own [`Operator::State`]. tickshard does the rest:
//!
//! - **Order.** [`Operator::apply`] sees a symbol's ticks in sequence
//!   order, each exactly once in the stored result, whatever crashes,
//!   replays and handovers happen. It must be deterministic: a function of
//!   the state and the tick (its exchange time `ts_ns`, never the wall
//!   clock), so that a new owner continuing from the stored state computes
//!   what one process would have.
//! - **State.** [`Operator::save`] writes the state as fields of the
//!   symbol's hash `{ns}:{p<p>}:sym:<SYMBOL>`, next to the built-ins, in
//!   the fenced flush; [`Operator::load`] reads it back on a new owner.
//!   Fields must round-trip exactly (integers, or `f64` through `{}`).
//! - **Outputs.** [`Emit::emit`] appends an entry to the stream
//!   `{ns}:{p<p>}:out:<operator>:<SYMBOL>` with id `<seq>-<n>` (the tick's
//!   sequence number, then the index of the output within that tick),
//!   written in the same fenced script as the state: a replay, a retry or
//!   a new owner never writes an entry twice, and a crash never loses one.
//!
//! The built-ins are operators on this API: [`totals::Totals`] (count,
//! volume, VWAP, last trade; the engine's sequencing reads its
//! `last_seq`), [`bars::Bars`] at each `--bars` width, and the optional
//! [`ema::Ema`] and [`volume_spike::VolumeSpike`]. [`OperatorSet`] is the
//! configured list.

pub mod bars;
mod dispatch;
pub mod ema;
mod fields;
mod set;
pub mod totals;
pub mod volume_spike;

use std::fmt::Debug;

pub use dispatch::SymbolOperators;
pub use fields::{FieldError, FieldWriter, StoredFields};
pub use set::{OperatorError, OperatorSet};

use crate::tick::Tick;

/// A per-symbol computation. See the [module docs](self) for the rules.
pub trait Operator: Send + Sync + 'static {
    /// One symbol's state.
    type State: Send + Debug + 'static;

    /// The operator's name, `[a-z0-9_]{1,40}`, unique among the
    /// configured operators; it names the output streams.
    fn name(&self) -> &str;

    /// The hash fields [`Self::save`] writes; no two operators may share
    /// one.
    fn fields(&self) -> Vec<String>;

    /// The state of a symbol before its first tick.
    fn init(&self) -> Self::State;

    /// Folds one tick in; outputs go to `out`.
    fn apply(&self, state: &mut Self::State, tick: &Tick, out: &mut Emit<'_>);

    /// Writes the state as hash fields.
    fn save(&self, state: &Self::State, fields: &mut FieldWriter);

    /// Reads the state back from a stored hash that holds at least one of
    /// [`Self::fields`] (a hash holding none starts from [`Self::init`]).
    fn load(&self, stored: &StoredFields<'_>) -> Result<Self::State, FieldError>;
}

/// Most fields of one output entry.
pub const MAX_OUTPUT_FIELDS: usize = 256;

/// Most hash fields one operator may declare.
pub const MAX_OPERATOR_FIELDS: usize = 256;

/// One output entry, waiting for the next flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Index of the operator in the [`OperatorSet`].
    pub operator: u16,
    /// The tick's sequence number: the first part of the entry id.
    pub seq: u64,
    /// Index of this output among the tick's outputs of this operator.
    pub index: u32,
    /// Field/value pairs of the entry.
    pub fields: Vec<(&'static str, String)>,
}

impl Output {
    /// The stream entry id, `<seq>-<index>`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.seq, self.index)
    }
}

/// One symbol's outputs waiting for the next flush, in order. Empty costs
/// one pointer and no allocation: most ticks emit nothing.
#[derive(Debug, Default)]
// One pointer rather than a `Vec`'s three words: it sits in every symbol's
// state, and a smaller state keeps more symbols in cache.
#[allow(clippy::box_collection)]
pub struct OutputBuf(Option<Box<Vec<Output>>>);

impl OutputBuf {
    /// Outputs waiting.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }

    /// True with none waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, output: Output) {
        self.0.get_or_insert_with(Default::default).push(output);
    }

    /// Takes every output waiting.
    pub fn take(&mut self) -> Vec<Output> {
        self.0.take().map(|v| *v).unwrap_or_default()
    }

    /// Puts `earlier` (outputs of a flush that failed) back in front.
    pub fn prepend(&mut self, mut earlier: Vec<Output>) {
        if earlier.is_empty() {
            return;
        }
        earlier.append(&mut self.take());
        self.0 = Some(Box::new(earlier));
    }
}

/// Where an operator's [`Operator::apply`] puts its outputs.
#[derive(Debug)]
pub struct Emit<'a> {
    outputs: &'a mut OutputBuf,
    operator: u16,
    seq: u64,
    next_index: u32,
}

impl<'a> Emit<'a> {
    pub(crate) fn new(outputs: &'a mut OutputBuf, operator: u16, seq: u64) -> Self {
        Self {
            outputs,
            operator,
            seq,
            next_index: 0,
        }
    }

    /// Appends one entry to the operator's stream of this symbol. An entry
    /// needs at least one field (an empty one is not written); fields past
    /// [`MAX_OUTPUT_FIELDS`] are dropped.
    pub fn emit(&mut self, mut fields: Vec<(&'static str, String)>) {
        if fields.is_empty() {
            return;
        }
        fields.truncate(MAX_OUTPUT_FIELDS);
        self.outputs.push(Output {
            operator: self.operator,
            seq: self.seq,
            index: self.next_index,
            fields,
        });
        self.next_index += 1;
    }
}
