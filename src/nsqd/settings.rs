//! nsqd's flags as the engine and servers use them: checked once by
//! [`Options`](super::Options) (which keeps Go's signed integers, so that
//! NSQ's spellings and error messages carry over), then turned here into
//! the sizes, counts and limits they mean. Nothing downstream converts or
//! clamps a flag again.

use super::Options;
use crate::protocol::message::MESSAGE_HEADER_LEN;
use crate::protocol::Limits;

/// Typed, validated settings derived from [`Options`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages a queue keeps in memory before the rest goes to disk.
    pub mem_queue_size: usize,
    /// Body bytes a durable queue keeps in memory.
    pub mem_queue_bytes: usize,
    /// Largest message body.
    pub max_msg_size: usize,
    /// Largest IDENTIFY/AUTH/MPUB body (and HTTP `/mpub` body).
    pub max_body_size: usize,
    /// Largest RDY a client may ask for.
    pub max_rdy_count: u64,
    /// Consumers per channel; 0 for no limit.
    pub max_channel_consumers: usize,
    /// Largest `output_buffer_size` a client may ask for.
    pub max_output_buffer_size: usize,
    /// Highest deflate level a client may ask for (1-9).
    pub max_deflate_level: u32,
    /// The node's part of message IDs.
    pub node_id: u16,
    /// Deliveries per message before it is dead-lettered (0: no limit).
    pub max_attempts: u16,
    /// Disk queue segment size.
    pub max_bytes_per_file: u64,
    /// Writes between fsyncs (at least 1).
    pub sync_every: u64,
    /// `--sync-every=1`: publishes are acknowledged once on disk.
    pub durable_acks: bool,
    /// Smallest and largest record a disk queue accepts: a message header,
    /// up to a header and the largest body.
    pub min_record_size: u32,
    pub max_record_size: u32,
    /// What protocol V2's decoder enforces.
    pub limits: Limits,
}

impl Settings {
    /// `opts` must have passed [`Options`]' validation (non-negative
    /// sizes); anything out of range is clamped into range here.
    pub fn new(opts: &Options) -> Settings {
        let usize_of = |v: i64| usize::try_from(v).unwrap_or(0);
        let max_msg_size = usize_of(opts.max_msg_size);
        let max_record = (max_msg_size as u64 + MESSAGE_HEADER_LEN as u64).min(i32::MAX as u64);
        Settings {
            mem_queue_size: usize_of(opts.mem_queue_size),
            mem_queue_bytes: usize_of(opts.mem_queue_bytes),
            max_msg_size,
            max_body_size: usize_of(opts.max_body_size),
            max_rdy_count: u64::try_from(opts.max_rdy_count).unwrap_or(0),
            max_channel_consumers: usize_of(opts.max_channel_consumers),
            max_output_buffer_size: usize_of(opts.max_output_buffer_size),
            max_deflate_level: u32::try_from(opts.max_deflate_level.clamp(1, 9)).unwrap_or(6),
            node_id: opts.effective_node_id(),
            max_attempts: opts.max_attempts,
            max_bytes_per_file: u64::try_from(opts.max_bytes_per_file).unwrap_or(0).max(1),
            sync_every: u64::try_from(opts.sync_every).unwrap_or(0).max(1),
            durable_acks: opts.sync_every <= 1,
            min_record_size: MESSAGE_HEADER_LEN as u32,
            max_record_size: max_record as u32,
            limits: Limits {
                max_msg_size: opts.max_msg_size,
                max_body_size: opts.max_body_size,
                max_rdy_count: u64::try_from(opts.max_rdy_count).unwrap_or(0),
                max_defer_ms: opts.max_defer().as_millis() as u64,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let opts = Options::parse_args(
            std::iter::once("nsqd")
                .chain(args.iter().copied())
                .map(Into::into),
        )
        .unwrap();
        Settings::new(&opts)
    }

    #[test]
    fn defaults_and_edges() {
        let s = settings(&[]);
        assert_eq!(s.mem_queue_size, 10_000);
        assert_eq!(s.mem_queue_bytes, 64 << 20);
        assert_eq!(s.max_msg_size, 1_048_576);
        assert_eq!(s.max_record_size, 1_048_576 + 26);
        assert_eq!(s.sync_every, 2500);
        assert!(!s.durable_acks);
        assert_eq!(s.max_channel_consumers, 0);
        let s = settings(&[
            "--sync-every=0",
            "--max-channel-consumers=-5",
            "--max-bytes-per-file=0",
        ]);
        assert_eq!((s.sync_every, s.durable_acks), (1, true));
        assert_eq!(s.max_channel_consumers, 0);
        assert_eq!(s.max_bytes_per_file, 1);
    }
}
