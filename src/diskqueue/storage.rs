//! The file operations of the disk queue and the deferred store, behind a
//! small trait so that tests can run them on a simulated disk that loses
//! power (see `sim.rs`). [`Fs`], the real file system, is the default type
//! parameter everywhere: production code names neither.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where files live. Paths are absolute or relative to the process, as
/// for `std::fs`; every file is in one directory per queue.
pub trait Storage: Clone + Send + Sync + 'static {
    type File: StorageFile;
    /// An existing file, to read.
    fn open_read(&self, path: &Path) -> io::Result<Self::File>;
    /// A file to read and write, created (empty, mode 0600) if missing and
    /// `create`. Never truncated.
    fn open_write(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    /// A whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn len(&self, path: &Path) -> io::Result<u64>;
    fn exists(&self, path: &Path) -> bool;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// The names in `dir` starting with `prefix`: the files of one queue,
    /// looked up when it is opened. A queue's files are created only by
    /// that queue while it is open, so one listing of the directory can
    /// answer for every queue not opened since it was taken; a queue that
    /// is closed or deleted calls [`forget_listing`](Self::forget_listing).
    /// [`Fs`] keeps such a listing: opening 10,000 topics then reads the
    /// directory once, not 10,000 times. This default lists every time.
    fn list_prefixed(&self, dir: &Path, prefix: &str) -> io::Result<Vec<OsString>> {
        let mut names = self.list(dir)?;
        names.retain(|n| n.to_str().is_some_and(|n| n.starts_with(prefix)));
        Ok(names)
    }
    /// Files in `dir` changed other than by a queue's opening: the next
    /// [`list_prefixed`](Self::list_prefixed) reads the directory again.
    fn forget_listing(&self, _dir: &Path) {}
    /// Make the creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Replace `path` by `contents` at once: temporary file, fsync, rename
    /// (the rename is durable after the next [`sync_dir`](Self::sync_dir)).
    fn write_atomically(&self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// Identifies the current boot of the machine (`None` if unknown): the
    /// page cache survives a process but not a reboot.
    fn boot_id(&self) -> Option<u128>;
}

/// An open file, read and written at offsets (`pread`/`pwrite`).
pub trait StorageFile: Send + Sync + 'static {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize>;
    /// Fill `buf` from `at`, or fail (`UnexpectedEof` past the end).
    fn read_exact_at(&self, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, at) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Make the contents (and length) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Have the file system allocate `len` bytes of blocks from `at`,
    /// leaving the length unchanged (`fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`), so that appending there later skips its
    /// block-by-block allocation. `Ok(false)` where there is no such thing.
    fn reserve(&self, _at: u64, _len: u64) -> io::Result<bool> {
        Ok(false)
    }
    /// Bytes an unprivileged writer may still use on this file's file
    /// system (`fstatvfs`), `None` where unknown.
    fn free_space(&self) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

/// [`Fs`]'s directory listings, sorted, by directory.
static LISTINGS: parking_lot::Mutex<Option<HashMap<PathBuf, Arc<Vec<String>>>>> =
    parking_lot::Mutex::new(None);

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fs;

impl Storage for Fs {
    type File = File;

    fn open_read(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn open_write(&self, path: &Path, create: bool) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        std::fs::metadata(path).map(|m| m.len())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn list_prefixed(&self, dir: &Path, prefix: &str) -> io::Result<Vec<OsString>> {
        let listing = {
            let mut guard = LISTINGS.lock();
            let listings = guard.get_or_insert_with(HashMap::new);
            match listings.get(dir) {
                Some(l) => l.clone(),
                None => {
                    // Queue names are ASCII: other names are no queue's.
                    let mut names: Vec<String> = self
                        .list(dir)?
                        .into_iter()
                        .filter_map(|n| n.into_string().ok())
                        .collect();
                    names.sort_unstable();
                    let l = Arc::new(names);
                    listings.insert(dir.to_path_buf(), l.clone());
                    l
                }
            }
        };
        let from = listing.partition_point(|n| n.as_str() < prefix);
        Ok(listing[from..]
            .iter()
            .take_while(|n| n.starts_with(prefix))
            .map(OsString::from)
            .collect())
    }

    fn forget_listing(&self, dir: &Path) {
        if let Some(listings) = LISTINGS.lock().as_mut() {
            listings.remove(dir);
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn write_atomically(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        super::meta::write_atomically(path, contents)
    }

    fn boot_id(&self) -> Option<u128> {
        static BOOT: std::sync::OnceLock<Option<u128>> = std::sync::OnceLock::new();
        *BOOT.get_or_init(|| {
            let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            let hex: String = text.trim().chars().filter(|&c| c != '-').collect();
            u128::from_str_radix(&hex, 16).ok().filter(|&id| id != 0)
        })
    }
}

impl StorageFile for File {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, at)
    }

    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, at)
    }

    fn len(&self) -> io::Result<u64> {
        self.metadata().map(|m| m.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn reserve(&self, at: u64, len: u64) -> io::Result<bool> {
        use rustix::fs::{fallocate, FallocateFlags};
        fallocate(self, FallocateFlags::KEEP_SIZE, at, len)?;
        Ok(true)
    }

    fn free_space(&self) -> io::Result<Option<u64>> {
        let st = rustix::fs::fstatvfs(self)?;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_answers_queue_files_from_one_listing_until_told_to_forget() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |name: &str| std::fs::write(dir.path().join(name), b"").unwrap();
        touch("a.diskqueue.000000.dat");
        touch("ab.diskqueue.000000.dat");
        touch("b.diskqueue.meta.dat");
        let names = |prefix| {
            let mut v: Vec<String> = Fs
                .list_prefixed(dir.path(), prefix)
                .unwrap()
                .into_iter()
                .map(|n| n.into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("a."), ["a.diskqueue.000000.dat"]);
        assert_eq!(names("b."), ["b.diskqueue.meta.dat"]);
        // Not read again: a file made behind its back is not seen...
        touch("c.diskqueue.000000.dat");
        assert!(names("c.").is_empty());
        // ...until a queue closes and the listing is forgotten.
        Fs.forget_listing(dir.path());
        assert_eq!(names("c."), ["c.diskqueue.000000.dat"]);
    }

    /// What the disk queue relies on: reserving leaves the length alone,
    /// and cutting the file to its own length gives the space back.
    #[test]
    fn reserving_keeps_the_length_and_cutting_to_it_gives_the_space_back() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = Fs.open_write(&dir.path().join("f"), true).unwrap();
        StorageFile::write_all_at(&file, &[1; 100], 0).unwrap();
        let allocated = || file.metadata().unwrap().blocks() * 512;
        match StorageFile::reserve(&file, 100, 4 << 20) {
            Ok(reserved) => assert!(reserved),
            // Some file systems have no fallocate: nothing to check there.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => return,
            Err(e) => panic!("{e}"),
        }
        assert_eq!(StorageFile::len(&file).unwrap(), 100);
        assert!(allocated() >= 4 << 20, "{} bytes allocated", allocated());
        StorageFile::write_all_at(&file, &[2; 100], 100).unwrap();
        StorageFile::set_len(&file, 200).unwrap();
        assert!(allocated() < 64 << 10, "{} bytes allocated", allocated());
        assert_eq!(Fs.read(&dir.path().join("f")).unwrap()[99..101], [1, 2]);
    }

    #[test]
    fn free_space_is_what_df_would_show() {
        let dir = tempfile::tempdir().unwrap();
        let file = Fs.open_write(&dir.path().join("f"), true).unwrap();
        let free = StorageFile::free_space(&file)
            .unwrap()
            .expect("known on Linux");
        let st = rustix::fs::statvfs(dir.path()).unwrap();
        let again = st.f_bavail * st.f_frsize;
        // Other processes write meanwhile: equal within a few megabytes.
        assert!(free.abs_diff(again) < 64 << 20, "{free} against {again}");
        assert!(free > 0);
    }

    #[test]
    fn boot_id_is_read_on_linux() {
        if Path::new("/proc/sys/kernel/random/boot_id").exists() {
            let id = Fs.boot_id();
            assert!(id.is_some());
            assert_eq!(id, Fs.boot_id());
        }
    }
}
