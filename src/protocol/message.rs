//! The message: what a publisher's body becomes inside nsqd and on the wire.
//!
//! Layout of a message frame's data (and of a disk record):
//! `timestamp i64 BE (ns) | attempts u16 BE | 16-byte ASCII hex ID | body`.

use bytes::{BufMut, Bytes};

/// Bytes before the body: timestamp (8), attempts (2), ID (16).
pub const MESSAGE_HEADER_LEN: usize = 8 + 2 + 16;

/// A message ID: a 64-bit snowflake-style number, shown on the wire as 16
/// lower-case hex digits. Keeping it as a number makes it cheap to hash and
/// compare; its hex form is produced only when a frame is written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl MessageId {
    /// The 16 ASCII hex bytes clients see and echo back in FIN/REQ/TOUCH.
    pub fn to_hex(self) -> [u8; 16] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, byte) in self.0.to_be_bytes().iter().enumerate() {
            out[i * 2] = DIGITS[(byte >> 4) as usize];
            out[i * 2 + 1] = DIGITS[(byte & 0x0f) as usize];
        }
        out
    }

    /// Parse the 16-byte hex form. Anything else (wrong length, upper case,
    /// non-hex) cannot be an ID we issued, so it is simply "not in flight".
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        if hex.len() != 16 {
            return None;
        }
        let mut n = 0u64;
        for &c in hex {
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            n = (n << 4) | v as u64;
        }
        Some(MessageId(n))
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A message as nsqd keeps it. The body is a shared `Bytes`: every channel
/// of a topic holds the same allocation, never a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    /// Nanoseconds since the Unix epoch at which it was first published.
    pub timestamp: i64,
    /// Deliveries so far; the first delivery carries 1.
    pub attempts: u16,
    pub body: Bytes,
}

impl Message {
    pub fn new(id: MessageId, timestamp: i64, body: Bytes) -> Self {
        Message {
            id,
            timestamp,
            attempts: 0,
            body,
        }
    }

    /// The same message with a body in an allocation of its own. A body
    /// read from disk or from a connection is a slice of a shared buffer
    /// (up to 256 kB of a segment, or a whole socket read), which stays in
    /// memory while any slice of it lives: a message kept for long (a
    /// deferred one) must not keep that buffer alive for its few bytes.
    pub fn with_own_body(mut self) -> Self {
        self.own_body();
        self
    }

    /// In place: give the body an allocation of its own (see
    /// [`with_own_body`](Self::with_own_body)).
    pub fn own_body(&mut self) {
        self.body = Bytes::copy_from_slice(&self.body);
    }

    /// Length of the encoded form (header + body).
    pub fn encoded_len(&self) -> usize {
        MESSAGE_HEADER_LEN + self.body.len()
    }

    /// Append the encoded form (frame data / disk record) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_i64(self.timestamp);
        buf.put_u16(self.attempts);
        buf.put_slice(&self.id.to_hex());
        buf.put_slice(&self.body);
    }

    /// Decode the encoded form. The ID must be our hex form; anything else is
    /// rejected as corrupt (go-nsq likewise rejects data shorter than 26 bytes).
    pub fn decode(mut data: Bytes) -> Option<Message> {
        if data.len() < MESSAGE_HEADER_LEN {
            return None;
        }
        let timestamp = i64::from_be_bytes(data[0..8].try_into().ok()?);
        let attempts = u16::from_be_bytes([data[8], data[9]]);
        let id = MessageId::from_hex(&data[10..26])?;
        // The body is the rest of the same buffer: moving past the header
        // (rather than slicing) leaves its shared reference count alone,
        // which every thread reading that buffer would otherwise contend on.
        bytes::Buf::advance(&mut data, MESSAGE_HEADER_LEN);
        Some(Message {
            id,
            timestamp,
            attempts,
            body: data,
        })
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Generates NSQ-style IDs: `(ms-ish tick − epoch) << 22 | node << 12 | seq`.
///
/// IDs are strictly increasing per generator. Where nsqd sleeps when a tick's
/// 4096 sequence numbers run out (or the clock steps back), we borrow the next
/// tick instead: the IDs stay unique and ordered without blocking a publisher.
#[derive(Debug)]
pub struct IdGenerator {
    node_id: u64,
    last_tick: u64,
    sequence: u64,
}

const ID_EPOCH: u64 = 1_288_834_974_288;

impl IdGenerator {
    pub fn new(node_id: u16) -> Self {
        IdGenerator {
            node_id: (node_id as u64) & 0x3ff,
            last_tick: 0,
            sequence: 0,
        }
    }

    pub fn next_id(&mut self) -> MessageId {
        self.next_id_at(now_nanos())
    }

    /// The next ID given the current time, so a batch reads the clock once.
    pub fn next_id_at(&mut self, now_nanos: i64) -> MessageId {
        let tick = ((now_nanos.max(0) as u64) >> 20).saturating_sub(ID_EPOCH);
        if tick > self.last_tick {
            self.last_tick = tick;
            self.sequence = 0;
        } else {
            self.sequence += 1;
            if self.sequence > 0xfff {
                self.last_tick += 1;
                self.sequence = 0;
            }
        }
        MessageId((self.last_tick << 22) | (self.node_id << 12) | self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = MessageId(0x0123_4567_89ab_cdef);
        assert_eq!(&id.to_hex(), b"0123456789abcdef");
        assert_eq!(MessageId::from_hex(b"0123456789abcdef"), Some(id));
        assert_eq!(MessageId::from_hex(b"0123456789ABCDEF"), None);
        assert_eq!(MessageId::from_hex(b"0123"), None);
    }

    #[test]
    fn encode_layout() {
        let mut m = Message::new(MessageId(1), 0x0102030405060708, Bytes::from_static(b"hi"));
        m.attempts = 3;
        let mut buf = Vec::new();
        m.encode(&mut buf);
        assert_eq!(&buf[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&buf[8..10], &[0, 3]);
        assert_eq!(&buf[10..26], b"0000000000000001");
        assert_eq!(&buf[26..], b"hi");
        assert_eq!(Message::decode(Bytes::from(buf)), Some(m));
    }

    #[test]
    fn ids_strictly_increase_and_carry_node() {
        let mut g = IdGenerator::new(1023);
        let mut last = g.next_id();
        for _ in 0..20_000 {
            let id = g.next_id();
            assert!(id > last);
            assert_eq!((id.0 >> 12) & 0x3ff, 1023);
            last = id;
        }
    }
}
