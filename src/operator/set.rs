//! The configured operators: the built-ins chosen on the command line
//! (`--bars`, `--ema`, `--volume-spike`) and any a program adds, checked
//! once (names and fields unique) and used by every symbol of the engine.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use super::bars::{BarWidth, Bars};
use super::dispatch::{OpDef, Shared};
use super::ema::Ema;
use super::totals::TOTALS_FIELDS;
use super::volume_spike::VolumeSpike;
use super::{FieldError, Operator, StoredFields, SymbolOperators, MAX_OPERATOR_FIELDS};

/// Hash fields written by the flush itself.
const RESERVED_FIELDS: [&str; 3] = ["fence", "partition", "updated_ns"];

/// Why an operator cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The name is not `[a-z0-9_]{1,40}`.
    #[error("operator name {0:?} is invalid: use 1-40 characters from a-z 0-9 _")]
    InvalidName(String),
    /// Two operators share a name.
    #[error("two operators are named {0:?}")]
    DuplicateName(String),
    /// A field is already written by another operator or the flush.
    #[error("operator {operator:?} writes field {field:?}, which {owner} already writes")]
    DuplicateField {
        /// The operator added.
        operator: String,
        /// The field.
        field: String,
        /// Who writes it already.
        owner: String,
    },
    /// An operator declares more fields than a flush writes for one.
    #[error("operator {0:?} declares more than {MAX_OPERATOR_FIELDS} fields")]
    TooManyFields(String),
    /// More operators than the output ids can number.
    #[error("too many operators (at most {})", u16::MAX)]
    TooMany,
}

/// The operators every symbol runs, in order.
#[derive(Clone)]
pub struct OperatorSet {
    ops: Arc<[OpDef]>,
}

impl Default for OperatorSet {
    fn default() -> Self {
        Self {
            ops: Arc::from(Vec::new()),
        }
    }
}

impl Debug for OperatorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl OperatorSet {
    /// No operators besides the totals.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-ins: bars at each width (the first keeps the contract
    /// field names), an EMA per span, and the volume spike signal
    /// `(window, factor)` if asked for.
    pub fn builtin(
        bars: &[BarWidth],
        ema_spans: &[u32],
        volume_spike: Option<(u32, f64)>,
    ) -> Result<Self, OperatorError> {
        let mut set = Self::new();
        for (i, width) in bars.iter().enumerate() {
            set.add(OpDef::Bars(Bars::new(*width, i == 0)))?;
        }
        for span in ema_spans {
            set.add(OpDef::Ema(Ema::new(*span)))?;
        }
        if let Some((window, factor)) = volume_spike {
            set.add(OpDef::VolumeSpike(VolumeSpike::new(window, factor)))?;
        }
        Ok(set)
    }

    /// Adds `op` after the others.
    pub fn push<O: Operator + Debug>(&mut self, op: O) -> Result<(), OperatorError> {
        self.add(OpDef::Custom(Arc::new(Shared(Arc::new(op)))))
    }

    fn add(&mut self, op: OpDef) -> Result<(), OperatorError> {
        let name = op.name().to_owned();
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid || name == "totals" {
            return Err(OperatorError::InvalidName(name));
        }
        if self.ops.len() >= usize::from(u16::MAX) {
            return Err(OperatorError::TooMany);
        }
        if self.ops.iter().any(|o| o.name() == name) {
            return Err(OperatorError::DuplicateName(name));
        }
        let fields = op.fields();
        if fields.len() > MAX_OPERATOR_FIELDS {
            return Err(OperatorError::TooManyFields(name));
        }
        let mut taken: HashSet<String> = HashSet::new();
        for field in fields {
            let owner = if TOTALS_FIELDS.contains(&field.as_str()) {
                Some("the totals".to_owned())
            } else if RESERVED_FIELDS.contains(&field.as_str()) {
                Some("the flush".to_owned())
            } else if !taken.insert(field.clone()) {
                Some(format!("{name} itself"))
            } else {
                self.ops
                    .iter()
                    .find(|o| o.fields().contains(&field))
                    .map(|o| format!("operator {:?}", o.name()))
            };
            if let Some(owner) = owner {
                return Err(OperatorError::DuplicateField {
                    operator: name,
                    field,
                    owner,
                });
            }
        }
        let mut ops = self.ops.to_vec();
        ops.push(op);
        self.ops = ops.into();
        Ok(())
    }

    /// The operators' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.ops.iter().map(|o| o.name()).collect()
    }

    /// The name of the operator at `index`.
    pub fn name(&self, index: u16) -> Option<&str> {
        self.ops.get(usize::from(index)).map(|o| o.name())
    }

    /// Number of operators (without the totals).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True with no operators besides the totals.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(crate) fn defs(&self) -> &[OpDef] {
        &self.ops
    }

    /// A new symbol's states.
    pub fn init(&self) -> SymbolOperators {
        SymbolOperators::init(&self.ops)
    }

    /// A stored symbol's states: an operator none of whose fields is
    /// stored (added since the symbol was last written) starts afresh.
    pub fn load(&self, stored: &StoredFields<'_>) -> Result<SymbolOperators, FieldError> {
        SymbolOperators::load(&self.ops, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fields_must_be_unique() {
        let w: BarWidth = "1m".parse().unwrap();
        let mut set = OperatorSet::builtin(&[w], &[20], Some((50, 4.0))).unwrap();
        assert_eq!(set.names(), vec!["bars_1m", "ema_20", "volume_spike"]);
        assert_eq!(
            set.push(Ema::new(20)),
            Err(OperatorError::DuplicateName("ema_20".into()))
        );
        // A second width with the contract names collides with the first.
        assert!(matches!(
            set.push(Bars::new("5m".parse().unwrap(), true)),
            Err(OperatorError::DuplicateField { .. })
        ));
        assert!(OperatorSet::builtin(&[w, w], &[], None).is_err());
    }
}
