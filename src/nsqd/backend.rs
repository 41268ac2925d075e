//! Where a topic's or channel's messages are stored.
//!
//! A durable queue's messages are on disk first: every message is written
//! (to the page cache) before it is acknowledged, so a crashed process loses
//! nothing, and `--mem-queue-size` (with `--mem-queue-bytes` for their
//! bodies) only bounds a cache of the next messages to deliver, which saves
//! reading back what was just written. Messages leaving the FIFO order
//! (deferred, requeued) go to the queue's [`DeferredStore`] with their due
//! time. An ephemeral queue keeps `--mem-queue-size` messages in memory and
//! drops the rest (as NSQ does). Topics and channels talk only to
//! [`Queue`], so the storage policy stays in this file and the engine's
//! factory.

use super::cache::{Batch, MessageCache};
use crate::diskqueue::deferred::{DeferredStore, Entry, EntryId};
use crate::diskqueue::{DiskQueue, Held, ReadAhead, Removals, SyncJob, SyncState};
use crate::protocol::Message;
use std::collections::VecDeque;
use std::sync::Arc;

/// A read-ahead of a queue on the real file system.
pub type QueueReadAhead = ReadAhead<std::fs::File>;

/// Why a message could not be stored. Reported to publishers as
/// `E_PUB_FAILED PUB failed <reason>` (TCP) or 503 (HTTP).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error("exiting")]
    Exiting,
    #[error("{0}")]
    Write(String),
}

/// Where a memory queue's overflow goes (ephemeral queues: nowhere).
pub trait Backend: Send + 'static {
    /// Store messages at the tail, all or (on error) a prefix of them.
    fn put(&mut self, msgs: &[Message]) -> Result<(), BackendError>;
    /// Take the message at the head, if any.
    fn pop(&mut self) -> Option<Message>;
    /// Messages stored (reported as `backend_depth`).
    fn depth(&self) -> u64;
    /// Drop everything stored.
    fn empty(&mut self);
    /// Messages dropped instead of stored (ephemeral queues only).
    fn dropped(&self) -> u64 {
        0
    }
    /// Remove the stored messages for good (topic or channel deleted).
    fn delete(self: Box<Self>) {}
}

/// Overflow kept in memory, without limit (unit tests, and a data path
/// that cannot be used at all is refused at start-up instead).
#[derive(Default)]
pub struct MemoryOverflow {
    queue: VecDeque<Message>,
}

impl Backend for MemoryOverflow {
    fn put(&mut self, msgs: &[Message]) -> Result<(), BackendError> {
        self.queue.extend(msgs.iter().cloned());
        Ok(())
    }
    fn pop(&mut self) -> Option<Message> {
        self.queue.pop_front()
    }
    fn depth(&self) -> u64 {
        self.queue.len() as u64
    }
    fn empty(&mut self) {
        self.queue.clear();
    }
}

/// The backend of ephemeral topics and channels: past the memory queue,
/// messages are discarded (as NSQ does), counted, and logged as the count
/// passes each power of two (so a flood costs a few log lines, not one per
/// message).
#[derive(Default)]
pub struct Discard {
    name: String,
    dropped: u64,
}

impl Discard {
    pub fn named(name: &str) -> Self {
        Discard {
            name: name.to_string(),
            dropped: 0,
        }
    }
}

impl Backend for Discard {
    fn put(&mut self, msgs: &[Message]) -> Result<(), BackendError> {
        let before = self.dropped;
        self.dropped += msgs.len() as u64;
        if before.checked_ilog2() != self.dropped.checked_ilog2() && !self.name.is_empty() {
            tracing::warn!(
                "{}: ephemeral queue full (--mem-queue-size), {} message(s) dropped so far",
                self.name,
                self.dropped
            );
        }
        Ok(())
    }
    fn pop(&mut self) -> Option<Message> {
        None
    }
    fn depth(&self) -> u64 {
        0
    }
    fn empty(&mut self) {}
    fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Messages on disk, in NSQ's record format (the message frame's payload:
/// timestamp, attempts, ID, body).
pub struct Disk {
    queue: DiskQueue,
    /// Called when `--sync-every` operations have accumulated.
    on_sync_due: Arc<dyn Fn() + Send + Sync>,
    /// `on_sync_due` was called and no sync job was taken since: the
    /// operations until the syncer comes need not call it again (each
    /// call touched the syncer's shared wake-up from every thread).
    sync_asked: bool,
}

impl Disk {
    pub fn new(mut queue: DiskQueue, on_sync_due: Arc<dyn Fn() + Send + Sync>) -> Self {
        queue.defer_removals();
        Disk {
            queue,
            on_sync_due,
            sync_asked: false,
        }
    }

