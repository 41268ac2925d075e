//! What nsqd knows about one TCP connection, shared between the connection's
//! task, the channel it consumes from, and `/stats`.
//!
//! Counters are atomics so that the hot path never takes a lock to count.

use crate::listen::PeerAddr;
use crate::protocol::{ConnState, Message};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering::Relaxed};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Descriptive fields set by IDENTIFY.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub hostname: String,
    pub user_agent: String,
    pub topology_region: String,
    pub topology_zone: String,
    pub deflate: bool,
    pub snappy: bool,
    pub tls: bool,
    /// `TLS1.2` / `TLS1.3` once upgraded.
    pub tls_version: String,
    pub tls_cipher_suite: String,
    /// The subject common name of the client's certificate, if it sent one
    /// (passed to the auth server).
    pub tls_common_name: String,
    /// Set by a successful AUTH.
    pub authed: bool,
    pub auth_identity: String,
    pub auth_identity_url: String,
}

pub struct ClientHandle {
    pub id: u64,
    pub remote_addr: PeerAddr,
    /// Unix seconds.
    pub connect_ts: i64,
    pub info: Mutex<ClientInfo>,
    /// Messages published per topic on this connection.
    pub pub_counts: Mutex<HashMap<String, u64>>,
    state: AtomicI32,
    pub ready_count: AtomicI64,
    pub in_flight: AtomicI64,
    pub sample_rate: AtomicI32,
    pub message_count: AtomicU64,
    pub finish_count: AtomicU64,
    pub requeue_count: AtomicU64,
    /// Messages a channel handed to this consumer while it waited (already
    /// in flight), for its connection to send.
    pub outbox: Mutex<Vec<Message>>,
    /// Listed among its channel's waiters (changed under the channel's lock).
    pub waiting: AtomicBool,
    /// Woken when something outside the connection's task changes what it
    /// may send (a timeout frees an in-flight slot, a channel is emptied).
    pub wake: Notify,
    /// Cancelled to close the connection from outside (channel deleted).
    pub kill: CancellationToken,
}

impl ClientHandle {
    pub fn new(id: u64, remote_addr: PeerAddr) -> Self {
        // Go's host part of the remote address: empty on a unix socket.
        let ip = remote_addr
            .ip()
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        ClientHandle {
            id,
            remote_addr,
            connect_ts: crate::sys::unix_seconds(),
            info: Mutex::new(ClientInfo {
                // Before IDENTIFY, nsqd shows the remote IP for both.
                client_id: ip.clone(),
                hostname: ip,
                ..Default::default()
            }),
            pub_counts: Mutex::new(HashMap::new()),
            state: AtomicI32::new(ConnState::Init.as_stat()),
            ready_count: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
            sample_rate: AtomicI32::new(0),
            message_count: AtomicU64::new(0),
            finish_count: AtomicU64::new(0),
            requeue_count: AtomicU64::new(0),
            outbox: Mutex::new(Vec::new()),
            waiting: AtomicBool::new(false),
            wake: Notify::new(),
            kill: CancellationToken::new(),
        }
    }

    /// The protocol state as `/stats` reports it (Go's numbering). The
    /// connection owns the state (its decoder enforces it); this mirrors it.
    pub fn state_code(&self) -> i32 {
        self.state.load(Relaxed)
    }

    pub fn set_state(&self, state: ConnState) {
        self.state.store(state.as_stat(), Relaxed);
    }

    /// Called when the channel takes back one of this client's messages
    /// (timeout) so that its task can send another.
    pub fn release_in_flight(&self, n: i64) {
        self.in_flight.fetch_sub(n, Relaxed);
        self.wake.notify_one();
    }

    pub fn record_publish(&self, topic: &str, n: u64) {
        let mut counts = self.pub_counts.lock();
        if let Some(c) = counts.get_mut(topic) {
            *c += n;
        } else {
            counts.insert(topic.to_string(), n);
        }
    }
}
