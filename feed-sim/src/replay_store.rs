//! The replay store: every tick of the run, numbered, kept compactly for
//! gap fill, and the single place where per-symbol sequence numbers are
//! assigned (from 1, no holes).
//!
//! Memory: per symbol, three columns (`price` i64, `ts_ns` u64, `size` u32)
//! indexed by `seq - first_kept`: 20 bytes per tick, so 10 million ticks
//! take about 200 MB (Vec growth reserves address space beyond that, which
//! the OS only backs once written). The limit (`--replay-limit`, default 20
//! million ticks) bounds it: once full, each new tick evicts the oldest kept
//! tick of its own symbol (or, for a symbol with nothing kept, of another
//! symbol in turn), so the newest ticks, which late gaps need, stay.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use tickshard::tick::{Price, Symbol, Tick};

use crate::source::NewTick;

/// Why a replay request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// `from` is 0 (sequences start at 1).
    #[error("replay {symbol}: from must be at least 1")]
    ZeroFrom {
        /// Symbol asked for.
        symbol: Symbol,
    },
    /// `to < from`.
    #[error("replay {symbol}: to ({to}) is before from ({from})")]
    Reversed {
        /// Symbol asked for.
        symbol: Symbol,
        /// First seq.
        from: u64,
        /// Last seq.
        to: u64,
    },
    /// More ticks than one request may ask for.
    #[error("replay {symbol}: range of {len} ticks exceeds the limit of {max} per request")]
    TooLarge {
        /// Symbol asked for.
        symbol: Symbol,
        /// Ticks asked for.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The feed never sent this symbol.
    #[error("replay {symbol}: unknown symbol")]
    UnknownSymbol {
        /// Symbol asked for.
        symbol: Symbol,
    },
    /// The range reaches past the last seq sent.
    #[error("replay {symbol}: to ({to}) is beyond the last seq sent ({last})")]
    BeyondLast {
        /// Symbol asked for.
        symbol: Symbol,
        /// Last seq asked for.
        to: u64,
        /// Last seq sent.
        last: u64,
    },
    /// The start of the range was evicted by the memory limit.
    #[error(
        "replay {symbol}: seq {from} is gone from the replay window (oldest kept: {first_kept})"
    )]
    Evicted {
        /// Symbol asked for.
        symbol: Symbol,
        /// First seq asked for.
        from: u64,
        /// Oldest seq still kept.
        first_kept: u64,
    },
}

impl ReplayError {
    /// A short label for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplayError::ZeroFrom { .. } | ReplayError::Reversed { .. } => "replay_bad_range",
            ReplayError::TooLarge { .. } => "replay_too_large",
            ReplayError::UnknownSymbol { .. } => "replay_unknown_symbol",
            ReplayError::BeyondLast { .. } => "replay_beyond_last",
            ReplayError::Evicted { .. } => "replay_evicted",
        }
    }
}

#[derive(Debug)]
struct SymbolLog {
    symbol: Symbol,
    last_seq: u64,
    /// Seq of the front of the columns.
    first_kept: u64,
    px: VecDeque<i64>,
    ts: VecDeque<u64>,
    size: VecDeque<u32>,
}

impl SymbolLog {
    fn pop_front(&mut self) -> bool {
        if self.px.pop_front().is_none() {
            return false;
        }
        self.ts.pop_front();
        self.size.pop_front();
        self.first_kept += 1;
        true
    }
}

/// Every tick sent, by symbol and seq.
#[derive(Debug)]
pub struct ReplayStore {
    index: FxHashMap<Symbol, u32>,
    logs: Vec<SymbolLog>,
    limit: usize,
    kept: usize,
    evicted: u64,
    evict_cursor: usize,
}

impl ReplayStore {
    /// An empty store keeping at most `limit` ticks (0 keeps none).
    pub fn new(limit: usize) -> Self {
        Self {
            index: FxHashMap::default(),
            logs: Vec::new(),
            limit,
            kept: 0,
            evicted: 0,
            evict_cursor: 0,
        }
    }

