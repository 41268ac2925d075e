//! Consuming: SUB on one or more nsqd, RDY spread over the connections,
//! messages handed out as [`Delivery`] handles to FIN, REQ or TOUCH.
//!
//! Each connection runs one task that reads messages, and writes the FINs,
//! REQs and TOUCHes queued since its last write in one go. The connections
//! share the in-flight budget (`max_in_flight`), rebalanced whenever a
//! connection is added or lost.
//!
//! With nsqlookupd addresses ([`Consumer::discover`]) the consumer polls
//! each lookupd's `/lookup` (at start, then every `poll_interval` with
//! jitter, as go-nsq does), connects to producers as they appear and closes
//! connections to those that vanish from every answer. It may start before
//! any nsqd or topic exists: it keeps polling until the topic appears.

use super::conn::{Config, Connection, FrameReader};
use super::error::ClientError;
use crate::protocol::{Command, Frame, Message, MessageId, CLOSE_WAIT};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a consumer subscribes to and how much it takes at once.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub topic: String,
    pub channel: String,
    /// Messages in flight across all connections (spread over them; each
    /// connection gets at least 1 and at most nsqd's `max_rdy_count`).
    pub max_in_flight: u64,
    pub connection: Config,
}

/// The connection task's answer for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    Fin(MessageId),
    Req(MessageId, u64),
    Touch(MessageId),
}

/// A delivered message; FIN it, REQ it, or let it time out (after the
/// connection's `msg_timeout` nsqd redelivers it).
#[derive(Debug)]
pub struct Delivery {
    pub message: Message,
    acks: mpsc::UnboundedSender<Ack>,
}

impl Delivery {
    pub fn id(&self) -> MessageId {
        self.message.id
    }

    pub fn body(&self) -> &Bytes {
        &self.message.body
    }

    /// Deliveries so far, this one included.
    pub fn attempts(&self) -> u16 {
        self.message.attempts
    }

    /// Done with it: nsqd forgets the message.
    pub fn fin(self) {
        let _ = self.acks.send(Ack::Fin(self.message.id));
    }

    /// Give it back, to be redelivered after `delay` (millisecond precision).
    pub fn req(self, delay: Duration) {
        let ms = delay.as_millis().min(u64::MAX as u128) as u64;
        let _ = self.acks.send(Ack::Req(self.message.id, ms));
    }

    /// Still working on it: restart its timeout.
    pub fn touch(&self) {
        let _ = self.acks.send(Ack::Touch(self.message.id));
    }
}

/// What the consumer tells a connection task.
#[derive(Debug)]
enum Control {
    Rdy(u64),
    /// CLS, then close once nothing is in flight.
    Close,
}

struct Conn {
    addr: String,
    ctl: mpsc::UnboundedSender<Control>,
    max_rdy: u64,
    rdy: u64,
}

type Item = Result<Delivery, ClientError>;

/// Consumes one topic/channel from one or more nsqd.
///
/// [`next`](Consumer::next) yields messages from every connection, and the
/// error that ends a connection (the others go on). Once every connection is
/// gone (lost, or closed by [`stop`](Consumer::stop)) it yields `None`.
pub struct Consumer {
    config: ConsumerConfig,
    rx: mpsc::Receiver<Item>,
    /// Weak, so that the channel closes when the last connection task ends.
    tx: mpsc::WeakSender<Item>,
    conns: Vec<Conn>,
    discovery: Option<Discovery>,
    retry: Option<Retry>,
    failures: Failures,
    /// A lower in-flight budget set by [`throttle`](Consumer::throttle)
    /// (0: paused), in place of `config.max_in_flight`.
    throttle: Option<u64>,
}

/// Peers (nsqd or nsqlookupd) that could not be reached, so that each
/// failure is logged once, not at every retry, and its recovery once too.
#[derive(Default)]
struct Failures {
    failing: std::collections::HashSet<String>,
    last: Option<ClientError>,
    connected_once: bool,
}