    fn note_ops(&mut self) {
        if !self.sync_asked && self.queue.sync_due() {
            self.sync_asked = true;
            (self.on_sync_due)();
        }
    }

    /// The size check on read makes a bad record unreachable for NSQ's
    /// records; one that still does not decode is logged and skipped.
    fn decode(&self, record: bytes::Bytes) -> Option<Message> {
        let msg = Message::decode(record);
        if msg.is_none() {
            tracing::error!(
                "DISKQUEUE({}): skipping a record that is not a message",
                self.queue.name()
            );
        }
        msg
    }

    /// Append `msgs`; on error, how many were stored and why the rest was not.
    fn put(&mut self, msgs: &[Message]) -> Result<(), (usize, BackendError)> {
        let result = self
            .queue
            .put_with(msgs, |m, buf| m.encode(buf), |m| m.encoded_len());
        self.note_ops();
        result.map_err(|p| (p.written, BackendError::Write(p.error.to_string())))
    }

    fn pop(&mut self) -> Option<Message> {
        loop {
            let record = self.queue.pop()?;
            self.note_ops();
            if let Some(m) = self.decode(record) {
                return Some(m);
            }
        }
    }

    fn pop_tracked(&mut self) -> Option<(Message, Option<Held>)> {
        loop {
            let (record, pos) = self.queue.pop_tracked()?;
            self.note_ops();
            match self.decode(record) {
                Some(m) => return Some((m, Some(pos))),
                None => self.queue.release(pos),
            }
        }
    }

    /// The next unread record is `msg` (held in the cache): move past it.
    fn skip_tracked(&mut self, msg: &Message) -> Option<Held> {
        let held = self.queue.skip_tracked(msg.encoded_len());
        self.note_ops();
        held
    }

    fn release(&mut self, pos: Held) {
        self.queue.release(pos);
    }

    fn depth(&self) -> u64 {
        self.queue.depth()
    }

    fn empty(&mut self) {
        if let Err(e) = self.queue.empty() {
            tracing::error!("DISKQUEUE({}): failed to empty: {e}", self.queue.name());
        }
    }

    fn durability_point(&self) -> Option<(Arc<SyncState>, u64)> {
        Some((self.queue.sync_state().clone(), self.queue.write_seq()))
    }

    fn sync_due(&self) -> bool {
        self.queue.sync_due()
    }

    fn sync_job(&mut self, with_meta: bool) -> Option<SyncJob> {
        self.sync_asked = false;
        self.queue.sync_job(with_meta)
    }

    fn delete(self) {
        let name = self.queue.name().to_string();
        if let Err(e) = self.queue.delete() {
            tracing::error!("DISKQUEUE({name}): failed to delete files: {e}");
        }
    }
}

/// How many of `msgs`, from the first, have bodies that fit in `bytes`.
fn fitting(msgs: &[Message], mut bytes: usize) -> usize {
    msgs.iter()
        .take_while(|m| match bytes.checked_sub(m.body.len()) {
            Some(left) => {
                bytes = left;
                true
            }
            None => false,
        })
        .count()
}

/// The disk writes a publish must wait for before its `OK`
/// (`--sync-every=1`): for each queue written, its sequence number then.
#[derive(Default)]
pub struct Ticket {
    points: Vec<(Arc<SyncState>, u64)>,
}

/// Where a [`Ticket`] stands.
#[derive(Debug, PartialEq, Eq)]
pub enum TicketStatus {
    Durable,
    Pending,
    Failed,
}

impl Ticket {
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn add(&mut self, point: Option<(Arc<SyncState>, u64)>) {
        if let Some(p) = point {
            self.points.push(p);
        }
    }

    pub fn merge(&mut self, other: Ticket) {
        self.points.extend(other.points);
    }

