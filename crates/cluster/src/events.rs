//! Membership and lease events broadcast on `{ns}:events`, one JSON object
//! per message (`kind` tag, snake_case). [`ClusterEvent::parse`] tells
//! garbage (which readers count) from a well-formed event of a kind this
//! version does not know (which they ignore, so a newer instance's events
//! do not look like attacks to an older reader).

use serde::{Deserialize, Serialize};

use crate::ids::{Epoch, InstanceId, PartitionId};

/// One event on `{ns}:events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// An instance registered.
    MemberJoined {
        /// Milliseconds since the Unix epoch.
        ts_ms: u64,
        /// Who.
        instance: InstanceId,
    },
    /// An instance left cleanly.
    MemberLeft {
        /// Milliseconds since the Unix epoch.
        ts_ms: u64,
        /// Who.
        instance: InstanceId,
    },
    /// An instance acquired a lease.
    LeaseAcquired {
        /// Milliseconds since the Unix epoch.
        ts_ms: u64,
        /// Partition.
        partition: PartitionId,
        /// New owner.
        instance: InstanceId,
        /// Its fencing token.
        epoch: Epoch,
    },
    /// An instance released a lease (handover or shutdown).
    LeaseReleased {
        /// Milliseconds since the Unix epoch.
        ts_ms: u64,
        /// Partition.
        partition: PartitionId,
        /// Former owner.
        instance: InstanceId,
        /// The released epoch.
        epoch: Epoch,
    },
    /// An instance noticed it lost a lease (lapsed or refused).
    LeaseLost {
        /// Milliseconds since the Unix epoch.
        ts_ms: u64,
        /// Partition.
        partition: PartitionId,
        /// Former owner.
        instance: InstanceId,
        /// The lost epoch.
        epoch: Epoch,
    },
}

/// Why a message on `{ns}:events` is not an event of this version.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not an event at all (count it).
    #[error("not a cluster event: {0}")]
    Garbage(serde_json::Error),
    /// A well-formed event of a kind this version does not know (ignore it).
    #[error("an event of unknown kind {0:?}")]
    UnknownKind(String),
}

impl EventError {
    /// True for garbage, false for an event of an unknown kind.
    pub fn is_garbage(&self) -> bool {
        matches!(self, Self::Garbage(_))
    }
}

const KINDS: [&str; 5] = [
    "member_joined",
    "member_left",
    "lease_acquired",
    "lease_released",
    "lease_lost",
];

impl ClusterEvent {
    /// Parses one message.
    pub fn parse(raw: &[u8]) -> Result<Self, EventError> {
        serde_json::from_slice(raw).map_err(|e| {
            #[derive(Deserialize)]
            struct Kind {
                kind: String,
            }
            match serde_json::from_slice::<Kind>(raw) {
                Ok(k) if !KINDS.contains(&k.kind.as_str()) => EventError::UnknownKind(k.kind),
                _ => EventError::Garbage(e),
            }
        })
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serialising plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The instance the event is about.
    pub fn instance(&self) -> &InstanceId {
        match self {
            Self::MemberJoined { instance, .. }
            | Self::MemberLeft { instance, .. }
            | Self::LeaseAcquired { instance, .. }
            | Self::LeaseReleased { instance, .. }
            | Self::LeaseLost { instance, .. } => instance,
        }
    }

    /// The `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MemberJoined { .. } => "member_joined",
            Self::MemberLeft { .. } => "member_left",
            Self::LeaseAcquired { .. } => "lease_acquired",
            Self::LeaseReleased { .. } => "lease_released",
            Self::LeaseLost { .. } => "lease_lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_the_contract() {
        let e = ClusterEvent::LeaseAcquired {
            ts_ms: 1,
            partition: PartitionId(7),
            instance: "p2".parse().unwrap(),
            epoch: Epoch(12),
        };
        assert_eq!(
            e.to_json(),
            r#"{"kind":"lease_acquired","ts_ms":1,"partition":7,"instance":"p2","epoch":12}"#
        );
        assert_eq!(ClusterEvent::parse(e.to_json().as_bytes()).unwrap(), e);
        let j = r#"{"kind":"member_left","ts_ms":5,"instance":"p2"}"#;
        assert_eq!(
            ClusterEvent::parse(j.as_bytes()).unwrap().kind(),
            "member_left"
        );
    }

    #[test]
    fn garbage_and_unknown_kinds_are_errors() {
        for bad in [
            &b"nope"[..],
            b"{}",
            br#"{"kind":"party"}"#,
            br#"{"kind":"member_left","instance":"a b","ts_ms":1}"#,
            &[0xff, 0x00],
        ] {
            assert!(ClusterEvent::parse(bad).is_err());
        }
        let unknown = ClusterEvent::parse(br#"{"kind":"party","ts_ms":1}"#).unwrap_err();
        assert!(!unknown.is_garbage(), "{unknown}");
        let broken = ClusterEvent::parse(br#"{"kind":"lease_lost","ts_ms":1}"#).unwrap_err();
        assert!(
            broken.is_garbage(),
            "a known kind without its fields is garbage"
        );
        for e in [
            ClusterEvent::MemberJoined {
                ts_ms: 1,
                instance: "a".parse().unwrap(),
            },
            ClusterEvent::MemberLeft {
                ts_ms: 1,
                instance: "a".parse().unwrap(),
            },
        ] {
            assert!(KINDS.contains(&e.kind()), "KINDS lists {}", e.kind());
        }
    }
}
