//! Exponential moving average of the trade price over a span of ticks:
//! `ema = ema + α (price − ema)` with `α = 2 / (span + 1)`, starting at the
//! first price. Stored as field `ema_<span>` (an `f64` that reads back
//! exactly). It emits no outputs.

use super::{Emit, FieldError, FieldWriter, Operator, StoredFields};
use crate::tick::Tick;

/// The EMA operator of one span.
#[derive(Debug, Clone)]
pub struct Ema {
    alpha: f64,
    name: String,
}

impl Ema {
    /// An EMA over `span` ticks (at least 1).
    pub fn new(span: u32) -> Self {
        let span = span.max(1);
        Self {
            alpha: 2.0 / (f64::from(span) + 1.0),
            name: format!("ema_{span}"),
        }
    }
}

/// Price as a float: units are 1/10,000.
pub(crate) fn price_f64(tick: &Tick) -> f64 {
    tick.price.units() as f64 / 10_000.0
}

impl Operator for Ema {
    type State = Option<f64>;

    fn name(&self) -> &str {
        &self.name
    }

    fn fields(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn init(&self) -> Option<f64> {
        None
    }

    #[inline]
    fn apply(&self, state: &mut Option<f64>, tick: &Tick, _out: &mut Emit<'_>) {
        let px = price_f64(tick);
        *state = Some(match *state {
            None => px,
            Some(ema) => ema + self.alpha * (px - ema),
        });
    }

    fn save(&self, state: &Option<f64>, fields: &mut FieldWriter) {
        if let Some(ema) = state {
            fields.put(&self.name, ema);
        }
    }

    fn load(&self, stored: &StoredFields<'_>) -> Result<Option<f64>, FieldError> {
        let v: f64 = stored.get(&self.name)?;
        if v.is_finite() {
            Ok(Some(v))
        } else {
            Err(FieldError {
                field: self.name.clone(),
                value: v.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn ema_follows_the_price_and_round_trips_exactly() {
        let op = Ema::new(3);
        let mut state = op.init();
        let mut outputs = crate::operator::OutputBuf::default();
        for (seq, px) in [(1, "10"), (2, "12"), (3, "11.3333")] {
            let t = Tick::new("A".parse().unwrap(), seq, px.parse().unwrap(), 1, seq).unwrap();
            op.apply(&mut state, &t, &mut Emit::new(&mut outputs, 0, seq));
        }
        // α = 0.5: 10 → 11 → 11.16665
        let ema = state.unwrap();
        assert!((ema - 11.16665).abs() < 1e-9);
        assert!(outputs.is_empty());
        let mut w = FieldWriter::new();
        op.save(&state, &mut w);
        let map: HashMap<String, String> = w.into_pairs().into_iter().collect();
        assert_eq!(op.load(&StoredFields::new(&map)).unwrap(), state);
    }
}
