//! Server side: client commands out of the read buffer.
//!
//! The decoder checks everything in the order nsqd does, and reports an
//! error as soon as the bytes that prove it have arrived (an oversized PUB is
//! refused after its 4-byte size, without waiting for the body). Checks that
//! depend on the connection (which commands its state allows, TLS still
//! pending, heartbeats disabled) come from a [`Gate`] the server keeps up to
//! date between commands.

use super::command::Command;
use super::error::{go_quote, ProtocolError};
use super::names::is_valid_name;
use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// nsqd reads command lines through a 16 KiB buffer; a longer line is a read
/// error that closes the connection without an error frame.
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// Size limits from nsqd's flags.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-msg-size`: largest message body.
    pub max_msg_size: i64,
    /// `--max-body-size`: largest IDENTIFY/AUTH/MPUB body.
    pub max_body_size: i64,
    /// `--max-rdy-count`.
    pub max_rdy_count: u64,
    /// The longest DPUB defer, in milliseconds (`--max-defer-timeout`).
    pub max_defer_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_msg_size: 1_048_576,
            max_body_size: 5_242_880,
            max_rdy_count: 2500,
            max_defer_ms: 3_600_000,
        }
    }
}

/// A connection's state as the protocol sees it (NSQ numbers: 0, 3, 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConnState {
    #[default]
    Init,
    Subscribed,
    Closing,
}

impl ConnState {
    /// The number `/stats` reports.
    pub fn as_stat(self) -> i32 {
        match self {
            ConnState::Init => 0,
            ConnState::Subscribed => 3,
            ConnState::Closing => 4,
        }
    }
}

/// What the connection allows right now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gate {
    pub state: ConnState,
    /// TLS is required and this connection has not upgraded yet: everything
    /// but IDENTIFY is refused.
    pub tls_pending: bool,
    /// IDENTIFY set `heartbeat_interval: -1`: such a connection may not SUB.
    pub heartbeats_disabled: bool,
}

/// Why decoding stopped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Answer with this error frame; close if it is fatal.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    /// A command line longer than [`MAX_LINE_LEN`]: close silently.
    #[error("command line too long")]
    LineTooLong,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes client commands. Implements `tokio_util`'s `Decoder`; the server
/// also calls [`CommandDecoder::decode_command`] directly.
#[derive(Debug, Default)]
pub struct CommandDecoder {
    pub limits: Limits,
    pub gate: Gate,
    /// Progress through an MPUB whose messages are still arriving, so that a
    /// large MPUB is walked once rather than once per read.
    mpub: Option<MpubScan>,
}

#[derive(Debug)]
struct MpubScan {
    /// Offset of the next message's size field.
    pos: usize,
    index: i32,
    count: i32,
    ranges: Vec<(usize, usize)>,
}

type Step<T> = Result<Option<T>, DecodeError>;

impl CommandDecoder {
    pub fn new(limits: Limits) -> Self {
        CommandDecoder {
            limits,
            ..Default::default()
        }
    }