    /// Numbers `t` with its symbol's next seq, keeps it, returns the tick.
    pub fn append(&mut self, t: &NewTick) -> Tick {
        let next = self.logs.len() as u32;
        let i = *self.index.entry(t.symbol).or_insert(next) as usize;
        if i == self.logs.len() {
            self.logs.push(SymbolLog {
                symbol: t.symbol,
                last_seq: 0,
                first_kept: 1,
                px: VecDeque::new(),
                ts: VecDeque::new(),
                size: VecDeque::new(),
            });
        }
        if self.kept >= self.limit {
            self.evict_one(i);
        }
        let log = &mut self.logs[i];
        log.last_seq += 1;
        if self.limit > 0 {
            log.px.push_back(t.price.units());
            log.ts.push_back(t.ts_ns);
            log.size.push_back(t.size);
            self.kept += 1;
        } else {
            log.first_kept = log.last_seq + 1;
        }
        Tick {
            symbol: t.symbol,
            seq: log.last_seq,
            price: t.price,
            size: t.size,
            ts_ns: t.ts_ns,
            sent_ns: None,
            replay: false,
        }
    }

    fn evict_one(&mut self, prefer: usize) {
        if self.kept == 0 {
            return;
        }
        if self.logs[prefer].pop_front() {
            self.kept -= 1;
            self.evicted += 1;
            return;
        }
        for _ in 0..self.logs.len() {
            let c = self.evict_cursor % self.logs.len();
            self.evict_cursor = c + 1;
            if self.logs[c].pop_front() {
                self.kept -= 1;
                self.evicted += 1;
                return;
            }
        }
    }

    /// Checks a request without copying anything.
    pub fn check(&self, symbol: Symbol, from: u64, to: u64, max: u64) -> Result<(), ReplayError> {
        if from == 0 {
            return Err(ReplayError::ZeroFrom { symbol });
        }
        if to < from {
            return Err(ReplayError::Reversed { symbol, from, to });
        }
        let len = to - from + 1;
        if len > max {
            return Err(ReplayError::TooLarge { symbol, len, max });
        }
        let Some(&i) = self.index.get(&symbol) else {
            return Err(ReplayError::UnknownSymbol { symbol });
        };
        let log = &self.logs[i as usize];
        if to > log.last_seq {
            return Err(ReplayError::BeyondLast {
                symbol,
                to,
                last: log.last_seq,
            });
        }
        if from < log.first_kept {
            return Err(ReplayError::Evicted {
                symbol,
                from,
                first_kept: log.first_kept,
            });
        }
        Ok(())
    }

    /// The ticks `from..=to` of `symbol`, flagged as replays.
    pub fn get(
        &self,
        symbol: Symbol,
        from: u64,
        to: u64,
        max: u64,
    ) -> Result<Vec<Tick>, ReplayError> {
        self.check(symbol, from, to, max)?;
        let Some(&i) = self.index.get(&symbol) else {
            return Err(ReplayError::UnknownSymbol { symbol });
        };
        let log = &self.logs[i as usize];
        let start = (from - log.first_kept) as usize;
        let end = (to - log.first_kept) as usize;
        Ok((start..=end)
            .map(|k| Tick {
                symbol,
                seq: log.first_kept + k as u64,
                price: Price::from_units(log.px[k]).unwrap_or_default(),
                size: log.size[k],
                ts_ns: log.ts[k],
                sent_ns: None,
                replay: true,
            })
            .collect())
    }

    /// Number of symbols seen.
    pub fn symbols(&self) -> usize {
        self.logs.len()
    }

    /// The last seq of the symbol with index `i` (symbols are indexed in
    /// order of first appearance).
    pub fn last_seq_at(&self, i: usize) -> Option<(Symbol, u64)> {
        self.logs.get(i).map(|l| (l.symbol, l.last_seq))
    }

