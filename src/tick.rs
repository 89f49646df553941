//! The tick model: validated symbols, fixed-point prices, ticks, and the
//! identifiers shared by every other module (`PartitionId`, `Epoch`,
//! `InstanceId`).
//!
//! Everything here is plain data with validation at construction, so a value
//! of one of these types is always well formed: a `Symbol` is 1-12 characters
//! of `A-Z0-9.-/`, a `Price` is a non-negative fixed-point number with four
//! decimals, a `Tick` has a positive size.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a value could not become part of the tick model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The symbol is empty, too long, or has a character outside `A-Z0-9.-/`.
    #[error("invalid symbol {0:?}: expected 1-12 characters of A-Z 0-9 . - /")]
    InvalidSymbol(String),
    /// The price text is not a plain non-negative decimal.
    #[error("invalid price {0:?}: expected a non-negative decimal such as \"187.2500\"")]
    InvalidPrice(String),
    /// The price has more than four decimal places.
    #[error("price {0:?} has more than 4 decimal places")]
    PriceTooPrecise(String),
    /// The price does not fit the fixed-point range.
    #[error("price {0:?} is out of range")]
    PriceOutOfRange(String),
    /// A tick with size zero.
    #[error("tick size must be greater than zero")]
    ZeroSize,
    /// A tick with sequence number zero (sequences start at 1).
    #[error("tick seq must be at least 1")]
    ZeroSeq,
    /// A sequence number above [`MAX_SEQ`].
    #[error("tick seq {0} is above the largest accepted, 2^53 - 1")]
    SeqTooLarge(u64),
}

/// Largest sequence number accepted: 2^53 - 1, so every seq is exact in
/// the flush script's numbers and in JSON readers that use doubles.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Longest symbol accepted, in bytes.
pub const MAX_SYMBOL_LEN: usize = 12;

/// A validated ticker symbol, stored inline so it is `Copy` and cheap to hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    len: u8,
    bytes: [u8; MAX_SYMBOL_LEN],
}

impl Symbol {
    /// Validates raw bytes as a symbol.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, ModelError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_SYMBOL_LEN
            && raw
                .iter()
                .all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'/'));
        if !valid {
            return Err(ModelError::InvalidSymbol(
                String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned(),
            ));
        }
        let mut bytes = [0u8; MAX_SYMBOL_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Self {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The symbol's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The symbol as text.
    pub fn as_str(&self) -> &str {
        // Construction only admits ASCII, so this never takes the fallback.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl FromStr for Symbol {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(s.as_bytes())
    }
}

impl TryFrom<String> for Symbol {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Symbol> for String {
    fn from(s: Symbol) -> Self {
        s.as_str().to_owned()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.as_str())
    }
}

impl Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Fixed-point price: an integer count of 1/10,000 units (4 decimals).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Price(i64);

impl Price {
    /// Units per whole currency unit.
    pub const SCALE: i64 = 10_000;
    /// Decimal places.
    pub const DECIMALS: usize = 4;

    /// A price from its raw count of 1/10,000 units; negative values are refused.
    pub fn from_units(units: i64) -> Result<Self, ModelError> {
        if units < 0 {
            return Err(ModelError::InvalidPrice(units.to_string()));
        }
        Ok(Self(units))
    }

    /// The raw count of 1/10,000 units.
    pub fn units(self) -> i64 {
        self.0
    }
}

impl FromStr for Price {
    type Err = ModelError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ModelError::InvalidPrice(text.chars().take(64).collect());
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) {
            return Err(invalid());
        }
        if text.ends_with('.') {
            return Err(invalid());
        }
        if frac.len() > Self::DECIMALS {
            return Err(ModelError::PriceTooPrecise(text.chars().take(64).collect()));
        }
        let out_of_range = || ModelError::PriceOutOfRange(text.chars().take(64).collect());
        let mut units: i64 = 0;
        for b in whole.bytes() {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(i64::from(b - b'0')))
                .ok_or_else(out_of_range)?;
        }
        units = units.checked_mul(Self::SCALE).ok_or_else(out_of_range)?;
        let mut frac_units: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_units += i64::from(b - b'0') * 10_i64.pow((Self::DECIMALS - 1 - i) as u32);
        }
        units = units.checked_add(frac_units).ok_or_else(out_of_range)?;
        Ok(Self(units))
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:04}", self.0 / Self::SCALE, self.0 % Self::SCALE)
    }
}

impl fmt::Debug for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Price({self})")
    }
}

