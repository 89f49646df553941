//! The partition function: which of the P partitions a symbol belongs to.
//!
//! `partition(symbol, P) = fnv1a_64(symbol bytes) % P`. FNV-1a is tiny,
//! fast on short keys, and fully specified, so every instance on every
//! machine and every future version computes the same value; a test pins
//! concrete values so an accidental change fails loudly.

use crate::tick::{PartitionId, Symbol};

/// Default number of partitions in a cluster.
pub const DEFAULT_PARTITIONS: u32 = 64;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable 64-bit FNV-1a hash of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The partition of `symbol` in a cluster of `partitions` partitions.
///
/// `partitions` must be non-zero; the cluster config guarantees it.
pub fn partition_of(symbol: &Symbol, partitions: std::num::NonZeroU32) -> PartitionId {
    PartitionId((stable_hash(symbol.as_bytes()) % u64::from(partitions.get())) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

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
