//! nsqd's side of discovery: one task per `--lookupd-tcp-address` keeps a
//! connection to that nsqlookupd, IDENTIFYs, registers every topic and
//! channel, follows each creation and deletion with REGISTER/UNREGISTER,
//! and PINGs every 15 seconds. A dropped connection (or a lookupd that was
//! not up yet) is retried with backoff, and everything is registered again
//! on each new connection; NSQ retries only on its next ping, so a
//! restarted lookupd waits up to 15 s to learn about it.
//!
//! The set of nsqlookupds can change at run time (`PUT
//! /config/nsqlookupd_tcp_addresses`): a supervisor starts a task for each
//! new address and stops the task of each removed one, which closes its
//! connection at once (so that nsqlookupd drops this nsqd).

use super::Nsqd;
use crate::protocol::lookup::{self, PeerIdentity};
use crate::protocol::NSQ_VERSION;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often each lookupd is pinged (NSQ's fixed interval).
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Connect and per-command deadline, as NSQ's.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnect backoff bounds.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A change lookupds must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupEvent {
    Register {
        topic: String,
        channel: Option<String>,
    },
    Unregister {
        topic: String,
        channel: Option<String>,
    },
}

impl LookupEvent {
    /// The V1 command line for this change.
    fn command(&self) -> String {
        match self {
            LookupEvent::Register { topic, channel } => {
                lookup::registration(true, topic, channel.as_deref())
            }
            LookupEvent::Unregister { topic, channel } => {
                lookup::registration(false, topic, channel.as_deref())
            }
        }
    }
}

/// What a lookupd says about itself in its IDENTIFY response: where its
/// HTTP API is, for channel pre-creation.
#[derive(Debug, Clone, Deserialize)]
pub struct LookupdInfo {
    #[serde(default)]
    pub broadcast_address: String,
    /// -1 when its HTTP API is on a unix socket (ours; NSQ's has none).
    #[serde(default)]
    pub http_port: i64,
}

#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("lookupd answered {0:?}")]
    Refused(String),
    #[error("response of {0} bytes is over --max-body-size")]
    TooBig(i32),
}

/// Start the supervisor of the nsqlookupd connections.
pub fn start(nsqd: &Arc<Nsqd>, tracker: &TaskTracker) {
    tracker.spawn(supervise(nsqd.clone(), tracker.clone()));
}

