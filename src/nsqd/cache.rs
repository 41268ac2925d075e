//! The messages a queue holds in memory, kept small.
//!
//! `--mem-queue-size` lets a queue hold millions of messages in memory, so
//! what each one costs beyond its body matters. A [`Message`] is 56 bytes,
//! and its body is a slice of whatever buffer it arrived in (a socket read,
//! a disk read-ahead), which that slice keeps alive. Here a message costs a
//! 16-byte [`Slot`] (ID, offset, length); what the messages of one publish
//! share (the buffer holding their bodies, the timestamp, the attempt
//! count) is stored once per [`Run`].
//!
//! A message that joins a deep cache is copied: the bodies of its
//! [`Batch`] go back to back into an [`Arena`]'s buffer, once per batch
//! (a topic's channels share the topic's copy), so the cache keeps no
//! socket or disk buffer alive. A shallow cache, which is what a queue
//! whose consumers keep up has, keeps each body as it came: its messages
//! leave soon, and copying them would cost every message a little for
//! nothing.

use crate::protocol::{Message, MessageId};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// Size of the buffers an [`Arena`] copies bodies into: that of a
/// connection's read buffer, whose slices message bodies are, so a
/// message kept for long (in flight to a slow consumer) pins no more than
/// it would have anyway.
const ARENA_CHUNK: usize = 64 * 1024;

/// Up to this many messages, a cache keeps bodies as they came (see the
/// module's notes).
const SHALLOW: usize = 8192;

/// Capacity a cache keeps when it is emptied, so that a queue that was
/// deep once does not hold that memory for ever.
const KEEP_AFTER_CLEAR: usize = 1024;

/// A slot's `len` meaning "the whole base": a body kept as it came.
const WHOLE: u32 = u32::MAX;

/// The buffers holding a batch's copied bodies, in order: the rest of the
/// arena's buffer, then (if the batch did not fit) a new one. Unused ones
/// are empty.
type Bases = [Bytes; 2];

/// Copies batches of bodies, one after another, into shared buffers.
///
/// A batch that does not fit the rest of the current buffer fills it and
/// goes on in a new one, so nothing is left unused but the end of a
/// buffer smaller than the next body.
#[derive(Default)]
pub struct Arena {
    /// The unused rest of the current buffer: each batch is split off it.
    rest: BytesMut,
}

impl Arena {
    /// Copy `bodies` back to back: into the rest of the current buffer
    /// while they fit, then into a new one.
    fn copy<'a>(&mut self, bodies: impl Iterator<Item = &'a [u8]> + Clone) -> Bases {
        let mut room = self.rest.capacity();
        let fitting = bodies
            .clone()
            .take_while(|b| match room.checked_sub(b.len()) {
                Some(left) => {
                    room = left;
                    true
                }
                None => false,
            })
            .count();
        for body in bodies.clone().take(fitting) {
            self.rest.extend_from_slice(body);
        }
        let first = self.rest.split().freeze();
        let more: usize = bodies.clone().skip(fitting).map(<[u8]>::len).sum();
        if more == 0 {
            return [first, Bytes::new()];
        }
        self.rest = BytesMut::with_capacity(more.max(ARENA_CHUNK));
        for body in bodies.skip(fitting) {
            self.rest.extend_from_slice(body);
        }
        [first, self.rest.split().freeze()]
    }
}

/// Walks a batch's bodies through its [`Bases`] as [`Arena::copy`] laid
/// them out: each body follows the last, in the first buffer while it fits.
#[derive(Default)]
struct Placement {
    base: usize,
    offset: usize,
}

impl Placement {
    /// Which base the next body of `len` bytes is in, and where.
    fn next(&mut self, bases: &Bases, len: usize) -> (usize, usize) {
        if self.base == 0 && self.offset + len > bases[0].len() {
            self.base = 1;
            self.offset = 0;
        }
        let at = (self.base, self.offset);
        self.offset += len;
        at
    }
}

/// Messages on their way into one or more queues (a publish, into each of
/// a topic's channels). The first deep cache that takes them has their
/// bodies copied, and every other one shares that copy.
pub struct Batch<'a> {
    msgs: &'a [Message],
    /// Where the copy goes; without one, into the first cache's own arena.
    arena: Option<&'a mut Arena>,
    copy: Option<Bases>,
}

impl<'a> Batch<'a> {
    /// A batch whose bodies are copied into `arena` when needed.
    pub fn new(msgs: &'a [Message], arena: &'a mut Arena) -> Self {
        Batch {
            msgs,
            arena: Some(arena),
            copy: None,
        }
    }

