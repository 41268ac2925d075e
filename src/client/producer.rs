use super::conn::{Config, Connection};
use super::error::ClientError;
use crate::protocol::{Command, Frame};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Ack = oneshot::Sender<Result<(), ClientError>>;

/// Publishes to one nsqd. Cheap to clone: clones share the connection, and
/// their publishes are pipelined on it (nsqd answers strictly in order).
#[derive(Clone)]
pub struct Producer {
    addr: String,
    tx: mpsc::Sender<(Command, Ack)>,
}

impl Producer {
    pub async fn connect(addr: &str, config: &Config) -> Result<Producer, ClientError> {
        let conn = Connection::connect(addr, config).await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(conn, rx));
        Ok(Producer {
            addr: addr.to_string(),
            tx,
        })
    }

    pub async fn publish(&self, topic: &str, body: impl Into<Bytes>) -> Result<(), ClientError> {
        self.send(Command::Pub {
            topic: topic.to_string(),
            body: body.into(),
        })
        .await
    }

    pub async fn multi_publish(&self, topic: &str, bodies: Vec<Bytes>) -> Result<(), ClientError> {
        self.send(Command::Mpub {
            topic: topic.to_string(),
            bodies,
        })
        .await
    }

    pub async fn deferred_publish(
        &self,
        topic: &str,
        delay: Duration,
        body: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        self.send(Command::Dpub {
            topic: topic.to_string(),
            defer_ms: delay.as_millis() as u64,
            body: body.into(),
        })
        .await
    }

    /// Queue a command now and get its acknowledgement later: issuing many
    /// of these before awaiting them pipelines the publishes.
    pub async fn send_pipelined(
        &self,
        cmd: Command,
    ) -> Result<oneshot::Receiver<Result<(), ClientError>>, ClientError> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send((cmd, ack))
            .await
            .map_err(|_| ClientError::Closed {
                addr: self.addr.clone(),
            })?;
        Ok(rx)
    }

    async fn send(&self, cmd: Command) -> Result<(), ClientError> {
        let rx = self.send_pipelined(cmd).await?;
        rx.await.map_err(|_| ClientError::Closed {
            addr: self.addr.clone(),
        })?
    }
}

/// The connection task: writes queued commands in batches, matches each
/// response or error frame to the oldest outstanding command.
async fn run(mut conn: Connection, mut rx: mpsc::Receiver<(Command, Ack)>) {
    let mut pending: VecDeque<Ack> = VecDeque::new();
    let mut out = BytesMut::new();
    let failure = loop {
        tokio::select! {
            next = rx.recv() => {
                let Some((cmd, ack)) = next else { break None };
                cmd.encode(&mut out);
                pending.push_back(ack);
                while let Ok((cmd, ack)) = rx.try_recv() {
                    cmd.encode(&mut out);
                    pending.push_back(ack);
                    if out.len() > 1 << 20 {
                        break;
                    }
                }
                if let Err(e) = conn.write(&out).await {
                    break Some(e);
                }
                out.clear();
            }
            frame = read_next(&mut conn) => {
                match frame {
                    Err(e) => break Some(e),
                    Ok(f) if f.is_heartbeat() => {
                        if let Err(e) = conn.write(b"NOP\n").await {
                            break Some(e);
                        }
                    }
                    Ok(Frame::Response(_)) => {
                        if let Some(ack) = pending.pop_front() {
                            let _ = ack.send(Ok(()));
                        }
                    }
                    Ok(Frame::Error(text)) => {
                        let err = ClientError::Server {
                            addr: conn.addr.clone(),
                            text: String::from_utf8_lossy(&text).into_owned(),
                        };
                        if let Some(ack) = pending.pop_front() {
                            let _ = ack.send(Err(err.clone()));
                        }
                        // Publish errors are fatal: nsqd closes the connection.
                        break Some(err);
                    }
                    Ok(Frame::Message(_)) => {}
                }
            }
        }
    };
    let err = failure.unwrap_or(ClientError::Closed {
        addr: conn.addr.clone(),
    });
    for ack in pending {
        let _ = ack.send(Err(err.clone()));
    }
}

async fn read_next(conn: &mut Connection) -> Result<Frame, ClientError> {
    conn.read_frame().await
}