/// Keep one connection task per nsqlookupd address, following changes to
/// the addresses until shutdown. A repeated address gets one connection.
async fn supervise(nsqd: Arc<Nsqd>, tracker: TaskTracker) {
    let mut addresses = nsqd.watch_lookupd_addresses();
    let mut peers: Vec<(String, CancellationToken)> = Vec::new();
    let mut next_id = 0u64;
    loop {
        let wanted = addresses.borrow_and_update().clone().unwrap_or_default();
        peers.retain(|(addr, stop)| {
            let keep = wanted.contains(addr);
            if !keep {
                tracing::info!("LOOKUP({addr}): removing peer");
                stop.cancel();
            }
            keep
        });
        for addr in wanted {
            if peers.iter().any(|(a, _)| *a == addr) {
                continue;
            }
            tracing::info!("LOOKUP({addr}): adding peer");
            let stop = nsqd.shutdown.child_token();
            next_id += 1;
            let events = nsqd.lookup_events();
            tracker.spawn(peer_loop(
                nsqd.clone(),
                next_id,
                addr.clone(),
                events,
                stop.clone(),
            ));
            peers.push((addr, stop));
        }
        tokio::select! {
            _ = nsqd.shutdown.cancelled() => return,
            changed = addresses.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Keep a connection to the nsqlookupd at `addr` until `stop`.
async fn peer_loop(
    nsqd: Arc<Nsqd>,
    id: u64,
    addr: String,
    mut events: broadcast::Receiver<LookupEvent>,
    stop: CancellationToken,
) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = keep_connected(&nsqd, id, &addr, &mut events) => {}
    }
    // Dropping the connection (with the future above) closed it.
    nsqd.forget_lookupd_info(id);
}

async fn keep_connected(
    nsqd: &Arc<Nsqd>,
    id: u64,
    addr: &str,
    events: &mut broadcast::Receiver<LookupEvent>,
) {
    let mut retry = RETRY_MIN;
    loop {
        match connect(nsqd, id, addr).await {
            Ok(peer) => {
                retry = RETRY_MIN;
                match serve(addr, peer, events).await {
                    Ok(()) => return,
                    Err(e) => tracing::error!("LOOKUPD({addr}): {e}; reconnecting"),
                }
            }
            Err(e) => {
                tracing::error!("LOOKUPD({addr}): cannot connect: {e}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

struct Peer {
    stream: BufReader<crate::listen::Stream>,
    max_response: i32,
}

impl Peer {
    /// Send a command and read its response within the deadline.
    async fn command(&mut self, bytes: &[u8]) -> Result<Vec<u8>, PeerError> {
        let exchange = async {
            self.stream.get_mut().write_all(bytes).await?;
            let size = self.stream.read_i32().await?;
            if size < 0 || size > self.max_response {
                return Err(PeerError::TooBig(size));
            }
            let mut data = vec![0u8; size as usize];
            self.stream.read_exact(&mut data).await?;
            Ok(data)
        };
        tokio::time::timeout(IO_TIMEOUT, exchange)
            .await
            .map_err(|_| PeerError::Timeout)?
    }

    /// A command whose answer must be `OK`.
    async fn expect_ok(&mut self, line: &str) -> Result<(), PeerError> {
        let response = self.command(line.as_bytes()).await?;
        if response != b"OK" {
            return Err(PeerError::Refused(
                String::from_utf8_lossy(&response).into_owned(),
            ));
        }
        Ok(())
    }
}

/// Connect (over TCP, or a unix socket for a path), IDENTIFY, and register
/// everything nsqd has now.
async fn connect(nsqd: &Arc<Nsqd>, id: u64, addr: &str) -> Result<Peer, PeerError> {
    let stream = tokio::time::timeout(IO_TIMEOUT, crate::listen::connect(addr))
        .await
        .map_err(|_| PeerError::Timeout)??;
    let mut peer = Peer {
        stream: BufReader::new(stream),
        max_response: nsqd.settings.max_body_size.clamp(1024, i32::MAX as usize) as i32,
    };
    let opts = &nsqd.opts;
    let identify = PeerIdentity {
        broadcast_address: opts.effective_broadcast_address(),
        hostname: crate::sys::hostname(),
        http_port: i64::from(nsqd.broadcast_http_port()),
        tcp_port: i64::from(nsqd.broadcast_tcp_port()),
        topology_region: opts.topology_region.clone(),
        topology_zone: opts.topology_zone.clone(),
        version: NSQ_VERSION.to_string(),
    }
    .hello();
    let response = peer.command(&identify).await?;
    match serde_json::from_slice::<LookupdInfo>(&response) {
        Ok(info) => {
            tracing::info!(
                "LOOKUPD({addr}): peer info broadcast_address={} http_port={}",
                info.broadcast_address,
                info.http_port
            );
            nsqd.set_lookupd_info(id, info);
        }
        Err(_) => {
            return Err(PeerError::Refused(
                String::from_utf8_lossy(&response).into_owned(),
            ))
        }
    }
    for event in nsqd.registrations() {
        let line = event.command();
        tracing::info!("LOOKUPD({addr}): {}", line.trim_end());
        peer.expect_ok(&line).await?;
    }
    Ok(peer)
}

/// Follow changes and ping, until the connection fails.
async fn serve(
    addr: &str,
    mut peer: Peer,
    events: &mut broadcast::Receiver<LookupEvent>,
) -> Result<(), PeerError> {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut unsolicited = [0u8; 64];
    loop {
        tokio::select! {
            // A lookupd never speaks first: readable means it closed (or
            // broke the protocol). Noticing now, rather than at the next
            // ping, re-registers with a restarted lookupd at once.
            read = peer.stream.read(&mut unsolicited) => {
                return Err(match read {
                    Ok(0) => PeerError::Refused("connection closed by nsqlookupd".into()),
                    Ok(_) => PeerError::Refused("unexpected data from nsqlookupd".into()),
                    Err(e) => PeerError::Io(e),
                });
            }
            _ = ping.tick() => {
                tracing::debug!("LOOKUPD({addr}): sending heartbeat");
                peer.expect_ok("PING\n").await?;
            }
            event = events.recv() => match event {
                Ok(event) => {
                    let line = event.command();
                    tracing::info!("LOOKUPD({addr}): {}", line.trim_end());
                    peer.expect_ok(&line).await?;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Changes were missed: a new connection makes the lookupd
                    // forget this nsqd and learn its state afresh.
                    return Err(PeerError::Refused("missed changes, resynchronising".into()));
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// Ask the lookupds which channels a new topic has elsewhere, and create
/// those (not ephemeral ones) here, so that messages published to this nsqd
/// wait for consumers that subscribe through another one.
pub async fn precreate_channels(nsqd: Arc<Nsqd>, topic: Arc<super::topic::Topic>) {
    let lookupds = nsqd.lookupd_http_addresses();
    if lookupds.is_empty() {
        if !nsqd.lookupd_addresses().is_empty() {
            tracing::error!(
                "no available nsqlookupd to query for channels to pre-create for topic {}",
                topic.name
            );
        }
        return;
    }
    let client = match reqwest::Client::builder()
        .connect_timeout(nsqd.opts.http_client_connect_timeout)
        .timeout(nsqd.opts.http_client_request_timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot build an HTTP client: {e}");
            return;
        }
    };
    #[derive(Deserialize)]
    struct Channels {
        #[serde(default)]
        channels: Vec<String>,
    }
    for http in lookupds {
        let url = format!("http://{http}/channels?topic={}", topic.name);
        let reply = match client.get(&url).send().await {
            Ok(r) => r.json::<Channels>().await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(found) => {
                for channel in found.channels {
                    if !crate::protocol::names::is_ephemeral(&channel)
                        && crate::protocol::names::is_valid_name(channel.as_bytes())
                        && !topic.is_exiting()
                        && !topic.was_channel_deleted(&channel)
                    {
                        nsqd.get_or_create_channel(&topic, &channel);
                    }
                }
            }
            Err(e) => tracing::error!("failed to query nsqlookupd {url}: {e}"),
        }
    }
}
