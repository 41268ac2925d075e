//! A topic: the stream publishers write to, copied to every channel.
//!
//! While the topic has channels, is not paused and holds no backlog, a
//! published batch goes straight into every channel in [`Topic::put`]
//! (sharing each body's allocation, or one copy of it in the topic's arena
//! once the channels' memory queues are deep, see `cache.rs`): no task
//! between publisher and channel.
//! Otherwise messages wait in the topic's own queue (memory, then disk), and
//! a pump task moves them on in bounded batches once there is somewhere to
//! go, releasing the lock between batches so publishers and new consumers
//! are never stalled behind a large backlog. New publishes queue behind the
//! backlog, so a topic's order of arrival is kept.

use super::backend::{BackendError, Queue, Ticket};
use super::cache::{Arena, Batch};
use super::channel::Channel;
use super::locked::{Locked, OwnsQueue};
use super::queues::QueueFactory;
use super::timers::Timers;
use crate::diskqueue::SyncJob;
use crate::protocol::message::{now_nanos, IdGenerator};
use crate::protocol::{Message, MessageId};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Messages moved per pump step: large enough to amortise the locks,
/// small enough that a publisher waits at most one step.
const PUMP_BATCH: usize = 1024;

struct State {
    channels: BTreeMap<String, Arc<Channel>>,
    /// Messages waiting for a channel (or an unpause, or the pump).
    queue: Queue,
    /// Deferrals of queued DPUB messages, by ID, applied when they move on.
    deferrals: HashMap<MessageId, Duration>,
    ids: IdGenerator,
    /// Where a publish's bodies are copied once for the memory queues
    /// that keep them long (see `cache.rs`).
    arena: Arena,
    /// A pump task is moving the queue into the channels.
    pumping: bool,
    /// Channels deleted here: channel pre-creation, whose lookupd query
    /// may answer late, must not bring them back.
    deleted_channels: std::collections::HashSet<String>,
}

impl OwnsQueue for State {
    fn queue(&mut self) -> &mut Queue {
        &mut self.queue
    }
}

pub struct Topic {
    pub name: String,
    pub ephemeral: bool,
    state: std::sync::Mutex<State>,
    paused: AtomicBool,
    exiting: AtomicBool,
    /// See [`Topic::mark_dead_letter`].
    dead_letter: AtomicBool,
    pub message_count: AtomicU64,
    pub message_bytes: AtomicU64,
    factory: Arc<QueueFactory>,
    /// The engine's timer heap, which every channel is attached to.
    timers: Arc<Timers>,
    /// For the pump task, which needs an owned handle.
    me: Weak<Topic>,
}

pub struct TopicCounts {
    pub depth: u64,
    pub backend_depth: u64,
    pub channels: Vec<Arc<Channel>>,
}

