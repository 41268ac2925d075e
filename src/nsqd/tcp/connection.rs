//! One client connection's event loop: framing in and out, delivery from
//! its channel, heartbeats, and responses held back behind publishes that
//! wait for their fsync. The commands themselves are in `cmd/`.

use super::super::auth::Authorization;
use super::super::backend::Ticket;
use super::super::channel::{Channel, OUTPUT_BATCH_BYTES, TAKE_BATCH};
use super::super::client_state::ClientHandle;
use super::super::operations::{Durability, Subscription};
use super::super::topic::Topic;
use super::super::Nsqd;
use super::read_buffer::ReadBuffer;
use super::when_woken::WhenWoken;
use super::{BoxStream, CLIENT_TIMEOUT};
use crate::protocol::frame::{encode_frame, encode_message_frame};
use crate::protocol::{
    Command, CommandDecoder, ConnState, DecodeError, FrameType, Message, ProtocolError, HEARTBEAT,
    OK,
};
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

/// Stop reading from a client whose unread responses pile up past this.
const MAX_PENDING_OUTPUT: usize = 4 << 20;
/// Longest wait for a client to close after a fatal error (see
/// [`Connection::linger`]).
const LINGER: Duration = Duration::from_secs(1);

/// Output and batch buffers larger than this are given back when idle.
const IDLE_KEEP: usize = 4096;
/// A message frame's size and type fields, before the message.
const FRAME_OVERHEAD: usize = 8;

/// Why a connection's loop ends without a read or write failing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Its channel was deleted.
    Killed,
    ShuttingDown,
}

pub(super) struct Connection {
    pub(super) nsqd: Arc<Nsqd>,
    pub(super) client: Arc<ClientHandle>,
    pub(super) rh: ReadHalf<BoxStream>,
    pub(super) wh: WriteHalf<BoxStream>,
    pub(super) rbuf: ReadBuffer,
    pub(super) wbuf: BytesMut,
    pub(super) decoder: CommandDecoder,
    pub(super) heartbeat: Option<Duration>,
    pub(super) msg_timeout: Duration,
    pub(super) output_buffer_size: usize,
    pub(super) sub: Option<Subscription>,
    /// The topic of the last publish, to skip the topic map on repeats.
    pub(super) pub_topic: Option<Arc<Topic>>,
    /// A response or error is waiting in `wbuf`: flush it now.
    pub(super) flush_now: bool,
    /// A fatal error was queued: flush and close.
    pub(super) closing: bool,
    pub(super) last_command: Instant,
    pub(super) batch: Vec<Message>,
    /// The last take stopped at this client's share: yield to the others.
    pub(super) owed_turn: bool,
    /// FINs decoded but not yet done (see `cmd/in_flight.rs`).
    pub(super) pending_fins: Vec<[u8; 16]>,
    /// PUBs decoded but not yet stored (see `cmd/publish.rs`).
    pub(super) pending_pub: Option<(String, Vec<bytes::Bytes>)>,
    /// Publishes waiting for their fsync (`--sync-every=1`), oldest first.
    /// Their `OK`s, and every response after them, are held back so that
    /// responses stay in command order; the connection keeps reading, so
    /// one fsync covers many pipelined publishes.
    pub(super) held: VecDeque<Held>,
    pub(super) sync_rounds: tokio::sync::watch::Receiver<u64>,
    /// What AUTH granted (with `--auth-http-address`).
    pub(super) auth: Option<Authorization>,
}

