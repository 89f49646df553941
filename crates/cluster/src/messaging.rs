//! Instance-to-instance messages over `{ns}:inbox:{id}`: the binary
//! envelope, and the pending-request table that pairs replies with
//! requests by correlation id.
//!
//! # Envelope (version 1, little endian)
//!
//! ```text
//! offset size field
//! 0      2    magic "TS"
//! 2      1    version = 1
//! 3      1    kind: 1 data, 2 request, 3 reply, 4 ack
//! 4      1    hops (data forwarded again increments it)
//! 5      1    sender id length L (1..=64)
//! 6      L    sender id (ASCII, validated as an InstanceId)
//! 6+L    8    correlation id (requests, replies); for data the
//!             sender's flow-control mark (0: not flow-controlled), for
//!             ack the latest mark consumed (see `credit`)
//! 14+L   8    sent_ns, wall clock nanoseconds at the sender
//! 22+L   ..   payload
//! ```
//!
//! Anything else on an inbox (foreign publishers, future versions) fails
//! [`Envelope::decode`] and is counted, never acted on.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::oneshot;

use crate::ids::{InstanceId, MAX_INSTANCE_ID_LEN};

const MAGIC: &[u8; 2] = b"TS";
const VERSION: u8 = 1;
const FIXED: usize = 2 + 1 + 1 + 1 + 1 + 8 + 8;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Application data (the service's own, e.g. forwarded work).
    Data,
    /// A request that wants a reply.
    Request,
    /// The reply to a request.
    Reply,
    /// Flow control: the receiver consumed data up to a mark.
    Ack,
    /// A message for every live instance (on `{ns}:broadcast`).
    Broadcast,
}

impl MessageKind {
    fn code(self) -> u8 {
        match self {
            Self::Data => 1,
            Self::Request => 2,
            Self::Reply => 3,
            Self::Ack => 4,
            Self::Broadcast => 5,
        }
    }
}

/// A decoded inbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Kind.
    pub kind: MessageKind,
    /// Hop count.
    pub hops: u8,
    /// Sender.
    pub from: InstanceId,
    /// Correlation id (requests and replies).
    pub correlation: u64,
    /// Wall-clock send time, ns since the Unix epoch.
    pub sent_ns: u64,
    /// The payload.
    pub payload: Bytes,
}

/// Why an inbox message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than the header.
    #[error("message too short ({0} bytes)")]
    TooShort(usize),
    /// Not our magic.
    #[error("not a cluster envelope (bad magic)")]
    BadMagic,
    /// A version we do not speak.
    #[error("unsupported envelope version {0}")]
    Version(u8),
    /// Unknown kind byte.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// The sender id is not a valid instance id.
    #[error("invalid sender id")]
    Sender,
}

impl EnvelopeError {
    /// Short label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooShort(_) => "too_short",
            Self::BadMagic => "bad_magic",
            Self::Version(_) => "version",
            Self::Kind(_) => "kind",
            Self::Sender => "sender",
        }
    }
}

impl Envelope {
    /// Encodes the envelope.
    pub fn encode(&self) -> Bytes {
        let id = self.from.as_str().as_bytes();
        let mut b = BytesMut::with_capacity(FIXED + id.len() + self.payload.len());
        b.put_slice(MAGIC);
        b.put_u8(VERSION);
        b.put_u8(self.kind.code());
        b.put_u8(self.hops);
        // Instance ids are at most 64 bytes, so this fits.
        b.put_u8(u8::try_from(id.len()).unwrap_or(u8::MAX));
        b.put_slice(id);
        b.put_u64_le(self.correlation);
        b.put_u64_le(self.sent_ns);
        b.put_slice(&self.payload);
        b.freeze()
    }