    pub fn status(&self) -> TicketStatus {
        let mut status = TicketStatus::Durable;
        for (state, seq) in &self.points {
            if state.synced() >= *seq {
                continue;
            }
            if state.failed() >= *seq {
                return TicketStatus::Failed;
            }
            status = TicketStatus::Pending;
        }
        status
    }
}

/// A topic's or channel's queue: see the module's design notes.
pub struct Queue {
    store: Store,
    /// Collect durability tickets on writes (`--sync-every=1`).
    durable_acks: bool,
}

enum Store {
    /// Memory up to `capacity`, then `overflow` (ephemeral queues drop; the
    /// unit tests' and a disk-less engine's keep in memory).
    Memory {
        memory: MessageCache,
        capacity: usize,
        overflow: Box<dyn Backend>,
        /// Alternates the source when both hold messages, so that neither
        /// is starved under steady load.
        prefer_backend: bool,
    },
    /// Every message on disk; `cache` holds the next unread ones (always a
    /// prefix of the disk's unread records), at most `capacity` of them
    /// and at most `capacity_bytes` of bodies.
    Disk {
        disk: Box<Disk>,
        cache: MessageCache,
        capacity: usize,
        capacity_bytes: usize,
        deferred: Option<DeferredStore>,
    },
}

impl Queue {
    /// A memory queue of `capacity` with `backend` taking the overflow.
    pub fn new(capacity: usize, backend: Box<dyn Backend>) -> Self {
        Queue {
            store: Store::Memory {
                memory: MessageCache::default(),
                capacity,
                overflow: backend,
                prefer_backend: false,
            },
            durable_acks: false,
        }
    }

    /// A durable queue on `disk`, caching up to `capacity` messages, with
    /// a store for deferred messages (channels) or none (topics). What
    /// moved from the queue to the store is not delivered from the queue
    /// again.
    pub fn durable(mut disk: Disk, capacity: usize, deferred: Option<DeferredStore>) -> Self {
        if let Some(store) = &deferred {
            disk.queue.skip_positions(store.sources());
        }
        Queue {
            store: Store::Disk {
                disk: Box::new(disk),
                cache: MessageCache::default(),
                capacity,
                capacity_bytes: usize::MAX,
                deferred,
            },
            durable_acks: false,
        }
    }

    /// Bound a durable queue's cache by its bodies' total length too
    /// (`--mem-queue-bytes`), so that large messages cannot fill memory
    /// `--mem-queue-size` at a time. Past it they are read back from disk.
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        if let Store::Disk { capacity_bytes, .. } = &mut self.store {
            *capacity_bytes = bytes;
        }
        self
    }

    /// The stand-in left behind once a queue's storage is deleted or
    /// persisted: holds nothing, accepts nothing.
    pub fn closed() -> Self {
        Queue::new(0, Box::<Discard>::default())
    }

    /// Make writes report what they must wait for to be durable.
    pub fn with_durable_acks(mut self, on: bool) -> Self {
        self.durable_acks = on;
        self
    }

    /// Whether messages here survive the process.
    pub fn is_durable(&self) -> bool {
        matches!(self.store, Store::Disk { .. })
    }

    /// Store `msgs` at the tail, all or (on error) a prefix of them.
    /// Returns what must be synced before the write can be acknowledged.
    pub fn put_all(&mut self, msgs: &[Message]) -> Result<Ticket, BackendError> {
        self.put_batch(&mut Batch::of(msgs))
    }

    /// As [`put_all`](Self::put_all), for a batch that other queues may
    /// take too (see `cache.rs`).
    pub fn put_batch(&mut self, batch: &mut Batch) -> Result<Ticket, BackendError> {
        let msgs = batch.msgs();
        let mut ticket = Ticket::default();
        match &mut self.store {
            Store::Memory {
                memory,
                capacity,
                overflow,
                ..
            } => {
                let room = capacity.saturating_sub(memory.len()).min(msgs.len());
                memory.extend(batch, room);
                if room < msgs.len() {
                    overflow.put(&msgs[room..])?;
                }
            }
            Store::Disk {
                disk,
                cache,
                capacity,
                capacity_bytes,
                ..
            } => {
                // The cache may take these only if it holds every unread
                // record so far (it stays a prefix of what is on disk).
                let aligned = cache.len() as u64 == disk.depth();
                let written = disk.put(msgs);
                let stored = match &written {
                    Ok(()) => msgs.len(),
                    Err((n, _)) => *n,
                };
                if aligned {
                    let room = capacity.saturating_sub(cache.len()).min(stored);
                    let bytes_left = capacity_bytes.saturating_sub(cache.body_bytes());
                    cache.extend(batch, fitting(&msgs[..room], bytes_left));
                }
                if stored > 0 && self.durable_acks {
                    ticket.add(disk.durability_point());
                }
                written.map_err(|(_, e)| e)?;
            }
        }
        Ok(ticket)
    }

