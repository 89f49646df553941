//! A small, fast, non-cryptographic hasher for the per-tick maps keyed by
//! symbol (the engine's, the worker's, and the feed simulator's).
//!
//! The engine hashes a `Symbol` (13 bytes) or a `PartitionId` (4 bytes)
//! several times per tick; the standard library's SipHash costs tens of
//! nanoseconds per key, which was a top cost of the apply path. This is
//! the multiply-rotate "Fx" scheme used inside rustc: a few cycles per
//! word. It is not DoS-resistant, which is acceptable here: keys are
//! validated ticker symbols (at most 12 bytes of `A-Z 0-9 . - /`) from the
//! configured feed, and the number of symbols per engine is bounded.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The Fx hasher state.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `BuildHasher` for [`FxHasher`].
pub type FxBuild = BuildHasherDefault<FxHasher>;
/// A `HashMap` using [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
/// A `HashSet` using [`FxHasher`].
pub type FxHashSet<K> = HashSet<K, FxBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::Symbol;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_symbols_hash_apart_and_maps_work() {
        let b = FxBuild::default();
        let h = |s: &str| {
            let sym: Symbol = s.parse().unwrap();
            b.hash_one(sym)
        };
        assert_eq!(h("AAPL"), h("AAPL"));
        assert_ne!(h("AAPL"), h("AAPM"));
        assert_ne!(h("BRK.A"), h("BRK.B"));
        let mut m: FxHashMap<Symbol, u32> = FxHashMap::default();
        for i in 0..10_000u32 {
            m.insert(format!("S{i}").parse().unwrap(), i);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&"S1234".parse().unwrap()), Some(&1234));
    }
}