    /// Ticks kept.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// Ticks evicted by the limit.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nt(sym: &str, px: i64, size: u32) -> NewTick {
        NewTick {
            symbol: sym.parse().unwrap(),
            price: Price::from_units(px).unwrap(),
            size,
            ts_ns: px as u64,
        }
    }

    #[test]
    fn seqs_are_per_symbol_from_one() {
        let mut s = ReplayStore::new(100);
        let seqs: Vec<u64> = ["A", "B", "A", "A", "B"]
            .iter()
            .map(|x| s.append(&nt(x, 1, 1)).seq)
            .collect();
        assert_eq!(seqs, [1, 1, 2, 3, 2]);
        assert_eq!(s.last_seq_at(0).unwrap().1, 3);
    }

    #[test]
    fn replays_give_back_the_original_ticks() {
        let mut s = ReplayStore::new(100);
        let sent: Vec<Tick> = (1..=10)
            .map(|i| s.append(&nt("A", i * 100, i as u32)))
            .collect();
        let got = s.get("A".parse().unwrap(), 3, 5, 100).unwrap();
        assert_eq!(got.len(), 3);
        for (g, want) in got.iter().zip(&sent[2..5]) {
            assert!(g.replay);
            assert_eq!(
                (g.seq, g.price, g.size, g.ts_ns),
                (want.seq, want.price, want.size, want.ts_ns)
            );
        }
    }

    #[test]
    fn absurd_requests_are_refused() {
        let mut s = ReplayStore::new(100);
        for _ in 0..5 {
            s.append(&nt("A", 1, 1));
        }
        let a: Symbol = "A".parse().unwrap();
        let z: Symbol = "Z".parse().unwrap();
        assert!(matches!(
            s.get(a, 0, 1, 10),
            Err(ReplayError::ZeroFrom { .. })
        ));
        assert!(matches!(
            s.get(a, 3, 2, 10),
            Err(ReplayError::Reversed { .. })
        ));
        assert!(matches!(
            s.get(a, 1, 5, 2),
            Err(ReplayError::TooLarge { len: 5, .. })
        ));
        assert!(matches!(
            s.get(a, 1, u64::MAX, 10),
            Err(ReplayError::TooLarge { .. })
        ));
        assert!(matches!(
            s.get(z, 1, 1, 10),
            Err(ReplayError::UnknownSymbol { .. })
        ));
        assert!(matches!(
            s.get(a, 4, 6, 10),
            Err(ReplayError::BeyondLast { last: 5, .. })
        ));
        assert!(s.get(a, 5, 5, 10).is_ok());
    }

    #[test]
    fn the_limit_evicts_the_oldest_of_the_symbol() {
        let mut s = ReplayStore::new(4);
        for i in 1..=3 {
            s.append(&nt("A", i, 1));
        }
        s.append(&nt("B", 1, 1));
        s.append(&nt("B", 2, 1)); // evicts B#1
        s.append(&nt("C", 1, 1)); // C has nothing: evicts A#1, the next in turn
        assert_eq!(s.kept(), 4);
        assert_eq!(s.evicted(), 2);
        let b: Symbol = "B".parse().unwrap();
        assert!(matches!(
            s.get(b, 1, 2, 10),
            Err(ReplayError::Evicted { first_kept: 2, .. })
        ));
        assert_eq!(s.get(b, 2, 2, 10).unwrap()[0].price.units(), 2);
        assert_eq!(s.get("C".parse().unwrap(), 1, 1, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_zero_limit_keeps_nothing_but_still_numbers() {
        let mut s = ReplayStore::new(0);
        assert_eq!(s.append(&nt("A", 1, 1)).seq, 1);
        assert_eq!(s.append(&nt("A", 1, 1)).seq, 2);
        assert!(matches!(
            s.get("A".parse().unwrap(), 1, 1, 10),
            Err(ReplayError::Evicted { .. })
        ));
    }
}