    /// One message, as [`put_all`](Self::put_all).
    pub fn put(&mut self, msg: Message) -> Result<Ticket, BackendError> {
        self.put_all(std::slice::from_ref(&msg))
    }

    /// The message at the head, let go of at once (a topic handing its
    /// backlog to its channels).
    pub fn pop(&mut self) -> Option<Message> {
        match &mut self.store {
            Store::Memory {
                memory,
                overflow,
                prefer_backend,
                ..
            } => {
                if overflow.depth() == 0 {
                    return memory.pop_front();
                }
                *prefer_backend = !*prefer_backend;
                if *prefer_backend || memory.is_empty() {
                    overflow.pop().or_else(|| memory.pop_front())
                } else {
                    memory.pop_front()
                }
            }
            Store::Disk { disk, cache, .. } => match cache.pop_front() {
                Some(msg) => {
                    if let Some(held) = disk.skip_tracked(&msg) {
                        disk.release(held);
                    }
                    Some(msg)
                }
                None => disk.pop(),
            },
        }
    }

    /// As [`pop`](Self::pop), for a message about to be delivered: one from
    /// disk stays there (its position returned) until [`release`](Self::release)d.
    pub fn pop_tracked(&mut self) -> Option<(Message, Option<Held>)> {
        match &mut self.store {
            Store::Memory { .. } => self.pop().map(|m| (m, None)),
            Store::Disk { disk, cache, .. } => match cache.pop_front() {
                Some(msg) => {
                    let held = disk.skip_tracked(&msg);
                    Some((msg, held))
                }
                None => disk.pop_tracked(),
            },
        }
    }

    pub fn release(&mut self, pos: Held) {
        if let Store::Disk { disk, .. } = &mut self.store {
            disk.release(pos);
        }
    }

    /// The next bytes on disk, to read without the owner's lock, if
    /// delivery is reading from disk and its buffer runs low (see
    /// `diskqueue/read_ahead.rs`).
    pub fn plan_read_ahead(&mut self) -> Option<QueueReadAhead> {
        match &mut self.store {
            Store::Disk { disk, cache, .. } if cache.is_empty() => disk.queue.plan_read_ahead(),
            _ => None,
        }
    }

    /// What a planned read-ahead read (see [`plan_read_ahead`](Self::plan_read_ahead)).
    pub fn finish_read_ahead(&mut self, ahead: QueueReadAhead) {
        if let Store::Disk { disk, .. } = &mut self.store {
            disk.queue.finish_read_ahead(ahead);
        }
    }

    /// Segments read to their end and still to be removed: the owner does
    /// it after letting go of its lock (see `DiskQueue::defer_removals`).
    pub fn take_removals(&mut self) -> Option<Removals> {
        match &mut self.store {
            Store::Disk { disk, .. } => Some(disk.queue.take_removals()).filter(|r| !r.is_empty()),
            Store::Memory { .. } => None,
        }
    }

