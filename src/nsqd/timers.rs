//! When channels need their timers run: one min-heap of (deadline,
//! channel) for the whole engine, so that the timer task sleeps until the
//! earliest real deadline and costs nothing while nothing is due, however
//! many topics and channels exist (NSQ samples every channel every 100 ms;
//! nsqio/nsq#577).
//!
//! A channel made by the engine is attached to its [`Timers`]
//! ([`Channel::attach_timers`]) and gets a [`TimerSlot`] holding the
//! deadline the heap will wake it at. The channel itself calls
//! [`Timers::note`] wherever it sets a deadline, so no caller can forget
//! one: a message put in flight (taken by a consumer or handed to a
//! waiting one), a TOUCH, a deferred message (DPUB, whether it reaches the
//! channel at once or later from the topic; REQ with a delay), deferred
//! messages recovered from the deferred store after a restart (noted when
//! the channel is attached), and dead letters waiting to be moved (found
//! by a consumer's take, or a move to retry). Noting is a single atomic
//! load when the channel is already due earlier, as for almost every
//! message of a busy channel, whose deadlines come in order; else the
//! entry goes on the heap, and the timer task is woken if it sleeps past
//! it. When an entry comes due the task visits the channel (times out,
//! releases deferred messages, moves dead letters, gives messages held
//! long bodies of their own: see
//! [`Nsqd::run_timers`](super::Nsqd::run_timers)), which reports the
//! channel's next deadline, and that goes back on the heap. Waking early
//! is harmless (the channel just reports its real next deadline), waking
//! late is not; so notes may err early, never late.

use super::channel::Channel;
use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Never: no deadline scheduled.
const NONE: u64 = u64::MAX;

/// A channel's place in the timer heap.
pub struct TimerSlot {
    channel: Weak<Channel>,
    /// The deadline its earliest heap entry wakes it at (nanoseconds
    /// since [`Timers`]' origin), or [`NONE`].
    scheduled: AtomicU64,
}

impl TimerSlot {
    pub fn new(channel: Weak<Channel>) -> Arc<TimerSlot> {
        Arc::new(TimerSlot {
            channel,
            scheduled: AtomicU64::new(NONE),
        })
    }
}

/// A heap entry; stale once the slot's `scheduled` has moved.
struct Entry {
    at: u64,
    slot: Arc<TimerSlot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

struct Heap {
    entries: BinaryHeap<Reverse<Entry>>,
    /// When the timer task will wake by itself ([`NONE`]: only when told;
    /// 0: it is running). A new entry earlier than this wakes it.
    task_wakes_at: u64,
}

pub struct Timers {
    origin: Instant,
    heap: Mutex<Heap>,
    wake: Notify,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            origin: Instant::now(),
            heap: Mutex::new(Heap {
                entries: BinaryHeap::new(),
                task_wakes_at: NONE,
            }),
            wake: Notify::new(),
        }
    }
}

