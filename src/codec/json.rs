//! The JSON messages of the feed protocol (text frames).
//!
//! ```json
//! {"type":"hello","id":"p1","format":"json"}
//! {"type":"tick","symbol":"AAPL","seq":42,"price":"187.2500","size":100,"ts_ns":1}
//! {"type":"batch","ticks":[...]}
//! {"type":"replay","symbol":"AAPL","from":5,"to":9}
//! {"type":"seqs","seqs":{"AAPL":42}}
//! {"type":"error","message":"..."}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CodecError;
use crate::tick::{Symbol, Tick};

/// Which frames a feed client wants to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// JSON text frames.
    #[default]
    Json,
    /// Binary batch frames (see [`super::binary`]).
    Binary,
}

/// One JSON message of the feed protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum FeedMessage {
    /// Client → feed: introduces the client and picks the frame format.
    Hello {
        /// The client's instance id (free text, for logs and routing).
        id: String,
        /// The frames the client wants.
        #[serde(default)]
        format: WireFormat,
    },
    /// One tick.
    Tick(Tick),
    /// Several ticks.
    Batch {
        /// The ticks, in feed order.
        ticks: Vec<Tick>,
    },
    /// Client → feed: resend `symbol`'s ticks `from..=to`.
    Replay {
        /// The symbol.
        symbol: Symbol,
        /// First sequence number wanted.
        from: u64,
        /// Last sequence number wanted (inclusive).
        to: u64,
    },
    /// Feed → client: the latest sequence number of each symbol listed.
    Seqs {
        /// Symbol → last seq sent.
        seqs: BTreeMap<Symbol, u64>,
    },
    /// Either way: something was wrong.
    Error {
        /// What, in words.
        message: String,
    },
}

impl FeedMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, CodecError> {
        serde_json::from_str(text).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Syntax | Category::Eof | Category::Io => {
                    CodecError::MalformedJson(e.to_string())
                }
                Category::Data => CodecError::InvalidMessage(e.to_string()),
            }
        })
    }

    /// Serializes to one text frame.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every key is a string and no
        // value is a float.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","message":"serialization failed: {e}"}}"#)
        })
    }

    /// An `error` message.
    pub fn error(message: impl Into<String>) -> Self {
        FeedMessage::Error {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_message_of_the_contract() {
        let t = FeedMessage::parse(
            r#"{"type":"tick","symbol":"AAPL","seq":42,"price":"187.2500","size":100,"ts_ns":1732400000000000000}"#,
        )
        .unwrap();
        let FeedMessage::Tick(tick) = t else {
            panic!("not a tick: {t:?}")
        };
        assert_eq!(tick.symbol.as_str(), "AAPL");
        assert_eq!(tick.price.units(), 1_872_500);
        assert!(!tick.replay);

        assert_eq!(
            FeedMessage::parse(r#"{"type":"hello","id":"p1","format":"binary"}"#).unwrap(),
            FeedMessage::Hello {
                id: "p1".into(),
                format: WireFormat::Binary
            }
        );
        assert!(matches!(
            FeedMessage::parse(r#"{"type":"replay","symbol":"AAPL","from":5,"to":9}"#).unwrap(),
            FeedMessage::Replay { from: 5, to: 9, .. }
        ));
        let FeedMessage::Seqs { seqs } =
            FeedMessage::parse(r#"{"type":"seqs","seqs":{"AAPL":42,"MSFT":17}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(seqs.len(), 2);
        let FeedMessage::Batch { ticks } = FeedMessage::parse(
            r#"{"type":"batch","ticks":[{"symbol":"A","seq":1,"price":"1","size":1,"ts_ns":1,"sent_ns":5,"replay":true},
                {"type":"tick","symbol":"B","seq":1,"price":"2.5","size":3,"ts_ns":2}]}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(ticks.len(), 2);
        assert!(ticks[0].replay);
        assert_eq!(ticks[0].sent_ns, Some(5));
    }

    #[test]
    fn round_trips_through_text() {
        let msg = FeedMessage::parse(
            r#"{"type":"batch","ticks":[{"symbol":"A","seq":1,"price":"1.5","size":1,"ts_ns":1,"replay":true}]}"#,
        )
        .unwrap();
        assert_eq!(FeedMessage::parse(&msg.to_json()).unwrap(), msg);
    }

    #[test]
    fn malformed_input_gives_typed_errors() {
        let malformed = ["", "{", "not json", r#"{"type":"tick""#, "\u{0}"];
        for text in malformed {
            assert!(
                matches!(FeedMessage::parse(text), Err(CodecError::MalformedJson(_))),
                "{text:?}"
            );
        }
        let invalid = [
            r#"{"type":"nope"}"#,
            r#"{"symbol":"AAPL"}"#,
            r#"[]"#,
            r#"42"#,
            r#"{"type":"tick","symbol":"AAPL","seq":"1","price":"1","size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":1.5,"size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"NaN","size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"-1","size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"1.00001","size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"1","size":0,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"1","size":-5,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"1","size":4294967296,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":0,"price":"1","size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"aapl","seq":1,"price":"1","size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"ABCDEFGHIJKLMNOP","seq":1,"price":"1","size":1,"ts_ns":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"1","size":1}"#,
            r#"{"type":"tick","symbol":"AAPL","seq":1,"price":"1","size":1,"ts_ns":1,"extra":1}"#,
            r#"{"type":"replay","symbol":"AAPL","from":"x","to":9}"#,
            r#"{"type":"batch","ticks":{}}"#,
        ];
        for text in invalid {
            assert!(
                matches!(FeedMessage::parse(text), Err(CodecError::InvalidMessage(_))),
                "{text} gave {:?}",
                FeedMessage::parse(text)
            );
        }
    }

    #[test]
    fn unknown_type_names_the_known_ones() {
        let err = FeedMessage::parse(r#"{"type":"nope"}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("nope") && text.contains("hello"), "{text}");
    }
}
