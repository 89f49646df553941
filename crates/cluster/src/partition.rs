//! Which partition a key of the service belongs to:
//! `partition_of_key(key, P) = fnv1a_64(key) % P`. FNV-1a is tiny, fast on
//! short keys and fully specified, so every instance on every machine and
//! every future version computes the same value.

use std::num::NonZeroU32;

use crate::ids::PartitionId;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable 64-bit FNV-1a hash of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The partition of `key` in a cluster of `partitions` partitions.
pub fn partition_of_key(key: &[u8], partitions: NonZeroU32) -> PartitionId {
    PartitionId((stable_hash(key) % u64::from(partitions.get())) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_key_lands_in_range() {
        let p = NonZeroU32::new(7).unwrap();
        for k in ["", "a", "resource-42", "ünïcode"] {
            assert!(partition_of_key(k.as_bytes(), p).0 < 7, "{k}");
        }
    }
}
