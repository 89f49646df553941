//! OHLC bars over fixed windows of exchange time.
//!
//! A tick belongs to the bar starting at `ts_ns - ts_ns % width`. Ticks are
//! folded in sequence order; a tick whose window starts after the current
//! bar's completes that bar. A late tick (older window) is folded into the
//! current bar, so the result depends only on the sequence of ticks.

use serde::{Deserialize, Serialize};

use crate::tick::{Price, Tick};

/// One OHLC bar (also as it appears in `/api/symbols/{SYMBOL}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// Window start, ns since the Unix epoch.
    pub start_ns: u64,
    /// First price.
    pub open: Price,
    /// Highest price.
    pub high: Price,
    /// Lowest price.
    pub low: Price,
    /// Last price.
    pub close: Price,
    /// Sum of sizes.
    pub volume: u64,
    /// Number of ticks.
    pub count: u64,
}

impl Bar {
    /// A bar opened by `tick` in the window starting at `start_ns`.
    pub fn open_with(tick: &Tick, start_ns: u64) -> Self {
        Self {
            start_ns,
            open: tick.price,
            high: tick.price,
            low: tick.price,
            close: tick.price,
            volume: u64::from(tick.size),
            count: 1,
        }
    }

    fn fold(&mut self, tick: &Tick) {
        self.high = self.high.max(tick.price);
        self.low = self.low.min(tick.price);
        self.close = tick.price;
        self.volume += u64::from(tick.size);
        self.count += 1;
    }
}

/// Folds `tick` into `current`; returns the bar it completed, if any.
pub fn fold_bar(current: &mut Option<Bar>, tick: &Tick, width_ns: u64) -> Option<Bar> {
    let start = tick.ts_ns - tick.ts_ns % width_ns.max(1);
    match current {
        Some(bar) if start <= bar.start_ns => {
            bar.fold(tick);
            None
        }
        Some(bar) => {
            let done = *bar;
            *bar = Bar::open_with(tick, start);
            Some(done)
        }
        None => {
            *current = Some(Bar::open_with(tick, start));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ts: u64, px: &str) -> Tick {
        Tick::new("A".parse().unwrap(), 1, px.parse().unwrap(), 10, ts).unwrap()
    }

    #[test]
    fn bars_roll_over_on_window_boundaries() {
        let mut cur = None;
        assert_eq!(fold_bar(&mut cur, &t(5, "10"), 60), None);
        assert_eq!(fold_bar(&mut cur, &t(30, "12"), 60), None);
        assert_eq!(fold_bar(&mut cur, &t(59, "9"), 60), None);
        let done = fold_bar(&mut cur, &t(61, "11"), 60).unwrap();
        assert_eq!(done.start_ns, 0);
        assert_eq!(
            (done.open, done.high, done.low, done.close),
            (
                "10".parse().unwrap(),
                "12".parse().unwrap(),
                "9".parse().unwrap(),
                "9".parse().unwrap()
            )
        );
        assert_eq!((done.volume, done.count), (30, 3));
        let now = cur.unwrap();
        assert_eq!((now.start_ns, now.count), (60, 1));
        // A late tick joins the current bar.
        assert_eq!(fold_bar(&mut cur, &t(10, "20"), 60), None);
        assert_eq!(cur.unwrap().high, "20".parse().unwrap());
    }
}
