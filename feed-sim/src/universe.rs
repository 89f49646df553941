//! The symbol universe of generated ticks: real tickers with their real
//! price level and relative activity (from a daily-bars CSV), or synthetic
//! symbols, or both when more symbols are asked for than the file holds.

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use tickshard::tick::{Price, Symbol};

/// One symbol to generate ticks for.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolSpec {
    /// The ticker.
    pub symbol: Symbol,
    /// Starting price, on the 0.01 grid.
    pub start_px: Price,
    /// Relative activity (average volume for real symbols).
    pub weight: f64,
}

/// Why a universe file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UniverseError {
    /// The file could not be read.
    #[error("cannot read universe {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// No valid row.
    #[error("universe {0} has no valid row (expected Date,Symbol,Open,High,Low,Close,Volume)")]
    Empty(String),
}

#[derive(Default)]
struct Acc {
    last_date: u32,
    last_close: i64,
    volume_sum: f64,
    days: u32,
}

/// Rounds fixed-point units to the 0.01 grid, at least 0.01.
fn to_cent_grid(units: i64) -> i64 {
    ((units + 50) / 100 * 100).max(100)
}

/// Parses daily bars `Date,Symbol,Open,High,Low,Close,Volume`; returns the
/// symbols (most active first) and the number of rows skipped as malformed.
pub fn parse_daily_bars(text: &str) -> (Vec<SymbolSpec>, usize) {
    let mut acc: HashMap<Symbol, Acc> = HashMap::new();
    let mut skipped = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if (i == 0 && line.starts_with("Date")) || line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        let parsed = (cols.len() == 7)
            .then(|| {
                let date: u32 = cols[0].parse().ok()?;
                let symbol: Symbol = cols[1].parse().ok()?;
                let close: Price = cols[5].parse().ok()?;
                let volume: f64 = cols[6].parse().ok()?;
                (close.units() > 0 && volume.is_finite() && volume >= 0.0)
                    .then_some((date, symbol, close, volume))
            })
            .flatten();
        let Some((date, symbol, close, volume)) = parsed else {
            skipped += 1;
            continue;
        };
        let a = acc.entry(symbol).or_default();
        if date >= a.last_date {
            a.last_date = date;
            a.last_close = close.units();
        }
        a.volume_sum += volume;
        a.days += 1;
    }
    let mut specs: Vec<SymbolSpec> = acc
        .into_iter()
        .filter_map(|(symbol, a)| {
            let start_px = Price::from_units(to_cent_grid(a.last_close)).ok()?;
            Some(SymbolSpec {
                symbol,
                start_px,
                weight: (a.volume_sum / f64::from(a.days.max(1))).max(1.0),
            })
        })
        .collect();
    specs.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| a.symbol.cmp(&b.symbol))
    });
    (specs, skipped)
}

/// Reads a universe file.
pub fn load(path: &Path) -> Result<Vec<SymbolSpec>, UniverseError> {
    let text = std::fs::read_to_string(path).map_err(|source| UniverseError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let (specs, skipped) = parse_daily_bars(&text);
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "universe rows skipped as malformed");
    }
    if specs.is_empty() {
        return Err(UniverseError::Empty(path.display().to_string()));
    }
    Ok(specs)
}

/// The name of synthetic symbol `i`: `S` and six digits (`S000042`).
pub fn synthetic_name(i: usize) -> Symbol {
    let name = format!("S{i:06}");
    name.parse()
        .unwrap_or_else(|_| unreachable!("S and digits is a valid symbol"))
}

/// `n` synthetic symbols, deterministic in `seed`: prices spread
/// log-uniformly over 5..500, activity Zipf-like (a few symbols dominate).
pub fn synthetic(n: usize, seed: u64) -> Vec<SymbolSpec> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x005e_ed0f_5b01);
    (0..n)
        .map(|i| {
            let px = (5.0f64.ln() + rng.random::<f64>() * (100.0f64).ln()).exp();
            let units = to_cent_grid((px * Price::SCALE as f64) as i64);
            SymbolSpec {
                symbol: synthetic_name(i),
                start_px: Price::from_units(units).unwrap_or_default(),
                weight: 1.0e6 / ((i + 1) as f64).powf(0.9),
            }
        })
        .collect()
}

/// The universe of a run: the `symbols` most active of `real` (all when
/// `None`), topped up with synthetic symbols when `symbols` is larger.
pub fn build(real: Vec<SymbolSpec>, symbols: Option<usize>, seed: u64) -> Vec<SymbolSpec> {
    let want = symbols.unwrap_or(if real.is_empty() { 100 } else { real.len() });
    let mut out: Vec<SymbolSpec> = real.into_iter().take(want).collect();
    if out.len() < want {
        // Synthetic symbols weigh in like the quieter half of the real ones.
        let scale = out.last().map_or(1.0, |s| s.weight / 1.0e6);
        let extra = synthetic(want - out.len(), seed);
        out.extend(extra.into_iter().map(|mut s| {
            s.weight *= scale;
            s
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARS: &str = "Date,Symbol,Open,High,Low,Close,Volume\n\
        20100819,AAPL,250,251,249,250.125,100\n\
        20100820,AAPL,250,251,249,251.5,300\n\
        20100820,MSFT,25,26,24,24.99,50\n\
        garbage\n\
        20100820,bad,1,1,1,1,1\n";

    #[test]
    fn real_bars_give_last_close_and_average_volume() {
        let (specs, skipped) = parse_daily_bars(BARS);
        assert_eq!(skipped, 2);
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].symbol.as_str(), "AAPL");
        assert_eq!(specs[0].start_px.to_string(), "251.5000");
        assert_eq!(specs[0].weight, 200.0);
        assert_eq!(specs[1].start_px.to_string(), "24.9900");
    }

    #[test]
    fn prices_land_on_the_cent_grid() {
        assert_eq!(to_cent_grid(2_501_250), 2_501_300);
        assert_eq!(to_cent_grid(1), 100);
    }

    #[test]
    fn build_tops_up_with_synthetic_symbols() {
        let (real, _) = parse_daily_bars(BARS);
        let u = build(real.clone(), Some(10_000), 7);
        assert_eq!(u.len(), 10_000);
        assert_eq!(u[0].symbol.as_str(), "AAPL");
        assert_eq!(u[2].symbol.as_str(), "S000000");
        let mut names: Vec<_> = u.iter().map(|s| s.symbol).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10_000);
        assert_eq!(build(real, Some(1), 7).len(), 1);
        assert_eq!(build(Vec::new(), None, 7).len(), 100);
        assert_eq!(synthetic(5, 3), synthetic(5, 3));
    }
}