/// A publish awaiting durability, and the responses queued behind it.
pub(super) struct Held {
    pub(super) ticket: Ticket,
    /// How many `OK`s it answers (consecutive PUBs are stored together).
    pub(super) oks: usize,
    /// Sent instead of `OK` if the sync fails.
    pub(super) on_failure: ProtocolError,
    /// Responses to later commands, sent after this publish's `OK`.
    pub(super) after: BytesMut,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    #[error("connection closed by peer")]
    Eof,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Closed(&'static str),
}

impl Connection {
    pub(super) fn new(nsqd: Arc<Nsqd>, client: Arc<ClientHandle>, stream: BoxStream) -> Self {
        let mut decoder = CommandDecoder::new(nsqd.settings.limits);
        decoder.gate.tls_pending = nsqd.opts.tls_required_on_tcp();
        let (rh, wh) = tokio::io::split(stream);
        let msg_timeout = nsqd.opts.msg_timeout;
        Connection {
            client,
            rh,
            wh,
            rbuf: ReadBuffer::new(),
            wbuf: BytesMut::new(),
            decoder,
            heartbeat: Some(CLIENT_TIMEOUT / 2),
            msg_timeout,
            output_buffer_size: 16 * 1024,
            sub: None,
            pub_topic: None,
            flush_now: false,
            closing: false,
            last_command: Instant::now(),
            batch: Vec::new(),
            owed_turn: false,
            pending_fins: Vec::new(),
            pending_pub: None,
            held: VecDeque::new(),
            auth: None,
            sync_rounds: nsqd.sync_rounds(),
            nsqd,
        }
    }

    /// Two heartbeat intervals after the last command (never, without heartbeats).
    pub(super) fn read_deadline(&self) -> Instant {
        self.heartbeat
            .map(|hb| self.last_command + hb * 2)
            .unwrap_or_else(far_future)
    }

    pub(super) fn is_ready(&self) -> bool {
        if self.decoder.gate.state != ConnState::Subscribed {
            return false;
        }
        let Some(sub) = &self.sub else { return false };
        let ready = self.client.ready_count.load(Relaxed);
        ready > 0 && self.client.in_flight.load(Relaxed) < ready && !sub.channel.is_paused()
    }

    pub(super) async fn run(&mut self) -> Result<(), ConnError> {
        let mut eof = false;
        let mut heartbeat_every = self.heartbeat;
        let mut ticker = new_ticker(heartbeat_every);
        // Last time the socket took bytes, or had nothing to take.
        let mut write_progress = Instant::now();
        // `wbuf` went out whole; a compressor or TLS may still hold bytes.
        let mut needs_flush = false;
        // The futures waited on every turn live across turns: a fresh one
        // would register with its Notify and deregister on every wake-up.
        // The two that almost never fire are polled only when they do.
        let (kill, shutdown) = (self.client.kill.clone(), self.nsqd.shutdown.clone());
        let mut ended = WhenWoken::new(async move {
            tokio::select! {
                biased;
                _ = kill.cancelled() => Ended::Killed,
                _ = shutdown.cancelled() => Ended::ShuttingDown,
            }
        });
        let client = self.client.clone();
        let woken = client.wake.notified();
        tokio::pin!(woken);
        // The read and write deadlines are checked lazily: their timers are
        // re-armed only when they fire, not on every command or write.
        let read_timer = tokio::time::sleep_until(self.read_deadline().into());
        tokio::pin!(read_timer);
        let write_timer = tokio::time::sleep_until((write_progress + self.write_timeout()).into());
        tokio::pin!(write_timer);

        loop {
            self.process_commands(eof).await?;
            self.release_held();
            if eof {
                self.wait_held(Duration::from_secs(1)).await;
                self.flush_all().await?;
                return Err(ConnError::Eof);
            }
            if self.closing {
                self.wait_held(Duration::from_secs(1)).await;
                self.flush_all().await?;
                self.linger().await;
                return Err(ConnError::Closed("fatal error"));
            }
            if self.heartbeat != heartbeat_every {
                heartbeat_every = self.heartbeat;
                ticker = new_ticker(heartbeat_every);
                read_timer.as_mut().reset(self.read_deadline().into());
                write_timer
                    .as_mut()
                    .reset((write_progress + self.write_timeout()).into());
            }

            // Pull messages while the client has room and the buffer has space.
            let channel = if self.is_ready() {
                self.sub.as_ref().map(|s| s.channel.clone())
            } else {
                None
            };
            let starved = match &channel {
                Some(ch) => {
                    let send_now = self.deliver(ch);
                    if send_now && self.owed_turn {
                        // Let the consumers we stopped for run first.
                        self.owed_turn = false;
                        tokio::task::yield_now().await;
                    }
                    send_now
                }
                None => {
                    // Handed over before RDY fell: still this client's to send.
                    if self.sub.is_some() {
                        let _ = self.send_handed();
                    }
                    false
                }
            };

            let want_write = !self.wbuf.is_empty()
                && (self.flush_now
                    || starved
                    || !self.is_ready()
                    || self.wbuf.len() >= self.output_buffer_size);
            let writing = want_write || needs_flush;
            if !writing {
                write_progress = Instant::now();
            }
            let can_read = !eof && self.wbuf.len() < MAX_PENDING_OUTPUT;
            let read_room = if can_read { self.rbuf.prepare() } else { 0 };

            tokio::select! {
                biased;
                ended = &mut ended => {
                    if ended == Ended::Killed {
                        return Err(ConnError::Closed("closed by nsqd"));
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.flush_all()).await;
                    return Err(ConnError::Closed("shutting down"));
                }
                done = write_or_flush(&mut self.wh, &self.wbuf), if writing => {
                    let n = done?;
                    if self.wbuf.is_empty() {
                        // The flush completed.
                        needs_flush = false;
                        self.flush_now = false;
                    } else {
                        if n == 0 {
                            return Err(ConnError::Eof);
                        }
                        self.wbuf.advance(n);
                        needs_flush = self.wbuf.is_empty();
                    }
                    write_progress = Instant::now();
                }
                read = self.rh.read_buf(&mut self.rbuf.bytes), if can_read => {
                    let n = read?;
                    eof = n == 0;
                    self.rbuf.note_read(n, read_room);
                }
                _ = &mut woken => woken.set(client.wake.notified()),
                _ = self.sync_rounds.changed(), if !self.held.is_empty() => {}
                _ = &mut read_timer, if self.heartbeat.is_some() => {
                    let deadline = self.read_deadline();
                    if deadline <= Instant::now() {
                        return Err(ConnError::Closed("no command within two heartbeat intervals"));
                    }
                    read_timer.as_mut().reset(deadline.into());
                }
                _ = &mut write_timer, if writing => {
                    let deadline = write_progress + self.write_timeout();
                    if deadline <= Instant::now() {
                        // The client stopped reading: what it was sent stays
                        // in flight until its message timeout, as in NSQ.
                        tracing::warn!(
                            "[{}] - no write progress for {:?}: client not reading, closing",
                            self.client.remote_addr,
                            self.write_timeout()
                        );
                        return Err(ConnError::Closed("write timed out (client not reading)"));
                    }
                    write_timer.as_mut().reset(deadline.into());
                }
                _ = tick(&mut ticker) => {
                    self.shrink_if_quiet();
                    self.respond(HEARTBEAT);
                }
            }
        }
    }

