//! FIN, REQ and TOUCH: what a consumer does with a message it holds. The
//! channel checks ownership and keeps the client's in-flight count; errors
//! are NSQ's non-fatal `E_FIN_FAILED` / `E_REQ_FAILED` / `E_TOUCH_FAILED`.

use super::super::connection::Connection;
use crate::nsqd::channel::{Channel, InFlightError};
use crate::nsqd::client_state::ClientHandle;
use crate::protocol::{MessageId, ProtocolError};
use std::time::Duration;

impl Connection {
    pub(super) fn finish(&mut self, raw: &[u8; 16]) -> Result<(), ProtocolError> {
        let record_latency = !self.nsqd.opts.e2e_processing_latency_percentiles.is_empty();
        self.in_flight_op(raw, |ch, client, id| {
            let published = ch.finish(client, id)?;
            if record_latency {
                let ns = crate::protocol::message::now_nanos().saturating_sub(published);
                ch.latencies.record(u64::try_from(ns).unwrap_or(0));
            }
            Ok(())
        })
        .map_err(|e| in_flight_error("E_FIN_FAILED", "FIN", raw, e))
    }

    pub(super) fn requeue(&mut self, raw: &[u8; 16], timeout_ms: u64) -> Result<(), ProtocolError> {
        let max = self.nsqd.opts.max_req_timeout;
        let mut delay = Duration::from_millis(timeout_ms);
        if delay > max {
            tracing::info!(
                "[{}] REQ timeout {timeout_ms}ms clamped to {}ms",
                self.client.remote_addr,
                max.as_millis()
            );
            delay = max;
        }
        self.in_flight_op(raw, |ch, client, id| ch.requeue(client, id, delay))
            .map_err(|e| in_flight_error("E_REQ_FAILED", "REQ", raw, e))
    }

    pub(super) fn touch(&mut self, raw: &[u8; 16]) -> Result<(), ProtocolError> {
        let (timeout, max) = (self.msg_timeout, self.nsqd.opts.max_msg_timeout);
        self.in_flight_op(raw, |ch, client, id| ch.touch(client, id, timeout, max))
            .map_err(|e| in_flight_error("E_TOUCH_FAILED", "TOUCH", raw, e))
    }

    /// Run `op` on the subscribed channel for the message `raw` names.
    fn in_flight_op<T>(
        &self,
        raw: &[u8; 16],
        op: impl FnOnce(&Channel, &ClientHandle, MessageId) -> Result<T, InFlightError>,
    ) -> Result<T, InFlightError> {
        let sub = self.sub.as_ref().ok_or(InFlightError::NotInFlight)?;
        let id = MessageId::from_hex(raw).ok_or(InFlightError::NotInFlight)?;
        op(&sub.channel, &self.client, id)
    }
}

fn in_flight_error(
    code: &'static str,
    name: &str,
    raw: &[u8; 16],
    e: InFlightError,
) -> ProtocolError {
    ProtocolError::non_fatal(
        code,
        format!(
            "{name} {} failed {}",
            String::from_utf8_lossy(raw),
            e.text()
        ),
    )
}
