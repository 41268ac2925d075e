//! Starting and stopping nsqlookupd: bind both listeners (port 0 allowed,
//! bound addresses logged), serve until SIGINT/SIGTERM, close cleanly.

use super::options::Options;
use super::registration_db::RegistrationDb;
use super::{http, tcp};
use crate::listen::{Listener, LocalAddr};
use crate::protocol::NSQ_VERSION;
use parking_lot::RwLock;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// nsqlookupd's state: its options, the registrations, its addresses.
pub struct Lookupd {
    pub opts: Options,
    pub db: RwLock<RegistrationDb>,
    pub tcp_addr: LocalAddr,
    pub http_addr: LocalAddr,
    pub shutdown: CancellationToken,
}

impl Lookupd {
    /// The JSON answer to IDENTIFY (keys sorted, as Go's map encoding).
    pub fn identify_response(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Response {
            broadcast_address: String,
            hostname: String,
            http_port: i64,
            tcp_port: i64,
            version: &'static str,
        }
        serde_json::to_vec(&Response {
            broadcast_address: self.opts.effective_broadcast_address(),
            hostname: crate::sys::hostname(),
            // -1 for a unix socket (beyond NSQ, whose nsqlookupd has none),
            // as nsqd's `/info` shows one.
            http_port: self.http_addr.info_port(),
            tcp_port: self.tcp_addr.info_port(),
            version: NSQ_VERSION,
        })
        .expect("plain struct serializes")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("failed to listen on {addr} ({what}): {source} (is another nsqlookupd running, or is the address wrong?)")]
pub struct StartError {
    what: &'static str,
    addr: String,
    source: std::io::Error,
}

/// A running nsqlookupd.
pub struct Running {
    pub lookupd: Arc<Lookupd>,
    tracker: TaskTracker,
}

/// Bind `addr`: `host:port` or a unix socket path (beyond NSQ, whose
/// nsqlookupd listens on TCP only).
async fn bind(what: &'static str, addr: &str) -> Result<Listener, StartError> {
    crate::listen::bind(addr)
        .await
        .map_err(|source| StartError {
            what,
            addr: addr.to_string(),
            source,
        })
}

pub async fn start(opts: Options) -> Result<Running, StartError> {
    let tcp_listener = bind("TCP", &opts.tcp_address).await?;
    let http_listener = bind("HTTP", &opts.http_address).await?;
    let lookupd = Arc::new(Lookupd {
        tcp_addr: tcp_listener.local_addr(),
        http_addr: http_listener.local_addr(),
        opts,
        db: RwLock::new(RegistrationDb::new()),
        shutdown: CancellationToken::new(),
    });
    tracing::info!(
        "nsqlookupd v{NSQ_VERSION} (nsq-rs {})",
        env!("CARGO_PKG_VERSION")
    );
    let tracker = TaskTracker::new();
    tracing::info!("TCP: listening on {}", lookupd.tcp_addr);
    tracker.spawn(tcp::serve(lookupd.clone(), tcp_listener, tracker.clone()));
    tracing::info!("HTTP: listening on {}", lookupd.http_addr);
    tracker.spawn(crate::http_server::serve(
        "HTTP",
        http_listener,
        None,
        http::router(lookupd.clone()),
        crate::http_server::Limits::default(),
        lookupd.shutdown.clone(),
    ));
    Ok(Running { lookupd, tracker })
}

impl Running {
    /// Stop accepting, close every connection, wait (bounded) for the tasks.
    pub async fn shutdown(self) {
        self.lookupd.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 5s");
        }
    }
}

/// Run until SIGINT or SIGTERM.
pub async fn run(opts: Options) -> Result<(), StartError> {
    let mut signals = crate::signals::Signals::install();
    let running = start(opts).await?;
    signals.recv().await;
    running.shutdown().await;
    Ok(())
}