    /// How long a write may wait for the client to read: one heartbeat
    /// interval, as NSQ's write deadline (default 30 s). Without
    /// heartbeats NSQ waits forever; here half the client timeout (30 s).
    pub(super) fn write_timeout(&self) -> Duration {
        self.heartbeat.unwrap_or(CLIENT_TIMEOUT / 2)
    }

    /// Give back buffers a quiet connection does not need (called once per
    /// heartbeat interval): a burst of traffic should not pin 100 kB to a
    /// connection that has gone idle.
    fn shrink_if_quiet(&mut self) {
        if self.last_command.elapsed() < self.heartbeat.unwrap_or_default() {
            return;
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > IDLE_KEEP {
            self.wbuf = BytesMut::new();
        }
        if self.batch.is_empty()
            && self.batch.capacity() * std::mem::size_of::<Message>() > IDLE_KEEP
        {
            self.batch = Vec::new();
        }
        self.rbuf.shrink();
        self.held.shrink_to_fit();
        self.pending_fins = Vec::new();
    }

    /// Decode and execute every complete command in the read buffer.
    pub(super) async fn process_commands(&mut self, eof: bool) -> Result<(), ConnError> {
        let mut any = false;
        while !self.closing {
            if self.take_repeat_pub() {
                continue;
            }
            let decoded = self.decoder.decode_command(&mut self.rbuf.bytes, eof);
            if !any && matches!(decoded, Ok(Some(_))) {
                // One clock read per batch of commands is precise enough
                // for a deadline of two heartbeat intervals.
                self.last_command = Instant::now();
                any = true;
            }
            match decoded {
                // Consecutive PUBs to one topic are stored as one batch:
                // one write instead of one per message.
                Ok(Some(Command::Pub { topic, body })) => {
                    self.flush_fins();
                    if let Err(e) = self.queue_pub(topic, body).await {
                        self.flush_pubs();
                        self.send_error(&e);
                    }
                }
                // Consecutive FINs are done under one channel lock.
                Ok(Some(Command::Fin(raw))) => {
                    self.flush_pubs();
                    self.queue_fin(raw);
                }
                Ok(Some(cmd)) => {
                    self.flush_pubs();
                    self.flush_fins();
                    if let Err(e) = self.execute(cmd).await {
                        self.send_error(&e);
                    }
                }
                Ok(None) => break,
                Err(DecodeError::Protocol(e)) => {
                    self.flush_pubs();
                    self.flush_fins();
                    self.send_error(&e);
                }
                Err(DecodeError::LineTooLong) => {
                    self.flush_fins();
                    return Err(ConnError::Closed("command line too long"));
                }
                Err(DecodeError::Io(e)) => {
                    self.flush_fins();
                    return Err(e.into());
                }
            }
        }
        self.flush_pubs();
        self.flush_fins();
        self.rbuf.after_commands();
        Ok(())
    }

    pub(super) fn send_error(&mut self, e: &ProtocolError) {
        tracing::error!("[{}] - {e}", self.client.remote_addr);
        let out = match self.held.back_mut() {
            Some(h) => &mut h.after,
            None => &mut self.wbuf,
        };
        encode_frame(out, FrameType::Error, e.to_string().as_bytes());
        self.flush_now = true;
        if e.fatal {
            self.closing = true;
        }
    }

    /// Queue a response frame, behind any publish still awaiting its fsync.
    pub(super) fn respond(&mut self, data: &[u8]) {
        let out = match self.held.back_mut() {
            Some(h) => &mut h.after,
            None => &mut self.wbuf,
        };
        encode_frame(out, FrameType::Response, data);
        self.flush_now = true;
    }

    /// Send the `OK`s (and what queued behind them) of publishes now on
    /// disk; a failed sync answers with the publish's fatal error instead.
    pub(super) fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        self.sync_rounds.borrow_and_update();
        while let Some(front) = self.held.front() {
            match self.nsqd.durability(&front.ticket) {
                Durability::Pending => break,
                Durability::Durable => {
                    let h = self.held.pop_front().expect("front exists");
                    for _ in 0..h.oks {
                        encode_frame(&mut self.wbuf, FrameType::Response, OK);
                    }
                    self.wbuf.extend_from_slice(&h.after);
                }
                Durability::Failed => {
                    let h = self.held.pop_front().expect("front exists");
                    self.held.clear();
                    tracing::error!("[{}] - {}", self.client.remote_addr, h.on_failure);
                    encode_frame(
                        &mut self.wbuf,
                        FrameType::Error,
                        h.on_failure.to_string().as_bytes(),
                    );
                    self.closing = true;
                }
            }
            self.flush_now = true;
        }
    }

