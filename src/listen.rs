//! Binding the daemons' listeners as NSQ's are bound: `SO_REUSEADDR`, and an
//! accept backlog of the system's maximum (`net.core.somaxconn`) rather than
//! a fixed 128, so that a storm of clients connecting at once is queued by
//! the kernel instead of dropped (each dropped SYN costs its client a 1 s
//! retransmit).

use std::io;
use tokio::net::{TcpListener, TcpSocket};

/// Go caps the backlog it reads from the system at 65535.
const MAX_BACKLOG: u32 = 65535;
/// What Linux uses by default when the setting cannot be read.
const FALLBACK_BACKLOG: u32 = 4096;

/// The accept backlog to ask for: the system's maximum.
pub fn backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK_BACKLOG)
        .min(MAX_BACKLOG)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
