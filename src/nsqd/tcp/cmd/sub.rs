//! SUB: join a topic's channel (both created as needed).

use super::super::connection::Connection;
use crate::nsqd::operations::SubscribeError;
use crate::protocol::{ConnState, ProtocolError, OK};

impl Connection {
    pub(super) fn subscribe(&mut self, topic: &str, channel: &str) -> Result<(), ProtocolError> {
        match self.nsqd.subscribe(topic, channel, &self.client) {
            Ok(sub) => {
                self.sub = Some(sub);
                self.set_state(ConnState::Subscribed);
                self.respond(OK);
                Ok(())
            }
            Err(e @ SubscribeError::TooManyConsumers { .. }) | Err(e @ SubscribeError::Deleted) => {
                Err(ProtocolError::fatal(
                    "E_SUB_FAILED",
                    format!("SUB failed {e}"),
                ))
            }
        }
    }
}
