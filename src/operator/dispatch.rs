//! Running a mix of operators per symbol. The built-ins are dispatched
//! statically ([`OpDef`] / [`OpState`] variants, their states stored inline,
//! no allocation per symbol for one of them); a user's operator goes
//! through one dynamic call ([`DynOperator`] / [`DynState`], its `State`
//! type erased). Every call is the same [`Operator`] method either way.

use std::fmt::Debug;
use std::sync::Arc;

use super::bars::{Bar, Bars};
use super::ema::Ema;
use super::volume_spike::{SpikeState, VolumeSpike};
use super::{Emit, FieldError, FieldWriter, Operator, OperatorSet, OutputBuf, StoredFields};
use crate::tick::Tick;

/// A user's operator, its `State` type erased.
pub(crate) trait DynOperator: Send + Sync {
    fn name(&self) -> &str;
    fn fields(&self) -> Vec<String>;
    fn init_state(&self) -> Box<dyn DynState>;
    fn load_state(&self, stored: &StoredFields<'_>) -> Result<Box<dyn DynState>, FieldError>;
}

/// One symbol's state of a user's operator.
pub(crate) trait DynState: Send + Debug {
    fn apply(&mut self, tick: &Tick, out: &mut Emit<'_>);
    fn save(&self, fields: &mut FieldWriter);
}

/// A user's operator, shared by the states of every symbol.
pub(crate) struct Shared<O>(pub(crate) Arc<O>);

#[derive(Debug)]
struct Bound<O: Operator> {
    op: Arc<O>,
    state: O::State,
}

impl<O: Operator + Debug> DynState for Bound<O> {
    fn apply(&mut self, tick: &Tick, out: &mut Emit<'_>) {
        self.op.apply(&mut self.state, tick, out);
    }

    fn save(&self, fields: &mut FieldWriter) {
        self.op.save(&self.state, fields);
    }
}

impl<O: Operator + Debug> DynOperator for Shared<O> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn fields(&self) -> Vec<String> {
        self.0.fields()
    }

    fn init_state(&self) -> Box<dyn DynState> {
        Box::new(Bound {
            op: Arc::clone(&self.0),
            state: self.0.init(),
        })
    }

    fn load_state(&self, stored: &StoredFields<'_>) -> Result<Box<dyn DynState>, FieldError> {
        Ok(Box::new(Bound {
            op: Arc::clone(&self.0),
            state: self.0.load(stored)?,
        }))
    }
}

/// A configured operator.
#[derive(Clone)]
pub(crate) enum OpDef {
    Bars(Bars),
    Ema(Ema),
    VolumeSpike(VolumeSpike),
    Custom(Arc<dyn DynOperator>),
}

/// One symbol's state of one configured operator.
#[derive(Debug)]
pub(crate) enum OpState {
    Bars(Option<Bar>),
    Ema(Option<f64>),
    VolumeSpike(SpikeState),
    Custom(Box<dyn DynState>),
}

impl OpDef {
    pub(crate) fn name(&self) -> &str {
        match self {
            OpDef::Bars(op) => op.name(),
            OpDef::Ema(op) => op.name(),
            OpDef::VolumeSpike(op) => op.name(),
            OpDef::Custom(op) => op.name(),
        }
    }

    pub(crate) fn fields(&self) -> Vec<String> {
        match self {
            OpDef::Bars(op) => op.fields(),
            OpDef::Ema(op) => op.fields(),
            OpDef::VolumeSpike(op) => op.fields(),
            OpDef::Custom(op) => op.fields(),
        }
    }

    fn init(&self) -> OpState {
        match self {
            OpDef::Bars(op) => OpState::Bars(op.init()),
            OpDef::Ema(op) => OpState::Ema(op.init()),
            OpDef::VolumeSpike(op) => OpState::VolumeSpike(op.init()),
            OpDef::Custom(op) => OpState::Custom(op.init_state()),
        }
    }

    fn load(&self, stored: &StoredFields<'_>) -> Result<OpState, FieldError> {
        Ok(match self {
            OpDef::Bars(op) => OpState::Bars(op.load(stored)?),
            OpDef::Ema(op) => OpState::Ema(op.load(stored)?),
            OpDef::VolumeSpike(op) => OpState::VolumeSpike(op.load(stored)?),
            OpDef::Custom(op) => OpState::Custom(op.load_state(stored)?),
        })
    }
    /// This operator's state of a stored symbol: one none of whose fields
    /// is stored (added since the symbol was last written) starts afresh.
    fn load_or_init(&self, stored: &StoredFields<'_>) -> Result<OpState, FieldError> {
        if self.fields().iter().any(|f| stored.has(f)) {
            self.load(stored)
        } else {
            Ok(self.init())
        }
    }
}

/// A set's operators split for dispatch: the first when it is a bars
/// operator (it is unless `--bars` is empty: every processor keeps one
/// width's bar), whose state every symbol holds inline, then the others.
#[inline]
fn split(defs: &[OpDef]) -> (Option<&Bars>, &[OpDef]) {
    match defs {
        [OpDef::Bars(first), rest @ ..] => (Some(first), rest),
        _ => (None, defs),
    }
}

/// One symbol's state of every configured operator, in the set's order.
/// The definitions stay in the [`OperatorSet`], which every call is given:
/// a symbol's state is only its operators' states. The first bar is held
/// inline and the others need no allocation when there are none, so the
/// default set (one bar width) costs a symbol no allocation and a tick no
/// loop.
pub struct SymbolOperators {
    /// The current bar of the first operator, when that is a bars operator.
    first_bar: Option<Bar>,
    /// The states of the other operators, in order.
    rest: Box<[OpState]>,
}

impl Debug for SymbolOperators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymbolOperators")
            .field("first_bar", &self.first_bar)
            .field("rest", &self.rest)
            .finish()
    }
}