impl Topic {
    pub fn new(name: &str, factory: Arc<QueueFactory>, timers: Arc<Timers>) -> Arc<Self> {
        let ephemeral = crate::protocol::names::is_ephemeral(name);
        Arc::new_cyclic(|me| Topic {
            name: name.to_string(),
            ephemeral,
            state: std::sync::Mutex::new(State {
                channels: BTreeMap::new(),
                queue: factory.queue(name, ephemeral),
                deferrals: HashMap::new(),
                ids: IdGenerator::new(factory.node_id),
                arena: Arena::default(),
                pumping: false,
                deleted_channels: Default::default(),
            }),
            paused: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            dead_letter: AtomicBool::new(name.ends_with(super::channel::DEAD_LETTER_SUFFIX)),
            message_count: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
            factory,
            timers,
            me: me.clone(),
        })
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    /// A std mutex, as the channel's (see `Channel::lock_state`):
    /// publishers on several threads write under it.
    fn lock_state(&self) -> Locked<'_, State> {
        Locked::new(&self.state)
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Relaxed)
    }

    /// A topic dead letters go to: its messages arrive having used their
    /// attempts, so `--max-attempts` does not apply to its channels (a
    /// channel's own limit still does).
    pub fn mark_dead_letter(&self) {
        if !self.dead_letter.swap(true, Relaxed) {
            for ch in self.channels() {
                ch.set_default_max_attempts(0);
            }
        }
    }

    fn default_max_attempts(&self) -> u16 {
        if self.dead_letter.load(Relaxed) {
            0
        } else {
            self.factory.max_attempts
        }
    }

    /// Publish bodies (all or none, short of a disk failure part-way),
    /// deferred by `defer` if non-zero. Returns how many were published and
    /// the disk writes to wait for before acknowledging (`--sync-every=1`).
    pub fn put(
        &self,
        bodies: impl IntoIterator<Item = Bytes>,
        defer: Duration,
    ) -> Result<(usize, Ticket), BackendError> {
        let mut st = self.lock_state();
        if self.is_exiting() {
            return Err(BackendError::Exiting);
        }
        let timestamp = now_nanos();
        let msgs: Vec<Message> = bodies
            .into_iter()
            .map(|body| Message::new(st.ids.next_id_at(timestamp), timestamp, body))
            .collect();
        let n = msgs.len();
        let ticket = self.put_locked(&mut st, msgs, defer)?;
        Ok((n, ticket))
    }

    /// Messages that already have their identity (ID, timestamp, attempts),
    /// such as dead letters moving here from a channel.
    pub fn put_messages(&self, msgs: Vec<Message>) -> Result<Ticket, BackendError> {
        let mut st = self.lock_state();
        if self.is_exiting() {
            return Err(BackendError::Exiting);
        }
        self.put_locked(&mut st, msgs, Duration::ZERO)
    }

    fn put_locked(
        &self,
        st: &mut State,
        msgs: Vec<Message>,
        defer: Duration,
    ) -> Result<Ticket, BackendError> {
        let n = msgs.len();
        let bytes: u64 = msgs.iter().map(|m| m.body.len() as u64).sum();
        let direct = !self.is_paused() && !st.channels.is_empty() && st.queue.is_empty();
        let mut ticket = Ticket::default();
        let mut batch = Batch::new(&msgs, &mut st.arena);
        if direct {
            for ch in st.channels.values() {
                ticket.merge(ch.put_batch(&mut batch, defer)?);
            }
        } else {
            if !defer.is_zero() {
                st.deferrals.extend(msgs.iter().map(|m| (m.id, defer)));
            }
            ticket = st.queue.put_batch(&mut batch)?;
            self.start_pump(st);
        }
        self.message_count.fetch_add(n as u64, Relaxed);
        self.message_bytes.fetch_add(bytes, Relaxed);
        Ok(ticket)
    }

    /// Start the pump if there is a backlog and somewhere for it to go.
    fn start_pump(&self, st: &mut State) {
        if st.pumping || self.is_paused() || st.channels.is_empty() || st.queue.is_empty() {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                st.pumping = true;
                rt.spawn(async move {
                    while me.pump_step() {
                        tokio::task::yield_now().await;
                    }
                });
            }
            // Outside a runtime (unit tests): drain in place.
            Err(_) => while Self::move_batch(&me.name, st) {},
        }
    }

    /// Move one batch; false (and the pump flag cleared) when done.
    fn pump_step(&self) -> bool {
        let mut st = self.lock_state();
        if self.is_paused() || self.is_exiting() || !Self::move_batch(&self.name, &mut st) {
            st.pumping = false;
            return false;
        }
        true
    }

    /// Move up to [`PUMP_BATCH`] queued messages into every channel.
    /// Returns false when there was nothing to move (or nowhere to go).
    fn move_batch(topic: &str, st: &mut State) -> bool {
        if st.channels.is_empty() {
            return false;
        }
        let mut now = Vec::with_capacity(PUMP_BATCH.min(st.queue.depth() as usize));
        let mut later = Vec::new();
        while now.len() + later.len() < PUMP_BATCH {
            let Some(msg) = st.queue.pop() else { break };
            match st.deferrals.remove(&msg.id) {
                Some(defer) => later.push((msg, defer)),
                None => now.push(msg),
            }
        }
        if now.is_empty() && later.is_empty() {
            return false;
        }
        let mut batch = Batch::new(&now, &mut st.arena);
        for ch in st.channels.values() {
            let mut result = ch.put_batch(&mut batch, Duration::ZERO).map(drop);
            for (msg, defer) in &later {
                result = result.and(
                    ch.put_from_topic(std::slice::from_ref(msg), *defer)
                        .map(drop),
                );
            }
            if let Err(e) = result {
                tracing::error!(
                    "TOPIC({topic}): failed to move messages to channel {}: {e}",
                    ch.name
                );
            }
        }
        true
    }

    /// The channel, created if absent, and whether it was created now.
    pub fn get_or_create_channel(&self, name: &str) -> (Arc<Channel>, bool) {
        let mut st = self.lock_state();
        if let Some(ch) = st.channels.get(name) {
            return (ch.clone(), false);
        }
        let queue_name = format!("{}:{}", self.name, name);
        let ephemeral = crate::protocol::names::is_ephemeral(name);
        let opened = self.factory.channel_queue(&queue_name, ephemeral);
        let ch = Arc::new(
            Channel::new(&self.name, name, opened.queue)
                .with_default_max_attempts(self.default_max_attempts()),
        );
        ch.restore_deferred(opened.deferred);
        ch.attach_timers(&self.timers);
        st.channels.insert(name.to_string(), ch.clone());
        self.start_pump(&mut st);
        tracing::info!("TOPIC({}): new channel({})", self.name, name);
        (ch, true)
    }

    pub fn get_channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.lock_state().channels.get(name).cloned()
    }

    /// Delete a channel: its consumers are disconnected and its messages
    /// dropped. Returns false if there was no such channel.
    pub fn delete_channel(&self, name: &str) -> bool {
        let removed = {
            let mut st = self.lock_state();
            st.deleted_channels.insert(name.to_string());
            st.channels.remove(name)
        };
        match removed {
            Some(ch) => {
                ch.delete();
                tracing::info!("TOPIC({}): deleted channel({})", self.name, name);
                true
            }
            None => false,
        }
    }

    /// Whether a channel of this name was deleted from this topic.
    pub fn was_channel_deleted(&self, name: &str) -> bool {
        self.lock_state().deleted_channels.contains(name)
    }

    /// Ephemeral cleanup: delete `channel` if it has no consumers left.
    /// Returns whether it was deleted.
    pub fn delete_channel_if_unused(&self, channel: &Arc<Channel>) -> bool {
        let mut st = self.lock_state();
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
        self.lock_state().channels.len()
    }

    pub fn pause(&self) {
        self.paused.store(true, Relaxed);
    }

    pub fn unpause(&self) {
        let mut st = self.lock_state();
        self.paused.store(false, Relaxed);
        self.start_pump(&mut st);
    }

    /// Drop the messages the topic holds (its channels keep theirs).
    pub fn empty(&self) {
        let mut st = self.lock_state();
        st.queue.empty();
        st.deferrals.clear();
    }

    /// Mark deleted and delete every channel, with their files.
    pub fn delete(&self) {
        self.exiting.store(true, Relaxed);
        let mut st = self.lock_state();
        for ch in std::mem::take(&mut st.channels).into_values() {
            ch.delete();
        }
        st.deferrals.clear();
        let queue = std::mem::replace(&mut st.queue, Queue::closed());
        drop(st);
        queue.delete();
    }

    /// Shutdown: stop taking messages and put everything held, by the topic
    /// and by each channel, on disk (ephemeral ones are dropped).
    pub fn persist(&self) -> Result<(), BackendError> {
        self.exiting.store(true, Relaxed);
        let channels = self.channels();
        let mut result = Ok(());
        for ch in channels {
            if let Err(e) = ch.persist() {
                tracing::error!("CHANNEL({}:{}): failed to persist: {e}", self.name, ch.name);
                result = Err(e);
            }
        }
        let mut st = self.lock_state();
        st.deferrals.clear();
        result.and(
            st.queue
                .persist(std::iter::empty(), std::iter::empty(), std::iter::empty()),
        )
    }

    /// The sync the topic's own disk queue needs, if any.
    pub fn sync_jobs(&self, with_meta: bool) -> Vec<SyncJob> {
        self.lock_state().queue.sync_jobs(with_meta)
    }

    /// Ephemeral cleanup: mark exiting if no channel is left.
    pub fn mark_exiting_if_unused(&self) -> bool {
        let st = self.lock_state();
        if st.channels.is_empty() {
            self.exiting.store(true, Relaxed);
            true
        } else {
            false
        }
    }

    pub fn counts(&self) -> TopicCounts {
        let st = self.lock_state();
        TopicCounts {
            depth: st.queue.depth(),
            backend_depth: st.queue.backend_depth(),
            channels: st.channels.values().cloned().collect(),
        }
    }

    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.lock_state().channels.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(mem_queue_size: usize) -> Arc<Topic> {
        let factory = Arc::new(QueueFactory {
            mem_queue_size,
            node_id: 1,
            max_attempts: 0,
            disk: None,
            sync_wake: Default::default(),
        });
        Topic::new("t", factory, Default::default())
    }

    /// Enough messages that channel caches go deep and copy bodies.
    const MANY: usize = 20_000;

    fn bodies() -> impl Iterator<Item = Bytes> {
        (0..MANY).map(|i| Bytes::from(format!("message {i}")))
    }

    /// Each channel's messages, as it would deliver them.
    fn queued(ch: &Channel) -> Vec<Message> {
        ch.peek(MANY + 1)
    }

    fn same_bytes(a: &[Message], b: &[Message]) -> usize {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.body.as_ptr() == y.body.as_ptr())
            .count()
    }

    #[test]
    fn channels_share_the_copies_of_a_publish_and_of_a_moved_backlog() {
        // Published straight into both channels.
        let direct = topic(MANY);
        let (a, _) = direct.get_or_create_channel("a");
        let (b, _) = direct.get_or_create_channel("b");
        direct.put(bodies(), Duration::ZERO).unwrap();
        // Queued on the topic first, then moved to both by the pump.
        let moved = topic(MANY);
        moved.pause();
        moved.put(bodies(), Duration::ZERO).unwrap();
        let (c, _) = moved.get_or_create_channel("c");
        let (d, _) = moved.get_or_create_channel("d");
        moved.unpause();
        let expected: Vec<Bytes> = bodies().collect();
        for (x, y) in [(&a, &b), (&c, &d)] {
            let (x, y) = (queued(x), queued(y));
            for got in [&x, &y] {
                let got: Vec<Bytes> = got.iter().map(|m| m.body.clone()).collect();
                assert_eq!(got, expected);
            }
            assert_eq!(x, y);
            // Deep in the caches, both channels hold the very same bytes.
            let tail = MANY / 2;
            assert_eq!(same_bytes(&x[tail..], &y[tail..]), MANY - tail);
        }
    }
}
