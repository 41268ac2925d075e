//! Where each topic's and channel's queue comes from: the storage policy
//! (memory size, what overflows where, which queues are durable) decided in
//! one place, so that topics and the engine need not know each other.

use super::backend::{Backend, BackendError, Discard, Disk, MemoryOverflow, Queue};
use crate::diskqueue::deferred::{DeferredStore, EntryId};
use crate::diskqueue::{self, DiskQueue};
use crate::protocol::Message;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

/// Where durable queues live and how they sync.
pub(super) struct DiskSettings {
    pub dir: PathBuf,
    pub cfg: diskqueue::Config,
    /// `--sync-every=1`: a publish is acknowledged only once on disk.
    pub durable_acks: bool,
    /// `--mem-queue-bytes`: body bytes each queue's cache may hold.
    pub cache_bytes: usize,
}

/// Builds the queue behind each topic and channel, so that the storage
/// policy (memory size, what overflows where) is decided in one place.
pub struct QueueFactory {
    pub mem_queue_size: usize,
    pub node_id: u16,
    /// `--max-attempts`, for the channels it makes queues for.
    pub max_attempts: u16,
    /// `None`: no data path (an engine built for tests); overflow stays in memory.
    pub(super) disk: Option<DiskSettings>,
    /// Wakes the syncer: `--sync-every` operations accumulated somewhere.
    pub(super) sync_wake: Arc<Notify>,
}

/// A channel's queue and the deferred messages its store still held.
pub struct ChannelQueue {
    pub queue: Queue,
    pub deferred: Vec<(EntryId, i64, Message)>,
}

impl QueueFactory {
    /// A topic's queue.
    pub fn queue(&self, queue_name: &str, ephemeral: bool) -> Queue {
        self.open(queue_name, ephemeral, false).queue
    }

    /// A channel's queue, with a store for its deferred messages.
    pub fn channel_queue(&self, queue_name: &str, ephemeral: bool) -> ChannelQueue {
        self.open(queue_name, ephemeral, true)
    }

    fn open(&self, queue_name: &str, ephemeral: bool, with_deferred: bool) -> ChannelQueue {
        let memory = |backend: Box<dyn Backend>| ChannelQueue {
            queue: Queue::new(self.mem_queue_size, backend),
            deferred: Vec::new(),
        };
        let disk = match (&self.disk, ephemeral) {
            (_, true) => return memory(Box::new(Discard::named(queue_name))),
            (None, false) => return memory(Box::<MemoryOverflow>::default()),
            (Some(disk), false) => disk,
        };
        let opened = DiskQueue::open(&disk.dir, queue_name, disk.cfg.clone()).and_then(|q| {
            let store = if with_deferred {
                Some(DeferredStore::open(&disk.dir, queue_name)?)
            } else {
                None
            };
            Ok((q, store))
        });
        match opened {
            Ok((q, store)) => {
                let wake = self.sync_wake.clone();
                let backend = Disk::new(q, Arc::new(move || wake.notify_one()));
                let (store, entries) = match store {
                    Some((s, e)) => (Some(s), e),
                    None => (None, Vec::new()),
                };
                let mut queue = Queue::durable(backend, self.mem_queue_size, store)
                    .with_durable_acks(disk.durable_acks)
                    .with_cache_bytes(disk.cache_bytes);
                if !queue.is_empty() {
                    tracing::info!(
                        "QUEUE({queue_name}): recovered {} message(s) from disk",
                        queue.depth()
                    );
                }
                let deferred = queue.recovered_deferred(entries);
                ChannelQueue { queue, deferred }
            }
            Err(e) => {
                let reason = format!(
                    "cannot open disk queue {queue_name} in {}: {e}",
                    disk.dir.display()
                );
                tracing::error!("{reason}");
                // Nothing is acknowledged that is not stored.
                ChannelQueue {
                    queue: Queue::new(0, Box::new(Unavailable(reason))),
                    deferred: Vec::new(),
                }
            }
        }
    }
}

/// The backend of a durable queue whose files could not be opened: every
/// write fails, so nothing is acknowledged that is not stored.
struct Unavailable(String);

impl Backend for Unavailable {
    fn put(&mut self, _msgs: &[Message]) -> Result<(), BackendError> {
        Err(BackendError::Write(self.0.clone()))
    }
    fn pop(&mut self) -> Option<Message> {
        None
    }
    fn depth(&self) -> u64 {
        0
    }
    fn empty(&mut self) {}
}
