//! The daemons' listeners, and the tools' connections, on TCP or on a unix
//! socket.
//!
//! An address is TCP when Go's `net.SplitHostPort` accepts it
//! (`host:port`, `:port`, `[::1]:port`) and a unix socket path otherwise
//! (`/run/nsqd.sock`), as NSQ's nsqd decides for `--tcp-address` and
//! `--http-address`.
//!
//! TCP listeners are bound as NSQ's are: `SO_REUSEADDR`, and an accept
//! backlog of the system's maximum (`net.core.somaxconn`) rather than a
//! fixed 128, so that a storm of clients connecting at once is queued by
//! the kernel instead of dropped (each dropped SYN costs its client a 1 s
//! retransmit). Unix listeners get the system's maximum backlog too. A
//! socket file left behind by a process that died is replaced, but only if
//! nothing answers on it; the file is removed when its listener closes.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};

/// Go caps the backlog it reads from the system at 65535.
const MAX_BACKLOG: u32 = 65535;
/// What Linux uses by default when the setting cannot be read.
const FALLBACK_BACKLOG: u32 = 4096;
/// How long a process listening on an existing socket file has to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The accept backlog to ask for: the system's maximum.
pub fn backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK_BACKLOG)
        .min(MAX_BACKLOG)
}

/// Go's `net.SplitHostPort`: `host:port`, `[host]:port` (brackets
/// removed), or `None` where Go reports an error.
pub fn split_host_port(addr: &str) -> Option<(&str, &str)> {
    let colon = addr.rfind(':')?;
    let (host, open, close) = if addr.starts_with('[') {
        let end = addr.find(']')?;
        if end + 1 != colon {
            return None;
        }
        (&addr[1..end], 1, end + 1)
    } else {
        let host = &addr[..colon];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if addr[open..].contains('[') || addr[close..].contains(']') {
        return None;
    }
    Some((host, &addr[colon + 1..]))
}

/// Where an address points: a TCP `host:port` or a unix socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Tcp(&'a str),
    Unix(&'a Path),
}

/// NSQ's rule: TCP if Go can split it into host and port, else a path.
pub fn endpoint(addr: &str) -> Endpoint<'_> {
    match split_host_port(addr) {
        Some(_) => Endpoint::Tcp(addr),
        None => Endpoint::Unix(Path::new(addr)),
    }
}

/// The address a listener is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl LocalAddr {
    /// The TCP port; `None` for a unix socket.
    pub fn port(&self) -> Option<u16> {
        match self {
            LocalAddr::Tcp(a) => Some(a.port()),
            LocalAddr::Unix(_) => None,
        }
    }

    /// The port as NSQ's `/info` shows it: -1 for a unix socket.
    pub fn info_port(&self) -> i64 {
        self.port().map_or(-1, i64::from)
    }
}

impl fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalAddr::Tcp(a) => a.fmt(f),
            LocalAddr::Unix(p) => p.display().fmt(f),
        }
    }
}

/// Who is connected. A unix socket peer has no address of its own: it
/// shows as `@`, as Go's servers show it, and carries a number that tells
/// connections apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    Tcp(SocketAddr),
    Unix(u64),
}

impl PeerAddr {
    /// The peer's IP; `None` on a unix socket.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            PeerAddr::Tcp(a) => Some(a.ip()),
            PeerAddr::Unix(_) => None,
        }
    }

    /// A key unique among the connections open now.
    pub fn key(&self) -> String {
        match self {
            PeerAddr::Tcp(a) => a.to_string(),
            PeerAddr::Unix(n) => format!("@{n}"),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(a) => a.fmt(f),
            PeerAddr::Unix(_) => f.write_str("@"),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        PeerAddr::Tcp(a)
    }
}

/// Numbers for unix socket peers.
static UNIX_PEERS: AtomicU64 = AtomicU64::new(1);

/// A socket file this process created: removed when dropped, unless
/// another file has taken its place since.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let same = std::fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.id)
            .unwrap_or(false);
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A bound listener, TCP or unix (whose socket file is removed when the
/// listener is dropped).
#[derive(Debug)]
pub struct Listener(Bound);

#[derive(Debug)]
enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, SocketFile),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener(Bound::Tcp(l))
    }
}

impl Listener {
    pub fn local_addr(&self) -> LocalAddr {
        match &self.0 {
            Bound::Tcp(l) => LocalAddr::Tcp(l.local_addr().expect("bound socket has an address")),
            Bound::Unix(_, file) => LocalAddr::Unix(file.path.clone()),
        }
    }

    /// The next connection (with `TCP_NODELAY` on TCP).
    pub async fn accept(&self) -> io::Result<(Stream, PeerAddr)> {
        match &self.0 {
            Bound::Tcp(l) => {
                let (s, a) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), PeerAddr::Tcp(a)))
            }
            Bound::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                let n = UNIX_PEERS.fetch_add(1, Ordering::Relaxed);
                Ok((Stream::Unix(s), PeerAddr::Unix(n)))
            }
        }
    }
}

/// Listen on `addr`: a TCP `host:port` or a unix socket path (see
/// [`endpoint`]).
pub async fn bind(addr: &str) -> io::Result<Listener> {
    match endpoint(addr) {
        Endpoint::Tcp(a) => Ok(bind_tcp(a).await?.into()),
        Endpoint::Unix(path) => bind_unix(path).await,
    }
}

