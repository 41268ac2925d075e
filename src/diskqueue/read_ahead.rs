//! Reading the next bytes of a segment without the owner's lock.
//!
//! Consumers read records from the queue under their channel's lock, and
//! refilling the read buffer (a `pread` of 64 kB out of the page cache) was
//! a fifth of the time that lock was held while a backlog was delivered:
//! the other consumer waited for it. So the owner asks, under its lock,
//! whether the buffer runs low ([`DiskQueue::plan_read_ahead`]), does the
//! read after letting go ([`ReadAhead::run`]), and hands the bytes back
//! under the lock again ([`DiskQueue::finish_read_ahead`]). If reading
//! overtook the read-ahead meanwhile, its bytes no longer join the buffer
//! and are dropped: the queue reads exactly as it would have without it.

use super::{DiskQueue, Storage, StorageFile};
use bytes::{Buf, BytesMut};
use std::sync::Arc;

/// Read ahead once fewer bytes than this are buffered: more than one
/// consumer's take of small messages (512 of 200 bytes), so that a take
/// does not run out of bytes and read under the lock.
const LOW_WATER: usize = 192 * 1024;

/// Most bytes read ahead at once.
const AHEAD_CHUNK: usize = 256 * 1024;

/// Room left before the bytes read ahead, where the unread end of the
/// current buffer (part of one record) is copied when the two are joined,
/// so that the 64 kB are not copied again under the lock. A longer end is
/// joined by copying (records that large cost more to deliver anyway).
const HEADROOM: usize = 4 * 1024;

/// Bytes read ahead, waiting in the reader until its buffer runs out.
pub(super) struct Chunk {
    /// Where in the segment the bytes start.
    at: u64,
    /// `HEADROOM` bytes of room, then the bytes read.
    buf: BytesMut,
}

/// A read planned under the owner's lock, run without it.
pub struct ReadAhead<F> {
    file: Arc<F>,
    at: u64,
    len: usize,
    chunk: Option<Chunk>,
}

impl<F: StorageFile> ReadAhead<F> {
    /// Read the planned bytes (fewer at the end of the file). An error is
    /// not reported here: the queue meets it again when it reads itself.
    pub fn run(&mut self) {
        let mut buf = BytesMut::zeroed(HEADROOM + self.len);
        let mut got = 0;
        while got < self.len {
            match self
                .file
                .read_at(&mut buf[HEADROOM + got..], self.at + got as u64)
            {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if got > 0 {
            buf.truncate(HEADROOM + got);
            self.chunk = Some(Chunk { at: self.at, buf });
        }
    }
}

impl Chunk {
    /// `buf` (the unread bytes before this chunk) followed by the chunk's.
    pub(super) fn join(mut self, buf: BytesMut) -> BytesMut {
        let rest = buf.len();
        if rest <= HEADROOM {
            self.buf[HEADROOM - rest..HEADROOM].copy_from_slice(&buf);
            self.buf.advance(HEADROOM - rest);
            self.buf
        } else {
            let mut buf = buf;
            buf.extend_from_slice(&self.buf[HEADROOM..]);
            buf
        }
    }

    /// Where the chunk's bytes start in the segment.
    pub(super) fn at(&self) -> u64 {
        self.at
    }
}

impl<S: Storage> DiskQueue<S> {
    /// A read of the bytes after the buffered ones, if the buffer runs low
    /// and none is under way or waiting. Run it without the lock, then
    /// hand it to [`finish_read_ahead`](Self::finish_read_ahead).
    pub fn plan_read_ahead(&mut self) -> Option<ReadAhead<S::File>> {
        let writing = self.read_file_num == self.write_file_num;
        let r = self.reader.as_mut()?;
        if r.ahead_pending || r.next.is_some() || r.buf.len() >= LOW_WATER {
            return None;
        }
        let limit = match r.finished_len {
            Some(len) => len,
            None if writing => self.write_pos,
            // Finished since it was opened: reading itself finds its size.
            None => return None,
        };
        let at = self.read_pos + r.buf.len() as u64;
        if at >= limit {
            return None;
        }
        r.ahead_pending = true;
        Some(ReadAhead {
            file: r.file.clone(),
            at,
            len: ((limit - at) as usize).min(AHEAD_CHUNK),
            chunk: None,
        })
    }

    /// Keep what `ahead` read, if it still follows the buffered bytes of
    /// the same open segment.
    pub fn finish_read_ahead(&mut self, ahead: ReadAhead<S::File>) {
        let Some(r) = self.reader.as_mut() else {
            return;
        };
        if !Arc::ptr_eq(&r.file, &ahead.file) {
            // Planned for a segment since finished or set aside.
            return;
        }
        r.ahead_pending = false;
        if let Some(chunk) = ahead.chunk {
            if chunk.at == self.read_pos + r.buf.len() as u64 {
                r.next = Some(chunk);
            }
        }
    }
}
