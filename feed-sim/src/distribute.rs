//! Distribution decisions, pure: which connection gets a batch
//! (round-robin or random, as a load balancer would) and, in owner-aware
//! mode, how a batch splits by partition owner.
//!
//! Connections are positions in the current snapshot of live connections;
//! the caller maps them back to handles.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickshard::tick::Tick;

use crate::cli::Mode;
use tickshard::cluster::observer::OwnershipMap;

/// Picks one of `n` connections per batch.
#[derive(Debug, Clone)]
pub struct Picker {
    random: bool,
    next: usize,
    rng: StdRng,
}

impl Picker {
    /// A picker for `mode` (owner-aware falls back to round-robin).
    pub fn new(mode: Mode, seed: u64) -> Self {
        Self {
            random: mode == Mode::Random,
            next: 0,
            rng: StdRng::seed_from_u64(seed ^ 0xd157_0000),
        }
    }

    /// The connection for the next batch, `None` when there is none.
    pub fn pick(&mut self, n: usize) -> Option<usize> {
        if n == 0 {
            return None;
        }
        if self.random {
            return Some(self.rng.random_range(0..n));
        }
        let i = self.next % n;
        self.next = i + 1;
        Some(i)
    }
}

/// A batch split by owner.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Ticks for connections that are their owner, by connection.
    pub to_owner: Vec<(usize, Vec<Tick>)>,
    /// Ticks whose owner is unknown or not connected.
    pub fallback: Vec<Tick>,
}

/// Splits `ticks` by the connection of their partition's owner;
/// `conn_of` maps a `hello` id to a connection. Order within each part is
/// the feed order.
pub fn split_by_owner(
    ticks: Vec<Tick>,
    owners: &OwnershipMap,
    conn_of: &HashMap<String, usize>,
) -> Split {
    let mut split = Split::default();
    let mut slot: HashMap<usize, usize> = HashMap::new();
    for t in ticks {
        let owner = owners.holder_of_key(t.symbol.as_bytes());
        match owner.and_then(|o| conn_of.get(o.instance.as_str())) {
            Some(&conn) => {
                let k = *slot.entry(conn).or_insert_with(|| {
                    split.to_owner.push((conn, Vec::new()));
                    split.to_owner.len() - 1
                });
                split.to_owner[k].1.push(t);
            }
            None => split.fallback.push(t),
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use tickshard::cluster::observer::Holder;
    use tickshard::partition::partition_of;
    use tickshard::tick::{PartitionId, Price, Symbol};

    #[test]
    fn round_robin_cycles_and_adapts_to_size() {
        let mut p = Picker::new(Mode::RoundRobin, 1);
        let got: Vec<_> = (0..5).map(|_| p.pick(3).unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 0, 1]);
        assert_eq!(p.pick(2), Some(0));
        assert_eq!(p.pick(0), None);
    }

    #[test]
    fn random_spreads_over_all() {
        let mut p = Picker::new(Mode::Random, 1);
        let mut seen = [0; 4];
        for _ in 0..4000 {
            seen[p.pick(4).unwrap()] += 1;
        }
        assert!(seen.iter().all(|c| *c > 800), "{seen:?}");
    }

    fn tick(sym: &str, seq: u64) -> Tick {
        Tick::new(
            sym.parse().unwrap(),
            seq,
            Price::from_units(100).unwrap(),
            1,
            1,
        )
        .unwrap()
    }

    #[test]
    fn owner_split_sends_to_owners_and_falls_back() {
        let p = NonZeroU32::new(64).unwrap();
        let part = |s: &str| partition_of(&s.parse::<Symbol>().unwrap(), p).0;
        let mut owners = OwnershipMap::new(Some(p));
        owners.set(PartitionId(part("AAPL")), Holder::parse("p1:1"));
        owners.set(PartitionId(part("MSFT")), Holder::parse("p2:1"));
        owners.set(PartitionId(part("ES")), Holder::parse("gone:1"));
        let conns = HashMap::from([("p1".to_owned(), 0), ("p2".to_owned(), 1)]);
        let ticks = vec![
            tick("AAPL", 1),
            tick("MSFT", 1),
            tick("ES", 1),
            tick("AAPL", 2),
            tick("GOOG", 1),
        ];
        let s = split_by_owner(ticks, &owners, &conns);
        assert_eq!(s.to_owner.len(), 2);
        assert_eq!(s.to_owner[0].0, 0);
        assert_eq!(
            s.to_owner[0].1.iter().map(|t| t.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(s.to_owner[1].0, 1);
        let fb: Vec<_> = s.fallback.iter().map(|t| t.symbol.as_str()).collect();
        assert_eq!(fb, ["ES", "GOOG"]);
    }
}
