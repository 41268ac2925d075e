//! The NSQ wire protocol (TCP V2), with no I/O.
//!
//! Both sides of the wire live here so that the daemon, our client and the
//! tests parse exactly the same bytes the same way:
//!
//! * [`decoder::CommandDecoder`]: server side, client commands out of a byte buffer;
//! * [`frame`]: server frames (response, error, message) in and out;
//! * [`command::Command::encode`]: client side, commands into bytes;
//! * [`message`]: the message layout and IDs; [`names`]: topic/channel rules;
//! * [`identify`]: the IDENTIFY JSON both ways;
//! * [`lookup`]: nsqlookupd's TCP protocol V1, both ways.

pub mod command;
pub mod decoder;
pub mod error;
pub mod frame;
pub mod identify;
pub mod lookup;
pub mod message;
pub mod names;

pub use command::Command;
pub use decoder::{CommandDecoder, ConnState, DecodeError, Gate, Limits};
pub use error::ProtocolError;
pub use frame::{Frame, FrameDecoder, FrameType};
pub use message::{Message, MessageId};

/// The 4 bytes a V2 client sends first: two spaces, `V`, `2`.
pub const MAGIC_V2: &[u8; 4] = b"  V2";
/// The version we report wherever NSQ reports its own (`/info`, IDENTIFY, `nsqd.dat`).
pub const NSQ_VERSION: &str = "1.3.0";
/// Response body of a heartbeat.
pub const HEARTBEAT: &[u8] = b"_heartbeat_";
/// Response body of most successful commands.
pub const OK: &[u8] = b"OK";
/// Response body of a successful CLS.
pub const CLOSE_WAIT: &[u8] = b"CLOSE_WAIT";
