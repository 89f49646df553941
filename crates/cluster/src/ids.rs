//! The ids of the cluster layer: [`PartitionId`] (the unit of ownership),
//! [`Epoch`] (the fencing token of one acquisition) and [`InstanceId`] (the
//! name of one member).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An instance id that is empty, too long or has unsafe characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance id {0:?}: expected 1-64 characters of A-Z a-z 0-9 _ . -")]
pub struct InvalidInstanceId(pub String);

/// Index of a partition, `0..P`: the unit of ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A fencing token: each acquisition of a partition's lease takes a new,
/// strictly larger epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest instance id accepted.
pub const MAX_INSTANCE_ID_LEN: usize = 64;

/// The name of one instance; safe to embed in Redis keys and in the
/// `{instance}:{epoch}` lease value (no `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(std::sync::Arc<str>);

impl InstanceId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceId {
    type Err = InvalidInstanceId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= MAX_INSTANCE_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(InvalidInstanceId(s.chars().take(80).collect()));
        }
        Ok(Self(s.into()))
    }
}

impl Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_key_safe() {
        assert!("p1".parse::<InstanceId>().is_ok());
        assert!("host-1.a_b".parse::<InstanceId>().is_ok());
        for bad in ["", "a:b", "a b", "a*", &"x".repeat(65)] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad:?}");
        }
    }
}