impl Failures {
    fn failed(&mut self, peer: &str, e: &ClientError) {
        if self.failing.insert(peer.to_string()) {
            tracing::warn!("{e}; will keep trying");
        }
        self.last = Some(e.clone());
    }

    fn succeeded(&mut self, peer: &str, what: &str) {
        if self.failing.remove(peer) {
            tracing::warn!("{what} at {peer} reachable again");
        }
    }
}

/// Reconnection to directly given nsqd whose connection was lost.
struct Retry {
    addrs: Vec<String>,
    /// Address, when to try next, the wait after that one fails.
    pending: Vec<(String, Instant, Duration)>,
    /// Keeps the message channel open while every connection is down.
    tx: mpsc::Sender<Item>,
}

const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// How a consumer polls nsqlookupd.
#[derive(Debug, Clone)]
pub struct LookupdPolling {
    /// go-nsq's `lookupd_poll_interval` (default 60 s).
    pub interval: Duration,
    /// Up to this fraction of `interval` is added at random to each wait, so
    /// that many consumers do not poll in step (go-nsq: 0.3).
    pub jitter: f64,
    /// Per-request HTTP timeout.
    pub timeout: Duration,
}

impl Default for LookupdPolling {
    fn default() -> Self {
        LookupdPolling {
            interval: Duration::from_secs(60),
            jitter: 0.3,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Polling state of a discovering consumer.
struct Discovery {
    lookupds: Vec<String>,
    polling: LookupdPolling,
    http: reqwest::Client,
    next_poll: Instant,
    /// Keeps the message channel open while there is no connection yet.
    tx: mpsc::Sender<Item>,
}

impl Consumer {
    /// Connect to every address, SUB, then spread `max_in_flight` over the
    /// connections as RDY. Fails if any connection fails.
    pub async fn connect(
        addrs: &[String],
        config: &ConsumerConfig,
    ) -> Result<Consumer, ClientError> {
        if addrs.is_empty() {
            return Err(ClientError::NoAddress);
        }
        let capacity = (config.max_in_flight.max(addrs.len() as u64) as usize + 64).min(1 << 16);
        let (tx, rx) = mpsc::channel(capacity);
        let mut consumer = Consumer {
            config: config.clone(),
            rx,
            tx: tx.downgrade(),
            conns: Vec::new(),
            discovery: None,
            retry: None,
            failures: Failures::default(),
            throttle: None,
        };
        for addr in addrs {
            // Failing here is the caller's to report: no retry follows.
            consumer.subscribe_to(addr, &tx).await?;
            consumer.failures.connected_once = true;
        }
        consumer.rebalance();
        Ok(consumer)
    }

    /// Consume from whichever nsqd the nsqlookupds at `lookupd_http`
    /// (`host:port` or `http://host:port`) report for the topic, now and as
    /// producers come and go. Nothing needs to exist yet: the first poll
    /// happens in [`next`](Consumer::next).
    pub fn discover(
        lookupd_http: &[String],
        config: &ConsumerConfig,
        polling: LookupdPolling,
    ) -> Result<Consumer, ClientError> {
        if lookupd_http.is_empty() {
            return Err(ClientError::NoAddress);
        }
        let http = reqwest::Client::builder()
            .timeout(polling.timeout)
            .build()
            .map_err(|e| ClientError::Lookupd {
                addr: lookupd_http[0].clone(),
                reason: e.to_string(),
            })?;
        let capacity = (config.max_in_flight as usize + 64).min(1 << 16);
        let (tx, rx) = mpsc::channel(capacity);
        Ok(Consumer {
            config: config.clone(),
            rx,
            tx: tx.downgrade(),
            conns: Vec::new(),
            retry: None,
            failures: Failures::default(),
            throttle: None,
            discovery: Some(Discovery {
                lookupds: lookupd_http.to_vec(),
                polling,
                http,
                next_poll: Instant::now(),
                tx,
            }),
        })
    }

    /// Ask every lookupd where the topic is; connect to new producers, close
    /// connections to producers no lookupd reports any more (only when every
    /// lookupd answered, so that one unreachable lookupd drops nothing).
    async fn poll_lookupds(&mut self) {
        let Some(d) = &mut self.discovery else { return };
        let jitter = d
            .polling
            .interval
            .mul_f64(d.polling.jitter * fastrand::f64());
        d.next_poll = Instant::now() + d.polling.interval + jitter;
        let (http, lookupds) = (d.http.clone(), d.lookupds.clone());
        let mut found: Vec<String> = Vec::new();
        let mut all_answered = true;
        for lookupd in &lookupds {
            match lookup(&http, lookupd, &self.config.topic).await {
                Ok(producers) => {
                    self.failures.succeeded(lookupd, "nsqlookupd");
                    for p in producers {
                        if !found.contains(&p) {
                            found.push(p);
                        }
                    }
                }
                Err(e) => {
                    all_answered = false;
                    self.failures.failed(lookupd, &e);
                }
            }
        }
        self.conns.retain(|c| !c.ctl.is_closed());
        if all_answered {
            for c in self.conns.iter().filter(|c| !found.contains(&c.addr)) {
                tracing::info!(
                    "{} is no longer a producer of {}: closing",
                    c.addr,
                    self.config.topic
                );
                let _ = c.ctl.send(Control::Close);
            }
        }
        let tx = match &self.discovery {
            Some(d) => d.tx.clone(),
            None => return,
        };
        let mut added = false;
        for addr in found {
            if self.conns.iter().any(|c| c.addr == addr) {
                continue;
            }
            // A failure is logged by `attach`; the next poll tries again.
            if self.attach(&addr, &tx).await.is_ok() {
                added = true;
            }
        }
        if added {
            self.rebalance();
        }
    }

    /// Add a connection to another nsqd (e.g. one nsqlookupd reported) and
    /// rebalance RDY over all connections.
    pub async fn add_nsqd(&mut self, addr: &str) -> Result<(), ClientError> {
        let tx = self.tx.upgrade().ok_or_else(|| ClientError::Closed {
            addr: addr.to_string(),
        })?;
        self.attach(addr, &tx).await?;
        self.rebalance();
        Ok(())
    }

    /// The nsqd addresses with a live connection.
    pub fn connections(&mut self) -> Vec<String> {
        self.conns.retain(|c| !c.ctl.is_closed());
        self.conns.iter().map(|c| c.addr.clone()).collect()
    }

    /// Stop receiving: CLS on every connection. Messages already delivered
    /// can still be FINished or REQueued; each connection closes when its
    /// last one is (or after the message timeout), and then `next` yields
    /// `None`.
    pub fn stop(&mut self) {
        self.discovery = None;
        self.retry = None;
        for c in &self.conns {
            let _ = c.ctl.send(Control::Close);
        }
    }

    /// From now on, reconnect (with backoff, 250 ms up to 15 s) to any of
    /// the nsqd given to [`connect`](Consumer::connect) whose connection is
    /// lost, as go-nsq does; `next` then waits instead of ending when they
    /// are all down.
    pub fn keep_reconnecting(&mut self) {
        let Some(tx) = self.tx.upgrade() else { return };
        let addrs = self.conns.iter().map(|c| c.addr.clone()).collect();
        self.retry = Some(Retry {
            addrs,
            pending: Vec::new(),
            tx,
        });
    }

    /// Lower the in-flight budget to `limit` messages (spread over the
    /// connections, at least 1 each), or to none at all with `Some(0)`:
    /// RDY 0 everywhere, so nsqd sends nothing new, as go-nsq does while
    /// backing off. `None` restores `max_in_flight`. Connections made
    /// later (reconnection, discovery) follow the same limit.
    pub fn throttle(&mut self, limit: Option<u64>) {
        if self.throttle != limit {
            self.throttle = limit;
            self.rebalance();
        }
    }

    /// Stop, and give back (REQ, for immediate redelivery elsewhere) every
    /// message that arrives until the connections close, so that nothing
    /// is left in flight on nsqd until its timeout. Bounded by `limit`.
    pub async fn shutdown(&mut self, limit: Duration) {
        self.stop();
        let deadline = Instant::now() + limit;
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            if let Ok(delivery) = item {
                delivery.req(Duration::ZERO);
            }
        }
    }

    /// The next message, or the error that ended a connection; `None` once
    /// every connection is gone (with discovery or reconnection: once
    /// stopped, too).
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            let poll = self.discovery.as_ref().map(|d| d.next_poll);
            let retry = self
                .retry
                .as_ref()
                .and_then(|r| r.pending.iter().map(|p| p.1).min());
            let wake = match (poll, retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let item = tokio::select! {
                item = self.rx.recv() => item,
                _ = sleep_until_opt(wake), if wake.is_some() => {
                    if poll.is_some_and(|p| p <= Instant::now()) {
                        self.poll_lookupds().await;
                    }
                    self.retry_due().await;
                    continue;
                }
            };
            if matches!(item, Some(Err(_))) {
                // A connection ended: give its share of RDY to the others,
                // and try it again later if it was given directly.
                self.schedule_retries();
                self.rebalance();
            }
            return item;
        }
    }

    /// Queue a reconnection for every lost connection to a direct address.
    fn schedule_retries(&mut self) {
        let Some(r) = &mut self.retry else { return };
        for c in self.conns.iter().filter(|c| c.ctl.is_closed()) {
            if r.addrs.contains(&c.addr) && !r.pending.iter().any(|p| p.0 == c.addr) {
                r.pending.push((
                    c.addr.clone(),
                    Instant::now() + RETRY_FIRST,
                    RETRY_FIRST * 2,
                ));
            }
        }
    }

    /// Reconnect what is due; failures wait longer. Cancel-safe (`next`
    /// runs inside callers' `select!`): an address leaves the pending list
    /// only once its attempt is over, so one interrupted mid-connect is
    /// simply tried again.
    async fn retry_due(&mut self) {
        loop {
            let Some(r) = &self.retry else { return };
            let now = Instant::now();
            let Some((addr, _, next_wait)) = r.pending.iter().find(|p| p.1 <= now).cloned() else {
                return;
            };
            let tx = r.tx.clone();
            self.conns
                .retain(|c| !(c.addr == addr && c.ctl.is_closed()));
            let attached = self.attach(&addr, &tx).await;
            let Some(r) = &mut self.retry else { return };
            r.pending.retain(|p| p.0 != addr);
            match attached {
                // Failures and recoveries are logged by `attach`, once each.
                Ok(()) => self.rebalance(),
                Err(_) => {
                    r.pending.push((
                        addr,
                        Instant::now() + next_wait,
                        (next_wait * 2).min(RETRY_MAX),
                    ));
                }
            }
        }
    }

    /// Whether any connection to nsqd has ever been made.
    pub fn has_connected(&self) -> bool {
        self.failures.connected_once
    }

    /// The most recent failure to reach an nsqd or nsqlookupd, if any.
    pub fn last_failure(&self) -> Option<&ClientError> {
        self.failures.last.as_ref()
    }

    /// Connect and subscribe; a failure is logged once per peer until it
    /// is reachable again.
    async fn attach(&mut self, addr: &str, tx: &mpsc::Sender<Item>) -> Result<(), ClientError> {
        match self.subscribe_to(addr, tx).await {
            Ok(()) => {
                self.failures.connected_once = true;
                self.failures.succeeded(addr, "nsqd");
                Ok(())
            }
            Err(e) => {
                self.failures.failed(addr, &e);
                Err(e)
            }
        }
    }

    async fn subscribe_to(
        &mut self,
        addr: &str,
        tx: &mpsc::Sender<Item>,
    ) -> Result<(), ClientError> {
        let mut conn = Connection::connect(addr, &self.config.connection).await?;
        conn.request(&Command::Sub {
            topic: self.config.topic.clone(),
            channel: self.config.channel.clone(),
        })
        .await?;
        let max_rdy = conn.server.max_rdy_count.max(1) as u64;
        let grace = Duration::from_millis(conn.server.msg_timeout.max(1000) as u64);
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (addr, stream, reader) = conn.into_parts();
        let task = Task {
            addr: addr.clone(),
            reader,
            tx: tx.clone(),
            ctl: ctl_rx,
            close_grace: grace,
        };
        tokio::spawn(async move {
            let (rd, wr) = tokio::io::split(stream);
            task.run(rd, wr).await;
        });
        self.conns.push(Conn {
            addr,
            ctl,
            max_rdy,
            rdy: 0,
        });
        Ok(())
    }

    /// Send each live connection its share of `max_in_flight`, where it changed.
    fn rebalance(&mut self) {
        self.conns.retain(|c| !c.ctl.is_closed());
        let shares = match self.throttle {
            Some(0) => vec![0; self.conns.len()],
            limit => spread_rdy(limit.unwrap_or(self.config.max_in_flight), self.conns.len()),
        };
        for (c, share) in self.conns.iter_mut().zip(shares) {
            let rdy = share.min(c.max_rdy);
            if rdy != c.rdy && c.ctl.send(Control::Rdy(rdy)).is_ok() {
                c.rdy = rdy;
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The producers one lookupd reports for `topic`, as `host:port` TCP
/// addresses. A topic the lookupd does not know (404) has none.
async fn lookup(
    http: &reqwest::Client,
    lookupd: &str,
    topic: &str,
) -> Result<Vec<String>, ClientError> {
    let answer = super::api::lookup(http, lookupd, topic).await?;
    Ok(answer
        .producers
        .iter()
        .filter_map(|p| p.tcp_addr())
        .collect())
}

/// Split `total` over `n` connections as evenly as possible, each at least 1
/// (a connection with RDY 0 would never receive anything).
fn spread_rdy(total: u64, n: usize) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let (base, extra) = (total / n as u64, total % n as u64);
    (0..n as u64)
        .map(|i| (base + u64::from(i < extra)).max(1))
        .collect()
}

/// Append the wire form of an acknowledgement.
fn encode_ack(ack: Ack, out: &mut BytesMut) {
    match ack {
        Ack::Fin(id) => Command::Fin(id.to_hex()),
        Ack::Req(id, timeout_ms) => Command::Req {
            id: id.to_hex(),
            timeout_ms,
        },
        Ack::Touch(id) => Command::Touch(id.to_hex()),
    }
    .encode(out)
}

/// Only these error frames leave the connection open.
fn is_fatal(error: &[u8]) -> bool {
    !(error.starts_with(b"E_FIN_FAILED")
        || error.starts_with(b"E_REQ_FAILED")
        || error.starts_with(b"E_TOUCH_FAILED"))
}

/// One subscribed connection's task.
struct Task {
    addr: String,
    reader: FrameReader,
    tx: mpsc::Sender<Item>,
    ctl: mpsc::UnboundedReceiver<Control>,
    /// After CLS, how long to wait for in-flight messages to be answered.
    close_grace: Duration,
}

/// Where a connection stands while it runs.
struct State {
    out: BytesMut,
    in_flight: u64,
    /// Set once CLS is queued: close when nothing is in flight, or then.
    closing: Option<Instant>,
    /// nsqd answered CLS with CLOSE_WAIT: every message it sent before is
    /// read (closing earlier would strand those still in the socket, in
    /// flight on nsqd until their timeout).
    close_acked: bool,
    acks: mpsc::UnboundedSender<Ack>,
}

impl Task {
    async fn run<R, W>(mut self, mut rd: R, mut wr: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (acks, mut ack_rx) = mpsc::unbounded_channel();
        let mut st = State {
            out: BytesMut::with_capacity(16 * 1024),
            in_flight: 0,
            closing: None,
            close_acked: false,
            acks,
        };
        let mut ctl_open = true;
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let end: Result<(), ClientError> = loop {
            if st.closing.is_some() && st.close_acked && st.in_flight == 0 && st.out.is_empty() {
                break Ok(());
            }
            tokio::select! {
                ack = ack_rx.recv() => {
                    // Never `None`: `st.acks` is a sender.
                    let Some(mut ack) = ack else { continue };
                    loop {
                        st.apply(ack);
                        let Ok(next) = ack_rx.try_recv() else { break };
                        ack = next;
                    }
                }
                ctl = self.ctl.recv(), if ctl_open => match ctl {
                    Some(Control::Rdy(n)) if st.closing.is_none() => Command::Rdy(n).encode(&mut st.out),
                    Some(Control::Rdy(_)) => {}
                    Some(Control::Close) | None => {
                        ctl_open &= ctl.is_some();
                        st.close(self.close_grace);
                    }
                },
                read = self.reader.fill(&mut rd, &self.addr) => {
                    if let Err(e) = read {
                        break Err(e);
                    }
                    if let Err(e) = self.on_frames(&mut st).await {
                        break Err(e);
                    }
                }
                written = wr.write_buf(&mut st.out), if !st.out.is_empty() => match written {
                    Ok(0) => break Err(ClientError::Closed { addr: self.addr.clone() }),
                    // Drained: push it through a compressor or TLS.
                    Ok(_) if st.out.is_empty() => {
                        if let Err(e) = wr.flush().await {
                            break Err(ClientError::io(&self.addr, e));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => break Err(ClientError::io(&self.addr, e)),
                },
                _ = tokio::time::sleep_until(st.closing.unwrap_or(far)), if st.closing.is_some() => break Ok(()),
            }
        };
        if let Err(e) = end {
            // Closed first, so that whoever reads the error already sees
            // this connection as gone (and schedules its reconnection).
            self.ctl.close();
            let _ = self.tx.send(Err(e)).await;
        }
    }

    /// Handle every complete frame buffered.
    async fn on_frames(&mut self, st: &mut State) -> Result<(), ClientError> {
        while let Some(frame) = self.reader.decode(&self.addr)? {
            match frame {
                f if f.is_heartbeat() => Command::Nop.encode(&mut st.out),
                Frame::Message(message) => {
                    st.in_flight += 1;
                    let id = message.id;
                    let d = Delivery {
                        message,
                        acks: st.acks.clone(),
                    };
                    let sent = match self.tx.try_send(Ok(d)) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(d)) => self.tx.send(d).await.is_ok(),
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    };
                    if !sent {
                        // Nobody is listening any more: hand it straight back.
                        st.apply(Ack::Req(id, 0));
                        st.close(Duration::ZERO);
                    }
                }
                Frame::Response(r) if r.as_ref() == CLOSE_WAIT => st.close_acked = true,
                Frame::Response(_) => {}
                Frame::Error(text) if !is_fatal(&text) => {
                    tracing::warn!("nsqd at {}: {}", self.addr, String::from_utf8_lossy(&text));
                }
                Frame::Error(text) => {
                    return Err(ClientError::Server {
                        addr: self.addr.clone(),
                        text: String::from_utf8_lossy(&text).into_owned(),
                    })
                }
            }
        }
        Ok(())
    }
}

impl State {
    fn apply(&mut self, ack: Ack) {
        if !matches!(ack, Ack::Touch(_)) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        encode_ack(ack, &mut self.out);
    }

    fn close(&mut self, grace: Duration) {
        if self.closing.is_none() {
            Command::Cls.encode(&mut self.out);
            self.closing = Some(Instant::now() + grace);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{encode_frame, encode_message_frame, FrameType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn rdy_is_spread_evenly_and_never_zero() {
        assert_eq!(spread_rdy(10, 3), [4, 3, 3]);
        assert_eq!(spread_rdy(2500, 2), [1250, 1250]);
        assert_eq!(spread_rdy(1, 3), [1, 1, 1]);
        assert_eq!(spread_rdy(0, 1), [1]);
        assert!(spread_rdy(5, 0).is_empty());
    }

    #[test]
    fn acks_encode_as_nsq_commands() {
        let id = MessageId(0xab);
        let mut out = BytesMut::new();
        encode_ack(Ack::Fin(id), &mut out);
        encode_ack(Ack::Req(id, 1500), &mut out);
        encode_ack(Ack::Touch(id), &mut out);
        assert_eq!(
            &out[..],
            b"FIN 00000000000000ab\nREQ 00000000000000ab 1500\nTOUCH 00000000000000ab\n"
        );
    }

    #[test]
    fn only_three_errors_are_not_fatal() {
        assert!(!is_fatal(b"E_FIN_FAILED FIN 1 failed ID not in flight"));
        assert!(!is_fatal(b"E_REQ_FAILED x"));
        assert!(!is_fatal(b"E_TOUCH_FAILED x"));
        assert!(is_fatal(b"E_INVALID x"));
    }

    /// A task on an in-memory stream: messages in, batched FINs out, CLS on
    /// stop, close once nothing is in flight.
    #[tokio::test]
    async fn delivers_acks_in_one_batch_and_closes_after_cls() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let (tx, mut rx) = mpsc::channel(16);
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let task = Task {
            addr: "fake".into(),
            reader: FrameReader::default(),
            tx,
            ctl: ctl_rx,
            close_grace: Duration::from_secs(30),
        };
        let (rd, wr) = tokio::io::split(client);
        let handle = tokio::spawn(task.run(rd, wr));
        ctl.send(Control::Rdy(3)).unwrap();
        let mut got = [0u8; 6];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"RDY 3\n");

        let mut frames = BytesMut::new();
        for i in 1..=3 {
            let mut m = Message::new(MessageId(i), 7, Bytes::from_static(b"body"));
            m.attempts = 1;
            encode_message_frame(&mut frames, &m);
        }
        encode_frame(&mut frames, FrameType::Response, b"_heartbeat_");
        server.write_all(&frames).await.unwrap();

        let mut ds = Vec::new();
        for _ in 0..3 {
            ds.push(rx.recv().await.unwrap().unwrap());
        }
        assert_eq!(ds[0].body().as_ref(), b"body");
        assert_eq!(ds[2].id(), MessageId(3));
        let mut nop = [0u8; 4];
        server.read_exact(&mut nop).await.unwrap();
        assert_eq!(&nop, b"NOP\n");

        ctl.send(Control::Close).unwrap();
        let mut cls = [0u8; 4];
        server.read_exact(&mut cls).await.unwrap();
        assert_eq!(&cls, b"CLS\n");
        let mut close_wait = BytesMut::new();
        encode_frame(&mut close_wait, FrameType::Response, CLOSE_WAIT);
        server.write_all(&close_wait).await.unwrap();

        // Answered together, they go out together; then the task ends.
        let mut ds = ds.into_iter();
        ds.next().unwrap().fin();
        ds.next().unwrap().req(Duration::from_millis(5));
        ds.next().unwrap().fin();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(
            rest,
            b"FIN 0000000000000001\nREQ 0000000000000002 5\nFIN 0000000000000003\n"
        );
        handle.await.unwrap();
        assert!(rx.recv().await.is_none());
    }
}
