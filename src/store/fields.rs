//! The `{ns}:{p<p>}:sym:{SYMBOL}` hash layout: encoding a symbol's state into
//! field/value pairs and decoding it back, exactly.
//!
//! Contract fields: `count`, `volume`, `last_seq`, `last_px`, `last_size`,
//! `vwap_px`, `open`, `high`, `low`, `close`, `bar_start_ns`, `fence`,
//! `partition`, `updated_ns` (prices as decimals with 4 places). Extra fields
//! make recovery exact: `notional` (sum of price units × size, so VWAP can
//! continue without rounding drift), `first_ts_ns`, `last_ts_ns`,
//! `bar_volume`, `bar_count`.

use std::collections::HashMap;

use crate::engine::{Bar, SymbolRecord};
use crate::tick::Price;
use crate::totals::SymbolTotals;

/// A stored field that could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored field {field:?} has unreadable value {value:?}")]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// Its value (truncated).
    pub value: String,
}

/// Field/value pairs of one record (without `fence`, `partition`,
/// `updated_ns`, which the flush script adds).
pub fn encode(record: &SymbolRecord) -> Vec<(&'static str, String)> {
    let t = &record.totals;
    let mut out = vec![
        ("count", t.count.to_string()),
        ("volume", t.volume.to_string()),
        ("notional", t.notional.to_string()),
        ("last_seq", t.last_seq.to_string()),
        ("last_px", t.last_px.to_string()),
        ("last_size", t.last_size.to_string()),
        (
            "vwap_px",
            t.vwap().map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("first_ts_ns", t.first_ts_ns.to_string()),
        ("last_ts_ns", t.last_ts_ns.to_string()),
    ];
    if let Some(bar) = &record.bar {
        out.extend([
            ("open", bar.open.to_string()),
            ("high", bar.high.to_string()),
            ("low", bar.low.to_string()),
            ("close", bar.close.to_string()),
            ("bar_start_ns", bar.start_ns.to_string()),
            ("bar_volume", bar.volume.to_string()),
            ("bar_count", bar.count.to_string()),
        ]);
    }
    out
}

/// Reads a stored hash back into totals and the current bar.
pub fn decode(map: &HashMap<String, String>) -> Result<(SymbolTotals, Option<Bar>), FieldError> {
    fn get<T: std::str::FromStr>(
        map: &HashMap<String, String>,
        field: &'static str,
    ) -> Result<T, FieldError> {
        let value = map.get(field).map(String::as_str).unwrap_or("");
        value.parse().map_err(|_| FieldError {
            field,
            value: value.chars().take(40).collect(),
        })
    }
    let totals = SymbolTotals {
        count: get(map, "count")?,
        volume: get(map, "volume")?,
        notional: get(map, "notional")?,
        last_seq: get(map, "last_seq")?,
        last_px: get::<Price>(map, "last_px")?,
        last_size: get(map, "last_size")?,
        first_ts_ns: get(map, "first_ts_ns")?,
        last_ts_ns: get(map, "last_ts_ns")?,
    };
    let bar = if map.contains_key("bar_start_ns") {
        Some(Bar {
            start_ns: get(map, "bar_start_ns")?,
            open: get(map, "open")?,
            high: get(map, "high")?,
            low: get(map, "low")?,
            close: get(map, "close")?,
            volume: get(map, "bar_volume")?,
            count: get(map, "bar_count")?,
        })
    } else {
        None
    };
    Ok((totals, bar))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bar::fold_bar;
    use crate::tick::Tick;

    #[test]
    fn records_round_trip_exactly() {
        let mut totals = SymbolTotals::default();
        let mut bar = None;
        for (seq, px, size) in [(1, "187.25", 100), (2, "187.2501", 7), (3, "186.9", 300)] {
            let t = Tick::new(
                "AAPL".parse().unwrap(),
                seq,
                px.parse().unwrap(),
                size,
                seq * 1000,
            )
            .unwrap();
            totals.apply(&t);
            fold_bar(&mut bar, &t, 60_000_000_000);
        }
        let record = SymbolRecord {
            symbol: "AAPL".parse().unwrap(),
            totals,
            bar,
            completed: vec![],
        };
        let map: HashMap<String, String> = encode(&record)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(map["last_px"], "186.9000");
        assert_eq!(map["vwap_px"], totals.vwap().unwrap().to_string());
        assert_eq!(decode(&map).unwrap(), (totals, bar));
    }

    #[test]
    fn unreadable_fields_are_errors() {
        let mut map = HashMap::new();
        map.insert("count".to_owned(), "x".to_owned());
        assert_eq!(decode(&map).unwrap_err().field, "count");
    }
}
