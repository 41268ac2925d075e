//! Serving an HTTP API (nsqd's HTTP and HTTPS, nsqlookupd's HTTP) with the
//! limits NSQ's Go servers have, rather than hyper's defaults.
//!
//! * Heads up to 1 MB (Go's `DefaultMaxHeaderBytes`), with up to
//!   [`MAX_HEADERS`] header lines (hyper would answer 431 past 100), and
//!   request targets of any length within that (see [`long_target`]).
//! * Each connection is its own task from the moment it is accepted, TLS
//!   handshake included, so one slow client never holds up the others.
//! * [`Limits`]: a request's head must arrive within the read timeout of
//!   the server starting to wait for it (a new or idle keep-alive
//!   connection included), and its body within the read timeout of the
//!   head (slow-loris clients are cut off); at most `max_connections` are
//!   served at once, further clients wait in the listen backlog (as Go's
//!   `netutil.LimitListener`). NSQ's Go servers have neither limit.
//! * Shutdown stops accepting, lets requests in progress finish, and
//!   returns once every connection is closed.

pub mod long_target;

use crate::listen::{Listener, PeerAddr};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Header lines accepted per request. Go has no count limit, only the
/// 1 MB head limit; hyper needs a number, and reserves room for that many
/// headers per request, so this is generous rather than unbounded.
pub const MAX_HEADERS: usize = 4096;

/// The most a request's head (request line and headers) may take: Go's
/// 1 MB plus the 4 KB it allows on top.
pub const MAX_HEAD_BYTES: usize = (1 << 20) + 4096;

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one client may hold of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most a request's head may take to arrive (from when the server
    /// starts waiting for it), and then its body.
    pub read_timeout: Duration,
    /// Connections served at once (0: no limit).
    pub max_connections: usize,
}

impl Default for Limits {
    /// nsqd's defaults (`--http-read-timeout`, `--max-http-connections`).
    fn default() -> Self {
        Limits {
            read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// Set on every request of an HTTPS connection: what the client's
/// certificate said (an empty common name without one).
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub common_name: std::sync::Arc<str>,
}

/// Serve `app` on `listener` (TCP or a unix socket) until `shutdown`, over
/// TLS when `tls` is given. `name` labels log lines ("HTTP", "HTTPS").
pub async fn serve(
    name: &'static str,
    listener: Listener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = (limits.max_connections > 0)
        .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections)));
    let mut warned_full = false;
    loop {
        // At the limit, stop accepting until a connection closes.
        let slot = match &slots {
            Some(slots) => {
                if slots.available_permits() == 0 && !warned_full {
                    warned_full = true;
                    tracing::warn!(
                        "{name}: {} connections open (--max-http-connections): \
                         new clients wait until one closes",
                        limits.max_connections
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => Some(slot),
                        Err(_) => break,
                    },
                }
            }
            None => None,
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, say: wait a moment rather than spin.
                tracing::error!("{name}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if slots.as_ref().is_some_and(|s| s.available_permits() > 0) {
            warned_full = false;
        }
        let (app, tls, shutdown) = (app.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            // Held for the connection's life.
            let _slot = slot;
            match tls {
                None => serve_connection(stream, remote, None, app, limits, shutdown).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        done = handshake => match done {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!("{name}: TLS handshake with {remote} failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("{name}: TLS handshake with {remote} timed out");
                                return;
                            }
                        },
                    };
                    let peer = TlsPeer {
                        common_name: crate::x509::peer_common_name(stream.get_ref().1).into(),
                    };
                    serve_connection(stream, remote, Some(peer), app, limits, shutdown).await
                }
            }
        });
    }
    // Closed now (a unix socket's file removed), not after the requests.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serve HTTP/1.1 on one connection until it closes or `shutdown`.
async fn serve_connection<S>(
    stream: S,
    remote: PeerAddr,
    tls: Option<TlsPeer>,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        // The head is in: the body gets the read timeout from now.
        let deadline = tokio::time::Instant::now() + limits.read_timeout;
        let mut req = req.map(|body| axum::body::Body::new(TimedBody::new(body, deadline)));
        if let PeerAddr::Tcp(addr) = remote {
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        if let Some(peer) = &tls {
            req.extensions_mut().insert(peer.clone());
        }
        tower::ServiceExt::oneshot(app.clone(), req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES);
    let io = TokioIo::new(LongTargets::new(stream));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!("HTTP connection from {remote}: {e}");
            }
            return;
        }
        _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    // Finish what is in progress, bounded.
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}

/// A request body that must arrive by a deadline: past it, reading fails
/// (the handler answers as for any body read error) and the connection is
/// closed, since its request was not read to the end.
struct TimedBody {
    inner: hyper::body::Incoming,
    deadline: tokio::time::Instant,
    /// Armed the first time the body is not ready (most bodies are).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    fn new(inner: hyper::body::Incoming, deadline: tokio::time::Instant) -> Self {
        TimedBody {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let me = self.get_mut();
        match Pin::new(&mut me.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = me.deadline;
                let timer = me
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body not received within the read timeout",
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A client stream whose over-long request targets are rewritten on the way
/// in (see [`long_target`]); writes pass straight through.
struct LongTargets<S> {
    inner: S,
    rewriter: long_target::Rewriter,
    /// Rewritten bytes not yet read by hyper.
    ready: Vec<u8>,
    at: usize,
    scratch: Box<[u8]>,
}

impl<S> LongTargets<S> {
    fn new(inner: S) -> Self {
        LongTargets {
            inner,
            rewriter: long_target::Rewriter::default(),
            ready: Vec::new(),
            at: 0,
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LongTargets<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        while me.at == me.ready.len() {
            me.ready.clear();
            me.at = 0;
            let mut raw = ReadBuf::new(&mut me.scratch);
            match Pin::new(&mut me.inner).poll_read(cx, &mut raw) {
                Poll::Ready(Ok(())) => {
                    if raw.filled().is_empty() {
                        return Poll::Ready(Ok(())); // EOF
                    }
                    me.rewriter.feed(raw.filled(), &mut me.ready);
                }
                other => return other,
            }
        }
        let n = (me.ready.len() - me.at).min(buf.remaining());
        buf.put_slice(&me.ready[me.at..me.at + n]);
        me.at += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LongTargets<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
