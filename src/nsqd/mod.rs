//! nsqd: the queue engine and its servers.
//!
//! * [`engine::Nsqd`] owns the topics; [`topic::Topic`] fans messages out to
//!   its [`channel::Channel`]s; both store messages in a [`backend::Queue`]
//!   (memory up to `--mem-queue-size`, then a [`backend::Backend`]).
//! * [`tcp`] speaks protocol V2 to clients, [`http`] serves the HTTP API,
//!   [`stats`] renders the counters, [`server`] ties them together.

pub mod auth;
pub mod backend;
pub mod channel;
pub mod client_state;
pub mod engine;
pub mod http;
pub mod https;
pub mod latency;
pub mod lookup;
pub mod metadata;
pub mod metrics;
pub mod operations;
pub mod options;
pub mod queues;
pub mod server;
pub mod settings;
pub mod stats;
pub mod statsd;
pub mod tcp;
pub mod tls;
pub mod topic;

pub use engine::Nsqd;
pub use options::Options;
