//! PUB, MPUB and DPUB: hand the bodies to the engine. Without durable acks
//! the `OK` goes out at once; with `--sync-every=1` it is held (with every
//! response after it) until the publish is on disk, while the connection
//! goes on reading, so pipelined publishes share one fsync.
//!
//! Pipelined PUBs to one topic that arrive together are stored as one
//! batch, like an MPUB (one disk write, one lock round trip), and answered
//! with one `OK` each, in order: the batch is stored before any other
//! command runs.

use super::super::connection::{Connection, Held};
use crate::nsqd::auth::Permission;
use crate::protocol::{ProtocolError, OK};
use bytes::{Bytes, BytesMut};
use std::time::Duration;

/// Most PUBs stored in one batch.
const MAX_PUB_BATCH: usize = 1024;

impl Connection {
    /// A PUB, authorized, then added to the batch of PUBs to its topic.
    pub(in crate::nsqd::tcp) async fn queue_pub(
        &mut self,
        topic: String,
        body: Bytes,
    ) -> Result<(), ProtocolError> {
        self.authorize("PUB", &topic, "", Permission::Publish)
            .await?;
        match &mut self.pending_pub {
            Some((t, bodies)) if *t == topic => bodies.push(body),
            _ => {
                self.flush_pubs();
                self.pending_pub = Some((topic, vec![body]));
            }
        }
        if self
            .pending_pub
            .as_ref()
            .is_some_and(|(_, b)| b.len() >= MAX_PUB_BATCH)
        {
            self.flush_pubs();
        }
        Ok(())
    }

    /// Another PUB to the topic being batched, taken straight from the
    /// read buffer ([`crate::protocol::CommandDecoder::repeat_pub`]). With
    /// `--auth-http-address` every PUB goes the usual way, to be
    /// authorized on its own.
    pub(in crate::nsqd::tcp) fn take_repeat_pub(&mut self) -> bool {
        let Some((topic, bodies)) = &mut self.pending_pub else {
            return false;
        };
        if !self.nsqd.opts.auth_http_addresses.is_empty() {
            return false;
        }
        let Some(body) = self.decoder.repeat_pub(&mut self.rbuf.bytes, topic) else {
            return false;
        };
        bodies.push(body);
        if bodies.len() >= MAX_PUB_BATCH {
            self.flush_pubs();
        }
        true
    }

    /// Store the batched PUBs, answering each.
    pub(in crate::nsqd::tcp) fn flush_pubs(&mut self) {
        let Some((topic, bodies)) = self.pending_pub.take() else {
            return;
        };
        let n = bodies.len();
        if let Err(e) = self.publish(&topic, bodies, n as u64, n, 0, "PUB") {
            self.send_error(&e);
        }
    }

    /// `name` is the command (`PUB`, `MPUB`, `DPUB`), which names its error
    /// code (`E_PUB_FAILED`, ...); `oks` how many commands this answers.
    pub(super) fn publish(
        &mut self,
        topic_name: &str,
        bodies: impl IntoIterator<Item = Bytes>,
        count: u64,
        oks: usize,
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
            for _ in 0..oks {
                self.respond(OK);
            }
        } else {
            self.nsqd.request_sync();
            self.held.push_back(Held {
                ticket,
                oks,
                on_failure: ProtocolError::fatal(code, format!("{name} failed to sync to disk")),
                after: BytesMut::new(),
            });
        }
        Ok(())
    }
}