impl SymbolOperators {
    /// A new symbol's states.
    pub(crate) fn init(defs: &[OpDef]) -> Self {
        let (_, rest) = split(defs);
        Self {
            first_bar: None,
            rest: rest.iter().map(OpDef::init).collect(),
        }
    }

    /// A stored symbol's states: an operator none of whose fields is
    /// stored (added since the symbol was last written) starts afresh.
    pub(crate) fn load(defs: &[OpDef], stored: &StoredFields<'_>) -> Result<Self, FieldError> {
        let (first, rest) = split(defs);
        let first_bar = match first {
            Some(bars) if bars.fields().iter().any(|f| stored.has(f)) => bars.load(stored)?,
            _ => None,
        };
        Ok(Self {
            first_bar,
            rest: rest
                .iter()
                .map(|def| def.load_or_init(stored))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Runs every operator of `set` (the set these states were made by)
    /// on `tick`; outputs are appended to `outputs`.
    #[inline]
    pub fn apply(&mut self, set: &OperatorSet, tick: &Tick, outputs: &mut OutputBuf) {
        let (first, rest) = split(set.defs());
        if let Some(bars) = first {
            bars.apply(
                &mut self.first_bar,
                tick,
                &mut Emit::new(outputs, 0, tick.seq),
            );
        }
        if !self.rest.is_empty() {
            Self::apply_each(
                &mut self.rest,
                rest,
                u16::from(first.is_some()),
                tick,
                outputs,
            );
        }
    }

    /// Runs `defs` (the operators after the first bar, the first of them
    /// at index `offset` of the set) on `tick`.
    fn apply_each(
        states: &mut [OpState],
        defs: &[OpDef],
        offset: u16,
        tick: &Tick,
        outputs: &mut OutputBuf,
    ) {
        for (i, (def, state)) in defs.iter().zip(states.iter_mut()).enumerate() {
            // The set holds fewer than u16::MAX operators (checked when built).
            let mut out = Emit::new(outputs, offset + i as u16, tick.seq);
            match (def, state) {
                (OpDef::Bars(op), OpState::Bars(s)) => op.apply(s, tick, &mut out),
                (OpDef::Ema(op), OpState::Ema(s)) => op.apply(s, tick, &mut out),
                (OpDef::VolumeSpike(op), OpState::VolumeSpike(s)) => op.apply(s, tick, &mut out),
                (OpDef::Custom(_), OpState::Custom(s)) => s.apply(tick, &mut out),
                // Each state was made by its own definition.
                _ => {}
            }
        }
    }

    /// Writes every operator's state (`set` as in [`Self::apply`]).
    pub fn save(&self, set: &OperatorSet, fields: &mut FieldWriter) {
        let (first, rest) = split(set.defs());
        if let Some(bars) = first {
            bars.save(&self.first_bar, fields);
        }
        for (def, state) in rest.iter().zip(self.rest.iter()) {
            match (def, state) {
                (OpDef::Bars(op), OpState::Bars(s)) => op.save(s, fields),
                (OpDef::Ema(op), OpState::Ema(s)) => op.save(s, fields),
                (OpDef::VolumeSpike(op), OpState::VolumeSpike(s)) => op.save(s, fields),
                (OpDef::Custom(_), OpState::Custom(s)) => s.save(fields),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::operator::bars::BarWidth;

    fn tick(seq: u64, ts_ns: u64, size: u32) -> Tick {
        Tick::new(
            "A".parse().unwrap(),
            seq,
            "10.5".parse().unwrap(),
            size,
            ts_ns,
        )
        .unwrap()
    }

    fn saved(set: &OperatorSet, states: &SymbolOperators) -> Vec<(String, String)> {
        let mut fields = FieldWriter::new();
        states.save(set, &mut fields);
        fields.into_pairs()
    }

    /// With the first bar inline or not, every state and output index is
    /// the set's: the states load back to what was saved, and outputs are
    /// numbered by the operator's place in the set.
    #[test]
    fn states_round_trip_and_outputs_keep_their_index_whatever_comes_first() {
        let widths: Vec<BarWidth> = ["1s", "1m"].map(|w| w.parse().unwrap()).to_vec();
        let sets = [
            OperatorSet::builtin(&widths, &[3], Some((4, 2.0))).unwrap(),
            OperatorSet::builtin(&[], &[3], Some((4, 2.0))).unwrap(),
            OperatorSet::builtin(&widths[..1], &[], None).unwrap(),
        ];
        for set in sets {
            let mut states = set.init();
            let mut outputs = OutputBuf::default();
            for seq in 1..=40 {
                let size = if seq % 10 == 0 { 1_000 } else { 10 };
                states.apply(&set, &tick(seq, seq * 4_000_000_000, size), &mut outputs);
            }
            let fields = saved(&set, &states);
            let map: HashMap<String, String> = fields.iter().cloned().collect();
            let loaded = set.load(&StoredFields::new(&map)).unwrap();
            assert_eq!(saved(&set, &loaded), fields, "{set:?}");
            let emitted: Vec<&str> = outputs
                .take()
                .iter()
                .filter_map(|o| set.name(o.operator))
                .collect();
            for name in set.names() {
                let expect = name.starts_with("bars_") || name == "volume_spike";
                assert_eq!(emitted.contains(&name), expect, "{name} in {set:?}");
            }
        }
    }
}
