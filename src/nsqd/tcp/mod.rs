//! Protocol V2 over TCP: one task per connection.
//!
//! Each connection is a single event loop that owns all of its state (no
//! locks for per-connection data): it decodes and executes every complete
//! command in the read buffer, pulls as many messages as its RDY allows from
//! its channel, then waits on whichever comes first: socket readable, socket
//! writable (when there is something to flush), new messages, a freed
//! in-flight slot, a heartbeat, or shutdown. Reads continue while a write is
//! pending, so a slow reader never blocks its own FINs.
//!
//! Flushing: responses and errors are flushed at once; message frames are
//! buffered and flushed when the buffer reaches `output_buffer_size`, when
//! the client stops being ready, or as soon as the channel has nothing more
//! to send. The last rule means data never waits for a timer, which bounds
//! latency well inside NSQ's `output_buffer_timeout` while still batching
//! under load. Messages are encoded into the buffer about 256 kB at a time
//! (`channel::OUTPUT_BATCH_BYTES`), so that a consumer at a high RDY does
//! not get a second, encoded copy of every large message it has in flight.
//!
//! Files: this one accepts connections; [`connection`] is the event loop
//! (framing, buffering, delivery, held responses); [`negotiate`] is
//! IDENTIFY's negotiation as a pure function; `cmd/` has one file per
//! command, each translating between the wire and the engine's operations;
//! `read_buffer` sizes the reads and `when_woken` keeps the loop's rare
//! waits (killed, shutting down) off its every turn.

mod cmd;
mod connection;
pub mod negotiate;
mod read_buffer;
mod when_woken;

use super::Nsqd;
use crate::listen::{Listener, PeerAddr};
use crate::protocol::frame::encode_frame;
use crate::protocol::{FrameType, MAGIC_V2};
use bytes::BytesMut;
use connection::Connection;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::task::TaskTracker;

/// Any byte stream a connection can run over: TCP or a unix socket, TLS or
/// a compressed stream after an in-place upgrade.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}
pub type BoxStream = Box<dyn Stream>;

/// nsqd's fixed client timeout; the default heartbeat is half of it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Accept clients (on TCP or a unix socket) until shutdown.
pub async fn serve(nsqd: Arc<Nsqd>, listener: Listener, tracker: TaskTracker) {
    loop {
        tokio::select! {
            _ = nsqd.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    tracker.spawn(handle_connection(nsqd.clone(), stream, addr));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off briefly.
                    tracing::error!("TCP: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn handle_connection(nsqd: Arc<Nsqd>, mut stream: crate::listen::Stream, addr: PeerAddr) {
    tracing::debug!("TCP: new client({addr})");
    let mut magic = [0u8; 4];
    tokio::select! {
        read = tokio::time::timeout(CLIENT_TIMEOUT, stream.read_exact(&mut magic)) => {
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
        }
        _ = nsqd.shutdown.cancelled() => return,
    }
    if &magic != MAGIC_V2 {
        tracing::error!(
            "client({addr}) bad protocol magic {:?}",
            String::from_utf8_lossy(&magic)
        );
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, FrameType::Error, b"E_BAD_PROTOCOL");
        let _ = stream.write_all(&buf).await;
        return;
    }
    let client = nsqd.register_client(addr);
    let mut conn = Connection::new(nsqd.clone(), client.clone(), Box::new(stream));
    if let Err(e) = conn.run().await {
        tracing::debug!("client({addr}): {e}");
    }
    conn.cleanup();
    nsqd.unregister_client(client.id);
    tracing::debug!("PROTOCOL(V2): client({addr}) exiting");
}
