//! The connection's read buffer and how big it is allowed to be.
//!
//! Most connections are consumers whose commands (RDY, FIN, NOP) are a few
//! dozen bytes; ten thousand of them should not each hold a 64 kB buffer
//! (that was most of a subscribed connection's memory). Publishers, on
//! the other hand, want large chunks: message bodies are slices of this
//! buffer, so a chunk lives as long as its messages are queued, and a
//! command straddling a chunk's end costs a copy. So the buffer starts
//! small, jumps to large chunks once a read carries more than small
//! commands, is dropped between commands while the traffic is small, and
//! shrinks back when the connection goes quiet.

use bytes::BytesMut;

/// Largest growth step (a publisher streaming at full speed).
pub(super) const LARGE_CHUNK: usize = 64 * 1024;
/// First growth step; also what a read must exceed to count as large.
pub(super) const SMALL_CHUNK: usize = 1024;

pub(super) struct ReadBuffer {
    pub(super) bytes: BytesMut,
    /// Next growth step: [`SMALL_CHUNK`] or [`LARGE_CHUNK`].
    chunk: usize,
}

impl ReadBuffer {
    pub(super) fn new() -> ReadBuffer {
        ReadBuffer {
            bytes: BytesMut::new(),
            chunk: SMALL_CHUNK,
        }
    }

    /// Make room for the next read; returns how much there is.
    pub(super) fn prepare(&mut self) -> usize {
        if self.room() < self.chunk.min(4096) {
            self.bytes.reserve(self.chunk);
        }
        self.room()
    }

    fn room(&self) -> usize {
        self.bytes.capacity() - self.bytes.len()
    }

    /// A read of `n` bytes into `room` (from [`prepare`](Self::prepare)).
    pub(super) fn note_read(&mut self, n: usize, room: usize) {
        if n > 0 && (n == room || n > SMALL_CHUNK / 2) {
            self.chunk = LARGE_CHUNK;
        }
    }

    /// Every complete command was taken out: with small traffic, hold
    /// nothing until the next read (an allocation per read is cheap next
    /// to the system call).
    pub(super) fn after_commands(&mut self) {
        if self.bytes.is_empty() && self.chunk == SMALL_CHUNK {
            self.bytes = BytesMut::new();
        }
    }

    /// The connection went quiet: back to small chunks.
    pub(super) fn shrink(&mut self) {
        if self.bytes.is_empty() {
            self.bytes = BytesMut::new();
            self.chunk = SMALL_CHUNK;
        }
    }

    /// Bytes held, including spare room (for tests and accounting).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn read(b: &mut ReadBuffer, data: &[u8]) {
        let room = b.prepare();
        let n = data.len().min(room);
        b.bytes.put_slice(&data[..n]);
        b.note_read(n, room);
    }

    #[test]
    fn small_commands_hold_no_buffer_between_reads() {
        let mut b = ReadBuffer::new();
        for _ in 0..100 {
            read(&mut b, b"RDY 100\nFIN 0123456789abcdef\n");
            assert!(b.capacity() <= 2 * SMALL_CHUNK);
            let _ = b.bytes.split(); // the decoder takes the commands
            b.after_commands();
            assert_eq!(b.capacity(), 0);
        }
    }

    #[test]
    fn a_publisher_gets_large_chunks_until_it_goes_quiet() {
        let mut b = ReadBuffer::new();
        read(&mut b, &[b'x'; 700]);
        let _ = b.bytes.split();
        b.after_commands();
        assert!(
            b.prepare() >= LARGE_CHUNK,
            "one read of 700 bytes is a publisher"
        );
        // A filled small buffer counts too.
        let mut b = ReadBuffer::new();
        read(&mut b, &[b'x'; 3 * SMALL_CHUNK]);
        assert!(b.prepare() >= LARGE_CHUNK);
        // Half a command stays put across shrinking.
        b.shrink();
        assert!(b.capacity() > 0);
        let _ = b.bytes.split();
        b.shrink();
        assert_eq!(b.capacity(), 0);
        assert!(b.prepare() < LARGE_CHUNK);
    }
}
