//! A simulated disk that loses power, for tests (in the manner of
//! FoundationDB's and TigerBeetle's simulators).
//!
//! Every file has the contents on stable storage and the operations since
//! its last `sync_data` (writes, length changes), which only the page cache
//! holds; the directory likewise has its durable entries and the creations,
//! renames and removals since its last sync. [`SimStorage::crash`] is a
//! power cut followed by a reboot: each unsynced operation, independently,
//! is lost, kept, or (a write) kept in part, a prefix or some of its
//! sectors, and a file may have grown over what was lost, reading zeros or
//! stale garbage there. What remains becomes the disk. The choices come
//! from a seeded generator: a failing case replays exactly.
//!
//! [`SimStorage::cut_power_after`] makes the power go in the middle of
//! things: after that many more operations every operation fails, until
//! the next `crash`.

use super::storage::{Storage, StorageFile};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SECTOR: u64 = 512;

#[derive(Clone, Default)]
pub struct SimStorage {
    fs: Arc<Mutex<SimFs>>,
}

#[derive(Default, Clone)]
struct SimFs {
    inodes: Vec<Inode>,
    /// The directory entries as processes see them.
    names: BTreeMap<PathBuf, usize>,
    /// The directory entries on stable storage.
    durable_names: BTreeMap<PathBuf, usize>,
    /// Directory operations not yet synced, in order.
    pending_dir: Vec<DirOp>,
    /// Reboots so far: handles opened before the last one are stale.
    boot: u64,
    /// Operations left before the power goes, if a cut is planned.
    power_left: Option<u64>,
    dark: bool,
    tmp_names: u64,
    /// Reserving space fails, as on a full disk.
    refuse_reserve: bool,
    /// Bytes writes may still add (`None`: no limit). A write needing
    /// more writes what fits and fails, as on a disk filling up.
    space_left: Option<u64>,
    /// What `free_space` answers.
    free_space: Option<u64>,
    /// Counts, for tests to check their own coverage.
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub crashes: u64,
    pub torn_writes: u64,
    pub lost_writes: u64,
    pub kept_writes: u64,
    pub lost_dir_ops: u64,
    pub power_cuts: u64,
}

#[derive(Default, Clone)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<FileOp>,
    /// Space reserved (`fallocate` keeping the size) up to here. Like a
    /// real file system's, a length change down to or below the current
    /// length gives back whatever lies past the end.
    reserved_to: u64,
}

#[derive(Clone)]
enum FileOp {
    Write { at: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone)]
enum DirOp {
    Link {
        path: PathBuf,
        ino: usize,
    },
    Unlink {
        path: PathBuf,
        ino: usize,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: usize,
    },
}

impl DirOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path, .. } => path.parent(),
            DirOp::Rename { to, .. } => to.parent(),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, usize>) {
        match self {
            DirOp::Link { path, ino } => {
                names.insert(path.clone(), *ino);
            }
            DirOp::Unlink { path, ino } => {
                if names.get(path) == Some(ino) {
                    names.remove(path);
                }
            }
            DirOp::Rename { from, to, ino } => {
                if names.get(from) == Some(ino) {
                    names.remove(from);
                }
                names.insert(to.clone(), *ino);
            }
        }
    }
}

/// How a power cut treats what was not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Each operation on its own: lost, kept, or torn.
    Independent,
    /// Per file (and for the directory), the operations up to a random
    /// point are kept, the one there possibly torn: an ordered file system.
    Prefix,
    /// Nothing unsynced survives.
    LoseAll,
    /// Everything written survives (the page cache was flushed in time).
    KeepAll,
}

