//! Synthetic trades: symbols drawn in proportion to their activity, prices
//! as a random walk on the 0.01 grid, sizes mostly round lots with odd lots
//! and the occasional block, and bursts where one symbol trades many times
//! in a row. Deterministic in the seed: the same seed and universe give the
//! same symbols, prices and sizes (exchange timestamps come from the clock).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickshard::tick::Price;

use crate::source::NewTick;
use crate::universe::SymbolSpec;

/// How strongly prices lean back toward their start: at 10 % above it an
/// up-move has probability 0.5 - 0.3 = 0.2.
const REVERSION: f64 = 3.0;

/// One price step: a cent, in fixed-point units.
const CENT: i64 = Price::SCALE / 100;
/// Chance per tick of starting a burst.
const BURST_START: f64 = 0.002;
/// Chance that a tick during a burst is of the burst's symbol.
const BURST_SHARE: f64 = 0.7;

/// The generator's state.
#[derive(Debug, Clone)]
pub struct Generator {
    specs: Vec<SymbolSpec>,
    /// Cumulative weights, for drawing a symbol by binary search.
    cumulative: Vec<f64>,
    prices: Vec<i64>,
    rng: StdRng,
    burst_symbol: usize,
    burst_left: u32,
}

impl Generator {
    /// A generator over `specs` (must not be empty), seeded with `seed`.
    pub fn new(specs: Vec<SymbolSpec>, seed: u64) -> Self {
        let mut total = 0.0;
        let cumulative = specs
            .iter()
            .map(|s| {
                total += s.weight.max(f64::MIN_POSITIVE);
                total
            })
            .collect();
        let prices = specs.iter().map(|s| s.start_px.units()).collect();
        Self {
            specs,
            cumulative,
            prices,
            rng: StdRng::seed_from_u64(seed),
            burst_symbol: 0,
            burst_left: 0,
        }
    }

    /// Number of symbols.
    pub fn symbols(&self) -> usize {
        self.specs.len()
    }

    fn draw_symbol(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = self.rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|c| *c <= x)
            .min(self.specs.len().saturating_sub(1))
    }

    fn draw_size(&mut self) -> u32 {
        let r = self.rng.random::<f64>();
        if r < 0.70 {
            // Round lots: 100 most of the time, a few hundred sometimes.
            let lots = match self.rng.random::<f64>() {
                x if x < 0.55 => 1,
                x if x < 0.80 => 2,
                x if x < 0.95 => self.rng.random_range(3..=5),
                _ => self.rng.random_range(6..=10),
            };
            lots * 100
        } else if r < 0.96 {
            self.rng.random_range(1..=99)
        } else {
            self.rng.random_range(10..=100) * 100
        }
    }

    /// One price move of symbol `i`: mostly none, else a cent or a few
    /// (in bursts). The direction leans back toward the start price, more
    /// the further the price has wandered (a mean-reverting walk), so a
    /// long run stays in a realistic band instead of drifting by tens of
    /// percent.
    fn step(&mut self, i: usize, in_burst: bool) -> i64 {
        let r = self.rng.random::<f64>();
        if r < 0.55 {
            return 0;
        }
        let max = if in_burst { 3 } else { 1 };
        let cents = self.rng.random_range(1..=max);
        let start = self.specs[i].start_px.units().max(CENT) as f64;
        let drift = (self.prices[i] as f64 - start) / start;
        let p_up = (0.5 - REVERSION * drift).clamp(0.1, 0.9);
        if self.rng.random::<f64>() < p_up {
            cents * CENT
        } else {
            -cents * CENT
        }
    }

    /// The next trade, stamped with exchange time `ts_ns`.
    pub fn next_tick(&mut self, ts_ns: u64) -> NewTick {
        if self.burst_left == 0 && self.rng.random::<f64>() < BURST_START {
            self.burst_symbol = self.draw_symbol();
            self.burst_left = self.rng.random_range(10..=100);
        }
        let in_burst = self.burst_left > 0 && self.rng.random::<f64>() < BURST_SHARE;
        let i = if in_burst {
            self.burst_left -= 1;
            self.burst_symbol
        } else {
            self.draw_symbol()
        };
        let step = self.step(i, in_burst);
        let px = (self.prices[i] + step).max(CENT);
        self.prices[i] = px;
        let size = self.draw_size();
        NewTick {
            symbol: self.specs[i].symbol,
            price: Price::from_units(px).unwrap_or_default(),
            size,
            ts_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::universe;

    #[test]
    fn same_seed_same_ticks() {
        let u = universe::synthetic(50, 1);
        let mut a = Generator::new(u.clone(), 9);
        let mut b = Generator::new(u.clone(), 9);
        let mut c = Generator::new(u, 10);
        let ta: Vec<_> = (0..1000).map(|_| a.next_tick(1)).collect();
        let tb: Vec<_> = (0..1000).map(|_| b.next_tick(1)).collect();
        let tc: Vec<_> = (0..1000).map(|_| c.next_tick(1)).collect();
        assert_eq!(ta, tb);
        assert_ne!(ta, tc);
    }

    #[test]
    fn a_cheap_symbol_stays_in_a_realistic_band_over_a_long_run() {
        let mut specs = universe::synthetic(1, 1);
        specs[0].start_px = Price::from_units(28_500).unwrap(); // 2.85
        let start = specs[0].start_px.units() as f64;
        let mut g = Generator::new(specs, 4);
        let worst = (0..200_000)
            .map(|_| (g.next_tick(1).price.units() as f64 - start).abs() / start)
            .fold(0.0, f64::max);
        assert!(
            worst < 0.25,
            "wandered {:.0}% from the start",
            worst * 100.0
        );
    }

    #[test]
    fn prices_walk_on_the_cent_grid_and_sizes_are_mostly_round_lots() {
        let mut g = Generator::new(universe::synthetic(20, 1), 3);
        let ticks: Vec<_> = (0..20_000).map(|_| g.next_tick(1)).collect();
        assert!(ticks.iter().all(|t| t.price.units() % CENT == 0));
        assert!(ticks.iter().all(|t| t.price.units() >= CENT && t.size > 0));
        let round = ticks.iter().filter(|t| t.size % 100 == 0).count();
        let share = round as f64 / ticks.len() as f64;
        assert!((0.65..0.85).contains(&share), "round-lot share {share}");
        assert!(ticks.iter().any(|t| t.size < 100), "no odd lots");
    }

    #[test]
    fn activity_follows_the_weights() {
        let mut specs = universe::synthetic(2, 1);
        specs[0].weight = 9.0;
        specs[1].weight = 1.0;
        let first = specs[0].symbol;
        let mut g = Generator::new(specs, 5);
        let n = 50_000;
        let hits = (0..n).filter(|_| g.next_tick(1).symbol == first).count();
        let share = hits as f64 / n as f64;
        assert!((0.85..0.95).contains(&share), "share {share}");
    }
}
