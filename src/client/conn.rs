//! One connection to nsqd: TCP (or unix socket) connect, bounded by a
//! timeout, the `  V2` magic, IDENTIFY with feature negotiation, then frames
//! in and commands out.
//!
//! [`Connection`] is also usable on its own, request by request (tools,
//! tests); the producer and consumer take it apart into a socket and a
//! [`FrameReader`] and drive both halves from one task.

use super::error::ClientError;
use crate::protocol::identify::{IdentifyRequest, IdentifyResponse};
use crate::protocol::{Command, Frame, FrameDecoder, MAGIC_V2};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

/// Connection settings, most of them sent in IDENTIFY. `None` leaves nsqd's
/// default in place.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shown in nsqd's stats; defaults to the short host name.
    pub client_id: String,
    pub hostname: String,
    /// `nsq-rs/<version>` by default.
    pub user_agent: String,
    /// How often nsqd sends `_heartbeat_` (answered with NOP automatically).
    /// nsqd accepts 1s..=`--max-heartbeat-interval`.
    pub heartbeat_interval: Option<Duration>,
    /// How long a delivered message may stay un-FINished before nsqd
    /// requeues it (1s..=`--max-msg-timeout`).
    pub msg_timeout: Option<Duration>,
    /// nsqd's output buffer for this connection in bytes (64..=65536, or -1
    /// to disable buffering).
    pub output_buffer_size: Option<i64>,
    /// How long nsqd may hold buffered messages before flushing them.
    pub output_buffer_timeout: Option<Duration>,
    /// Bounds both the TCP connect and the IDENTIFY exchange.
    pub connect_timeout: Duration,
    /// Upgrade to TLS after IDENTIFY (an nsqd that does not offer it is an
    /// error, never a silent fallback to plain text).
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Ask for a compressed connection (used if nsqd agrees).
    pub compression: Option<Compression>,
}

/// The compression IDENTIFY can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Snappy,
    /// Raw DEFLATE at this level (1-9; nsqd may lower it).
    Deflate(u32),
}

/// A connection's byte stream: plain TCP or TLS over it.
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}
pub type ClientStream = Box<dyn AsyncStream>;

impl Default for Config {
    fn default() -> Self {
        let hostname = crate::sys::hostname();
        Config {
            client_id: hostname.split('.').next().unwrap_or("").to_string(),
            hostname,
            user_agent: format!("nsq-rs/{}", env!("CARGO_PKG_VERSION")),
            heartbeat_interval: None,
            msg_timeout: None,
            output_buffer_size: None,
            output_buffer_timeout: None,
            connect_timeout: Duration::from_secs(5),
            tls: None,
            compression: None,
        }
    }
}

impl Config {
    /// The IDENTIFY body these settings produce (always with
    /// `feature_negotiation: true`, so that nsqd answers with its limits).
    pub fn identify_request(&self) -> IdentifyRequest {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
        IdentifyRequest {
            client_id: Some(self.client_id.clone()),
            hostname: Some(self.hostname.clone()),
            user_agent: Some(self.user_agent.clone()),
            feature_negotiation: Some(true),
            heartbeat_interval: ms(self.heartbeat_interval),
            msg_timeout: ms(self.msg_timeout),
            output_buffer_size: self.output_buffer_size,
            output_buffer_timeout: ms(self.output_buffer_timeout),
            tls_v1: self.tls.is_some().then_some(true),
            snappy: (self.compression == Some(Compression::Snappy)).then_some(true),
            deflate: matches!(self.compression, Some(Compression::Deflate(_))).then_some(true),
            deflate_level: match self.compression {
                Some(Compression::Deflate(level)) => Some(level as i64),
                _ => None,
            },
            ..Default::default()
        }
    }
}

/// Frames out of a byte stream: the read buffer and the decoder, kept apart
/// from the socket so that a task can read and write the same socket
/// concurrently (see `TcpStream::split`).
#[derive(Debug)]
pub struct FrameReader {
    rbuf: BytesMut,
    decoder: FrameDecoder,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            decoder: FrameDecoder::default(),
        }
    }
}

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;

impl FrameReader {
    /// A frame already buffered, if any.
    pub fn decode(&mut self, addr: &str) -> Result<Option<Frame>, ClientError> {
        self.decoder
            .decode(&mut self.rbuf)
            .map_err(|e| ClientError::Protocol {
                addr: addr.to_string(),
                reason: e.to_string(),
            })
    }

    /// Bytes read but not decoded (what follows a switch of encoding).
    pub fn take_buffered(&mut self) -> Bytes {
        self.rbuf.split().freeze()
    }

