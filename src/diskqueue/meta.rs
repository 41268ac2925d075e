//! The metadata file and the file names of a disk queue, in go-diskqueue's
//! format so that a data directory can move between NSQ and us.

use super::storage::Storage;
use std::path::{Path, PathBuf};

/// Read and write positions, as stored in `<name>.diskqueue.meta.dat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    pub depth: u64,
    pub read_file_num: u64,
    pub read_pos: u64,
    pub write_file_num: u64,
    pub write_pos: u64,
}

impl Meta {
    /// The exact text go-diskqueue writes: `depth\nrfn,rpos\nwfn,wpos\n`.
    pub fn to_text(self) -> String {
        format!(
            "{}\n{},{}\n{},{}\n",
            self.depth, self.read_file_num, self.read_pos, self.write_file_num, self.write_pos
        )
    }

    /// Parse the metadata text. Anything else (garbage, negative numbers,
    /// a read position past the write position) is `None`: the caller then
    /// rebuilds the positions from the segment files instead of trusting it.
    pub fn parse(text: &[u8]) -> Option<Meta> {
        let text = std::str::from_utf8(text).ok()?;
        let mut lines = text.split('\n');
        let depth: i64 = lines.next()?.trim().parse().ok()?;
        // go-diskqueue's numbers are int64: anything larger is not its.
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n <= i64::MAX as u64)
        };
        let pair = |line: Option<&str>| -> Option<(u64, u64)> {
            let (a, b) = line?.trim().split_once(',')?;
            Some((number(a)?, number(b)?))
        };
        let (read_file_num, read_pos) = pair(lines.next())?;
        let (write_file_num, write_pos) = pair(lines.next())?;
        if lines.any(|rest| !rest.trim().is_empty()) {
            return None;
        }
        let behind = (read_file_num, read_pos) <= (write_file_num, write_pos);
        if !behind {
            return None;
        }
        Some(Meta {
            // NSQ can leave a negative depth behind after corruption; the
            // true figure is recounted later, zero is the safe start.
            depth: depth.max(0) as u64,
            read_file_num,
            read_pos,
            write_file_num,
            write_pos,
        })
    }
}

/// File names of one queue inside the data directory.
#[derive(Debug, Clone)]
pub struct Names {
    pub dir: PathBuf,
    pub name: String,
}

impl Names {
    pub fn meta(&self) -> PathBuf {
        self.dir.join(format!("{}.diskqueue.meta.dat", self.name))
    }

    /// `<name>.diskqueue.000042.dat`: six digits at least, more past 999999.
    pub fn segment(&self, num: u64) -> PathBuf {
        self.dir
            .join(format!("{}.diskqueue.{:06}.dat", self.name, num))
    }

    /// The sync record (see `synced.rs`), beside the deferred store.
    pub fn synced(&self) -> PathBuf {
        self.dir.join(format!("{}.nsqrs-synced.dat", self.name))
    }

    /// The size of segment `num` (0 if it cannot be read).
    pub fn segment_len(&self, storage: &impl Storage, num: u64) -> u64 {
        storage.len(&self.segment(num)).unwrap_or(0)
    }

    /// The segment number of `file_name` if it is one of this queue's
    /// segments (not `.bad`, not a temporary file).
    pub fn segment_number(&self, file_name: &str) -> Option<u64> {
        let rest = file_name.strip_prefix(&self.name)?;
        let digits = rest.strip_prefix(".diskqueue.")?.strip_suffix(".dat")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|&n| n <= i64::MAX as u64)
    }

    /// Every segment number present on disk, ascending.
    pub fn list_segments(&self, storage: &impl Storage) -> std::io::Result<Vec<u64>> {
        let mut nums: Vec<u64> = storage
            .list(&self.dir)?
            .iter()
            .filter_map(|name| self.segment_number(name.to_str()?))
            .collect();
        nums.sort_unstable();
        Ok(nums)
    }
}

/// A temporary name beside `path` (`<path>.<random>.tmp`, as NSQ names its
/// own), for writes that finish with an atomic rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", fastrand::u64(..)));
    PathBuf::from(name)
}

/// Write `contents` to `path` atomically: temp file, fsync, rename.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Move a damaged file out of the way (`<file>.bad`), keeping its bytes for
/// a human to look at; a second `.bad` of the same name gets a suffix.
pub fn set_aside(storage: &impl Storage, path: &Path) -> std::io::Result<PathBuf> {
    let mut target = PathBuf::from(format!("{}.bad", path.display()));
    let mut n = 1;
    while storage.exists(&target) {
        target = PathBuf::from(format!("{}.bad.{n}", path.display()));
        n += 1;
    }
    storage.rename(path, &target)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_in_nsq_text() {
        let m = Meta {
            depth: 42,
            read_file_num: 0,
            read_pos: 1380,
            write_file_num: 1,
            write_pos: 512,
        };
        assert_eq!(m.to_text(), "42\n0,1380\n1,512\n");
        assert_eq!(Meta::parse(m.to_text().as_bytes()), Some(m));
    }

    #[test]
    fn garbage_meta_is_rejected() {
        for bad in [
            &b""[..],
            b"x\n0,0\n0,0\n",
            b"1\n0,0\n",
            b"1\n0,5\n0,4\n",
            b"1\n0,0\n0,4\nextra\n",
            b"\xff\xfe",
        ] {
            assert_eq!(Meta::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Meta::parse(b"-3\n0,0\n0,0\n").unwrap().depth, 0);
        // Past int64, as go-diskqueue's numbers cannot be (and a later
        // `+ 1` would overflow).
        assert_eq!(Meta::parse(b"0\n0,0\n9223372036854775808,0\n"), None);
        assert!(Meta::parse(b"0\n0,0\n9223372036854775807,0\n").is_some());
    }

    #[test]
    fn segment_names() {
        let n = Names {
            dir: PathBuf::from("/d"),
            name: "t:c".into(),
        };
        assert_eq!(n.segment(7), PathBuf::from("/d/t:c.diskqueue.000007.dat"));
        assert_eq!(
            n.segment(1234567),
            PathBuf::from("/d/t:c.diskqueue.1234567.dat")
        );
        assert_eq!(n.segment_number("t:c.diskqueue.000007.dat"), Some(7));
        assert_eq!(n.segment_number("t:c.diskqueue.000007.dat.bad"), None);
        assert_eq!(n.segment_number("t:c.diskqueue.meta.dat"), None);
        assert_eq!(n.segment_number("t:cc.diskqueue.000007.dat"), None);
        assert_eq!(
            n.segment_number("t:c.diskqueue.18446744073709551615.dat"),
            None
        );
    }
}
