//! The compressed connections IDENTIFY can negotiate, as byte streams that
//! wrap another stream (plain TCP or TLS): NSQ's snappy framing format and
//! raw DEFLATE; and [`Prefixed`], for bytes read before a switch. Shared by
//! nsqd and the client, so both sides speak them the same way.

pub mod prefixed;
pub mod snappy;

pub use prefixed::Prefixed;

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A reader and a writer joined back into one stream.
pub struct Joined<R, W> {
    pub reader: R,
    pub writer: W,
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Joined<R, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Joined<R, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// Raw DEFLATE (RFC 1951, no zlib or gzip header) both ways, at `level`
/// for what this side writes; every flush is a sync flush, so the peer can
/// decode each flushed frame at once.
pub fn deflate<S>(stream: S, level: u32) -> impl AsyncRead + AsyncWrite + Unpin + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    use async_compression::tokio::{bufread::DeflateDecoder, write::DeflateEncoder};
    let (rh, wh) = tokio::io::split(stream);
    let mut reader = DeflateDecoder::new(tokio::io::BufReader::new(rh));
    // A peer's stream never "ends" between messages.
    reader.multiple_members(true);
    let writer = DeflateEncoder::with_quality(
        wh,
        async_compression::Level::Precise(level.clamp(1, 9) as i32),
    );
    Joined { reader, writer }
}

/// NSQ's snappy framing format both ways.
pub fn snappy<S>(stream: S) -> impl AsyncRead + AsyncWrite + Unpin + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (rh, wh) = tokio::io::split(stream);
    Joined {
        reader: snappy::Reader::new(rh),
        writer: snappy::Writer::new(wh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn round_trip<F, S>(wrap: F)
    where
        F: Fn(tokio::io::DuplexStream) -> S,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut a, mut b) = (wrap(a), wrap(b));
        // Many small frames, each flushed, then a large one.
        for i in 0..200 {
            let msg = format!("message {i}\n");
            a.write_all(msg.as_bytes()).await.unwrap();
            a.flush().await.unwrap();
            let mut got = vec![0u8; msg.len()];
            b.read_exact(&mut got).await.unwrap();
            assert_eq!(got, msg.as_bytes());
        }
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let writer = tokio::spawn(async move {
            a.write_all(&big).await.unwrap();
            a.flush().await.unwrap();
            (a, big)
        });
        let mut got = vec![0u8; 300_000];
        b.read_exact(&mut got).await.unwrap();
        let (_a, big) = writer.await.unwrap();
        assert_eq!(got, big);
    }

    #[tokio::test]
    async fn deflate_round_trips() {
        round_trip(|s| deflate(s, 6)).await;
    }

    #[tokio::test]
    async fn snappy_round_trips() {
        round_trip(snappy).await;
    }
}