    /// Up to `n` of the next messages, changing nothing (`/channel/peek`).
    pub fn peek(&self, n: usize) -> Vec<Message> {
        match &self.store {
            // Ephemeral: what memory holds (the overflow is dropped).
            Store::Memory { memory, .. } => memory.iter().take(n).collect(),
            Store::Disk { disk, cache, .. } => {
                let mut out: Vec<Message> = cache.iter().take(n).collect();
                if out.len() < n {
                    out.extend(
                        disk.queue
                            .peek(cache.len(), n - out.len())
                            .into_iter()
                            .filter_map(Message::decode),
                    );
                }
                out
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.depth() == 0
    }

    /// Every message queued, as `/stats` reports `depth`.
    pub fn depth(&self) -> u64 {
        match &self.store {
            Store::Memory {
                memory, overflow, ..
            } => memory.len() as u64 + overflow.depth(),
            Store::Disk { disk, .. } => disk.depth(),
        }
    }

    /// The messages not in memory (`backend_depth`).
    pub fn backend_depth(&self) -> u64 {
        match &self.store {
            Store::Memory { overflow, .. } => overflow.depth(),
            Store::Disk { disk, cache, .. } => disk.depth() - cache.len() as u64,
        }
    }

    pub fn dropped(&self) -> u64 {
        match &self.store {
            Store::Memory { overflow, .. } => overflow.dropped(),
            Store::Disk { .. } => 0,
        }
    }

    /// Drop every queued and deferred message.
    pub fn empty(&mut self) {
        match &mut self.store {
            Store::Memory {
                memory, overflow, ..
            } => {
                memory.clear();
                overflow.empty();
            }
            Store::Disk {
                disk,
                cache,
                deferred,
                ..
            } => {
                cache.clear();
                disk.empty();
                if let Some(d) = deferred {
                    if let Err(e) = d.clear() {
                        tracing::error!("failed to empty a deferred store: {e}");
                    }
                }
            }
        }
    }

    /// Keep `msg` out of the FIFO order until `due_ns` (Unix ns): in the
    /// deferred store of a durable channel (`Some` entry), nowhere for the
    /// others (`None`: it lives in memory only). The ticket covers the
    /// write for `--sync-every=1`.
    pub fn defer(
        &mut self,
        msg: &Message,
        due_ns: i64,
        from: Option<Held>,
    ) -> Result<(Option<EntryId>, Ticket), BackendError> {
        let Store::Disk {
            disk,
            deferred: Some(store),
            ..
        } = &mut self.store
        else {
            return Ok((None, Ticket::default()));
        };
        let source = from.and_then(|h| disk.queue.held_position(h));
        let mut record = Vec::with_capacity(msg.encoded_len());
        msg.encode(&mut record);
        let id = store
            .add(due_ns, &record, source)
            .map_err(|e| BackendError::Write(e.to_string()))?;
        let mut ticket = Ticket::default();
        if self.durable_acks {
            ticket.add(Some((store.sync_state().clone(), store.write_seq())));
        }
        Ok((Some(id), ticket))
    }

    /// A deferred entry is done with (finished, or deferred anew).
    pub fn forget_deferred(&mut self, id: EntryId) {
        if let Store::Disk {
            disk,
            deferred: Some(store),
            ..
        } = &mut self.store
        {
            if let Err(e) = store.remove(id, disk.queue.resume_position()) {
                tracing::error!("failed to update a deferred store: {e}");
            }
        }
    }

    /// What the deferred store held when opened: (entry, due, message).
    pub fn recovered_deferred(&mut self, entries: Vec<Entry>) -> Vec<(EntryId, i64, Message)> {
        entries
            .into_iter()
            .filter_map(|e| match Message::decode(e.record) {
                Some(m) => Some((e.id, e.due_ns, m)),
                None => {
                    tracing::error!("skipping a deferred record that is not a message");
                    self.forget_deferred(e.id);
                    None
                }
            })
            .collect()
    }

    /// Shutdown: `extra` (in-flight messages, and deferred ones in a queue
    /// without a deferred store) goes to the tail, what memory holds of an
    /// ephemeral queue is dropped, and everything is synced.
    ///
    /// `held` are the positions of tracked messages among `extra`, `stored`
    /// the deferred-store entries among them: once those are written again,
    /// their old copies are let go. Returns the first error.
    pub fn persist(
        &mut self,
        extra: impl IntoIterator<Item = Message>,
        held: impl IntoIterator<Item = Held>,
        stored: impl IntoIterator<Item = EntryId>,
    ) -> Result<(), BackendError> {
        let extra: Vec<Message> = extra.into_iter().collect();
        let result = match &mut self.store {
            Store::Memory { .. } => Ok(()),
            Store::Disk { disk, cache, .. } => {
                // The cache is a copy of what is on disk: nothing to write.
                cache.clear();
                let r = if extra.is_empty() {
                    Ok(())
                } else {
                    disk.put(&extra).map_err(|(_, e)| e)
                };
                if r.is_ok() {
                    for pos in held {
                        disk.release(pos);
                    }
                }
                r
            }
        };
        if result.is_ok() {
            // Those came from the deferred store: now in the queue instead.
            for e in stored {
                self.forget_deferred(e);
            }
        }
        for job in self.sync_jobs(true) {
            job.run().map_err(|e| BackendError::Write(e.to_string()))?;
        }
        result
    }

    pub fn sync_due(&self) -> bool {
        match &self.store {
            Store::Disk { disk, .. } => disk.sync_due(),
            Store::Memory { .. } => false,
        }
    }

    /// The fsyncs (and metadata write) this queue needs, to run outside
    /// its owner's lock.
    pub fn sync_jobs(&mut self, with_meta: bool) -> Vec<SyncJob> {
        match &mut self.store {
            Store::Memory { .. } => Vec::new(),
            Store::Disk { disk, deferred, .. } => {
                let mut jobs: Vec<SyncJob> = disk.sync_job(with_meta).into_iter().collect();
                if let Some(d) = deferred {
                    jobs.extend(d.sync_job());
                }
                // One job: a message moved to the store is on disk there
                // before the queue's metadata says it left the queue.
                SyncJob::merge(jobs).into_iter().collect()
            }
        }
    }

    /// Remove the queue's files (topic or channel deleted).
    pub fn delete(self) {
        match self.store {
            Store::Memory { overflow, .. } => overflow.delete(),
            Store::Disk { disk, deferred, .. } => {
                disk.delete();
                if let Some(d) = deferred {
                    if let Err(e) = d.delete() {
                        tracing::error!("failed to delete a deferred store: {e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageId;
    use bytes::Bytes;

    fn msg(i: u64) -> Message {
        Message::new(MessageId(i), 0, Bytes::from_static(b"x"))
    }

    #[test]
    fn spills_past_capacity_and_loses_nothing() {
        let mut q = Queue::new(2, Box::<MemoryOverflow>::default());
        for i in 0..5 {
            q.put(msg(i)).unwrap();
        }
        assert_eq!(q.depth(), 5);
        assert_eq!(q.backend_depth(), 3);
        let mut got: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|m| m.id.0).collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_due_sync_is_asked_for_once_until_the_syncer_takes_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::diskqueue::Config {
            max_bytes_per_file: 1 << 20,
            min_record_size: 1,
            max_record_size: 1 << 20,
            sync_every: 2,
        };
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let mut disk = Disk::new(
            DiskQueue::open(dir.path(), "t", cfg).unwrap(),
            Arc::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        );
        for i in 0..10 {
            disk.put(&[msg(i)]).unwrap();
        }
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        // The syncer took the job: the next due sync is asked for again.
        disk.sync_job(true).unwrap().run().unwrap();
        for i in 10..20 {
            disk.put(&[msg(i)]).unwrap();
            assert!(disk.pop().is_some());
        }
        assert_eq!(asked.load(Ordering::Relaxed), 2);
    }

    fn sized(i: u64, len: usize) -> Message {
        Message::new(MessageId(i), 0, Bytes::from(vec![b'x'; len]))
    }

    fn durable(dir: &std::path::Path) -> Disk {
        let cfg = crate::diskqueue::Config {
            max_bytes_per_file: 1 << 20,
            min_record_size: 1,
            max_record_size: 1 << 20,
            sync_every: 1000,
        };
        Disk::new(DiskQueue::open(dir, "t", cfg).unwrap(), Arc::new(|| {}))
    }

    #[test]
    fn a_durable_cache_holds_no_more_body_bytes_than_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::durable(durable(dir.path()), 100, None).with_cache_bytes(10);
        let batch: Vec<Message> = (0..5).map(|i| sized(i, 4)).collect();
        q.put_all(&batch).unwrap();
        assert_eq!(
            (q.depth(), q.backend_depth()),
            (5, 3),
            "two 4-byte bodies fit"
        );
        // Behind messages only on disk, later ones are not cached either,
        // however small: the cache stays a prefix of the queue.
        q.put(sized(5, 1)).unwrap();
        assert_eq!((q.depth(), q.backend_depth()), (6, 4));
        let ids: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|m| m.id.0).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        // Drained, the cache takes messages again, and never one larger
        // than the whole allowance.
        q.put_all(&[sized(6, 10), sized(7, 1)]).unwrap();
        assert_eq!(q.backend_depth(), 1);
        assert_eq!(q.pop().map(|m| m.id.0), Some(6));
        q.put(sized(8, 11)).unwrap();
        assert_eq!(q.backend_depth(), 2);
        let ids: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|m| m.id.0).collect();
        assert_eq!(ids, vec![7, 8]);
    }

    #[test]
    fn ephemeral_queues_count_messages_not_bytes() {
        // --mem-queue-bytes applies to caches of what is on disk; for an
        // ephemeral queue it would decide what is dropped, which NSQ
        // decides by count alone.
        let mut q = Queue::new(3, Box::<Discard>::default()).with_cache_bytes(1);
        q.put_all(&[sized(0, 100), sized(1, 100), sized(2, 100)])
            .unwrap();
        assert_eq!((q.depth(), q.dropped()), (3, 0));
    }

    #[test]
    fn ephemeral_overflow_is_dropped_and_counted() {
        let mut q = Queue::new(1, Box::<Discard>::default());
        for i in 0..3 {
            q.put(msg(i)).unwrap();
        }
        assert_eq!(q.depth(), 1);
        assert_eq!(q.dropped(), 2);
    }
}
