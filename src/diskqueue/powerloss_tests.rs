//! Power cuts, simulated (`sim.rs`) and property-tested. After any power
//! cut and a restart:
//!
//! - every record acknowledged as durable (its write sequence number
//!   covered by a completed sync job, as `--sync-every=1` publishers wait
//!   for) and not finished by its consumer is delivered again;
//! - every record delivered is one that was written, byte for byte: no torn
//!   record, no garbage;
//! - records are delivered in the order they were written.
//!
//! After a crash of the process alone (the page cache survives) every
//! record written and not finished is delivered. Finished records may come
//! again (at-least-once).

use super::deferred::{DeferredStore, Entry, EntryId};
use super::sim::{CrashMode, SimStorage};
use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};

const DIR: &str = "/data";

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn cfg(max_bytes_per_file: u64, sync_every: u64) -> Config {
    Config {
        max_bytes_per_file,
        min_record_size: 1,
        max_record_size: 4096,
        sync_every,
    }
}

/// Record `id`, `len` bytes (at least 4): the id, then bytes depending on
/// both, none of them zero (a hole read back as zeros never matches).
fn record(id: u32, len: usize) -> Vec<u8> {
    let mut r = id.to_be_bytes().to_vec();
    r.extend((4..len.max(4)).map(|k| ((id as usize).wrapping_mul(31) + k * 7) as u8 | 1));
    r
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u16>),
    /// A put during which the power goes after that many operations.
    PutCut(Vec<u16>, u8, u64),
    Pop(u8),
    Take(u8),
    Skip(u8),
    Release(u8),
    /// A sync job taken and run, writing the metadata or not.
    Sync(bool),
    /// A job taken now, run later (by `RunJob`), writes in between.
    TakeJob(bool),
    RunJob,
    /// A sync job during which the power goes after that many operations.
    SyncCut(bool, u8, u64),
    /// A job if `--sync-every` operations are due.
    Due,
    /// Clean restart.
    Reopen,
    /// The process dies; the machine does not.
    Crash,
    PowerCut(u64),
}

fn sizes() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(prop_oneof![8 => 4u16..60, 2 => 60u16..700], 1..6)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => sizes().prop_map(Op::Put),
        1 => (sizes(), 0u8..6, any::<u64>()).prop_map(|(s, a, seed)| Op::PutCut(s, a, seed)),
        2 => (1u8..6).prop_map(Op::Pop),
        3 => (1u8..6).prop_map(Op::Take),
        1 => (1u8..4).prop_map(Op::Skip),
        3 => any::<u8>().prop_map(Op::Release),
        2 => any::<bool>().prop_map(Op::Sync),
        1 => any::<bool>().prop_map(Op::TakeJob),
        1 => Just(Op::RunJob),
        2 => (any::<bool>(), 0u8..12, any::<u64>()).prop_map(|(m, a, seed)| Op::SyncCut(m, a, seed)),
        2 => Just(Op::Due),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        3 => any::<u64>().prop_map(Op::PowerCut),
    ]
}

struct Rec {
    data: Vec<u8>,
    /// A completed sync covered it: a publisher got its OK.
    acked: bool,
    /// Its consumer is done with it (popped, or taken and released).
    finished: bool,
    /// It was finished once: delivered again after a restart (at least
    /// once), it may as well not be after the next one.
    finished_once: bool,
}

/// What must come back after a restart.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Required {
    /// Everything written and not finished (the page cache survived).
    Unfinished,
    /// Only what was acknowledged and not finished (a power cut).
    AckedUnfinished,
}

struct Harness {
    storage: SimStorage,
    cfg: Config,
    q: DiskQueue<SimStorage>,
    recs: Vec<Rec>,
    /// Records written since the queue was opened, with their write
    /// sequence numbers, not yet acknowledged.
    unacked: Vec<(u32, u64)>,
    /// Unread records, in order (exact between restarts).
    fifo: VecDeque<u32>,
    held: Vec<(u32, Held)>,
    job: Option<SyncJob<SimStorage>>,
    /// Counts, to check the tests exercise what they claim to.
    restarts: u64,
    redelivered: u64,
    lost_unacked: u64,
}

type Checked = Result<(), TestCaseError>;

