//! Where a topic's or channel's messages go once its memory queue
//! (`--mem-queue-size`) is full.
//!
//! NSQ spills to a disk queue; ephemeral queues drop instead. The queue
//! engine talks only to this trait, so the disk queue plugs in without
//! touching topics or channels.

use crate::protocol::Message;
use std::collections::VecDeque;

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
    /// Store a message at the tail.
    fn put(&mut self, msg: &Message) -> Result<(), BackendError>;
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
}

/// Overflow kept in memory, without limit, until the disk queue is in place:
/// nothing is ever dropped, at the cost of memory.
#[derive(Default)]
pub struct MemoryOverflow {
    queue: VecDeque<Message>,
}

impl Backend for MemoryOverflow {
    fn put(&mut self, msg: &Message) -> Result<(), BackendError> {
        self.queue.push_back(msg.clone());
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
/// messages are discarded (as NSQ does) and counted.
#[derive(Default)]
pub struct Discard {
    dropped: u64,
}

impl Backend for Discard {
    fn put(&mut self, _msg: &Message) -> Result<(), BackendError> {
        self.dropped += 1;
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

/// A memory queue with its overflow backend: the storage shared by topics
/// and channels.
pub struct Queue {
    memory: VecDeque<Message>,
    capacity: usize,
    backend: Box<dyn Backend>,
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
            prefer_backend: false,
        }
    }

    /// Memory if there is room, otherwise the backend.
    pub fn put(&mut self, msg: Message) -> Result<(), BackendError> {
        if self.memory.len() < self.capacity {
            self.memory.push_back(msg);
            Ok(())
        } else {
            self.backend.put(&msg)
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
