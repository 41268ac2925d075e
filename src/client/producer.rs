//! Publishing: PUB, MPUB and DPUB on one connection, pipelined.
//!
//! nsqd answers a connection's commands strictly in order, so any number of
//! publishes may be outstanding: the connection task keeps their
//! acknowledgements in a FIFO and hands each response (`OK` or an error
//! frame) to the oldest. The task reads and writes concurrently, and encodes
//! every command waiting in its queue into one buffer before writing, so a
//! burst of publishes costs a few write syscalls, not one each.

use super::conn::{Config, Connection, FrameReader};
use super::error::ClientError;
use crate::protocol::{Command, Frame};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where a publish's outcome goes: `Ok` for nsqd's `OK`, or the error.
pub type PublishAck = oneshot::Receiver<Result<(), ClientError>>;

type AckTx = oneshot::Sender<Result<(), ClientError>>;

/// Commands queued for the connection task before it stops taking more and
/// lets the socket drain (backpressure for the callers).
const QUEUE: usize = 1024;
/// Encoded bytes the task buffers before it stops taking commands.
const HIGH_WATER: usize = 1 << 20;
/// After a failed write, how long the task goes on reading answers.
const DRAIN_AFTER_WRITE_ERROR: Duration = Duration::from_secs(2);

/// Publishes to one nsqd. Cheap to clone: clones share the connection, and
/// their publishes are pipelined on it. The connection closes once every
/// clone is dropped and the outstanding publishes are answered.
#[derive(Clone)]
pub struct Producer {
    addr: String,
    tx: mpsc::Sender<(Command, AckTx)>,
}

impl Producer {
    /// Connect and IDENTIFY; the connection then runs in its own task.
    pub async fn connect(addr: &str, config: &Config) -> Result<Producer, ClientError> {
        let conn = Connection::connect(addr, config).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (addr, stream, reader) = conn.into_parts();
        let task_addr = addr.clone();
        tokio::spawn(async move {
            let (rd, wr) = tokio::io::split(stream);
            drive(task_addr, rd, wr, reader, rx).await;
        });
        Ok(Producer { addr, tx })
    }

    /// The nsqd this producer publishes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has ended (closed by nsqd, or failed): a
    /// publish would fail at once, a new producer is needed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// PUB one message and wait for nsqd's `OK`.
    pub async fn publish(&self, topic: &str, body: impl Into<Bytes>) -> Result<(), ClientError> {
        self.request(Command::Pub {
            topic: topic.to_string(),
            body: body.into(),
        })
        .await
    }

    /// MPUB: several messages in one command, accepted or refused together.
    pub async fn multi_publish(&self, topic: &str, bodies: Vec<Bytes>) -> Result<(), ClientError> {
        self.request(Command::Mpub {
            topic: topic.to_string(),
            bodies,
        })
        .await
    }

    /// DPUB: a message delivered once `delay` has passed (millisecond
    /// precision; nsqd caps it at `--max-req-timeout`).
    pub async fn deferred_publish(
        &self,
        topic: &str,
        delay: Duration,
        body: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        self.request(Command::Dpub {
            topic: topic.to_string(),
            defer_ms: delay.as_millis().min(u64::MAX as u128) as u64,
            body: body.into(),
        })
        .await
    }

    /// Queue a PUB, MPUB or DPUB now and get its acknowledgement later:
    /// issuing many of these before awaiting them pipelines the publishes
    /// (acknowledged in the order sent). Waits only while the connection's
    /// queue is full.
    pub async fn send_pipelined(&self, cmd: Command) -> Result<PublishAck, ClientError> {
        if !matches!(
            cmd,
            Command::Pub { .. } | Command::Mpub { .. } | Command::Dpub { .. }
        ) {
            return Err(ClientError::Unsupported {
                command: cmd.name(),
                reason: "a producer sends only PUB, MPUB and DPUB",
            });
        }
        let (ack, rx) = oneshot::channel();
        self.tx.send((cmd, ack)).await.map_err(|_| self.closed())?;
        Ok(rx)
    }

