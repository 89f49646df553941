//! The partition function: which of the P partitions a symbol belongs to,
//! the cluster layer's [`partition_of_key`] of the symbol's bytes
//! (`fnv1a_64(symbol) % P`); a test pins concrete values so an accidental
//! change fails loudly.

use tickshard_cluster::partition::partition_of_key;

use crate::tick::{PartitionId, Symbol};

/// Default number of partitions in a cluster.
pub const DEFAULT_PARTITIONS: u32 = 64;

/// The partition of `symbol` in a cluster of `partitions` partitions.
///
/// `partitions` must be non-zero; the cluster config guarantees it.
pub fn partition_of(symbol: &Symbol, partitions: std::num::NonZeroU32) -> PartitionId {
    partition_of_key(symbol.as_bytes(), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn partition_values_are_pinned() {
        let p64 = NonZeroU32::new(64).unwrap();
        let pinned = [
            ("AAPL", 11),
            ("MSFT", 51),
            ("ES", 41),
            ("BRK.B", 26),
            ("GOOG", 49),
            ("SPY", 61),
        ];
        let got: Vec<(&str, u32)> = pinned
            .iter()
            .map(|(s, _)| (*s, partition_of(&s.parse().unwrap(), p64).0))
            .collect();
        assert_eq!(got, pinned.to_vec());
    }

    #[test]
    fn partitions_spread_evenly() {
        let p = NonZeroU32::new(64).unwrap();
        let mut counts = [0u32; 64];
        for i in 0..64_000 {
            let sym: Symbol = format!("S{i}").parse().unwrap();
            counts[partition_of(&sym, p).0 as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 800 && *max < 1200, "min {min} max {max}");
    }
}
