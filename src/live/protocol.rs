//! The messages of live results: what the flush script publishes on
//! `{ns}:{p<p>}:live`, and what a `/ws/symbols` client receives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One message of the live channel: the updates of one flush script.
#[derive(Debug, Clone, Deserialize)]
pub struct Published {
    /// The partition.
    pub partition: u32,
    /// The owner's epoch.
    pub epoch: u64,
    /// The symbols written.
    pub updates: Vec<PublishedUpdate>,
}

/// One symbol's stored change.
#[derive(Debug, Clone, Deserialize)]
pub struct PublishedUpdate {
    /// The symbol.
    pub symbol: String,
    /// First seq covered.
    pub from_seq: u64,
    /// Last seq covered (the state's `last_seq`).
    pub last_seq: u64,
    /// Every field written (the stored hash without `fence`, `partition`
    /// and `updated_ns`).
    pub state: StateFields,
    /// Operator outputs appended by this write, in order.
    #[serde(default)]
    pub outputs: Vec<LiveOutput>,
}

/// A state as field/value pairs. The flush script's JSON encoder cannot
/// tell an empty map from an empty list, so `[]` reads as an empty map
/// too.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct StateFields(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for StateFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum MapOrEmpty {
            Map(BTreeMap<String, String>),
            Empty([(); 0]),
        }
        Ok(match MapOrEmpty::deserialize(d)? {
            MapOrEmpty::Map(m) => StateFields(m),
            MapOrEmpty::Empty(_) => StateFields::default(),
        })
    }
}

/// One output entry, as stored in `{ns}:{p<p>}:out:<operator>:<SYMBOL>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LiveOutput {
    /// The operator.
    pub operator: String,
    /// The stream entry id, `<seq>-<n>`.
    pub id: String,
    /// The entry's fields.
    pub fields: StateFields,
}

/// What a `/ws/symbols` client receives (JSON text frames, `type`
/// tagged).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message: the symbols watched.
    Subscribed {
        /// The symbols.
        symbols: Vec<String>,
    },
    /// The stored state of a symbol when the watch began (`last_seq` 0
    /// and no fields for a symbol never stored), with the latest entries
    /// of the `history` operator's stream if one was asked for.
    Snapshot {
        /// The symbol.
        symbol: String,
        /// The stored `last_seq`.
        last_seq: u64,
        /// The stored fields.
        state: StateFields,
        /// Latest entries of the asked operator's stream, oldest first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        history: Vec<LiveOutput>,
    },
    /// A stored change newer than anything sent before for the symbol.
    Update {
        /// The symbol.
        symbol: String,
        /// Its partition.
        partition: u32,
        /// The owner's epoch.
        epoch: u64,
        /// First seq covered.
        from_seq: u64,
        /// Last seq covered.
        last_seq: u64,
        /// Every field of the state.
        state: StateFields,
        /// Outputs appended with it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        outputs: Vec<LiveOutput>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_messages_read_back() {
        let text = r#"{"partition":3,"epoch":2,"updates":[{"symbol":"AAPL","from_seq":5,"last_seq":7,
            "state":{"count":"7"},"outputs":[{"operator":"bars_1s","id":"6-0","fields":{"open":"1"}}]},
            {"symbol":"MSFT","from_seq":1,"last_seq":1,"state":[]}]}"#;
        let p: Published = serde_json::from_str(text).unwrap();
        assert_eq!(p.updates.len(), 2);
        assert_eq!(p.updates[0].outputs[0].id, "6-0");
        assert!(p.updates[1].state.0.is_empty() && p.updates[1].outputs.is_empty());
        assert!(serde_json::from_str::<Published>(r#"{"partition":"x"}"#).is_err());
    }
}