    /// A batch without an arena of its own.
    pub fn of(msgs: &'a [Message]) -> Self {
        Batch {
            msgs,
            arena: None,
            copy: None,
        }
    }

    pub fn msgs(&self) -> &'a [Message] {
        self.msgs
    }

    /// The copy of the bodies, made now if not yet.
    fn copy(&mut self, fallback: &mut Arena) -> &Bases {
        let msgs = self.msgs;
        let arena = self.arena.as_deref_mut().unwrap_or(fallback);
        self.copy
            .get_or_insert_with(|| arena.copy(msgs.iter().map(|m| &m.body[..])))
    }
}

/// A FIFO of messages in memory: see the module's notes.
pub struct MessageCache {
    /// [`SHALLOW`], but smaller in tests.
    shallow: usize,
    /// The oldest messages, kept as they came while the cache was shallow.
    head: VecDeque<Message>,
    /// The rest, compact: a message joins `head` only if this is empty.
    slots: VecDeque<Slot>,
    /// The slots' runs, in the same order: the first `count` slots belong
    /// to the first run, and so on.
    runs: VecDeque<Run>,
    /// Where bodies are copied when their batch has no arena.
    arena: Arena,
    /// The bodies' total length, for a queue's byte limit.
    body_bytes: usize,
}

/// One message: its ID, and where its body is in its run's base.
struct Slot {
    id: MessageId,
    offset: u32,
    len: u32,
}

// What a deep cache costs per message beyond its body, short of slack.
const _: () = assert!(std::mem::size_of::<Slot>() == 16);

/// Consecutive messages with one base, timestamp and attempt count.
struct Run {
    base: Bytes,
    timestamp: i64,
    attempts: u16,
    count: u32,
}

impl Default for MessageCache {
    fn default() -> Self {
        MessageCache {
            shallow: SHALLOW,
            head: VecDeque::new(),
            slots: VecDeque::new(),
            runs: VecDeque::new(),
            arena: Arena::default(),
            body_bytes: 0,
        }
    }
}

impl MessageCache {
    pub fn len(&self) -> usize {
        self.head.len() + self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.slots.is_empty()
    }

    /// The total length of the bodies held.
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// Append the first `n` messages of `batch`.
    pub fn extend(&mut self, batch: &mut Batch, n: usize) {
        let msgs = &batch.msgs()[..n];
        let shallow = if self.slots.is_empty() {
            self.shallow.saturating_sub(self.head.len()).min(n)
        } else {
            0
        };
        for m in &msgs[..shallow] {
            self.body_bytes += m.body.len();
            self.head.push_back(m.clone());
        }
        if shallow == n {
            return;
        }
        let total: usize = msgs.iter().map(|m| m.body.len()).sum();
        if total >= WHOLE as usize {
            // Offsets past 4 GiB do not fit a slot (nor does such a batch
            // fit a protocol frame): those bodies stay as they came.
            for m in &msgs[shallow..] {
                self.push(&m.body, m, 0, WHOLE);
            }
            return;
        }
        let bases = batch.copy(&mut self.arena);
        let mut place = Placement::default();
        for (i, m) in msgs.iter().enumerate() {
            let (base, offset) = place.next(bases, m.body.len());
            if i >= shallow {
                self.push(&bases[base], m, offset as u32, m.body.len() as u32);
            }
        }
    }

    fn push(&mut self, base: &Bytes, m: &Message, offset: u32, len: u32) {
        self.body_bytes += m.body.len();
        match self.runs.back_mut() {
            Some(run)
                if same_buffer(&run.base, base)
                    && run.timestamp == m.timestamp
                    && run.attempts == m.attempts
                    && run.count < u32::MAX =>
            {
                run.count += 1
            }
            _ => self.runs.push_back(Run {
                base: base.clone(),
                timestamp: m.timestamp,
                attempts: m.attempts,
                count: 1,
            }),
        }
        self.slots.push_back(Slot {
            id: m.id,
            offset,
            len,
        });
    }

    /// Take the message at the head.
    pub fn pop_front(&mut self) -> Option<Message> {
        let msg = match self.head.pop_front() {
            Some(msg) => msg,
            None => {
                let slot = self.slots.pop_front()?;
                let run = self.runs.front_mut()?;
                let msg = run.message(&slot);
                run.count -= 1;
                if run.count == 0 {
                    self.runs.pop_front();
                }
                msg
            }
        };
        self.body_bytes -= msg.body.len();
        Some(msg)
    }