impl Harness {
    fn new(cfg: Config) -> Harness {
        let storage = SimStorage::new();
        let q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg.clone()).unwrap();
        Harness {
            storage,
            cfg,
            q,
            recs: Vec::new(),
            unacked: Vec::new(),
            fifo: VecDeque::new(),
            held: Vec::new(),
            job: None,
            restarts: 0,
            redelivered: 0,
            lost_unacked: 0,
        }
    }

    fn apply(&mut self, op: Op) -> Checked {
        match op {
            Op::Put(sizes) => {
                self.put(&sizes);
            }
            Op::PutCut(sizes, after, seed) => {
                self.storage.cut_power_after(after as u64);
                self.put(&sizes);
                self.power_cut(seed)?;
            }
            Op::Pop(n) => {
                for _ in 0..n {
                    let got = self.q.pop().map(|b| b.to_vec());
                    let want = self.fifo.pop_front();
                    prop_assert_eq!(&got, &want.map(|id| self.recs[id as usize].data.clone()));
                    if let Some(id) = want {
                        self.recs[id as usize].finished = true;
                        self.recs[id as usize].finished_once = true;
                    }
                }
            }
            Op::Take(n) => {
                for _ in 0..n {
                    let got = self.q.pop_tracked();
                    let want = self.fifo.pop_front();
                    prop_assert_eq!(
                        got.as_ref().map(|(b, _)| b.to_vec()),
                        want.map(|id| self.recs[id as usize].data.clone())
                    );
                    if let (Some((_, h)), Some(id)) = (got, want) {
                        self.held.push((id, h));
                    }
                }
            }
            Op::Skip(n) => {
                for _ in 0..n {
                    let Some(&id) = self.fifo.front() else { break };
                    let h = self.q.skip_tracked(self.recs[id as usize].data.len());
                    prop_assert!(h.is_some());
                    self.fifo.pop_front();
                    self.held.push((id, h.unwrap()));
                }
            }
            Op::Release(i) => {
                if !self.held.is_empty() {
                    let (id, h) = self.held.remove(i as usize % self.held.len());
                    self.q.release(h);
                    self.recs[id as usize].finished = true;
                    self.recs[id as usize].finished_once = true;
                }
            }
            Op::Sync(with_meta) => {
                if let Some(job) = self.q.sync_job(with_meta) {
                    job.run().unwrap();
                    self.note_synced();
                }
            }
            Op::TakeJob(with_meta) => {
                if self.job.is_none() {
                    self.job = self.q.sync_job(with_meta);
                }
            }
            Op::RunJob => {
                if let Some(job) = self.job.take() {
                    job.run().unwrap();
                    self.note_synced();
                }
            }
            Op::SyncCut(with_meta, after, seed) => {
                if let Some(job) = self.q.sync_job(with_meta) {
                    self.storage.cut_power_after(after as u64);
                    if job.run().is_ok() {
                        self.note_synced();
                    }
                }
                self.power_cut(seed)?;
            }
            Op::Due => {
                if self.q.sync_due() {
                    if let Some(job) = self.q.sync_job(false) {
                        job.run().unwrap();
                        self.note_synced();
                    }
                }
            }
            Op::Reopen => {
                self.q.sync().unwrap();
                self.note_synced();
                self.restart(Required::Unfinished)?;
            }
            Op::Crash => self.restart(Required::Unfinished)?,
            Op::PowerCut(seed) => self.power_cut(seed)?,
        }
        prop_assert_eq!(self.q.depth(), self.fifo.len() as u64);
        Ok(())
    }

    fn put(&mut self, sizes: &[u16]) {
        let first = self.recs.len() as u32;
        let batch: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| record(first + i as u32, len as usize))
            .collect();
        let seq = self.q.write_seq();
        let written =
            match self
                .q
                .put_with(batch.iter(), |r, buf| buf.extend_from_slice(r), |r| r.len())
            {
                Ok(()) => batch.len(),
                Err(p) => p.written,
            };
        for (i, data) in batch.into_iter().take(written).enumerate() {
            let id = first + i as u32;
            self.recs.push(Rec {
                data,
                acked: false,
                finished: false,
                finished_once: false,
            });
            self.unacked.push((id, seq + 1 + i as u64));
            self.fifo.push_back(id);
        }
    }

    fn note_synced(&mut self) {
        let synced = self.q.sync_state().synced();
        let recs = &mut self.recs;
        self.unacked.retain(|&(id, seq)| {
            if seq <= synced {
                recs[id as usize].acked = true;
            }
            seq > synced
        });
    }

    fn power_cut(&mut self, seed: u64) -> Checked {
        self.job = None;
        self.storage.crash(seed);
        self.restart(Required::AckedUnfinished)
    }

    /// Open the queue again and check what it holds against what was
    /// written, reading it all from a copy of the disk. Then go on with
    /// the queue as recovered: what came back is queued again (and on
    /// stable storage: recovery syncs or cuts off whatever is not).
    fn restart(&mut self, required: Required) -> Checked {
        self.restarts += 1;
        self.job = None;
        self.held.clear();
        self.unacked.clear();
        let copy = self.storage.snapshot();
        let mut checker = DiskQueue::open_in(copy.clone(), dir(), "q", self.cfg.clone()).unwrap();
        let mut delivered = Vec::new();
        let mut take = false;
        loop {
            // Both ways of reading.
            take = !take;
            let got = if take {
                checker.pop_tracked().map(|(b, h)| {
                    checker.release(h);
                    b
                })
            } else {
                checker.pop()
            };
            let Some(got) = got else { break };
            prop_assert!(got.len() >= 4, "garbage delivered: {:?}", got);
            let id = u32::from_be_bytes(got[..4].try_into().unwrap());
            let written = self.recs.get(id as usize).map(|r| r.data.as_slice());
            prop_assert!(
                written == Some(&got[..]),
                "delivered a record never written (torn or garbage): {:?}",
                got
            );
            if let Some(&last) = delivered.last() {
                prop_assert!(id > last, "{} delivered after {}", id, last);
            }
            delivered.push(id);
        }
        prop_assert_eq!(checker.depth(), 0);
        // Recovery leaves nothing behind: no segment already read, no
        // damaged file set aside (damage is cut off, not met), no
        // temporary file.
        for path in copy.names() {
            let name = path.file_name().unwrap().to_str().unwrap();
            prop_assert!(
                !name.ends_with(".bad") && !name.ends_with(".tmp"),
                "{}",
                name
            );
            if let Some(num) = checker.names.segment_number(name) {
                prop_assert!(num >= checker.read_file_num, "{} left behind", name);
            }
        }
        let mut got = delivered.iter().copied().peekable();
        for (id, r) in self.recs.iter_mut().enumerate() {
            let id = id as u32;
            let came = got.next_if_eq(&id).is_some();
            let must = !r.finished_once && (required == Required::Unfinished || r.acked);
            prop_assert!(
                came || !must,
                "record {} lost ({:?}; acked {})",
                id,
                required,
                r.acked
            );
            if came && r.finished {
                self.redelivered += 1;
            }
            if !came && !r.finished {
                self.lost_unacked += 1;
            }
            r.finished = !came;
            r.finished_once |= !came;
            r.acked |= came;
        }
        self.q = DiskQueue::open_in(self.storage.clone(), dir(), "q", self.cfg.clone()).unwrap();
        self.fifo = delivered.into();
        Ok(())
    }
}