/// Listen on a unix socket at `path`, replacing a socket file nothing
/// answers on (a crashed process's); a file that is not a socket, or a
/// socket a live process answers on, is left alone and is an error.
pub async fn bind_unix(path: &Path) -> io::Result<Listener> {
    if path.as_os_str().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty unix socket path",
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            let probe = tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await;
            match probe {
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!("removing stale unix socket {}", path.display());
                    std::fs::remove_file(path)?;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {}
                Ok(Err(e)) => return Err(e),
                Ok(Ok(_)) | Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another process is listening on this unix socket",
                    ))
                }
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a unix socket",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        id: (meta.dev(), meta.ino()),
    };
    Ok(Listener(Bound::Unix(listener, file)))
}

/// Listen on `addr` (`host:port`; `:port` for every interface, as Go
/// accepts), trying each address the host resolves to.
pub async fn bind_tcp(addr: &str) -> io::Result<TcpListener> {
    let addr = match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_string(),
    };
    let mut last = None;
    for sa in tokio::net::lookup_host(&addr).await? {
        let socket = if sa.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(sa) {
            Ok(()) => return socket.listen(backlog()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    }))
}

/// Connect to `addr`: a TCP `host:port` (with `TCP_NODELAY`) or a unix
/// socket path.
pub async fn connect(addr: &str) -> io::Result<Stream> {
    match endpoint(addr) {
        Endpoint::Tcp(a) => {
            let s = TcpStream::connect(a).await?;
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
        Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
    }
}

/// A connection over TCP or a unix socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn backlog_is_the_system_maximum() {
        let system = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .map(|s| s.trim().parse::<u32>().unwrap())
            .unwrap_or(FALLBACK_BACKLOG);
        assert_eq!(backlog(), system.min(MAX_BACKLOG));
        assert!(backlog() > 128);
    }

    #[tokio::test]
    async fn binds_port_zero_and_go_style_any() {
        let l = bind_tcp("127.0.0.1:0").await.unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
        let any = bind_tcp(":0").await.unwrap();
        assert!(any.local_addr().unwrap().ip().is_unspecified());
        assert!(bind_tcp("256.0.0.1:1").await.is_err());
    }

    #[test]
    fn go_split_host_port() {
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", "80")));
        assert_eq!(split_host_port("test:80"), Some(("test", "80")));
        assert_eq!(split_host_port(":4150"), Some(("", "4150")));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", "80")));
        assert_eq!(split_host_port("[::1%lo0]:80"), Some(("::1%lo0", "80")));
        assert_eq!(split_host_port("host:"), Some(("host", "")));
        // Go's errors.
        for bad in [
            "",
            "/var/run/nsqd.sock",
            "localhost",
            "::1:80",
            "[::1]",
            "[::1]x:80",
            "[::1]:80]",
            "a[b:80",
            "a]b:80",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
        // A path with a colon splits, as in Go (and then fails to resolve).
        assert_eq!(split_host_port("/tmp/a:b"), Some(("/tmp/a", "b")));
    }

    #[test]
    fn tcp_or_unix_as_nsq_decides() {
        assert_eq!(endpoint("0.0.0.0:4150"), Endpoint::Tcp("0.0.0.0:4150"));
        assert_eq!(endpoint(":4150"), Endpoint::Tcp(":4150"));
        assert_eq!(
            endpoint("/var/run/nsqd.sock"),
            Endpoint::Unix(Path::new("/var/run/nsqd.sock"))
        );
        assert_eq!(
            endpoint("nsqd.sock"),
            Endpoint::Unix(Path::new("nsqd.sock"))
        );
    }

    #[tokio::test]
    async fn unix_sockets_serve_replace_stale_files_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let addr = path.to_str().unwrap();

        let listener = bind(addr).await.unwrap();
        assert_eq!(listener.local_addr(), LocalAddr::Unix(path.clone()));
        assert_eq!(listener.local_addr().info_port(), -1);
        // A live listener is not replaced.
        let err = bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");

        let server = tokio::spawn(async move {
            loop {
                let (mut s, peer) = listener.accept().await.unwrap();
                assert_eq!(peer.to_string(), "@");
                assert_eq!(peer.ip(), None);
                let mut buf = [0u8; 4];
                // (The first connection is the probe, closed at once.)
                if s.read_exact(&mut buf).await.is_ok() {
                    s.write_all(&buf).await.unwrap();
                    return listener;
                }
            }
        });
        let mut client = connect(addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        client.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        let listener = server.await.unwrap();
        drop(listener);
        assert!(!path.exists(), "removed when the listener closes");

        // A socket file nobody listens on (a crashed process's) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let listener = bind(addr).await.unwrap();
        drop(listener);
        assert!(!path.exists());

        // Any other file is left alone.
        std::fs::write(&path, b"data").unwrap();
        let err = bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }

    #[tokio::test]
    async fn a_replaced_socket_file_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let first = bind(path.to_str().unwrap()).await.unwrap();
        // Someone removes the file and binds their own in its place.
        std::fs::remove_file(&path).unwrap();
        let _theirs = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(first);
        assert!(path.exists());
    }
}
