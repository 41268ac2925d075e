//! The engine: nsqd's topics, its connected clients, and its health.

use super::backend::{Discard, MemoryOverflow, Queue};
use super::client_state::ClientHandle;
use super::options::Options;
use super::topic::Topic;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Builds the queue behind each topic and channel, so that the storage
/// policy (memory size, what overflows where) is decided in one place.
pub struct QueueFactory {
    pub mem_queue_size: usize,
    pub node_id: u16,
}

impl QueueFactory {
    pub fn queue(&self, _queue_name: &str, ephemeral: bool) -> Queue {
        if ephemeral {
            Queue::new(self.mem_queue_size, Box::<Discard>::default())
        } else {
            Queue::new(self.mem_queue_size, Box::<MemoryOverflow>::default())
        }
    }
}

/// Addresses actually bound (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddrs {
    pub tcp: SocketAddr,
    pub http: Option<SocketAddr>,
}

pub struct Nsqd {
    pub opts: Arc<Options>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    next_client_id: AtomicU64,
    factory: Arc<QueueFactory>,
    /// Set when a write to a backend fails; `/ping` reports it.
    health: Mutex<Option<String>>,
    pub start_time: i64,
    pub started: Instant,
    pub addrs: OnceLock<BoundAddrs>,
    /// Cancelled when the daemon shuts down.
    pub shutdown: CancellationToken,
}

impl Nsqd {
    pub fn new(opts: Options) -> Arc<Nsqd> {
        let factory = Arc::new(QueueFactory {
            mem_queue_size: opts.mem_queue_size.max(0) as usize,
            node_id: opts.effective_node_id(),
        });
        Arc::new(Nsqd {
            opts: Arc::new(opts),
            topics: RwLock::new(BTreeMap::new()),
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            factory,
            health: Mutex::new(None),
            start_time: unix_seconds(),
            started: Instant::now(),
            addrs: OnceLock::new(),
            shutdown: CancellationToken::new(),
        })
    }

    /// The topic, created if absent (or if the old one is being deleted).
    pub fn get_or_create_topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.topics.read().get(name) {
            if !t.is_exiting() {
                return t.clone();
            }
        }
        let mut topics = self.topics.write();
        if let Some(t) = topics.get(name) {
            if !t.is_exiting() {
                return t.clone();
            }
        }
        let topic = Arc::new(Topic::new(name, self.factory.clone()));
        topics.insert(name.to_string(), topic.clone());
        tracing::info!("TOPIC({name}): created");
        topic
    }

    pub fn get_topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .get(name)
            .filter(|t| !t.is_exiting())
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Delete a topic and all its channels. False if it does not exist.
    pub fn delete_topic(&self, name: &str) -> bool {
        let removed = self.topics.write().remove(name);
        match removed {
            Some(t) => {
                t.delete();
                tracing::info!("TOPIC({name}): deleted");
                true
            }
            None => false,
        }
    }

    /// Ephemeral cleanup: delete `topic` if it has no channel left.
    pub fn delete_topic_if_unused(&self, topic: &Arc<Topic>) {
        let mut topics = self.topics.write();
        let same = topics
            .get(&topic.name)
            .is_some_and(|t| Arc::ptr_eq(t, topic));
        if same && topic.mark_exiting_if_unused() {
            topics.remove(&topic.name);
            drop(topics);
            topic.delete();
            tracing::info!("TOPIC({}): deleted ephemeral topic", topic.name);
        }
    }

    pub fn register_client(&self, addr: SocketAddr) -> Arc<ClientHandle> {
        let id = self.next_client_id.fetch_add(1, Relaxed);
        let handle = Arc::new(ClientHandle::new(id, addr));
        self.clients.lock().insert(id, handle.clone());
        handle
    }

    pub fn unregister_client(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn clients(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }

    /// `None` when healthy, else the last backend error.
    pub fn health(&self) -> Option<String> {
        self.health.lock().clone()
    }

    pub fn set_health(&self, err: Option<String>) {
        *self.health.lock() = err;
    }

    /// Drive in-flight timeouts and deferred messages for every channel.
    ///
    /// Each channel reports its next deadline, so the loop sleeps exactly
    /// until the earliest one (at most `MAX_IDLE`, to pick up new channels
    /// and new deadlines), rather than sampling on a fixed tick.
    pub async fn run_timers(self: Arc<Self>) {
        const MAX_IDLE: Duration = Duration::from_millis(50);
        loop {
            let now = Instant::now();
            let mut next = now + MAX_IDLE;
            for topic in self.topics() {
                for ch in topic.channels() {
                    if let Some(at) = ch.process_timers(now) {
                        next = next.min(at);
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
