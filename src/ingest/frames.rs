//! One parse per frame: text frames are JSON feed messages, binary frames
//! are tick batches. What a processor cannot use is an error the caller
//! counts and answers.

use super::IngestInput;
use crate::codec::{decode_batch, CodecError, FeedMessage};

/// What a text frame meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextFrame {
    /// Ticks or announcements for the worker.
    Input(IngestInput),
    /// The peer reported an error.
    PeerError(String),
    /// A valid message that has no meaning in this direction.
    Unexpected(&'static str),
}

/// Decodes a text frame.
pub fn decode_text(text: &str) -> Result<TextFrame, CodecError> {
    Ok(match FeedMessage::parse(text)? {
        FeedMessage::Tick(t) => TextFrame::Input(IngestInput::Ticks(vec![t])),
        FeedMessage::Batch { ticks } => TextFrame::Input(IngestInput::Ticks(ticks)),
        FeedMessage::Seqs { seqs } => TextFrame::Input(IngestInput::Seqs(seqs)),
        FeedMessage::Error { message } => TextFrame::PeerError(message),
        FeedMessage::Hello { .. } => TextFrame::Unexpected("hello"),
        FeedMessage::Replay { .. } => TextFrame::Unexpected("replay"),
    })
}

/// Decodes a binary frame (one tick batch).
pub fn decode_binary(bytes: &[u8]) -> Result<IngestInput, CodecError> {
    let mut ticks = Vec::new();
    decode_batch(bytes, &mut ticks)?;
    Ok(IngestInput::Ticks(ticks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_batch;
    use crate::stats::BadInput;
    use crate::tick::Tick;

    #[test]
    fn frames_decode_to_inputs_or_errors() {
        let t = Tick::new("A".parse().unwrap(), 1, "1".parse().unwrap(), 1, 1).unwrap();
        let mut bin = Vec::new();
        encode_batch(&[t], &mut bin);
        assert_eq!(decode_binary(&bin).unwrap(), IngestInput::Ticks(vec![t]));
        assert_eq!(
            decode_binary(b"junk").unwrap_err().kind(),
            BadInput::Truncated
        );
        assert!(matches!(
            decode_text(r#"{"type":"seqs","seqs":{"A":3}}"#).unwrap(),
            TextFrame::Input(IngestInput::Seqs(_))
        ));
        assert_eq!(
            decode_text(r#"{"type":"hello","id":"x"}"#).unwrap(),
            TextFrame::Unexpected("hello")
        );
        assert_eq!(
            decode_text(r#"{"type":"error","message":"m"}"#).unwrap(),
            TextFrame::PeerError("m".into())
        );
        assert_eq!(
            decode_text("{").unwrap_err().kind(),
            BadInput::MalformedJson
        );
    }
}