    /// Decodes a message; the payload shares `raw`'s buffer.
    pub fn decode(raw: Bytes) -> Result<Self, EnvelopeError> {
        if raw.len() < FIXED {
            return Err(EnvelopeError::TooShort(raw.len()));
        }
        if &raw[0..2] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        if raw[2] != VERSION {
            return Err(EnvelopeError::Version(raw[2]));
        }
        let kind = match raw[3] {
            1 => MessageKind::Data,
            2 => MessageKind::Request,
            3 => MessageKind::Reply,
            4 => MessageKind::Ack,
            5 => MessageKind::Broadcast,
            k => return Err(EnvelopeError::Kind(k)),
        };
        let hops = raw[4];
        let len = usize::from(raw[5]);
        if len == 0 || len > MAX_INSTANCE_ID_LEN {
            return Err(EnvelopeError::Sender);
        }
        if raw.len() < FIXED + len {
            return Err(EnvelopeError::TooShort(raw.len()));
        }
        let from = std::str::from_utf8(&raw[6..6 + len])
            .ok()
            .and_then(|s| s.parse::<InstanceId>().ok())
            .ok_or(EnvelopeError::Sender)?;
        let at = 6 + len;
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&raw[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let correlation = u64_at(at);
        let sent_ns = u64_at(at + 8);
        Ok(Self {
            kind,
            hops,
            from,
            correlation,
            sent_ns,
            payload: raw.slice(at + 16..),
        })
    }
}

/// Requests waiting for their reply, by correlation id.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
}

impl Pending {
    pub(crate) fn insert(&self, id: u64) -> oneshot::Receiver<Bytes> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = self.waiting.lock() {
            m.insert(id, tx);
        }
        rx
    }

    pub(crate) fn remove(&self, id: u64) {
        if let Ok(mut m) = self.waiting.lock() {
            m.remove(&id);
        }
    }

    /// Completes request `id`; false if nobody waits for it (late or foreign reply).
    pub(crate) fn complete(&self, id: u64, payload: Bytes) -> bool {
        let tx = self.waiting.lock().ok().and_then(|mut m| m.remove(&id));
        match tx {
            Some(tx) => tx.send(payload).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: MessageKind) -> Envelope {
        Envelope {
            kind,
            hops: 2,
            from: "p-1.a_b".parse().unwrap(),
            correlation: 0xdead_beef_0102,
            sent_ns: 1_732_400_000_000_000_000,
            payload: Bytes::from_static(b"\x00hello\xff"),
        }
    }

    #[test]
    fn round_trips_every_kind() {
        for k in [
            MessageKind::Data,
            MessageKind::Request,
            MessageKind::Reply,
            MessageKind::Ack,
        ] {
            let e = sample(k);
            assert_eq!(Envelope::decode(e.encode()).unwrap(), e);
        }
        let mut e = sample(MessageKind::Data);
        e.payload = Bytes::new();
        assert_eq!(Envelope::decode(e.encode()).unwrap(), e);
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        let good = sample(MessageKind::Request).encode();
        assert_eq!(
            Envelope::decode(Bytes::new()),
            Err(EnvelopeError::TooShort(0))
        );
        assert_eq!(
            Envelope::decode(Bytes::from_static(b"hello world, this is json..")),
            Err(EnvelopeError::BadMagic)
        );
        let mut v = good.to_vec();
        v[2] = 9;
        assert_eq!(
            Envelope::decode(Bytes::from(v)),
            Err(EnvelopeError::Version(9))
        );
        let mut v = good.to_vec();
        v[3] = 7;
        assert_eq!(
            Envelope::decode(Bytes::from(v)),
            Err(EnvelopeError::Kind(7))
        );
        let mut v = good.to_vec();
        v[6] = b' ';
        assert_eq!(Envelope::decode(Bytes::from(v)), Err(EnvelopeError::Sender));
        let mut v = good.to_vec();
        v[5] = 200;
        assert_eq!(Envelope::decode(Bytes::from(v)), Err(EnvelopeError::Sender));
        // Every truncation fails cleanly.
        for cut in 0..FIXED + 7 {
            assert!(Envelope::decode(good.slice(..cut)).is_err(), "cut {cut}");
        }
        // Random bytes never panic.
        let mut x: u64 = 1;
        for n in 0..2000 {
            let buf: Vec<u8> = (0..(n % 60))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = Envelope::decode(Bytes::from(buf));
        }
    }

    #[test]
    fn pending_pairs_replies() {
        let p = Pending::default();
        let mut rx = p.insert(5);
        assert!(!p.complete(6, Bytes::new()));
        assert!(p.complete(5, Bytes::from_static(b"ok")));
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"ok"));
        let _rx = p.insert(7);
        p.remove(7);
        assert!(!p.complete(7, Bytes::new()));
    }
}