fn run(ops: Vec<Op>, file_size: u64, sync_every: u64) -> Result<Harness, TestCaseError> {
    let mut h = Harness::new(cfg(file_size, sync_every));
    for op in ops {
        h.apply(op)?;
    }
    h.power_cut(0)?;
    Ok(h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn power_cuts_lose_only_unacknowledged_records(
        ops in prop::collection::vec(op(), 1..120),
        file_size in 40u64..1500,
        sync_every in prop_oneof![1u64..8, Just(2500)],
    ) {
        run(ops, file_size, sync_every)?;
    }
}

/// The default policy (`--sync-every=2500`, a sync on the ticker): a power
/// cut loses at most what was written since the last completed sync, and
/// what it keeps of that is a prefix, whole records only.
#[test]
fn default_policy_loses_at_most_what_was_written_since_the_last_sync() {
    let mut kept_some = 0;
    for seed in 0..300u64 {
        let storage = SimStorage::new();
        let mut q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg(600, 2500)).unwrap();
        let recs: Vec<Vec<u8>> = (0..40)
            .map(|i| record(i, 30 + (i as usize * 37) % 200))
            .collect();
        let (synced, unsynced) = recs.split_at(25);
        q.put(synced.iter().map(|r| r.as_slice())).unwrap();
        q.sync_job(true).unwrap().run().unwrap();
        q.put(unsynced.iter().map(|r| r.as_slice())).unwrap();
        if seed % 2 == 0 {
            q.sync_job(false).unwrap(); // taken, never run
        }
        drop(q);
        storage.crash(seed);
        let mut q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg(600, 2500)).unwrap();
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop().map(|b| b.to_vec())).collect();
        assert!(
            got.len() >= synced.len(),
            "seed {seed}: synced records lost"
        );
        assert_eq!(got[..], recs[..got.len()], "seed {seed}");
        kept_some += (got.len() > synced.len()) as u32;
    }
    // Within one boot the unsynced records would all be kept; after a
    // reboot they are cut off at the last sync.
    assert_eq!(kept_some, 0);
}

