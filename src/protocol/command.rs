//! Client → server commands: the decoded form the server executes, and the
//! client-side encoder that turns them into bytes.
//!
//! Wire form: `NAME[ param...]\n`, followed for IDENTIFY, AUTH, PUB, DPUB by
//! `[i32 BE size][body]` and for MPUB by
//! `[i32 BE size][i32 BE count]([i32 BE size][body])*`.

use bytes::{BufMut, Bytes, BytesMut};

/// One client command, validated as far as the protocol alone allows
/// (names, sizes, counts, number syntax); what needs server state
/// (RDY limits, in-flight IDs) is checked by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// IDENTIFY with its raw JSON body (parsed by [`super::identify`]).
    Identify(Bytes),
    /// AUTH with its secret.
    Auth(Bytes),
    Sub {
        topic: String,
        channel: String,
    },
    /// RDY count (range checked by the server against `--max-rdy-count`).
    Rdy(u64),
    /// FIN with the 16 raw ID bytes as sent.
    Fin([u8; 16]),
    /// REQ with the 16 raw ID bytes and the delay in milliseconds.
    Req {
        id: [u8; 16],
        timeout_ms: u64,
    },
    Touch([u8; 16]),
    Cls,
    Nop,
    Pub {
        topic: String,
        body: Bytes,
    },
    Mpub {
        topic: String,
        bodies: Vec<Bytes>,
    },
    Dpub {
        topic: String,
        defer_ms: u64,
        body: Bytes,
    },
}

impl Command {
    /// The command's name as it appears on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Identify(_) => "IDENTIFY",
            Command::Auth(_) => "AUTH",
            Command::Sub { .. } => "SUB",
            Command::Rdy(_) => "RDY",
            Command::Fin(_) => "FIN",
            Command::Req { .. } => "REQ",
            Command::Touch(_) => "TOUCH",
            Command::Cls => "CLS",
            Command::Nop => "NOP",
            Command::Pub { .. } => "PUB",
            Command::Mpub { .. } => "MPUB",
            Command::Dpub { .. } => "DPUB",
        }
    }

    /// Append the wire form to `buf` (client side).
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Command::Identify(body) | Command::Auth(body) => {
                buf.put_slice(self.name().as_bytes());
                buf.put_u8(b'\n');
                put_sized(buf, body);
            }
            Command::Sub { topic, channel } => {
                put_line(buf, &[b"SUB", topic.as_bytes(), channel.as_bytes()])
            }
            Command::Rdy(n) => put_line(buf, &[b"RDY", n.to_string().as_bytes()]),
            Command::Fin(id) => put_line(buf, &[b"FIN", id]),
            Command::Req { id, timeout_ms } => {
                put_line(buf, &[b"REQ", id, timeout_ms.to_string().as_bytes()])
            }
            Command::Touch(id) => put_line(buf, &[b"TOUCH", id]),
            Command::Cls => buf.put_slice(b"CLS\n"),
            Command::Nop => buf.put_slice(b"NOP\n"),
            Command::Pub { topic, body } => {
                put_line(buf, &[b"PUB", topic.as_bytes()]);
                put_sized(buf, body);
            }
            Command::Mpub { topic, bodies } => {
                put_line(buf, &[b"MPUB", topic.as_bytes()]);
                let total: usize = 4 + bodies.iter().map(|b| 4 + b.len()).sum::<usize>();
                buf.reserve(4 + total);
                buf.put_u32(total as u32);
                buf.put_u32(bodies.len() as u32);
                for body in bodies {
                    put_sized(buf, body);
                }
            }
            Command::Dpub {
                topic,
                defer_ms,
                body,
            } => {
                put_line(
                    buf,
                    &[b"DPUB", topic.as_bytes(), defer_ms.to_string().as_bytes()],
                );
                put_sized(buf, body);
            }
        }
    }

    /// The wire form as a fresh buffer.
    pub fn to_bytes(&self) -> BytesMut {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf
    }
}

fn put_line(buf: &mut BytesMut, parts: &[&[u8]]) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b' ');
        }
        buf.put_slice(part);
    }
    buf.put_u8(b'\n');
}

fn put_sized(buf: &mut BytesMut, body: &[u8]) {
    buf.reserve(4 + body.len());
    buf.put_u32(body.len() as u32);
    buf.put_slice(body);
}
