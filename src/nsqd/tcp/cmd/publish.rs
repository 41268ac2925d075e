//! PUB, MPUB and DPUB: hand the bodies to the engine. Without durable acks
//! the `OK` goes out at once; with `--sync-every=1` it is held (with every
//! response after it) until the publish is on disk, while the connection
//! goes on reading, so pipelined publishes share one fsync.

use super::super::connection::{Connection, Held};
use crate::protocol::{ProtocolError, OK};
use bytes::{Bytes, BytesMut};
use std::time::Duration;

impl Connection {
    /// `name` is the command (`PUB`, `MPUB`, `DPUB`), which names its error
    /// code (`E_PUB_FAILED`, ...).
    pub(super) fn publish(
        &mut self,
        topic_name: &str,
        bodies: impl IntoIterator<Item = Bytes>,
        count: u64,
        defer_ms: u64,
        name: &'static str,
    ) -> Result<(), ProtocolError> {
        let code = match name {
            "MPUB" => "E_MPUB_FAILED",
            "DPUB" => "E_DPUB_FAILED",
            _ => "E_PUB_FAILED",
        };
        // The last topic published to is kept, to skip the topic map on
        // repeats.
        let topic = match &self.pub_topic {
            Some(t) if t.name == topic_name && !t.is_exiting() => t.clone(),
            _ => {
                let t = self.nsqd.get_or_create_topic(topic_name);
                self.pub_topic = Some(t.clone());
                t
            }
        };
        let ticket = self
            .nsqd
            .publish(&topic, bodies, Duration::from_millis(defer_ms))
            .map_err(|e| ProtocolError::fatal(code, format!("{name} failed {e}")))?;
        self.client.record_publish(topic_name, count);
        if ticket.is_empty() {
            self.respond(OK);
        } else {
            self.nsqd.request_sync();
            self.held.push_back(Held {
                ticket,
                on_failure: ProtocolError::fatal(code, format!("{name} failed to sync to disk")),
                after: BytesMut::new(),
            });
        }
        Ok(())
    }
}