/// The same boot (`kill -9`, the page cache survives): every record
/// written is kept, synced or not.
#[test]
fn a_crash_of_the_process_alone_keeps_everything_written() {
    let storage = SimStorage::new();
    let mut q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg(100, 2500)).unwrap();
    let recs: Vec<Vec<u8>> = (0..30).map(|i| record(i, 40)).collect();
    q.put(recs[..10].iter().map(|r| r.as_slice())).unwrap();
    q.sync().unwrap();
    q.put(recs[10..].iter().map(|r| r.as_slice())).unwrap();
    drop(q);
    let mut q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg(100, 2500)).unwrap();
    assert_eq!(q.depth(), 30);
    // What was recovered is synced before the sync record moves past it:
    // a power cut now loses none of it.
    let last = record(30, 40);
    q.put([last.as_slice()]).unwrap();
    q.sync_job(false).unwrap().run().unwrap();
    drop(q);
    storage.crash_with(CrashMode::LoseAll, &mut fastrand::Rng::with_seed(0));
    let mut q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg(100, 2500)).unwrap();
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop().map(|b| b.to_vec())).collect();
    assert_eq!(got, [recs, vec![last]].concat());
}

/// A written record whose first write was lost while a later one was kept
/// (the file grew with zeros or stale bytes in between) is cut off with
/// everything after the last sync; so is a record torn in its middle.
#[test]
fn torn_and_zero_filled_tails_are_cut_at_the_last_sync() {
    let mut damaged = 0;
    for seed in 0..400u64 {
        let storage = SimStorage::new();
        let mut q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg(1 << 20, 1)).unwrap();
        let recs: Vec<Vec<u8>> = (0..12).map(|i| record(i, 700)).collect();
        q.put([recs[0].as_slice()]).unwrap();
        q.sync_job(false).unwrap().run().unwrap();
        for r in &recs[1..] {
            q.put([r.as_slice()]).unwrap(); // one write each, never synced
        }
        drop(q);
        storage.crash(seed);
        let seg = storage
            .contents(&dir().join("q.diskqueue.000000.dat"))
            .unwrap();
        let clean: Vec<u8> = recs
            .iter()
            .flat_map(|r| [&(r.len() as u32).to_be_bytes()[..], r].concat())
            .collect();
        damaged += (seg.len() > clean.len() || seg[..] != clean[..seg.len()]) as u32;
        let mut q = DiskQueue::open_in(storage.clone(), dir(), "q", cfg(1 << 20, 1)).unwrap();
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop().map(|b| b.to_vec())).collect();
        assert_eq!(got, recs[..1], "seed {seed}");
        assert_eq!(q.bad_segments(), 0);
    }
    assert!(damaged > 50, "only {damaged} torn tails tried");
}

// --- The deferred store --------------------------------------------------

#[derive(Debug, Clone)]
enum DOp {
    Add(u16, bool),
    Remove(u8),
    Sync,
    SyncCut(u8, u64),
    Crash,
    PowerCut(u64),
}

fn dop() -> impl Strategy<Value = DOp> {
    prop_oneof![
        6 => (1u16..300, any::<bool>()).prop_map(|(n, s)| DOp::Add(n, s)),
        4 => any::<u8>().prop_map(DOp::Remove),
        2 => Just(DOp::Sync),
        1 => (0u8..6, any::<u64>()).prop_map(|(a, s)| DOp::SyncCut(a, s)),
        1 => Just(DOp::Crash),
        2 => any::<u64>().prop_map(DOp::PowerCut),
    ]
}

