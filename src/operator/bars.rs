//! OHLC bars over fixed windows of exchange time, as an operator: one
//! [`Bars`] per `--bars` width.
//!
//! A tick belongs to the bar starting at `ts_ns - ts_ns % width`. Ticks are
//! folded in sequence order; a tick whose window starts after the current
//! bar's completes that bar, which is emitted as an output entry (fields
//! `start_ns`, `open`, `high`, `low`, `close`, `volume`, `count`). A late
//! tick (older window) is folded into the current bar, so the result
//! depends only on the sequence of ticks.
//!
//! The current bar is state: the first width's under the contract fields
//! `open`, `high`, `low`, `close`, `bar_start_ns`, `bar_volume`,
//! `bar_count` and `bar_width_ns`; every other width's under
//! `bars_<width>_open`, ..., `bars_<width>_start_ns`, `bars_<width>_volume`,
//! `bars_<width>_count`, `bars_<width>_width_ns`. A stored bar of another
//! width (after `--bars` changed) is not loaded: that bar starts afresh.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Emit, FieldError, FieldWriter, Operator, StoredFields};
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

    #[inline]
    fn fold(&mut self, tick: &Tick) {
        self.high = self.high.max(tick.price);
        self.low = self.low.min(tick.price);
        self.close = tick.price;
        self.volume += u64::from(tick.size);
        self.count += 1;
    }
}

/// Folds `tick` into `current`; returns the bar it completed, if any.
#[inline]
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

/// A bar width as written on the command line: `<n>s`, `<n>m` or `<n>h`
/// (1 s to 1 day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BarWidth {
    n: u32,
    unit: char,
}

/// Why a bar width could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bar width {0:?}: use a number and s, m or h (1s to 24h), e.g. 1s, 1m, 5m")]
pub struct BarWidthError(pub String);

impl BarWidth {
    /// One minute, the default width.
    pub const ONE_MINUTE: BarWidth = BarWidth { n: 1, unit: 'm' };

    /// The width in nanoseconds.
    pub fn nanos(self) -> u64 {
        let unit: u64 = match self.unit {
            's' => 1,
            'm' => 60,
            _ => 3600,
        };
        u64::from(self.n) * unit * 1_000_000_000
    }

    /// A width of `secs` seconds, named in the largest whole unit.
    pub fn from_secs(secs: u32) -> Result<Self, BarWidthError> {
        let w = match secs {
            s if s % 3600 == 0 => Self {
                n: s / 3600,
                unit: 'h',
            },
            s if s % 60 == 0 => Self {
                n: s / 60,
                unit: 'm',
            },
            s => Self { n: s, unit: 's' },
        };
        if secs == 0 || w.nanos() > 86_400_000_000_000 {
            return Err(BarWidthError(format!("{secs}s")));
        }
        Ok(w)
    }
}

impl FromStr for BarWidth {
    type Err = BarWidthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BarWidthError(s.to_owned());
        let unit = s.chars().last().ok_or_else(bad)?;
        let n: u32 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        let secs = match unit {
            's' => Some(n),
            'm' => n.checked_mul(60),
            'h' => n.checked_mul(3600),
            _ => None,
        };
        secs.ok_or_else(bad)
            .and_then(|secs| Self::from_secs(secs).map_err(|_| bad()))
    }
}

impl fmt::Display for BarWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.n, self.unit)
    }
}

/// The current bar of the first `--bars` width among a state's fields
/// (its contract fields `open`, `high`, `low`, `close`, `bar_start_ns`,
/// `bar_volume`, `bar_count`), if it has one.
pub fn primary_bar(fields: &[(String, String)]) -> Option<Bar> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    Some(Bar {
        start_ns: get("bar_start_ns")?.parse().ok()?,
        open: get("open")?.parse().ok()?,
        high: get("high")?.parse().ok()?,
        low: get("low")?.parse().ok()?,
        close: get("close")?.parse().ok()?,
        volume: get("bar_volume")?.parse().ok()?,
        count: get("bar_count")?.parse().ok()?,
    })
}

