//! Starting and stopping nsqadmin: bind the listener (port 0 allowed, the
//! bound address logged), start the sampler and the notifier, serve until
//! SIGINT/SIGTERM, close cleanly.

use super::cluster::{ClientOptions, Cluster, Sources};
use super::history::{History, Sampler, Summary};
use super::http::{self, Admin};
use super::options::Options;
use crate::protocol::NSQ_VERSION;
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "listen ({addr}) failed - {source} (is another nsqadmin running, or is the address wrong?)"
    )]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// A running nsqadmin.
pub struct Running {
    pub admin: Arc<Admin>,
    pub http_addr: SocketAddr,
    tracker: TaskTracker,
}

/// Start serving with these options; `set_log_level` applies a level
/// changed through `/config/log_level`.
pub async fn start(
    opts: Options,
    set_log_level: Box<dyn Fn(crate::cli::LogLevel) + Send + Sync>,
) -> Result<Running, StartError> {
    let tls_asked = opts.http_client_tls_insecure_skip_verify
        || !opts.http_client_tls_root_ca_file.is_empty()
        || !opts.http_client_tls_cert.is_empty();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let cluster = Cluster::new(&ClientOptions {
        connect_timeout: opts.http_client_connect_timeout,
        request_timeout: opts.http_client_request_timeout,
        tls: crate::client::tls::TlsOptions {
            root_ca_file: non_empty(&opts.http_client_tls_root_ca_file),
            cert_file: non_empty(&opts.http_client_tls_cert),
            key_file: non_empty(&opts.http_client_tls_key),
            insecure_skip_verify: opts.http_client_tls_insecure_skip_verify,
        },
        tls_asked,
    })
    .map_err(StartError::Setup)?;
    let listener = TcpListener::bind(&opts.http_address)
        .await
        .map_err(|source| StartError::Listen {
            addr: opts.http_address.clone(),
            source,
        })?;
    let http_addr = listener.local_addr().expect("bound socket has an address");
    tracing::info!(
        "nsqadmin v{NSQ_VERSION} (nsq-rs {})",
        env!("CARGO_PKG_VERSION")
    );
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let notifier = super::notify::start(
        &opts.notification_http_endpoint,
        cluster.clone(),
        &tracker,
        shutdown.clone(),
    );
    let (summary_tx, summary_rx) = tokio::sync::watch::channel(Arc::new(Summary {
        interval_ms: opts.sample_interval.as_millis() as u64,
        ..Summary::default()
    }));
    let interval = opts.sample_interval;
    let capacity = opts.history_samples();
    let admin = Arc::new(Admin {
        opts: RwLock::new(Arc::new(opts)),
        cluster: cluster.clone(),
        notifier,
        summary: summary_rx,
        set_log_level,
        shutdown: shutdown.clone(),
        hostname: crate::sys::hostname(),
    });
    if !interval.is_zero() {
        let sampler = Sampler {
            cluster,
            interval,
            history: History::new(capacity),
            names: Default::default(),
        };
        let for_sources = admin.clone();
        let sources: Arc<dyn Fn() -> Sources + Send + Sync> =
            Arc::new(move || for_sources.sources());
        tracker.spawn(super::history::run(
            sampler,
            sources,
            summary_tx,
            shutdown.clone(),
        ));
    }
    tracing::info!("HTTP: listening on {http_addr}");
    let app = http::router(admin.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let token = shutdown.clone();
    tracker.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!("HTTP server failed: {e}");
        }
    });
    Ok(Running {
        admin,
        http_addr,
        tracker,
    })
}

impl Running {
    /// Stop accepting, end live-update streams, wait (bounded) for the tasks.
    pub async fn shutdown(self) {
        self.admin.shutdown.cancel();
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
pub async fn run(
    opts: Options,
    set_log_level: Box<dyn Fn(crate::cli::LogLevel) + Send + Sync>,
) -> Result<(), StartError> {
    let mut signals = crate::signals::Signals::install();
    let running = start(opts, set_log_level).await?;
    signals.recv().await;
    running.shutdown().await;
    Ok(())
}
