//! The deferred store: a channel's messages that left the FIFO order —
//! deferred (DPUB, REQ with a delay) or requeued — kept on disk with their
//! due time, so that a crash or a restart neither loses them nor delivers
//! them early.
//!
//! go-diskqueue's format has no room for a due time, and these messages
//! leave in any order, so this is a small log of our own beside the NSQ
//! files (NSQ ignores it): `<name>.nsqrs-deferred.dat`, a header line, then
//! entries `[u32 BE payload length][u32 BE CRC-32C of payload][payload]`,
//! where a payload is `0x01 | u64 id | i64 due (Unix ns) | u64 source file
//! | u64 source offset | record` (a message in NSQ's record encoding) to
//! add, `0x02 | u64 id` to remove, or `0x03 | u64 file | u64 offset` to
//! keep a source after compaction.
//!
//! The source is where the message's record was in the channel's queue, if
//! it came from there (`u64::MAX` twice if not). After a crash the queue is
//! read again from its oldest unfinished record, and records moved here
//! since must not come back from there too: [`DeferredStore::open`] returns
//! every source still recorded, for the queue to skip.
//! Opening replays the log; an entry torn by a crash (short, or failing its
//! checksum) ends the log there. When removed entries outweigh live ones
//! the log is rewritten with the live ones only (to a temporary file,
//! fsynced, renamed); when none is left it is removed, and the next entry
//! starts a new file. A file's bytes are never overwritten, only appended
//! to, so that what a power cut keeps of unsynced writes is a log that
//! ends early (checksums find where), never old entries read again.

use super::storage::{Fs, Storage, StorageFile};
use super::{Part, SyncJob, SyncState, WriteError};
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const HEADER: &[u8] = b"NSQRS-DEFERRED-1\n";
const ADD: u8 = 1;
const REMOVE: u8 = 2;
const SOURCE: u8 = 3;
/// An ADD's fixed part: kind, id, due, source file and offset.
const ADD_HEAD: usize = 1 + 8 + 8 + 8 + 8;
const NO_SOURCE: u64 = u64::MAX;

/// Where a record starts in a disk queue: segment number and offset.
pub type Source = (u64, u64);
/// Removed entries may take this much room before a rewrite is considered.
const COMPACT_AFTER: u64 = 1 << 20;

/// An entry of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryId(pub u64);

/// A live entry found when opening the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    /// When it is due, in Unix nanoseconds.
    pub due_ns: i64,
    pub record: Bytes,
}

pub struct DeferredStore<S: Storage = Fs> {
    storage: S,
    path: PathBuf,
    file: Option<Arc<S::File>>,
    write_pos: u64,
    next_id: u64,
    /// Live entries: their size on file and their source.
    live: HashMap<u64, (u64, Option<Source>)>,
    /// Sources of removed entries, kept through compaction while the queue
    /// may still read them again.
    dead_sources: Vec<Source>,
    live_bytes: u64,
    dead_bytes: u64,
    sync_state: Arc<SyncState>,
    write_seq: u64,
    last_job_seq: u64,
    /// The file was created or replaced: the directory needs an fsync.
    dir_changed: bool,
}

impl DeferredStore {
    pub fn path_for(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.nsqrs-deferred.dat"))
    }

    /// Open (or start) the store of queue `name` in `dir`, returning what it
    /// holds and every recorded source (see the module notes). A damaged
    /// tail is cut off and logged, never fatal.
    pub fn open(dir: &Path, name: &str) -> io::Result<(DeferredStore, Vec<Entry>)> {
        DeferredStore::open_in(Fs, dir, name)
    }
}