/// An add, known by its due time (unique here: ids are not, an id lost in
/// a power cut is given again).
struct DEntry {
    id: EntryId,
    record: Vec<u8>,
    /// Its add was covered by a completed sync.
    added_acked: bool,
    /// Removed, and the removal's sequence number.
    removed: Option<u64>,
    removal_acked: bool,
}

struct DHarness {
    storage: SimStorage,
    store: DeferredStore<SimStorage>,
    /// By due time.
    entries: BTreeMap<i64, DEntry>,
    /// Adds since the store was opened, by sequence number, not yet acked.
    unacked_adds: Vec<(i64, u64)>,
    live: Vec<(EntryId, i64)>,
    next_record: u32,
    resurrected: u64,
}

impl DHarness {
    fn note_synced(&mut self) {
        let synced = self.store.sync_state().synced();
        let entries = &mut self.entries;
        self.unacked_adds.retain(|&(due, seq)| {
            if seq <= synced {
                entries.get_mut(&due).unwrap().added_acked = true;
            }
            seq > synced
        });
        for e in entries.values_mut() {
            if e.removed.is_some_and(|s| s <= synced) {
                e.removal_acked = true;
            }
        }
    }

    fn apply(&mut self, op: DOp) -> Checked {
        match op {
            DOp::Add(len, with_source) => {
                self.next_record += 1;
                let rec = record(self.next_record, len as usize);
                let due = self.next_record as i64 * 1000;
                let source = with_source.then_some((0, self.next_record as u64 * 10));
                if let Ok(id) = self.store.add(due, &rec, source) {
                    prop_assert!(
                        self.live.iter().all(|&(live, _)| live != id),
                        "id {} given twice",
                        id.0
                    );
                    let e = DEntry {
                        id,
                        record: rec,
                        added_acked: false,
                        removed: None,
                        removal_acked: false,
                    };
                    self.entries.insert(due, e);
                    self.unacked_adds.push((due, self.store.write_seq()));
                    self.live.push((id, due));
                }
            }
            DOp::Remove(i) => {
                if !self.live.is_empty() {
                    let (id, due) = self.live.remove(i as usize % self.live.len());
                    if self.store.remove(id, (0, 0)).is_ok() {
                        let seq = self.store.write_seq();
                        self.entries.get_mut(&due).unwrap().removed = Some(seq);
                    }
                }
            }
            DOp::Sync => {
                if let Some(job) = self.store.sync_job() {
                    job.run().unwrap();
                    self.note_synced();
                }
            }
            DOp::SyncCut(after, seed) => {
                if let Some(job) = self.store.sync_job() {
                    self.storage.cut_power_after(after as u64);
                    if job.run().is_ok() {
                        self.note_synced();
                    }
                }
                self.storage.crash(seed);
                self.reopen(true)?;
            }
            DOp::Crash => self.reopen(false)?,
            DOp::PowerCut(seed) => {
                self.storage.crash(seed);
                self.reopen(true)?;
            }
        }
        Ok(())
    }

    fn reopen(&mut self, power_cut: bool) -> Checked {
        let (store, found) = DeferredStore::open_in(self.storage.clone(), dir(), "q").unwrap();
        self.store = store;
        self.unacked_adds.clear();
        self.check(&found, power_cut)?;
        Ok(())
    }

