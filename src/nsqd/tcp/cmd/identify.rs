//! IDENTIFY: negotiate (see [`negotiate`](super::super::negotiate)), answer,
//! then upgrade the stream in place: TLS first, then compression.

use super::super::connection::Connection;
use super::super::negotiate::{negotiate, Compression};
use super::super::BoxStream;
use crate::protocol::identify::IdentifyRequest;
use crate::protocol::{ProtocolError, OK};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// How long a client has to complete the TLS handshake after IDENTIFY.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    pub(super) async fn identify(&mut self, body: &[u8]) -> Result<(), ProtocolError> {
        let req = IdentifyRequest::parse(body).ok_or_else(|| {
            ProtocolError::fatal("E_BAD_BODY", "IDENTIFY failed to decode JSON body")
        })?;
        {
            // Stored before validation, as nsqd does.
            let mut info = self.client.info.lock();
            info.client_id = req.client_id.clone().unwrap_or_default();
            info.hostname = req.hostname.clone().unwrap_or_default();
            info.user_agent = req.user_agent.clone().unwrap_or_default();
            info.topology_region = req.topology_region.clone().unwrap_or_default();
            info.topology_zone = req.topology_zone.clone().unwrap_or_default();
        }
        let n = negotiate(&req, &self.nsqd.opts, self.nsqd.tls.is_some())?;
        self.heartbeat = n.heartbeat;
        self.decoder.gate.heartbeats_disabled = n.heartbeat.is_none();
        self.output_buffer_size = n.output_buffer_size;
        self.msg_timeout = n.msg_timeout;
        self.client.sample_rate.store(n.sample_rate, Relaxed);
        let Some(response) = n.response else {
            self.respond(OK);
            return Ok(());
        };
        let json = serde_json::to_vec(&response).expect("plain struct serializes");
        self.respond(&json);
        if n.tls {
            self.start_tls().await?;
        }
        // Then at most one compressor, over TLS if active, confirmed by an
        // `OK` already compressed.
        if let Some(compression) = n.compression {
            let upgraded = self
                .upgrade(|s| async move {
                    Ok(match compression {
                        Compression::Snappy => Box::new(crate::compress::snappy(s)) as BoxStream,
                        Compression::Deflate(level) => {
                            Box::new(crate::compress::deflate(s, level)) as BoxStream
                        }
                    })
                })
                .await;
            if let Err(e) = upgraded {
                return Err(ProtocolError::fatal(
                    "E_IDENTIFY_FAILED",
                    format!("IDENTIFY failed {e}"),
                ));
            }
            {
                let mut info = self.client.info.lock();
                info.snappy = compression == Compression::Snappy;
                info.deflate = matches!(compression, Compression::Deflate(_));
            }
            self.respond(OK);
        }
        Ok(())
    }

    /// IDENTIFY's TLS upgrade: the JSON response goes out in plain text,
    /// then the handshake (at most 5 s), then `OK` inside TLS.
    async fn start_tls(&mut self) -> Result<(), ProtocolError> {
        let config = self.nsqd.tls.clone().expect("checked by the caller");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        // Bytes already read past IDENTIFY start the client's handshake.
        let early = self.rbuf.bytes.split().freeze();
        let session = Arc::new(parking_lot::Mutex::new((
            String::new(),
            String::new(),
            String::new(),
        )));
        let slot = session.clone();
        let upgraded = self
            .upgrade(|raw| async move {
                let raw = crate::compress::Prefixed::new(early, raw);
                let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(raw))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                let (version, suite) = crate::nsqd::tls::describe(tls.get_ref().1);
                let common_name = crate::x509::peer_common_name(tls.get_ref().1);
                *slot.lock() = (version, suite, common_name);
                Ok(Box::new(tls) as BoxStream)
            })
            .await;
        if let Err(e) = upgraded {
            return Err(ProtocolError::fatal(
                "E_IDENTIFY_FAILED",
                format!("IDENTIFY failed {e}"),
            ));
        }
        self.decoder.gate.tls_pending = false;
        let (version, suite, common_name) = session.lock().clone();
        {
            let mut info = self.client.info.lock();
            info.tls = true;
            info.tls_version = version;
            info.tls_cipher_suite = suite;
            info.tls_common_name = common_name;
        }
        self.respond(OK);
        Ok(())
    }
}
