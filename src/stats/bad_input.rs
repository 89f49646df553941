//! [`BadInput`]: the kinds under which a processor counts input it
//! refused, one variant per kind. The codec's errors map onto it
//! (`CodecError::kind()`), and so does every other edge that rejects
//! something (oversized frames, foreign inbox messages, unauthorized HTTP
//! requests, ...). The label strings are part of two contracts: the
//! `kind` label of `tickshard_bad_input_total` on `/metrics` and the keys
//! of `counters.bad_input` in the `{ns}:stats` JSON, which the dashboard
//! reads; [`BadInput::as_str`] is the only place they are spelled.

/// One kind of refused input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadInput {
    /// Not valid JSON at all.
    MalformedJson,
    /// Valid JSON of the wrong shape, or a message that has no business on
    /// that connection.
    InvalidMessage,
    /// A binary frame shorter than its header or its declared content.
    Truncated,
    /// A binary frame without the tickshard magic.
    BadMagic,
    /// A binary frame of a version this build does not read.
    UnsupportedVersion,
    /// A binary frame of an unknown kind.
    UnknownKind,
    /// A binary batch declaring more ticks than allowed.
    TooManyTicks,
    /// A tick inside a binary batch that failed validation.
    InvalidTick,
    /// Bytes left over after a binary batch's declared ticks.
    TrailingBytes,
    /// A WebSocket frame or message over the size cap.
    OversizedFrame,
    /// A symbol query that could not be read: an invalid symbol on
    /// `/api/symbols/`, an undecodable query on the inbox.
    InvalidRequest,
    /// A forwarded batch on the inbox that does not decode (sent by
    /// something that is not a processor of this cluster).
    ForeignMessage,
    /// A forwarded batch that exceeded the hop limit.
    HopLimit,
    /// A symbol's stored state in Redis that could not be read back.
    CorruptState,
    /// An HTTP request without the right bearer token.
    Unauthorized,
}

impl BadInput {
    /// Every kind, in the order `/metrics` and the stats list them.
    pub const ALL: [BadInput; 15] = [
        BadInput::MalformedJson,
        BadInput::InvalidMessage,
        BadInput::Truncated,
        BadInput::BadMagic,
        BadInput::UnsupportedVersion,
        BadInput::UnknownKind,
        BadInput::TooManyTicks,
        BadInput::InvalidTick,
        BadInput::TrailingBytes,
        BadInput::OversizedFrame,
        BadInput::InvalidRequest,
        BadInput::ForeignMessage,
        BadInput::HopLimit,
        BadInput::CorruptState,
        BadInput::Unauthorized,
    ];

    /// The label: `kind` on `/metrics`, the key in the `{ns}:stats` JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            BadInput::MalformedJson => "malformed_json",
            BadInput::InvalidMessage => "invalid_message",
            BadInput::Truncated => "truncated",
            BadInput::BadMagic => "bad_magic",
            BadInput::UnsupportedVersion => "unsupported_version",
            BadInput::UnknownKind => "unknown_kind",
            BadInput::TooManyTicks => "too_many_ticks",
            BadInput::InvalidTick => "invalid_tick",
            BadInput::TrailingBytes => "trailing_bytes",
            BadInput::OversizedFrame => "oversized_frame",
            BadInput::InvalidRequest => "invalid_request",
            BadInput::ForeignMessage => "foreign_message",
            BadInput::HopLimit => "hop_limit",
            BadInput::CorruptState => "corrupt_state",
            BadInput::Unauthorized => "unauthorized",
        }
    }

    /// Position in [`BadInput::ALL`] (the variants are declared in that
    /// order).
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_in_declaration_order() {
        for (i, kind) in BadInput::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind}");
        }
        let labels: std::collections::BTreeSet<_> =
            BadInput::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), BadInput::ALL.len());
        assert!(labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