    /// Before closing: give held publishes a bounded chance to be answered.
    pub(super) async fn wait_held(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.held.is_empty() {
            let changed = tokio::time::timeout_at(deadline, self.sync_rounds.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return;
            }
            self.release_held();
        }
    }

    /// After a fatal error, end the connection without a reset: closing a
    /// socket with the client's bytes still unread (its pipelined commands
    /// after the bad one) sends a reset, and a reset makes the client's
    /// kernel drop the answers it has not read yet, the error saying why
    /// among them. So: send our end (FIN), then read and drop what the
    /// client still sends, until it closes too or [`LINGER`] has passed.
    async fn linger(&mut self) {
        if tokio::time::timeout(LINGER, self.wh.shutdown())
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(LINGER, async {
            let mut sink = [0u8; 4096];
            while matches!(self.rh.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }

    /// Write and flush everything buffered, within the write timeout.
    pub(super) async fn flush_all(&mut self) -> Result<(), ConnError> {
        let limit = self.write_timeout();
        let write = async {
            if !self.wbuf.is_empty() {
                self.wh.write_all(&self.wbuf).await?;
                self.wbuf.clear();
            }
            self.wh.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(done) => done?,
            Err(_) => return Err(ConnError::Closed("write timed out (client not reading)")),
        }
        self.flush_now = false;
        Ok(())
    }

    /// Move messages from the channel into the output buffer: first what
    /// the channel handed over while this client waited, then as many as
    /// RDY and the buffer allow. Returns true when the caller should send
    /// what it has now: the channel had nothing more, or other consumers
    /// are owed a turn.
    pub(super) fn deliver(&mut self, channel: &Channel) -> bool {
        if !self.send_handed() {
            // Handed messages still wait: they go first.
            return true;
        }
        while self.wbuf.len() < self.output_buffer_size {
            let ready = self.client.ready_count.load(Relaxed);
            let room = ready - self.client.in_flight.load(Relaxed);
            if room <= 0 || channel.is_paused() {
                return false;
            }
            let took = channel.take(
                &self.client,
                (room as usize).min(TAKE_BATCH),
                self.msg_timeout,
                &mut self.wbuf,
            );
            if took.dry || took.yielded || took.full {
                self.owed_turn = took.yielded;
                // Anything handed over meanwhile goes out with this write.
                let _ = self.send_handed();
                return true;
            }
        }
        false
    }

    /// Encode the messages the channel put in this client's outbox, up to
    /// [`OUTPUT_BATCH_BYTES`] in the output buffer; the rest wait in the
    /// outbox (given back to the channel if the client leaves) until the
    /// buffer has gone out. Returns false if some still wait.
    #[must_use]
    pub(super) fn send_handed(&mut self) -> bool {
        let mut outbox = self.client.outbox.lock();
        if outbox.is_empty() {
            return true;
        }
        if self.wbuf.len() >= OUTPUT_BATCH_BYTES {
            return false;
        }
        self.batch.clear();
        let mut room = OUTPUT_BATCH_BYTES - self.wbuf.len();
        let fit = outbox
            .iter()
            .take_while(|m| {
                let ok = room > 0;
                room = room.saturating_sub(FRAME_OVERHEAD + m.encoded_len());
                ok
            })
            .count();
        let all = fit == outbox.len();
        if all {
            std::mem::swap(&mut *outbox, &mut self.batch);
        } else {
            self.batch.extend(outbox.drain(..fit));
        }
        drop(outbox);
        for msg in &self.batch {
            encode_message_frame(&mut self.wbuf, msg);
        }
        self.batch.clear();
        all
    }

    /// Replace the underlying stream in place (TLS or compression after
    /// IDENTIFY): everything buffered is flushed first, then `wrap` gets the
    /// raw stream and returns the upgraded one.
    pub(super) async fn upgrade<F, Fut>(&mut self, wrap: F) -> Result<(), ConnError>
    where
        F: FnOnce(BoxStream) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<BoxStream>>,
    {
        self.flush_all().await?;
        let placeholder: BoxStream = Box::new(tokio::io::duplex(1).0);
        let (rh, wh) = tokio::io::split(placeholder);
        let old_rh = std::mem::replace(&mut self.rh, rh);
        let old_wh = std::mem::replace(&mut self.wh, wh);
        let upgraded = wrap(old_rh.unsplit(old_wh)).await?;
        let (rh, wh) = tokio::io::split(upgraded);
        self.rh = rh;
        self.wh = wh;
        Ok(())
    }

    /// The protocol state lives in the decoder (which enforces it); the
    /// client's handle mirrors it for `/stats`.
    pub(super) fn set_state(&mut self, state: ConnState) {
        self.decoder.gate.state = state;
        self.client.set_state(state);
    }

    /// Leave the channel (the engine tears down what was ephemeral).
    pub(super) fn cleanup(&mut self) {
        if let Some(sub) = self.sub.take() {
            self.nsqd.unsubscribe(sub, self.client.id);
        }
    }
}

/// Write what is buffered, or flush once it has all been written (a
/// compressor or TLS holds bytes until flushed; a no-op on plain TCP).
/// Returns the bytes written (0 for a flush).
async fn write_or_flush(wh: &mut WriteHalf<BoxStream>, wbuf: &[u8]) -> std::io::Result<usize> {
    if wbuf.is_empty() {
        wh.flush().await.map(|()| 0)
    } else {
        wh.write(wbuf).await
    }
}

fn new_ticker(every: Option<Duration>) -> Option<tokio::time::Interval> {
    every.map(|d| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    })
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;
    use tokio::io::{AsyncRead, AsyncWrite};

    /// A stand-in for TLS or compression: flips every bit both ways.
    struct Inverted(BoxStream);

    impl AsyncRead for Inverted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let start = buf.filled().len();
            let res = Pin::new(&mut self.0).poll_read(cx, buf);
            for b in &mut buf.filled_mut()[start..] {
                *b = !*b;
            }
            res
        }
    }

