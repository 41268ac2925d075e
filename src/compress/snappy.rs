//! The snappy framing format (as golang/snappy's `NewReader`/`NewWriter`,
//! which NSQ uses): a stream identifier chunk, then chunks of at most 64 KiB
//! of data, each compressed (or stored, when that is smaller) with a masked
//! CRC-32C of the uncompressed bytes.

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const STREAM_ID: &[u8] = b"\xff\x06\x00\x00sNaPpY";
const MAX_BLOCK: usize = 65536;
const COMPRESSED: u8 = 0x00;
const UNCOMPRESSED: u8 = 0x01;

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn bad(text: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snappy stream: {text}"))
}

/// Compresses what is written; a flush turns the pending bytes into chunks
/// and flushes them through.
pub struct Writer<W> {
    inner: W,
    /// Uncompressed bytes not yet framed.
    pending: Vec<u8>,
    /// Framed bytes not yet written to `inner`.
    out: BytesMut,
    encoder: snap::raw::Encoder,
    started: bool,
}

impl<W> Writer<W> {
    pub fn new(inner: W) -> Self {
        Writer {
            inner,
            pending: Vec::new(),
            out: BytesMut::new(),
            encoder: snap::raw::Encoder::new(),
            started: false,
        }
    }

    /// Frame everything pending into `out`.
    fn frame(&mut self) -> io::Result<()> {
        if !self.started {
            self.out.put_slice(STREAM_ID);
            self.started = true;
        }
        for block in self.pending.chunks(MAX_BLOCK) {
            let compressed = self
                .encoder
                .compress_vec(block)
                .map_err(|e| bad(&e.to_string()))?;
            let (kind, body) = if compressed.len() < block.len() {
                (COMPRESSED, &compressed[..])
            } else {
                (UNCOMPRESSED, block)
            };
            let len = (body.len() + 4) as u32;
            self.out.put_u8(kind);
            self.out.put_slice(&len.to_le_bytes()[..3]);
            self.out.put_u32_le(masked_crc(block));
            self.out.put_slice(body);
        }
        self.pending.clear();
        Ok(())
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Writer<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.pending.len() >= MAX_BLOCK {
            me.frame()?;
        }
        if !me.out.is_empty() {
            ready!(me.poll_drain(cx))?;
        }
        // Take at most what fits in a few blocks; the rest comes again.
        let n = data.len().min(MAX_BLOCK * 4 - me.pending.len());
        me.pending.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if !me.pending.is_empty() || !me.started {
            me.frame()?;
        }
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Decompresses a snappy-framed stream.
pub struct Reader<R> {
    inner: R,
    /// Raw bytes read, not yet parsed.
    raw: BytesMut,
    /// Decoded bytes not yet handed out.
    decoded: BytesMut,
    decoder: snap::raw::Decoder,
    seen_stream_id: bool,
    eof: bool,
}

impl<R> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            raw: BytesMut::new(),
            decoded: BytesMut::new(),
            decoder: snap::raw::Decoder::new(),
            seen_stream_id: false,
            eof: false,
        }
    }

    /// Parse every complete chunk in `raw` into `decoded`.
    fn parse(&mut self) -> io::Result<()> {
        while self.raw.len() >= 4 {
            let kind = self.raw[0];
            let len = u32::from_le_bytes([self.raw[1], self.raw[2], self.raw[3], 0]) as usize;
            // Judge the header at once: a bad stream must not make us wait
            // for megabytes that will never come.
            match kind {
                0x02..=0x7f => return Err(bad("unskippable reserved chunk")),
                0xff if len != STREAM_ID.len() - 4 => return Err(bad("bad stream identifier")),
                0xff => {}
                _ if !self.seen_stream_id => return Err(bad("missing stream identifier")),
                COMPRESSED | UNCOMPRESSED if len > 4 + snap::raw::max_compress_len(MAX_BLOCK) => {
                    return Err(bad("chunk too large"))
                }
                _ => {}
            }
            if self.raw.len() < 4 + len {
                return Ok(());
            }
            let chunk = self.raw.split_to(4 + len);
            let body = &chunk[4..];
            match kind {
                0xff => {
                    if body != &STREAM_ID[4..] {
                        return Err(bad("bad stream identifier"));
                    }
                    self.seen_stream_id = true;
                }
                _ if !self.seen_stream_id => return Err(bad("missing stream identifier")),
                COMPRESSED | UNCOMPRESSED => {
                    if body.len() < 4 {
                        return Err(bad("short chunk"));
                    }
                    let crc = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    let data = if kind == COMPRESSED {
                        let n = snap::raw::decompress_len(&body[4..])
                            .map_err(|e| bad(&e.to_string()))?;
                        if n > MAX_BLOCK {
                            return Err(bad("chunk too large"));
                        }
                        self.decoder
                            .decompress_vec(&body[4..])
                            .map_err(|e| bad(&e.to_string()))?
                    } else {
                        body[4..].to_vec()
                    };
                    if masked_crc(&data) != crc {
                        return Err(bad("checksum mismatch"));
                    }
                    self.decoded.put_slice(&data);
                }
                0x02..=0x7f => return Err(bad("unskippable reserved chunk")),
                _ => {} // padding and skippable chunks
            }
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Reader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if !me.decoded.is_empty() {
                let n = me.decoded.len().min(buf.remaining());
                buf.put_slice(&me.decoded[..n]);
                me.decoded.advance(n);
                return Poll::Ready(Ok(()));
            }
            if me.eof {
                return Poll::Ready(Ok(()));
            }
            me.raw.reserve(16 * 1024);
            let mut tmp = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut me.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                if !me.raw.is_empty() {
                    return Poll::Ready(Err(bad("truncated chunk")));
                }
                me.eof = true;
                continue;
            }
            me.raw.put_slice(rb.filled());
            me.parse()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golang_snappy_stream_decodes() {
        // "hello" framed by golang/snappy: stream id, then an uncompressed
        // chunk (data too short to compress).
        let mut framed = STREAM_ID.to_vec();
        let data = b"hello";
        framed.push(UNCOMPRESSED);
        framed.extend_from_slice(&((data.len() + 4) as u32).to_le_bytes()[..3]);
        framed.extend_from_slice(&masked_crc(data).to_le_bytes());
        framed.extend_from_slice(data);
        let mut r = Reader::new(&framed[..]);
        r.raw.put_slice(&framed);
        r.parse().unwrap();
        assert_eq!(&r.decoded[..], b"hello");
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let mut r = Reader::new(&b""[..]);
        r.raw.put_slice(b"\x00\x05\x00\x00abcde");
        assert!(r.parse().is_err(), "no stream identifier");
        let mut r = Reader::new(&b""[..]);
        r.raw.put_slice(STREAM_ID);
        r.raw.put_slice(b"\x01\x09\x00\x00\x00\x00\x00\x00hello");
        assert!(r.parse().is_err(), "bad checksum");
        // A reserved chunk type is refused from its header alone.
        let mut r = Reader::new(&b""[..]);
        r.raw.put_slice(STREAM_ID);
        r.raw.put_slice(b"this is not snappy");
        assert!(r.parse().is_err());
    }
}