fn dark() -> io::Error {
    io::Error::other("simulated power cut")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// Write `data` at `at`, growing `buf` with `fill` up to there if needed.
fn put(buf: &mut Vec<u8>, at: u64, data: &[u8], fill: &mut impl FnMut() -> u8) {
    let at = at as usize;
    while buf.len() < at {
        buf.push(fill());
    }
    let end = at + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[at..end].copy_from_slice(data);
}

impl SimStorage {
    pub fn new() -> Self {
        let s = SimStorage::default();
        s.fs.lock().boot = 1;
        s
    }

    pub fn stats(&self) -> Stats {
        self.fs.lock().stats
    }

    /// After `ops` more operations (reads excepted), the power goes: the
    /// operation then and every one after fail until [`crash`](Self::crash).
    pub fn cut_power_after(&self, ops: u64) {
        self.fs.lock().power_left = Some(ops);
    }

    /// An independent copy of the disk and page cache as they are now:
    /// what a process would find if it started here.
    pub fn snapshot(&self) -> SimStorage {
        SimStorage {
            fs: Arc::new(Mutex::new(self.fs.lock().clone())),
        }
    }

    /// Whether a planned power cut happened.
    pub fn is_dark(&self) -> bool {
        self.fs.lock().dark
    }

    /// A power cut and a reboot, the losses chosen by `seed`.
    pub fn crash(&self, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mode = match rng.u8(0..10) {
            0 => CrashMode::LoseAll,
            1 => CrashMode::KeepAll,
            2..=3 => CrashMode::Prefix,
            _ => CrashMode::Independent,
        };
        self.crash_with(mode, &mut rng);
    }

    pub fn crash_with(&self, mode: CrashMode, rng: &mut fastrand::Rng) {
        let mut fs = self.fs.lock();
        let fs = &mut *fs;
        fs.stats.crashes += 1;
        // Where nothing was written, a grown file reads zeros, or whatever
        // the disk held there before.
        let garbage = rng.bool();
        let mut fill_rng = fastrand::Rng::with_seed(rng.u64(..));
        let mut fill = move || if garbage { fill_rng.u8(..) } else { 0 };
        for inode in &mut fs.inodes {
            let mut contents = std::mem::take(&mut inode.durable);
            let ops = std::mem::take(&mut inode.pending);
            let cut = rng.usize(0..=ops.len());
            for (i, op) in ops.iter().enumerate() {
                // 0: lost, 1: kept, 2: torn.
                let fate = match mode {
                    CrashMode::LoseAll => 0,
                    CrashMode::KeepAll => 1,
                    CrashMode::Prefix if i < cut => 1,
                    CrashMode::Prefix if i == cut => rng.u8(0..3),
                    CrashMode::Prefix => 0,
                    CrashMode::Independent => rng.u8(0..3),
                };
                match op {
                    FileOp::SetLen(len) => {
                        if fate != 0 {
                            contents.resize(*len as usize, 0);
                        }
                    }
                    FileOp::Write { at, data } => {
                        let end = at + data.len() as u64;
                        // The length may have grown to cover the whole
                        // write even where its data was not written.
                        let grown = fate != 1 && mode != CrashMode::LoseAll && rng.bool();
                        match fate {
                            1 => {
                                fs.stats.kept_writes += 1;
                                put(&mut contents, *at, data, &mut fill);
                            }
                            0 => fs.stats.lost_writes += 1,
                            _ => {
                                fs.stats.torn_writes += 1;
                                if rng.bool() {
                                    let keep = rng.usize(0..data.len().max(1));
                                    put(&mut contents, *at, &data[..keep], &mut fill);
                                } else {
                                    // Sector by sector, each kept or not.
                                    let mut from = *at;
                                    while from < end {
                                        let to = ((from / SECTOR + 1) * SECTOR).min(end);
                                        if rng.bool() {
                                            let piece =
                                                &data[(from - at) as usize..(to - at) as usize];
                                            put(&mut contents, from, piece, &mut fill);
                                        }
                                        from = to;
                                    }
                                }
                            }
                        }
                        if grown {
                            while (contents.len() as u64) < end {
                                contents.push(fill());
                            }
                        }
                    }
                }
            }
            inode.current = contents.clone();
            inode.durable = contents;
        }
        let ops = std::mem::take(&mut fs.pending_dir);
        let cut = rng.usize(0..=ops.len());
        let mut names = std::mem::take(&mut fs.durable_names);
        for (i, op) in ops.iter().enumerate() {
            let kept = match mode {
                CrashMode::LoseAll => false,
                CrashMode::KeepAll => true,
                CrashMode::Prefix => i < cut,
                CrashMode::Independent => rng.bool(),
            };
            if kept {
                op.apply(&mut names);
            } else {
                fs.stats.lost_dir_ops += 1;
            }
        }
        fs.durable_names = names.clone();
        fs.names = names;
        fs.boot += 1;
        fs.power_left = None;
        fs.dark = false;
    }

    /// Contents of a file as processes see it (tests).
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let fs = self.fs.lock();
        fs.names
            .get(path)
            .map(|&ino| fs.inodes[ino].current.clone())
    }

    /// Bytes reserved past the end of `path`, if it exists.
    pub fn reserved_past_end(&self, path: &Path) -> Option<u64> {
        let fs = self.fs.lock();
        let inode = &fs.inodes[*fs.names.get(path)?];
        Some(inode.reserved_to.saturating_sub(inode.current.len() as u64))
    }

    /// From now on, reserving space fails (as on a full disk), having
    /// reserved half of what was asked.
    pub fn refuse_reserve(&self) {
        self.fs.lock().refuse_reserve = true;
    }

    /// From now on (`true`) or no longer, writes fail as on a full disk.
    pub fn set_full(&self, full: bool) {
        self.set_space_left(full.then_some(0));
    }

    /// From now on, writes may add this many bytes in all (`None`: no
    /// limit); the one that needs more writes what fits, then fails.
    pub fn set_space_left(&self, left: Option<u64>) {
        self.fs.lock().space_left = left;
    }

    /// From now on, files report this much free space (unknown: `None`,
    /// the default).
    pub fn set_free_space(&self, free: Option<u64>) {
        self.fs.lock().free_space = free;
    }

    /// File names as processes see them (tests).
    pub fn names(&self) -> Vec<PathBuf> {
        self.fs.lock().names.keys().cloned().collect()
    }

    fn with<T>(&self, f: impl FnOnce(&mut SimFs) -> io::Result<T>) -> io::Result<T> {
        let mut fs = self.fs.lock();
        if fs.dark {
            return Err(dark());
        }
        f(&mut fs)
    }

    /// A mutating operation: counts towards a planned power cut.
    fn mutate<T>(&self, f: impl FnOnce(&mut SimFs) -> io::Result<T>) -> io::Result<T> {
        let mut fs = self.fs.lock();
        if fs.dark {
            return Err(dark());
        }
        if let Some(left) = fs.power_left.as_mut() {
            if *left == 0 {
                fs.dark = true;
                fs.stats.power_cuts += 1;
                return Err(dark());
            }
            *left -= 1;
        }
        f(&mut fs)
    }

    fn file(&self, fs: &SimFs, ino: usize) -> SimFile {
        SimFile {
            storage: self.clone(),
            ino,
            boot: fs.boot,
        }
    }
}

