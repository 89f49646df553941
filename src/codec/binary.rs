//! The compact binary tick-batch encoding (version 1), little-endian.
//!
//! ```text
//! header (8 bytes)
//!   0  magic    2 bytes  "TK"
//!   2  version  u8       1
//!   3  kind     u8       1 = tick batch
//!   4  count    u32      number of ticks that follow
//! tick (31 bytes + symbol length, + 8 when sent_ns is present)
//!   0  seq      u64
//!   8  price    i64      1/10,000 units, >= 0
//!  16  ts_ns    u64
//!  24  size     u32      > 0
//!  28  flags    u8       bit 0: replay, bit 1: sent_ns present
//!  29  sym_len  u8       1..=12
//!  30  symbol   sym_len bytes of A-Z 0-9 . - /
//!   .  sent_ns  u64      only when flag bit 1 is set
//! ```
//!
//! Decoding validates every field exactly as the JSON path does, and checks
//! the declared count against the bytes present before allocating.

use super::CodecError;
use crate::tick::{ModelError, Price, Symbol, Tick};

/// The first two bytes of every binary frame.
pub const MAGIC: [u8; 2] = *b"TK";
/// The encoding version written by this build.
pub const VERSION: u8 = 1;
/// Frame kind: a batch of ticks.
pub const KIND_TICK_BATCH: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 8;
/// Most ticks one batch may declare.
pub const MAX_BATCH_TICKS: u32 = 1 << 20;

const FIXED_TICK_LEN: usize = 30;
const MIN_TICK_LEN: usize = FIXED_TICK_LEN + 1;
const FLAG_REPLAY: u8 = 1;
const FLAG_SENT: u8 = 2;

/// Builds one binary batch incrementally, so callers can append ticks as
/// they arrive and send when they choose.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> Self {
        Self::with_capacity(HEADER_LEN + 64 * 48)
    }

    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_LEN));
        write_header(&mut buf);
        Self { buf, count: 0 }
    }

    /// Appends one tick.
    pub fn push(&mut self, tick: &Tick) {
        encode_tick(tick, &mut self.buf);
        self.count += 1;
    }

    /// Ticks in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no tick has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size so far, in bytes.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The finished frame; the writer is left empty and reusable.
    pub fn take(&mut self) -> Vec<u8> {
        self.buf[4..8].copy_from_slice(&self.count.to_le_bytes());
        let mut next = Vec::with_capacity(self.buf.capacity());
        write_header(&mut next);
        self.count = 0;
        std::mem::replace(&mut self.buf, next)
    }
}

fn write_header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.push(KIND_TICK_BATCH);
    buf.extend_from_slice(&0u32.to_le_bytes());
}

fn encode_tick(tick: &Tick, buf: &mut Vec<u8>) {
    let sym = tick.symbol.as_bytes();
    buf.extend_from_slice(&tick.seq.to_le_bytes());
    buf.extend_from_slice(&tick.price.units().to_le_bytes());
    buf.extend_from_slice(&tick.ts_ns.to_le_bytes());
    buf.extend_from_slice(&tick.size.to_le_bytes());
    let mut flags = 0;
    if tick.replay {
        flags |= FLAG_REPLAY;
    }
    if tick.sent_ns.is_some() {
        flags |= FLAG_SENT;
    }
    buf.push(flags);
    buf.push(sym.len() as u8);
    buf.extend_from_slice(sym);
    if let Some(sent) = tick.sent_ns {
        buf.extend_from_slice(&sent.to_le_bytes());
    }
}

/// Encodes `ticks` as one batch frame appended to `out`.
pub fn encode_batch(ticks: &[Tick], out: &mut Vec<u8>) {
    let start = out.len();
    write_header(out);
    out[start + 4..start + 8].copy_from_slice(&(ticks.len() as u32).to_le_bytes());
    for tick in ticks {
        encode_tick(tick, out);
    }
}

