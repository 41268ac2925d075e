//! A channel: one consumer group's copy of a topic's stream.
//!
//! Holds the queue of messages waiting for a consumer, the messages in flight
//! (delivered, not yet FIN'd), the deferred ones (DPUB, REQ with delay) and
//! the requeued ones ready again.
//!
//! Durability: every message of a durable channel is stored until it is
//! finished. A message delivered from the queue keeps its record there
//! ([`Origin::Queue`]); one that leaves the FIFO order (requeued, timed
//! out, deferred) moves to the queue's deferred store with its due time
//! ([`Origin::Store`]), so that the queue's records are held only while a
//! first delivery is in flight, and a restart finds every message with
//! its due time.
//!
//! Memory: a message's body is a slice of a buffer shared with the
//! messages that came with it. Whatever stays here for long (deferred,
//! requeued, timed out, touched, or in flight for over [`HELD_LONG`]) gets
//! a copy of its own, so that a few slow messages cannot keep many
//! buffers alive.
//!
//! Consumers pull: a connection with room under its RDY takes a batch with
//! [`Channel::take`], so one lock round trip moves many messages, and no task
//! or timer exists per message.
//!
//! Fairness: a channel is a consumer group, so a burst must be spread over
//! every ready consumer, not taken by whichever connection's task runs
//! first. Two rules do it. A consumer that found the queue empty waits as a
//! *waiter*; when messages arrive, [`Channel::dispatch`] hands each waiter
//! its share under the same lock that stored them (into the consumer's
//! outbox, already in flight), and only then wakes them, so the split does
//! not depend on which task the scheduler runs first. And a pulling consumer
//! takes at most its share of what is queued while other consumers have
//! room, then yields. Under sustained load nobody waits and consumers pull
//! batches as fast as they drain them, so faster consumers get more.

use super::backend::{BackendError, Queue, Ticket};
use super::cache::Batch;
use super::client_state::ClientHandle;
use super::timers::{TimerSlot, Timers};
use crate::diskqueue::deferred::EntryId;
use crate::diskqueue::{Held, SyncJob};
use crate::protocol::{Message, MessageId};
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Where [`Channel::take`] puts the messages it moves into flight.
pub trait Deliveries {
    fn deliver(&mut self, msg: &Message);

    /// Holds enough for now: a take stops here, even short of its count.
    fn is_full(&self) -> bool {
        false
    }
}

/// The most a take appends to a connection's output buffer, and how far
/// messages handed to a waiting consumer are encoded at a time (at least
/// one message either way). 512 messages of a few hundred bytes stay well
/// under it; 512 of 1 MB would otherwise each be copied into the buffer,
/// doubling what the messages in flight cost.
pub const OUTPUT_BATCH_BYTES: usize = 256 * 1024;

/// The messages themselves (handed to a waiting consumer, tests).
impl Deliveries for Vec<Message> {
    fn deliver(&mut self, msg: &Message) {
        self.push(msg.clone());
    }
}

/// Message frames, encoded into a connection's output buffer while the
/// lock is held. Nothing then refers to the body but the in-flight table:
/// a body read from disk is a slice of a read buffer shared by every
/// consumer, and each reference taken and dropped on another core made
/// the cores fight over that buffer's reference count.
impl Deliveries for bytes::BytesMut {
    fn deliver(&mut self, msg: &Message) {
        crate::protocol::frame::encode_message_frame(self, msg);
    }

    fn is_full(&self) -> bool {
        self.len() >= OUTPUT_BATCH_BYTES
    }
}

/// Largest body copied by TOUCH (see [`Channel::touch`]) or for being
/// held long (see [`HELD_LONG`]).
const TOUCH_COPY_MAX: usize = 16 * 1024;

/// A message in flight for longer than this gets a body of its own (up to
/// [`TOUCH_COPY_MAX`]). A body is a slice of a 64 kB buffer shared with the
/// messages published or read from disk along with it, and the whole buffer
/// lives as long as any slice: a slow consumer whose messages were taken far
/// apart would otherwise keep one buffer per message alive (64 MB for a
/// thousand), where the bodies are a few hundred kB. Consumers that finish
/// within this time, almost all of them, never pay for the copy.
const HELD_LONG: Duration = Duration::from_secs(1);

/// The hash of a message ID (`tick << 22 | node << 12 | sequence`) for the
/// in-flight table: runs of 64 consecutive IDs go to neighbouring buckets,
/// each run somewhere else.
///
/// hashbrown takes the bucket from the hash's low bits and a tag from its
/// top 7. A bare multiply, used before, left the bucket depending on the
/// sequence alone, which starts again every tick: at a few messages per
/// millisecond, thousands of in-flight IDs shared a handful of buckets and
/// each FIN probed through them. A uniform hash fixes that but scatters a
/// batch delivered (then finished) together over the whole table, which
/// at 40,000 messages in flight (16 consumers at RDY 2500) is several MB:
/// every access missed the cache. Runs of 64 keep most of the locality,
/// and are short enough that runs landing on each other cost little. The
/// tag is the top of a Fibonacci multiply, which differs between
/// neighbouring IDs. Measured in `docs/benchmarks.md`.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        const TAG: u64 = 0x7f << 57;
        const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;
        let id = self.0;
        let run = (id >> 6).wrapping_mul(FIBONACCI).rotate_left(32);
        let place = run.wrapping_add(id & 63);
        let tag = id.wrapping_mul(FIBONACCI) & TAG;
        (place & !TAG) | tag
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<MessageId, V, BuildHasherDefault<IdHasher>>;

/// Where a message's stored copy is, to let go of once it is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Not stored (ephemeral channels, or an engine without a data path).
    Memory,
    /// Its record in the queue, held until released.
    Queue(Held),
    /// An entry of the queue's deferred store.
    Store(EntryId),
}

struct InFlight {
    msg: Message,
    client_id: u64,
    deadline: Instant,
    delivered_at: Instant,
    origin: Origin,
}

struct Deferred {
    due: Instant,
    msg: Message,
    origin: Origin,
}

impl PartialEq for Deferred {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Deferred {}
impl PartialOrd for Deferred {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Deferred {
    // Reversed: BinaryHeap is a max-heap and we want the earliest due first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.due.cmp(&self.due)
    }
}

struct State {
    queue: Queue,
    in_flight: IdMap<InFlight>,
    deadlines: Deadlines,
    deferred: BinaryHeap<Deferred>,
    clients: HashMap<u64, Arc<ClientHandle>>,
    /// Consumers that found the queue empty, in the order they did (so that
    /// single messages go round the group). [`Channel::dispatch`] hands them
    /// messages when some arrive.
    waiters: VecDeque<Waiter>,
    /// Requeued messages (REQ without delay, timeouts, deferred ones now
    /// due): delivered before the queue's next messages.
    ready: VecDeque<(Message, Origin)>,
    /// Dead letters: messages that reached the maximum attempts, waiting
    /// to be moved to the dead-letter topic, and those being moved.
    dead: Vec<(Message, Origin)>,
    moving: IdMap<Origin>,
    /// This channel's limit (`None`: the daemon's `--max-attempts`).
    max_attempts: Option<u16>,
    dead_letter_topic: Option<String>,
    /// When in-flight messages are next looked at for being held long
    /// ([`HELD_LONG`]); `None` while none could be.
    next_sweep: Option<Instant>,
    /// Messages delivered at or before this were looked at already.
    swept_to: Option<Instant>,
}

type Locked<'a> = super::locked::Locked<'a, State>;

impl super::locked::OwnsQueue for State {
    fn queue(&mut self) -> &mut Queue {
        &mut self.queue
    }
}

impl State {
    /// The earliest in-flight deadline, deferred due time or sweep, if any.
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.deadlines.next(),
            self.deferred.peek().map(|d| d.due),
            self.next_sweep,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Give messages in flight for [`HELD_LONG`] bodies of their own, each
    /// once, and work out when to look again (a message is copied after
    /// 1 to 1.5 times `HELD_LONG`).
    fn sweep_held(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(HELD_LONG) else {
            return;
        };
        let swept_to = self.swept_to;
        let mut earliest_unswept: Option<Instant> = None;
        for f in self.in_flight.values_mut() {
            if swept_to.is_some_and(|s| f.delivered_at <= s) {
                continue;
            }
            if f.delivered_at > cutoff {
                earliest_unswept =
                    Some(earliest_unswept.map_or(f.delivered_at, |e| e.min(f.delivered_at)));
            } else if f.msg.body.len() <= TOUCH_COPY_MAX {
                f.msg.own_body();
            }
        }
        self.swept_to = Some(cutoff);
        // At most two sweeps a second: each looks at every message in
        // flight, and a busy channel always has one just delivered.
        self.next_sweep = earliest_unswept.map(|at| (at + HELD_LONG).max(now + HELD_LONG / 2));
    }

