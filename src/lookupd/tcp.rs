//! nsqlookupd's TCP protocol V1, spoken by nsqd: after the magic `  V1`,
//! newline-terminated commands (`IDENTIFY` followed by a sized JSON body,
//! `REGISTER`, `UNREGISTER`, `PING`), each answered by a size-prefixed
//! response. Every error is fatal: the error text is sent, then the
//! connection closes. When a connection ends, its nsqd is removed from every
//! registration (the registrations themselves stay).

use super::registration_db::{Category, LastUpdate, PeerInfo, Registration};
use super::server::Lookupd;
use crate::listen::{Listener, PeerAddr};
use crate::protocol::lookup::{frame, topic_channel, PeerIdentity, MAGIC_V1};
use crate::protocol::names::is_ephemeral;
use crate::protocol::ProtocolError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::task::TaskTracker;

/// Longest command line accepted: real ones are a few hundred bytes.
const MAX_LINE: u64 = 64 * 1024;
/// Largest IDENTIFY body accepted (nsqd's is about 200 bytes).
const MAX_IDENTIFY_BODY: i32 = 1024 * 1024;
/// A peer must send its magic, and an IDENTIFY body, within this.
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// Every V1 error is fatal: `<code> <text>` is sent, then the connection
/// closes.
fn fail(code: &'static str, text: impl Into<String>) -> ProtocolError {
    ProtocolError::fatal(code, text)
}

