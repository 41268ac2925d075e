//! The engine: nsqd's topics, its connected clients, its storage and its
//! health.

use super::backend::BackendError;
use super::channel::Channel;
use super::client_state::ClientHandle;
use super::lookup::{LookupEvent, LookupdInfo};
use super::metadata::{self, ChannelMeta, Metadata, TopicMeta};
use super::options::Options;
use super::queues::{DiskSettings, QueueFactory};
use super::settings::Settings;
use super::topic::Topic;
use crate::diskqueue::{self, SyncJob};
use crate::listen::{LocalAddr, PeerAddr};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Addresses actually bound (port 0 resolved; TCP and HTTP may be unix
/// sockets).
#[derive(Debug, Clone)]
pub struct BoundAddrs {
    pub tcp: LocalAddr,
    pub http: Option<LocalAddr>,
    pub https: Option<LocalAddr>,
}

pub struct Nsqd {
    pub opts: Arc<Options>,
    /// The flags typed and validated (see [`Settings`]).
    pub settings: Settings,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    next_client_id: AtomicU64,
    factory: Arc<QueueFactory>,
    /// Set when a write to a backend fails; `/ping` reports it.
    health: Mutex<Option<String>>,
    unhealthy: AtomicBool,
    /// Serialises `nsqd.dat` writes; true while loading it (no writes then).
    metadata_lock: Mutex<bool>,
    /// Wakes the metadata writer (`run_metadata_writer`).
    metadata_wanted: tokio::sync::Notify,
    /// Held for the life of the process: one nsqd per data path.
    _data_path_lock: Option<std::fs::File>,
    /// Bumped after every sync round, to wake publishers awaiting one.
    sync_rounds: watch::Sender<u64>,
    /// Topic and channel changes, for the nsqlookupd connections.
    lookup_events: tokio::sync::broadcast::Sender<LookupEvent>,
    /// What each connected nsqlookupd said in its IDENTIFY response, by
    /// the id of the task that keeps its connection.
    lookupd_info: Mutex<BTreeMap<u64, LookupdInfo>>,
    /// The nsqlookupds to register with: `--lookupd-tcp-address`, replaced
    /// by `PUT /config/nsqlookupd_tcp_addresses` (`None` once set to JSON
    /// `null`, which NSQ keeps and shows as `null`).
    lookupd_addresses: watch::Sender<Option<Vec<String>>>,
    /// `--log-level`, changed by `PUT /config/log_level`.
    log_level: Mutex<super::options::LogLevel>,
    pub start_time: i64,
    pub started: Instant,
    pub addrs: OnceLock<BoundAddrs>,
    /// Cancelled when the daemon shuts down.
    pub shutdown: CancellationToken,
    /// The TLS configuration, when `--tls-cert` and `--tls-key` are given.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// When channels' in-flight and deferred timers are due, and dead
    /// letters wait to be moved (see [`Nsqd::run_timers`]).
    pub(crate) timers: Arc<super::timers::Timers>,
    /// For tasks spawned from `&self` methods.
    me: std::sync::Weak<Nsqd>,
}

/// Why nsqd cannot start with these options and this data path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Tls(String),
    #[error("--data-path={0} in use (possibly by another instance of nsqd); stop it or choose another --data-path")]
    InUse(String),
    #[error("--data-path={path} cannot be used: {reason}")]
    Unusable { path: String, reason: String },
    #[error("{0} (fix or move the file aside to start with no topics)")]
    Metadata(String),
}

/// Least time between metadata writes in the sync rounds that writes ask
/// for (`--sync-every`): under load a round comes every few milliseconds,
/// and rewriting the metadata file each time (create, write, fsync, rename)
/// cost pipelined publishers up to 4 % of their throughput in one run (no
/// difference in another; see docs/benchmarks.md). The data is synced
/// every round regardless, so nothing acknowledged depends on it: a
/// metadata file up to this much behind only means that, after a crash,
/// the messages finished in that time are delivered again. The
/// `--sync-timeout` ticker and shutdown always write it.
const META_INTERVAL: Duration = Duration::from_millis(100);

