//! Where a topic's or channel's messages go once its memory queue
//! (`--mem-queue-size`) is full.
//!
//! Durable queues spill to a [`DiskQueue`]; ephemeral ones drop instead (as
//! NSQ does). Topics and channels talk only to [`Queue`], so the storage
//! policy stays in this file and the engine's factory.

use crate::diskqueue::{DiskQueue, Held, SyncJob, SyncState};
use crate::protocol::Message;
use std::collections::VecDeque;
use std::sync::Arc;

/// Why a message could not be stored. Reported to publishers as
/// `E_PUB_FAILED PUB failed <reason>` (TCP) or 503 (HTTP).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error("exiting")]
    Exiting,
    #[error("{0}")]
    Write(String),
}

/// Overflow storage behind a memory queue.
pub trait Backend: Send + 'static {
    /// Store messages at the tail, all or (on error) a prefix of them.
    fn put(&mut self, msgs: &[Message]) -> Result<(), BackendError>;
    /// Take the message at the head, if any.
    fn pop(&mut self) -> Option<Message>;
    /// Take the message at the head and keep it stored until released, so
    /// that a crash before then delivers it again (disk only).
    fn pop_tracked(&mut self) -> Option<(Message, Option<Held>)> {
        self.pop().map(|m| (m, None))
    }
    /// A message taken with `pop_tracked` is finished or stored again.
    fn release(&mut self, _pos: Held) {}
    /// Messages stored (reported as `backend_depth`).
    fn depth(&self) -> u64;
    /// Drop everything stored.
    fn empty(&mut self);
    /// Messages dropped instead of stored (ephemeral queues only).
    fn dropped(&self) -> u64 {
        0
    }
    /// Where durability of the writes so far can be awaited (disk only).
    fn durability_point(&self) -> Option<(Arc<SyncState>, u64)> {
        None
    }
    /// Whether `--sync-every` operations are waiting for a sync.
    fn sync_due(&self) -> bool {
        false
    }
    /// The pending sync, to run outside the owner's lock.
    fn sync_job(&mut self, _with_meta: bool) -> Option<SyncJob> {
        None
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
}

impl Disk {
    pub fn new(queue: DiskQueue, on_sync_due: Arc<dyn Fn() + Send + Sync>) -> Self {
        Disk { queue, on_sync_due }
    }

    fn note_ops(&self) {
        if self.queue.sync_due() {
            (self.on_sync_due)();
        }
    }
}

impl Disk {
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
}

impl Backend for Disk {
    fn put(&mut self, msgs: &[Message]) -> Result<(), BackendError> {
        let result = self
            .queue
            .put_with(msgs, |m, buf| m.encode(buf), |m| m.encoded_len());
        self.note_ops();
        result.map_err(|e| BackendError::Write(e.to_string()))
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
        self.queue.sync_job(with_meta)
    }

