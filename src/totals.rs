//! Exact per-symbol aggregates: count, volume, notional, last trade and VWAP.
//!
//! The feed's ground truth and the processor's engine both fold ticks into a
//! [`SymbolTotals`], so the two are computed by the same integer arithmetic
//! and compare as strings. VWAP is `notional / volume` with `notional` the sum
//! of `price_units × size` in `u128`, rounded to the nearest 0.0001, halves up.

use serde::{Deserialize, Serialize};

use crate::tick::{Price, Tick};

/// Running aggregates of one symbol's applied ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SymbolTotals {
    /// Ticks applied.
    pub count: u64,
    /// Sum of sizes.
    pub volume: u64,
    /// Sum of `price_units × size` (price units are 1/10,000).
    pub notional: u128,
    /// Sequence number of the last applied tick (0 before any).
    pub last_seq: u64,
    /// Price of the last applied tick.
    pub last_px: Price,
    /// Size of the last applied tick.
    pub last_size: u32,
    /// Exchange time of the first applied tick.
    pub first_ts_ns: u64,
    /// Exchange time of the last applied tick.
    pub last_ts_ns: u64,
}

impl SymbolTotals {
    /// Folds one tick in. The caller decides ordering; this only adds.
    pub fn apply(&mut self, tick: &Tick) {
        if self.count == 0 {
            self.first_ts_ns = tick.ts_ns;
        }
        self.count += 1;
        self.volume += u64::from(tick.size);
        self.notional += tick.price.units() as u128 * u128::from(tick.size);
        self.last_seq = tick.seq;
        self.last_px = tick.price;
        self.last_size = tick.size;
        self.last_ts_ns = tick.ts_ns;
    }

    /// Volume-weighted average price, `None` before the first tick.
    pub fn vwap(&self) -> Option<Price> {
        vwap(self.notional, self.volume)
    }
}

/// `notional / volume` rounded to the nearest price unit, halves up.
pub fn vwap(notional: u128, volume: u64) -> Option<Price> {
    if volume == 0 {
        return None;
    }
    let volume = u128::from(volume);
    let units = (2 * notional + volume) / (2 * volume);
    i64::try_from(units)
        .ok()
        .and_then(|u| Price::from_units(u).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(seq: u64, px: &str, size: u32) -> Tick {
        Tick::new("AAPL".parse().unwrap(), seq, px.parse().unwrap(), size, seq).unwrap()
    }

    #[test]
    fn vwap_rounds_half_up() {
        // (1.0000*1 + 1.0001*1) / 2 = 1.00005 -> 1.0001
        let mut t = SymbolTotals::default();
        t.apply(&tick(1, "1.0000", 1));
        t.apply(&tick(2, "1.0001", 1));
        assert_eq!(t.vwap().unwrap().to_string(), "1.0001");
        // (1.0000*2 + 1.0001*1) / 3 = 1.0000333 -> 1.0000
        let mut t = SymbolTotals::default();
        t.apply(&tick(1, "1.0000", 2));
        t.apply(&tick(2, "1.0001", 1));
        assert_eq!(t.vwap().unwrap().to_string(), "1.0000");
    }

    #[test]
    fn totals_track_everything() {
        let mut t = SymbolTotals::default();
        assert_eq!(t.vwap(), None);
        t.apply(&tick(1, "10", 100));
        t.apply(&tick(2, "20", 300));
        assert_eq!(
            (t.count, t.volume, t.last_seq, t.last_size),
            (2, 400, 2, 300)
        );
        assert_eq!(t.last_px.to_string(), "20.0000");
        assert_eq!(t.vwap().unwrap().to_string(), "17.5000");
        assert_eq!((t.first_ts_ns, t.last_ts_ns), (1, 2));
    }
}