    async fn request(&self, cmd: Command) -> Result<(), ClientError> {
        let rx = self.send_pipelined(cmd).await?;
        rx.await.map_err(|_| self.closed())?
    }

    fn closed(&self) -> ClientError {
        ClientError::Closed {
            addr: self.addr.clone(),
        }
    }
}

/// The connection task. Reads, writes and takes new commands concurrently
/// (all three are cancel-safe `select!` branches), so a large burst can never
/// deadlock against nsqd's responses. Ends when the producers are gone and
/// everything is answered, or on the first failure, which every outstanding
/// and queued publish then receives.
///
/// A failed write does not end it at once: NSQ's nsqd closes the socket
/// right after a fatal error frame, with commands still unread, and the
/// reset that then fails our writes arrives behind the answers it sent
/// before. Those (the `OK`s, and the error naming the publish at fault)
/// are read first, for up to [`DRAIN_AFTER_WRITE_ERROR`].
async fn drive<R, W>(
    addr: String,
    mut rd: R,
    mut wr: W,
    mut reader: FrameReader,
    mut rx: mpsc::Receiver<(Command, AckTx)>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut pending: VecDeque<AckTx> = VecDeque::new();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut open = true;
    let closed = || ClientError::Closed { addr: addr.clone() };
    // The first failed write, and until when answers are still read.
    let mut write_failed: Option<(ClientError, Instant)> = None;
    let end: ClientError = loop {
        match &write_failed {
            Some((e, _)) if pending.is_empty() => break e.clone(),
            None if !open && pending.is_empty() && out.is_empty() => break closed(),
            _ => {}
        }
        let writing = write_failed.is_none();
        let read_until = write_failed.as_ref().map(|&(_, until)| until);
        let failed = tokio::select! {
            next = rx.recv(), if writing && open && out.len() < HIGH_WATER => {
                match next {
                    None => open = false,
                    Some((cmd, ack)) => {
                        cmd.encode(&mut out);
                        pending.push_back(ack);
                        while out.len() < HIGH_WATER {
                            let Ok((cmd, ack)) = rx.try_recv() else { break };
                            cmd.encode(&mut out);
                            pending.push_back(ack);
                        }
                    }
                }
                None
            }
            read = reader.fill(&mut rd, &addr) => {
                if let Err(e) = read.and_then(|()| on_frames(&addr, &mut reader, &mut pending, &mut out)) {
                    break e;
                }
                None
            }
            written = wr.write_buf(&mut out), if writing && !out.is_empty() => match written {
                Ok(0) => Some(closed()),
                // Drained: push it through a compressor or TLS.
                Ok(_) if out.is_empty() => wr.flush().await.err().map(|e| ClientError::io(&addr, e)),
                Ok(_) => None,
                Err(e) => Some(ClientError::io(&addr, e)),
            },
            () = sleep_until_some(read_until) => break write_failed.take().expect("waiting on it").0,
        };
        if let Some(e) = failed {
            out.clear();
            write_failed = Some((e, Instant::now() + DRAIN_AFTER_WRITE_ERROR));
        }
    };
    for ack in pending.drain(..) {
        let _ = ack.send(Err(end.clone()));
    }
    rx.close();
    while let Ok((_, ack)) = rx.try_recv() {
        let _ = ack.send(Err(end.clone()));
    }
}