impl Timers {
    fn ticks(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn instant(&self, ticks: u64) -> Instant {
        self.origin + Duration::from_nanos(ticks)
    }

    /// The channel of `slot` has a deadline at `at` (or later): make sure
    /// it is visited by then. Cheap when it already is (one atomic load).
    /// Takes the heap's lock, which is never held while taking another,
    /// so channels may call this under their own lock.
    pub fn note(&self, slot: &Arc<TimerSlot>, at: Instant) {
        let at = self.ticks(at);
        if at >= slot.scheduled.load(SeqCst) {
            return;
        }
        if at < slot.scheduled.fetch_min(at, SeqCst) {
            self.push(at, slot.clone());
        }
    }

    fn push(&self, at: u64, slot: Arc<TimerSlot>) {
        let mut heap = self.heap.lock();
        heap.entries.push(Reverse(Entry { at, slot }));
        if at < heap.task_wakes_at {
            heap.task_wakes_at = at;
            drop(heap);
            self.wake.notify_one();
        }
    }

    /// Visit every channel that is due with `visit`, which returns the
    /// channel's next deadline; returns when to come back (`None`: when
    /// woken).
    fn run_due(
        &self,
        now: Instant,
        visit: &impl Fn(&Channel, Instant) -> Option<Instant>,
    ) -> Option<Instant> {
        let due: Vec<Arc<TimerSlot>> = {
            let mut heap = self.heap.lock();
            heap.task_wakes_at = 0;
            let limit = self.ticks(now);
            let mut due = Vec::new();
            while heap.entries.peek().is_some_and(|e| e.0.at <= limit) {
                let Reverse(e) = heap.entries.pop().expect("peeked");
                // Stale: the slot was rescheduled (its new entry is in the heap).
                if e.slot.scheduled.load(SeqCst) == e.at {
                    due.push(e.slot);
                }
            }
            due
        };
        for slot in due {
            // Deadlines set from here on are noted against `NONE`, so they
            // go on the heap too. A deleted channel's slot just goes.
            slot.scheduled.store(NONE, SeqCst);
            if let Some(channel) = slot.channel.upgrade() {
                if let Some(next) = visit(&channel, now) {
                    self.note(&slot, next);
                }
            }
        }
        let mut heap = self.heap.lock();
        let next = heap.entries.peek().map(|e| e.0.at).unwrap_or(NONE);
        heap.task_wakes_at = next;
        (next != NONE).then(|| self.instant(next))
    }

    /// The timer task: sleep until the earliest deadline or until told of
    /// an earlier one; visit what is due. Idle, it never wakes.
    pub async fn run(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
        visit: impl Fn(&Channel, Instant) -> Option<Instant>,
    ) {
        loop {
            let next = self.run_due(Instant::now(), &visit);
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Heap entries, for tests.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.heap.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsqd::backend::{MemoryOverflow, Queue};
    use crate::nsqd::channel::DEAD_LETTER_RETRY;
    use crate::nsqd::client_state::ClientHandle;
    use crate::protocol::{Message, MessageId};
    use bytes::Bytes;
    use std::sync::atomic::Ordering::Relaxed;

    fn channel(timers: &Arc<Timers>) -> Arc<Channel> {
        let ch = Arc::new(Channel::new(
            "t",
            "c",
            Queue::new(100, Box::<MemoryOverflow>::default()),
        ));
        ch.attach_timers(timers);
        ch
    }

    fn msgs(n: u64) -> Vec<Message> {
        (0..n)
            .map(|i| Message::new(MessageId(i), 0, Bytes::from_static(b"m")))
            .collect()
    }

    fn process(ch: &Channel, now: Instant) -> Option<Instant> {
        ch.process_timers(now)
    }

    #[test]
    fn only_earlier_deadlines_reach_the_heap() {
        let timers = Arc::new(Timers::default());
        let slot = TimerSlot::new(Weak::new());
        let t0 = Instant::now() + Duration::from_secs(60);
        timers.note(&slot, t0);
        timers.note(&slot, t0 + Duration::from_secs(1));
        timers.note(&slot, t0 + Duration::from_secs(2));
        assert_eq!(timers.pending(), 1, "later ones: nothing to do");
        timers.note(&slot, t0 - Duration::from_secs(30));
        assert_eq!(timers.pending(), 2, "an earlier one: on the heap");
    }

    #[test]
    fn due_channels_run_and_report_their_next_deadline() {
        let timers = Arc::new(Timers::default());
        let ch = channel(&timers);
        let client = Arc::new(ClientHandle::new(
            1,
            crate::listen::PeerAddr::Tcp("127.0.0.1:1".parse().unwrap()),
        ));
        ch.add_client(client.clone(), 0).unwrap();
        client.ready_count.store(10, Relaxed);
        ch.put_from_topic(&msgs(2), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        let now = Instant::now();
        // The channel notes the deadlines it sets.
        ch.take(&client, 1, Duration::from_millis(10), &mut out);
        ch.take(&client, 1, Duration::from_millis(500), &mut out);
        assert_eq!(timers.pending(), 1, "the second is later");
        // Nothing due yet: the task would sleep until the first deadline.
        let next = timers.run_due(now, &process).unwrap();
        assert!(next <= Instant::now() + Duration::from_millis(10));
        // Past it: the first times out, the second is what comes next.
        let later = Instant::now() + Duration::from_millis(20);
        let next = timers.run_due(later, &process).unwrap();
        assert_eq!(ch.timeout_count.load(Relaxed), 1);
        assert!(next > later && next <= Instant::now() + Duration::from_millis(500));
        // A deleted channel's entry goes, and nothing is left to do.
        drop(ch);
        let much_later = Instant::now() + Duration::from_secs(1);
        assert!(timers.run_due(much_later, &process).is_none());
        assert_eq!(timers.pending(), 0);
    }

    #[test]
    fn every_deadline_a_channel_sets_is_noted() {
        let timers = Arc::new(Timers::default());
        let due_by = |at: Instant| {
            let next = timers.run_due(Instant::now(), &process);
            next.is_some_and(|n| n <= at)
        };
        let client = Arc::new(ClientHandle::new(
            1,
            crate::listen::PeerAddr::Tcp("127.0.0.1:1".parse().unwrap()),
        ));
        client.ready_count.store(10, Relaxed);

        // A deferred put.
        let ch = channel(&timers);
        let soon = Instant::now() + Duration::from_secs(5);
        ch.put_from_topic(&msgs(1), Duration::from_secs(5)).unwrap();
        assert!(due_by(soon + Duration::from_millis(1)));
        drop(ch);
        timers.run_due(Instant::now() + Duration::from_secs(6), &process);

        // Messages handed to a waiting consumer.
        let ch = channel(&timers);
        ch.add_client(client.clone(), 0).unwrap();
        let mut out = Vec::new();
        assert!(ch.take(&client, 5, Duration::from_secs(3), &mut out).dry);
        let at = Instant::now() + Duration::from_secs(3);
        ch.put_from_topic(&msgs(1), Duration::ZERO).unwrap();
        assert_eq!(client.outbox.lock().len(), 1, "handed over");
        assert!(due_by(at + Duration::from_millis(100)));

        // REQ with a delay, sooner than the in-flight deadline.
        let handed = client.outbox.lock().pop().unwrap();
        let at = Instant::now() + Duration::from_secs(1);
        ch.requeue(&client, handed.id, Duration::from_secs(1))
            .unwrap();
        assert!(due_by(at + Duration::from_millis(100)));
    }

    /// What a channel had before it was attached (deferred messages
    /// recovered from its store after a restart) is noted on attaching.
    #[test]
    fn attaching_notes_what_the_channel_already_has() {
        let timers = Arc::new(Timers::default());
        let ch = Arc::new(Channel::new(
            "t",
            "c",
            Queue::new(100, Box::<MemoryOverflow>::default()),
        ));
        ch.put_from_topic(&msgs(1), Duration::from_secs(5)).unwrap();
        assert_eq!(timers.pending(), 0);
        let at = Instant::now() + Duration::from_secs(5);
        ch.attach_timers(&timers);
        let next = timers.run_due(Instant::now(), &process).unwrap();
        assert!(next <= at);
    }

    /// A take that finds a message at its maximum of attempts makes the
    /// channel due at once (to move it); a failed move is retried later,
    /// not at once again and again.
    #[test]
    fn dead_letters_are_due_at_once_and_failed_moves_later() {
        let timers = Arc::new(Timers::default());
        let ch = channel(&timers);
        ch.set_dead_letters(Some(1), None);
        let client = Arc::new(ClientHandle::new(
            1,
            crate::listen::PeerAddr::Tcp("127.0.0.1:1".parse().unwrap()),
        ));
        ch.add_client(client.clone(), 0).unwrap();
        client.ready_count.store(10, Relaxed);
        let mut used = msgs(1);
        used[0].attempts = 1;
        ch.put_from_topic(&used, Duration::ZERO).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            ch.take(&client, 1, Duration::from_secs(60), &mut out).taken,
            0
        );
        let visits = std::cell::Cell::new(0);
        let failing_move = |ch: &Channel, now| {
            visits.set(visits.get() + 1);
            if let Some((_, dead)) = ch.take_dead_letters() {
                ch.dead_letters_moved(dead, false);
            }
            ch.process_timers(now)
        };
        let now = Instant::now();
        let next = timers.run_due(now, &failing_move).unwrap();
        assert_eq!(visits.get(), 1);
        assert!(next >= now + DEAD_LETTER_RETRY - Duration::from_millis(1));
        assert!(timers.run_due(Instant::now(), &failing_move).is_some());
        assert_eq!(visits.get(), 1, "not again before the retry");
        // A new dead-letter topic: tried again at once.
        ch.set_dead_letters(Some(1), Some("elsewhere".into()));
        timers.run_due(Instant::now(), &failing_move);
        assert_eq!(visits.get(), 2);
    }

    #[test]
    fn idle_means_no_wakeups() {
        let timers = Arc::new(Timers::default());
        let channels: Vec<_> = (0..1000).map(|_| channel(&timers)).collect();
        assert_eq!(channels.len(), 1000);
        assert!(
            timers.run_due(Instant::now(), &process).is_none(),
            "sleep until told"
        );
        assert_eq!(timers.pending(), 0);
    }
}
