//! Protocol V2's commands, one file each (NOP needs none). Each checks what
//! the protocol requires of it, calls the engine, and answers in NSQ's
//! words; the decoder has already checked syntax and connection state.

mod auth;
mod cls;
mod identify;
mod in_flight;
pub(super) mod publish;
mod rdy;
mod sub;

use super::connection::Connection;
use crate::nsqd::auth::Permission;
use crate::protocol::{Command, ProtocolError};

impl Connection {
    pub(in crate::nsqd::tcp) async fn execute(
        &mut self,
        cmd: Command,
    ) -> Result<(), ProtocolError> {
        match cmd {
            Command::Nop => Ok(()),
            Command::Identify(body) => self.identify(&body).await,
            Command::Auth(secret) => self.authenticate(secret).await,
            Command::Sub { topic, channel } => {
                self.authorize("SUB", &topic, &channel, Permission::Subscribe)
                    .await?;
                self.subscribe(&topic, &channel)
            }
            Command::Rdy(count) => self.ready(count),
            Command::Fin(raw) => {
                self.queue_fin(raw);
                self.flush_fins();
                Ok(())
            }
            Command::Req {
                id: raw,
                timeout_ms,
            } => self.requeue(&raw, timeout_ms),
            Command::Touch(raw) => self.touch(&raw),
            Command::Cls => self.close_wait(),
            Command::Pub { topic, body } => {
                self.queue_pub(topic, body).await?;
                self.flush_pubs();
                Ok(())
            }
            Command::Mpub { topic, bodies } => {
                self.authorize("MPUB", &topic, "", Permission::Publish)
                    .await?;
                let n = bodies.len() as u64;
                self.publish(&topic, bodies, n, 1, 0, "MPUB")
            }
            Command::Dpub {
                topic,
                defer_ms,
                body,
            } => {
                self.authorize("DPUB", &topic, "", Permission::Publish)
                    .await?;
                self.publish(&topic, std::iter::once(body), 1, 1, defer_ms, "DPUB")
            }
        }
    }
}