    /// Messages that could be delivered now.
    fn available(&self) -> usize {
        self.ready.len() + self.queue.depth() as usize
    }

    fn nothing_available(&self) -> bool {
        self.ready.is_empty() && self.queue.is_empty()
    }

    /// The next message to deliver: a requeued one first, else the queue's.
    fn next_message(&mut self) -> Option<(Message, Origin)> {
        if let Some(next) = self.ready.pop_front() {
            return Some(next);
        }
        let (msg, held) = self.queue.pop_tracked()?;
        Some((msg, held.map_or(Origin::Memory, Origin::Queue)))
    }

    /// The stored copy is no longer needed.
    fn let_go(&mut self, origin: Origin) {
        match origin {
            Origin::Memory => {}
            Origin::Queue(h) => self.queue.release(h),
            Origin::Store(e) => self.queue.forget_deferred(e),
        }
    }

    /// Keep `msg` out of the FIFO until `due` (its store entry written
    /// now), letting go of its previous copy once the new one is stored.
    /// If the store cannot be written, the previous copy stays: the message
    /// is as safe as before, only its due time is not recorded.
    fn store_deferred(&mut self, msg: &Message, due: Instant, previous: Origin) -> Origin {
        let wait = due.saturating_duration_since(Instant::now());
        let due_ns = crate::protocol::message::now_nanos().saturating_add(wait.as_nanos() as i64);
        let from = match previous {
            Origin::Queue(h) => Some(h),
            _ => None,
        };
        match self.queue.defer(msg, due_ns, from) {
            Ok((Some(entry), _)) => {
                self.let_go(previous);
                Origin::Store(entry)
            }
            Ok((None, _)) => previous,
            Err(e) => {
                tracing::error!("failed to store a deferred message: {e}");
                previous
            }
        }
    }
}

/// A consumer waiting for messages, with the timeout its messages get.
struct Waiter {
    client: Arc<ClientHandle>,
    timeout: Duration,
}

/// Most messages a pulling consumer takes per lock round trip: large
/// enough to amortise the lock and the connection's turn (with two
/// consumers draining a backlog, 128 cost 300-337 ns of CPU per message,
/// 256 cost 273-282 and 512 cost 241-250), small enough to bound what one
/// consumer holds while others pull (about 50 µs). A shallow queue is
/// shared out regardless (see [`Channel::take`]).
pub const TAKE_BATCH: usize = 512;

/// Most FINs done under one hold of the channel's lock.
const FIN_CHUNK: usize = 128;

/// Most messages handed to one waiting consumer per dispatch. Waiters exist
/// only while the queue is empty, so a dispatch moves what just arrived (a
/// batch); this bounds the lock hold for a very large one.
const DISPATCH_MAX: usize = 1024;

/// How many more messages `client` may have in flight under its RDY.
fn room(client: &ClientHandle) -> usize {
    let ready = client.ready_count.load(Relaxed);
    (ready - client.in_flight.load(Relaxed)).max(0) as usize
}

/// The most each waiting consumer should get when `available` messages are
/// split evenly over the waiters (with `rooms`) and `busy` consumers that
/// will pull for themselves: water-filling, so a consumer with little room
/// takes all it can and the others share the rest.
fn fair_level(available: usize, rooms: &[usize], busy: usize) -> usize {
    let mut rooms: Vec<usize> = rooms.iter().copied().filter(|&r| r > 0).collect();
    rooms.sort_unstable();
    let mut left = available;
    let mut sharing = rooms.len() + busy;
    for r in rooms {
        if sharing == 0 || r >= left.div_ceil(sharing) {
            break;
        }
        left -= r;
        sharing -= 1;
    }
    left.div_ceil(sharing.max(1)).max(1)
}

/// Why a consumer could not join a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddClientError {
    /// The channel is being deleted: join a fresh one.
    Exiting,
    /// `--max-channel-consumers` reached.
    Full,
}

/// Where a channel's dead letters go unless told otherwise.
pub fn default_dead_letter_topic(topic: &str) -> String {
    const SUFFIX: &str = DEAD_LETTER_SUFFIX;
    let keep = topic
        .len()
        .min(crate::protocol::names::MAX_NAME_LEN - SUFFIX.len());
    format!("{}{SUFFIX}", &topic[..keep])
}

/// What default dead-letter topics' names end with.
pub const DEAD_LETTER_SUFFIX: &str = ".dead-letter";

/// Why FIN/REQ/TOUCH failed (non-fatal for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlightError {
    NotInFlight,
    NotOwner,
}

impl InFlightError {
    pub fn text(self) -> &'static str {
        match self {
            InFlightError::NotInFlight => "ID not in flight",
            InFlightError::NotOwner => "client does not own message",
        }
    }
}

/// In-flight deadlines in expiry order, cheap on the hot path.
///
/// Consumers of one channel almost always share a message timeout, so
/// deadlines arrive in order and a FIFO holds them; the rare one that does
/// not (TOUCH, a client with its own `msg_timeout`) goes to an ordered set.
/// FIN does not search the FIFO: its entry goes stale and is skipped when it
/// reaches the front, and the FIFO is compacted once stale entries outnumber
/// live ones, so memory stays proportional to what is in flight.
#[derive(Default)]
struct Deadlines {
    fifo: VecDeque<(Instant, MessageId)>,
    out_of_order: BTreeSet<(Instant, MessageId)>,
}

impl Deadlines {
    fn push(&mut self, at: Instant, id: MessageId) {
        if self.fifo.back().is_none_or(|&(last, _)| last <= at) {
            self.fifo.push_back((at, id));
        } else {
            self.out_of_order.insert((at, id));
        }
    }

    /// An entry is no longer wanted (FIN, REQ, TOUCH moved it). Only the
    /// ordered set is searched; FIFO entries are dropped lazily.
    fn forget(&mut self, at: Instant, id: MessageId) {
        if !self.out_of_order.is_empty() {
            self.out_of_order.remove(&(at, id));
        }
    }

    /// Drop stale FIFO entries once they outnumber the live ones.
    fn compact(&mut self, live: usize, is_live: impl Fn(Instant, MessageId) -> bool) {
        if self.fifo.len() > 2 * live + 1024 {
            self.fifo.retain(|&(at, id)| is_live(at, id));
        }
    }

    /// The earliest entry if it is due (it may be stale: callers check).
    fn pop_due(&mut self, now: Instant) -> Option<(Instant, MessageId)> {
        let fifo = self.fifo.front().copied();
        let ordered = self.out_of_order.first().copied();
        match (fifo, ordered) {
            (Some(a), Some(b)) if b < a => (b.0 <= now).then(|| self.out_of_order.pop_first())?,
            (Some(a), _) => (a.0 <= now).then(|| self.fifo.pop_front())?,
            (None, Some(b)) => (b.0 <= now).then(|| self.out_of_order.pop_first())?,
            (None, None) => None,
        }
    }

    /// The earliest deadline (possibly of a stale entry: waking early is harmless).
    fn next(&self) -> Option<Instant> {
        let a = self.fifo.front().map(|e| e.0);
        let b = self.out_of_order.first().map(|e| e.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn clear(&mut self) {
        self.fifo.clear();
        self.out_of_order.clear();
    }
}

pub struct Channel {
    pub name: String,
    pub topic_name: String,
    pub ephemeral: bool,
    state: std::sync::Mutex<State>,
    paused: AtomicBool,
    exiting: AtomicBool,
    pub message_count: AtomicU64,
    pub requeue_count: AtomicU64,
    pub timeout_count: AtomicU64,
    /// Publish-to-FIN latencies (with `--e2e-processing-latency-percentile`).
    pub latencies: super::latency::Latencies,
    /// `--max-attempts`: applies unless the channel has its own limit (0
    /// in a dead-letter topic, whose messages arrive at the limit).
    default_max_attempts: std::sync::atomic::AtomicU16,
    /// Messages moved to the dead-letter topic.
    pub dead_letter_count: AtomicU64,
    /// The engine's timer heap and this channel's place in it, told of
    /// every deadline the channel sets (see [`super::timers`]). Unset in
    /// a channel made alone (unit tests drive `process_timers` by hand).
    timer: OnceLock<(Arc<Timers>, Arc<TimerSlot>)>,
}

/// How long dead letters that could not be moved wait to be tried again.
pub const DEAD_LETTER_RETRY: Duration = Duration::from_secs(1);

/// A channel's dead-letter settings, as `/stats` and `nsqd.dat` show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// 0: no limit.
    pub max_attempts: u16,
    /// The channel's own setting (`None`: the daemon's).
    pub own_max_attempts: Option<u16>,
    /// Where dead letters go.
    pub topic: String,
    /// The channel's own topic setting.
    pub own_topic: Option<String>,
}

/// What [`Channel::take`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// Messages appended.
    pub taken: usize,
    /// The queue ran dry: the client waits, and will be handed messages.
    pub dry: bool,
    /// It stopped at its share because other consumers have room: the
    /// caller should send what it has before asking again.
    pub yielded: bool,
    /// It stopped because `out` was full ([`OUTPUT_BATCH_BYTES`]).
    pub full: bool,
}