    fn check(&mut self, found: &[Entry], power_cut: bool) -> Checked {
        let mut present = std::collections::HashSet::new();
        for f in found {
            let e = self.entries.get(&f.due_ns);
            prop_assert!(
                e.is_some_and(|e| e.id == f.id && e.record == f.record),
                "entry {:?} was never written",
                f
            );
            prop_assert!(present.insert(f.due_ns), "{:?} found twice", f);
        }
        for (&id, e) in &mut self.entries {
            let came = present.contains(&id);
            if e.removed.is_none() {
                let must = e.added_acked || !power_cut;
                prop_assert!(came || !must, "entry {} lost", id);
            } else {
                let must_not = e.removal_acked || !power_cut;
                prop_assert!(
                    !(came && must_not),
                    "entry {} came back after its removal",
                    id
                );
                if came {
                    self.resurrected += 1;
                }
            }
            // What is there now is what the store holds from here on.
            if came {
                e.removed = None;
                e.removal_acked = false;
                // After a power cut, what is read is what the disk holds.
                e.added_acked = e.added_acked || power_cut;
            } else {
                // Gone, from the disk after a power cut; otherwise from
                // the page cache, on disk after the next completed sync.
                e.removed = Some(0);
                e.removal_acked = e.removal_acked || power_cut;
            }
        }
        self.live = found.iter().map(|f| (f.id, f.due_ns)).collect();
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Entries added and synced survive power cuts, removals synced stay
    /// removed, and torn or lost writes never produce an entry.
    #[test]
    fn deferred_store_survives_power_cuts(ops in prop::collection::vec(dop(), 1..150)) {
        let storage = SimStorage::new();
        let (store, _) = DeferredStore::open_in(storage.clone(), dir(), "q").unwrap();
        let mut h = DHarness {
            storage,
            store,
            entries: BTreeMap::new(),
            unacked_adds: Vec::new(),
            live: Vec::new(),
            next_record: 0,
            resurrected: 0,
        };
        for op in ops {
            h.apply(op)?;
        }
        h.storage.crash(1);
        h.reopen(true)?;
    }
}

/// Regression: the log used to restart by truncating its file in place.
/// After a power cut the truncation could be lost while later writes were
/// kept, and an entry whose removal had been synced was read again behind
/// them (in about 6% of simulated cuts of this scenario).
#[test]
fn a_removal_synced_before_the_log_restarts_stays_removed() {
    let mut back = 0;
    for seed in 0..5000u64 {
        let storage = SimStorage::new();
        let (mut s, _) = DeferredStore::open_in(storage.clone(), dir(), "q").unwrap();
        let a = s.add(1, b"aaaa", None).unwrap();
        let b = s.add(2, b"bbbb", None).unwrap();
        s.remove(a, (0, 0)).unwrap();
        s.sync_job().unwrap().run().unwrap();
        s.remove(b, (0, 0)).unwrap(); // nothing left: the log restarts
        for due in 3..6 {
            s.add(due, b"cccc", None).unwrap();
        }
        storage.crash(seed);
        let (_, found) = DeferredStore::open_in(storage.clone(), dir(), "q").unwrap();
        back += found.iter().any(|e| e.due_ns == 1) as u32;
    }
    assert_eq!(back, 0, "a synced removal undone");
}

/// A message moved from a channel's queue to its deferred store (a REQ
/// with a delay) is released from the queue once stored. The queue's and
/// the store's syncs are merged into one job, which puts the entry on disk
/// before the queue's metadata records that the message left the queue: a
/// power cut at any point keeps it in one place or the other. Run one
/// after the other (the queue's first, as they used to), a cut between
/// the two loses it.
#[test]
fn a_message_moved_to_the_deferred_store_survives_a_power_cut_during_the_sync() {
    for merged in [false, true] {
        let mut lost = 0;
        for after in 0..10 {
            for seed in 0..100 {
                let storage = SimStorage::new();
                let open = || {
                    let q = DiskQueue::open_in(storage.clone(), dir(), "t:c", cfg(1000, 1));
                    let s = DeferredStore::open_in(storage.clone(), dir(), "t:c");
                    (q.unwrap(), s.unwrap())
                };
                let (mut q, (mut store, _)) = open();
                let recs = [record(0, 40), record(1, 40)];
                q.put(recs.iter().map(|r| r.as_slice())).unwrap();
                q.sync().unwrap();
                let (rec, held) = q.pop_tracked().unwrap();
                store.add(7, &rec, q.held_position(held)).unwrap();
                q.release(held);
                let jobs = [q.sync_job(true), store.sync_job()];
                storage.cut_power_after(after);
                if merged {
                    let _ = SyncJob::merge(jobs.into_iter().flatten()).unwrap().run();
                } else {
                    for job in jobs.into_iter().flatten() {
                        let _ = job.run();
                    }
                }
                storage.crash(seed);
                let (mut q, (store, found)) = open();
                q.skip_positions(store.sources());
                let from_queue: Vec<Bytes> = std::iter::from_fn(|| q.pop()).collect();
                let kept = found.iter().any(|e| e.record == rec) || from_queue.contains(&rec);
                lost += !kept as u32;
            }
        }
        if merged {
            assert_eq!(lost, 0, "merged: a moved message lost");
        } else {
            assert!(lost > 0, "one after the other: expected losses");
        }
    }
}