    impl AsyncWrite for Inverted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let flipped: Vec<u8> = data.iter().map(|b| !b).collect();
            Pin::new(&mut self.0).poll_write(cx, &flipped)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// A connection of a fresh nsqd at its default flags, its client, and
    /// the peer's end of the stream.
    fn connection() -> (Connection, Arc<ClientHandle>, tokio::io::DuplexStream) {
        let opts = crate::nsqd::Options::parse_args(["nsqd".into()]).unwrap();
        let nsqd = Nsqd::new(opts);
        let client =
            nsqd.register_client(crate::listen::PeerAddr::Tcp("127.0.0.1:1".parse().unwrap()));
        let (server_side, peer) = tokio::io::duplex(4096);
        let conn = Connection::new(nsqd, client.clone(), Box::new(server_side));
        (conn, client, peer)
    }

    /// What is buffered before an upgrade goes out in the clear; what
    /// follows goes through the new layer, on the same socket.
    #[tokio::test]
    async fn stream_upgrades_in_place() {
        let (mut conn, _, mut peer) = connection();

        conn.respond(b"{}");
        conn.upgrade(|s| async move { Ok(Box::new(Inverted(s)) as BoxStream) })
            .await
            .unwrap();
        conn.respond(OK);
        conn.flush_all().await.unwrap();

        let mut got = vec![0u8; 10 + 10];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..10], b"\x00\x00\x00\x06\x00\x00\x00\x00{}");
        let clear: Vec<u8> = got[10..].iter().map(|b| !b).collect();
        assert_eq!(clear, b"\x00\x00\x00\x06\x00\x00\x00\x00OK");