/// A snapshot of a channel's numbers for `/stats`.
pub struct ChannelCounts {
    pub depth: u64,
    pub backend_depth: u64,
    pub in_flight: u64,
    pub deferred: u64,
    pub clients: Vec<Arc<ClientHandle>>,
}

impl Channel {
    pub fn new(topic_name: &str, name: &str, queue: Queue) -> Self {
        Channel {
            name: name.to_string(),
            topic_name: topic_name.to_string(),
            ephemeral: crate::protocol::names::is_ephemeral(name),
            state: std::sync::Mutex::new(State {
                queue,
                in_flight: IdMap::default(),
                deadlines: Deadlines::default(),
                deferred: BinaryHeap::new(),
                clients: HashMap::new(),
                waiters: VecDeque::new(),
                ready: VecDeque::new(),
                dead: Vec::new(),
                moving: IdMap::default(),
                max_attempts: None,
                dead_letter_topic: None,
                next_sweep: None,
                swept_to: None,
            }),
            paused: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            message_count: AtomicU64::new(0),
            requeue_count: AtomicU64::new(0),
            timeout_count: AtomicU64::new(0),
            latencies: Default::default(),
            default_max_attempts: std::sync::atomic::AtomicU16::new(0),
            dead_letter_count: AtomicU64::new(0),
            timer: OnceLock::new(),
        }
    }

    /// Have the engine's timer task visit this channel whenever one of its
    /// deadlines is due, starting with those it already has (deferred
    /// messages recovered from its store).
    pub fn attach_timers(self: &Arc<Self>, timers: &Arc<Timers>) {
        let slot = TimerSlot::new(Arc::downgrade(self));
        if self.timer.set((timers.clone(), slot)).is_err() {
            return;
        }
        let next = self.lock_state().next_deadline();
        if let Some(at) = next {
            self.note_deadline(at);
        }
    }

    /// The channel has a deadline at `at`: the timer task must visit it by
    /// then. Called wherever one is set.
    fn note_deadline(&self, at: Instant) {
        if let Some((timers, slot)) = self.timer.get() {
            timers.note(slot, at);
        }
    }

    /// With `--max-attempts`: the limit for channels without their own.
    pub fn with_default_max_attempts(self, max_attempts: u16) -> Self {
        self.set_default_max_attempts(max_attempts);
        self
    }

    pub fn set_default_max_attempts(&self, max_attempts: u16) {
        self.default_max_attempts.store(max_attempts, Relaxed);
    }

    /// Set this channel's dead-letter limit and topic (`None`: the
    /// daemon's limit, and `<topic>.dead-letter`).
    pub fn set_dead_letters(&self, max_attempts: Option<u16>, topic: Option<String>) {
        let mut st = self.lock_state();
        st.max_attempts = max_attempts;
        st.dead_letter_topic = topic;
        if !st.dead.is_empty() {
            // Waiting for a retry: perhaps the new topic takes them now.
            self.note_deadline(Instant::now());
        }
    }

    pub fn dead_letter_config(&self) -> DeadLetterConfig {
        let st = self.lock_state();
        DeadLetterConfig {
            max_attempts: st
                .max_attempts
                .unwrap_or(self.default_max_attempts.load(Relaxed)),
            own_max_attempts: st.max_attempts,
            topic: st
                .dead_letter_topic
                .clone()
                .unwrap_or_else(|| default_dead_letter_topic(&self.topic_name)),
            own_topic: st.dead_letter_topic.clone(),
        }
    }

    /// Up to `n` of the messages this channel would deliver next, in
    /// order, changing nothing: no attempt counted, nothing moved.
    pub fn peek(&self, n: usize) -> Vec<Message> {
        let st = self.lock_state();
        let mut out: Vec<Message> = st.ready.iter().take(n).map(|(m, _)| m.clone()).collect();
        if out.len() < n {
            out.extend(st.queue.peek(n - out.len()));
        }
        out
    }