impl Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One trade of one symbol, as the feed numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTick", deny_unknown_fields)]
pub struct Tick {
    /// The traded instrument.
    pub symbol: Symbol,
    /// Per-symbol sequence number, starting at 1 with no holes.
    pub seq: u64,
    /// Trade price.
    pub price: Price,
    /// Trade size (shares), always > 0.
    pub size: u32,
    /// Exchange time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// When the feed sent the tick, nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_ns: Option<u64>,
    /// True when the tick is a replay answering a gap-fill request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

impl Tick {
    /// Builds a tick, checking `seq >= 1` and `size > 0`.
    pub fn new(
        symbol: Symbol,
        seq: u64,
        price: Price,
        size: u32,
        ts_ns: u64,
    ) -> Result<Self, ModelError> {
        if seq == 0 {
            return Err(ModelError::ZeroSeq);
        }
        if seq > MAX_SEQ {
            return Err(ModelError::SeqTooLarge(seq));
        }
        if size == 0 {
            return Err(ModelError::ZeroSize);
        }
        Ok(Self {
            symbol,
            seq,
            price,
            size,
            ts_ns,
            sent_ns: None,
            replay: false,
        })
    }
}

/// The wire shape of a tick before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTick {
    #[serde(rename = "type", default)]
    _type: Option<TickTag>,
    symbol: Symbol,
    seq: u64,
    price: Price,
    size: u32,
    ts_ns: u64,
    #[serde(default)]
    sent_ns: Option<u64>,
    #[serde(default)]
    replay: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum TickTag {
    Tick,
}

impl TryFrom<RawTick> for Tick {
    type Error = ModelError;
    fn try_from(raw: RawTick) -> Result<Self, Self::Error> {
        let mut tick = Tick::new(raw.symbol, raw.seq, raw.price, raw.size, raw.ts_ns)?;
        tick.sent_ns = raw.sent_ns;
        tick.replay = raw.replay;
        Ok(tick)
    }
}

pub use tickshard_cluster::ids::{Epoch, InstanceId, PartitionId, MAX_INSTANCE_ID_LEN};

/// Parses an RFC 3339 / ISO 8601 timestamp with an offset
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)`, by `jiff`) into
/// nanoseconds since the Unix epoch: the exchange time of a trade file's
/// row. A timestamp without an offset is refused: exchange time must be
/// unambiguous. So is one before 1970.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(ts.as_nanosecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_accept_the_documented_alphabet() {
        for ok in ["A", "AAPL", "BRK.B", "BF-B", "ES/Z3", "ABCDEFGHIJKL", "123"] {
            assert_eq!(ok.parse::<Symbol>().unwrap().as_str(), ok);
        }
        for bad in ["", "aapl", "ABCDEFGHIJKLM", "A B", "AAPL\n", "ÄPPL", "A:B"] {
            assert!(matches!(
                bad.parse::<Symbol>(),
                Err(ModelError::InvalidSymbol(_))
            ));
        }
    }

    #[test]
    fn prices_parse_and_print_exactly() {
        let cases = [
            ("187.2500", 1_872_500, "187.2500"),
            ("187.25", 1_872_500, "187.2500"),
            ("187", 1_870_000, "187.0000"),
            ("0.0001", 1, "0.0001"),
            ("0", 0, "0.0000"),
            ("1640.25", 16_402_500, "1640.2500"),
        ];
        for (text, units, printed) in cases {
            let p: Price = text.parse().unwrap();
            assert_eq!(p.units(), units, "{text}");
            assert_eq!(p.to_string(), printed);
        }
    }

    #[test]
    fn prices_reject_bad_text() {
        for bad in [
            "", "NaN", "nan", "inf", "-inf", "Infinity", "-1.00", "+1", "1e3", "1.", ".5", "1..2",
            " 1", "1,5", "0x10",
        ] {
            assert!(
                matches!(bad.parse::<Price>(), Err(ModelError::InvalidPrice(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(matches!(
            "1.00001".parse::<Price>(),
            Err(ModelError::PriceTooPrecise(_))
        ));
        assert!(matches!(
            "99999999999999999999".parse::<Price>(),
            Err(ModelError::PriceOutOfRange(_))
        ));
        assert!(matches!(
            "922337203685478".parse::<Price>(),
            Err(ModelError::PriceOutOfRange(_))
        ));
    }

    #[test]
    fn ticks_refuse_zero_size_and_seq() {
        let s: Symbol = "AAPL".parse().unwrap();
        let p: Price = "1".parse().unwrap();
        assert_eq!(Tick::new(s, 1, p, 0, 0), Err(ModelError::ZeroSize));
        assert_eq!(Tick::new(s, 0, p, 1, 0), Err(ModelError::ZeroSeq));
        assert!(Tick::new(s, MAX_SEQ, p, 1, 0).is_ok());
        assert_eq!(
            Tick::new(s, MAX_SEQ + 1, p, 1, 0),
            Err(ModelError::SeqTooLarge(MAX_SEQ + 1))
        );
    }
}
