//! Protocol V2 over TCP: one task per connection.
//!
//! Each connection is a single event loop that owns all of its state (no
//! locks for per-connection data): it decodes and executes every complete
//! command in the read buffer, pulls as many messages as its RDY allows from
//! its channel, then waits on whichever comes first: socket readable, socket
//! writable (when there is something to flush), new messages, a freed
//! in-flight slot, a heartbeat, or shutdown. Reads continue while a write is
//! pending, so a slow reader never blocks its own FINs.
//!
//! Flushing: responses and errors are flushed at once; message frames are
//! buffered and flushed when the buffer reaches `output_buffer_size`, when
//! the client stops being ready, or as soon as the channel has nothing more
//! to send. The last rule means data never waits for a timer, which bounds
//! latency well inside NSQ's `output_buffer_timeout` while still batching
//! under load.

use super::auth::{self, Asker, Authorization, Permission};
use super::backend::{Ticket, TicketStatus};
use super::channel::{Channel, InFlightError, TAKE_BATCH};
use super::client_state::ClientHandle;
use super::lookup::LookupEvent;
use super::topic::Topic;
use super::Nsqd;
use crate::protocol::frame::{encode_frame, encode_message_frame};
use crate::protocol::identify::{IdentifyRequest, IdentifyResponse};
use crate::protocol::{
    Command, CommandDecoder, ConnState, DecodeError, FrameType, Limits, Message, MessageId,
    ProtocolError, CLOSE_WAIT, HEARTBEAT, MAGIC_V2, NSQ_VERSION, OK,
};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

/// Any byte stream a connection can run over: plain TCP now, TLS or a
/// compressed stream after an in-place upgrade.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}
pub type BoxStream = Box<dyn Stream>;

/// How long a client has to complete the TLS handshake after IDENTIFY.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// nsqd's fixed client timeout; the default heartbeat is half of it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Stop reading from a client whose unread responses pile up past this.
const MAX_PENDING_OUTPUT: usize = 4 << 20;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;

