//! Wire formats of the feed protocol.
//!
//! - [`json`]: the JSON messages (text frames), parsed once at the boundary
//!   into [`FeedMessage`].
//! - [`binary`]: the compact tick-batch encoding of the hot path (binary
//!   frames, and the payload of forwarded batches). Its byte layout is in the
//!   README.
//!
//! Every malformed input becomes a [`CodecError`], never a panic; its
//! [`CodecError::kind`] is the [`BadInput`] kind it is counted under.

pub mod binary;
pub mod json;

pub use binary::{decode_batch, encode_batch, BatchWriter};
pub use json::{FeedMessage, WireFormat};

use crate::stats::BadInput;
use crate::tick::ModelError;

/// Why bytes could not be decoded into messages or ticks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Not valid JSON at all (syntax error, truncated text).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// Valid JSON of the wrong shape: unknown `type`, missing field, wrong
    /// type of value, invalid symbol or price.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// A binary frame shorter than its header or its declared content.
    #[error("binary batch truncated: needed {needed} bytes, had {had}")]
    Truncated {
        /// Bytes the decoder needed.
        needed: usize,
        /// Bytes there were.
        had: usize,
    },
    /// A binary frame that does not start with the magic bytes.
    #[error("binary frame does not start with the tickshard magic")]
    BadMagic,
    /// A binary frame of a version this build does not read.
    #[error("unsupported binary batch version {0}")]
    UnsupportedVersion(u8),
    /// A binary frame of an unknown kind.
    #[error("unknown binary frame kind {0}")]
    UnknownKind(u8),
    /// A binary batch declaring more ticks than allowed.
    #[error("binary batch declares {0} ticks, more than the limit of {max}", max = binary::MAX_BATCH_TICKS)]
    TooManyTicks(u32),
    /// A tick inside a binary batch failed validation.
    #[error("tick {index} of the batch is invalid: {source}")]
    InvalidTick {
        /// Position in the batch.
        index: usize,
        /// What was wrong with it.
        source: ModelError,
    },
    /// Bytes left over after the declared ticks.
    #[error("binary batch has {0} trailing bytes")]
    TrailingBytes(usize),
}

impl CodecError {
    /// The kind this error is counted under.
    pub fn kind(&self) -> BadInput {
        match self {
            CodecError::MalformedJson(_) => BadInput::MalformedJson,
            CodecError::InvalidMessage(_) => BadInput::InvalidMessage,
            CodecError::Truncated { .. } => BadInput::Truncated,
            CodecError::BadMagic => BadInput::BadMagic,
            CodecError::UnsupportedVersion(_) => BadInput::UnsupportedVersion,
            CodecError::UnknownKind(_) => BadInput::UnknownKind,
            CodecError::TooManyTicks(_) => BadInput::TooManyTicks,
            CodecError::InvalidTick { .. } => BadInput::InvalidTick,
            CodecError::TrailingBytes(_) => BadInput::TrailingBytes,
        }
    }
}
