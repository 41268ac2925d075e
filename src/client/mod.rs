//! Client side of NSQ: what the tools, the benchmark and the tests use to
//! talk to nsqd. It lives in the library, beside the server, so that both
//! sides share one [`crate::protocol`] and agree on every byte.
//!
//! * [`Connection`] (`conn.rs`): one TCP (or unix socket) connection,
//!   magic and IDENTIFY done, frames in and commands out; usable request by
//!   request.
//! * [`Producer`] (`producer.rs`): publishes; many publishes may be
//!   outstanding on one connection (pipelining), answered in order as nsqd
//!   guarantees.
//! * [`Consumer`] (`consumer.rs`): subscribes on one or more nsqd, spreads
//!   the in-flight budget over them as RDY, hands out messages to FIN, REQ
//!   or TOUCH.
//! * [`ClientError`] (`error.rs`): one error type, nsqd's own text included.
//! * [`api`]: nsqlookupd's and nsqd's HTTP answers, read as tolerantly as
//!   go-nsq reads them; [`http`]: requests to nsqd's HTTP API over TCP or
//!   a unix socket.
//!
//! Each producer or consumer connection runs in one task that reads and
//! writes concurrently and batches whatever commands are waiting into a
//! single write; nothing is spawned per message. Heartbeats are answered
//! with NOP everywhere.

pub mod api;
pub(crate) mod conn;
mod consumer;
mod error;
pub mod http;
mod producer;

pub mod tls;

pub use conn::{Compression, Config, Connection, FrameReader};
pub use consumer::{Consumer, ConsumerConfig, Delivery, LookupdPolling};
pub use error::ClientError;
pub use producer::{Producer, PublishAck};