/// A completed bar as an output entry (once per bar, off the per-tick path).
#[cold]
fn emit_bar(out: &mut Emit<'_>, done: &Bar) {
    out.emit(vec![
        ("start_ns", done.start_ns.to_string()),
        ("open", done.open.to_string()),
        ("high", done.high.to_string()),
        ("low", done.low.to_string()),
        ("close", done.close.to_string()),
        ("volume", done.volume.to_string()),
        ("count", done.count.to_string()),
    ]);
}

/// The bars operator of one width.
#[derive(Debug, Clone)]
pub struct Bars {
    width_ns: u64,
    name: String,
    /// `open`, `high`, `low`, `close`, `start_ns`, `volume`, `count`,
    /// `width_ns`.
    field_names: [String; 8],
}

impl Bars {
    /// Bars of `width`; the `primary` width keeps the contract field names.
    pub fn new(width: BarWidth, primary: bool) -> Self {
        let name = format!("bars_{width}");
        let field_names = if primary {
            [
                "open",
                "high",
                "low",
                "close",
                "bar_start_ns",
                "bar_volume",
                "bar_count",
                "bar_width_ns",
            ]
            .map(str::to_owned)
        } else {
            [
                "open", "high", "low", "close", "start_ns", "volume", "count", "width_ns",
            ]
            .map(|f| format!("{name}_{f}"))
        };
        Self {
            width_ns: width.nanos(),
            name,
            field_names,
        }
    }

    /// The width in nanoseconds.
    pub fn width_ns(&self) -> u64 {
        self.width_ns
    }
}

impl Operator for Bars {
    type State = Option<Bar>;

    fn name(&self) -> &str {
        &self.name
    }

    fn fields(&self) -> Vec<String> {
        self.field_names.to_vec()
    }

    fn init(&self) -> Option<Bar> {
        None
    }

    #[inline]
    fn apply(&self, state: &mut Option<Bar>, tick: &Tick, out: &mut Emit<'_>) {
        if let Some(done) = fold_bar(state, tick, self.width_ns) {
            emit_bar(out, &done);
        }
    }

    fn save(&self, state: &Option<Bar>, fields: &mut FieldWriter) {
        if let Some(bar) = state {
            let [open, high, low, close, start, volume, count, width] = &self.field_names;
            fields.put(open, bar.open);
            fields.put(high, bar.high);
            fields.put(low, bar.low);
            fields.put(close, bar.close);
            fields.put(start, bar.start_ns);
            fields.put(volume, bar.volume);
            fields.put(count, bar.count);
            fields.put(width, self.width_ns);
        }
    }

    /// A bar stored by another width (`--bars` changed since) is not this
    /// width's: the current bar starts afresh.
    fn load(&self, stored: &StoredFields<'_>) -> Result<Option<Bar>, FieldError> {
        let [open, high, low, close, start, volume, count, width] = &self.field_names;
        if stored.raw(width) != Some(self.width_ns.to_string().as_str()) {
            return Ok(None);
        }
        Ok(Some(Bar {
            start_ns: stored.get(start)?,
            open: stored.get(open)?,
            high: stored.get(high)?,
            low: stored.get(low)?,
            close: stored.get(close)?,
            volume: stored.get(volume)?,
            count: stored.get(count)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_parse_and_print_in_their_largest_unit() {
        for (text, ns, shown) in [
            ("1s", 1_000_000_000, "1s"),
            ("90s", 90_000_000_000, "90s"),
            ("60s", 60_000_000_000, "1m"),
            ("5m", 300_000_000_000, "5m"),
            ("24h", 86_400_000_000_000, "24h"),
        ] {
            let w: BarWidth = text.parse().unwrap();
            assert_eq!((w.nanos(), w.to_string().as_str()), (ns, shown));
        }
        for bad in ["", "s", "0s", "1d", "25h", "-1m", "1.5m", "1 m"] {
            assert!(bad.parse::<BarWidth>().is_err(), "{bad}");
        }
    }

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