    /// Decode one command from the front of `buf`, consuming its bytes.
    /// `Ok(None)` means more bytes are needed. With `eof` set, a command cut
    /// short by the end of the stream is reported as nsqd reports it
    /// (`... failed to read ...`); a partial line is dropped silently.
    pub fn decode_command(&mut self, buf: &mut BytesMut, eof: bool) -> Step<Command> {
        if let Some(id) = self.plain_fin(buf) {
            buf.advance(FIN_LINE_LEN);
            return Ok(Some(Command::Fin(id)));
        }
        let scan_to = buf.len().min(MAX_LINE_LEN);
        let Some(nl) = buf[..scan_to].iter().position(|&b| b == b'\n') else {
            if buf.len() >= MAX_LINE_LEN {
                return Err(DecodeError::LineTooLong);
            }
            return Ok(None);
        };
        let mut line = &buf[..nl];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let params = Params::split(line);
        let name = params[0];
        let header = nl + 1;

        if self.gate.tls_pending && name != b"IDENTIFY" {
            return Err(invalid(format!(
                "cannot {} in current state (TLS required)",
                String::from_utf8_lossy(name)
            )));
        }

        let state = self.gate.state;
        let cmd = match name {
            b"IDENTIFY" => {
                if state != ConnState::Init {
                    return Err(invalid("cannot IDENTIFY in current state"));
                }
                let Some(body) = self.sized_body(buf, header, eof, "IDENTIFY")? else {
                    return Ok(None);
                };
                return Ok(Some(Command::Identify(body)));
            }
            b"AUTH" => {
                if state != ConnState::Init {
                    return Err(invalid("cannot AUTH in current state"));
                }
                if params.len() != 1 {
                    return Err(invalid("AUTH invalid number of parameters"));
                }
                let Some(body) = self.sized_body(buf, header, eof, "AUTH")? else {
                    return Ok(None);
                };
                return Ok(Some(Command::Auth(body)));
            }
            b"SUB" => {
                if state != ConnState::Init {
                    return Err(invalid("cannot SUB in current state"));
                }
                if self.gate.heartbeats_disabled {
                    return Err(invalid("cannot SUB with heartbeats disabled"));
                }
                if params.len() < 3 {
                    return Err(invalid("SUB insufficient number of parameters"));
                }
                let topic = valid_name(params[1], "E_BAD_TOPIC", "SUB topic")?;
                let channel = valid_name(params[2], "E_BAD_CHANNEL", "SUB channel")?;
                Command::Sub { topic, channel }
            }
            b"RDY" => match state {
                // nsqd ignores RDY on a closing connection, even a malformed one.
                ConnState::Closing => Command::Nop,
                ConnState::Init => return Err(invalid("cannot RDY in current state")),
                ConnState::Subscribed => {
                    let count = match params.get(1) {
                        None => 1,
                        Some(p) => parse_base10(p).ok_or_else(|| {
                            invalid(format!(
                                "RDY could not parse count {}",
                                String::from_utf8_lossy(p)
                            ))
                        })?,
                    };
                    let max = self.limits.max_rdy_count;
                    if count as i64 > max as i64 || (count as i64) < 0 {
                        return Err(invalid(format!(
                            "RDY count {} out of range 0-{max}",
                            count as i64
                        )));
                    }
                    Command::Rdy(count)
                }
            },
            b"FIN" => {
                require_in_flight_state(state, "FIN")?;
                Command::Fin(message_id_param(&params, "FIN")?)
            }
            b"REQ" => {
                require_in_flight_state(state, "REQ")?;
                if params.len() < 3 {
                    return Err(invalid("REQ insufficient number of params"));
                }
                let id = message_id_param(&params, "REQ")?;
                let timeout_ms = parse_base10(params[2]).ok_or_else(|| {
                    invalid(format!(
                        "REQ could not parse timeout {}",
                        String::from_utf8_lossy(params[2])
                    ))
                })?;
                Command::Req { id, timeout_ms }
            }
            b"TOUCH" => {
                require_in_flight_state(state, "TOUCH")?;
                Command::Touch(message_id_param(&params, "TOUCH")?)
            }
            b"CLS" => {
                if state != ConnState::Subscribed {
                    return Err(invalid("cannot CLS in current state"));
                }
                Command::Cls
            }
            b"NOP" => Command::Nop,
            b"PUB" => {
                if params.len() < 2 {
                    return Err(invalid("PUB insufficient number of parameters"));
                }
                let topic = valid_name(params[1], "E_BAD_TOPIC", "PUB topic")?;
                let Some(body) = self.message_body(buf, header, eof, "PUB")? else {
                    return Ok(None);
                };
                return Ok(Some(Command::Pub { topic, body }));
            }
            b"DPUB" => {
                if params.len() < 3 {
                    return Err(invalid("DPUB insufficient number of parameters"));
                }
                let topic = valid_name(params[1], "E_BAD_TOPIC", "DPUB topic")?;
                let defer_ms = parse_base10(params[2]).ok_or_else(|| {
                    invalid(format!(
                        "DPUB could not parse timeout {}",
                        String::from_utf8_lossy(params[2])
                    ))
                })?;
                let max = self.limits.max_defer_ms;
                if defer_ms as i64 > max as i64 || (defer_ms as i64) < 0 {
                    return Err(invalid(format!(
                        "DPUB timeout {} out of range 0-{max}",
                        defer_ms as i64
                    )));
                }
                let Some(body) = self.message_body(buf, header, eof, "DPUB")? else {
                    return Ok(None);
                };
                return Ok(Some(Command::Dpub {
                    topic,
                    defer_ms,
                    body,
                }));
            }
            b"MPUB" => {
                if params.len() < 2 {
                    return Err(invalid("MPUB insufficient number of parameters"));
                }
                // nsqd repeats the code inside the text of this one error.
                let topic = valid_name(params[1], "E_BAD_TOPIC", "E_BAD_TOPIC MPUB topic")?;
                let Some(bodies) = self.mpub_bodies(buf, header, eof)? else {
                    return Ok(None);
                };
                return Ok(Some(Command::Mpub { topic, bodies }));
            }
            other => {
                return Err(invalid(format!(
                    "invalid command {}",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        buf.advance(header);
        Ok(Some(cmd))
    }

    /// A consumer sends one FIN per message, so it is the commonest command
    /// by far: a well-formed one (`FIN <16 hex digits>\n`, in a state that
    /// allows it) is recognised without the general line parsing. Anything
    /// else, also a FIN that is not exactly that, takes the general path,
    /// which gives the same result for these and the errors for the rest.
    fn plain_fin(&self, buf: &[u8]) -> Option<[u8; 16]> {
        let line = buf.get(..FIN_LINE_LEN)?;
        let (head, rest) = line.split_at(4);
        let (id, end) = rest.split_at(16);
        if head != b"FIN "
            || end != b"\n"
            || self.gate.tls_pending
            || !matches!(self.gate.state, ConnState::Subscribed | ConnState::Closing)
            || !id.iter().all(u8::is_ascii_hexdigit)
        {
            return None;
        }
        id.try_into().ok()
    }

    /// The body of a whole, valid `PUB <topic>` at the front of `buf`,
    /// consumed; `None` leaves `buf` alone for [`Self::decode_command`].
    /// A run of PUBs to one topic is the common publishing load: this
    /// skips the line split, the name check and the name's allocation,
    /// the first PUB of the run having gone the usual way.
    pub fn repeat_pub(&self, buf: &mut BytesMut, topic: &str) -> Option<Bytes> {
        if self.gate.tls_pending {
            return None;
        }
        let header = PUB_PREFIX.len() + topic.len() + 1;
        let line = buf.get(..header)?;
        if !line.starts_with(PUB_PREFIX)
            || &line[PUB_PREFIX.len()..header - 1] != topic.as_bytes()
            || line[header - 1] != b'\n'
        {
            return None;
        }
        let size = read_i32(buf, header)?;
        if size <= 0 || size as i64 > self.limits.max_msg_size {
            return None;
        }
        if buf.len() < header + 4 + size as usize {
            return None;
        }
        buf.advance(header + 4);
        Some(buf.split_to(size as usize).freeze())
    }

    /// IDENTIFY and AUTH bodies: size checked against `--max-body-size`
    /// first, then for being positive (nsqd's order for these two).
    fn sized_body(
        &mut self,
        buf: &mut BytesMut,
        header: usize,
        eof: bool,
        what: &str,
    ) -> Step<Bytes> {
        let Some(size) = read_i32(buf, header) else {
            return short(
                eof,
                "E_BAD_BODY",
                format!("{what} failed to read body size"),
            );
        };
        let max = self.limits.max_body_size;
        if size as i64 > max {
            return Err(ProtocolError::fatal(
                "E_BAD_BODY",
                format!("{what} body too big {size} > {max}"),
            )
            .into());
        }
        if size <= 0 {
            return Err(ProtocolError::fatal(
                "E_BAD_BODY",
                format!("{what} invalid body size {size}"),
            )
            .into());
        }
        take_body(buf, header + 4, size as usize, eof, "E_BAD_BODY", || {
            format!("{what} failed to read body")
        })
    }

    /// PUB and DPUB bodies: positive first, then `--max-msg-size`.
    fn message_body(
        &mut self,
        buf: &mut BytesMut,
        header: usize,
        eof: bool,
        what: &str,
    ) -> Step<Bytes> {
        let Some(size) = read_i32(buf, header) else {
            return short(
                eof,
                "E_BAD_MESSAGE",
                format!("{what} failed to read message body size"),
            );
        };
        if size <= 0 {
            return Err(ProtocolError::fatal(
                "E_BAD_MESSAGE",
                format!("{what} invalid message body size {size}"),
            )
            .into());
        }
        let max = self.limits.max_msg_size;
        if size as i64 > max {
            return Err(ProtocolError::fatal(
                "E_BAD_MESSAGE",
                format!("{what} message too big {size} > {max}"),
            )
            .into());
        }
        take_body(buf, header + 4, size as usize, eof, "E_BAD_MESSAGE", || {
            format!("{what} failed to read message body")
        })
    }

    /// MPUB: outer size, count, then each message, read the way nsqd reads
    /// them (by the inner sizes; the outer size is only range-checked).
    fn mpub_bodies(&mut self, buf: &mut BytesMut, header: usize, eof: bool) -> Step<Vec<Bytes>> {
        let result = self.mpub_scan(buf, header, eof);
        if result.is_err() {
            self.mpub = None;
        }
        let Some(end) = result? else {
            return Ok(None);
        };
        let scan = self.mpub.take();
        let chunk = buf.split_to(end).freeze();
        let ranges = scan.map(|s| s.ranges).unwrap_or_default();
        Ok(Some(
            ranges
                .into_iter()
                .map(|(start, end)| chunk.slice(start..end))
                .collect(),
        ))
    }

    /// Walks the MPUB at the front of `buf`; returns the end offset once
    /// every message has arrived.
    fn mpub_scan(&mut self, buf: &mut BytesMut, header: usize, eof: bool) -> Step<usize> {
        let max_body = self.limits.max_body_size;
        let max_msg = self.limits.max_msg_size;
        if self.mpub.is_none() {
            let Some(size) = read_i32(buf, header) else {
                return short(eof, "E_BAD_BODY", "MPUB failed to read body size".into());
            };
            if size <= 0 {
                return Err(bad_body(format!("MPUB invalid body size {size}")));
            }
            if size as i64 > max_body {
                return Err(bad_body(format!("MPUB body too big {size} > {max_body}")));
            }
            // Make room for the whole batch at once, so that it arrives in a
            // single allocation rather than being copied as the buffer grows.
            let want = header + 4 + size as usize;
            if buf.len() < want {
                buf.reserve(want - buf.len());
            }
            let Some(count) = read_i32(buf, header + 4) else {
                return short(
                    eof,
                    "E_BAD_BODY",
                    "MPUB failed to read message count".into(),
                );
            };
            if count <= 0 || count as i64 > (max_body - 4) / 5 {
                return Err(bad_body(format!("MPUB invalid message count {count}")));
            }
            self.mpub = Some(MpubScan {
                pos: header + 8,
                index: 0,
                count,
                ranges: Vec::with_capacity(count.min(4096) as usize),
            });
        }
        let scan = self.mpub.as_mut().expect("set above");
        while scan.index < scan.count {
            let i = scan.index;
            let Some(size) = read_i32(buf, scan.pos) else {
                return short(
                    eof,
                    "E_BAD_MESSAGE",
                    format!("MPUB failed to read message({i}) body size"),
                );
            };
            if size <= 0 {
                return Err(bad_message(format!(
                    "MPUB invalid message({i}) body size {size}"
                )));
            }
            if size as i64 > max_msg {
                return Err(bad_message(format!(
                    "MPUB message too big {size} > {max_msg}"
                )));
            }
            let start = scan.pos + 4;
            let end = start + size as usize;
            if buf.len() < end {
                return short(
                    eof,
                    "E_BAD_MESSAGE",
                    "MPUB failed to read message body".into(),
                );
            }
            scan.ranges.push((start, end));
            scan.pos = end;
            scan.index += 1;
        }
        Ok(Some(scan.pos))
    }
}

impl Decoder for CommandDecoder {
    type Item = Command;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Command>, DecodeError> {
        self.decode_command(src, false)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Command>, DecodeError> {
        let cmd = self.decode_command(src, true)?;
        if cmd.is_none() {
            // A trailing partial line is dropped, as nsqd does at EOF.
            src.clear();
        }
        Ok(cmd)
    }
}

fn invalid(text: impl Into<String>) -> DecodeError {
    ProtocolError::invalid(text).into()
}

fn bad_body(text: String) -> DecodeError {
    ProtocolError::fatal("E_BAD_BODY", text).into()
}

fn bad_message(text: String) -> DecodeError {
    ProtocolError::fatal("E_BAD_MESSAGE", text).into()
}

/// Not enough bytes: wait for more, or at EOF report what could not be read.
fn short<T>(eof: bool, code: &'static str, text: String) -> Step<T> {
    if eof {
        Err(ProtocolError::fatal(code, text).into())
    } else {
        Ok(None)
    }
}

fn take_body(
    buf: &mut BytesMut,
    start: usize,
    size: usize,
    eof: bool,
    code: &'static str,
    text: impl FnOnce() -> String,
) -> Step<Bytes> {
    if buf.len() < start + size {
        if eof {
            return Err(ProtocolError::fatal(code, text()).into());
        }
        buf.reserve(start + size - buf.len());
        return Ok(None);
    }
    buf.advance(start);
    Ok(Some(buf.split_to(size).freeze()))
}

const PUB_PREFIX: &[u8] = b"PUB ";

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..at + 4)?;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

fn valid_name(raw: &[u8], code: &'static str, what: &str) -> Result<String, DecodeError> {
    if is_valid_name(raw) {
        // Valid names are ASCII.
        Ok(String::from_utf8_lossy(raw).into_owned())
    } else {
        Err(
            ProtocolError::fatal(code, format!("{what} name {} is not valid", go_quote(raw)))
                .into(),
        )
    }
}

fn require_in_flight_state(state: ConnState, name: &str) -> Result<(), DecodeError> {
    match state {
        ConnState::Subscribed | ConnState::Closing => Ok(()),
        ConnState::Init => Err(invalid(format!("cannot {name} in current state"))),
    }
}

fn message_id_param(params: &Params<'_>, name: &str) -> Result<[u8; 16], DecodeError> {
    let Some(raw) = params.get(1) else {
        return Err(invalid(format!("{name} insufficient number of params")));
    };
    raw.get(..)
        .and_then(|r| <[u8; 16]>::try_from(r).ok())
        .ok_or_else(|| invalid("invalid message ID"))
}

/// `FIN ` + a 16-byte message ID + `\n`.
const FIN_LINE_LEN: usize = 21;

/// A command line split on single spaces, without allocating: no command
/// looks past its third parameter, so only the first four are kept (the
/// count still covers all of them).
struct Params<'a> {
    items: [&'a [u8]; 4],
    len: usize,
}

impl<'a> Params<'a> {
    fn split(line: &'a [u8]) -> Self {
        let mut items: [&[u8]; 4] = [&[]; 4];
        let mut len = 0;
        for part in line.split(|&b| b == b' ') {
            if len < items.len() {
                items[len] = part;
            }
            len += 1;
        }
        Params { items, len }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, i: usize) -> Option<&'a [u8]> {
        (i < self.len.min(self.items.len())).then(|| self.items[i])
    }
}

impl<'a> std::ops::Index<usize> for Params<'a> {
    type Output = &'a [u8];
    fn index(&self, i: usize) -> &&'a [u8] {
        &self.items[i]
    }
}

/// nsqd's unsigned decimal parser: digits only, empty is 0, wraps on overflow.
pub fn parse_base10(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add((d - b'0') as u64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn decode_all(bytes: &[u8], gate: Gate) -> Vec<Result<Command, String>> {
        let mut d = CommandDecoder::new(Limits::default());
        d.gate = gate;
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match d.decode_command(&mut buf, false) {
                Ok(Some(c)) => out.push(Ok(c)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    fn one(bytes: &[u8]) -> Result<Command, String> {
        decode_all(bytes, Gate::default()).remove(0)
    }

    fn subscribed() -> Gate {
        Gate {
            state: ConnState::Subscribed,
            ..Default::default()
        }
    }

    #[test]
    fn fins_decode_alike_on_the_short_and_the_general_path() {
        let id = *b"0123456789abcdeF";
        let odd = *b"zzzzzzzzzzzzzzzz";
        let mut bytes = Vec::new();
        for line in [
            &b"FIN 0123456789abcdeF\n"[..],  // short path
            b"FIN 0123456789abcdeF\r\n",     // general path
            b"FIN 0123456789abcdeF extra\n", // general path, extra ignored
            b"FIN zzzzzzzzzzzzzzzz\n",       // general path, checked later
            b"FIN 0123",                     // incomplete: wait for more
        ] {
            bytes.extend_from_slice(line);
        }
        assert_eq!(
            decode_all(&bytes, subscribed()),
            vec![
                Ok(Command::Fin(id)),
                Ok(Command::Fin(id)),
                Ok(Command::Fin(id)),
                Ok(Command::Fin(odd)),
            ]
        );
        assert_eq!(
            decode_all(b"FIN 0123456789 abcdef\n", subscribed()),
            vec![Err("E_INVALID invalid message ID".to_string())]
        );
        // The state and TLS checks still apply.
        assert_eq!(
            one(b"FIN 0123456789abcdef\n").unwrap_err(),
            "E_INVALID cannot FIN in current state"
        );
        let tls = Gate {
            tls_pending: true,
            ..subscribed()
        };
        assert!(decode_all(b"FIN 0123456789abcdef\n", tls)[0]
            .as_ref()
            .unwrap_err()
            .contains("TLS required"));
    }

    #[test]
    fn repeat_pub_takes_only_whole_valid_pubs_to_its_topic() {
        let d = CommandDecoder::new(Limits {
            max_msg_size: 4,
            ..Limits::default()
        });
        let take = |bytes: &[u8], topic: &str| {
            let mut buf = BytesMut::from(bytes);
            let got = d.repeat_pub(&mut buf, topic);
            (got, buf)
        };
        // Whole and valid: the body, and the buffer moves past it.
        let (got, rest) = take(b"PUB t\n\x00\x00\x00\x02hiNOP\n", "t");
        assert_eq!(got, Some(Bytes::from_static(b"hi")));
        assert_eq!(&rest[..], b"NOP\n");
        // Anything else leaves the buffer whole, for the general path
        // (which answers errors with NSQ's texts).
        for (bytes, topic) in [
            (&b"PUB u\n\x00\x00\x00\x02hi"[..], "t"), // another topic
            (b"PUB tt\n\x00\x00\x00\x02hi", "t"),     // a longer name
            (b"PUB t\r\n\x00\x00\x00\x02hi", "t"),    // CR LF
            (b"PUB t x\n\x00\x00\x00\x02hi", "t"),    // extra parameter
            (b"DPUB t\n\x00\x00\x00\x02hi", "t"),
            (b"PUB t\n\x00\x00\x00\x00", "t"),      // empty body
            (b"PUB t\n\xff\xff\xff\xff", "t"),      // negative size
            (b"PUB t\n\x00\x00\x00\x05hello", "t"), // over the limit
            (b"PUB t\n\x00\x00\x00\x02h", "t"),     // cut short
            (b"PUB t\n\x00\x00", "t"),
            (b"PUB t", "t"),
            (b"", "t"),
        ] {
            let (got, rest) = take(bytes, topic);
            assert_eq!(got, None, "{bytes:?}");
            assert_eq!(&rest[..], bytes);
        }
        // Before a required TLS upgrade every command goes the general way.
        let mut d = d;
        d.gate.tls_pending = true;
        let mut buf = BytesMut::from(&b"PUB t\n\x00\x00\x00\x02hi"[..]);
        assert_eq!(d.repeat_pub(&mut buf, "t"), None);
    }

    #[test]
    fn pub_and_pipelining() {
        let mut bytes = b"PUB t\n\x00\x00\x00\x02hiNOP\r\nPUB t\n\x00\x00\x00\x01x".to_vec();
        bytes.extend_from_slice(b"PUB t\n\x00\x00");
        let got = decode_all(&bytes, Gate::default());
        assert_eq!(
            got,
            vec![
                Ok(Command::Pub {
                    topic: "t".into(),
                    body: Bytes::from_static(b"hi")
                }),
                Ok(Command::Nop),
                Ok(Command::Pub {
                    topic: "t".into(),
                    body: Bytes::from_static(b"x")
                }),
            ]
        );
    }

    #[test]
    fn errors_match_nsq_texts() {
        assert_eq!(one(b"\n").unwrap_err(), "E_INVALID invalid command ");
        assert_eq!(
            one(b"FOO bar\n").unwrap_err(),
            "E_INVALID invalid command FOO"
        );
        assert_eq!(
            one(b"PUB\n").unwrap_err(),
            "E_INVALID PUB insufficient number of parameters"
        );
        assert_eq!(
            one(b"PUB bad!\n").unwrap_err(),
            "E_BAD_TOPIC PUB topic name \"bad!\" is not valid"
        );
        assert_eq!(
            one(b"MPUB bad!\n").unwrap_err(),
            "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad!\" is not valid"
        );
        assert_eq!(
            one(b"PUB t\n\x00\x00\x00\x00").unwrap_err(),
            "E_BAD_MESSAGE PUB invalid message body size 0"
        );
        assert_eq!(
            one(b"PUB t\n\x00\x10\x00\x01").unwrap_err(),
            "E_BAD_MESSAGE PUB message too big 1048577 > 1048576"
        );
        assert_eq!(
            one(b"DPUB t x\n").unwrap_err(),
            "E_INVALID DPUB could not parse timeout x"
        );
        assert_eq!(
            one(b"DPUB t 3600001\n").unwrap_err(),
            "E_INVALID DPUB timeout 3600001 out of range 0-3600000"
        );
        assert_eq!(
            one(b"IDENTIFY\n\x00\x50\x00\x01").unwrap_err(),
            "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880"
        );
        assert_eq!(
            one(b"IDENTIFY\n\xff\xff\xff\xff").unwrap_err(),
            "E_BAD_BODY IDENTIFY invalid body size -1"
        );
        assert_eq!(
            one(b"RDY 1\n").unwrap_err(),
            "E_INVALID cannot RDY in current state"
        );
        assert_eq!(
            one(b"CLS\n").unwrap_err(),
            "E_INVALID cannot CLS in current state"
        );
        assert_eq!(
            one(b"SUB t\n").unwrap_err(),
            "E_INVALID SUB insufficient number of parameters"
        );
        assert_eq!(
            one(b"SUB t c!\n").unwrap_err(),
            "E_BAD_CHANNEL SUB channel name \"c!\" is not valid"
        );
    }

    #[test]
    fn subscribed_commands() {
        let g = subscribed();
        let r = |b: &[u8]| decode_all(b, g).remove(0);
        assert_eq!(r(b"RDY\n"), Ok(Command::Rdy(1)));
        assert_eq!(r(b"RDY \n"), Ok(Command::Rdy(0)));
        assert_eq!(r(b"RDY 2500\n"), Ok(Command::Rdy(2500)));
        assert_eq!(
            r(b"RDY 2501\n").unwrap_err(),
            "E_INVALID RDY count 2501 out of range 0-2500"
        );
        assert_eq!(
            r(b"RDY -1\n").unwrap_err(),
            "E_INVALID RDY could not parse count -1"
        );
        assert_eq!(
            r(b"FIN 0123\n").unwrap_err(),
            "E_INVALID invalid message ID"
        );
        assert_eq!(
            r(b"FIN\n").unwrap_err(),
            "E_INVALID FIN insufficient number of params"
        );
        assert_eq!(
            r(b"REQ 0123456789abcdef\n").unwrap_err(),
            "E_INVALID REQ insufficient number of params"
        );
        assert_eq!(
            r(b"REQ 0123456789abcdef 10\n"),
            Ok(Command::Req {
                id: *b"0123456789abcdef",
                timeout_ms: 10
            })
        );
        assert_eq!(
            r(b"SUB t c\n").unwrap_err(),
            "E_INVALID cannot SUB in current state"
        );
        let closing = Gate {
            state: ConnState::Closing,
            ..Default::default()
        };
        assert_eq!(decode_all(b"RDY x\n", closing).remove(0), Ok(Command::Nop));
    }

    #[test]
    fn tls_gate_names_the_command() {
        let g = Gate {
            tls_pending: true,
            ..Default::default()
        };
        assert_eq!(
            decode_all(b"WHAT\n", g).remove(0).unwrap_err(),
            "E_INVALID cannot WHAT in current state (TLS required)"
        );
    }

    #[test]
    fn mpub_resumes_across_reads() {
        let mut d = CommandDecoder::new(Limits::default());
        let cmd = Command::Mpub {
            topic: "t".into(),
            bodies: (0..100).map(|i| Bytes::from(format!("m{i}"))).collect(),
        };
        let wire = cmd.to_bytes();
        let mut buf = BytesMut::new();
        let mut got = None;
        for chunk in wire.chunks(7) {
            buf.put_slice(chunk);
            if let Some(c) = d.decode_command(&mut buf, false).unwrap() {
                got = Some(c);
            }
        }
        assert_eq!(got, Some(cmd));
        assert!(buf.is_empty());
    }

    #[test]
    fn mpub_limits() {
        assert_eq!(
            one(b"MPUB t\n\x00\x00\x00\x08\x00\x00\x00\x00").unwrap_err(),
            "E_BAD_BODY MPUB invalid message count 0"
        );
        assert_eq!(
            one(b"MPUB t\n\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00").unwrap_err(),
            "E_BAD_MESSAGE MPUB invalid message(0) body size 0"
        );
    }

    #[test]
    fn eof_reports_short_bodies() {
        let mut d = CommandDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"PUB t\n\x00\x00\x00\x05ab"[..]);
        assert_eq!(
            d.decode_eof(&mut buf).unwrap_err().to_string(),
            "E_BAD_MESSAGE PUB failed to read message body"
        );
        let mut buf = BytesMut::from(&b"NOP"[..]);
        assert!(d.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn long_line_is_a_silent_close() {
        let mut d = CommandDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&vec![b'A'; MAX_LINE_LEN][..]);
        assert!(matches!(
            d.decode_command(&mut buf, false),
            Err(DecodeError::LineTooLong)
        ));
    }
}