impl<S: Storage> DeferredStore<S> {
    /// [`open`](DeferredStore::open) on `storage`.
    pub fn open_in(
        storage: S,
        dir: &Path,
        name: &str,
    ) -> io::Result<(DeferredStore<S>, Vec<Entry>)> {
        let path = DeferredStore::path_for(dir, name);
        let mut store = DeferredStore {
            storage,
            path,
            file: None,
            write_pos: 0,
            next_id: 0,
            live: HashMap::new(),
            dead_sources: Vec::new(),
            live_bytes: 0,
            dead_bytes: 0,
            sync_state: Arc::new(SyncState::default()),
            write_seq: 0,
            last_job_seq: 0,
            dir_changed: false,
        };
        let data = match store.storage.read(&store.path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((store, Vec::new())),
            Err(e) => return Err(e),
        };
        let (entries, valid_end) = store.replay(&data);
        if valid_end < data.len() as u64 {
            tracing::warn!(
                "DEFERRED({name}): {} has {} damaged byte(s) at its end (a crash mid-write); cut off",
                store.path.display(),
                data.len() as u64 - valid_end
            );
        }
        let file = store.storage.open_write(&store.path, false)?;
        if valid_end < data.len() as u64 {
            // Durably: entries written after the cut must never be
            // followed by what was cut off.
            file.set_len(valid_end)?;
            file.sync_data()?;
        }
        // A process that died may have created the file without syncing
        // its directory entry: the first sync does.
        store.dir_changed = true;
        store.file = Some(Arc::new(file));
        store.write_pos = valid_end;
        Ok((store, entries))
    }

    /// Rebuild the live set from the log's bytes; returns the live entries
    /// (in log order) and where the valid part ends.
    fn replay(&mut self, data: &[u8]) -> (Vec<Entry>, u64) {
        if !data.starts_with(HEADER) {
            return (Vec::new(), 0);
        }
        let mut pos = HEADER.len();
        let mut added: HashMap<u64, Entry> = HashMap::new();
        let mut order = Vec::new();
        while let Some((payload, size)) = entry_at(data, pos) {
            match payload.first() {
                // IDs count up from 0 and never reach u64::MAX: an entry
                // with it was not written by us, so it ends the log like
                // any other entry we cannot understand.
                Some(&ADD) if payload.len() >= ADD_HEAD && be_u64(&payload[1..9]) < u64::MAX => {
                    let id = be_u64(&payload[1..9]);
                    let due_ns = be_u64(&payload[9..17]) as i64;
                    let source = source_of(be_u64(&payload[17..25]), be_u64(&payload[25..33]));
                    let record = Bytes::copy_from_slice(&payload[ADD_HEAD..]);
                    added.insert(
                        id,
                        Entry {
                            id: EntryId(id),
                            due_ns,
                            record,
                        },
                    );
                    order.push(id);
                    self.live.insert(id, (size as u64, source));
                    self.live_bytes += size as u64;
                    self.next_id = self.next_id.max(id + 1);
                }
                Some(&REMOVE) if payload.len() == 9 => {
                    let id = be_u64(&payload[1..9]);
                    added.remove(&id);
                    if let Some((n, source)) = self.live.remove(&id) {
                        self.live_bytes -= n;
                        self.dead_bytes += n;
                        self.dead_sources.extend(source);
                    }
                    self.dead_bytes += size as u64;
                }
                Some(&SOURCE) if payload.len() == 17 => {
                    self.dead_sources
                        .push((be_u64(&payload[1..9]), be_u64(&payload[9..17])));
                    self.dead_bytes += size as u64;
                }
                _ => break, // an entry we cannot understand: treat as the end
            }
            pos += size;
        }
        let entries = order
            .into_iter()
            .filter_map(|id| added.remove(&id))
            .collect();
        (entries, pos as u64)
    }

    /// The queue positions of every message that moved here (live or
    /// removed since), for the queue to skip when it reads them again.
    pub fn sources(&self) -> Vec<Source> {
        let mut all: Vec<Source> = self.live.values().filter_map(|&(_, s)| s).collect();
        all.extend(self.dead_sources.iter().copied());
        all
    }

