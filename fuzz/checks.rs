//! The properties every fuzz driver checks, shared by the libFuzzer
//! targets (`fuzz/fuzz_targets/*.rs`, nightly) and the stable driver
//! (`examples/fuzz_stable.rs`). Each takes arbitrary bytes and panics only
//! when a property is broken; a decoding error is a fine outcome. Each
//! returns whether the input decoded (for the stable driver's statistics).

use tickshard::cluster::messaging::Envelope;
use tickshard::codec::{decode_batch, encode_batch, FeedMessage};

/// Binary batch: decoding never panics; what decodes re-encodes to a
/// frame that decodes to the same ticks.
pub(crate) fn binary_batch(data: &[u8]) -> bool {
    let mut ticks = Vec::new();
    let ok = decode_batch(data, &mut ticks).is_ok();
    if ok {
        let mut again = Vec::new();
        encode_batch(&ticks, &mut again);
        let mut back = Vec::new();
        decode_batch(&again, &mut back).expect("a re-encoded batch decodes");
        assert_eq!(ticks, back, "binary batch round trip");
    }
    ok
}

/// JSON message: parsing never panics; what parses survives a round trip.
pub(crate) fn json_message(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(msg) = FeedMessage::parse(text) else {
        return false;
    };
    let json = msg.to_json();
    let back = FeedMessage::parse(&json).expect("our own JSON parses");
    assert_eq!(msg, back, "JSON round trip of {text:?}");
    true
}

/// Inbox envelope: decoding never panics; what decodes encodes back to
/// an envelope that decodes equal.
pub(crate) fn inbox_envelope(data: &[u8]) -> bool {
    let Ok(env) = Envelope::decode(bytes::Bytes::copy_from_slice(data)) else {
        return false;
    };
    let back = Envelope::decode(env.encode()).expect("our own envelope decodes");
    assert_eq!(env, back, "envelope round trip");
    true
}
