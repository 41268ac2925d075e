//! Starting and stopping nsqd: bind the listeners, run until SIGINT or
//! SIGTERM, then shut down cleanly.

use super::engine::BoundAddrs;
use super::{http, tcp, Nsqd, Options};
use crate::listen::Listener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// A startup failure, printed as one line by the binary.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("failed to listen on {addr} ({what}): {source} (is another nsqd running, or is the address wrong?)")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Open(#[from] super::engine::OpenError),
}

/// A running nsqd: its engine and the task that serves it.
pub struct Running {
    pub nsqd: Arc<Nsqd>,
    pub addrs: BoundAddrs,
    tracker: TaskTracker,
}

/// Bind `addr`: `host:port`, or a unix socket path where TCP and HTTP
/// take one (as NSQ's nsqd); HTTPS is TCP only, as NSQ's.
async fn bind(what: &'static str, addr: &str, unix: bool) -> Result<Listener, StartError> {
    let bound = if unix {
        crate::listen::bind(addr).await
    } else {
        crate::listen::bind_tcp(addr).await.map(Listener::from)
    };
    bound.map_err(|source| StartError::Bind {
        what,
        addr: addr.to_string(),
        source,
    })
}

/// Bind and start serving; returns once the listeners are up.
pub async fn start(opts: Options) -> Result<Running, StartError> {
    // The data path first: a second nsqd on it must fail before binding.
    let nsqd = Nsqd::open(opts)?;
    let opts = nsqd.opts.clone();
    let tcp_listener = bind("TCP", &opts.tcp_address, true).await?;
    let http_listener = if opts.http_address.is_empty() {
        None
    } else {
        Some(bind("HTTP", &opts.http_address, true).await?)
    };
    // HTTPS only with a certificate, as NSQ.
    let https_listener = match (&nsqd.tls, opts.https_address.is_empty()) {
        (Some(_), false) => Some(bind("HTTPS", &opts.https_address, false).await?),
        _ => None,
    };
    let addrs = BoundAddrs {
        tcp: tcp_listener.local_addr(),
        http: http_listener.as_ref().map(Listener::local_addr),
        https: https_listener.as_ref().map(Listener::local_addr),
    };
    let _ = nsqd.addrs.set(addrs.clone());
    tracing::info!(
        "nsqd v{} (nsq-rs {}) node id {}",
        crate::protocol::NSQ_VERSION,
        env!("CARGO_PKG_VERSION"),
        nsqd.settings.node_id
    );

    // One cache of the auth server's answers for both HTTP listeners.
    let http_auth = Arc::new(super::auth::HttpAuth::default());
    let guard = |listener: &str| opts.auth_required_on(listener).then(|| http_auth.clone());
    let tracker = TaskTracker::new();
    tracing::info!("TCP: listening on {}", addrs.tcp);
    tracker.spawn(tcp::serve(nsqd.clone(), tcp_listener, tracker.clone()));
    if let Some(listener) = http_listener {
        tracing::info!(
            "HTTP: listening on {}",
            addrs.http.as_ref().expect("set with listener")
        );
        // --tls-required=true: the plain listener only points to HTTPS.
        let app = if opts.tls_required == "true" {
            let port = addrs.https.as_ref().and_then(|a| a.port()).unwrap_or(0);
            axum::Router::new().fallback(move || async move { super::https::tls_required(port) })
        } else {
            http::router(nsqd.clone(), guard("http"), false)
        };
        tracker.spawn(crate::http_server::serve(
            "HTTP",
            listener,
            None,
            app,
            opts.http_limits(),
            nsqd.shutdown.clone(),
        ));
    }
    if let (Some(tcp), Some(config)) = (https_listener, nsqd.tls.clone()) {
        tracing::info!(
            "HTTPS: listening on {}",
            addrs.https.as_ref().expect("set with listener")
        );
        tracker.spawn(crate::http_server::serve(
            "HTTPS",
            tcp,
            Some(tokio_rustls::TlsAcceptor::from(config)),
            http::router(nsqd.clone(), guard("https"), true),
            opts.http_limits(),
            nsqd.shutdown.clone(),
        ));
    }
    tracker.spawn(nsqd.clone().run_timers());
    tracker.spawn(nsqd.clone().run_syncer());
    tracker.spawn(nsqd.clone().run_metadata_writer());
    super::lookup::start(&nsqd, &tracker);
    tracker.spawn(super::statsd::run(nsqd.clone()));
    Ok(Running {
        nsqd,
        addrs,
        tracker,
    })
}

impl Running {
    /// Stop accepting, close every client, wait (bounded) for tasks to end.
    pub async fn shutdown(self) {
        tracing::info!("NSQ: closing");
        self.nsqd.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("NSQ: some connections did not close within 5s");
        }
        // Clients are gone: what they left queued, in flight or deferred
        // goes to disk.
        let nsqd = self.nsqd.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || nsqd.close()).await {
            tracing::error!("NSQ: failed to persist state: {e}");
        }
        tracing::info!("NSQ: bye");
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