    /// Entries live now.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn sync_state(&self) -> &Arc<SyncState> {
        &self.sync_state
    }

    pub fn write_seq(&self) -> u64 {
        self.write_seq
    }

    /// Store `record`, due at `due_ns` (Unix nanoseconds), moved from
    /// `source` in the queue if it came from there. Written (to the page
    /// cache) before this returns, so it survives the process.
    pub fn add(
        &mut self,
        due_ns: i64,
        record: &[u8],
        source: Option<Source>,
    ) -> Result<EntryId, WriteError> {
        let id = self.next_id;
        let (file, pos) = source.unwrap_or((NO_SOURCE, NO_SOURCE));
        let mut payload = Vec::with_capacity(ADD_HEAD + record.len());
        payload.push(ADD);
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&due_ns.to_be_bytes());
        payload.extend_from_slice(&file.to_be_bytes());
        payload.extend_from_slice(&pos.to_be_bytes());
        payload.extend_from_slice(record);
        let size = self.append(&payload)?;
        self.next_id += 1;
        self.live.insert(id, (size, source));
        self.live_bytes += size;
        Ok(EntryId(id))
    }

    /// The entry is done with (finished, or stored again under a new due
    /// time). Unknown entries are ignored. `resume` is where the queue
    /// would read again from after a crash: sources before it no longer
    /// matter.
    pub fn remove(&mut self, id: EntryId, resume: Source) -> Result<(), WriteError> {
        let Some((size, source)) = self.live.remove(&id.0) else {
            return Ok(());
        };
        self.live_bytes -= size;
        self.dead_bytes += size;
        if let Some(src) = source.filter(|&src| src >= resume) {
            self.dead_sources.push(src);
        }
        let mut payload = [0u8; 9];
        payload[0] = REMOVE;
        payload[1..].copy_from_slice(&id.0.to_be_bytes());
        let written = self.append(&payload)?;
        self.dead_bytes += written;
        if self.live.is_empty() && self.dead_sources.is_empty() {
            // Nothing left: start over with an empty log.
            self.reset().map_err(|source| WriteError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        } else if self.dead_bytes > COMPACT_AFTER && self.dead_bytes > 2 * self.live_bytes {
            self.dead_sources.retain(|&src| src >= resume);
            if let Err(e) = self.compact() {
                tracing::error!("DEFERRED: rewriting {} failed: {e}", self.path.display());
            }
        }
        Ok(())
    }

    fn append(&mut self, payload: &[u8]) -> Result<u64, WriteError> {
        let io_err = |source| WriteError::Io {
            path: self.path.display().to_string(),
            source,
        };
        if self.file.is_none() {
            let file = self.storage.open_write(&self.path, true).map_err(io_err)?;
            self.file = Some(Arc::new(file));
            self.dir_changed = true;
        }
        let mut buf = Vec::with_capacity(HEADER.len() + 8 + payload.len());
        if self.write_pos == 0 {
            buf.extend_from_slice(HEADER);
        }
        buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        buf.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        buf.extend_from_slice(payload);
        let file = self.file.as_ref().expect("opened above");
        if let Err(e) = file.write_all_at(&buf, self.write_pos) {
            self.file = None;
            return Err(io_err(e));
        }
        self.write_pos += buf.len() as u64;
        self.write_seq += 1;
        Ok(8 + payload.len() as u64)
    }

    /// Drop every entry (the queue is emptied too).
    pub fn clear(&mut self) -> io::Result<()> {
        self.live.clear();
        self.dead_sources.clear();
        self.live_bytes = 0;
        self.dead_bytes = 0;
        self.reset()
    }

    /// Start a new, empty log. In a new file, not by truncating this one:
    /// after a power cut the truncation may be lost while writes made after
    /// it are kept, and the old bytes following them would be read again,
    /// an entry whose removal was synced among them.
    fn reset(&mut self) -> io::Result<()> {
        if self.file.take().is_some() {
            match self.storage.remove(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            self.dir_changed = true;
        }
        self.write_pos = 0;
        self.dead_bytes = 0;
        self.write_seq += 1;
        Ok(())
    }

    /// Rewrite the log with only the live entries.
    fn compact(&mut self) -> io::Result<()> {
        let data = self.storage.read(&self.path)?;
        let mut out = HEADER.to_vec();
        let mut pos = HEADER.len();
        let mut sizes = HashMap::new();
        while let Some((payload, size)) = entry_at(&data, pos) {
            if payload.first() == Some(&ADD) && payload.len() >= ADD_HEAD {
                let id = be_u64(&payload[1..9]);
                if let Some(&(_, source)) = self.live.get(&id) {
                    out.extend_from_slice(&data[pos..pos + size]);
                    sizes.insert(id, (size as u64, source));
                }
            }
            pos += size;
        }
        let mut dead = 0;
        for &(file, offset) in &self.dead_sources {
            let mut payload = [0u8; 17];
            payload[0] = SOURCE;
            payload[1..9].copy_from_slice(&file.to_be_bytes());
            payload[9..].copy_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
            out.extend_from_slice(&payload);
            dead += 8 + payload.len() as u64;
        }
        let tmp = self.path.with_extension("dat.tmp");
        {
            let f = self.storage.open_write(&tmp, true)?;
            f.set_len(0)?;
            f.write_all_at(&out, 0)?;
            f.sync_data()?;
        }
        self.storage.rename(&tmp, &self.path)?;
        self.file = Some(Arc::new(self.storage.open_write(&self.path, false)?));
        self.write_pos = out.len() as u64;
        self.live_bytes = sizes.values().map(|&(n, _)| n).sum();
        self.live = sizes;
        self.dead_bytes = dead;
        self.dir_changed = true;
        self.write_seq += 1;
        Ok(())
    }

    /// The fsync the store needs, if it changed since the last one.
    pub fn sync_job(&mut self) -> Option<SyncJob<S>> {
        if self.write_seq == self.last_job_seq && !self.dir_changed {
            return None;
        }
        let job = SyncJob {
            storage: self.storage.clone(),
            parts: vec![Part {
                files: self.file.iter().cloned().collect(),
                dir: self
                    .dir_changed
                    .then(|| self.path.parent().map(Path::to_path_buf))
                    .flatten(),
                meta: None,
                record: None,
                state: self.sync_state.clone(),
                seq: self.write_seq,
            }],
        };
        self.last_job_seq = self.write_seq;
        self.dir_changed = false;
        Some(job)
    }

    /// Remove the store's file (channel deleted, or nothing deferred).
    pub fn delete(self) -> io::Result<()> {
        match self.storage.remove(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("8 bytes"))
}

fn source_of(file: u64, offset: u64) -> Option<Source> {
    (file != NO_SOURCE).then_some((file, offset))
}

/// The entry at `pos`: its payload and its whole size, if it is complete
/// and its checksum holds.
fn entry_at(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let head = data.get(pos..pos + 8)?;
    let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(head[4..].try_into().expect("4 bytes"));
    let payload = data.get(pos + 8..pos + 8 + len)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, 8 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_and_removed_ones_stay_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, found) = DeferredStore::open(dir.path(), "t:c").unwrap();
        assert!(found.is_empty());
        let a = s.add(100, b"record-a", None).unwrap();
        let b = s.add(200, b"record-b", None).unwrap();
        let c = s.add(300, b"record-c", None).unwrap();
        s.remove(b, (0, 0)).unwrap();
        drop(s);
        let (mut s, found) = DeferredStore::open(dir.path(), "t:c").unwrap();
        let got: Vec<(EntryId, i64, &[u8])> = found
            .iter()
            .map(|e| (e.id, e.due_ns, e.record.as_ref()))
            .collect();
        assert_eq!(
            got,
            vec![(a, 100, &b"record-a"[..]), (c, 300, &b"record-c"[..])]
        );
        // New ids do not collide with old ones.
        let d = s.add(400, b"record-d", None).unwrap();
        assert!(d.0 > c.0);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DeferredStore::open(dir.path(), "q").unwrap();
        s.add(1, b"kept", None).unwrap();
        s.add(2, b"torn", None).unwrap();
        drop(s);
        let path = DeferredStore::path_for(dir.path(), "q");
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut s, found) = DeferredStore::open(dir.path(), "q").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].record.as_ref(), b"kept");
        // Writing goes on after the cut, and is read back.
        s.add(3, b"after", None).unwrap();
        drop(s);
        let (_, found) = DeferredStore::open(dir.path(), "q").unwrap();
        assert_eq!(found.len(), 2);
        // A flipped bit fails the checksum: the log ends before it.
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 1;
        std::fs::write(&path, &data).unwrap();
        let (_, found) = DeferredStore::open(dir.path(), "q").unwrap();
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn emptied_log_restarts_and_compaction_keeps_the_live() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DeferredStore::open(dir.path(), "q").unwrap();
        let a = s.add(1, b"x", None).unwrap();
        s.remove(a, (0, 0)).unwrap();
        let path = DeferredStore::path_for(dir.path(), "q");
        assert!(!path.exists(), "an empty log is removed");
        // Enough churn to trigger a rewrite, with one long-lived entry.
        let keep = s.add(7, b"long-lived", None).unwrap();
        let body = vec![b'b'; 1000];
        for i in 0..3000 {
            let id = s.add(i, &body, None).unwrap();
            s.remove(id, (0, 0)).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() < 1 << 21);
        drop(s);
        let (_, found) = DeferredStore::open(dir.path(), "q").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id, found[0].due_ns), (keep, 7));
    }

    #[test]
    fn sources_outlive_their_entries_while_the_queue_may_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DeferredStore::open(dir.path(), "q").unwrap();
        let a = s.add(1, b"a", Some((0, 100))).unwrap();
        let b = s.add(1, b"b", Some((0, 200))).unwrap();
        let _c = s.add(1, b"c", None).unwrap();
        // a is done while the queue would still read from 0,150 on: its
        // source (0,100) is behind that and can go; b's (0,200) cannot.
        s.remove(a, (0, 150)).unwrap();
        s.remove(b, (0, 150)).unwrap();
        assert_eq!(s.sources(), vec![(0, 200)]);
        drop(s);
        let (s, found) = DeferredStore::open(dir.path(), "q").unwrap();
        assert_eq!(found.len(), 1);
        // Replayed, the log cannot tell which were behind the queue's
        // resume position: it keeps both (skipping one behind it is moot).
        let mut sources = s.sources();
        sources.sort();
        assert_eq!(sources, vec![(0, 100), (0, 200)]);
    }

    #[test]
    fn an_entry_with_the_largest_id_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DeferredStore::open(dir.path(), "q").unwrap();
        let kept = s.add(1, b"kept", None).unwrap();
        s.add(2, b"forged", None).unwrap();
        let path = s.path.clone();
        drop(s);
        // Give the second entry the largest ID, with a valid checksum.
        let mut data = std::fs::read(&path).unwrap();
        let second = HEADER.len() + 8 + ADD_HEAD + b"kept".len();
        let payload = second + 8..second + 8 + ADD_HEAD + b"forged".len();
        data[payload.start + 1..payload.start + 9].copy_from_slice(&u64::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&data[payload.clone()]);
        data[second + 4..second + 8].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&path, &data).unwrap();

        let (mut s, found) = DeferredStore::open(dir.path(), "q").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, kept);
        // New entries get fresh IDs, after the last one understood.
        let next = s.add(3, b"next", None).unwrap();
        assert!(next.0 > kept.0);
    }

    #[test]
    fn sync_job_marks_writes_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DeferredStore::open(dir.path(), "q").unwrap();
        s.add(1, b"x", None).unwrap();
        let seq = s.write_seq();
        let job = s.sync_job().unwrap();
        job.run().unwrap();
        assert!(s.sync_state().synced() >= seq);
        assert!(s.sync_job().is_none(), "nothing new to sync");
    }
}
