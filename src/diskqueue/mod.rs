//! A disk-backed FIFO of byte records that survives restarts.
//!
//! Records are appended to numbered segment files and read back in order;
//! a small metadata file remembers where reading and writing stand. The
//! layout is go-diskqueue's (file names, `int32` big-endian length before
//! each record, metadata text), so a data directory written by NSQ can be
//! taken over in place and the other way round.
//!
//! The queue knows nothing about messages, topics or threads: it is a plain
//! synchronous structure used under its owner's lock. Durability is split
//! in two so that the expensive part runs without that lock: [`DiskQueue::sync_job`]
//! collects what needs flushing (cheap, under the lock) and [`SyncJob::run`]
//! does the `fsync`s and the metadata write (slow, outside it). Many writes
//! then share one `fsync`: group commit.
//!
//! Every file operation goes through a [`Storage`]: the real file system
//! ([`Fs`], the default) or, in tests, a simulated disk that loses power
//! (`sim.rs`). What a power cut may lose is described in `synced.rs`.

pub mod deferred;
mod held;
mod meta;
mod read_ahead;
#[cfg(test)]
pub mod sim;
pub mod storage;
mod synced;

pub use meta::{write_atomically, Meta, Names};
pub use read_ahead::ReadAhead;
pub use storage::{Fs, Storage, StorageFile};

use bytes::{Bytes, BytesMut};
use meta::set_aside;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Most space reserved ahead of the writes in the write segment
/// ([`StorageFile::reserve`]). Appending into reserved blocks costs ext4
/// less CPU than appending past them (MPUB: about 10 % of nsqd's CPU
/// per message, see `docs/benchmarks.md`). Reserving grows with what the
/// segment holds, from [`RESERVE_MIN`], so a quiet queue reserves little;
/// what is unused is released when the segment is finished or the queue
/// closes.
const RESERVE_MAX: u64 = 16 << 20;
const RESERVE_MIN: u64 = 256 << 10;
/// A reservation takes at most this fraction (1/n) of the file system's
/// free space: a filling disk stays shared among the queues (and other
/// programs) as it would be without reserving, and below 64 times
/// [`RESERVE_MIN`] free (16 MB) nothing is reserved.
const RESERVE_SHARE_OF_FREE: u64 = 64;

/// Size limits and sync policy of one queue.
#[derive(Debug, Clone)]
pub struct Config {
    /// Start a new segment before a write would take a file past this.
    pub max_bytes_per_file: u64,
    /// Records outside `min..=max` bytes are rejected on write and treated
    /// as corruption on read.
    pub min_record_size: u32,
    pub max_record_size: u32,
    /// Reads plus writes after which a sync is due (`--sync-every`).
    pub sync_every: u64,
}

/// How far a queue's writes are known to be on stable storage; shared with
/// whoever waits for durability (publishers in `--sync-every=1` mode).
#[derive(Debug, Default)]
pub struct SyncState {
    /// Every write with a sequence number up to this one is fsynced.
    synced: AtomicU64,
    /// Writes up to this one were in a sync that failed.
    failed: AtomicU64,
    /// The queue was deleted: a job still running must not recreate files.
    deleted: AtomicBool,
    /// The sync record's newest completed slot, and the number of the
    /// newest metadata written. Jobs write both under this lock, so that
    /// one finishing late never writes older positions over newer ones.
    record: parking_lot::Mutex<(synced::Confirmed, u64)>,
}

impl SyncState {
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Acquire)
    }
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("invalid message write size ({size}) minMsgSize={min} maxMsgSize={max}")]
    Size { size: usize, min: u32, max: u32 },
    #[error("write {path}: {source}")]
    Io { path: String, source: io::Error },
}

/// A write that stored only its first `written` items.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PartialWrite {
    pub written: usize,
    pub error: WriteError,
}

/// The reader's open segment and the bytes read ahead from it.
struct Reader<F> {
    /// Shared with a read-ahead under way (see `read_ahead.rs`).
    file: Arc<F>,
    /// Bytes of the segment that may be read: its size for a finished
    /// segment, the write position for the one being written.
    finished_len: Option<u64>,
    /// Unconsumed bytes, starting at the queue's read position.
    buf: BytesMut,
    /// Bytes read ahead, to join `buf` when it runs out.
    next: Option<read_ahead::Chunk>,
    /// A read-ahead was planned and has not come back.
    ahead_pending: bool,
}

/// Why reading a segment cannot go on: it is set aside (renamed `.bad`)
/// and reading resumes with the next one.
#[derive(Debug, thiserror::Error)]
enum Damage {
    #[error("reading {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("invalid message read size ({0})")]
    BadSize(i32),
    #[error("{path} ends in the middle of a record at byte {at}")]
    Torn { path: String, at: u64 },
    #[error("{path} is shorter than expected ({at} bytes)")]
    Short { path: String, at: u64 },
    #[error("{path} holds no readable record at byte {at}")]
    Unreadable { path: String, at: u64 },
}

pub struct DiskQueue<S: Storage = Fs> {
    storage: S,
    names: Names,
    cfg: Config,
    read_file_num: u64,
    read_pos: u64,
    write_file_num: u64,
    write_pos: u64,
    depth: u64,
    reader: Option<Reader<S::File>>,
    writer: Option<Arc<S::File>>,
    /// The write segment's blocks are reserved up to here (0: none yet).
    reserved_to: u64,
    /// False once reserving failed or is unsupported in the write segment.
    reserving: bool,
    /// Finished segments, by number, not yet known to be synced (no sync
    /// record past them has completed): fsynced by every job until then.
    unsynced_files: Vec<(u64, Arc<S::File>)>,
    /// A segment was created or removed: the directory needs an fsync too.
    dir_changed: bool,
    /// Positions changed since the metadata was last written.
    dirty: bool,
    ops_since_sync: u64,
    /// Sequence number of the last write (starts at 0: nothing written).
    write_seq: u64,
    /// `write_seq` when the last sync job was taken.
    last_job_seq: u64,
    /// Where the record returned by the last read started.
    read_file_num_of_last: u64,
    read_pos_of_last: u64,
    sync_state: Arc<SyncState>,
    /// Segments found damaged and set aside, since the queue was opened.
    bad_segments: u64,
    scratch: Vec<u8>,
    /// Segments read to their end, renamed to `<segment>.deleting` and
    /// waiting for [`take_removals`](Self::take_removals) (only once
    /// [`defer_removals`](Self::defer_removals) was called).
    removals: Option<Vec<PathBuf>>,
    /// Records handed out by [`pop_tracked`](Self::pop_tracked) and not yet
    /// released, by [`Held`] number (read order), with where each starts.
    /// The first one is where reading resumes after a crash, so a message
    /// delivered but not finished is never lost with the process. Only the
    /// unreleased are kept, so memory follows what is in flight, however
    /// long one message stays there (see `held.rs`).
    held: held::HeldRecords,
    /// The next [`Held`] number: every record read gets one, held or not.
    next_held: u64,
    /// Final sizes of the segments finished by the writer (and not yet
    /// read past), so that [`skip_tracked`](Self::skip_tracked) can cross
    /// segment boundaries without asking the file system.
    finished_lens: BTreeMap<u64, u64>,
    /// The lowest segment that may still exist: finished segments are only
    /// deleted once no held record lives in them.
    first_undeleted: u64,
    /// Records not to deliver again when read after a restart (they moved
    /// to the owner's deferred store), by where they start.
    skip: std::collections::BTreeSet<Position>,
    /// The sync record (see `synced.rs`), once opened.
    /// (Opened by each job that writes it, not held: 10,000 idle topics
    /// must not hold 20,000 descriptors.)
    synced: Option<PathBuf>,
    /// Sequence number of the last sync record planned.
    synced_seq: u64,
    /// Number of the last metadata write planned.
    meta_seq: u64,
    /// While opening: this queue's files as listed then (see
    /// [`Storage::list_prefixed`]).
    open_files: Option<Vec<std::ffi::OsString>>,
}

