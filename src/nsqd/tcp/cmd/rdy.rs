//! RDY: how many messages this client may have in flight. The decoder has
//! checked the count against `--max-rdy-count`; the connection's loop sends
//! what the new count allows.

use super::super::connection::Connection;
use crate::protocol::ProtocolError;
use std::sync::atomic::Ordering::Relaxed;

impl Connection {
    pub(super) fn ready(&mut self, count: u64) -> Result<(), ProtocolError> {
        self.client.ready_count.store(count as i64, Relaxed);
        Ok(())
    }
}