    fn delete(self: Box<Self>) {
        let name = self.queue.name().to_string();
        if let Err(e) = self.queue.delete() {
            tracing::error!("DISKQUEUE({name}): failed to delete files: {e}");
        }
    }
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

/// A memory queue with its overflow backend: the storage shared by topics
/// and channels.
pub struct Queue {
    memory: VecDeque<Message>,
    capacity: usize,
    backend: Box<dyn Backend>,
    /// Collect durability tickets on writes (`--sync-every=1`).
    durable_acks: bool,
    /// Alternates the source when both hold messages, so that neither the
    /// memory queue nor the backend is starved under steady load.
    prefer_backend: bool,
}

impl Queue {
    pub fn new(capacity: usize, backend: Box<dyn Backend>) -> Self {
        Queue {
            memory: VecDeque::new(),
            capacity,
            backend,
            durable_acks: false,
            prefer_backend: false,
        }
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

    /// Memory while there is room, the rest to the backend in one write.
    /// Returns what must be synced before the write can be acknowledged.
    pub fn put_all(&mut self, msgs: &[Message]) -> Result<Ticket, BackendError> {
        let room = self
            .capacity
            .saturating_sub(self.memory.len())
            .min(msgs.len());
        self.memory.extend(msgs[..room].iter().cloned());
        let mut ticket = Ticket::default();
        if room < msgs.len() {
            self.backend.put(&msgs[room..])?;
            if self.durable_acks {
                ticket.add(self.backend.durability_point());
            }
        }
        Ok(ticket)
    }

    /// One message, as [`put_all`](Self::put_all).
    pub fn put(&mut self, msg: Message) -> Result<Ticket, BackendError> {
        if self.memory.len() < self.capacity {
            self.memory.push_back(msg);
            Ok(Ticket::default())
        } else {
            self.put_all(std::slice::from_ref(&msg))
        }
    }

    pub fn pop(&mut self) -> Option<Message> {
        if self.backend.depth() == 0 {
            return self.memory.pop_front();
        }
        self.prefer_backend = !self.prefer_backend;
        if self.prefer_backend || self.memory.is_empty() {
            self.backend.pop().or_else(|| self.memory.pop_front())
        } else {
            self.memory.pop_front()
        }
    }

    /// As [`pop`](Self::pop), for a message about to be delivered: one from
    /// disk stays there (its position returned) until [`release`](Self::release)d.
    pub fn pop_tracked(&mut self) -> Option<(Message, Option<Held>)> {
        if self.backend.depth() == 0 {
            return self.memory.pop_front().map(|m| (m, None));
        }
        self.prefer_backend = !self.prefer_backend;
        if self.prefer_backend || self.memory.is_empty() {
            self.backend
                .pop_tracked()
                .or_else(|| self.memory.pop_front().map(|m| (m, None)))
        } else {
            self.memory.pop_front().map(|m| (m, None))
        }
    }

    pub fn release(&mut self, pos: Held) {
        self.backend.release(pos);
    }

    /// Whether the next [`put`](Self::put) goes to the backend.
    pub fn memory_full(&self) -> bool {
        self.memory.len() >= self.capacity
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.backend.depth() == 0
    }

    /// Memory plus backend, as `/stats` reports `depth`.
    pub fn depth(&self) -> u64 {
        self.memory.len() as u64 + self.backend.depth()
    }

    pub fn backend_depth(&self) -> u64 {
        self.backend.depth()
    }

    pub fn dropped(&self) -> u64 {
        self.backend.dropped()
    }

    pub fn empty(&mut self) {
        self.memory.clear();
        self.memory.shrink_to(1024);
        self.backend.empty();
    }

    /// Shutdown: the memory queue and `extra` (in-flight, deferred) go to
    /// the backend, which is then synced. Ephemeral backends drop them.
    ///
    /// `held` are the positions of tracked messages among `extra`: once
    /// those are stored again, their old copies are released.
    pub fn persist(
        &mut self,
        extra: impl IntoIterator<Item = Message>,
        held: impl IntoIterator<Item = Held>,
    ) -> Result<(), BackendError> {
        let mut all: Vec<Message> = self.memory.drain(..).collect();
        all.extend(extra);
        let result = if all.is_empty() {
            Ok(())
        } else {
            self.backend.put(&all)
        };
        if result.is_ok() {
            for pos in held {
                self.backend.release(pos);
            }
        }
        if let Some(job) = self.backend.sync_job(true) {
            job.run().map_err(|e| BackendError::Write(e.to_string()))?;
        }
        result
    }

    pub fn sync_due(&self) -> bool {
        self.backend.sync_due()
    }

    pub fn sync_job(&mut self, with_meta: bool) -> Option<SyncJob> {
        self.backend.sync_job(with_meta)
    }

    /// Remove the queue's files (topic or channel deleted).
    pub fn delete(self) {
        self.backend.delete();
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
    fn ephemeral_overflow_is_dropped_and_counted() {
        let mut q = Queue::new(1, Box::<Discard>::default());
        for i in 0..3 {
            q.put(msg(i)).unwrap();
        }
        assert_eq!(q.depth(), 1);
        assert_eq!(q.dropped(), 2);
    }
}
