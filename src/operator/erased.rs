//! Operators behind one object type, so the engine holds any mix of them:
//! a configured operator becomes an `Arc<dyn DynOperator>`, and each
//! symbol's state of it a `Box<dyn DynState>` that carries the operator.

use std::fmt::Debug;
use std::sync::Arc;

use super::{Emit, FieldError, FieldWriter, Operator, Output, StoredFields};
use crate::tick::Tick;

/// A configured operator, its `State` type erased.
pub(crate) trait DynOperator: Send + Sync {
    fn name(&self) -> &str;
    fn fields(&self) -> Vec<String>;
    fn init_state(&self) -> Box<dyn DynState>;
    fn load_state(&self, stored: &StoredFields<'_>) -> Result<Box<dyn DynState>, FieldError>;
}

/// One symbol's state of one operator.
pub(crate) trait DynState: Send + Debug {
    fn apply(&mut self, tick: &Tick, out: &mut Emit<'_>);
    fn save(&self, fields: &mut FieldWriter);
}

/// An operator shared by the states of every symbol.
pub(crate) struct Shared<O>(pub(crate) Arc<O>);

#[derive(Debug)]
struct Bound<O: Operator> {
    op: Arc<O>,
    state: O::State,
}

impl<O: Operator + Debug> DynState for Bound<O> {
    #[inline]
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

/// One symbol's state of every configured operator, in the set's order.
#[derive(Debug, Default)]
pub struct SymbolOperators {
    states: Vec<Box<dyn DynState>>,
}

impl SymbolOperators {
    pub(crate) fn new(states: Vec<Box<dyn DynState>>) -> Self {
        Self { states }
    }

    /// Runs every operator on `tick`; outputs are appended to `outputs`.
    #[inline]
    pub fn apply(&mut self, tick: &Tick, outputs: &mut Vec<Output>) {
        for (i, state) in self.states.iter_mut().enumerate() {
            // The set holds at most u16::MAX operators (checked when built).
            let mut emit = Emit::new(outputs, i as u16, tick.seq);
            state.apply(tick, &mut emit);
        }
    }

    /// Writes every operator's state.
    pub fn save(&self, fields: &mut FieldWriter) {
        for state in &self.states {
            state.save(fields);
        }
    }
}