pub async fn serve(lookupd: Arc<Lookupd>, listener: Listener, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = lookupd.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                tracker.spawn(handle(lookupd.clone(), stream, addr));
            }
            Err(e) => {
                tracing::error!("TCP: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection, over any byte stream (a TCP or unix socket; in-memory
/// when fuzzed).
pub(crate) async fn handle<S>(lookupd: Arc<Lookupd>, stream: S, addr: PeerAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shutdown = lookupd.shutdown.clone();
    let mut conn = V1Conn {
        lookupd,
        addr,
        stream: BufReader::new(stream),
        peer: None,
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = conn.run() => {}
    }
    conn.cleanup();
}

struct V1Conn<S> {
    lookupd: Arc<Lookupd>,
    addr: PeerAddr,
    stream: BufReader<S>,
    /// Set by IDENTIFY: who this connection is.
    peer: Option<Arc<PeerInfo>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> V1Conn<S> {
    async fn run(&mut self) {
        let mut magic = [0u8; 4];
        match tokio::time::timeout(IDLE_LIMIT, self.stream.read_exact(&mut magic)).await {
            Ok(Ok(_)) => {}
            _ => {
                tracing::error!("failed to read protocol version from {}", self.addr);
                return;
            }
        }
        tracing::info!(
            "CLIENT({}): desired protocol magic '{}'",
            self.addr,
            String::from_utf8_lossy(&magic)
        );
        if &magic != MAGIC_V1 {
            tracing::error!(
                "client({}) bad protocol magic '{}'",
                self.addr,
                String::from_utf8_lossy(&magic)
            );
            let _ = self.send(b"E_BAD_PROTOCOL").await;
            return;
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            // No idle limit between commands (as NSQ): a silent nsqd is
            // dropped from lookups by --inactive-producer-timeout instead.
            let mut limited = (&mut self.stream).take(MAX_LINE);
            match limited.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line.last() != Some(&b'\n') => {
                    if line.len() as u64 >= MAX_LINE {
                        tracing::error!("client({}) sent a line over {MAX_LINE} bytes", self.addr);
                    }
                    return; // EOF mid-line, or a line too long
                }
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let params: Vec<&str> = text.trim().split(' ').collect();
            let result = self.exec(&params).await;
            let response = match result {
                Ok(response) => response,
                Err(e) => {
                    tracing::error!("[{}] - {e}", self.addr);
                    let _ = self.send(e.to_string().as_bytes()).await;
                    return;
                }
            };
            if self.send(&response).await.is_err() {
                return;
            }
        }
    }

    /// A response: `[int32 size][data]`.
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        let stream = self.stream.get_mut();
        stream.write_all(&frame(data)).await?;
        stream.flush().await
    }

    async fn exec(&mut self, params: &[&str]) -> Result<Vec<u8>, ProtocolError> {
        match params[0] {
            "PING" => Ok(self.ping()),
            "IDENTIFY" => self.identify().await,
            "REGISTER" => self.register(&params[1..]),
            "UNREGISTER" => self.unregister(&params[1..]),
            other => Err(fail("E_INVALID", format!("invalid command {other}"))),
        }
    }

    fn ping(&mut self) -> Vec<u8> {
        if let Some(peer) = &self.peer {
            let now = Instant::now();
            tracing::info!(
                "CLIENT({}): pinged (last ping {:?})",
                peer.id,
                now.saturating_duration_since(peer.last_update.get())
            );
            peer.last_update.set(now);
        }
        b"OK".to_vec()
    }

    async fn identify(&mut self) -> Result<Vec<u8>, ProtocolError> {
        if self.peer.is_some() {
            return Err(fail("E_INVALID", "cannot IDENTIFY again"));
        }
        let size = tokio::time::timeout(IDLE_LIMIT, self.stream.read_i32())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| fail("E_BAD_BODY", "IDENTIFY failed to read body size"))?;
        let read_body = fail("E_BAD_BODY", "IDENTIFY failed to read body");
        if !(0..=MAX_IDENTIFY_BODY).contains(&size) {
            return Err(read_body);
        }
        let mut body = vec![0u8; size as usize];
        match tokio::time::timeout(IDLE_LIMIT, self.stream.read_exact(&mut body)).await {
            Ok(Ok(_)) => {}
            _ => return Err(read_body),
        }
        // The producer's identity: its connection (unique on a unix socket
        // too, where every peer's address shows as `@`).
        let id = self.addr.key();
        let fields = PeerIdentity::parse(&body)
            .ok_or_else(|| fail("E_BAD_BODY", "IDENTIFY failed to decode JSON body"))?;
        if fields.broadcast_address.is_empty()
            || fields.tcp_port == 0
            || fields.http_port == 0
            || fields.version.is_empty()
        {
            return Err(fail("E_BAD_BODY", "IDENTIFY missing fields"));
        }
        let peer = Arc::new(PeerInfo {
            remote_address: self.addr.to_string(),
            id,
            hostname: fields.hostname,
            broadcast_address: fields.broadcast_address,
            tcp_port: fields.tcp_port,
            http_port: fields.http_port,
            version: fields.version,
            topology_zone: fields.topology_zone,
            topology_region: fields.topology_region,
            last_update: LastUpdate::new(Instant::now()),
        });
        tracing::info!(
            "CLIENT({}): IDENTIFY Address:{} TCP:{} HTTP:{} Version:{}",
            self.addr,
            peer.broadcast_address,
            peer.tcp_port,
            peer.http_port,
            peer.version
        );
        if self
            .lookupd
            .db
            .write()
            .add_producer(Registration::client(), &peer)
        {
            tracing::info!(
                "DB: client({}) REGISTER category:client key: subkey:",
                self.addr
            );
        }
        self.peer = Some(peer);
        Ok(self.lookupd.identify_response())
    }

    fn peer(&self) -> Result<Arc<PeerInfo>, ProtocolError> {
        self.peer
            .clone()
            .ok_or_else(|| fail("E_INVALID", "client must IDENTIFY"))
    }

    fn register(&mut self, params: &[&str]) -> Result<Vec<u8>, ProtocolError> {
        let peer = self.peer()?;
        let (topic, channel) = topic_channel("REGISTER", params)?;
        let mut db = self.lookupd.db.write();
        if let Some(channel) = channel {
            if db.add_producer(Registration::channel(topic, channel), &peer) {
                tracing::info!(
                    "DB: client({}) REGISTER category:channel key:{topic} subkey:{channel}",
                    self.addr
                );
            }
        }
        if db.add_producer(Registration::topic(topic), &peer) {
            tracing::info!(
                "DB: client({}) REGISTER category:topic key:{topic} subkey:",
                self.addr
            );
        }
        Ok(b"OK".to_vec())
    }

    fn unregister(&mut self, params: &[&str]) -> Result<Vec<u8>, ProtocolError> {
        let peer = self.peer()?;
        let (topic, channel) = topic_channel("UNREGISTER", params)?;
        let mut db = self.lookupd.db.write();
        match channel {
            Some(channel) => {
                let key = Registration::channel(topic, channel);
                let (removed, left) = db.remove_producer(&key, &peer.id);
                if removed {
                    tracing::info!(
                        "DB: client({}) UNREGISTER category:channel key:{topic} subkey:{channel}",
                        self.addr
                    );
                }
                if left == 0 && is_ephemeral(channel) {
                    db.remove_registration(&key);
                }
            }
            None => {
                // nsqd unregisters a topic's channels first; any left over
                // go with the topic.
                for r in db.find_registrations(Category::Channel, topic, super::WILDCARD) {
                    if db.remove_producer(&r, &peer.id).0 {
                        tracing::warn!(
                            "client({}) unexpected UNREGISTER category:channel key:{topic} subkey:{}",
                            self.addr,
                            r.subkey
                        );
                    }
                }
                let key = Registration::topic(topic);
                let (removed, left) = db.remove_producer(&key, &peer.id);
                if removed {
                    tracing::info!(
                        "DB: client({}) UNREGISTER category:topic key:{topic} subkey:",
                        self.addr
                    );
                }
                if left == 0 && is_ephemeral(topic) {
                    db.remove_registration(&key);
                }
            }
        }
        Ok(b"OK".to_vec())
    }

    /// The connection is gone: its nsqd no longer produces anything.
    fn cleanup(&mut self) {
        if let Some(peer) = self.peer.take() {
            let removed = self.lookupd.db.write().remove_peer(&peer.id);
            for r in removed {
                tracing::info!(
                    "DB: client({}) UNREGISTER category:{} key:{} subkey:{}",
                    self.addr,
                    r.category,
                    r.key,
                    r.subkey
                );
            }
        }
        tracing::info!("PROTOCOL(V1): [{}] exiting ioloop", self.addr);
    }
}