/// Whether a round asked for by writes also writes the metadata: only when
/// rounds commit it at all (not with durable acks, where the ticker does)
/// and [`META_INTERVAL`] has passed since it was last written.
fn commit_with_meta(commit_meta: bool, since_last_meta: Duration) -> bool {
    commit_meta && since_last_meta >= META_INTERVAL
}

impl Nsqd {
    /// An engine with no data path: queues overflow into memory and nothing
    /// persists. For tests and embedding; the daemon uses [`Nsqd::open`].
    pub fn new(opts: Options) -> Arc<Nsqd> {
        Self::build(opts, None, None, None)
    }

    /// The daemon's engine: lock the data path, open durable queues there
    /// and restore the topics and channels of `nsqd.dat`.
    pub fn open(opts: Options) -> Result<Arc<Nsqd>, OpenError> {
        let tls = super::tls::server_config(&opts).map_err(OpenError::Tls)?;
        if tls.is_none() && opts.tls_required_on_tcp() {
            return Err(OpenError::Tls(
                "cannot require TLS client connections without TLS key and cert".into(),
            ));
        }
        let dir = opts.data_dir();
        let shown = dir.display().to_string();
        let unusable = |reason: String| OpenError::Unusable {
            path: shown.clone(),
            reason,
        };
        let lock = std::fs::File::open(&dir).map_err(|e| unusable(e.to_string()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::InUse(shown)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(unusable(format!("cannot lock it: {e}")))
            }
        }
        let saved = metadata::load(&dir).map_err(OpenError::Metadata)?;
        let settings = Settings::new(&opts);
        let disk = DiskSettings {
            cfg: diskqueue::Config {
                max_bytes_per_file: settings.max_bytes_per_file,
                min_record_size: settings.min_record_size,
                max_record_size: settings.max_record_size,
                sync_every: settings.sync_every,
            },
            durable_acks: settings.durable_acks,
            cache_bytes: settings.mem_queue_bytes,
            dir,
        };
        let nsqd = Self::build(opts, Some(disk), Some(lock), tls);
        if let Some(saved) = saved {
            nsqd.restore(saved);
        }
        nsqd.write_metadata();
        Ok(nsqd)
    }