    /// Dead letters to move now: the topic they go to and the messages
    /// (their stored copies are kept until [`Channel::dead_letters_moved`]).
    pub fn take_dead_letters(&self) -> Option<(String, Vec<Message>)> {
        let mut st = self.lock_state();
        if st.dead.is_empty() {
            return None;
        }
        let topic = st
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| default_dead_letter_topic(&self.topic_name));
        let mut msgs = Vec::with_capacity(st.dead.len());
        for (msg, origin) in std::mem::take(&mut st.dead) {
            st.moving.insert(msg.id, origin);
            msgs.push(msg);
        }
        Some((topic, msgs))
    }

    /// The dead letters taken are stored in their topic (`ok`): finished
    /// here. If not, they wait to be moved again.
    pub fn dead_letters_moved(&self, msgs: Vec<Message>, ok: bool) {
        let mut st = self.lock_state();
        for msg in msgs {
            let Some(origin) = st.moving.remove(&msg.id) else {
                continue;
            };
            if ok {
                st.let_go(origin);
                self.dead_letter_count.fetch_add(1, Relaxed);
            } else {
                st.dead.push((msg, origin));
            }
        }
        if !ok {
            self.note_deadline(Instant::now() + DEAD_LETTER_RETRY);
        }
    }

    /// The channel's state. A std mutex rather than parking_lot's: two
    /// consumers on two threads take it for every batch of deliveries and
    /// FINs, and parking_lot's waiting (spinning with `sched_yield`) gave
    /// the core away to other threads thousands of times a second; std's
    /// spins briefly, then sleeps until woken.
    fn lock_state(&self) -> Locked<'_> {
        Locked::new(&self.state)
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Relaxed)
    }

    /// Messages handed over by the topic: queued now, or deferred by `defer`.
    /// Returns the disk writes to wait for before acknowledging them.
    pub fn put_from_topic(
        &self,
        msgs: &[Message],
        defer: Duration,
    ) -> Result<Ticket, BackendError> {
        self.put_batch(&mut Batch::of(msgs), defer)
    }

    /// As [`put_from_topic`](Self::put_from_topic), for a batch that the
    /// topic's other channels take too (see `cache.rs`).
    pub fn put_batch(&self, batch: &mut Batch, defer: Duration) -> Result<Ticket, BackendError> {
        let msgs = batch.msgs();
        let mut st = self.lock_state();
        if self.is_exiting() {
            return Err(BackendError::Exiting);
        }
        self.message_count.fetch_add(msgs.len() as u64, Relaxed);
        let mut ticket = Ticket::default();
        if defer.is_zero() {
            ticket = st.queue.put_batch(batch)?;
        } else {
            let due = Instant::now() + defer;
            let due_ns =
                crate::protocol::message::now_nanos().saturating_add(defer.as_nanos() as i64);
            for msg in msgs {
                let (entry, written) = st.queue.defer(msg, due_ns, None)?;
                ticket.merge(written);
                st.deferred.push(Deferred {
                    due,
                    msg: msg.clone().with_own_body(),
                    origin: entry.map_or(Origin::Memory, Origin::Store),
                });
            }
            if !msgs.is_empty() {
                self.note_deadline(due);
            }
        }
        self.dispatch(st);
        Ok(ticket)
    }

    /// Messages became available: hand each waiting consumer its share, in
    /// the order they started waiting, then wake those that got some.
    ///
    /// Shares are even over every consumer with room, waiting or busy (a
    /// busy one's part stays queued for it to pull), except that one with
    /// less room than its share takes what it can and the rest is split
    /// among the others.
    fn dispatch(&self, mut st: Locked<'_>) {
        if st.waiters.is_empty() || self.is_paused() || st.nothing_available() {
            return;
        }
        let depth = st.available();
        // No more messages than waiters: one each, in turn. Otherwise work
        // out the even share (this looks at every consumer).
        let level = if depth <= st.waiters.len() {
            1
        } else {
            let rooms: Vec<usize> = st.waiters.iter().map(|w| room(&w.client)).collect();
            let ready = st.clients.values().filter(|c| room(c) > 0).count();
            let waiting = rooms.iter().filter(|&&r| r > 0).count();
            fair_level(
                depth.min(DISPATCH_MAX * rooms.len()),
                &rooms,
                ready.saturating_sub(waiting),
            )
            .min(DISPATCH_MAX)
        };
        let now = Instant::now();
        let mut woken = Vec::new();
        while !st.nothing_available() {
            let Some(w) = st.waiters.pop_front() else {
                break;
            };
            w.client.waiting.store(false, Relaxed);
            // One without room (RDY lowered) is dropped: it asks again when
            // it has room.
            let max = room(&w.client).min(level);
            if max == 0 {
                continue;
            }
            let mut outbox = w.client.outbox.lock();
            let (n, _) = self.take_locked(&mut st, &w.client, max, now, w.timeout, &mut *outbox);
            drop(outbox);
            if n > 0 {
                woken.push(w.client);
            } else {
                // Sampling dropped what was left: still waiting.
                w.client.waiting.store(true, Relaxed);
                st.waiters.push_front(w);
            }
        }
        drop(st);
        for c in woken {
            c.wake.notify_one();
        }
    }

    /// Take up to `max` messages for `client`, marking them in flight with
    /// `timeout`, appended to `out`. While other consumers have room, at
    /// most this client's share of the queue is taken. When the queue runs
    /// dry the client becomes a waiter, and is handed messages (and woken,
    /// through a stored permit, so no wakeup is lost) when some arrive.
    pub fn take(
        &self,
        client: &Arc<ClientHandle>,
        max: usize,
        timeout: Duration,
        out: &mut impl Deliveries,
    ) -> Take {
        if max == 0 || self.is_paused() {
            return Take::default();
        }
        let mut st = self.lock_state();
        // The caller counted `max` against RDY before the lock: a dispatch
        // may have handed this client messages since (it was a waiter), and
        // those are in flight too. Taking `max` anyway went past RDY.
        let max = max.min(room(client));
        if max == 0 {
            return Take::default();
        }
        // Read under the lock: deadlines then reach the table in order, so
        // they stay in the cheap FIFO rather than the ordered set.
        let now = Instant::now();
        // Other consumers with room get their share of a shallow queue. A
        // deep one (or an empty one) needs no count: the share would not
        // limit this take.
        let depth = st.available();
        let limit = if depth > 0 && depth < max.saturating_mul(st.clients.len()) {
            let others = st
                .clients
                .values()
                .filter(|c| c.id != client.id && room(c) > 0)
                .count();
            max.min(depth.div_ceil(others + 1).max(1))
        } else {
            max
        };
        let (taken, dry) = self.take_locked(&mut st, client, limit, now, timeout, out);
        let full = !dry && taken < limit && out.is_full();
        if dry && !client.waiting.swap(true, Relaxed) {
            st.waiters.push_back(Waiter {
                client: client.clone(),
                timeout,
            });
        }
        // Others may be waiting for what this client left.
        self.dispatch(st);
        Take {
            taken,
            dry,
            yielded: !dry && !full && taken < max,
            full,
        }
    }

    /// Move up to `max` messages from the queue into flight for `client`.
    /// Returns how many, and whether the queue ran dry.
    fn take_locked(
        &self,
        st: &mut State,
        client: &ClientHandle,
        max: usize,
        now: Instant,
        timeout: Duration,
        out: &mut impl Deliveries,
    ) -> (usize, bool) {
        let sample_rate = client.sample_rate.load(Relaxed);
        let deadline = now + timeout;
        let mut taken = 0;
        let mut dry = false;
        let dead_before = st.dead.len();
        while taken < max && !out.is_full() {
            let Some((mut msg, origin)) = st.next_message() else {
                dry = true;
                break;
            };
            // nsqd draws 0-99 and drops the message when the draw exceeds the rate.
            if sample_rate > 0 && fastrand::i32(0..100) > sample_rate {
                st.let_go(origin);
                continue;
            }
            let max_attempts = st
                .max_attempts
                .unwrap_or_else(|| self.default_max_attempts.load(Relaxed));
            if max_attempts > 0 && msg.attempts >= max_attempts {
                // Delivered as often as allowed: to the dead-letter topic.
                st.dead.push((msg, origin));
                continue;
            }
            msg.attempts = msg.attempts.wrapping_add(1);
            st.deadlines.push(deadline, msg.id);
            out.deliver(&msg);
            st.in_flight.insert(
                msg.id,
                InFlight {
                    msg,
                    client_id: client.id,
                    deadline,
                    delivered_at: now,
                    origin,
                },
            );
            taken += 1;
        }
        if taken > 0 {
            client.in_flight.fetch_add(taken as i64, Relaxed);
            client.message_count.fetch_add(taken as u64, Relaxed);
            let sweep = *st.next_sweep.get_or_insert(now + HELD_LONG);
            self.note_deadline(deadline.min(sweep));
        }
        if st.dead.len() > dead_before {
            // To be moved to the dead-letter topic by the timer task, now.
            self.note_deadline(now);
        }
        (taken, dry)
    }

    fn remove_in_flight(
        st: &mut State,
        client_id: u64,
        id: MessageId,
    ) -> Result<InFlight, InFlightError> {
        // One lookup on the common path; another's message goes back.
        let f = st.in_flight.remove(&id).ok_or(InFlightError::NotInFlight)?;
        if f.client_id != client_id {
            st.in_flight.insert(id, f);
            return Err(InFlightError::NotOwner);
        }
        st.deadlines.forget(f.deadline, id);
        let live = st.in_flight.len();
        let in_flight = &st.in_flight;
        st.deadlines.compact(live, |at, id| {
            in_flight.get(&id).is_some_and(|f| f.deadline == at)
        });
        Ok(f)
    }

    /// FIN: the message is done, and `client` has a free in-flight slot.
    /// Returns its publish timestamp (for latency).
    pub fn finish(&self, client: &ClientHandle, id: MessageId) -> Result<i64, InFlightError> {
        let mut st = self.lock_state();
        let f = Self::remove_in_flight(&mut st, client.id, id)?;
        st.let_go(f.origin);
        drop(st);
        client.in_flight.fetch_sub(1, Relaxed);
        client.finish_count.fetch_add(1, Relaxed);
        Ok(f.msg.timestamp)
    }

    /// FIN for each of `ids` (hex, as sent) under one lock: a consumer's
    /// pipelined FINs. `done` gets each one's publish timestamp or error,
    /// in order, after the lock is released.
    pub fn finish_many(
        &self,
        client: &ClientHandle,
        ids: &[[u8; 16]],
        mut done: impl FnMut(&[u8; 16], Result<i64, InFlightError>),
    ) {
        // IDs are parsed before, and the finished messages dropped after,
        // the lock; and it is let go every `FIN_CHUNK` FINs: a consumer's
        // read can hold thousands of FINs, and the channel's other
        // consumers must not wait for all of them.
        let mut outcomes: Vec<Result<i64, InFlightError>> = Vec::with_capacity(ids.len());
        let mut finished_msgs: Vec<Message> = Vec::with_capacity(ids.len().min(FIN_CHUNK));
        for chunk in ids.chunks(FIN_CHUNK) {
            let mut parsed = [None; FIN_CHUNK];
            for (id, raw) in parsed.iter_mut().zip(chunk) {
                *id = MessageId::from_hex(raw);
            }
            let mut st = self.lock_state();
            for id in &parsed[..chunk.len()] {
                let outcome = id
                    .ok_or(InFlightError::NotInFlight)
                    .and_then(|id| Self::remove_in_flight(&mut st, client.id, id))
                    .map(|f| {
                        st.let_go(f.origin);
                        let timestamp = f.msg.timestamp;
                        finished_msgs.push(f.msg);
                        timestamp
                    });
                outcomes.push(outcome);
            }
            drop(st);
            finished_msgs.clear();
        }
        let finished = outcomes.iter().filter(|o| o.is_ok()).count() as i64;
        client.in_flight.fetch_sub(finished, Relaxed);
        client.finish_count.fetch_add(finished as u64, Relaxed);
        for (raw, outcome) in ids.iter().zip(outcomes) {
            done(raw, outcome);
        }
    }

    /// REQ: back to the queue now, or after `delay`; `client` has a free
    /// in-flight slot.
    pub fn requeue(
        &self,
        client: &ClientHandle,
        id: MessageId,
        delay: Duration,
    ) -> Result<(), InFlightError> {
        let mut st = self.lock_state();
        let f = Self::remove_in_flight(&mut st, client.id, id)?;
        self.requeue_count.fetch_add(1, Relaxed);
        client.in_flight.fetch_sub(1, Relaxed);
        client.requeue_count.fetch_add(1, Relaxed);
        if delay.is_zero() {
            Self::requeue_now(&mut st, f.msg.with_own_body(), f.origin);
            self.dispatch(st);
        } else {
            let due = Instant::now() + delay;
            let origin = st.store_deferred(&f.msg, due, f.origin);
            st.deferred.push(Deferred {
                due,
                msg: f.msg.with_own_body(),
                origin,
            });
            self.note_deadline(due);
        }
        Ok(())
    }

    /// Ready again (REQ without delay, timeout). A first delivery from the
    /// queue moves to the deferred store, so that the queue's record is not
    /// held for as long as the message keeps failing.
    ///
    /// Callers pass a message that failed with a body of its own: it may
    /// wait long (no consumer ready, or failing again), and must not keep
    /// its whole read buffer alive meanwhile.
    fn requeue_now(st: &mut State, msg: Message, origin: Origin) {
        let origin = match origin {
            Origin::Queue(_) => st.store_deferred(&msg, Instant::now(), origin),
            other => other,
        };
        st.ready.push_back((msg, origin));
    }

    /// Deferred messages the store held when the channel was opened: due
    /// ones are ready, the others wait for their time, as recorded.
    pub fn restore_deferred(&self, entries: Vec<(EntryId, i64, Message)>) {
        if entries.is_empty() {
            return;
        }
        let mut st = self.lock_state();
        let (now, now_ns) = (Instant::now(), crate::protocol::message::now_nanos());
        let (mut ready, mut later) = (0, 0);
        for (entry, due_ns, msg) in entries {
            let wait = Duration::from_nanos(due_ns.saturating_sub(now_ns).max(0) as u64);
            if wait.is_zero() {
                st.ready.push_back((msg, Origin::Store(entry)));
                ready += 1;
            } else {
                st.deferred.push(Deferred {
                    due: now + wait,
                    msg,
                    origin: Origin::Store(entry),
                });
                later += 1;
            }
        }
        // (A channel is attached to the timers after this, normally: see
        // `attach_timers`.)
        if let Some(at) = st.next_deadline() {
            self.note_deadline(at);
        }
        tracing::info!(
            "CHANNEL({}:{}): recovered {ready} requeued and {later} deferred message(s)",
            self.topic_name,
            self.name
        );
    }

    /// TOUCH: push the deadline out by `timeout`, but never past delivery
    /// time + `max_timeout`.
    pub fn touch(
        &self,
        client: &ClientHandle,
        id: MessageId,
        timeout: Duration,
        max_timeout: Duration,
    ) -> Result<(), InFlightError> {
        let mut st = self.lock_state();
        let Some(f) = st.in_flight.get_mut(&id) else {
            return Err(InFlightError::NotInFlight);
        };
        if f.client_id != client.id {
            return Err(InFlightError::NotOwner);
        }
        let old = f.deadline;
        let new = (Instant::now() + timeout).min(f.delivered_at + max_timeout);
        f.deadline = new;
        // A message being touched is held for long: a small body gets an
        // allocation of its own rather than keep its read buffer (up to
        // 256 kB) alive. Clients may touch often, so large bodies, which
        // are most of the buffer they sit in anyway, are not copied each
        // time.
        if f.msg.body.len() <= TOUCH_COPY_MAX {
            f.msg.own_body();
        }
        st.deadlines.forget(old, id);
        st.deadlines.push(new, id);
        self.note_deadline(new);
        Ok(())
    }

    /// Requeue in-flight messages past their deadline and release deferred
    /// ones that are due. Returns the earliest remaining deadline, if any.
    pub fn process_timers(&self, now: Instant) -> Option<Instant> {
        let mut st = self.lock_state();
        let mut released = false;
        while let Some((deadline, id)) = st.deadlines.pop_due(now) {
            let live = st
                .in_flight
                .get(&id)
                .is_some_and(|f| f.deadline == deadline);
            if !live {
                continue;
            }
            if let Some(f) = st.in_flight.remove(&id) {
                self.timeout_count.fetch_add(1, Relaxed);
                if let Some(c) = st.clients.get(&f.client_id) {
                    c.release_in_flight(1);
                }
                Self::requeue_now(&mut st, f.msg.with_own_body(), f.origin);
                released = true;
            }
        }
        while st.deferred.peek().is_some_and(|d| d.due <= now) {
            let d = st.deferred.pop().expect("peeked");
            Self::requeue_now(&mut st, d.msg, d.origin);
            released = true;
        }
        if st.next_sweep.is_some_and(|at| at <= now) {
            st.sweep_held(now);
        }
        // (Dead letters are not a deadline here: a take that finds one
        // notes the channel due at once, a failed move notes a retry.)
        let next = st.next_deadline();
        if released {
            self.dispatch(st);
        }
        next
    }

    /// Add a consumer (`max_consumers` 0: no limit).
    pub fn add_client(
        &self,
        client: Arc<ClientHandle>,
        max_consumers: usize,
    ) -> Result<(), AddClientError> {
        let mut st = self.lock_state();
        if self.is_exiting() {
            return Err(AddClientError::Exiting);
        }
        if max_consumers > 0
            && st.clients.len() >= max_consumers
            && !st.clients.contains_key(&client.id)
        {
            return Err(AddClientError::Full);
        }
        st.clients.insert(client.id, client);
        Ok(())
    }

    /// Remove a consumer; returns how many remain. Messages it was sent
    /// stay in flight until they time out, as in NSQ; those handed to it
    /// but never sent go back to the queue at once, as if never delivered.
    pub fn remove_client(&self, client_id: u64) -> usize {
        let mut st = self.lock_state();
        if st
            .clients
            .get(&client_id)
            .is_some_and(|c| c.waiting.swap(false, Relaxed))
        {
            st.waiters.retain(|w| w.client.id != client_id);
        }
        if let Some(client) = st.clients.remove(&client_id) {
            let unsent = std::mem::take(&mut *client.outbox.lock());
            let mut returned = false;
            for msg in unsent {
                if let Ok(f) = Self::remove_in_flight(&mut st, client_id, msg.id) {
                    // Never sent: back at the front, as if never delivered.
                    let mut msg = f.msg;
                    msg.attempts = msg.attempts.wrapping_sub(1);
                    st.ready.push_front((msg, f.origin));
                    returned = true;
                }
            }
            let remaining = st.clients.len();
            if returned {
                self.dispatch(st);
            }
            return remaining;
        }
        st.clients.len()
    }

    pub fn client_count(&self) -> usize {
        self.lock_state().clients.len()
    }

    pub fn pause(&self) {
        self.paused.store(true, Relaxed);
    }

    pub fn unpause(&self) {
        self.paused.store(false, Relaxed);
        for c in self.lock_state().clients.values() {
            c.wake.notify_one();
        }
    }

    /// Drop queued, in-flight and deferred messages; consumers' in-flight
    /// counts go back to zero.
    pub fn empty(&self) {
        let mut st = self.lock_state();
        st.queue.empty();
        st.ready.clear();
        st.dead.clear();
        st.moving.clear();
        st.in_flight.clear();
        st.deadlines.clear();
        st.deferred.clear();
        for c in st.clients.values() {
            c.outbox.lock().clear();
            c.in_flight.store(0, Relaxed);
            c.wake.notify_one();
        }
    }

    /// Mark deleted: refuse new messages and consumers, close the current
    /// consumers' connections, drop everything held.
    pub fn delete(&self) {
        self.exiting.store(true, Relaxed);
        let mut st = self.lock_state();
        for c in st.clients.values() {
            c.outbox.lock().clear();
            c.kill.cancel();
        }
        st.clients.clear();
        for w in st.waiters.drain(..) {
            w.client.waiting.store(false, Relaxed);
        }
        st.in_flight.clear();
        st.deadlines.clear();
        st.deferred.clear();
        let queue = std::mem::replace(&mut st.queue, Queue::closed());
        drop(st);
        queue.delete();
    }

    /// Shutdown: everything the channel holds is on disk where a restart
    /// (ours, or NSQ's) finds it. In-flight and requeued messages go back
    /// to the queue's tail (NSQ's format); deferred ones stay in the
    /// deferred store with their due time (NSQ does not read that file:
    /// see the README).
    pub fn persist(&self) -> Result<(), BackendError> {
        self.exiting.store(true, Relaxed);
        let mut st = self.lock_state();
        // What is handed but unsent is in flight, and is written below.
        for c in st.clients.values() {
            c.outbox.lock().clear();
        }
        st.deadlines.clear();
        let mut back: Vec<(Message, Origin)> = st.ready.drain(..).collect();
        // Dead letters not moved yet stay here, to be moved after a restart.
        back.extend(std::mem::take(&mut st.dead));
        back.extend(st.in_flight.drain().map(|(_, f)| (f.msg, f.origin)));
        for d in std::mem::take(&mut st.deferred)
            .into_sorted_vec()
            .into_iter()
            .rev()
        {
            match d.origin {
                // Stored with its due time already: it stays there.
                Origin::Store(_) => {}
                _ => back.push((d.msg, d.origin)),
            }
        }
        let held: Vec<Held> = back
            .iter()
            .filter_map(|(_, o)| match o {
                Origin::Queue(h) => Some(*h),
                _ => None,
            })
            .collect();
        let stored: Vec<EntryId> = back
            .iter()
            .filter_map(|(_, o)| match o {
                Origin::Store(e) => Some(*e),
                _ => None,
            })
            .collect();
        let msgs = back.into_iter().map(|(m, _)| m);
        st.queue.persist(msgs, held, stored)
    }

    /// The syncs this channel's storage needs.
    pub fn sync_jobs(&self, with_meta: bool) -> Vec<SyncJob> {
        self.lock_state().queue.sync_jobs(with_meta)
    }

    /// Whether the channel has no consumers (for ephemeral cleanup), checked
    /// and marked exiting atomically so a concurrent SUB cannot slip in.
    pub fn mark_exiting_if_unused(&self) -> bool {
        let st = self.lock_state();
        if st.clients.is_empty() {
            self.exiting.store(true, Relaxed);
            true
        } else {
            false
        }
    }

    pub fn counts(&self) -> ChannelCounts {
        let st = self.lock_state();
        ChannelCounts {
            depth: st.queue.depth() + st.ready.len() as u64,
            backend_depth: st.queue.backend_depth(),
            in_flight: st.in_flight.len() as u64,
            deferred: st.deferred.len() as u64,
            clients: st.clients.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsqd::backend::MemoryOverflow;
    use bytes::Bytes;

    fn channel() -> Channel {
        Channel::new("t", "c", Queue::new(10, Box::<MemoryOverflow>::default()))
    }

    /// A client with room for any number of messages (RDY 1,000,000)
    /// unless a test sets its RDY.
    fn client(id: u64) -> Arc<ClientHandle> {
        let c = Arc::new(ClientHandle::new(
            id,
            crate::listen::PeerAddr::Tcp("127.0.0.1:1".parse().unwrap()),
        ));
        c.ready_count.store(1_000_000, Relaxed);
        c
    }

    fn msgs(n: u64) -> Vec<Message> {
        (0..n)
            .map(|i| Message::new(MessageId(i), 0, Bytes::from_static(b"m")))
            .collect()
    }

    /// A durable channel on disk in `dir`, caching `cache` messages.
    fn durable(dir: &std::path::Path, cache: usize) -> Channel {
        use crate::diskqueue::deferred::DeferredStore;
        use crate::diskqueue::{Config, DiskQueue};
        use crate::nsqd::backend::Disk;
        let cfg = Config {
            max_bytes_per_file: 1 << 20,
            min_record_size: 26,
            max_record_size: 1 << 20,
            sync_every: 2500,
        };
        let disk = Disk::new(DiskQueue::open(dir, "t:c", cfg).unwrap(), Arc::new(|| {}));
        let (store, found) = DeferredStore::open(dir, "t:c").unwrap();
        let mut queue = Queue::durable(disk, cache, Some(store));
        let recovered = queue.recovered_deferred(found);
        let ch = Channel::new("t", "c", queue);
        ch.restore_deferred(recovered);
        ch
    }

    fn sync(ch: &Channel) {
        for job in ch.sync_jobs(true) {
            job.run().unwrap();
        }
    }

    #[test]
    fn a_durable_channel_stores_every_message_until_fin() {
        let dir = tempfile::tempdir().unwrap();
        let meta = || std::fs::read_to_string(dir.path().join("t:c.diskqueue.meta.dat")).unwrap();
        let record_len = 4 + 26 + 1;
        // Cache for one: both go to disk, the first is also cached.
        let ch = durable(dir.path(), 1);
        let a = client(1);
        ch.put_from_topic(&msgs(2), Duration::ZERO).unwrap();
        assert_eq!(ch.counts().backend_depth, 1, "one cached, one only on disk");
        let mut out = Vec::new();
        assert_eq!(ch.take(&a, 2, Duration::from_secs(60), &mut out).taken, 2);
        sync(&ch);
        assert_eq!(
            meta(),
            format!("2\n0,0\n0,{}\n", 2 * record_len),
            "in flight: both records stay"
        );
        // REQ: the message moves to the deferred store; its record goes.
        ch.requeue(&a, out[0].id, Duration::ZERO).unwrap();
        sync(&ch);
        assert_eq!(meta(), format!("1\n0,{record_len}\n0,{}\n", 2 * record_len));
        // A crash now: the one in flight and the requeued one both come back.
        drop(ch);
        let ch = durable(dir.path(), 1);
        assert_eq!(ch.counts().depth, 2);
        out.clear();
        assert_eq!(ch.take(&a, 5, Duration::from_secs(60), &mut out).taken, 2);
        for m in &out {
            ch.finish(&a, m.id).unwrap();
        }
        sync(&ch);
        drop(ch);
        // All finished: nothing comes back.
        let ch = durable(dir.path(), 1);
        assert_eq!(ch.counts().depth, 0);
        assert_eq!(ch.counts().deferred, 0);
    }

    #[test]
    fn deferred_messages_keep_their_due_time_across_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let ch = durable(dir.path(), 10);
        ch.put_from_topic(&msgs(1), Duration::from_secs(3600))
            .unwrap();
        let a = client(1);
        ch.put_from_topic(&msgs(1)[..0], Duration::ZERO).unwrap();
        assert_eq!(ch.counts().deferred, 1);
        drop(ch); // a crash
        let ch = durable(dir.path(), 10);
        assert_eq!(ch.counts().deferred, 1, "still deferred");
        let mut out = Vec::new();
        assert_eq!(ch.take(&a, 1, Duration::from_secs(60), &mut out).taken, 0);
        // Due in about an hour, not now.
        let next = ch.process_timers(Instant::now()).unwrap();
        assert!(next > Instant::now() + Duration::from_secs(3500));
    }

    #[test]
    fn fair_level_splits_evenly_around_small_rooms() {
        assert_eq!(fair_level(400, &[1000, 1000], 0), 200);
        assert_eq!(fair_level(100, &[1000; 4], 0), 25);
        assert_eq!(fair_level(400, &[1000, 1000, 0, 7], 0), 197);
        // A busy consumer keeps its part queued.
        assert_eq!(fair_level(400, &[1000], 1), 200);
        assert_eq!(fair_level(1, &[5, 5, 5], 0), 1);
        // Everyone capped by room: the level no longer matters.
        assert_eq!(fair_level(10, &[1, 1], 0), 8);
        assert_eq!(fair_level(0, &[], 0), 1);
    }

    #[test]
    fn a_burst_is_handed_to_waiting_consumers_evenly() {
        let ch = Channel::new("t", "c", Queue::new(1000, Box::<MemoryOverflow>::default()));
        let clients: Vec<_> = (1..=3).map(client).collect();
        let mut out = Vec::new();
        for (c, rdy) in clients.iter().zip([100, 100, 4]) {
            ch.add_client(c.clone(), 0).unwrap();
            c.ready_count.store(rdy, Relaxed);
            // Nothing queued: each becomes a waiter.
            assert!(ch.take(c, 10, Duration::from_secs(60), &mut out).dry);
        }
        ch.put_from_topic(&msgs(100), Duration::ZERO).unwrap();
        let handed: Vec<usize> = clients.iter().map(|c| c.outbox.lock().len()).collect();
        assert_eq!(handed, vec![48, 48, 4]);
        assert_eq!(clients[2].in_flight.load(Relaxed), 4, "handed is in flight");
        // A consumer that leaves gives back what it was handed, unsent.
        ch.remove_client(1);
        assert_eq!(ch.counts().in_flight, 52);
        assert_eq!(ch.counts().depth, 48);
    }

    /// A consumer counts its room against RDY before taking the channel's
    /// lock; a dispatch may hand it messages meanwhile (it was waiting).
    /// The take must count those too: RDY 2 means at most 2 in flight.
    #[test]
    fn a_take_counted_before_a_dispatch_stays_within_rdy() {
        let ch = channel();
        let a = client(1);
        ch.add_client(a.clone(), 0).unwrap();
        a.ready_count.store(2, Relaxed);
        let mut out = Vec::new();
        assert!(ch.take(&a, 2, Duration::from_secs(60), &mut out).dry);
        // One message arrives and is handed to the waiting consumer...
        ch.put_from_topic(&msgs(1), Duration::ZERO).unwrap();
        assert_eq!(a.outbox.lock().len(), 1);
        // ...which meanwhile had counted room for 2 and now takes.
        let more: Vec<Message> = (10..13)
            .map(|i| Message::new(MessageId(i), 0, Bytes::from_static(b"m")))
            .collect();
        ch.put_from_topic(&more, Duration::ZERO).unwrap();
        let took = ch.take(&a, 2, Duration::from_secs(60), &mut out);
        assert_eq!(took.taken, 1);
        assert_eq!(a.in_flight.load(Relaxed), 2);
        assert_eq!(ch.counts().in_flight, 2);
        // At RDY, a take takes nothing and does not make it a waiter.
        let took = ch.take(&a, 2, Duration::from_secs(60), &mut out);
        assert_eq!((took.taken, took.dry), (0, false));
    }

    /// Pipelined FINs under one lock: each gets its own outcome, in order,
    /// and only the ones done free a slot.
    /// A body that reports when the buffer it was cut from is freed.
    fn body_of_shared_buffer(freed: &Arc<std::sync::atomic::AtomicBool>) -> Bytes {
        struct Buffer(Vec<u8>, Arc<std::sync::atomic::AtomicBool>);
        impl AsRef<[u8]> for Buffer {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl Drop for Buffer {
            fn drop(&mut self) {
                self.1.store(true, Relaxed);
            }
        }
        Bytes::from_owner(Buffer(vec![b'b'; 1 << 16], freed.clone())).slice(100..300)
    }

    /// Messages 1 to `n`, each with a body of its own shared buffer, and
    /// the flags that report those buffers freed.
    fn messages_of_shared_buffers(n: u64) -> (Vec<Arc<AtomicBool>>, Vec<Message>) {
        let freed: Vec<_> = (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let msgs = freed
            .iter()
            .zip(1..)
            .map(|(f, id)| Message::new(MessageId(id), 0, body_of_shared_buffer(f)))
            .collect();
        (freed, msgs)
    }

    #[test]
    fn deferred_messages_do_not_keep_their_read_buffer_alive() {
        let ch = channel();
        let a = client(1);
        ch.add_client(a.clone(), 0).unwrap();
        // REQ with a delay.
        let requeued = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let msg = Message::new(MessageId(1), 0, body_of_shared_buffer(&requeued));
        ch.put_from_topic(&[msg], Duration::ZERO).unwrap();
        let mut taken = Vec::new();
        ch.take(&a, 1, Duration::from_secs(60), &mut taken);
        ch.requeue(&a, MessageId(1), Duration::from_secs(3600))
            .unwrap();
        drop(taken);
        assert!(requeued.load(Relaxed), "the deferred copy holds the buffer");
        // DPUB.
        let published = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let msg = Message::new(MessageId(2), 0, body_of_shared_buffer(&published));
        ch.put_from_topic(&[msg], Duration::from_secs(3600))
            .unwrap();
        assert!(
            published.load(Relaxed),
            "the deferred copy holds the buffer"
        );
        assert_eq!(ch.counts().deferred, 2);
    }

    #[test]
    fn touched_and_failed_messages_do_not_keep_their_read_buffer_alive() {
        let ch = channel();
        let a = client(1);
        ch.add_client(a.clone(), 0).unwrap();
        let (freed, msgs) = messages_of_shared_buffers(3);
        ch.put_from_topic(&msgs, Duration::ZERO).unwrap();
        drop(msgs);
        let mut taken = Vec::new();
        ch.take(&a, 3, Duration::from_millis(50), &mut taken);
        assert_eq!(taken.len(), 3);
        drop(taken);
        // TOUCH (held for long), REQ without delay, and a timeout.
        ch.touch(
            &a,
            MessageId(1),
            Duration::from_secs(60),
            Duration::from_secs(900),
        )
        .unwrap();
        ch.requeue(&a, MessageId(2), Duration::ZERO).unwrap();
        ch.process_timers(Instant::now() + Duration::from_millis(100));
        for (i, f) in freed.iter().enumerate() {
            assert!(f.load(Relaxed), "message {} holds its read buffer", i + 1);
        }
        assert_eq!(ch.counts().in_flight, 1);
    }

    /// A take stops once the output buffer holds `OUTPUT_BATCH_BYTES`
    /// (large messages), without counting as a turn given to others.
    #[test]
    fn a_take_stops_at_a_full_output_buffer() {
        let ch = channel();
        let a = client(1);
        a.ready_count.store(100, Relaxed);
        ch.add_client(a.clone(), 0).unwrap();
        let big: Vec<_> = (1..=20)
            .map(|i| Message::new(MessageId(i), 0, Bytes::from(vec![b'x'; 100_000])))
            .collect();
        ch.put_from_topic(&big, Duration::ZERO).unwrap();
        let mut out = bytes::BytesMut::new();
        let took = ch.take(&a, 20, Duration::from_secs(60), &mut out);
        assert_eq!(
            (took.taken, took.full, took.yielded, took.dry),
            (3, true, false, false)
        );
        assert_eq!(ch.counts().in_flight, 3);
        // Small messages: a whole batch.
        let small: Vec<_> = (100..612)
            .map(|i| Message::new(MessageId(i), 0, Bytes::from(vec![b'y'; 200])))
            .collect();
        let ch = channel();
        a.in_flight.store(0, Relaxed);
        a.ready_count.store(TAKE_BATCH as i64, Relaxed);
        ch.add_client(a.clone(), 0).unwrap();
        ch.put_from_topic(&small, Duration::ZERO).unwrap();
        let mut out = bytes::BytesMut::new();
        let took = ch.take(&a, TAKE_BATCH, Duration::from_secs(60), &mut out);
        assert_eq!((took.taken, took.full), (TAKE_BATCH, false));
    }

    #[test]
    fn messages_held_long_do_not_keep_their_read_buffer_alive() {
        let ch = channel();
        let a = client(1);
        ch.add_client(a.clone(), 0).unwrap();
        let (freed, mut msgs) = messages_of_shared_buffers(2);
        let large = Bytes::from(vec![b'x'; TOUCH_COPY_MAX + 1]);
        msgs.push(Message::new(MessageId(3), 0, large));
        ch.put_from_topic(&msgs, Duration::ZERO).unwrap();
        drop(msgs);
        let mut taken = Vec::new();
        ch.take(&a, 3, Duration::from_secs(60), &mut taken);
        drop(taken);
        let t0 = Instant::now();
        let body_at = |id| ch.lock_state().in_flight[&MessageId(id)].msg.body.as_ptr();
        let large_at = body_at(3);
        // The timer task is asked to come back for the sweep.
        let due = ch.lock_state().next_deadline().unwrap();
        assert!(due <= t0 + HELD_LONG, "no sweep scheduled");
        // Message 2 is taken as if 10 s later.
        let later = t0 + Duration::from_secs(10);
        ch.lock_state()
            .in_flight
            .get_mut(&MessageId(2))
            .unwrap()
            .delivered_at = later;

        ch.process_timers(t0 + HELD_LONG / 2);
        assert!(!freed[0].load(Relaxed), "copied before it was held long");
        ch.process_timers(t0 + HELD_LONG + Duration::from_millis(1));
        assert!(freed[0].load(Relaxed), "message 1 holds its read buffer");
        assert!(!freed[1].load(Relaxed), "message 2 copied too early");
        assert_eq!(body_at(3), large_at, "a large body is not copied");
        assert_eq!(ch.counts().in_flight, 3, "nothing timed out");
        let copied_at = body_at(1);

        // The next sweep is when message 2 will have been held long.
        let due = ch.lock_state().next_deadline().unwrap();
        assert_eq!(due, later + HELD_LONG);
        ch.process_timers(due);
        assert!(freed[1].load(Relaxed), "message 2 holds its read buffer");
        assert_eq!(body_at(1), copied_at, "a body is copied once");
        assert_eq!(ch.lock_state().next_sweep, None, "all swept");
        assert_eq!(
            &ch.lock_state().in_flight[&MessageId(1)].msg.body[..],
            &[b'b'; 200]
        );
    }

    #[test]
    fn id_hashes_spread_over_buckets_and_tags_whatever_the_rate() {
        use crate::protocol::message::IdGenerator;
        let hash = |id: MessageId| {
            let mut h = IdHasher::default();
            std::hash::Hash::hash(&id, &mut h);
            h.finish()
        };
        let buckets = |ids: &[MessageId]| {
            ids.iter()
                .map(|&id| hash(id) & 0xfff)
                .collect::<BTreeSet<_>>()
                .len()
        };
        let tags = |ids: &[MessageId]| {
            ids.iter()
                .map(|&id| hash(id) >> 57)
                .collect::<BTreeSet<_>>()
                .len()
        };
        // One message per millisecond: every ID has sequence 0.
        let mut g = IdGenerator::new(7);
        let slow: Vec<_> = (0..4096i64)
            .map(|ms| g.next_id_at((1_700_000_000_000 + ms) << 20))
            .collect();
        // Many in one millisecond: sequences 0..4095.
        let fast: Vec<_> = (0..4096)
            .map(|_| g.next_id_at(1_800_000_000_000 << 20))
            .collect();
        // Random placement would fill about 63 % of the 4096 buckets.
        assert!(buckets(&slow) > 2000, "slow: {} buckets", buckets(&slow));
        assert!(buckets(&fast) > 2000, "fast: {} buckets", buckets(&fast));
        // Neighbours in the table (a group is 16 buckets) must not share
        // their tags, or a look-up compares keys all through the group.
        for group in fast.windows(16) {
            assert!(tags(group) >= 12, "{} tags in a group", tags(group));
        }
    }

    #[test]
    fn touch_does_not_copy_large_bodies_again_and_again() {
        let ch = channel();
        let a = client(1);
        ch.add_client(a.clone(), 0).unwrap();
        let body = Bytes::from(vec![b'x'; TOUCH_COPY_MAX + 1]);
        ch.put_from_topic(&[Message::new(MessageId(1), 0, body)], Duration::ZERO)
            .unwrap();
        let mut taken = Vec::new();
        ch.take(&a, 1, Duration::from_secs(60), &mut taken);
        let at = ch.lock_state().in_flight[&MessageId(1)].msg.body.as_ptr();
        for _ in 0..3 {
            ch.touch(
                &a,
                MessageId(1),
                Duration::from_secs(60),
                Duration::from_secs(900),
            )
            .unwrap();
        }
        let st = ch.lock_state();
        assert_eq!(st.in_flight[&MessageId(1)].msg.body.as_ptr(), at);
    }

    #[test]
    fn finish_many_answers_each_in_order() {
        let ch = channel();
        let (a, b) = (client(1), client(2));
        ch.add_client(a.clone(), 0).unwrap();
        ch.add_client(b.clone(), 0).unwrap();
        ch.put_from_topic(&msgs(4), Duration::ZERO).unwrap();
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        // b has no room yet, so a's share is not halved.
        b.ready_count.store(0, Relaxed);
        ch.take(&a, 3, Duration::from_secs(60), &mut mine);
        b.ready_count.store(1, Relaxed);
        ch.take(&b, 1, Duration::from_secs(60), &mut theirs);
        let ids = [
            mine[0].id.to_hex(),
            theirs[0].id.to_hex(),
            *b"not-a-message-id",
            mine[2].id.to_hex(),
            mine[0].id.to_hex(),
        ];
        let mut got = Vec::new();
        ch.finish_many(&a, &ids, |raw, outcome| {
            got.push((*raw, outcome.map(|_| ())))
        });
        let want = [
            Ok(()),
            Err(InFlightError::NotOwner),
            Err(InFlightError::NotInFlight),
            Ok(()),
            Err(InFlightError::NotInFlight),
        ];
        assert_eq!(got.iter().map(|(r, _)| *r).collect::<Vec<_>>(), ids);
        assert_eq!(got.into_iter().map(|(_, o)| o).collect::<Vec<_>>(), want);
        assert_eq!(a.in_flight.load(Relaxed), 1);
        assert_eq!(a.finish_count.load(Relaxed), 2);
        assert_eq!(b.in_flight.load(Relaxed), 1);
        assert!(ch.finish(&a, mine[1].id).is_ok());
    }

    #[test]
    fn finish_many_past_one_lock_hold_answers_all_in_order() {
        let ch = channel();
        let a = client(1);
        ch.add_client(a.clone(), 0).unwrap();
        let n = FIN_CHUNK * 2 + 7;
        ch.put_from_topic(&msgs(n as u64), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        while out.len() < n {
            ch.take(&a, n, Duration::from_secs(60), &mut out);
        }
        // Every third ID is bogus; each FIN is answered once, in order.
        let ids: Vec<[u8; 16]> = out
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i % 3 == 2 {
                    *b"not-a-message-id"
                } else {
                    m.id.to_hex()
                }
            })
            .collect();
        let mut got = Vec::new();
        ch.finish_many(&a, &ids, |raw, outcome| got.push((*raw, outcome.is_ok())));
        let want: Vec<([u8; 16], bool)> = ids
            .iter()
            .enumerate()
            .map(|(i, r)| (*r, i % 3 != 2))
            .collect();
        assert_eq!(got, want);
        let finished = want.iter().filter(|(_, ok)| *ok).count();
        assert_eq!(a.finish_count.load(Relaxed), finished as u64);
        assert_eq!(a.in_flight.load(Relaxed), (n - finished) as i64);
    }

    #[test]
    fn take_fin_and_ownership() {
        let ch = channel();
        let (a, b) = (client(1), client(2));
        ch.add_client(a.clone(), 0).unwrap();
        ch.add_client(b.clone(), 0).unwrap();
        ch.put_from_topic(&msgs(3), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        assert_eq!(ch.take(&a, 2, Duration::from_secs(60), &mut out).taken, 2);
        assert_eq!(out[0].attempts, 1);
        assert_eq!(a.in_flight.load(Relaxed), 2);
        assert_eq!(ch.finish(&b, out[0].id), Err(InFlightError::NotOwner));
        assert!(ch.finish(&a, out[0].id).is_ok());
        assert_eq!(a.in_flight.load(Relaxed), 1, "FIN frees the slot");
        assert_eq!(a.finish_count.load(Relaxed), 1);
        assert_eq!(ch.finish(&a, out[0].id), Err(InFlightError::NotInFlight));
        assert_eq!(a.in_flight.load(Relaxed), 1, "a failed FIN frees nothing");
        ch.requeue(&a, out[1].id, Duration::ZERO).unwrap();
        assert_eq!(a.in_flight.load(Relaxed), 0, "REQ frees the slot");
        assert_eq!(a.requeue_count.load(Relaxed), 1);
        assert_eq!(ch.counts().in_flight, 0);
    }

    #[test]
    fn timeout_requeues_with_attempts_kept() {
        let ch = channel();
        let a = client(1);
        ch.add_client(a.clone(), 0).unwrap();
        ch.put_from_topic(&msgs(1), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        ch.take(&a, 1, Duration::from_millis(1), &mut out);
        ch.process_timers(Instant::now() + Duration::from_millis(5));
        assert_eq!(ch.timeout_count.load(Relaxed), 1);
        assert_eq!(a.in_flight.load(Relaxed), 0);
        out.clear();
        ch.take(&a, 1, Duration::from_secs(1), &mut out);
        assert_eq!(out[0].attempts, 2);
    }

    #[test]
    fn deferred_waits_until_due() {
        let ch = channel();
        let a = client(1);
        ch.put_from_topic(&msgs(1), Duration::from_millis(50))
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(ch.take(&a, 1, Duration::from_secs(1), &mut out).taken, 0);
        assert_eq!(ch.counts().deferred, 1);
        ch.process_timers(Instant::now() + Duration::from_millis(60));
        // Due: handed to the client, which waits for it.
        assert_eq!(a.outbox.lock().len(), 1);
        assert_eq!(ch.counts().deferred, 0);
    }

    #[test]
    fn touch_is_capped() {
        let ch = channel();
        let a = client(1);
        ch.put_from_topic(&msgs(1), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        ch.take(&a, 1, Duration::from_millis(10), &mut out);
        ch.touch(
            &a,
            out[0].id,
            Duration::from_secs(100),
            Duration::from_millis(20),
        )
        .unwrap();
        assert!(
            ch.process_timers(Instant::now()).unwrap()
                <= Instant::now() + Duration::from_millis(20)
        );
    }

    #[test]
    fn deadlines_expire_in_order_and_stay_bounded() {
        let ch = channel();
        let a = client(1);
        ch.put_from_topic(&msgs(5000), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        // Mixed timeouts: later deliveries with shorter timeouts go out of order.
        ch.take(&a, 2000, Duration::from_secs(60), &mut out);
        ch.take(&a, 10, Duration::from_millis(1), &mut out);
        for m in &out[..2000] {
            ch.finish(&a, m.id).unwrap();
        }
        {
            let st = ch.lock_state();
            assert!(st.deadlines.fifo.len() <= 2 * st.in_flight.len() + 1024 + 1);
        }
        ch.process_timers(Instant::now() + Duration::from_millis(5));
        assert_eq!(ch.timeout_count.load(Relaxed), 10);
        assert_eq!(ch.counts().in_flight, 0);
    }
}
