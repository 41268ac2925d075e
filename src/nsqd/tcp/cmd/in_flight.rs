//! FIN, REQ and TOUCH: what a consumer does with a message it holds. The
//! channel checks ownership and keeps the client's in-flight count; errors
//! are NSQ's non-fatal `E_FIN_FAILED` / `E_REQ_FAILED` / `E_TOUCH_FAILED`.

use super::super::connection::Connection;
use crate::nsqd::channel::{Channel, InFlightError};
use crate::nsqd::client_state::ClientHandle;
use crate::protocol::{MessageId, ProtocolError};
use std::time::Duration;

/// FINs done under one lock at most (a consumer's pipelined burst).
const MAX_FIN_BATCH: usize = 256;

impl Connection {
    /// A FIN, done with the ones that follow it (see `flush_fins`).
    pub(in crate::nsqd::tcp) fn queue_fin(&mut self, raw: [u8; 16]) {
        self.pending_fins.push(raw);
        if self.pending_fins.len() >= MAX_FIN_BATCH {
            self.flush_fins();
        }
    }

    /// Finish the queued FINs under one lock of the channel, answering the
    /// ones that fail (not in flight, another client's) in their order.
    /// Every other command, and the end of what was read, calls this first,
    /// so that responses keep the order of the commands.
    pub(in crate::nsqd::tcp) fn flush_fins(&mut self) {
        if self.pending_fins.is_empty() {
            return;
        }
        let mut fins = std::mem::take(&mut self.pending_fins);
        let mut failed: Vec<([u8; 16], InFlightError)> = Vec::new();
        match &self.sub {
            None => failed.extend(fins.iter().map(|raw| (*raw, InFlightError::NotInFlight))),
            Some(sub) => {
                let record_latency = !self.nsqd.opts.e2e_processing_latency_percentiles.is_empty();
                let now = crate::protocol::message::now_nanos();
                let ch = &sub.channel;
                ch.finish_many(&self.client, &fins, |raw, outcome| match outcome {
                    Ok(published) if record_latency => {
                        let ns = now.saturating_sub(published);
                        ch.latencies.record(u64::try_from(ns).unwrap_or(0));
                    }
                    Ok(_) => {}
                    Err(e) => failed.push((*raw, e)),
                });
            }
        }
        for (raw, e) in failed {
            self.send_error(&in_flight_error("E_FIN_FAILED", "FIN", &raw, e));
        }
        fins.clear();
        self.pending_fins = fins;
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