    fn build(
        opts: Options,
        disk: Option<DiskSettings>,
        lock: Option<std::fs::File>,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Arc<Nsqd> {
        let settings = Settings::new(&opts);
        let factory = Arc::new(QueueFactory {
            mem_queue_size: settings.mem_queue_size,
            node_id: settings.node_id,
            max_attempts: settings.max_attempts,
            disk,
            sync_wake: Arc::new(Notify::new()),
        });
        let lookupd_addresses = watch::channel(Some(opts.lookupd_tcp_addresses.clone())).0;
        let log_level = Mutex::new(opts.daemon.log_level);
        Arc::new_cyclic(|me| Nsqd {
            me: me.clone(),
            tls,
            opts: Arc::new(opts),
            settings,
            topics: RwLock::new(BTreeMap::new()),
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            factory,
            health: Mutex::new(None),
            unhealthy: AtomicBool::new(false),
            metadata_lock: Mutex::new(false),
            metadata_wanted: tokio::sync::Notify::new(),
            _data_path_lock: lock,
            sync_rounds: watch::channel(0).0,
            lookup_events: tokio::sync::broadcast::channel(4096).0,
            lookupd_info: Mutex::new(BTreeMap::new()),
            lookupd_addresses,
            log_level,
            start_time: crate::sys::unix_seconds(),
            started: Instant::now(),
            addrs: OnceLock::new(),
            shutdown: CancellationToken::new(),
            timers: Default::default(),
        })
    }

    /// Recreate the saved topics and channels, with their paused state.
    fn restore(&self, saved: Metadata) {
        *self.metadata_lock.lock() = true;
        for t in saved.topics.unwrap_or_default() {
            if !crate::protocol::names::is_valid_name(t.name.as_bytes()) {
                tracing::warn!(
                    "skipping creation of invalid topic {:?} found in nsqd.dat",
                    t.name
                );
                continue;
            }
            let topic = self.get_or_create_topic(&t.name);
            if t.paused {
                topic.pause();
            }
            for c in t.channels.unwrap_or_default() {
                if !crate::protocol::names::is_valid_name(c.name.as_bytes()) {
                    tracing::warn!(
                        "skipping creation of invalid channel {:?} found in nsqd.dat",
                        c.name
                    );
                    continue;
                }
                let (channel, _) = topic.get_or_create_channel(&c.name);
                if c.paused {
                    channel.pause();
                }
                let valid_topic = c
                    .dead_letter_topic
                    .filter(|t| crate::protocol::names::is_valid_name(t.as_bytes()));
                if let Some(dead) = valid_topic.as_deref().and_then(|t| self.get_topic(t)) {
                    dead.mark_dead_letter();
                }
                channel.set_dead_letters(c.max_attempts, valid_topic);
            }
        }
        *self.metadata_lock.lock() = false;
    }

    /// Have `nsqd.dat` rewritten soon, in the background (as NSQ does).
    /// The file lists every topic and channel, so writing it for each of
    /// 10,000 topics created one after the other cost minutes; requests
    /// that come while a write runs share the next one. A topic or channel
    /// created just before a crash and missing from the file loses nothing:
    /// its queue files stay, and are found when it is created again.
    pub fn persist_metadata(&self) {
        if self.factory.disk.is_some() {
            self.metadata_wanted.notify_one();
        }
    }

    /// Write `nsqd.dat` whenever [`persist_metadata`](Self::persist_metadata)
    /// asks, until shutdown (which writes it once more, in `close`).
    pub async fn run_metadata_writer(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.metadata_wanted.notified() => {}
            }
            let nsqd = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || nsqd.write_metadata()).await {
                tracing::error!("metadata writer failed: {e}");
            }
        }
    }

    /// Write `nsqd.dat` with the durable topics and channels as they are now.
    pub fn write_metadata(&self) {
        if self.factory.disk.is_none() {
            return;
        }
        let loading = self.metadata_lock.lock();
        if *loading {
            return;
        }
        let topics: Vec<TopicMeta> = self
            .topics()
            .into_iter()
            .filter(|t| !t.ephemeral && !t.is_exiting())
            .map(|t| {
                let channels: Vec<ChannelMeta> = t
                    .channels()
                    .into_iter()
                    .filter(|c| !c.ephemeral && !c.is_exiting())
                    .map(|c| {
                        let dead = c.dead_letter_config();
                        ChannelMeta {
                            name: c.name.clone(),
                            paused: c.is_paused(),
                            max_attempts: dead.own_max_attempts,
                            dead_letter_topic: dead.own_topic,
                        }
                    })
                    .collect();
                TopicMeta {
                    name: t.name.clone(),
                    paused: t.is_paused(),
                    channels: (!channels.is_empty()).then_some(channels),
                }
            })
            .collect();
        let meta = Metadata {
            topics: (!topics.is_empty()).then_some(topics),
            version: crate::protocol::NSQ_VERSION.to_string(),
        };
        let dir = self.opts.data_dir();
        if let Err(e) = metadata::save(&dir, &meta) {
            tracing::error!(
                "failed to persist metadata to {}: {e}",
                metadata::path(&dir).display()
            );
        }
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
        let topic = Topic::new(name, self.factory.clone(), self.timers.clone());
        topics.insert(name.to_string(), topic.clone());
        drop(topics);
        tracing::info!("TOPIC({name}): created");
        let restoring = *self.metadata_lock.lock();
        if !topic.ephemeral {
            self.persist_metadata();
        }
        self.notify_lookup(LookupEvent::Register {
            topic: name.to_string(),
            channel: None,
        });
        if !restoring && !self.lookupd_addresses().is_empty() {
            if let (Ok(rt), Some(me)) = (tokio::runtime::Handle::try_current(), self.me.upgrade()) {
                rt.spawn(super::lookup::precreate_channels(me, topic.clone()));
            }
        }
        topic
    }

    /// Tell the nsqlookupd connections about a change (none listening: fine).
    pub fn notify_lookup(&self, event: LookupEvent) {
        let _ = self.lookup_events.send(event);
    }

    /// A receiver of topic and channel changes, for one nsqlookupd connection.
    pub fn lookup_events(&self) -> tokio::sync::broadcast::Receiver<LookupEvent> {
        self.lookup_events.subscribe()
    }

    /// What a new nsqlookupd connection registers: each topic, as its
    /// channels (or alone if it has none).
    pub fn registrations(&self) -> Vec<LookupEvent> {
        let mut out = Vec::new();
        for topic in self.topics().into_iter().filter(|t| !t.is_exiting()) {
            let channels: Vec<String> = topic
                .channels()
                .into_iter()
                .filter(|c| !c.is_exiting())
                .map(|c| c.name.clone())
                .collect();
            if channels.is_empty() {
                out.push(LookupEvent::Register {
                    topic: topic.name.clone(),
                    channel: None,
                });
            }
            for channel in channels {
                out.push(LookupEvent::Register {
                    topic: topic.name.clone(),
                    channel: Some(channel),
                });
            }
        }
        out
    }

    pub fn set_lookupd_info(&self, peer: u64, info: LookupdInfo) {
        self.lookupd_info.lock().insert(peer, info);
    }

    /// A removed nsqlookupd is no longer asked about channels.
    pub fn forget_lookupd_info(&self, peer: u64) {
        self.lookupd_info.lock().remove(&peer);
    }

    /// The nsqlookupd TCP addresses as set now (flag or `/config`).
    pub fn lookupd_addresses(&self) -> Vec<String> {
        self.lookupd_addresses.borrow().clone().unwrap_or_default()
    }

    /// The addresses as `/config` shows them (`None`: JSON `null`).
    pub fn lookupd_addresses_setting(&self) -> Option<Vec<String>> {
        self.lookupd_addresses.borrow().clone()
    }

    /// Follow the nsqlookupd addresses as they change.
    pub fn watch_lookupd_addresses(&self) -> watch::Receiver<Option<Vec<String>>> {
        self.lookupd_addresses.subscribe()
    }

    /// Replace the nsqlookupd addresses: new ones are connected to (and
    /// told about every topic and channel), removed ones disconnected.
    pub fn set_lookupd_addresses(&self, addresses: Option<Vec<String>>) {
        self.lookupd_addresses.send_replace(addresses);
    }

    /// The TCP port registered with nsqlookupd: `--broadcast-tcp-port`, or
    /// the port bound (0 before binding, and on a unix socket, as NSQ).
    pub fn broadcast_tcp_port(&self) -> u16 {
        match self.opts.broadcast_tcp_port {
            0 => self.addrs.get().and_then(|a| a.tcp.port()).unwrap_or(0),
            p => p,
        }
    }

    /// The HTTP port registered with nsqlookupd (and in the statsd prefix):
    /// `--broadcast-http-port`, or the port bound (0 without one, and on a
    /// unix socket, as NSQ).
    pub fn broadcast_http_port(&self) -> u16 {
        match self.opts.broadcast_http_port {
            0 => self
                .addrs
                .get()
                .and_then(|a| a.http.as_ref())
                .and_then(LocalAddr::port)
                .unwrap_or(0),
            p => p,
        }
    }

    pub fn log_level(&self) -> super::options::LogLevel {
        *self.log_level.lock()
    }

    /// Change the log level, at once.
    pub fn set_log_level(&self, level: super::options::LogLevel) {
        *self.log_level.lock() = level;
        crate::logging::set_level(level.as_tracing());
    }

    /// HTTP addresses of the nsqlookupds that have identified themselves.
    pub fn lookupd_http_addresses(&self) -> Vec<String> {
        self.lookupd_info
            .lock()
            .values()
            .filter(|i| !i.broadcast_address.is_empty() && i.http_port > 0)
            .map(|i| match i.broadcast_address.contains(':') {
                true => format!("[{}]:{}", i.broadcast_address, i.http_port),
                false => format!("{}:{}", i.broadcast_address, i.http_port),
            })
            .collect()
    }

    /// The channel, created if absent; `nsqd.dat` follows a new durable one.
    pub fn get_or_create_channel(&self, topic: &Topic, name: &str) -> Arc<Channel> {
        let (channel, created) = topic.get_or_create_channel(name);
        if created {
            if !channel.ephemeral {
                self.persist_metadata();
            }
            self.notify_lookup(LookupEvent::Register {
                topic: topic.name.clone(),
                channel: Some(name.to_string()),
            });
        }
        channel
    }

    /// Delete a channel and its files. False if there is no such channel.
    pub fn delete_channel(&self, topic: &Topic, name: &str) -> bool {
        let deleted = topic.delete_channel(name);
        if deleted {
            self.persist_metadata();
            self.notify_lookup(LookupEvent::Unregister {
                topic: topic.name.clone(),
                channel: Some(name.to_string()),
            });
        }
        deleted
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
                self.persist_metadata();
                self.notify_lookup(LookupEvent::Unregister {
                    topic: name.to_string(),
                    channel: None,
                });
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
            self.notify_lookup(LookupEvent::Unregister {
                topic: topic.name.clone(),
                channel: None,
            });
        }
    }

    pub fn register_client(&self, addr: PeerAddr) -> Arc<ClientHandle> {
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

    /// Record the storage's health. Each change is logged once: the
    /// client sees its own `E_PUB_FAILED`, the operator needs the log to
    /// say that the disk refuses writes (NSQ logs every failed message
    /// instead) and when it takes them again.
    pub fn set_health(&self, err: Option<String>) {
        let mut health = self.health.lock();
        match (health.as_deref(), err.as_deref()) {
            (before, Some(now)) if before != Some(now) => {
                tracing::error!("storage failing (/ping answers NOK until a write succeeds): {now}")
            }
            (Some(_), None) => tracing::info!("storage works again (a write succeeded)"),
            _ => {}
        }
        self.unhealthy.store(err.is_some(), Relaxed);
        *health = err;
    }

    /// Track the outcome of a publish: a storage failure makes nsqd
    /// unhealthy, the next success makes it healthy again (as NSQ does).
    pub fn note_put<T>(&self, result: &Result<T, BackendError>) {
        match result {
            Err(BackendError::Write(text)) => self.set_health(Some(text.clone())),
            Ok(_) if self.unhealthy.load(Relaxed) => self.set_health(None),
            _ => {}
        }
    }

    /// A receiver bumped after every sync round, for connections that wait
    /// on many tickets in turn.
    pub fn sync_rounds(&self) -> watch::Receiver<u64> {
        self.sync_rounds.subscribe()
    }

    /// Ask the syncer for a round now.
    pub fn request_sync(&self) {
        self.factory.sync_wake.notify_one();
    }

    /// fsync the disk queues: when `--sync-every` operations accumulated
    /// somewhere (or a publisher waits, with `--sync-every=1`), and every
    /// `--sync-timeout` if anything changed. One round syncs every queue
    /// with unsynced changes, so concurrent publishers share the fsyncs.
    pub async fn run_syncer(self: Arc<Self>) {
        if self.factory.disk.is_none() {
            return;
        }
        let wake = self.factory.sync_wake.clone();
        let every = self.opts.sync_timeout.max(Duration::from_millis(1));
        // With durable acks, commits fsync data only and the metadata
        // follows on the ticker (see `DiskQueue::sync_job`).
        let commit_meta = !self.factory.disk.as_ref().is_some_and(|d| d.durable_acks);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_meta = Instant::now();
        loop {
            let with_meta = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = wake.notified() => commit_with_meta(commit_meta, last_meta.elapsed()),
                _ = ticker.tick() => true,
            };
            if with_meta {
                last_meta = Instant::now();
            }
            self.sync_round(with_meta).await;
        }
    }

    async fn sync_round(&self, with_meta: bool) {
        let topics = self.topics();
        // Topic jobs are taken first: a topic's read position must not be
        // recorded past messages its pump moved into channels whose own
        // writes are not yet on disk. The channel jobs, taken after, cover
        // those writes and run before the topic jobs.
        let topic_jobs: Vec<SyncJob> = topics.iter().flat_map(|t| t.sync_jobs(with_meta)).collect();
        let channel_jobs: Vec<SyncJob> = topics
            .iter()
            .flat_map(|t| t.channels())
            .flat_map(|c| c.sync_jobs(with_meta))
            .collect();
        if topic_jobs.is_empty() && channel_jobs.is_empty() {
            return;
        }
        let errors = tokio::task::spawn_blocking(move || {
            channel_jobs
                .into_iter()
                .chain(topic_jobs)
                .filter_map(|job| job.run().err())
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| vec![format!("sync task failed: {e}")]);
        for e in &errors {
            tracing::error!("failed to sync a disk queue: {e}");
        }
        if let Some(e) = errors.into_iter().next() {
            self.set_health(Some(e));
        }
        self.sync_rounds.send_modify(|r| *r = r.wrapping_add(1));
    }

    /// Shutdown: record the topology, then put every queued, in-flight and
    /// deferred message on disk so that it is delivered after a restart.
    pub fn close(&self) {
        self.write_metadata();
        for topic in self.topics() {
            if let Err(e) = topic.persist() {
                tracing::error!("TOPIC({}): failed to persist messages: {e}", topic.name);
            }
        }
    }

    /// Move a channel's dead letters to their topic (created as needed),
    /// keeping each message's ID, timestamp and attempts; they are finished
    /// in the channel once stored there.
    fn move_dead_letters(&self, channel: &Channel) {
        let Some((topic_name, msgs)) = channel.take_dead_letters() else {
            return;
        };
        if !crate::protocol::names::is_valid_name(topic_name.as_bytes()) {
            tracing::error!(
                "CHANNEL({}): invalid dead-letter topic {topic_name:?}",
                channel.name
            );
            channel.dead_letters_moved(msgs, false);
            return;
        }
        let topic = self.get_or_create_topic(&topic_name);
        topic.mark_dead_letter();
        let stored = topic.put_messages(msgs.clone());
        if let Err(e) = &stored {
            tracing::error!(
                "CHANNEL({}:{}): failed to move dead letters to {topic_name}: {e}",
                channel.topic_name,
                channel.name
            );
        }
        channel.dead_letters_moved(msgs, stored.is_ok());
    }

    /// Drive in-flight timeouts, deferred messages and dead letters.
    ///
    /// Channels are visited only when one of their deadlines is due: the
    /// task sleeps until the earliest deadline in one heap for the whole
    /// engine, and is woken when an earlier one is set (see
    /// [`super::timers`]). With no messages in flight or deferred it never
    /// wakes, however many topics and channels exist.
    pub async fn run_timers(self: Arc<Self>) {
        self.timers
            .run(self.shutdown.clone(), |channel, now| {
                self.move_dead_letters(channel);
                channel.process_timers(now)
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_asked_for_by_writes_rewrite_the_metadata_at_most_every_interval() {
        assert!(!commit_with_meta(true, Duration::ZERO));
        assert!(!commit_with_meta(
            true,
            META_INTERVAL - Duration::from_millis(1)
        ));
        assert!(commit_with_meta(true, META_INTERVAL));
        // Durable acks: the metadata follows on the ticker only.
        assert!(!commit_with_meta(false, Duration::from_secs(60)));
    }
}
