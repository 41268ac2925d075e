//! A topic: the stream publishers write to, copied to every channel.
//!
//! Fan-out happens in [`Topic::put`] itself: while the topic has channels
//! and is not paused, a published batch goes straight into every channel
//! (sharing each body's allocation). Otherwise it waits in the topic's own
//! queue and moves on when the first channel appears or the topic is
//! unpaused. No pump task sits between publisher and channel.

use super::backend::{BackendError, Queue};
use super::channel::Channel;
use super::engine::QueueFactory;
use crate::protocol::message::{now_nanos, IdGenerator};
use crate::protocol::Message;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

struct State {
    channels: BTreeMap<String, Arc<Channel>>,
    /// Messages waiting for a channel (or an unpause), with their deferral.
    queue: Queue,
    /// Deferrals of queued DPUB messages, by ID, applied when they move on.
    deferrals: Vec<(crate::protocol::MessageId, Duration)>,
    ids: IdGenerator,
}

pub struct Topic {
    pub name: String,
    pub ephemeral: bool,
    state: Mutex<State>,
    paused: AtomicBool,
    exiting: AtomicBool,
    pub message_count: AtomicU64,
    pub message_bytes: AtomicU64,
    factory: Arc<QueueFactory>,
}

pub struct TopicCounts {
    pub depth: u64,
    pub backend_depth: u64,
    pub channels: Vec<Arc<Channel>>,
}

impl Topic {
    pub fn new(name: &str, factory: Arc<QueueFactory>) -> Self {
        let ephemeral = crate::protocol::names::is_ephemeral(name);
        Topic {
            name: name.to_string(),
            ephemeral,
            state: Mutex::new(State {
                channels: BTreeMap::new(),
                queue: factory.queue(name, ephemeral),
                deferrals: Vec::new(),
                ids: IdGenerator::new(factory.node_id),
            }),
            paused: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            message_count: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
            factory,
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Relaxed)
    }

    /// Publish bodies (all or none), deferred by `defer` if non-zero.
    pub fn put(
        &self,
        bodies: impl IntoIterator<Item = Bytes>,
        defer: Duration,
    ) -> Result<usize, BackendError> {
        let mut st = self.state.lock();
        if self.is_exiting() {
            return Err(BackendError::Exiting);
        }
        let timestamp = now_nanos();
        let mut bytes = 0u64;
        let msgs: Vec<Message> = bodies
            .into_iter()
            .map(|body| {
                bytes += body.len() as u64;
                Message::new(st.ids.next_id_at(timestamp), timestamp, body)
            })
            .collect();
        let n = msgs.len();
        if !self.is_paused() && !st.channels.is_empty() {
            for ch in st.channels.values() {
                ch.put_from_topic(&msgs, defer)?;
            }
        } else {
            for msg in msgs {
                if !defer.is_zero() {
                    st.deferrals.push((msg.id, defer));
                }
                st.queue.put(msg)?;
            }
        }
        self.message_count.fetch_add(n as u64, Relaxed);
        self.message_bytes.fetch_add(bytes, Relaxed);
        Ok(n)
    }

    /// Move messages held by the topic into its channels, if it has any and
    /// is not paused. Called with the state locked.
    fn drain_into_channels(&self, st: &mut State) {
        if self.is_paused() || st.channels.is_empty() {
            return;
        }
        let deferrals: std::collections::HashMap<_, _> = st.deferrals.drain(..).collect();
        let mut batch = Vec::with_capacity(256);
        loop {
            batch.clear();
            while batch.len() < 256 {
                match st.queue.pop() {
                    Some(m) => batch.push(m),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            for msg in &batch {
                let defer = deferrals.get(&msg.id).copied().unwrap_or_default();
                for ch in st.channels.values() {
                    if let Err(e) = ch.put_from_topic(std::slice::from_ref(msg), defer) {
                        tracing::error!(
                            "topic {}: failed to move a message to channel {}: {e}",
                            self.name,
                            ch.name
                        );
                    }
                }
            }
        }
    }

    /// The channel, created if absent, and whether it was created now.
    pub fn get_or_create_channel(&self, name: &str) -> (Arc<Channel>, bool) {
        let mut st = self.state.lock();
        if let Some(ch) = st.channels.get(name) {
            return (ch.clone(), false);
        }
        let queue_name = format!("{}:{}", self.name, name);
        let ephemeral = crate::protocol::names::is_ephemeral(name);
        let ch = Arc::new(Channel::new(
            &self.name,
            name,
            self.factory.queue(&queue_name, ephemeral),
        ));
        st.channels.insert(name.to_string(), ch.clone());
        self.drain_into_channels(&mut st);
        tracing::info!("TOPIC({}): new channel({})", self.name, name);
        (ch, true)
    }

    pub fn get_channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.state.lock().channels.get(name).cloned()
    }

    /// Delete a channel: its consumers are disconnected and its messages
    /// dropped. Returns false if there was no such channel.
    pub fn delete_channel(&self, name: &str) -> bool {
        let removed = self.state.lock().channels.remove(name);
        match removed {
            Some(ch) => {
                ch.delete();
                tracing::info!("TOPIC({}): deleted channel({})", self.name, name);
                true
            }
            None => false,
        }
    }

    /// Ephemeral cleanup: delete `channel` if it has no consumers left.
    /// Returns whether it was deleted.
    pub fn delete_channel_if_unused(&self, channel: &Arc<Channel>) -> bool {
        let mut st = self.state.lock();
        let same = st
            .channels
            .get(&channel.name)
            .is_some_and(|c| Arc::ptr_eq(c, channel));
        if !same || !channel.mark_exiting_if_unused() {
            return false;
        }
        st.channels.remove(&channel.name);
        drop(st);
        channel.delete();
        tracing::info!(
            "TOPIC({}): deleted ephemeral channel({})",
            self.name,
            channel.name
        );
        true
    }

    pub fn channel_count(&self) -> usize {
        self.state.lock().channels.len()
    }

    pub fn pause(&self) {
        self.paused.store(true, Relaxed);
    }

    pub fn unpause(&self) {
        let mut st = self.state.lock();
        self.paused.store(false, Relaxed);
        self.drain_into_channels(&mut st);
    }

    /// Drop the messages the topic holds (its channels keep theirs).
    pub fn empty(&self) {
        let mut st = self.state.lock();
        st.queue.empty();
        st.deferrals.clear();
    }

    /// Mark deleted and delete every channel.
    pub fn delete(&self) {
        self.exiting.store(true, Relaxed);
        let mut st = self.state.lock();
        for ch in std::mem::take(&mut st.channels).into_values() {
            ch.delete();
        }
        st.queue.empty();
        st.deferrals.clear();
    }

    /// Ephemeral cleanup: mark exiting if no channel is left.
    pub fn mark_exiting_if_unused(&self) -> bool {
        let st = self.state.lock();
        if st.channels.is_empty() {
            self.exiting.store(true, Relaxed);
            true
        } else {
            false
        }
    }

    pub fn counts(&self) -> TopicCounts {
        let st = self.state.lock();
        TopicCounts {
            depth: st.queue.depth(),
            backend_depth: st.queue.backend_depth(),
            channels: st.channels.values().cloned().collect(),
        }
    }

    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.state.lock().channels.values().cloned().collect()
    }
}
