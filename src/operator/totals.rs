//! The built-in totals as an operator: count, volume, notional, VWAP and
//! the last trade of a symbol ([`SymbolTotals`]). The engine holds this
//! state outside the operator list, because its `last_seq` is what
//! sequencing reads, and calls it through the same [`Operator`] API.

use super::{Emit, FieldError, FieldWriter, Operator, StoredFields};
use crate::tick::Tick;
use crate::totals::SymbolTotals;

/// The totals operator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals;

/// The hash fields of the totals: the contract fields, then `notional`
/// and the first and last exchange times, which make recovery exact.
pub const TOTALS_FIELDS: [&str; 9] = [
    "count",
    "volume",
    "notional",
    "last_seq",
    "last_px",
    "last_size",
    "vwap_px",
    "first_ts_ns",
    "last_ts_ns",
];

impl Operator for Totals {
    type State = SymbolTotals;

    fn name(&self) -> &str {
        "totals"
    }

    fn fields(&self) -> Vec<String> {
        TOTALS_FIELDS.iter().map(|f| (*f).to_owned()).collect()
    }

    fn init(&self) -> SymbolTotals {
        SymbolTotals::default()
    }

    #[inline]
    fn apply(&self, state: &mut SymbolTotals, tick: &Tick, _out: &mut Emit<'_>) {
        state.apply(tick);
    }

    fn save(&self, t: &SymbolTotals, fields: &mut FieldWriter) {
        fields.put("count", t.count);
        fields.put("volume", t.volume);
        fields.put("notional", t.notional);
        fields.put("last_seq", t.last_seq);
        fields.put("last_px", t.last_px);
        fields.put("last_size", t.last_size);
        match t.vwap() {
            Some(p) => fields.put("vwap_px", p),
            None => fields.put("vwap_px", ""),
        }
        fields.put("first_ts_ns", t.first_ts_ns);
        fields.put("last_ts_ns", t.last_ts_ns);
    }

    fn load(&self, stored: &StoredFields<'_>) -> Result<SymbolTotals, FieldError> {
        Ok(SymbolTotals {
            count: stored.get("count")?,
            volume: stored.get("volume")?,
            notional: stored.get("notional")?,
            last_seq: stored.get("last_seq")?,
            last_px: stored.get("last_px")?,
            last_size: stored.get("last_size")?,
            first_ts_ns: stored.get("first_ts_ns")?,
            last_ts_ns: stored.get("last_ts_ns")?,
        })
    }
}