        // Reads go through the new layer too.
        let nop: Vec<u8> = b"NOP\n".iter().map(|b| !b).collect();
        peer.write_all(&nop).await.unwrap();
        conn.rbuf.prepare();
        conn.rh.read_buf(&mut conn.rbuf.bytes).await.unwrap();
        assert_eq!(&conn.rbuf.bytes[..], b"NOP\n");
    }

    /// Messages handed over at once (a waiting consumer at a high RDY) go
    /// into the output buffer about `OUTPUT_BATCH_BYTES` at a time, in
    /// order; the rest wait in the outbox, where the channel finds them if
    /// the client leaves.
    #[tokio::test]
    async fn handed_messages_are_encoded_a_buffer_at_a_time() {
        use crate::protocol::{Message, MessageId};
        let (mut conn, client, _peer) = connection();
        let big =
            |i: u64| Message::new(MessageId(i), 0, bytes::Bytes::from(vec![i as u8; 100_000]));
        client.outbox.lock().extend((0..10).map(big));

        let mut ids = Vec::new();
        let mut decode = |wbuf: &mut BytesMut| {
            while wbuf.len() >= 4 {
                let size = u32::from_be_bytes(wbuf[..4].try_into().unwrap()) as usize;
                let frame = wbuf.split_to(4 + size);
                let msg = Message::decode(frame.freeze().slice(8..)).unwrap();
                assert_eq!(msg.body.len(), 100_000);
                ids.push(msg.id.0);
            }
        };
        let mut rounds = 0;
        while !client.outbox.lock().is_empty() {
            let _ = conn.send_handed();
            let max = OUTPUT_BATCH_BYTES + FRAME_OVERHEAD + 26 + 100_000;
            assert!(conn.wbuf.len() <= max, "{} bytes buffered", conn.wbuf.len());
            // A full buffer takes nothing more until it has gone out.
            let held = client.outbox.lock().len();
            assert_eq!(conn.send_handed(), held == 0);
            assert_eq!(client.outbox.lock().len(), held);
            decode(&mut conn.wbuf);
            rounds += 1;
        }
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        assert_eq!(rounds, 4, "three messages a round");
    }
}