/// Accept TCP clients until shutdown.
pub async fn serve(nsqd: Arc<Nsqd>, listener: TcpListener, tracker: TaskTracker) {
    loop {
        tokio::select! {
            _ = nsqd.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    tracker.spawn(handle_connection(nsqd.clone(), stream, addr));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off briefly.
                    tracing::error!("TCP: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn handle_connection(nsqd: Arc<Nsqd>, mut stream: TcpStream, addr: SocketAddr) {
    tracing::debug!("TCP: new client({addr})");
    let mut magic = [0u8; 4];
    tokio::select! {
        read = tokio::time::timeout(CLIENT_TIMEOUT, stream.read_exact(&mut magic)) => {
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
        }
        _ = nsqd.shutdown.cancelled() => return,
    }
    if &magic != MAGIC_V2 {
        tracing::error!(
            "client({addr}) bad protocol magic {:?}",
            String::from_utf8_lossy(&magic)
        );
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, FrameType::Error, b"E_BAD_PROTOCOL");
        let _ = stream.write_all(&buf).await;
        return;
    }
    let client = nsqd.register_client(addr);
    let mut conn = Connection::new(nsqd.clone(), client.clone(), Box::new(stream));
    if let Err(e) = conn.run().await {
        tracing::debug!("client({addr}): {e}");
    }
    conn.cleanup();
    nsqd.unregister_client(client.id);
    tracing::debug!("PROTOCOL(V2): client({addr}) exiting");
}

struct Subscription {
    topic: Arc<Topic>,
    channel: Arc<Channel>,
}

struct Connection {
    nsqd: Arc<Nsqd>,
    client: Arc<ClientHandle>,
    rh: ReadHalf<BoxStream>,
    wh: WriteHalf<BoxStream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: CommandDecoder,
    heartbeat: Option<Duration>,
    msg_timeout: Duration,
    output_buffer_size: usize,
    sub: Option<Subscription>,
    /// The topic of the last publish, to skip the topic map on repeats.
    pub_topic: Option<Arc<Topic>>,
    /// A response or error is waiting in `wbuf`: flush it now.
    flush_now: bool,
    /// A fatal error was queued: flush and close.
    closing: bool,
    last_command: Instant,
    batch: Vec<Message>,
    /// The last take stopped at this client's share: yield to the others.
    owed_turn: bool,
    /// Publishes waiting for their fsync (`--sync-every=1`), oldest first.
    /// Their `OK`s, and every response after them, are held back so that
    /// responses stay in command order; the connection keeps reading, so
    /// one fsync covers many pipelined publishes.
    held: VecDeque<Held>,
    sync_rounds: tokio::sync::watch::Receiver<u64>,
    /// What AUTH granted (with `--auth-http-address`).
    auth: Option<Authorization>,
}

/// A publish awaiting durability, and the responses queued behind it.
struct Held {
    ticket: Ticket,
    /// Sent instead of `OK` if the sync fails.
    on_failure: ProtocolError,
    /// Responses to later commands, sent after this publish's `OK`.
    after: BytesMut,
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("connection closed by peer")]
    Eof,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Closed(&'static str),
}

impl Connection {
    fn new(nsqd: Arc<Nsqd>, client: Arc<ClientHandle>, stream: BoxStream) -> Self {
        let opts = &nsqd.opts;
        let limits = Limits {
            max_msg_size: opts.max_msg_size,
            max_body_size: opts.max_body_size,
            max_rdy_count: opts.max_rdy_count.max(0) as u64,
            max_req_timeout_ms: opts.max_req_timeout.as_millis() as u64,
        };
        let mut decoder = CommandDecoder::new(limits);
        decoder.gate.tls_pending = opts.tls_required_on_tcp();
        let (rh, wh) = tokio::io::split(stream);
        let msg_timeout = opts.msg_timeout;
        Connection {
            client,
            rh,
            wh,
            rbuf: BytesMut::with_capacity(4096),
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
            batch: Vec::with_capacity(TAKE_BATCH),
            owed_turn: false,
            held: VecDeque::new(),
            auth: None,
            sync_rounds: nsqd.sync_rounds(),
            nsqd,
        }
    }

    /// Two heartbeat intervals after the last command (never, without heartbeats).
    fn read_deadline(&self) -> Instant {
        self.heartbeat
            .map(|hb| self.last_command + hb * 2)
            .unwrap_or_else(far_future)
    }

    fn is_ready(&self) -> bool {
        if self.decoder.gate.state != ConnState::Subscribed {
            return false;
        }
        let Some(sub) = &self.sub else { return false };
        let ready = self.client.ready_count.load(Relaxed);
        ready > 0 && self.client.in_flight.load(Relaxed) < ready && !sub.channel.is_paused()
    }

    async fn run(&mut self) -> Result<(), ConnError> {
        let mut eof = false;
        let mut heartbeat_every = self.heartbeat;
        let mut ticker = new_ticker(heartbeat_every);
        let mut write_progress = Instant::now();
        let kill = self.client.kill.clone();
        let shutdown = self.nsqd.shutdown.clone();
        // The read deadline is checked lazily: the timer is re-armed only
        // when it fires, not on every command.
        let read_timer = tokio::time::sleep_until(self.read_deadline().into());
        tokio::pin!(read_timer);

        loop {
            self.process_commands(eof).await?;
            self.release_held();
            if self.closing || eof {
                self.wait_held(Duration::from_secs(1)).await;
                self.flush_all().await?;
                return Err(if eof {
                    ConnError::Eof
                } else {
                    ConnError::Closed("fatal error")
                });
            }
            if self.heartbeat != heartbeat_every {
                heartbeat_every = self.heartbeat;
                ticker = new_ticker(heartbeat_every);
                read_timer.as_mut().reset(self.read_deadline().into());
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
                        self.send_handed();
                    }
                    false
                }
            };

            if self.wbuf.is_empty() {
                write_progress = Instant::now();
            }
            let want_write = !self.wbuf.is_empty()
                && (self.flush_now
                    || starved
                    || !self.is_ready()
                    || self.wbuf.len() >= self.output_buffer_size);
            let can_read = !eof && self.wbuf.len() < MAX_PENDING_OUTPUT;
            if can_read && self.rbuf.capacity() - self.rbuf.len() < 4096 {
                // Message bodies are slices of this buffer, so its chunks are
                // what queued messages keep alive: large chunks waste little
                // on commands that straddle a chunk's end.
                self.rbuf.reserve(READ_CHUNK);
            }

            tokio::select! {
                biased;
                _ = kill.cancelled() => return Err(ConnError::Closed("closed by nsqd")),
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.flush_all()).await;
                    return Err(ConnError::Closed("shutting down"));
                }
                written = self.wh.write(&self.wbuf), if want_write => {
                    let n = written?;
                    if n == 0 {
                        return Err(ConnError::Eof);
                    }
                    self.wbuf.advance(n);
                    write_progress = Instant::now();
                    if self.wbuf.is_empty() {
                        self.flush_now = false;
                        // A compressor or TLS holds bytes until flushed
                        // (a no-op on plain TCP).
                        self.wh.flush().await?;
                    }
                }
                read = self.rh.read_buf(&mut self.rbuf), if can_read => {
                    if read? == 0 {
                        eof = true;
                    }
                }
                _ = self.client.wake.notified() => {}
                _ = self.sync_rounds.changed(), if !self.held.is_empty() => {}
                _ = &mut read_timer, if self.heartbeat.is_some() => {
                    let deadline = self.read_deadline();
                    if deadline <= Instant::now() {
                        return Err(ConnError::Closed("no command within two heartbeat intervals"));
                    }
                    read_timer.as_mut().reset(deadline.into());
                }
                _ = tick(&mut ticker) => {
                    if let Some(hb) = self.heartbeat {
                        if !self.wbuf.is_empty() && write_progress.elapsed() > hb {
                            return Err(ConnError::Closed("write stalled for a heartbeat interval"));
                        }
                    }
                    self.respond(HEARTBEAT);
                }
            }
        }
    }

    /// Decode and execute every complete command in the read buffer.
    async fn process_commands(&mut self, eof: bool) -> Result<(), ConnError> {
        let mut any = false;
        while !self.closing {
            match self.decoder.decode_command(&mut self.rbuf, eof) {
                Ok(Some(cmd)) => {
                    if !any {
                        // One clock read per batch of commands is precise
                        // enough for a deadline of two heartbeat intervals.
                        self.last_command = Instant::now();
                        any = true;
                    }
                    if let Err(e) = self.execute(cmd).await {
                        self.send_error(&e);
                    }
                }
                Ok(None) => break,
                Err(DecodeError::Protocol(e)) => self.send_error(&e),
                Err(DecodeError::LineTooLong) => {
                    return Err(ConnError::Closed("command line too long"))
                }
                Err(DecodeError::Io(e)) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn send_error(&mut self, e: &ProtocolError) {
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
    fn respond(&mut self, data: &[u8]) {
        let out = match self.held.back_mut() {
            Some(h) => &mut h.after,
            None => &mut self.wbuf,
        };
        encode_frame(out, FrameType::Response, data);
        self.flush_now = true;
    }

    /// Send the `OK`s (and what queued behind them) of publishes now on
    /// disk; a failed sync answers with the publish's fatal error instead.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        self.sync_rounds.borrow_and_update();
        while let Some(front) = self.held.front() {
            match front.ticket.status() {
                TicketStatus::Pending => {
                    self.nsqd.request_sync();
                    break;
                }
                TicketStatus::Durable => {
                    let h = self.held.pop_front().expect("front exists");
                    encode_frame(&mut self.wbuf, FrameType::Response, OK);
                    self.wbuf.extend_from_slice(&h.after);
                }
                TicketStatus::Failed => {
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
    async fn wait_held(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.held.is_empty() {
            let changed = tokio::time::timeout_at(deadline, self.sync_rounds.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return;
            }
            self.release_held();
        }
    }

    async fn flush_all(&mut self) -> Result<(), ConnError> {
        if !self.wbuf.is_empty() {
            self.wh.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        self.wh.flush().await?;
        self.flush_now = false;
        Ok(())
    }

    /// Move messages from the channel into the output buffer: first what
    /// the channel handed over while this client waited, then as many as
    /// RDY and the buffer allow. Returns true when the caller should send
    /// what it has now: the channel had nothing more, or other consumers
    /// are owed a turn.
    fn deliver(&mut self, channel: &Channel) -> bool {
        self.send_handed();
        while self.wbuf.len() < self.output_buffer_size {
            let ready = self.client.ready_count.load(Relaxed);
            let room = ready - self.client.in_flight.load(Relaxed);
            if room <= 0 || channel.is_paused() {
                return false;
            }
            self.batch.clear();
            let took = channel.take(
                &self.client,
                (room as usize).min(TAKE_BATCH),
                self.msg_timeout,
                &mut self.batch,
            );
            for msg in &self.batch {
                encode_message_frame(&mut self.wbuf, msg);
            }
            if took.dry || took.yielded {
                self.owed_turn = took.yielded;
                // Anything handed over meanwhile goes out with this write.
                self.send_handed();
                return true;
            }
        }
        false
    }

    /// Encode the messages the channel put in this client's outbox.
    fn send_handed(&mut self) {
        let mut outbox = self.client.outbox.lock();
        if outbox.is_empty() {
            return;
        }
        self.batch.clear();
        std::mem::swap(&mut *outbox, &mut self.batch);
        drop(outbox);
        for msg in &self.batch {
            encode_message_frame(&mut self.wbuf, msg);
        }
        self.batch.clear();
    }

    async fn execute(&mut self, cmd: Command) -> Result<(), ProtocolError> {
        match cmd {
            Command::Nop => Ok(()),
            Command::Identify(body) => self.identify(&body).await,
            Command::Auth(secret) => self.authenticate(secret).await,
            Command::Sub { topic, channel } => {
                self.authorize("SUB", &topic, &channel, Permission::Subscribe)
                    .await?;
                self.subscribe(&topic, &channel)
            }
            Command::Rdy(count) => {
                self.client.ready_count.store(count as i64, Relaxed);
                Ok(())
            }
            Command::Fin(raw) => {
                let record_latency = !self.nsqd.opts.e2e_processing_latency_percentiles.is_empty();
                let result = self.in_flight_op(&raw, |ch, client, id| {
                    let published = ch.finish(client, id)?;
                    if record_latency {
                        let ns = crate::protocol::message::now_nanos().saturating_sub(published);
                        ch.latencies.record(ns.max(0) as u64);
                    }
                    Ok(())
                });
                self.settle(result, &raw, "E_FIN_FAILED", "FIN", |c| &c.finish_count)
            }
            Command::Req {
                id: raw,
                timeout_ms,
            } => {
                let max = self.nsqd.opts.max_req_timeout;
                let mut delay = Duration::from_millis(timeout_ms);
                if delay > max {
                    tracing::info!(
                        "[{}] REQ timeout {timeout_ms}ms clamped to {}ms",
                        self.client.remote_addr,
                        max.as_millis()
                    );
                    delay = max;
                }
                let result =
                    self.in_flight_op(&raw, |ch, client, id| ch.requeue(client, id, delay));
                self.settle(result, &raw, "E_REQ_FAILED", "REQ", |c| &c.requeue_count)
            }
            Command::Touch(raw) => {
                let (timeout, max) = (self.msg_timeout, self.nsqd.opts.max_msg_timeout);
                match self.in_flight_op(&raw, |ch, client, id| ch.touch(client, id, timeout, max)) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(in_flight_error("E_TOUCH_FAILED", "TOUCH", &raw, e)),
                }
            }
            Command::Cls => {
                self.client.ready_count.store(0, Relaxed);
                self.set_state(ConnState::Closing);
                self.respond(CLOSE_WAIT);
                Ok(())
            }
            Command::Pub { topic, body } => {
                self.authorize("PUB", &topic, "", Permission::Publish)
                    .await?;
                self.publish(
                    &topic,
                    std::iter::once(body),
                    1,
                    Duration::ZERO,
                    "E_PUB_FAILED",
                    "PUB",
                )
            }
            Command::Mpub { topic, bodies } => {
                self.authorize("MPUB", &topic, "", Permission::Publish)
                    .await?;
                let n = bodies.len() as u64;
                self.publish(&topic, bodies, n, Duration::ZERO, "E_MPUB_FAILED", "MPUB")
            }
            Command::Dpub {
                topic,
                defer_ms,
                body,
            } => {
                self.authorize("DPUB", &topic, "", Permission::Publish)
                    .await?;
                self.publish(
                    &topic,
                    std::iter::once(body),
                    1,
                    Duration::from_millis(defer_ms),
                    "E_DPUB_FAILED",
                    "DPUB",
                )
            }
        }
    }

    /// AUTH: ask the auth server what this secret may do.
    async fn authenticate(&mut self, secret: Bytes) -> Result<(), ProtocolError> {
        if self.nsqd.opts.auth_http_addresses.is_empty() {
            return Err(ProtocolError::fatal("E_AUTH_DISABLED", "AUTH disabled"));
        }
        if self.auth.is_some() {
            return Err(ProtocolError::fatal("E_INVALID", "AUTH already set"));
        }
        let auth = self.query_auth(&secret).await?;
        if auth.grant_count() == 0 {
            return Err(ProtocolError::fatal(
                "E_UNAUTHORIZED",
                "AUTH no authorizations found",
            ));
        }
        let answer = serde_json::json!({
            "identity": auth.identity,
            "identity_url": auth.identity_url,
            "permission_count": auth.grant_count(),
        });
        {
            let mut info = self.client.info.lock();
            info.authed = true;
            info.auth_identity = auth.identity.clone();
            info.auth_identity_url = auth.identity_url.clone();
        }
        self.auth = Some(auth);
        self.respond(answer.to_string().as_bytes());
        Ok(())
    }

    /// Ask the auth server; only shared handles are held across the wait
    /// (the connection itself is not `Sync`).
    fn query_auth(
        &self,
        secret: &Bytes,
    ) -> impl std::future::Future<Output = Result<Authorization, ProtocolError>> + Send + 'static
    {
        let (nsqd, client, secret) = (self.nsqd.clone(), self.client.clone(), secret.clone());
        async move {
            let asker = Asker {
                remote_ip: client.remote_addr.ip().to_string(),
                tls: client.info.lock().tls,
                common_name: "",
            };
            auth::query(&nsqd, &secret, &asker).await.map_err(|e| {
                tracing::warn!("[{}] auth failed: {e}", client.remote_addr);
                ProtocolError::fatal("E_AUTH_FAILED", "AUTH failed")
            })
        }
    }

    /// With `--auth-http-address`: may this connection do `cmd` on
    /// (topic, channel)? An expired authorization is renewed first.
    async fn authorize(
        &mut self,
        cmd: &str,
        topic: &str,
        channel: &str,
        permission: Permission,
    ) -> Result<(), ProtocolError> {
        if self.nsqd.opts.auth_http_addresses.is_empty() {
            return Ok(());
        }
        let Some(current) = &self.auth else {
            return Err(ProtocolError::fatal(
                "E_AUTH_FIRST",
                format!("AUTH required before {cmd}"),
            ));
        };
        if current.is_expired() {
            let secret = current.secret.clone();
            self.auth = Some(self.query_auth(&secret).await?);
        }
        let auth = self.auth.as_ref().expect("set above");
        if !auth.allows(permission, topic, channel) {
            return Err(ProtocolError::fatal(
                "E_UNAUTHORIZED",
                format!("AUTH failed for {cmd} on {topic:?} {channel:?}"),
            ));
        }
        Ok(())
    }

    fn in_flight_op<T>(
        &self,
        raw: &[u8; 16],
        op: impl FnOnce(&Channel, u64, MessageId) -> Result<T, InFlightError>,
    ) -> Result<T, InFlightError> {
        let sub = self.sub.as_ref().ok_or(InFlightError::NotInFlight)?;
        let id = MessageId::from_hex(raw).ok_or(InFlightError::NotInFlight)?;
        op(&sub.channel, self.client.id, id)
    }

    /// Account for a FIN or REQ: a freed in-flight slot on success, a
    /// non-fatal error otherwise.
    fn settle(
        &self,
        result: Result<(), InFlightError>,
        raw: &[u8; 16],
        code: &'static str,
        name: &str,
        counter: fn(&ClientHandle) -> &std::sync::atomic::AtomicU64,
    ) -> Result<(), ProtocolError> {
        match result {
            Ok(()) => {
                self.client.in_flight.fetch_sub(1, Relaxed);
                counter(&self.client).fetch_add(1, Relaxed);
                Ok(())
            }
            Err(e) => Err(in_flight_error(code, name, raw, e)),
        }
    }

    fn set_state(&mut self, state: ConnState) {
        self.decoder.gate.state = state;
        self.client.set_state(state);
    }

    fn subscribe(&mut self, topic_name: &str, channel_name: &str) -> Result<(), ProtocolError> {
        let max = self.nsqd.opts.max_channel_consumers.max(0) as usize;
        for _ in 0..3 {
            let topic = self.nsqd.get_or_create_topic(topic_name);
            let channel = self.nsqd.get_or_create_channel(&topic, channel_name);
            match channel.add_client(self.client.clone(), max) {
                Ok(()) if !topic.is_exiting() && !channel.is_exiting() => {
                    self.sub = Some(Subscription { topic, channel });
                    self.set_state(ConnState::Subscribed);
                    self.respond(OK);
                    return Ok(());
                }
                Ok(()) => {
                    channel.remove_client(self.client.id);
                }
                Err(true) => {}
                Err(false) => {
                    return Err(ProtocolError::fatal(
                        "E_SUB_FAILED",
                        format!(
                            "SUB failed consumers for {topic_name}:{channel_name} exceeds limit of {max}"
                        ),
                    ))
                }
            }
        }
        Err(ProtocolError::fatal(
            "E_SUB_FAILED",
            "SUB failed to deleted topic/channel",
        ))
    }

    fn publish(
        &mut self,
        topic_name: &str,
        bodies: impl IntoIterator<Item = Bytes>,
        count: u64,
        defer: Duration,
        code: &'static str,
        name: &str,
    ) -> Result<(), ProtocolError> {
        let topic = match &self.pub_topic {
            Some(t) if t.name == topic_name && !t.is_exiting() => t.clone(),
            _ => {
                let t = self.nsqd.get_or_create_topic(topic_name);
                self.pub_topic = Some(t.clone());
                t
            }
        };
        let result = topic.put(bodies, defer);
        self.nsqd.note_put(&result);
        match result {
            Ok((_, ticket)) => {
                self.client.record_publish(topic_name, count);
                if ticket.is_empty() {
                    self.respond(OK);
                } else {
                    self.nsqd.request_sync();
                    self.held.push_back(Held {
                        ticket,
                        on_failure: ProtocolError::fatal(
                            code,
                            format!("{name} failed to sync to disk"),
                        ),
                        after: BytesMut::new(),
                    });
                }
                Ok(())
            }
            Err(e) => Err(ProtocolError::fatal(code, format!("{name} failed {e}"))),
        }
    }

    async fn identify(&mut self, body: &[u8]) -> Result<(), ProtocolError> {
        let bad = |text: String| ProtocolError::fatal("E_BAD_BODY", text);
        let req = IdentifyRequest::parse(body)
            .ok_or_else(|| bad("IDENTIFY failed to decode JSON body".into()))?;
        let opts = self.nsqd.opts.clone();
        {
            let mut info = self.client.info.lock();
            info.client_id = req.client_id.clone().unwrap_or_default();
            info.hostname = req.hostname.clone().unwrap_or_default();
            info.user_agent = req.user_agent.clone().unwrap_or_default();
            info.topology_region = req.topology_region.clone().unwrap_or_default();
            info.topology_zone = req.topology_zone.clone().unwrap_or_default();
        }

        let max_hb = opts.max_heartbeat_interval.as_millis() as i64;
        match req.heartbeat_interval.unwrap_or(0) {
            -1 => self.heartbeat = None,
            0 => {}
            v if (1000..=max_hb).contains(&v) => {
                self.heartbeat = Some(Duration::from_millis(v as u64))
            }
            v => return Err(bad(format!("IDENTIFY heartbeat interval ({v}) is invalid"))),
        }
        self.decoder.gate.heartbeats_disabled = self.heartbeat.is_none();

        let (min_obt, max_obt) = (
            opts.min_output_buffer_timeout.as_millis() as i64,
            opts.max_output_buffer_timeout.as_millis() as i64,
        );
        let mut output_buffer_timeout = opts.output_buffer_timeout.as_millis() as i64;
        match req.output_buffer_timeout.unwrap_or(0) {
            -1 => output_buffer_timeout = 0,
            0 => {}
            v if (min_obt..=max_obt).contains(&v) => output_buffer_timeout = v,
            v => {
                return Err(bad(format!(
                    "IDENTIFY output buffer timeout ({v}) is invalid"
                )))
            }
        }
        match req.output_buffer_size.unwrap_or(0) {
            -1 => {
                self.output_buffer_size = 1;
                output_buffer_timeout = 0;
            }
            0 => {}
            v if (64..=opts.max_output_buffer_size).contains(&v) => {
                self.output_buffer_size = v as usize
            }
            v => return Err(bad(format!("IDENTIFY output buffer size ({v}) is invalid"))),
        }
        let sample_rate = req.sample_rate.unwrap_or(0);
        if !(0..=99).contains(&sample_rate) {
            return Err(bad(format!(
                "IDENTIFY sample rate ({sample_rate}) is invalid"
            )));
        }
        self.client.sample_rate.store(sample_rate, Relaxed);
        let max_mt = opts.max_msg_timeout.as_millis() as i64;
        match req.msg_timeout.unwrap_or(0) {
            0 => {}
            v if (1000..=max_mt).contains(&v) => self.msg_timeout = Duration::from_millis(v as u64),
            v => return Err(bad(format!("IDENTIFY msg timeout ({v}) is invalid"))),
        }

        if !req.feature_negotiation.unwrap_or(false) {
            self.respond(OK);
            return Ok(());
        }

        // Each feature when the client asks and nsqd allows it.
        let tls_v1 = req.tls_v1.unwrap_or(false) && self.nsqd.tls.is_some();
        let deflate = req.deflate.unwrap_or(false) && opts.deflate;
        let snappy = req.snappy.unwrap_or(false) && opts.snappy;
        if deflate && snappy {
            return Err(ProtocolError::fatal(
                "E_IDENTIFY_FAILED",
                "cannot enable both deflate and snappy compression",
            ));
        }
        let mut deflate_level = 6;
        if deflate {
            deflate_level = req.deflate_level.filter(|l| *l > 0).unwrap_or(6);
        }
        deflate_level = deflate_level.min(opts.max_deflate_level);
        let response = IdentifyResponse {
            max_rdy_count: opts.max_rdy_count,
            version: NSQ_VERSION.to_string(),
            max_msg_timeout: max_mt,
            msg_timeout: self.msg_timeout.as_millis() as i64,
            tls_v1,
            deflate,
            deflate_level,
            max_deflate_level: opts.max_deflate_level,
            snappy,
            sample_rate,
            auth_required: !opts.auth_http_addresses.is_empty(),
            output_buffer_size: self.output_buffer_size as i64,
            output_buffer_timeout,
            topology_region: opts.topology_region.clone(),
            topology_zone: opts.topology_zone.clone(),
        };
        let json = serde_json::to_vec(&response).expect("plain struct serializes");
        self.respond(&json);
        if tls_v1 {
            self.start_tls().await?;
        }
        // Then at most one compressor, over TLS if active, confirmed by an
        // `OK` already compressed.
        if snappy || deflate {
            let level = deflate_level as u32;
            let upgraded = self
                .upgrade(|s| async move {
                    Ok(if snappy {
                        Box::new(crate::compress::snappy(s)) as BoxStream
                    } else {
                        Box::new(crate::compress::deflate(s, level)) as BoxStream
                    })
                })
                .await;
            if let Err(e) = upgraded {
                return Err(ProtocolError::fatal(
                    "E_IDENTIFY_FAILED",
                    format!("IDENTIFY failed {e}"),
                ));
            }
            {
                let mut info = self.client.info.lock();
                info.snappy = snappy;
                info.deflate = deflate;
            }
            self.respond(OK);
        }
        Ok(())
    }

    /// IDENTIFY's TLS upgrade: the JSON response goes out in plain text,
    /// then the handshake (at most 5 s), then `OK` inside TLS.
    async fn start_tls(&mut self) -> Result<(), ProtocolError> {
        let config = self.nsqd.tls.clone().expect("checked by the caller");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        // Bytes already read past IDENTIFY start the client's handshake.
        let early = self.rbuf.split().freeze();
        let session = Arc::new(parking_lot::Mutex::new((String::new(), String::new())));
        let slot = session.clone();
        let upgraded = self
            .upgrade(|raw| async move {
                let raw = crate::compress::Prefixed::new(early, raw);
                let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(raw))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                *slot.lock() = super::tls::describe(tls.get_ref().1);
                Ok(Box::new(tls) as BoxStream)
            })
            .await;
        if let Err(e) = upgraded {
            return Err(ProtocolError::fatal(
                "E_IDENTIFY_FAILED",
                format!("IDENTIFY failed {e}"),
            ));
        }
        self.decoder.gate.tls_pending = false;
        let (version, suite) = session.lock().clone();
        {
            let mut info = self.client.info.lock();
            info.tls = true;
            info.tls_version = version;
            info.tls_cipher_suite = suite;
        }
        self.respond(OK);
        Ok(())
    }

    /// Replace the underlying stream in place (TLS or compression after
    /// IDENTIFY): everything buffered is flushed first, then `wrap` gets the
    /// raw stream and returns the upgraded one.
    async fn upgrade<F, Fut>(&mut self, wrap: F) -> Result<(), ConnError>
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

    /// Leave the channel; an ephemeral channel (and then topic) left with
    /// nobody goes away.
    fn cleanup(&mut self) {
        let Some(sub) = self.sub.take() else { return };
        let remaining = sub.channel.remove_client(self.client.id);
        if remaining == 0
            && sub.channel.ephemeral
            && sub.topic.delete_channel_if_unused(&sub.channel)
        {
            self.nsqd.notify_lookup(LookupEvent::Unregister {
                topic: sub.topic.name.clone(),
                channel: Some(sub.channel.name.clone()),
            });
            if sub.topic.ephemeral {
                self.nsqd.delete_topic_if_unused(&sub.topic);
            }
        }
    }
}

fn in_flight_error(
    code: &'static str,
    name: &str,
    raw: &[u8; 16],
    e: InFlightError,
) -> ProtocolError {
    ProtocolError::non_fatal(
        code,
        format!(
            "{name} {} failed {}",
            String::from_utf8_lossy(raw),
            e.text()
        ),
    )
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

    /// What is buffered before an upgrade goes out in the clear; what
    /// follows goes through the new layer, on the same socket.
    #[tokio::test]
    async fn stream_upgrades_in_place() {
        let opts = crate::nsqd::Options::parse_args(["nsqd".into()]).unwrap();
        let nsqd = Nsqd::new(opts);
        let client = nsqd.register_client("127.0.0.1:1".parse().unwrap());
        let (server_side, mut peer) = tokio::io::duplex(4096);
        let mut conn = Connection::new(nsqd, client, Box::new(server_side));

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
        conn.rbuf.reserve(64);
        conn.rh.read_buf(&mut conn.rbuf).await.unwrap();
        assert_eq!(&conn.rbuf[..], b"NOP\n");
    }
}