/// Decodes one batch frame, appending its ticks to `out`.
///
/// On error `out` is left as it was: a batch is accepted whole or not at all.
pub fn decode_batch(frame: &[u8], out: &mut Vec<Tick>) -> Result<(), CodecError> {
    if frame.len() < HEADER_LEN {
        return Err(CodecError::Truncated {
            needed: HEADER_LEN,
            had: frame.len(),
        });
    }
    if frame[0..2] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    if frame[2] != VERSION {
        return Err(CodecError::UnsupportedVersion(frame[2]));
    }
    if frame[3] != KIND_TICK_BATCH {
        return Err(CodecError::UnknownKind(frame[3]));
    }
    let count = read_u32(frame, 4);
    if count > MAX_BATCH_TICKS {
        return Err(CodecError::TooManyTicks(count));
    }
    let body = &frame[HEADER_LEN..];
    let needed = count as usize * MIN_TICK_LEN;
    if body.len() < needed {
        return Err(CodecError::Truncated {
            needed: HEADER_LEN + needed,
            had: frame.len(),
        });
    }
    let start_len = out.len();
    out.reserve(count as usize);
    let mut pos = HEADER_LEN;
    for index in 0..count as usize {
        match decode_tick(frame, pos, index) {
            Ok((tick, next)) => {
                out.push(tick);
                pos = next;
            }
            Err(e) => {
                out.truncate(start_len);
                return Err(e);
            }
        }
    }
    if pos != frame.len() {
        out.truncate(start_len);
        return Err(CodecError::TrailingBytes(frame.len() - pos));
    }
    Ok(())
}

