//! Running a mix of operators per symbol. The built-ins are dispatched
//! statically ([`OpDef`] / [`OpState`] variants, their states stored inline,
//! no allocation per symbol for one of them); a user's operator goes
//! through one dynamic call ([`DynOperator`] / [`DynState`], its `State`
//! type erased). Every call is the same [`Operator`] method either way.

use std::fmt::Debug;
use std::sync::Arc;

use smallvec::SmallVec;

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
}

/// One symbol's state of every configured operator, in the set's order.
/// The definitions stay in the [`OperatorSet`], which every call is given:
/// a symbol's state is only its operators' states.
pub struct SymbolOperators {
    states: SmallVec<[OpState; 1]>,
}

impl Debug for SymbolOperators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.states.iter()).finish()
    }
}

impl SymbolOperators {
    /// A new symbol's states.
    pub(crate) fn init(defs: &[OpDef]) -> Self {
        Self {
            states: defs.iter().map(OpDef::init).collect(),
        }
    }

    /// A stored symbol's states: an operator none of whose fields is
    /// stored (added since the symbol was last written) starts afresh.
    pub(crate) fn load(defs: &[OpDef], stored: &StoredFields<'_>) -> Result<Self, FieldError> {
        let mut states = SmallVec::with_capacity(defs.len());
        for def in defs {
            let state = if def.fields().iter().any(|f| stored.has(f)) {
                def.load(stored)?
            } else {
                def.init()
            };
            states.push(state);
        }
        Ok(Self { states })
    }

    /// Runs every operator of `set` (the set these states were made by)
    /// on `tick`; outputs are appended to `outputs`.
    #[inline]
    pub fn apply(&mut self, set: &OperatorSet, tick: &Tick, outputs: &mut OutputBuf) {
        for (i, (def, state)) in set.defs().iter().zip(self.states.iter_mut()).enumerate() {
            // The set holds fewer than u16::MAX operators (checked when built).
            let mut out = Emit::new(outputs, i as u16, tick.seq);
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
        for (def, state) in set.defs().iter().zip(self.states.iter()) {
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