    /// Read more bytes. Cancel-safe: usable as a `select!` branch.
    pub async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        addr: &str,
    ) -> Result<(), ClientError> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(READ_CHUNK);
        }
        match reader.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(ClientError::Closed {
                addr: addr.to_string(),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(ClientError::io(addr, e)),
        }
    }
}

/// One connection to nsqd with IDENTIFY done.
pub struct Connection {
    pub addr: String,
    pub stream: ClientStream,
    /// What nsqd answered to IDENTIFY (its limits, e.g. `max_rdy_count`).
    pub server: IdentifyResponse,
    reader: FrameReader,
}

impl Connection {
    /// Connect, send the magic and IDENTIFY. Fails with
    /// [`ClientError::Connect`] if nothing answers, [`ClientError::Timeout`]
    /// if IDENTIFY is not answered within `config.connect_timeout`, and
    /// [`ClientError::Server`] if nsqd refuses the settings.
    pub async fn connect(addr: &str, config: &Config) -> Result<Connection, ClientError> {
        let connect_err = |source: std::io::Error| ClientError::Connect {
            addr: addr.to_string(),
            source: std::sync::Arc::new(source),
        };
        let stream = tokio::time::timeout(config.connect_timeout, crate::listen::connect(addr))
            .await
            .map_err(|_| {
                connect_err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("timed out after {:?}", config.connect_timeout),
                ))
            })?
            .map_err(connect_err)?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream: Box::new(stream),
            server: IdentifyResponse::default(),
            reader: FrameReader::default(),
        };
        let body = serde_json::to_vec(&config.identify_request()).expect("plain struct");
        let mut hello = BytesMut::with_capacity(body.len() + 32);
        hello.extend_from_slice(MAGIC_V2);
        Command::Identify(body.into()).encode(&mut hello);
        let response = tokio::time::timeout(config.connect_timeout, async {
            conn.write(&hello).await?;
            conn.response().await
        })
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_string(),
            after: config.connect_timeout,
        })??;
        conn.server =
            parse_identify_response(&response).map_err(|reason| ClientError::Protocol {
                addr: addr.to_string(),
                reason,
            })?;
        if let Some(tls) = &config.tls {
            if !conn.server.tls_v1 {
                return Err(connect_err(std::io::Error::other(
                    "TLS was asked for but this nsqd does not offer it (no --tls-cert?)",
                )));
            }
            let name =
                super::tls::server_name(addr).map_err(|e| connect_err(std::io::Error::other(e)))?;
            let connector = tokio_rustls::TlsConnector::from(tls.clone());
            let plain = std::mem::replace(&mut conn.stream, Box::new(tokio::io::duplex(1).0));
            let upgraded = tokio::time::timeout(config.connect_timeout, async {
                let stream = connector.connect(name, plain).await.map_err(|e| {
                    connect_err(std::io::Error::new(
                        e.kind(),
                        format!("TLS handshake failed: {e}"),
                    ))
                })?;
                conn.stream = Box::new(stream);
                // nsqd confirms the upgrade with an `OK` inside TLS.
                conn.response().await
            })
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.to_string(),
                after: config.connect_timeout,
            })??;
            if &upgraded[..] != b"OK" {
                return Err(ClientError::Protocol {
                    addr: addr.to_string(),
                    reason: "no OK after the TLS upgrade".into(),
                });
            }
        }
        if conn.server.snappy || conn.server.deflate {
            let plain = std::mem::replace(&mut conn.stream, Box::new(tokio::io::duplex(1).0));
            // Compressed bytes may have come in the same read as the OK.
            let early = conn.reader.take_buffered();
            let plain = crate::compress::Prefixed::new(early, plain);
            conn.stream = if conn.server.snappy {
                Box::new(crate::compress::snappy(plain))
            } else {
                Box::new(crate::compress::deflate(
                    plain,
                    conn.server.deflate_level.max(1) as u32,
                ))
            };
            let ok = tokio::time::timeout(config.connect_timeout, conn.response())
                .await
                .map_err(|_| ClientError::Timeout {
                    addr: addr.to_string(),
                    after: config.connect_timeout,
                })??;
            if &ok[..] != b"OK" {
                return Err(ClientError::Protocol {
                    addr: addr.to_string(),
                    reason: "no OK after the compression upgrade".into(),
                });
            }
        }
        Ok(conn)
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let stream = &mut self.stream;
        async move {
            stream.write_all(bytes).await?;
            stream.flush().await
        }
        .await
        .map_err(|e| ClientError::io(&self.addr, e))
    }

    pub async fn send(&mut self, cmd: &Command) -> Result<(), ClientError> {
        let bytes = cmd.to_bytes();
        self.write(&bytes).await
    }

    /// The next frame (heartbeats included: the caller answers them).
    pub async fn read_frame(&mut self) -> Result<Frame, ClientError> {
        loop {
            if let Some(frame) = self.decode()? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// A frame already buffered, if any.
    pub fn decode(&mut self) -> Result<Option<Frame>, ClientError> {
        self.reader.decode(&self.addr)
    }

    /// Read more bytes from the socket into the frame buffer.
    pub async fn fill(&mut self) -> Result<(), ClientError> {
        self.reader.fill(&mut self.stream, &self.addr).await
    }

    /// Send a command and wait for its response frame, answering heartbeats
    /// meanwhile. An error frame becomes [`ClientError::Server`].
    pub async fn request(&mut self, cmd: &Command) -> Result<Bytes, ClientError> {
        self.send(cmd).await?;
        self.response().await
    }

    /// The next response or error frame, heartbeats answered on the way.
    async fn response(&mut self) -> Result<Bytes, ClientError> {
        loop {
            match self.read_frame().await? {
                f if f.is_heartbeat() => self.write(b"NOP\n").await?,
                Frame::Response(data) => return Ok(data),
                Frame::Error(text) => {
                    return Err(ClientError::Server {
                        addr: self.addr.clone(),
                        text: String::from_utf8_lossy(&text).into_owned(),
                    })
                }
                Frame::Message(_) => {
                    return Err(ClientError::Protocol {
                        addr: self.addr.clone(),
                        reason: "message frame while waiting for a response".into(),
                    })
                }
            }
        }
    }

    /// The socket and whatever has been read but not decoded yet.
    pub(crate) fn into_parts(self) -> (String, ClientStream, FrameReader) {
        (self.addr, self.stream, self.reader)
    }
}

/// nsqd answers IDENTIFY with JSON when asked for feature negotiation, and
/// with `OK` when it does not negotiate (older or minimal servers): then its
/// defaults apply.
pub(crate) fn parse_identify_response(data: &[u8]) -> Result<IdentifyResponse, String> {
    if data == crate::protocol::OK {
        return Ok(IdentifyResponse::default());
    }
    let mut r: IdentifyResponse =
        serde_json::from_slice(data).map_err(|e| format!("bad IDENTIFY response: {e}"))?;
    if r.max_rdy_count <= 0 {
        // pynsq's fallback; go-nsq would never send RDY at all.
        r.max_rdy_count = 2500;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_body_negotiates_and_sends_only_what_is_set() {
        let config = Config {
            client_id: "c".into(),
            hostname: "h.example".into(),
            heartbeat_interval: Some(Duration::from_secs(5)),
            output_buffer_size: Some(-1),
            ..Config::default()
        };
        let json = serde_json::to_value(config.identify_request()).unwrap();
        assert_eq!(json["feature_negotiation"], true);
        assert_eq!(json["client_id"], "c");
        assert_eq!(json["hostname"], "h.example");
        assert_eq!(json["heartbeat_interval"], 5000);
        assert_eq!(json["output_buffer_size"], -1);
        assert!(json["msg_timeout"].is_null());
        assert!(json["user_agent"].as_str().unwrap().starts_with("nsq-rs/"));
        // nsqd's own parser accepts what we send.
        let body = serde_json::to_vec(&config.identify_request()).unwrap();
        assert!(IdentifyRequest::parse(&body).is_some());
    }

    #[test]
    fn identify_response_json_ok_and_garbage() {
        let json = br#"{"max_rdy_count":100,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250,"topology_region":"","topology_zone":""}"#;
        assert_eq!(parse_identify_response(json).unwrap().max_rdy_count, 100);
        // Released v1.3.0: no topology keys.
        let released =
            include_bytes!("../../tests/fixtures/nsq-v1.3.0/nsqd-identify-response.json");
        assert_eq!(
            parse_identify_response(released).unwrap().max_rdy_count,
            2500
        );
        // Older (no auth_required, no output_buffer_*) and newer (extra keys).
        let older = br#"{"max_rdy_count":99,"version":"0.3.8","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0}"#;
        assert_eq!(parse_identify_response(older).unwrap().max_rdy_count, 99);
        let newer = br#"{"max_rdy_count":5,"snappy":true,"zstd":true,"future":{"a":1}}"#;
        let r = parse_identify_response(newer).unwrap();
        assert!(r.snappy && r.max_rdy_count == 5 && r.output_buffer_size == 16384);
        assert_eq!(parse_identify_response(b"OK").unwrap().max_rdy_count, 2500);
        assert!(parse_identify_response(b"{").is_err());
    }
}