impl SimFs {
    fn lookup(&self, path: &Path) -> io::Result<usize> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn create(&mut self, path: &Path) -> usize {
        let ino = self.inodes.len();
        self.inodes.push(Inode::default());
        self.names.insert(path.to_path_buf(), ino);
        self.pending_dir.push(DirOp::Link {
            path: path.to_path_buf(),
            ino,
        });
        ino
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    fn open_read(&self, path: &Path) -> io::Result<SimFile> {
        self.with(|fs| Ok(self.file(fs, fs.lookup(path)?)))
    }

    fn open_write(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        let exists = self.with(|fs| Ok(fs.names.contains_key(path)))?;
        if exists || !create {
            return self.open_read(path);
        }
        self.mutate(|fs| {
            let ino = fs.create(path);
            Ok(self.file(fs, ino))
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.with(|fs| Ok(fs.inodes[fs.lookup(path)?].current.clone()))
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        self.with(|fs| Ok(fs.inodes[fs.lookup(path)?].current.len() as u64))
    }

    fn exists(&self, path: &Path) -> bool {
        self.fs.lock().names.contains_key(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.mutate(|fs| {
            let ino = fs.lookup(path)?;
            fs.names.remove(path);
            fs.pending_dir.push(DirOp::Unlink {
                path: path.to_path_buf(),
                ino,
            });
            Ok(())
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutate(|fs| {
            let ino = fs.lookup(from)?;
            fs.names.remove(from);
            fs.names.insert(to.to_path_buf(), ino);
            fs.pending_dir.push(DirOp::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                ino,
            });
            Ok(())
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.with(|fs| {
            Ok(fs
                .names
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_owned()))
                .collect())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mutate(|fs| {
            let ops = std::mem::take(&mut fs.pending_dir);
            for op in ops {
                if op.dir() == Some(dir) {
                    op.apply(&mut fs.durable_names);
                } else {
                    fs.pending_dir.push(op);
                }
            }
            Ok(())
        })
    }

    fn write_atomically(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let n = self.with(|fs| {
            fs.tmp_names += 1;
            Ok(fs.tmp_names)
        })?;
        let tmp = PathBuf::from(format!("{}.{n}.tmp", path.display()));
        let result = (|| {
            let f = self.open_write(&tmp, true)?;
            f.write_all_at(contents, 0)?;
            f.sync_data()?;
            self.rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = self.remove(&tmp);
        }
        result
    }

    fn boot_id(&self) -> Option<u128> {
        Some(self.fs.lock().boot as u128)
    }
}

/// An open simulated file; stale (every operation fails) after a reboot.
pub struct SimFile {
    storage: SimStorage,
    ino: usize,
    boot: u64,
}

impl SimFile {
    fn check(&self, fs: &SimFs) -> io::Result<()> {
        if fs.boot != self.boot {
            return Err(io::Error::other("stale handle from before a reboot"));
        }
        Ok(())
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        self.storage.with(|fs| {
            self.check(fs)?;
            let data = &fs.inodes[self.ino].current;
            let from = (at as usize).min(data.len());
            let n = buf.len().min(data.len() - from);
            buf[..n].copy_from_slice(&data[from..from + n]);
            Ok(n)
        })
    }

    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.storage.mutate(|fs| {
            self.check(fs)?;
            let fits = match fs.space_left {
                Some(left) if left < buf.len() as u64 => left as usize,
                _ => buf.len(),
            };
            if let Some(left) = &mut fs.space_left {
                *left -= fits as u64;
            }
            if fits > 0 {
                let inode = &mut fs.inodes[self.ino];
                put(&mut inode.current, at, &buf[..fits], &mut || 0);
                inode.pending.push(FileOp::Write {
                    at,
                    data: buf[..fits].to_vec(),
                });
            }
            if fits < buf.len() {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.storage.with(|fs| {
            self.check(fs)?;
            Ok(fs.inodes[self.ino].current.len() as u64)
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.storage.mutate(|fs| {
            self.check(fs)?;
            let inode = &mut fs.inodes[self.ino];
            if len <= inode.current.len() as u64 {
                inode.reserved_to = 0;
            }
            inode.current.resize(len as usize, 0);
            inode.pending.push(FileOp::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.storage.mutate(|fs| {
            self.check(fs)?;
            let inode = &mut fs.inodes[self.ino];
            inode.durable = inode.current.clone();
            inode.pending.clear();
            Ok(())
        })
    }

    fn reserve(&self, at: u64, len: u64) -> io::Result<bool> {
        self.storage.mutate(|fs| {
            self.check(fs)?;
            let refuse = fs.refuse_reserve;
            let inode = &mut fs.inodes[self.ino];
            if refuse {
                // As ext4 does, keep what was allocated before running out.
                inode.reserved_to = inode.reserved_to.max(at + len / 2);
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            inode.reserved_to = inode.reserved_to.max(at + len);
            Ok(true)
        })
    }

    fn free_space(&self) -> io::Result<Option<u64>> {
        self.storage.with(|fs| {
            self.check(fs)?;
            Ok(fs.free_space)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(format!("/d/{s}"))
    }

    #[test]
    fn synced_data_and_entries_survive_and_the_rest_may_not() {
        let s = SimStorage::new();
        let a = s.open_write(&p("a"), true).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        s.sync_dir(Path::new("/d")).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        let b = s.open_write(&p("b"), true).unwrap();
        b.write_all_at(b"x", 0).unwrap();
        b.sync_data().unwrap(); // data durable, directory entry not
        s.crash_with(CrashMode::LoseAll, &mut fastrand::Rng::with_seed(1));
        assert_eq!(s.contents(&p("a")).unwrap(), b"hello");
        assert!(!s.exists(&p("b")));
        assert!(a.read_at(&mut [0; 1], 0).is_err(), "stale handle");

        let a = s.open_write(&p("a"), true).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        s.crash_with(CrashMode::KeepAll, &mut fastrand::Rng::with_seed(1));
        assert_eq!(s.contents(&p("a")).unwrap(), b"hello world");
    }

    #[test]
    fn independent_crashes_tear_and_grow() {
        let mut torn = 0;
        let mut grown = 0;
        let mut counted = Stats::default();
        for seed in 0..200 {
            let s = SimStorage::new();
            let a = s.open_write(&p("a"), true).unwrap();
            s.sync_dir(Path::new("/d")).unwrap();
            a.write_all_at(&[1; 2000], 0).unwrap();
            a.write_all_at(&[2; 100], 2000).unwrap();
            s.crash_with(CrashMode::Independent, &mut fastrand::Rng::with_seed(seed));
            let stats = s.stats();
            counted.crashes += stats.crashes;
            counted.torn_writes += stats.torn_writes;
            counted.lost_writes += stats.lost_writes;
            let c = s.contents(&p("a")).unwrap();
            assert!(c.len() <= 2100);
            if c.len() == 2100 && c.contains(&0) {
                grown += 1;
            }
            if c.len() < 2000 && !c.is_empty() {
                torn += 1;
            }
        }
        assert!(torn > 0 && grown > 0, "torn {torn}, grown {grown}");
        // The simulator's own counts agree that it tore and lost writes.
        assert_eq!(counted.crashes, 200);
        assert!(
            counted.torn_writes > 0 && counted.lost_writes > 0,
            "{counted:?}"
        );
    }

    #[test]
    fn power_cut_fails_everything_after() {
        let s = SimStorage::new();
        s.cut_power_after(1);
        let a = s.open_write(&p("a"), true).unwrap();
        assert!(a.write_all_at(b"x", 0).is_err());
        assert!(s.is_dark());
        assert!(s.sync_dir(Path::new("/d")).is_err());
        s.crash_with(CrashMode::KeepAll, &mut fastrand::Rng::with_seed(0));
        assert!(!s.is_dark());
        assert_eq!(s.contents(&p("a")).unwrap(), b"");
    }
}
