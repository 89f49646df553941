//! Who owns which partition, as the feed sees it: the pure part of
//! owner-aware distribution. Built from `{ns}:config` and `{ns}:lease:*`
//! snapshots, patched by `{ns}:events` messages in between, and asked
//! "which instance owns this symbol".

use std::collections::HashMap;
use std::num::NonZeroU32;

use serde::Deserialize;
use tickshard::partition::partition_of;
use tickshard::tick::Symbol;

/// The owner of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Instance id.
    pub instance: String,
    /// Lease epoch.
    pub epoch: u64,
}

/// Partition → owner, with the cluster's partition count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerMap {
    /// `partitions` from `{ns}:config`; `None` until known.
    pub partitions: Option<NonZeroU32>,
    /// Owned partitions.
    pub owners: HashMap<u32, Owner>,
}

/// Parses a lease value `{instance}:{epoch}`.
pub fn parse_lease_value(value: &str) -> Option<Owner> {
    let (instance, epoch) = value.rsplit_once(':')?;
    if instance.is_empty() {
        return None;
    }
    Some(Owner {
        instance: instance.to_owned(),
        epoch: epoch.parse().ok()?,
    })
}

/// The lease events the feed cares about; other kinds are ignored.
#[derive(Debug, Deserialize)]
struct EventMsg {
    kind: String,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
}

/// What an `{ns}:events` message meant for the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventEffect {
    /// The map changed.
    Changed,
    /// A valid event that changes nothing here (membership, stale epoch).
    Ignored,
    /// Not a JSON event at all.
    Garbage,
}

impl OwnerMap {
    /// The instance owning `symbol`'s partition, if known.
    pub fn owner_of(&self, symbol: &Symbol) -> Option<&str> {
        let p = partition_of(symbol, self.partitions?);
        self.owners.get(&p.0).map(|o| o.instance.as_str())
    }

    /// Applies one `{ns}:events` message.
    pub fn apply_event(&mut self, payload: &str) -> EventEffect {
        let Ok(ev) = serde_json::from_str::<EventMsg>(payload) else {
            return EventEffect::Garbage;
        };
        let (Some(p), Some(instance)) = (ev.partition, ev.instance) else {
            return EventEffect::Ignored;
        };
        let epoch = ev.epoch.unwrap_or(0);
        match ev.kind.as_str() {
            "lease_acquired" => {
                let newer = self.owners.get(&p).is_none_or(|o| o.epoch <= epoch);
                if !newer {
                    return EventEffect::Ignored;
                }
                self.owners.insert(p, Owner { instance, epoch });
                EventEffect::Changed
            }
            "lease_released" | "lease_lost" => {
                let same = self
                    .owners
                    .get(&p)
                    .is_some_and(|o| o.instance == instance && o.epoch <= epoch);
                if same {
                    self.owners.remove(&p);
                    EventEffect::Changed
                } else {
                    EventEffect::Ignored
                }
            }
            _ => EventEffect::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_values_parse() {
        assert_eq!(
            parse_lease_value("p1:12"),
            Some(Owner {
                instance: "p1".into(),
                epoch: 12
            })
        );
        assert_eq!(parse_lease_value("p1"), None);
        assert_eq!(parse_lease_value(":3"), None);
        assert_eq!(parse_lease_value("p1:x"), None);
    }

    #[test]
    fn events_patch_the_map() {
        let mut m = OwnerMap {
            partitions: NonZeroU32::new(64),
            ..OwnerMap::default()
        };
        let aapl: Symbol = "AAPL".parse().unwrap(); // partition 11
        assert_eq!(m.owner_of(&aapl), None);
        let acq =
            r#"{"kind":"lease_acquired","ts_ms":1,"partition":11,"instance":"p2","epoch":12}"#;
        assert_eq!(m.apply_event(acq), EventEffect::Changed);
        assert_eq!(m.owner_of(&aapl), Some("p2"));
        let stale =
            r#"{"kind":"lease_acquired","ts_ms":1,"partition":11,"instance":"p9","epoch":3}"#;
        assert_eq!(m.apply_event(stale), EventEffect::Ignored);
        let other = r#"{"kind":"lease_lost","ts_ms":1,"partition":11,"instance":"p9","epoch":12}"#;
        assert_eq!(m.apply_event(other), EventEffect::Ignored);
        assert_eq!(
            m.apply_event(r#"{"kind":"member_joined","ts_ms":1,"instance":"p3"}"#),
            EventEffect::Ignored
        );
        assert_eq!(
            m.apply_event(r#"{"kind":"who_knows","partition":1,"instance":"x"}"#),
            EventEffect::Ignored
        );
        assert_eq!(m.apply_event("not json"), EventEffect::Garbage);
        let rel =
            r#"{"kind":"lease_released","ts_ms":1,"partition":11,"instance":"p2","epoch":12}"#;
        assert_eq!(m.apply_event(rel), EventEffect::Changed);
        assert_eq!(m.owner_of(&aapl), None);
    }

    #[test]
    fn unknown_partition_count_means_no_owner() {
        let mut m = OwnerMap::default();
        m.owners.insert(
            11,
            Owner {
                instance: "p1".into(),
                epoch: 1,
            },
        );
        assert_eq!(m.owner_of(&"AAPL".parse().unwrap()), None);
    }
}