impl<S: Storage> Drop for DiskQueue<S> {
    /// Closed or deleted: its files may be opened again, and must be
    /// listed afresh then (see [`Storage::list_prefixed`]).
    fn drop(&mut self) {
        self.release_reserved();
        self.storage.forget_listing(&self.names.dir);
        self.take_removals().run();
    }
}

/// Appended to a segment's name while its removal waits.
const DELETING_SUFFIX: &str = ".deleting";

fn deleting_name(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(DELETING_SUFFIX);
    PathBuf::from(name)
}

/// Segment removals to do outside the owner's lock.
#[must_use = "the files stay on disk until run"]
pub struct Removals<S: Storage = Fs> {
    storage: S,
    paths: Vec<PathBuf>,
}

impl<S: Storage> Removals<S> {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn run(self) {
        for path in self.paths {
            if let Err(e) = self.storage.remove(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::error!("failed to remove {}: {e}", path.display());
                }
            }
        }
    }
}

/// Where a record starts: segment number and offset.
pub type Position = (u64, u64);

/// A record handed out by [`DiskQueue::pop_tracked`], to release later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held(u64);

const READ_CHUNK: usize = 64 * 1024;

impl DiskQueue {
    /// Open the queue `name` in `dir`, resuming from its metadata. Damaged
    /// metadata or segments are set aside and logged, never fatal: the only
    /// errors are those of reading the directory itself (and of cutting off
    /// what a power cut may have torn, see `synced.rs`).
    pub fn open(dir: &Path, name: &str, cfg: Config) -> io::Result<DiskQueue> {
        DiskQueue::open_in(Fs, dir, name, cfg)
    }
}

impl<S: Storage> DiskQueue<S> {
    /// [`open`](DiskQueue::open) on `storage`.
    pub fn open_in(storage: S, dir: &Path, name: &str, cfg: Config) -> io::Result<DiskQueue<S>> {
        let names = Names {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        };
        let mut q = DiskQueue {
            storage,
            names,
            cfg,
            read_file_num: 0,
            read_pos: 0,
            write_file_num: 0,
            write_pos: 0,
            depth: 0,
            reader: None,
            writer: None,
            reserved_to: 0,
            reserving: false,
            unsynced_files: Vec::new(),
            dir_changed: false,
            dirty: false,
            ops_since_sync: 0,
            write_seq: 0,
            last_job_seq: 0,
            read_file_num_of_last: 0,
            read_pos_of_last: 0,
            sync_state: Arc::new(SyncState::default()),
            bad_segments: 0,
            held: held::HeldRecords::default(),
            next_held: 0,
            finished_lens: BTreeMap::new(),
            skip: Default::default(),
            first_undeleted: 0,
            scratch: Vec::new(),
            removals: None,
            synced: None,
            synced_seq: 0,
            meta_seq: 0,
            open_files: None,
        };
        q.open_files = Some(q.storage.list_prefixed(dir, &format!("{name}."))?);
        q.recover()?;
        q.first_undeleted = q.read_file_num;
        q.remove_leftovers();
        Ok(q)
    }

    pub fn name(&self) -> &str {
        &self.names.name
    }

    /// From now on, segments read to their end are only renamed (cheap)
    /// and their removal is left to the owner, to do after letting go of
    /// its lock: unlinking a 100 MB segment frees 25,000 cached pages and
    /// took milliseconds, while every consumer of the channel waited.
    pub fn defer_removals(&mut self) {
        self.removals.get_or_insert_with(Vec::new);
    }

    /// The removals left to do (see [`defer_removals`](Self::defer_removals)).
    pub fn take_removals(&mut self) -> Removals<S> {
        let paths = match &mut self.removals {
            Some(paths) if !paths.is_empty() => std::mem::take(paths),
            _ => Vec::new(),
        };
        Removals {
            storage: self.storage.clone(),
            paths,
        }
    }

    /// Records written and not yet read.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// (Used by the tests only.)
    #[cfg(test)]
    /// Segments set aside as damaged since the queue was opened.
    pub fn bad_segments(&self) -> u64 {
        self.bad_segments
    }

    pub fn sync_state(&self) -> &Arc<SyncState> {
        &self.sync_state
    }

    /// Sequence number of the last write, for [`SyncState::synced`].
    pub fn write_seq(&self) -> u64 {
        self.write_seq
    }

    /// Whether `--sync-every` reads and writes happened since the last sync.
    pub fn sync_due(&self) -> bool {
        self.ops_since_sync >= self.cfg.sync_every.max(1)
    }

    /// The positions to record: reading resumes at the first held record,
    /// and the depth counts the held records (and those read after it)
    /// that would then be read again.
    pub fn meta(&self) -> Meta {
        let (read_file_num, read_pos) = self.resume_position();
        // Read again after a restart: from the oldest held record on, every
        // record read since (held or not), then the unread ones.
        let reread = self
            .held
            .first()
            .map_or(0, |(first, _)| self.next_held - first);
        Meta {
            depth: self.depth + reread,
            read_file_num,
            read_pos,
            write_file_num: self.write_file_num,
            write_pos: self.write_pos,
        }
    }

    /// Records starting at these positions are not handed out when read:
    /// their owner keeps them elsewhere now. Positions already read past
    /// are ignored.
    pub fn skip_positions(&mut self, positions: impl IntoIterator<Item = Position>) {
        let from = (self.read_file_num, self.read_pos);
        self.skip
            .extend(positions.into_iter().filter(|&p| p >= from));
    }

    /// Where a held record starts.
    pub fn held_position(&self, held: Held) -> Option<Position> {
        self.held.get(held.0)
    }

    /// Where reading would resume after a crash: the oldest held record,
    /// or the read position.
    pub fn resume_position(&self) -> Position {
        self.held
            .first()
            .map(|(_, p)| p)
            .unwrap_or((self.read_file_num, self.read_pos))
    }

    fn warn(&self, what: std::fmt::Arguments) {
        tracing::warn!("DISKQUEUE({}): {what}", self.names.name);
    }

