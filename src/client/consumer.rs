use super::conn::{Config, Connection};
use super::error::ClientError;
use crate::protocol::{Command, Frame, Message};
use bytes::BytesMut;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a consumer subscribes to and how much it takes at once.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub topic: String,
    pub channel: String,
    /// Messages in flight across all connections (spread over them).
    pub max_in_flight: u64,
    pub connection: Config,
}

enum Ack {
    Fin(Message),
    Req(Message, Duration),
    Touch(Message),
}

/// A delivered message; FIN it, REQ it, or let it time out.
pub struct Delivery {
    pub message: Message,
    acks: mpsc::UnboundedSender<Ack>,
}

impl Delivery {
    pub fn fin(self) {
        let _ = self.acks.send(Ack::Fin(self.message));
    }
    pub fn req(self, delay: Duration) {
        let _ = self.acks.send(Ack::Req(self.message, delay));
    }
    pub fn touch(&self) {
        let _ = self.acks.send(Ack::Touch(self.message.clone()));
    }
}

/// Consumes one topic/channel from one or more nsqd.
pub struct Consumer {
    rx: mpsc::Receiver<Result<Delivery, ClientError>>,
}

impl Consumer {
    /// Connect to every address and subscribe; fails if any connection fails.
    pub async fn connect(
        addrs: &[String],
        config: &ConsumerConfig,
    ) -> Result<Consumer, ClientError> {
        let (tx, rx) = mpsc::channel(1024);
        let per_conn = (config.max_in_flight / addrs.len().max(1) as u64).max(1);
        for addr in addrs {
            let mut conn = Connection::connect(addr, &config.connection).await?;
            conn.request(&Command::Sub {
                topic: config.topic.clone(),
                channel: config.channel.clone(),
            })
            .await?;
            let rdy = per_conn.min(conn.server.max_rdy_count.max(1) as u64);
            conn.send(&Command::Rdy(rdy)).await?;
            tokio::spawn(run(conn, tx.clone()));
        }
        Ok(Consumer { rx })
    }

    /// The next message, or the error that ended a connection; `None` once
    /// every connection is gone.
    pub async fn next(&mut self) -> Option<Result<Delivery, ClientError>> {
        self.rx.recv().await
    }
}

async fn run(mut conn: Connection, tx: mpsc::Sender<Result<Delivery, ClientError>>) {
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let mut out = BytesMut::new();
    let result: Result<(), ClientError> = loop {
        tokio::select! {
            ack = ack_rx.recv() => {
                let Some(ack) = ack else { break Ok(()) };
                encode_ack(ack, &mut out);
                while let Ok(ack) = ack_rx.try_recv() {
                    encode_ack(ack, &mut out);
                }
                if let Err(e) = conn.write(&out).await {
                    break Err(e);
                }
                out.clear();
            }
            frame = conn.read_frame() => match frame {
                Err(e) => break Err(e),
                Ok(f) if f.is_heartbeat() => {
                    if let Err(e) = conn.write(b"NOP\n").await {
                        break Err(e);
                    }
                }
                Ok(Frame::Message(message)) => {
                    let d = Delivery { message, acks: ack_tx.clone() };
                    if tx.send(Ok(d)).await.is_err() {
                        break Ok(());
                    }
                }
                Ok(Frame::Error(text)) => {
                    // FIN/REQ/TOUCH failures are not fatal; report and go on.
                    let text = String::from_utf8_lossy(&text).into_owned();
                    tracing::warn!("nsqd at {}: {text}", conn.addr);
                }
                Ok(Frame::Response(_)) => {}
            }
        }
    };
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

fn encode_ack(ack: Ack, out: &mut BytesMut) {
    match ack {
        Ack::Fin(m) => Command::Fin(m.id.to_hex()).encode(out),
        Ack::Req(m, delay) => Command::Req {
            id: m.id.to_hex(),
            timeout_ms: delay.as_millis() as u64,
        }
        .encode(out),
        Ack::Touch(m) => Command::Touch(m.id.to_hex()).encode(out),
    }
}