    /// The messages from the head on, changing nothing.
    pub fn iter(&self) -> impl Iterator<Item = Message> + '_ {
        let mut runs = self.runs.iter();
        let mut run: Option<&Run> = None;
        let mut left = 0;
        let compact = self.slots.iter().map_while(move |slot| {
            while left == 0 {
                run = Some(runs.next()?);
                left = run?.count;
            }
            left -= 1;
            Some(run?.message(slot))
        });
        self.head.iter().cloned().chain(compact)
    }

    /// Drop every message, and most of the memory they used.
    pub fn clear(&mut self) {
        self.body_bytes = 0;
        self.head.clear();
        self.head.shrink_to(KEEP_AFTER_CLEAR);
        self.slots.clear();
        self.runs.clear();
        self.slots.shrink_to(KEEP_AFTER_CLEAR);
        self.runs.shrink_to(KEEP_AFTER_CLEAR);
    }
}

impl Run {
    fn message(&self, slot: &Slot) -> Message {
        let start = slot.offset as usize;
        let body = match slot.len {
            WHOLE => self.base.clone(),
            len => self.base.slice(start..start + len as usize),
        };
        Message {
            id: slot.id,
            timestamp: self.timestamp,
            attempts: self.attempts,
            body,
        }
    }
}

/// Whether `a` and `b` are the same bytes. For bodies kept whole, two
/// equal empty bodies may count as one buffer: slicing nothing from
/// either gives the same.
fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(id: u64, timestamp: i64, body: &str) -> Message {
        Message::new(
            MessageId(id),
            timestamp,
            Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    fn bodies(cache: &MessageCache) -> Vec<String> {
        cache
            .iter()
            .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
            .collect()
    }

    fn drain(cache: &mut MessageCache) -> Vec<Message> {
        std::iter::from_fn(|| cache.pop_front()).collect()
    }

    fn inside(buffer: &Bytes, body: &Bytes) -> bool {
        let (p, b) = (body.as_ptr() as usize, buffer.as_ptr() as usize);
        p >= b && p < b + buffer.len()
    }

    /// A cache already holding `SHALLOW` messages, and those messages.
    fn deep() -> (MessageCache, Vec<Message>) {
        let mut cache = MessageCache::default();
        let filler: Vec<Message> = (0..SHALLOW as u64)
            .map(|i| msg(1_000_000 + i, 0, "f"))
            .collect();
        cache.extend(&mut Batch::of(&filler), filler.len());
        (cache, filler)
    }

    fn put(cache: &mut MessageCache, msgs: &[Message]) {
        cache.extend(&mut Batch::of(msgs), msgs.len());
    }

    #[test]
    fn messages_come_back_whole_and_in_order_shallow_or_deep() {
        for (mut cache, filler) in [(MessageCache::default(), Vec::new()), deep()] {
            let batch = vec![msg(1, 10, "one"), msg(2, 10, ""), msg(3, 10, "three")];
            put(&mut cache, &batch);
            let mut later = msg(4, 20, "four");
            later.attempts = 3;
            put(&mut cache, std::slice::from_ref(&later));
            assert_eq!(cache.len(), filler.len() + 4);
            let expected: Vec<Message> = filler.into_iter().chain(batch).chain([later]).collect();
            assert_eq!(cache.iter().collect::<Vec<_>>(), expected);
            assert_eq!(drain(&mut cache), expected);
            assert!(cache.is_empty() && cache.runs.is_empty() && cache.head.is_empty());
        }
    }

    #[test]
    fn order_holds_as_the_cache_turns_deep_and_back() {
        let mut cache = MessageCache::default();
        let mut expected = std::collections::VecDeque::new();
        let mut next_id = 0;
        let mut add = |cache: &mut MessageCache, expected: &mut VecDeque<Message>, n: usize| {
            let batch: Vec<Message> = (0..n)
                .map(|_| {
                    next_id += 1;
                    msg(next_id, next_id as i64 / 7, &format!("body {next_id}"))
                })
                .collect();
            let mut arena = Arena::default();
            cache.extend(&mut Batch::new(&batch, &mut arena), n);
            expected.extend(batch);
        };
        // A batch straddling the shallow limit: its first two stay as they
        // came, the rest are copied (their offsets counted from the start).
        add(&mut cache, &mut expected, SHALLOW - 2);
        add(&mut cache, &mut expected, 5);
        assert_eq!((cache.head.len(), cache.slots.len()), (SHALLOW, 3));
        for round in 0..4 {
            for _ in 0..(SHALLOW / 2 + round) {
                assert_eq!(cache.pop_front(), expected.pop_front());
            }
            add(&mut cache, &mut expected, 3 + round);
            assert_eq!(cache.iter().collect::<VecDeque<_>>(), expected);
        }
        assert_eq!(drain(&mut cache), Vec::from(expected));
    }

    #[test]
    fn a_shallow_cache_keeps_bodies_as_they_came() {
        let mut cache = MessageCache::default();
        let m = msg(1, 0, "as it came");
        put(&mut cache, std::slice::from_ref(&m));
        assert_eq!(cache.pop_front().unwrap().body.as_ptr(), m.body.as_ptr());
    }

    #[test]
    fn a_deep_cache_copies_so_that_the_buffer_bodies_came_in_can_go() {
        let (mut cache, filler) = deep();
        let foreign = Bytes::from(vec![7u8; 64 * 1024]);
        let m = Message::new(MessageId(1), 0, foreign.slice(100..110));
        put(&mut cache, std::slice::from_ref(&m));
        let got = drain(&mut cache).pop().unwrap();
        assert_eq!(got, m);
        assert!(
            !inside(&foreign, &got.body),
            "the cache kept the foreign buffer"
        );
        drop(filler);
    }

    #[test]
    fn channels_share_one_copy_made_in_the_topics_arena() {
        let mut arena = Arena::default();
        let batch: Vec<Message> = (0..100).map(|i| msg(i, 5, "body")).collect();
        let (mut a, _) = deep();
        let (mut b, _) = deep();
        let mut shared = Batch::new(&batch, &mut arena);
        a.extend(&mut shared, batch.len());
        b.extend(&mut shared, 10);
        let copy = shared.copy.clone().expect("copied once");
        // One run each, on the same bytes, none of them the originals.
        assert_eq!((a.runs.len(), b.runs.len()), (1, 1));
        let (from_a, from_b) = (drain(&mut a), drain(&mut b));
        assert_eq!(&from_a[SHALLOW..], &batch[..]);
        assert_eq!(&from_b[SHALLOW..], &batch[..10]);
        for m in from_a[SHALLOW..].iter().chain(&from_b[SHALLOW..]) {
            assert!(inside(&copy[0], &m.body) || inside(&copy[1], &m.body));
        }
        // A batch without an arena is copied into the first cache's, and
        // the others share that copy.
        let (mut c, _) = deep();
        let (mut d, _) = deep();
        let mut loose = Batch::of(&batch);
        c.extend(&mut loose, batch.len());
        d.extend(&mut loose, batch.len());
        let copy = loose.copy.clone().expect("copied once");
        let last = |cache: &mut MessageCache| drain(cache).pop().unwrap();
        let (in_c, in_d) = (last(&mut c), last(&mut d));
        assert_eq!(in_c.body.as_ptr(), in_d.body.as_ptr());
        assert!(inside(&copy[0], &in_c.body) || inside(&copy[1], &in_c.body));
    }

    #[test]
    fn a_run_ends_where_timestamp_attempts_or_buffer_change() {
        let (mut cache, _) = deep();
        let before = cache.runs.len();
        put(
            &mut cache,
            &[msg(1, 1, "a"), msg(2, 1, "b"), msg(3, 2, "c")],
        );
        put(&mut cache, &[msg(4, 2, "d")]);
        let mut retried = msg(5, 2, "e");
        retried.attempts = 2;
        put(&mut cache, std::slice::from_ref(&retried));
        assert_eq!(cache.runs.len() - before, 4);
        let tail: Vec<(i64, u16)> = cache
            .iter()
            .skip(SHALLOW)
            .map(|m| (m.timestamp, m.attempts))
            .collect();
        assert_eq!(tail, [(1, 0), (1, 0), (2, 0), (2, 0), (2, 2)]);
        assert_eq!(bodies(&cache)[SHALLOW..], ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn iteration_does_not_consume_and_clear_empties() {
        let mut cache = MessageCache::default();
        put(&mut cache, &[msg(1, 0, "x"), msg(2, 0, "y")]);
        assert_eq!(cache.iter().count(), 2);
        assert_eq!(cache.iter().take(1).count(), 1);
        assert_eq!(cache.len(), 2);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.pop_front(), None);
        assert_eq!(cache.iter().count(), 0);
    }

    #[test]
    fn the_arena_fills_a_buffer_before_starting_the_next() {
        let mut arena = Arena::default();
        let third = "x".repeat(ARENA_CHUNK / 3);
        let bodies = |n: usize| vec![third.as_bytes(); n];
        // A new arena has no buffer yet: the first batch starts one.
        let [none, a] = arena.copy(bodies(2).into_iter());
        assert!(none.is_empty());
        assert_eq!(a.len(), 2 * third.len());
        // The next batch does not fit whole: its first body goes at the
        // end of the same buffer, the rest into a new one.
        let [b0, b1] = arena.copy(bodies(2).into_iter().chain([&b""[..]]));
        assert_eq!(a.as_ptr() as usize + a.len(), b0.as_ptr() as usize);
        assert_eq!((b0.len(), b1.len()), (third.len(), third.len()));
        // A batch larger than a buffer gets one of its own size.
        let big = vec![b'y'; ARENA_CHUNK + 1];
        let [c0, c1] = arena.copy([&big[..]].into_iter());
        assert_eq!(c0.len() + c1.len(), ARENA_CHUNK + 1);
    }

    #[test]
    fn a_batch_split_across_two_buffers_comes_back_whole() {
        let (mut cache, filler) = deep();
        let half = "z".repeat(ARENA_CHUNK / 2 + 1);
        let batch: Vec<Message> = (0..5).map(|i| msg(i, 0, &half)).collect();
        put(&mut cache, &batch[..1]);
        put(&mut cache, &batch[1..]);
        let expected: Vec<Message> = filler.into_iter().chain(batch).collect();
        assert_eq!(drain(&mut cache), expected);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A batch of bodies of these lengths, of which `take` of every
        /// cache take a prefix; shared through a topic arena or not.
        Put {
            lens: Vec<usize>,
            take: Vec<usize>,
            arena: bool,
        },
        Pop(usize),
        Peek(usize),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (
                proptest::collection::vec(0usize..3000, 1..60),
                proptest::collection::vec(0usize..70, 3),
                any::<bool>()
            )
                .prop_map(|(lens, take, arena)| Op::Put { lens, take, arena }),
            3 => (0usize..80).prop_map(Op::Pop),
            1 => (0usize..100).prop_map(Op::Peek),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Three caches fed the same batches (each a prefix of its own
        /// length, as channels whose caches are full to different
        /// degrees) behave as plain FIFOs of whole messages, through
        /// shallow and deep, across buffers, and cleared.
        #[test]
        fn caches_behave_as_fifos(ops in proptest::collection::vec(op(), 1..80), shallow in 0usize..40) {
            let mut caches: Vec<MessageCache> = (0..3)
                .map(|_| MessageCache { shallow, ..Default::default() })
                .collect();
            let mut models: Vec<VecDeque<Message>> = vec![VecDeque::new(); 3];
            let mut topic_arena = Arena::default();
            let mut id = 0u64;
            for op in ops {
                match op {
                    Op::Put { lens, take, arena } => {
                        let batch: Vec<Message> = lens
                            .iter()
                            .map(|&len| {
                                id += 1;
                                let mut m = Message::new(
                                    MessageId(id),
                                    (id / 5) as i64,
                                    Bytes::from(vec![(id % 251) as u8; len]),
                                );
                                m.attempts = (id % 3) as u16;
                                m
                            })
                            .collect();
                        let mut shared = if arena {
                            Batch::new(&batch, &mut topic_arena)
                        } else {
                            Batch::of(&batch)
                        };
                        for ((cache, model), n) in caches.iter_mut().zip(&mut models).zip(take) {
                            let n = n.min(batch.len());
                            cache.extend(&mut shared, n);
                            model.extend(batch[..n].iter().cloned());
                        }
                    }
                    Op::Pop(k) => {
                        for (cache, model) in caches.iter_mut().zip(&mut models) {
                            for _ in 0..k {
                                prop_assert_eq!(cache.pop_front(), model.pop_front());
                            }
                        }
                    }
                    Op::Peek(k) => {
                        for (cache, model) in caches.iter().zip(&models) {
                            let got: Vec<Message> = cache.iter().take(k).collect();
                            let want: Vec<Message> = model.iter().take(k).cloned().collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                    Op::Clear => {
                        for (cache, model) in caches.iter_mut().zip(&mut models) {
                            cache.clear();
                            model.clear();
                        }
                    }
                }
                for (cache, model) in caches.iter().zip(&models) {
                    prop_assert_eq!(cache.len(), model.len());
                    let bytes: usize = model.iter().map(|m| m.body.len()).sum();
                    prop_assert_eq!(cache.body_bytes(), bytes);
                }
            }
            for (cache, model) in caches.iter_mut().zip(models) {
                prop_assert_eq!(drain(cache), Vec::from(model));
            }
        }
    }

    #[test]
    fn a_slot_can_stand_for_a_whole_body() {
        let mut cache = MessageCache::default();
        let m = msg(9, 1, "whole");
        cache.push(&m.body, &m, 0, WHOLE);
        put(&mut cache, &[msg(10, 1, "next")]);
        assert_eq!(bodies(&cache), ["whole", "next"]);
        assert_eq!(cache.pop_front(), Some(m));
    }
}
