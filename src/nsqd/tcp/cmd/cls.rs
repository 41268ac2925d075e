//! CLS: the client is leaving. No more messages (RDY 0); it may still FIN
//! or REQ what it holds, then close.

use super::super::connection::Connection;
use crate::protocol::{ConnState, ProtocolError, CLOSE_WAIT};
use std::sync::atomic::Ordering::Relaxed;

impl Connection {
    pub(super) fn close_wait(&mut self) -> Result<(), ProtocolError> {
        self.client.ready_count.store(0, Relaxed);
        self.set_state(ConnState::Closing);
        self.respond(CLOSE_WAIT);
        Ok(())
    }
}