/// Sleeps until `until`, or for ever if `None`.
async fn sleep_until_some(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Handle every complete frame buffered: answer heartbeats, resolve the
/// oldest publish per response. An error frame resolves the oldest publish
/// with nsqd's text; nsqd then closes the connection (every publish error is
/// fatal), so the others fail as closed.
fn on_frames(
    addr: &str,
    reader: &mut FrameReader,
    pending: &mut VecDeque<AckTx>,
    out: &mut BytesMut,
) -> Result<(), ClientError> {
    while let Some(frame) = reader.decode(addr)? {
        match frame {
            f if f.is_heartbeat() => Command::Nop.encode(out),
            Frame::Response(_) => match pending.pop_front() {
                Some(ack) => {
                    let _ = ack.send(Ok(()));
                }
                None => {
                    return Err(ClientError::Protocol {
                        addr: addr.to_string(),
                        reason: "a response to no outstanding command".into(),
                    })
                }
            },
            Frame::Error(text) => {
                let err = ClientError::Server {
                    addr: addr.to_string(),
                    text: String::from_utf8_lossy(&text).into_owned(),
                };
                if let Some(ack) = pending.pop_front() {
                    let _ = ack.send(Err(err));
                    return Err(ClientError::Closed {
                        addr: addr.to_string(),
                    });
                }
                return Err(err);
            }
            Frame::Message(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{encode_frame, FrameType};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts successful writes, to show that a burst costs few of them.
    struct CountingWriter<W> {
        inner: W,
        writes: Arc<AtomicUsize>,
    }

    impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<W> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(r, Poll::Ready(Ok(_))) {
                self.writes.fetch_add(1, Relaxed);
            }
            r
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A producer whose connection task reads `rd` and writes `wr`.
    fn producer_over<R, W>(rd: R, wr: W) -> Producer
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(drive("fake".into(), rd, wr, FrameReader::default(), rx));
        Producer {
            addr: "fake".into(),
            tx,
        }
    }

    fn producer_on(stream: tokio::io::DuplexStream) -> (Producer, Arc<AtomicUsize>) {
        let (rd, wr) = tokio::io::split(stream);
        let writes = Arc::new(AtomicUsize::new(0));
        let wr = CountingWriter {
            inner: wr,
            writes: writes.clone(),
        };
        (producer_over(rd, wr), writes)
    }

    /// PUBs of `m0`, `m1`, `m2`, pipelined: their acknowledgements.
    async fn publish_three(p: &Producer) -> Vec<PublishAck> {
        let mut acks = Vec::new();
        for i in 0..3 {
            let cmd = Command::Pub {
                topic: "t".into(),
                body: Bytes::from(format!("m{i}")),
            };
            acks.push(p.send_pipelined(cmd).await.unwrap());
        }
        acks
    }

    fn frame(t: FrameType, data: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        encode_frame(&mut b, t, data);
        b
    }

    /// nsqd's answers to three pipelined PUBs: two `OK`s, then `error`.
    fn two_oks_then(error: &[u8]) -> BytesMut {
        let mut answer = frame(FrameType::Response, b"OK");
        answer.extend_from_slice(&frame(FrameType::Response, b"OK"));
        answer.extend_from_slice(&frame(FrameType::Error, error));
        answer
    }

    /// The three publishes got those answers, each its own.
    async fn expect_two_oks_then(acks: Vec<PublishAck>, error: &str) {
        let mut acks = acks.into_iter();
        assert!(acks.next().unwrap().await.unwrap().is_ok());
        assert!(acks.next().unwrap().await.unwrap().is_ok());
        match acks.next().unwrap().await.unwrap() {
            Err(ClientError::Server { text, .. }) => assert_eq!(text, error),
            other => panic!("{other:?}"),
        }
    }

    /// Read from the fake server side until `want` bytes have arrived.
    async fn read_exactly(server: &mut tokio::io::DuplexStream, want: usize) -> Vec<u8> {
        let mut got = vec![0; want];
        server.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn pipelined_answers_in_order_and_heartbeats_get_nop() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let (p, _) = producer_on(client);
        let acks = publish_three(&p).await;
        let one = Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"m0"),
        }
        .to_bytes()
        .len();
        let sent = read_exactly(&mut server, 3 * one).await;
        assert!(sent.starts_with(b"PUB t\n\0\0\0\x02m0PUB t\n"));

        let heartbeat = frame(FrameType::Response, b"_heartbeat_");
        server.write_all(&heartbeat).await.unwrap();
        assert_eq!(read_exactly(&mut server, 4).await, b"NOP\n");

        server
            .write_all(&two_oks_then(b"E_BAD_TOPIC nope"))
            .await
            .unwrap();
        expect_two_oks_then(acks, "E_BAD_TOPIC nope").await;
        // The connection is finished after a publish error.
        assert!(p.publish("t", "x").await.is_err());
        assert!(p.is_closed());
    }

    #[tokio::test]
    async fn burst_is_answered_in_order_then_the_connection_closes() {
        let (client, mut server) = tokio::io::duplex(8 << 20);
        let (p, writes) = producer_on(client);
        let mut acks = Vec::new();
        for _ in 0..500 {
            let cmd = Command::Pub {
                topic: "t".into(),
                body: Bytes::from_static(b"x"),
            };
            acks.push(p.send_pipelined(cmd).await.unwrap());
        }
        drop(p);
        let one = b"PUB t\n\0\0\0\x01x".len();
        read_exactly(&mut server, 500 * one).await;
        // Queued together, written together: a handful of writes (tokio's
        // cooperative budget makes the test's sender yield every 128
        // sends), not one per publish.
        assert!(
            writes.load(Relaxed) <= 10,
            "{} writes",
            writes.load(Relaxed)
        );
        let mut oks = BytesMut::new();
        for _ in 0..500 {
            oks.extend_from_slice(&frame(FrameType::Response, b"OK"));
        }
        server.write_all(&oks).await.unwrap();
        for ack in acks {
            ack.await.unwrap().unwrap();
        }
        // Producer gone and all answered: the client closes its side.
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn only_publishes_are_accepted() {
        let (client, _server) = tokio::io::duplex(1024);
        let (p, _) = producer_on(client);
        let err = p.send_pipelined(Command::Nop).await.unwrap_err();
        assert!(matches!(
            err,
            ClientError::Unsupported { command: "NOP", .. }
        ));
    }

    /// A socket reset by the peer: every write fails (`tried` says when
    /// one was attempted).
    struct ResetWriter {
        tried: Arc<std::sync::atomic::AtomicBool>,
    }

    impl AsyncWrite for ResetWriter {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.tried.store(true, Relaxed);
            Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Three publishes on a connection whose writes fail, sent (the write
    /// failed) before the caller answers on `server`, the side nsqd
    /// answers on: an answer can only follow its command.
    async fn three_publishes_on_a_reset_socket() -> (tokio::io::DuplexStream, Vec<PublishAck>) {
        let (client, server) = tokio::io::duplex(1024);
        let (rd, _) = tokio::io::split(client);
        let tried = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let p = producer_over(
            rd,
            ResetWriter {
                tried: tried.clone(),
            },
        );
        let acks = publish_three(&p).await;
        // The connection task runs on this (single) thread when we yield.
        while !tried.load(Relaxed) {
            tokio::task::yield_now().await;
        }
        (server, acks)
    }

    /// NSQ's nsqd answers, then closes with commands unread: the reset
    /// fails our writes, but the answers sent before it are still read,
    /// so each publish gets its own outcome.
    #[tokio::test]
    async fn answers_sent_before_a_reset_still_reach_their_publishes() {
        let (mut server, acks) = three_publishes_on_a_reset_socket().await;
        server
            .write_all(&two_oks_then(b"E_BAD_MESSAGE too big"))
            .await
            .unwrap();
        drop(server);
        expect_two_oks_then(acks, "E_BAD_MESSAGE too big").await;
    }

    /// With no answer coming, the publishes fail with the write's error
    /// once the connection ends, or after the drain period at most.
    #[tokio::test]
    async fn after_a_failed_write_unanswered_publishes_fail_with_its_error() {
        let (server, acks) = three_publishes_on_a_reset_socket().await;
        let started = std::time::Instant::now();
        for ack in acks {
            match ack.await.unwrap() {
                Err(ClientError::Io { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(started.elapsed() < DRAIN_AFTER_WRITE_ERROR * 3);
        drop(server);
    }

    #[tokio::test]
    async fn connection_loss_fails_outstanding_publishes() {
        let (client, server) = tokio::io::duplex(1024);
        let (p, _) = producer_on(client);
        let ack = p
            .send_pipelined(Command::Pub {
                topic: "t".into(),
                body: Bytes::from_static(b"x"),
            })
            .await
            .unwrap();
        drop(server);
        assert!(matches!(
            ack.await.unwrap(),
            Err(ClientError::Closed { .. } | ClientError::Io { .. })
        ));
    }
}
