//! Client side of NSQ: what the tools, the benchmark and the tests use to
//! talk to nsqd.
//!
//! * [`Connection`]: one TCP connection, magic and IDENTIFY done, frames in
//!   and commands out (heartbeats answered by whoever reads).
//! * [`Producer`]: publishes; many publishes may be outstanding on one
//!   connection (pipelining), answered in order as nsqd guarantees.
//! * [`Consumer`]: subscribes on one or more nsqd and hands out messages to
//!   FIN, REQ or TOUCH.
//!
//! Each producer or consumer connection runs in one task that batches
//! whatever commands are waiting into a single write.

mod conn;
mod consumer;
mod error;
mod producer;

pub use conn::{Config, Connection};
pub use consumer::{Consumer, ConsumerConfig, Delivery};
pub use error::ClientError;
pub use producer::Producer;
