//! Where each topic's and channel's queue comes from: the storage policy
//! (memory size, what overflows where, which queues are durable) decided in
//! one place, so that topics and the engine need not know each other.

use super::backend::{Backend, BackendError, Discard, Disk, MemoryOverflow, Queue};
use crate::diskqueue::{self, DiskQueue};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

/// Where durable queues live and how they sync.
pub(super) struct DiskSettings {
    pub dir: PathBuf,
    pub cfg: diskqueue::Config,
    /// `--sync-every=1`: a publish is acknowledged only once on disk.
    pub durable_acks: bool,
}

/// Builds the queue behind each topic and channel, so that the storage
/// policy (memory size, what overflows where) is decided in one place.
pub struct QueueFactory {
    pub mem_queue_size: usize,
    pub node_id: u16,
    /// `None`: no data path (an engine built for tests); overflow stays in memory.
    pub(super) disk: Option<DiskSettings>,
    /// Wakes the syncer: `--sync-every` operations accumulated somewhere.
    pub(super) sync_wake: Arc<Notify>,
}

impl QueueFactory {
    pub fn queue(&self, queue_name: &str, ephemeral: bool) -> Queue {
        let backend: Box<dyn Backend> = match (&self.disk, ephemeral) {
            (_, true) => Box::new(Discard::named(queue_name)),
            (None, false) => Box::<MemoryOverflow>::default(),
            (Some(disk), false) => match DiskQueue::open(&disk.dir, queue_name, disk.cfg.clone()) {
                Ok(q) => {
                    let wake = self.sync_wake.clone();
                    let backend = Disk::new(q, Arc::new(move || wake.notify_one()));
                    return Queue::new(self.mem_queue_size, Box::new(backend))
                        .with_durable_acks(disk.durable_acks);
                }
                Err(e) => {
                    let reason = format!(
                        "cannot open disk queue {queue_name} in {}: {e}",
                        disk.dir.display()
                    );
                    tracing::error!("{reason}");
                    Box::new(Unavailable(reason))
                }
            },
        };
        Queue::new(self.mem_queue_size, backend)
    }
}

/// The backend of a durable queue whose files could not be opened: every
/// write past the memory queue fails, so nothing is acknowledged that is
/// not stored.
struct Unavailable(String);

impl Backend for Unavailable {
    fn put(&mut self, _msgs: &[crate::protocol::Message]) -> Result<(), BackendError> {
        Err(BackendError::Write(self.0.clone()))
    }
    fn pop(&mut self) -> Option<crate::protocol::Message> {
        None
    }
    fn depth(&self) -> u64 {
        0
    }
    fn empty(&mut self) {}
}