fn decode_tick(frame: &[u8], pos: usize, index: usize) -> Result<(Tick, usize), CodecError> {
    let truncated = |needed: usize| CodecError::Truncated {
        needed,
        had: frame.len(),
    };
    if frame.len() < pos + FIXED_TICK_LEN {
        return Err(truncated(pos + FIXED_TICK_LEN));
    }
    let seq = read_u64(frame, pos);
    let price_units = read_u64(frame, pos + 8) as i64;
    let ts_ns = read_u64(frame, pos + 16);
    let size = read_u32(frame, pos + 24);
    let flags = frame[pos + 28];
    let sym_len = frame[pos + 29] as usize;
    let sym_start = pos + FIXED_TICK_LEN;
    let sym_end = sym_start + sym_len;
    let invalid = |source: ModelError| CodecError::InvalidTick { index, source };
    if flags & !(FLAG_REPLAY | FLAG_SENT) != 0 {
        return Err(invalid(ModelError::InvalidSymbol(format!(
            "<flags {flags:#04x} has unknown bits>"
        ))));
    }
    let has_sent = flags & FLAG_SENT != 0;
    let end = sym_end + if has_sent { 8 } else { 0 };
    if frame.len() < end {
        return Err(truncated(end));
    }
    let symbol = Symbol::from_bytes(&frame[sym_start..sym_end]).map_err(invalid)?;
    let price = Price::from_units(price_units).map_err(invalid)?;
    let mut tick = Tick::new(symbol, seq, price, size, ts_ns).map_err(invalid)?;
    tick.replay = flags & FLAG_REPLAY != 0;
    if has_sent {
        tick.sent_ns = Some(read_u64(frame, sym_end));
    }
    Ok((tick, end))
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Tick> {
        let mut a = Tick::new(
            "AAPL".parse().unwrap(),
            1,
            "187.25".parse().unwrap(),
            100,
            7,
        )
        .unwrap();
        a.sent_ns = Some(9);
        let mut b =
            Tick::new("BRK.B".parse().unwrap(), 2, "0.0001".parse().unwrap(), 1, 8).unwrap();
        b.replay = true;
        vec![a, b]
    }

    #[test]
    fn writer_and_encode_agree() {
        let mut w = BatchWriter::new();
        for t in sample() {
            w.push(&t);
        }
        let mut direct = Vec::new();
        encode_batch(&sample(), &mut direct);
        assert_eq!(w.take(), direct);
        assert!(w.is_empty());
        let mut out = Vec::new();
        decode_batch(&w.take(), &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn every_malformed_class_is_a_typed_error() {
        let mut good = Vec::new();
        encode_batch(&sample(), &mut good);
        let mut out = Vec::new();
        let mut check = |frame: &[u8], want: &str| {
            let err = decode_batch(frame, &mut out).unwrap_err();
            assert_eq!(err.kind().as_str(), want, "{err}");
            assert!(out.is_empty());
        };
        check(&[], "truncated");
        check(&good[..5], "truncated");
        check(&good[..good.len() - 1], "truncated");
        let mut bad = good.clone();
        bad[0] = b'X';
        check(&bad, "bad_magic");
        let mut bad = good.clone();
        bad[2] = 9;
        check(&bad, "unsupported_version");
        let mut bad = good.clone();
        bad[3] = 7;
        check(&bad, "unknown_kind");
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        check(&bad, "too_many_ticks");
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&1000u32.to_le_bytes());
        check(&bad, "truncated");
        let mut bad = good.clone();
        bad.push(0);
        check(&bad, "trailing_bytes");
        // Field-level corruption of the first tick (starts at HEADER_LEN).
        let t = HEADER_LEN;
        let mut bad = good.clone();
        bad[t..t + 8].copy_from_slice(&0u64.to_le_bytes());
        check(&bad, "invalid_tick"); // seq 0
        let mut bad = good.clone();
        bad[t + 8..t + 16].copy_from_slice(&(-5i64).to_le_bytes());
        check(&bad, "invalid_tick"); // negative price
        let mut bad = good.clone();
        bad[t + 24..t + 28].copy_from_slice(&0u32.to_le_bytes());
        check(&bad, "invalid_tick"); // zero size
        let mut bad = good.clone();
        bad[t + 28] = 0x80;
        check(&bad, "invalid_tick"); // unknown flag
        let mut bad = good.clone();
        bad[t + 30] = b'a';
        check(&bad, "invalid_tick"); // lowercase symbol
        let mut bad = good.clone();
        bad[t + 29] = 0;
        check(&bad, "invalid_tick"); // empty symbol
        let mut bad = good.clone();
        bad[t + 29] = 200;
        check(&bad, "truncated"); // symbol longer than the frame
    }

    fn arb_tick() -> impl Strategy<Value = Tick> {
        (
            "[A-Z0-9./-]{1,12}",
            1u64..=crate::tick::MAX_SEQ,
            0i64..i64::MAX,
            1u32..,
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            any::<bool>(),
        )
            .prop_map(|(sym, seq, px, size, ts, sent, replay)| {
                let mut t = Tick::new(
                    sym.parse().unwrap(),
                    seq,
                    Price::from_units(px).unwrap(),
                    size,
                    ts,
                )
                .unwrap();
                t.sent_ns = sent;
                t.replay = replay;
                t
            })
    }

    proptest! {
        #[test]
        fn binary_round_trip(ticks in proptest::collection::vec(arb_tick(), 0..64)) {
            let mut frame = Vec::new();
            encode_batch(&ticks, &mut frame);
            let mut out = Vec::new();
            decode_batch(&frame, &mut out).unwrap();
            prop_assert_eq!(out, ticks);
        }

        #[test]
        fn json_round_trip(ticks in proptest::collection::vec(arb_tick(), 0..16)) {
            let msg = super::super::FeedMessage::Batch { ticks };
            prop_assert_eq!(super::super::FeedMessage::parse(&msg.to_json()).unwrap(), msg);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = Vec::new();
            let _ = decode_batch(&bytes, &mut out);
            let _ = super::super::FeedMessage::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn prices_round_trip_as_text(units in 0i64..i64::MAX) {
            let p = Price::from_units(units).unwrap();
            prop_assert_eq!(p.to_string().parse::<Price>().unwrap(), p);
        }
    }
}
