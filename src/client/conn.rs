use super::error::ClientError;
use crate::protocol::identify::{IdentifyRequest, IdentifyResponse};
use crate::protocol::{Command, Frame, FrameDecoder, MAGIC_V2};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// Connection settings sent in IDENTIFY.
#[derive(Debug, Clone)]
pub struct Config {
    pub client_id: String,
    pub hostname: String,
    pub user_agent: String,
    pub heartbeat_interval: Option<Duration>,
    pub msg_timeout: Option<Duration>,
    pub output_buffer_timeout: Option<Duration>,
    pub connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let hostname = crate::nsqd::options::hostname();
        Config {
            client_id: hostname.split('.').next().unwrap_or("").to_string(),
            hostname,
            user_agent: format!("nsq-rs/{}", env!("CARGO_PKG_VERSION")),
            heartbeat_interval: None,
            msg_timeout: None,
            output_buffer_timeout: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// One connection to nsqd with IDENTIFY done.
pub struct Connection {
    pub addr: String,
    pub stream: TcpStream,
    /// What nsqd answered to IDENTIFY (its limits, e.g. `max_rdy_count`).
    pub server: IdentifyResponse,
    rbuf: BytesMut,
    decoder: FrameDecoder,
}

impl Connection {
    pub async fn connect(addr: &str, config: &Config) -> Result<Connection, ClientError> {
        let connect_err = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("timed out after {:?}", config.connect_timeout)))?
            .map_err(|e| connect_err(e.to_string()))?;
        stream.set_nodelay(true).ok();
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            server: placeholder_response(),
            rbuf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::default(),
        };
        conn.write(MAGIC_V2).await?;
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as i64);
        let identify = IdentifyRequest {
            client_id: Some(config.client_id.clone()),
            hostname: Some(config.hostname.clone()),
            user_agent: Some(config.user_agent.clone()),
            feature_negotiation: Some(true),
            heartbeat_interval: ms(config.heartbeat_interval),
            msg_timeout: ms(config.msg_timeout),
            output_buffer_timeout: ms(config.output_buffer_timeout),
            ..Default::default()
        };
        let body = serde_json::to_vec(&identify).expect("plain struct");
        let response = tokio::time::timeout(
            config.connect_timeout,
            conn.request(&Command::Identify(body.into())),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_string(),
            after: config.connect_timeout,
        })??;
        conn.server = serde_json::from_slice(&response).map_err(|e| ClientError::Protocol {
            addr: addr.to_string(),
            reason: format!("bad IDENTIFY response: {e}"),
        })?;
        Ok(conn)
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| ClientError::Io {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })
    }

    pub async fn send(&mut self, cmd: &Command) -> Result<(), ClientError> {
        let bytes = cmd.to_bytes();
        self.write(&bytes).await
    }

    /// The next frame (heartbeats included).
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
        self.decoder
            .decode(&mut self.rbuf)
            .map_err(|e| ClientError::Protocol {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })
    }

    /// Read more bytes from the socket into the frame buffer.
    pub async fn fill(&mut self) -> Result<(), ClientError> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(64 * 1024);
        }
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(ClientError::Closed {
                addr: self.addr.clone(),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(ClientError::Io {
                addr: self.addr.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Send a command and wait for its response frame, answering heartbeats
    /// meanwhile. An error frame becomes `ClientError::Server`.
    pub async fn request(&mut self, cmd: &Command) -> Result<Bytes, ClientError> {
        self.send(cmd).await?;
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
}

fn placeholder_response() -> IdentifyResponse {
    IdentifyResponse {
        max_rdy_count: 2500,
        version: String::new(),
        max_msg_timeout: 0,
        msg_timeout: 0,
        tls_v1: false,
        deflate: false,
        deflate_level: 0,
        max_deflate_level: 0,
        snappy: false,
        sample_rate: 0,
        auth_required: false,
        output_buffer_size: 0,
        output_buffer_timeout: 0,
        topology_region: String::new(),
        topology_zone: String::new(),
    }
}