    /// Establish the positions from the metadata, checked against the files.
    fn recover(&mut self) -> io::Result<()> {
        let meta_path = self.names.meta();
        let meta = match self.storage.read(&meta_path) {
            Ok(text) => match Meta::parse(&text) {
                Some(m) => Some(m),
                None => {
                    match set_aside(&self.storage, &meta_path) {
                        Ok(to) => self.warn(format_args!(
                            "metadata {} is damaged, moved to {}; rebuilding positions from the segment files",
                            meta_path.display(),
                            to.display()
                        )),
                        Err(e) => self.warn(format_args!(
                            "metadata {} is damaged and could not be moved aside ({e}); rebuilding positions from the segment files",
                            meta_path.display()
                        )),
                    }
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.warn(format_args!(
                    "cannot read metadata {}: {e}; rebuilding positions from the segment files",
                    meta_path.display()
                ));
                None
            }
        };
        let record = match self.storage.open_write(&self.names.synced(), false) {
            Ok(file) => Some((synced::read(&file), file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        // Everything before this is on stable storage: the metadata is
        // written after the data it counts was synced, the sync record too.
        let meta_pos = meta.map_or((0, 0), |m| (m.write_file_num, m.write_pos));
        let durable = match record.as_ref().and_then(|(r, _)| r.durable) {
            Some(slot) => slot.durable.max(meta_pos),
            None => meta_pos,
        };
        let rebooted = match &record {
            Some((r, _)) if r.durable.is_some() => {
                r.boot.is_none() || r.boot != self.storage.boot_id()
            }
            // Not opened by this version before (a data directory from NSQ
            // or an older release): nothing says what was synced.
            _ => false,
        };
        let resynced = if rebooted {
            self.cut_to(durable)?;
            false
        } else {
            self.sync_unrecorded(durable)?
        };
        match meta {
            Some(m) => self.resume(m)?,
            None => self.rebuild_from_segments()?,
        }
        if record.is_some() && (self.write_file_num, self.write_pos) < durable {
            self.continue_after(durable)?;
        }
        // Segments to read are missing: read to their end and removed
        // before the metadata said so (or lost with their directory entry
        // in a power cut). Reading resumes with the first one there, and
        // the depth the metadata gave counts them: count again.
        let (read, write) = (self.read_file_num, self.write_file_num);
        let present = self.segments()?;
        let present: Vec<u64> = present
            .into_iter()
            .filter(|n| (read..write).contains(n))
            .collect();
        if present.len() as u64 != write - read {
            let first = present.first().copied().unwrap_or(write);
            if first != read {
                self.read_file_num = first;
                self.read_pos = 0;
            }
            self.recount_depth();
        }
        // Segments recovery moved past end where their files do, not where
        // the metadata said: let `skip_tracked` ask the files.
        self.finished_lens.clear();
        // Everything there is now is on stable storage.
        let now = (self.write_file_num, self.write_pos);
        let created = record.is_none();
        let file = match record {
            Some((r, file)) => {
                if let Some(c) = r.durable {
                    self.synced_seq = c.seq;
                    self.sync_state.record.lock().0 = c;
                }
                file
            }
            None => self.storage.open_write(&self.names.synced(), true)?,
        };
        // The boot, unsynced: read back after a crash of the process, from
        // the page cache; lost with it in a power cut, as it should be.
        let boot = synced::boot_write(self.storage.boot_id().unwrap_or(0));
        file.write_all_at(&boot.bytes, boot.at)?;
        if created || resynced {
            // Everything there is now is on stable storage: say so.
            self.record_durable(&file, now)?;
        }
        if created {
            // Before anything is written, so that no write of ours is ever
            // found without it.
            self.storage.sync_dir(&self.names.dir)?;
        }
        self.synced = Some(self.names.synced());
        Ok(())
    }

    /// Write and sync the sync record saying everything before `durable`
    /// is on stable storage.
    fn record_durable(&mut self, file: &S::File, durable: Position) -> io::Result<()> {
        let mut guard = self.sync_state.record.lock();
        let confirmed = &mut guard.0;
        let slot = 1 - confirmed.slot;
        let seq = confirmed.seq + 1;
        let w = synced::durable_write(slot, seq, durable);
        file.write_all_at(&w.bytes, w.at)?;
        file.sync_data()?;
        *confirmed = synced::Confirmed { seq, durable, slot };
        self.synced_seq = seq;
        Ok(())
    }

    /// The machine restarted since the queue was last open (a power cut,
    /// perhaps): bytes past `durable` were never synced, and may be torn
    /// or garbage. Cut them off, durably, before reading anything.
    fn cut_to(&mut self, durable: Position) -> io::Result<()> {
        let (file_num, pos) = durable;
        let mut cut = 0;
        let mut removed = false;
        for num in self.segments()? {
            let path = self.names.segment(num);
            if num > file_num {
                cut += self.storage.len(&path).unwrap_or(0);
                self.storage.remove(&path)?;
                removed = true;
            } else if num == file_num {
                let len = self.storage.len(&path).unwrap_or(0);
                if len > pos {
                    let file = self.storage.open_write(&path, false)?;
                    file.set_len(pos)?;
                    file.sync_data()?;
                    cut += len - pos;
                }
            }
        }
        if removed {
            self.storage.sync_dir(&self.names.dir)?;
        }
        if cut > 0 {
            self.warn(format_args!(
                "the machine restarted since this queue was last open: {cut} byte(s) written after the last sync (segment {file_num}, offset {pos}) were never acknowledged as durable and may be torn; cut off"
            ));
        }
        Ok(())
    }

    /// The segments up to `durable` were read and removed, and the metadata
    /// saying so was lost: numbering continues after them, as the sync
    /// record must never describe a file written later under a number
    /// given again.
    fn continue_after(&mut self, durable: Position) -> io::Result<()> {
        let next = durable.0 + 1;
        let segments = self.segments()?;
        if !segments.iter().any(|&n| n >= self.read_file_num) {
            self.read_file_num = next;
            self.read_pos = 0;
        }
        self.warn(format_args!(
            "segments up to {} were written and removed since the last metadata update: writing continues in {next}",
            durable.0
        ));
        self.write_file_num = next;
        self.write_pos = 0;
        self.recount_depth();
        Ok(())
    }

    /// Same boot (the process died, the machine did not): every byte
    /// written is readable and is kept, but some may be in the page cache
    /// only. Sync them now, before the sync record claims them.
    fn sync_unrecorded(&mut self, durable: Position) -> io::Result<bool> {
        let mut synced = false;
        for num in self.segments()? {
            let path = self.names.segment(num);
            if num > durable.0
                || num == durable.0 && self.storage.len(&path).unwrap_or(0) > durable.1
            {
                self.storage.open_write(&path, false)?.sync_data()?;
                synced = true;
            }
        }
        if synced {
            self.storage.sync_dir(&self.names.dir)?;
        }
        Ok(synced)
    }

    /// Every segment number on disk, ascending. While opening, from the
    /// listing taken then and the write segments the opening may have
    /// created since, each checked to be there still (one `stat` each
    /// instead of reading a directory of, perhaps, 40,000 files).
    fn segments(&self) -> io::Result<Vec<u64>> {
        let Some(files) = &self.open_files else {
            return self.names.list_segments(&self.storage);
        };
        let mut nums: Vec<u64> = files
            .iter()
            .filter_map(|n| self.names.segment_number(n.to_str()?))
            .chain([self.write_file_num, self.write_file_num + 1])
            .collect();
        nums.sort_unstable();
        nums.dedup();
        nums.retain(|&n| self.storage.exists(&self.names.segment(n)));
        Ok(nums)
    }

    /// Files a crash left behind: segments before the read position (read
    /// and released, but their removal was undone) and temporary metadata
    /// files whose rename did not happen.
    fn remove_leftovers(&mut self) {
        let names = match self.open_files.take() {
            Some(names) => names,
            None => match self.storage.list(&self.names.dir) {
                Ok(names) => names,
                Err(_) => return,
            },
        };
        let meta = self.names.meta();
        let tmp_prefix = format!(
            "{}.",
            meta.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        for name in names {
            let Some(name) = name.to_str() else { continue };
            let stale = match self.names.segment_number(name) {
                Some(num) => num < self.first_undeleted,
                None => {
                    name.starts_with(&tmp_prefix) && name.ends_with(".tmp")
                        || name
                            .strip_suffix(DELETING_SUFFIX)
                            .is_some_and(|n| self.names.segment_number(n).is_some())
                }
            };
            if !stale {
                continue;
            }
            let path = self.names.dir.join(name);
            match self.storage.remove(&path) {
                Ok(()) => {
                    self.warn(format_args!(
                        "removed {}, left behind by a crash",
                        path.display()
                    ));
                    self.dir_changed = true;
                }
                // Already gone: removed while opening (cut off, set aside).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => self.warn(format_args!("cannot remove {}: {e}", path.display())),
            }
        }
    }

    /// Resume from trusted-looking metadata. A write segment longer than
    /// the recorded write position means the process died after writing
    /// but before the metadata caught up: the extra records are kept (and
    /// counted), and writing continues in a fresh segment so nothing is
    /// overwritten.
    fn resume(&mut self, m: Meta) -> io::Result<()> {
        self.read_file_num = m.read_file_num;
        self.read_pos = m.read_pos;
        self.write_file_num = m.write_file_num;
        self.write_pos = m.write_pos;
        self.depth = m.depth;
        let path = self.names.segment(self.write_file_num);
        let size = match self.storage.len(&path) {
            Ok(len) => Some(len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match size {
            Some(size) if size > self.write_pos => {
                let (extra, _) = self.count_records(&path, self.write_pos, size);
                self.warn(format_args!(
                    "{} is {size} bytes, metadata says {}: {extra} unrecorded message(s) kept, writing continues in a new file",
                    path.display(),
                    self.write_pos
                ));
                self.depth += extra;
                self.skip_write_file();
            }
            Some(size) if size < self.write_pos => {
                self.warn(format_args!(
                    "{} is {size} bytes, shorter than the recorded {}: reading it to its end, writing continues in a new file",
                    path.display(),
                    self.write_pos
                ));
                self.skip_write_file();
                self.recount_depth();
            }
            None if self.write_pos > 0 => {
                self.warn(format_args!(
                    "{} is missing: writing continues in a new file",
                    path.display()
                ));
                self.skip_write_file();
                self.recount_depth();
            }
            _ => {}
        }
        // Segments after the write segment were started after the last
        // metadata write (rollover without a sync yet): adopt them.
        let last_segment = self.segments()?.last().copied();
        if let Some(last) = last_segment.filter(|&n| n > m.write_file_num) {
            self.warn(format_args!(
                "segments up to {last} were written after the last metadata update: reading them too"
            ));
            self.write_file_num = last;
            self.skip_write_file();
            self.recount_depth();
        }
        Ok(())
    }

    /// No usable metadata: read every segment on disk from the start and
    /// write after the last one. Messages read before may come again
    /// (at-least-once), none is lost.
    fn rebuild_from_segments(&mut self) -> io::Result<()> {
        let segments = self.segments()?;
        let (Some(&first), Some(&last)) = (segments.first(), segments.last()) else {
            return Ok(()); // a new, empty queue
        };
        self.read_file_num = first;
        self.read_pos = 0;
        self.write_file_num = last;
        self.write_pos = 0;
        self.skip_write_file();
        self.recount_depth();
        self.dirty = true;
        self.warn(format_args!(
            "recovered {} message(s) from segments {first}..={last}",
            self.depth
        ));
        Ok(())
    }

    /// Leave the current write segment as finished; write in the next one.
    fn skip_write_file(&mut self) {
        self.release_reserved();
        if let Some(f) = self.writer.take() {
            self.unsynced_files.push((self.write_file_num, f));
        }
        self.finished_lens
            .insert(self.write_file_num, self.write_pos);
        self.write_file_num += 1;
        self.write_pos = 0;
        self.dirty = true;
    }

    /// Count the valid records of `path` between `from` and `to`; returns
    /// the count and where the valid part ends.
    fn count_records(&self, path: &Path, from: u64, to: u64) -> (u64, u64) {
        let Ok(file) = self.storage.open_read(path) else {
            return (0, from);
        };
        // A window of the file, read in chunks: `buf` holds from `buf_at`.
        let mut buf = vec![0u8; READ_CHUNK];
        let (mut buf_at, mut buf_len) = (from, 0usize);
        let (mut pos, mut count) = (from, 0);
        while pos + 4 <= to {
            if pos + 4 > buf_at + buf_len as u64 {
                buf_at = pos;
                buf_len = 0;
                while buf_len < 4 {
                    match file.read_at(&mut buf[buf_len..], buf_at + buf_len as u64) {
                        Ok(0) | Err(_) => return (count, pos),
                        Ok(n) => buf_len += n,
                    }
                }
            }
            let i = (pos - buf_at) as usize;
            let size = i32::from_be_bytes(buf[i..i + 4].try_into().expect("4 bytes"));
            if !self.valid_size(size) || pos + 4 + size as u64 > to {
                break;
            }
            pos += 4 + size as u64;
            count += 1;
        }
        (count, pos)
    }

    /// Depth from the files themselves (after damage or lost metadata).
    fn recount_depth(&mut self) {
        let mut depth = 0;
        for num in self.segments_in(self.read_file_num..=self.write_file_num) {
            let path = self.names.segment(num);
            let start = if num == self.read_file_num {
                self.read_pos
            } else {
                0
            };
            let end = if num == self.write_file_num {
                self.write_pos
            } else {
                self.storage.len(&path).unwrap_or(0)
            };
            if end > start {
                depth += self.count_records(&path, start, end).0;
            }
        }
        self.depth = depth;
        self.dirty = true;
    }

    /// The segment numbers in `range` that may have a file. A short range
    /// is taken as it is; a long one (metadata far ahead of the files, or
    /// a gap in the numbering) is not walked number by number, only the
    /// segments on disk are.
    fn segments_in(&self, range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
        const WALK: u64 = 64;
        let (first, last) = (*range.start(), *range.end());
        if last < first {
            return Vec::new();
        }
        if last - first < WALK {
            return range.collect();
        }
        match self.segments() {
            Ok(nums) => nums.into_iter().filter(|n| range.contains(n)).collect(),
            Err(e) => {
                self.warn(format_args!("cannot list segments: {e}"));
                Vec::new()
            }
        }
    }

    /// The first segment from `num` on that may have a file, or the write
    /// segment: numbers without a file hold nothing, and metadata far ahead
    /// of the files must not be stepped through one number at a time.
    fn next_segment_from(&self, num: u64) -> u64 {
        self.segments_in(num..=self.write_file_num)
            .first()
            .copied()
            .unwrap_or(self.write_file_num)
    }

    fn valid_size(&self, size: i32) -> bool {
        size >= self.cfg.min_record_size as i32 && size as i64 <= self.cfg.max_record_size as i64
    }

    /// (Used by the tests only.)
    #[cfg(test)]
    /// Append records. Each batch goes to the file in as few `write`s as
    /// segment boundaries allow, so an error (a full disk) is seen here,
    /// before anything is acknowledged. A batch that fits in a segment is
    /// not split across two: it is stored whole or (on error) not at all.
    /// A larger one may be stored in part: the records before the failing
    /// write are, the rest are not.
    pub fn put<'a, I>(&mut self, records: I) -> Result<(), WriteError>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        self.put_with(
            records,
            |rec, buf| buf.extend_from_slice(rec),
            |rec| rec.len(),
        )
        .map_err(|p| p.error)
    }

    /// Like [`put`](Self::put), with the record bytes produced by `encode`
    /// straight into the write buffer (no intermediate copy) and their
    /// length given by `len`. On error, the first [`PartialWrite::written`]
    /// items are stored and the rest are not.
    pub fn put_with<T, I>(
        &mut self,
        items: I,
        encode: impl Fn(&T, &mut Vec<u8>),
        len: impl Fn(&T) -> usize,
    ) -> Result<(), PartialWrite>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Clone,
    {
        let items = items.into_iter();
        // A batch that would cross the end of this segment but fits in one
        // starts the next segment instead, so that one write stores all of
        // it or none (a refused MPUB must not be half stored: its publisher
        // retries it whole). Segments may end early; readers go by each
        // file's length, as NSQ's do.
        let total: u64 = items.clone().map(|item| 4 + len(&item) as u64).sum();
        if self.write_pos > 0
            && self.write_pos + total > self.cfg.max_bytes_per_file
            && total <= self.cfg.max_bytes_per_file
        {
            self.roll_over();
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let mut pending = 0u64; // records in `buf`
        let mut written = 0usize; // records on file
        let mut result = Ok(());
        for item in items {
            let size = len(&item);
            if size < self.cfg.min_record_size as usize || size > self.cfg.max_record_size as usize
            {
                result = Err(WriteError::Size {
                    size,
                    min: self.cfg.min_record_size,
                    max: self.cfg.max_record_size,
                });
                break;
            }
            let at = self.write_pos + buf.len() as u64;
            if at > 0 && at + 4 + size as u64 > self.cfg.max_bytes_per_file {
                if let Err(e) = self.flush_buf(&buf, pending) {
                    result = Err(e);
                    buf.clear();
                    pending = 0;
                    break;
                }
                written += pending as usize;
                buf.clear();
                pending = 0;
                self.roll_over();
            }
            buf.extend_from_slice(&(size as u32).to_be_bytes());
            let before = buf.len();
            encode(&item, &mut buf);
            debug_assert_eq!(buf.len() - before, size);
            pending += 1;
        }
        if pending > 0 {
            match self.flush_buf(&buf, pending) {
                Ok(()) => written += pending as usize,
                Err(e) => result = Err(e),
            }
        }
        buf.clear();
        if buf.capacity() > 4 * 1024 * 1024 {
            buf = Vec::new();
        }
        self.scratch = buf;
        result.map_err(|error| PartialWrite { written, error })
    }

    /// Go on writing in the next segment. NSQ syncs at every rollover;
    /// ask for one soon.
    fn roll_over(&mut self) {
        self.skip_write_file();
        self.ops_since_sync = self.ops_since_sync.max(self.cfg.sync_every);
    }

    /// Write `buf` (holding `records` records) at the write position.
    fn flush_buf(&mut self, buf: &[u8], records: u64) -> Result<(), WriteError> {
        if buf.is_empty() {
            return Ok(());
        }
        let num = self.write_file_num;
        let io_err = |names: &Names, source| WriteError::Io {
            path: names.segment(num).display().to_string(),
            source,
        };
        if self.writer.is_none() {
            let path = self.names.segment(num);
            let file = self
                .storage
                .open_write(&path, true)
                .map_err(|e| io_err(&self.names, e))?;
            tracing::info!(
                "DISKQUEUE({}): opened {} for writing",
                self.names.name,
                path.display()
            );
            self.writer = Some(Arc::new(file));
            self.dir_changed = true;
            self.reserved_to = 0;
            self.reserving = true;
        }
        let end = self.write_pos + buf.len() as u64;
        if self.reserving && end > self.reserved_to {
            self.reserve_for(end);
        }
        let file = self.writer.as_ref().expect("opened above");
        if let Err(e) = file.write_all_at(buf, self.write_pos) {
            // A write can fail part-way (the disk filled up during it):
            // what it left past the write position is cut, or a restart
            // would deliver records whose publish was refused. The cut
            // also gives back what this queue reserved. Reopen on the next
            // write: the failure may have been the file itself (removed,
            // replaced).
            self.cut_to_written();
            self.writer = None;
            return Err(io_err(&self.names, e));
        }
        self.write_pos += buf.len() as u64;
        self.depth += records;
        self.ops_since_sync += records;
        self.write_seq += records;
        self.dirty = true;
        Ok(())
    }

    /// Reserve blocks for the write segment past `end`: as much as the
    /// segment will then hold, within [`RESERVE_MIN`]..=[`RESERVE_MAX`],
    /// not past its size limit, nor more than a small share of the free
    /// space ([`RESERVE_SHARE_OF_FREE`]). Best effort: a failure (a full
    /// disk, a file system without `fallocate`), or too little free space,
    /// only stops the reserving until the next segment; the write itself
    /// then tells.
    fn reserve_for(&mut self, end: u64) {
        let Some(file) = &self.writer else { return };
        let from = self.reserved_to.max(self.write_pos);
        let mut ahead = end.clamp(RESERVE_MIN, RESERVE_MAX);
        if let Ok(Some(free)) = file.free_space() {
            ahead = ahead.min(free / RESERVE_SHARE_OF_FREE);
            if ahead < RESERVE_MIN {
                self.reserving = false;
                return;
            }
        }
        let to = (end + ahead).min(self.cfg.max_bytes_per_file).max(end);
        match file.reserve(from, to - from) {
            Ok(true) => self.reserved_to = to,
            Ok(false) => self.reserving = false,
            Err(e) => {
                tracing::debug!(
                    "DISKQUEUE({}): could not reserve space ahead of writes: {e}",
                    self.names.name
                );
                self.reserving = false;
                // Refused for want of space, ext4 keeps what it allocated
                // before running out: give it back to the other queues.
                if matches!(
                    e.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                ) {
                    self.cut_to_written();
                }
            }
        }
    }

    /// Give back the write segment's blocks reserved past its end: cutting
    /// a file to its own length frees them. The file is unchanged.
    fn release_reserved(&mut self) {
        if self.reserved_to > self.write_pos {
            self.cut_to_written();
        }
        self.reserved_to = 0;
    }

    /// Cut the write segment to what was written: frees whatever lies past
    /// (reserved blocks, a failed write's bytes).
    fn cut_to_written(&mut self) {
        if let Some(file) = &self.writer {
            if let Err(e) = file.set_len(self.write_pos) {
                self.warn(format_args!(
                    "could not cut segment {} back to {} bytes: {e}",
                    self.write_file_num, self.write_pos
                ));
            }
        }
        self.reserved_to = 0;
    }

    /// Take the record at the head and keep it on disk until
    /// [`release`](Self::release)d: until then a restart reads it again.
    pub fn pop_tracked(&mut self) -> Option<(Bytes, Held)> {
        let record = self.pop_untracked()?;
        let start = (self.read_file_num_of_last, self.read_pos_of_last);
        Some((record, self.hold(start)))
    }

    /// Like [`pop_tracked`](Self::pop_tracked) for a record whose bytes the
    /// owner already has (it cached what it wrote): the read position moves
    /// past it without reading. `len` is the record's length without its
    /// size prefix; it must be the next unread record. `None` if there is
    /// none.
    pub fn skip_tracked(&mut self, len: usize) -> Option<Held> {
        if self.depth == 0 {
            return None;
        }
        let total = 4 + len as u64;
        // Past the end of a finished segment: the record is in the next one.
        while self.read_file_num < self.write_file_num {
            let (end, ours) = match self.finished_lens.get(&self.read_file_num) {
                Some(&end) => (end, true),
                None => (
                    self.names.segment_len(&self.storage, self.read_file_num),
                    false,
                ),
            };
            if self.read_pos >= end {
                self.finish_read_file();
                continue;
            }
            // A segment from before this process: what is left of it was
            // never counted (the cache holds every counted record), so it
            // should not be there. Unless it is this very record, it is
            // damage: set it aside, as reading would, rather than take the
            // record's position from it.
            if !ours && (self.size_at_read_pos() != Some(len as u64) || self.read_pos + total > end)
            {
                self.set_aside_read_file(&Damage::Unreadable {
                    path: self.names.segment(self.read_file_num).display().to_string(),
                    at: self.read_pos,
                });
                continue;
            }
            break;
        }
        let start = (self.read_file_num, self.read_pos);
        if let Some(r) = self.reader.as_mut() {
            if r.buf.len() as u64 >= total {
                bytes::Buf::advance(&mut r.buf, total as usize);
            } else {
                r.buf.clear();
            }
        }
        self.read_pos += total;
        self.depth -= 1;
        self.ops_since_sync += 1;
        self.dirty = true;
        Some(self.hold(start))
    }

    /// The size field of the record at the read position, if it can be
    /// read.
    fn size_at_read_pos(&self) -> Option<u64> {
        let file = self
            .storage
            .open_read(&self.names.segment(self.read_file_num))
            .ok()?;
        let mut size = [0u8; 4];
        file.read_exact_at(&mut size, self.read_pos).ok()?;
        u64::try_from(i32::from_be_bytes(size)).ok()
    }

    fn hold(&mut self, start: Position) -> Held {
        let id = self.next_held;
        self.next_held += 1;
        self.held.insert(id, start);
        Held(id)
    }

    /// The owner no longer needs the record (finished, or stored again
    /// elsewhere). Unknown or already released records are ignored.
    pub fn release(&mut self, held: Held) {
        let was_first = self.held.first().is_some_and(|(k, _)| k == held.0);
        if self.held.remove(held.0) && was_first {
            // The resume position moved.
            self.dirty = true;
            self.delete_finished_files();
        }
    }

    /// (Used by the tests only.)
    #[cfg(test)]
    /// Records popped with [`pop_tracked`](Self::pop_tracked), not released.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Up to `count` unread records after the first `skip` ones, read
    /// without moving anything (what a reader would get next). Damaged or
    /// unreadable data ends the list early; reading proper deals with it.
    pub fn peek(&self, skip: usize, count: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut pos = (self.read_file_num, self.read_pos);
        while out.len() < count && pos < (self.write_file_num, self.write_pos) {
            let end = if pos.0 == self.write_file_num {
                self.write_pos
            } else {
                self.finished_lens
                    .get(&pos.0)
                    .copied()
                    .unwrap_or_else(|| self.names.segment_len(&self.storage, pos.0))
            };
            if pos.1 >= end {
                pos = (self.next_segment_from(pos.0 + 1), 0);
                continue;
            }
            let Ok(file) = self.storage.open_read(&self.names.segment(pos.0)) else {
                break;
            };
            let mut len = [0u8; 4];
            if file.read_exact_at(&mut len, pos.1).is_err() {
                break;
            }
            let size = i32::from_be_bytes(len);
            if !self.valid_size(size) || pos.1 + 4 + size as u64 > end {
                break;
            }
            let start = pos;
            pos.1 += 4 + size as u64;
            if self.skip.contains(&start) {
                continue;
            }
            if skipped < skip {
                skipped += 1;
                continue;
            }
            let mut record = vec![0u8; size as usize];
            if file.read_exact_at(&mut record, start.1 + 4).is_err() {
                break;
            }
            out.push(Bytes::from(record));
        }
        out
    }

    /// Take the record at the head, if any. Damaged segments are set aside
    /// (renamed `.bad`) and reading goes on with the next one.
    pub fn pop(&mut self) -> Option<Bytes> {
        let record = self.pop_untracked()?;
        // Numbered like held records, so that `meta` can count what a
        // restart reads again.
        self.next_held += 1;
        Some(record)
    }

    fn pop_untracked(&mut self) -> Option<Bytes> {
        loop {
            if (self.read_file_num, self.read_pos) >= (self.write_file_num, self.write_pos) {
                self.check_tail();
                return None;
            }
            match self.read_one() {
                Ok(Some(record)) => {
                    if !self.skip.is_empty() {
                        let start = (self.read_file_num_of_last, self.read_pos_of_last);
                        if self.skip.remove(&start) {
                            // Read, so numbered like any other (see `meta`).
                            self.next_held += 1;
                            continue;
                        }
                        // Passed positions no longer matter.
                        let read = (self.read_file_num, self.read_pos);
                        self.skip = self.skip.split_off(&read);
                    }
                    return Some(record);
                }
                Ok(None) => self.finish_read_file(),
                Err(problem) => self.set_aside_read_file(&problem),
            }
        }
    }

    /// One record from the read segment; `Ok(None)` at the end of a
    /// finished segment; `Err` (a description) when the segment is damaged.
    fn read_one(&mut self) -> Result<Option<Bytes>, Damage> {
        if self.reader.is_none() {
            let path = self.names.segment(self.read_file_num);
            let io = |source| Damage::Io {
                path: path.display().to_string(),
                source,
            };
            let file = self.storage.open_read(&path).map_err(io)?;
            let finished_len = if self.read_file_num < self.write_file_num {
                Some(file.len().map_err(io)?)
            } else {
                None
            };
            self.reader = Some(Reader {
                file: Arc::new(file),
                finished_len,
                buf: BytesMut::new(),
                next: None,
                ahead_pending: false,
            });
        }
        let still_written = self.read_file_num == self.write_file_num;
        let r = self.reader.as_mut().expect("opened above");
        if r.finished_len.is_none() && !still_written {
            // Writing moved on to a later segment since this one was opened.
            r.finished_len = Some(r.file.len().map_err(|source| Damage::Io {
                path: self.names.segment(self.read_file_num).display().to_string(),
                source,
            })?);
        }
        let limit = r.finished_len.unwrap_or(self.write_pos);
        if self.read_pos >= limit {
            return Ok(None);
        }
        self.fill(4, limit)?;
        let r = self.reader.as_mut().expect("opened above");
        let size = i32::from_be_bytes(r.buf[..4].try_into().expect("4 bytes"));
        if !self.valid_size(size) {
            return Err(Damage::BadSize(size));
        }
        let total = 4 + size as usize;
        self.fill(total, limit)?;
        let r = self.reader.as_mut().expect("opened above");
        bytes::Buf::advance(&mut r.buf, 4);
        let record = r.buf.split_to(total - 4);
        self.read_file_num_of_last = self.read_file_num;
        self.read_pos_of_last = self.read_pos;
        self.read_pos += total as u64;
        self.depth = self.depth.saturating_sub(1);
        self.ops_since_sync += 1;
        self.dirty = true;
        Ok(Some(record.freeze()))
    }

    /// Make the reader's buffer hold at least `want` bytes, reading no
    /// further than `limit` in the file.
    fn fill(&mut self, want: usize, limit: u64) -> Result<(), Damage> {
        let read_pos = self.read_pos;
        let names = &self.names;
        let path = || names.segment(self.read_file_num);
        let r = self.reader.as_mut().expect("reader open");
        while r.buf.len() < want {
            let from = read_pos + r.buf.len() as u64;
            if let Some(next) = r.next.take() {
                if next.at() == from {
                    r.buf = next.join(std::mem::take(&mut r.buf));
                    continue;
                }
            }
            if from >= limit {
                return Err(Damage::Torn {
                    path: path().display().to_string(),
                    at: from,
                });
            }
            let n = ((limit - from) as usize).min(READ_CHUNK.max(want - r.buf.len()));
            let old = r.buf.len();
            r.buf.resize(old + n, 0);
            match r.file.read_at(&mut r.buf[old..], from) {
                Ok(0) => {
                    r.buf.truncate(old);
                    return Err(Damage::Short {
                        path: path().display().to_string(),
                        at: from,
                    });
                }
                Ok(got) => r.buf.truncate(old + got),
                Err(e) => {
                    r.buf.truncate(old);
                    return Err(Damage::Io {
                        path: path().display().to_string(),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// The read segment is fully consumed: delete it, move to the next.
    fn finish_read_file(&mut self) {
        self.reader = None;
        self.finished_lens.remove(&self.read_file_num);
        self.read_file_num = self.next_segment_from(self.read_file_num + 1);
        self.read_pos = 0;
        self.delete_finished_files();
        self.dirty = true;
        // Reading a new segment is a good moment to record progress.
        self.ops_since_sync = self.ops_since_sync.max(self.cfg.sync_every);
    }

    /// Delete the segments read to their end that hold no held record.
    fn delete_finished_files(&mut self) {
        let keep_from = self.resume_position().0;
        if self.first_undeleted >= keep_from {
            return;
        }
        for num in self.segments_in(self.first_undeleted..=keep_from - 1) {
            let path = self.names.segment(num);
            let removed = match &mut self.removals {
                // Renamed, the name is free at once (a queue made again
                // under this name may reuse it) and the file's own
                // removal can wait.
                Some(later) => {
                    let doomed = deleting_name(&path);
                    let renamed = self.storage.rename(&path, &doomed);
                    if renamed.is_ok() {
                        later.push(doomed);
                    }
                    renamed
                }
                None => self.storage.remove(&path),
            };
            if let Err(e) = removed {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::error!(
                        "DISKQUEUE({}): failed to remove {}: {e}",
                        self.names.name,
                        path.display()
                    );
                }
            }
        }
        self.first_undeleted = keep_from;
        self.dir_changed = true;
    }

    /// The read segment cannot be read on: move it aside and continue with
    /// the next one. If it is also the write segment, writing moves on too.
    fn set_aside_read_file(&mut self, problem: &Damage) {
        self.reader = None;
        let path = self.names.segment(self.read_file_num);
        tracing::error!(
            "DISKQUEUE({}): reading at {} of {} - {problem}",
            self.names.name,
            self.read_pos,
            path.display()
        );
        if self.read_file_num == self.write_file_num {
            self.skip_write_file();
        }
        if self.storage.exists(&path) {
            match set_aside(&self.storage, &path) {
                Ok(to) => self.warn(format_args!(
                    "jump to next file and saving bad file as {}",
                    to.display()
                )),
                Err(e) => tracing::error!(
                    "DISKQUEUE({}): failed to rename bad file {}: {e}",
                    self.names.name,
                    path.display()
                ),
            }
            self.bad_segments += 1;
        }
        self.read_file_num = self.next_segment_from(self.read_file_num + 1);
        self.read_pos = 0;
        self.recount_depth();
        self.ops_since_sync = self.ops_since_sync.max(self.cfg.sync_every);
    }

    /// At the tail the depth must be zero; if not, metadata was wrong.
    fn check_tail(&mut self) {
        if self.depth != 0 {
            self.warn(format_args!(
                "depth {} at the end of the queue, resetting to 0",
                self.depth
            ));
            self.depth = 0;
            self.dirty = true;
        }
    }

    /// Delete every record: all segments go, numbering continues after the
    /// last one (as NSQ does, so a reader of old names never sees new data).
    pub fn empty(&mut self) -> io::Result<()> {
        self.reader = None;
        self.writer = None;
        self.unsynced_files.clear();
        self.held.clear();
        self.finished_lens.clear();
        let mut first_err = None;
        let first = self.first_undeleted.min(self.read_file_num);
        for num in self.segments_in(first..=self.write_file_num) {
            if let Err(e) = self.storage.remove(&self.names.segment(num)) {
                if e.kind() != io::ErrorKind::NotFound && first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        self.write_file_num += 1;
        self.write_pos = 0;
        self.read_file_num = self.write_file_num;
        self.read_pos = 0;
        self.first_undeleted = self.read_file_num;
        self.depth = 0;
        self.dirty = true;
        self.dir_changed = true;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Remove the queue from disk entirely (topic or channel deleted).
    pub fn delete(mut self) -> io::Result<()> {
        self.sync_state.deleted.store(true, Ordering::Release);
        let emptied = self.empty();
        for path in [self.names.meta(), self.names.synced()] {
            match self.storage.remove(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        emptied
    }

    /// What a sync must do now, or `None` if nothing changed since the last
    /// one. Cheap: call it under the owner's lock, then run the job outside.
    ///
    /// Without `with_meta` only the data is fsynced: enough for durability,
    /// since on opening, records past the recorded write position and
    /// segments newer than the metadata are found and kept. A stale read
    /// position only means records read since are delivered again. Writing
    /// the metadata costs a file creation, an fsync and a rename, so
    /// `--sync-every=1` does it on the `--sync-timeout` ticker instead of
    /// on every commit.
    pub fn sync_job(&mut self, with_meta: bool) -> Option<SyncJob<S>> {
        let write_at = (self.write_file_num, self.write_pos);
        // What a completed job recorded as durable. Whatever came after
        // it is synced again by every job until one completes: a job
        // may be dropped, fail, or still be running.
        let confirmed = self.sync_state.record.lock().0.durable;
        self.unsynced_files.retain(|&(num, _)| num >= confirmed.0);
        let record_due = self.synced.is_some() && write_at != confirmed;
        let data_dirty = !self.unsynced_files.is_empty() || self.synced_seq_pending() || record_due;
        // A segment created since then needs its directory entry synced.
        let created = write_at.0 > confirmed.0 || confirmed.1 == 0 && write_at > confirmed;
        let dir = self.dir_changed || created;
        if !(data_dirty || with_meta && self.dirty || dir) {
            return None;
        }
        let mut files: Vec<Arc<S::File>> =
            self.unsynced_files.iter().map(|(_, f)| f.clone()).collect();
        if let Some(w) = &self.writer {
            if data_dirty {
                files.push(w.clone());
            }
        }
        let record = match &self.synced {
            Some(file) if record_due => {
                self.synced_seq += 1;
                Some((file.clone(), self.synced_seq, write_at))
            }
            _ => None,
        };
        if with_meta {
            self.meta_seq += 1;
        }
        let job = SyncJob {
            storage: self.storage.clone(),
            parts: vec![Part {
                files,
                dir: dir.then(|| self.names.dir.clone()),
                meta: with_meta.then(|| (self.names.meta(), self.meta(), self.meta_seq)),
                record,
                state: self.sync_state.clone(),
                seq: self.write_seq,
            }],
        };
        self.last_job_seq = self.write_seq;
        if with_meta {
            self.dirty = false;
        }
        self.dir_changed = false;
        self.ops_since_sync = 0;
        Some(job)
    }

    /// Writes since the last job was taken.
    fn synced_seq_pending(&self) -> bool {
        self.write_seq != self.last_job_seq
    }

    /// (Used by the tests only.)
    #[cfg(test)]
    /// Sync now, in the caller's thread (shutdown, tests).
    pub fn sync(&mut self) -> io::Result<()> {
        match self.sync_job(true) {
            Some(job) => job.run(),
            None => Ok(()),
        }
    }
}

/// An fsync of a queue's files and a metadata write, prepared under the
/// owner's lock by [`DiskQueue::sync_job`] and run without it.
pub struct SyncJob<S: Storage = Fs> {
    storage: S,
    /// One per queue (or deferred store), in the order their data is synced.
    parts: Vec<Part<S>>,
}

struct Part<S: Storage> {
    files: Vec<Arc<S::File>>,
    dir: Option<PathBuf>,
    /// Where, what, and its number (newer metadata is never overwritten).
    meta: Option<(PathBuf, Meta, u64)>,
    /// The sync record's path, and the sequence number and position to
    /// record there.
    record: Option<(PathBuf, u64, Position)>,
    state: Arc<SyncState>,
    seq: u64,
}

impl<S: Storage> SyncJob<S> {
    /// One job doing the work of `jobs`: all their data is synced, in
    /// order, before any of their metadata is written. A channel's queue
    /// and deferred store sync together so that a message moved from one
    /// to the other is on disk in its new place before the queue's
    /// metadata records that it left the old one.
    pub fn merge(jobs: impl IntoIterator<Item = SyncJob<S>>) -> Option<SyncJob<S>> {
        let mut jobs = jobs.into_iter();
        let mut first = jobs.next()?;
        for job in jobs {
            first.parts.extend(job.parts);
        }
        Some(first)
    }

    /// fsync the data and the directory, then record the positions: after
    /// a power cut neither the metadata nor the sync record points past
    /// data that is not on disk.
    pub fn run(self) -> io::Result<()> {
        let result = self.write();
        for part in &self.parts {
            let done = if result.is_ok() {
                &part.state.synced
            } else {
                &part.state.failed
            };
            done.fetch_max(part.seq, Ordering::AcqRel);
        }
        result
    }

    fn write(&self) -> io::Result<()> {
        for part in &self.parts {
            for f in &part.files {
                f.sync_data()?;
            }
            if let Some(dir) = &part.dir {
                self.storage.sync_dir(dir)?;
            }
        }
        for part in &self.parts {
            if part.state.deleted.load(Ordering::Acquire) {
                continue; // the queue was deleted meanwhile: no stray files
            }
            let mut guard = part.state.record.lock();
            let (confirmed, meta_written) = &mut *guard;
            if let Some((path, meta, n)) = &part.meta {
                if *n > *meta_written {
                    self.storage
                        .write_atomically(path, meta.to_text().as_bytes())?;
                    *meta_written = *n;
                }
            }
            if let Some((path, seq, durable)) = &part.record {
                if confirmed.seq < *seq {
                    let file = self.storage.open_write(path, false)?;
                    let slot = 1 - confirmed.slot;
                    let w = synced::durable_write(slot, *seq, *durable);
                    file.write_all_at(&w.bytes, w.at)?;
                    file.sync_data()?;
                    *confirmed = synced::Confirmed {
                        seq: *seq,
                        durable: *durable,
                        slot,
                    };
                }
            }
        }
        Ok(())
    }

    /// (Used by the tests only.)
    #[cfg(test)]
    /// The positions this job records, if it writes the metadata.
    pub fn meta(&self) -> Option<Meta> {
        self.parts
            .iter()
            .find_map(|p| p.meta.as_ref().map(|(_, m, _)| *m))
    }
}

#[cfg(test)]
mod powerloss_tests;
#[cfg(test)]
mod tests;
